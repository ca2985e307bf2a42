// SPDX-License-Identifier: MIT
// meshrun bench: prompt and generation speed of the engine on one model,
// llama-bench style. Prompt: one batch of -p tokens (only the last token's
// logits), repeated --reps times after a warm-up; generation: -n single-token
// steps with logits. --depth D first fills D tokens of context and runs both
// tests on top of it. Token ids are pseudo-random (fixed seed) below the
// vocabulary size. Prints a table, or one JSON object with --json.
#include "engine.h"
#include "meshrun.h"
#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void s_help(FILE *f) {
    fprintf(f, "usage: meshrun bench --model FILE [options]\n\n"
               "Measures prompt processing and generation speed (tokens/s).\n\n"
               "  --model FILE   GGUF model (deepseek2)\n"
               "  -p N           prompt tokens per batch (default 512)\n"
               "  -n N           generated tokens (default 128)\n"
               "  --threads N    CPU threads (default: physical cores)\n"
               "  --depth D      context tokens filled before the tests (default 0)\n"
               "  --reps R       timed prompt repetitions (default 3)\n"
               "  --kv-type T    f32 (default) or f16\n"
               "  --backend NAME cpu (default) or cuda (when built)\n"
               "  --device N     GPU index (default 0)\n"
               "  --json         print one JSON object instead of a table\n"
               "  --help         this text\n");
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int s_num(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "meshrun bench: %s wants a number in [%ld, %ld], got '%s'\n", opt, lo, hi,
                v ? v : "(nothing)");
        return -1;
    }
    *out = x;
    return 0;
}

