// SPDX-License-Identifier: MIT
// meshrun tokenize: text to token ids with a model's tokenizer, or ids back
// to text with --decode. For checking prompts by hand and for scripts.
#include "meshrun.h"

#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mesh_err.h"
#include "tokenizer.h"

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshrun tokenize --model F (--text S | --text-file T) [--no-special] [--add-bos]\n"
            "       meshrun tokenize --model F --decode (--ids \"1 2 3\" | --ids-file T) [--skip-special]\n"
            "\n"
            "Encodes text with the model's tokenizer and prints the ids separated by spaces,\n"
            "or decodes ids back to text.\n"
            "\n"
            "  --model F        GGUF file whose tokenizer.ggml.* keys define the tokenizer\n"
            "  --text S         text to encode\n"
            "  --text-file T    file whose bytes are the text to encode ('-' for stdin)\n"
            "  --no-special     treat special-token text such as <|user|> as plain text\n"
            "  --add-bos        prepend the model's BOS token\n"
            "  --decode         decode ids instead of encoding text\n"
            "  --ids S          ids separated by spaces or commas\n"
            "  --ids-file T     file holding the ids ('-' for stdin)\n"
            "  --skip-special   with --decode: leave control tokens out of the text\n"
            "  --help           this text\n");
}



int meshrun_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *text_file = NULL, *ids_str = NULL, *ids_file = NULL;
    bool no_special = false, add_bos = false, decode = false, skip_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-special")) {
            no_special = true;
        } else if (!strcmp(a, "--add-bos")) {
            add_bos = true;
        } else if (!strcmp(a, "--decode")) {
            decode = true;
        } else if (!strcmp(a, "--skip-special")) {
            skip_special = true;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--text") || !strcmp(a, "--text-file") ||
                   !strcmp(a, "--ids") || !strcmp(a, "--ids-file")) {
            if (!has_val) {
                fprintf(stderr, "meshrun tokenize: %s needs a value (see --help)\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--model"))
                model = v;
            else if (!strcmp(a, "--text"))
                text = v;
            else if (!strcmp(a, "--text-file"))
                text_file = v;
            else if (!strcmp(a, "--ids"))
                ids_str = v;
            else
                ids_file = v;
        } else {
            fprintf(stderr, "meshrun tokenize: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "meshrun tokenize: --model is required (see --help)\n");
        return 2;
    }
    if (decode ? (!ids_str == !ids_file) : (!text == !text_file)) {
        fprintf(stderr, "meshrun tokenize: give exactly one of %s (see --help)\n",
                decode ? "--ids or --ids-file" : "--text or --text-file");
        return 2;
    }
    if (decode ? (text || text_file || no_special || add_bos) : (ids_str || ids_file || skip_special)) {
        fprintf(stderr, "meshrun tokenize: %s (see --help)\n",
                decode ? "--text, --text-file, --no-special and --add-bos do not go with --decode"
                       : "--ids, --ids-file and --skip-special need --decode");
        return 2;
    }

    char err[512] = "";
    mesh_gguf_t *g = NULL;
    mesh_tok_t *tok = NULL;
    char *buf = NULL, *out = NULL;
    int32_t *ids = NULL;
    int status = 1;
    int rc = mesh_gguf_open(model, &g, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "meshrun tokenize: %s: %s\n", model, err[0] ? err : mesh_strerror(rc));
        goto done;
    }
    rc = mesh_tok_new_from_gguf(g, &tok, err, sizeof err);
    mesh_gguf_close(&g);
    if (rc < 0) {
        fprintf(stderr, "meshrun tokenize: %s: %s\n", model, err[0] ? err : mesh_strerror(rc));
        goto done;
    }
    size_t len = 0;
    const char *src = decode ? ids_file : text_file;
    if (src) {
        if ((rc = meshrun_read_file(src, 0, &buf, &len)) < 0) {
            fprintf(stderr, "meshrun tokenize: cannot read '%s': %s\n", src,
                    rc == MESH_EIO && errno ? strerror(errno) : mesh_strerror(rc));
            goto done;
        }
    } else {
        const char *s = decode ? ids_str : text;
        len = strlen(s);
        if (!(buf = malloc(len + 1)))
            goto done;
        memcpy(buf, s, len + 1);
    }
    size_t n = 0;
    if (decode) {
        char bad[32] = "";
        if ((rc = meshrun_parse_ids(buf, len, &ids, &n, bad, sizeof bad)) < 0) {
            if (rc == MESH_EINVAL) {
                fprintf(stderr, "meshrun tokenize: '%s' is not a token id\n", bad);
                status = 2;
            } else {
                fprintf(stderr, "meshrun tokenize: %s\n", mesh_strerror(rc));
            }
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            if ((size_t)ids[i] >= mesh_tok_n_vocab(tok)) {
                fprintf(stderr, "meshrun tokenize: id %d is outside the vocabulary (size %zu)\n",
                        ids[i], mesh_tok_n_vocab(tok));
                status = 2;
                goto done;
            }
        size_t need = 0;
        mesh_tok_decode(tok, ids, n, skip_special, NULL, 0, &need);
        if (!(out = malloc(need + 1)))
            goto done;
        if ((rc = mesh_tok_decode(tok, ids, n, skip_special, out, need + 1, &need)) < 0) {
            fprintf(stderr, "meshrun tokenize: decode failed: %s\n", mesh_strerror(rc));
            goto done;
        }
        fwrite(out, 1, need, stdout);
        fputc('\n', stdout);
    } else {
        if ((rc = mesh_tok_encode_alloc(tok, buf, len, !no_special, add_bos, &ids, &n)) < 0) {
            fprintf(stderr, "meshrun tokenize: encode failed: %s\n", mesh_strerror(rc));
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        fputc('\n', stdout);
    }
    status = fflush(stdout) == 0 ? 0 : 1;
done:
    free(buf);
    free(out);
    free(ids);
    mesh_tok_destroy(&tok);
    mesh_gguf_close(&g);
    return status;
}
