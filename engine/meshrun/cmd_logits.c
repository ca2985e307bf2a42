// SPDX-License-Identifier: MIT
// meshrun logits: evaluates given token ids in one sequence and writes the
// float32 little-endian logits of every position, [n_tokens][n_vocab].
// --incremental evaluates token by token instead of one batch (the two must
// agree; the golden tests compare them).
#include "engine.h"
#include "meshrun.h"
#include "mesh_err.h"
#include "quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_help(FILE *f) {
    fprintf(f, "usage: meshrun logits --model FILE --tokens-file FILE --out FILE [options]\n\n"
               "Writes float32 logits for every position: [n_tokens][n_vocab], little-endian.\n\n"
               "  --model FILE        GGUF model (deepseek2)\n"
               "  --tokens-file FILE  whitespace-separated token ids\n"
               "  --out FILE          output file\n"
               "  --threads N         CPU threads (default: physical cores)\n"
               "  --batch B           tokens per forward chunk (default 512)\n"
               "  --kv-type T         f32 (default) or f16\n"
               "  --backend NAME      cpu (default) or cuda (when built)\n"
               "  --device N          GPU index (default 0)\n"
               "  --incremental       evaluate one token per forward call\n"
               "  --help              this text\n");
}

// Reads ids; returns count or -1 with a message printed.
static long s_read_ids(const char *path, int32_t **out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "meshrun logits: cannot open tokens file '%s': %s\n", path, strerror(errno));
        return -1;
    }
    long n = 0, cap = 256;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    char word[64];
    int rc;
    while (ids && (rc = fscanf(f, "%63s", word)) == 1) {
        char *end;
        errno = 0;
        long v = strtol(word, &end, 10);
        if (*end || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "meshrun logits: '%s' in %s is not a token id\n", word, path);
            free(ids);
            fclose(f);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *p = realloc(ids, sizeof(int32_t) * (size_t)cap);
            if (!p)
                break;
            ids = p;
        }
        ids[n++] = (int32_t)v;
    }
    fclose(f);
    if (!ids) {
        fprintf(stderr, "meshrun logits: out of memory\n");
        return -1;
    }
    *out = ids;
    return n;
}

int meshrun_cmd_logits(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *outp = NULL;
    mesh_model_params_t p;
    mesh_model_params_default(&p);
    bool incremental = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_help(stdout);
            return 0;
        } else if (!strcmp(a, "--incremental")) {
            incremental = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "meshrun logits: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--tokens-file"))
            tokfile = v;
        else if (!strcmp(a, "--out"))
            outp = v;
        else if (!strcmp(a, "--backend"))
            p.backend = v;
        else if (!strcmp(a, "--threads") || !strcmp(a, "--batch") || !strcmp(a, "--device")) {
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < (strcmp(a, "--device") ? 1 : 0) || x > 65536) {
                fprintf(stderr, "meshrun logits: %s wants a positive number, got '%s'\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--device"))
                p.device = (int)x;
            else if (!strcmp(a, "--threads"))
                p.n_threads = (int)x;
            else
                p.max_batch = (uint32_t)x;
        } else if (!strcmp(a, "--kv-type")) {
            if (!strcmp(v, "f32"))
                p.kv_type = MESH_QT_F32;
            else if (!strcmp(v, "f16"))
                p.kv_type = MESH_QT_F16;
            else {
                fprintf(stderr, "meshrun logits: --kv-type must be f32 or f16, got '%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "meshrun logits: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model || !tokfile || !outp) {
        fprintf(stderr, "meshrun logits: --model, --tokens-file and --out are required\n");
        return 2;
    }
    int32_t *ids = NULL;
    long n = s_read_ids(tokfile, &ids);
    if (n < 0)
        return 2;
    if (n == 0) {
        fprintf(stderr, "meshrun logits: %s holds no token ids\n", tokfile);
        free(ids);
        return 2;
    }
    p.kv_tokens = (uint32_t)n + 64;
    p.max_seqs = 1;
    char err[256] = "";
    mesh_model_t *m = NULL;
    int rc = mesh_model_load(model, &p, &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun logits: %s\n", err[0] ? err : mesh_strerror(rc));
        free(ids);
        return 1;
    }
    const uint32_t V = mesh_model_n_vocab(m);
    int status = 1;
    float *logits = NULL;
    mesh_batch_tok_t *bt = NULL;
    FILE *f = NULL;
    for (long i = 0; i < n; i++)
        if ((uint32_t)ids[i] >= V) {
            fprintf(stderr, "meshrun logits: token id %d (at %ld) is not below the vocabulary size %u\n",
                    ids[i], i, V);
            status = 2;
            goto done;
        }
    logits = malloc(sizeof(float) * (size_t)n * V);
    bt = malloc(sizeof *bt * (size_t)n);
    if (!logits || !bt) {
        fprintf(stderr, "meshrun logits: out of memory\n");
        goto done;
    }
    mesh_kv_t *kv = mesh_model_kv(m);
    int32_t seq;
    if ((rc = mesh_kv_seq_new(kv, &seq)))
        goto fwd_fail;
    for (long i = 0; i < n; i++)
        bt[i] = (mesh_batch_tok_t){ids[i], seq, (int32_t)i, true};
    if (incremental) {
        for (long i = 0; i < n && !rc; i++) {
            mesh_batch_t b = {1, &bt[i]};
            rc = mesh_model_forward(m, kv, &b, logits + (size_t)i * V);
        }
    } else {
        mesh_batch_t b = {(int32_t)n, bt};
        rc = mesh_model_forward(m, kv, &b, logits);
    }
fwd_fail:
    if (rc) {
        fprintf(stderr, "meshrun logits: forward failed: %s\n", mesh_strerror(rc));
        goto done;
    }
    f = fopen(outp, "wb");
    if (!f || fwrite(logits, sizeof(float) * V, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "meshrun logits: cannot write '%s': %s\n", outp, strerror(errno));
        goto done;
    }
    if (fclose(f)) {
        f = NULL;
        fprintf(stderr, "meshrun logits: cannot write '%s': %s\n", outp, strerror(errno));
        goto done;
    }
    f = NULL;
    status = 0;
done:
    if (f)
        fclose(f);
    free(bt);
    free(logits);
    free(ids);
    mesh_model_destroy(&m);
    return status;
}