int meshrun_cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    long np = 512, ng = 128, nt = 0, depth = 0, reps = 3;
    bool json = false;
    mesh_model_params_t p;
    mesh_model_params_default(&p);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_help(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--model")) {
            if (!v) {
                fprintf(stderr, "meshrun bench: --model needs a file\n");
                return 2;
            }
            model = v;
            i++;
        } else if (!strcmp(a, "-p")) {
            if (s_num(a, v, 1, 65536, &np))
                return 2;
            i++;
        } else if (!strcmp(a, "-n")) {
            if (s_num(a, v, 0, 65536, &ng))
                return 2;
            i++;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if (s_num(a, v, 1, 256, &nt))
                return 2;
            i++;
        } else if (!strcmp(a, "--depth") || !strcmp(a, "-d")) {
            if (s_num(a, v, 0, 1 << 24, &depth))
                return 2;
            i++;
        } else if (!strcmp(a, "--reps") || !strcmp(a, "-r")) {
            if (s_num(a, v, 1, 1000, &reps))
                return 2;
            i++;
        } else if (!strcmp(a, "--backend")) {
            if (!v) {
                fprintf(stderr, "meshrun bench: --backend needs a name\n");
                return 2;
            }
            p.backend = v;
            i++;
        } else if (!strcmp(a, "--device")) {
            long dv;
            if (s_num(a, v, 0, 1024, &dv))
                return 2;
            p.device = (int)dv;
            i++;
        } else if (!strcmp(a, "--kv-type")) {
            if (v && !strcmp(v, "f16"))
                p.kv_type = 1;
            else if (v && !strcmp(v, "f32"))
                p.kv_type = 0;
            else {
                fprintf(stderr, "meshrun bench: --kv-type must be f32 or f16\n");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "meshrun bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "meshrun bench: --model is required\n");
        return 2;
    }
    p.n_threads = (int)nt;
    p.kv_tokens = (uint32_t)(depth + (np > ng ? np : ng) + 64);
    p.max_batch = (uint32_t)(np > 512 ? np : 512);
    p.max_seqs = 1;
    char err[256] = "";
    mesh_model_t *m = NULL;
    int rc = mesh_model_load(model, &p, &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun bench: %s\n", err[0] ? err : mesh_strerror(rc));
        return 1;
    }
    mesh_model_info_t info;
    mesh_model_info(m, &info);
    const uint32_t V = info.n_vocab;
    long nmax = np > depth ? np : depth;
    if (nmax < 512)
        nmax = 512;
    mesh_batch_tok_t *bt = malloc(sizeof *bt * (size_t)nmax);
    float *logits = malloc(sizeof(float) * V);
    int status = 1;
    mesh_kv_t *kv = mesh_model_kv(m);
    int32_t seq;
    double pp_tps = 0, tg_tps = 0;
    if (!bt || !logits || (rc = mesh_kv_seq_new(kv, &seq)))
        goto fail;
    uint32_t rng = 12345;
#define S_TOK() ((int32_t)((rng = rng * 1664525u + 1013904223u) >> 8) % (int32_t)V)
    // Context fill, in chunks of up to 512.
    for (long d0 = 0; d0 < depth; d0 += 512) {
        long c = depth - d0 < 512 ? depth - d0 : 512;
        for (long i = 0; i < c; i++)
            bt[i] = (mesh_batch_tok_t){S_TOK(), seq, (int32_t)(d0 + i), false};
        mesh_batch_t b = {(int32_t)c, bt};
        if ((rc = mesh_model_forward(m, kv, &b, NULL)))
            goto fail;
    }
    // Prompt: warm-up + reps timed.
    double best = 0, total = 0;
    for (long r = 0; r <= reps; r++) {
        if ((rc = mesh_kv_seq_truncate(kv, seq, (int32_t)depth)))
            goto fail;
        for (long i = 0; i < np; i++)
            bt[i] = (mesh_batch_tok_t){S_TOK(), seq, (int32_t)(depth + i), i == np - 1};
        mesh_batch_t b = {(int32_t)np, bt};
        double t0 = s_now();
        if ((rc = mesh_model_forward(m, kv, &b, logits)))
            goto fail;
        double dt = s_now() - t0;
        if (r > 0) {
            total += dt;
            best = best == 0 || dt < best ? dt : best;
        }
    }
    pp_tps = (double)np * (double)reps / total;
    // Generation: warm-up step, then ng timed steps.
    if (ng > 0) {
        if ((rc = mesh_kv_seq_truncate(kv, seq, (int32_t)depth)))
            goto fail;
        mesh_batch_tok_t t = {S_TOK(), seq, (int32_t)depth, true};
        mesh_batch_t b = {1, &t};
        if ((rc = mesh_model_forward(m, kv, &b, logits)))
            goto fail;
        if ((rc = mesh_kv_seq_truncate(kv, seq, (int32_t)depth)))
            goto fail;
        double t0 = s_now();
        for (long i = 0; i < ng; i++) {
            t = (mesh_batch_tok_t){S_TOK(), seq, (int32_t)(depth + i), true};
            if ((rc = mesh_model_forward(m, kv, &b, logits)))
                goto fail;
        }
        tg_tps = (double)ng / (s_now() - t0);
    }
    if (json) {
        printf("{\"model\":\"%s\",\"file_type\":\"%s\",\"backend\":\"%s\",\"device\":\"%s\","
               "\"threads\":%ld,\"depth\":%ld,\"pp_tokens\":%ld,\"pp_tps\":%.1f,"
               "\"pp_best_tps\":%.1f,\"tg_tokens\":%ld,\"tg_tps\":%.1f}\n",
               model, info.file_type, info.backend, info.device, nt, depth, np, pp_tps,
               (double)np / best, ng, tg_tps);
    } else {
        printf("| model | type | backend | threads | test | t/s |\n");
        printf("| --- | --- | --- | --- | --- | --- |\n");
        char ths[16];
        snprintf(ths, sizeof ths, nt ? "%ld" : "default", nt);
        printf("| %s | %s | %s | %s | pp%ld%s | %.1f |\n", info.name[0] ? info.name : model,
               info.file_type, info.backend, ths, np, depth ? " @depth" : "", pp_tps);
        if (ng > 0)
            printf("| %s | %s | %s | %s | tg%ld%s | %.1f |\n", info.name[0] ? info.name : model,
                   info.file_type, info.backend, ths, ng, depth ? " @depth" : "", tg_tps);
        printf("device: %s; depth %ld\n", info.device, depth);
    }
    status = 0;
fail:
    if (status)
        fprintf(stderr, "meshrun bench: forward failed: %s\n", mesh_strerror(rc));
    free(bt);
    free(logits);
    mesh_model_destroy(&m);
    return status;
}
