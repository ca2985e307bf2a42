// SPDX-License-Identifier: MIT
// meshrun quantize: converts a GGUF file to another file type (q8_0, q4_k_m,
// bf16, ...). Argument handling only; the conversion is engine/quantize.c.
#include "meshrun.h"

#include "mesh_log.h"
#include "quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The library's own error lines (e.g. the GGUF writer's "cannot create
// '...': No such file or directory") are kept and appended to our one
// error line instead of going to stderr as separate lines.
static char s_detail[512];
static void s_capture(mesh_log_level_t level, const char *line, void *user) {
    (void)user;
    if (level >= MESH_LOG_ERROR)
        snprintf(s_detail, sizeof s_detail, "%s", line);
}

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshrun quantize IN.gguf OUT.gguf TYPE [--threads N]\n\n"
            "Converts a GGUF model to another tensor type, tensor by tensor (the input\n"
            "is read in place, memory stays about one tensor). Norms, biases and the MoE\n"
            "router stay F32; the K mixes give output.weight Q6_K; rows that are not a\n"
            "multiple of 256 fall back to a 32-element block type.\n\n"
            "TYPE: %s\n\n"
            "options:\n"
            "  -t, --threads N  worker threads (default: one per core)\n"
            "  -h, --help       this help\n",
            mesh_ftype_names());
}

int meshrun_cmd_quantize(int argc, char **argv) {
    const char *pos[3];
    int n_pos = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "meshrun quantize: %s needs a number\n", a);
                return 2;
            }
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 1 || v > 256) {
                fprintf(stderr, "meshrun quantize: --threads must be 1..256, got '%s'\n", argv[i]);
                return 2;
            }
            threads = (int)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "meshrun quantize: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "meshrun quantize: too many arguments ('%s'); see --help\n", a);
            return 2;
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "meshrun quantize: needs IN OUT TYPE (see --help)\n");
        return 2;
    }
    if (!mesh_ftype_find(pos[2])) {
        fprintf(stderr, "meshrun quantize: unknown type '%s' (known: %s)\n", pos[2],
                mesh_ftype_names());
        return 2;
    }
    if (!strcmp(pos[0], pos[1])) {
        fprintf(stderr, "meshrun quantize: output '%s' is the input file\n", pos[1]);
        return 2;
    }
    char err[512] = "";
    mesh_log_set_sink(s_capture, NULL);
    int rc = mesh_quantize_file(pos[0], pos[1], pos[2], threads, stdout, err, sizeof err);
    mesh_log_set_sink(NULL, NULL);
    if (rc) {
        if (s_detail[0])
            fprintf(stderr, "meshrun quantize: %s (%s)\n", err, s_detail);
        else
            fprintf(stderr, "meshrun quantize: %s\n", err);
        return 1;
    }
    return 0;
}
