// SPDX-License-Identifier: MIT
// meshrun generate: one prompt, one continuation, streamed to stdout.
//
// Runs the same path the node uses: the continuous-batching scheduler over
// the engine (here with one sequence), the sampler, the stop-string matcher
// and the tokenizer's UTF-8-safe stream. Text goes to stdout as it comes;
// timing goes to stderr as one line at the end.
#include "meshrun.h"
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "mesh_err.h"
#include "scheduler.h"
#include "tokenizer.h"

#define S_MAX_STOPS 16

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshrun generate --model F (--prompt TEXT | --tokens-file T) [options]\n"
            "\n"
            "Generates a continuation of a prompt and prints the text as it streams.\n"
            "\n"
            "  --model F          GGUF model file\n"
            "  --prompt TEXT      prompt text (special tokens such as <|user|> are parsed)\n"
            "  --tokens-file T    file of prompt token ids, separated by spaces or commas\n"
            "                     ('-' for stdin)\n"
            "  -n N               tokens to generate at most (default 128)\n"
            MESHRUN_SAMPLING_USAGE
            "  --stop STR         stop before this text (repeatable, up to %d)\n"
            "  --ignore-eos       do not stop at the model's end-of-generation tokens\n"
            "  --print-ids        after the text, print the generated token ids on one line\n"
            "  --threads N        CPU threads (default: physical cores)\n"
            "  --help             this text\n",
            S_MAX_STOPS);
}

typedef struct {
    bool print_ids;
    int32_t *ids; // (cap) generated ids
    int32_t n_ids, cap;
    double t_first; // time the first token arrived
    bool done;
    mesh_sched_finish_t finish;
    int error;
    int32_t n_prompt, n_gen;
} s_gen_t;

static void s_on_event(const mesh_sched_event_t *ev, void *user) {
    s_gen_t *g = user;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    }
    if (ev->type == MESH_SCHED_EV_TOKEN) {
        if (g->n_ids == 0)
            g->t_first = meshrun_now();
        if (g->n_ids < g->cap)
            g->ids[g->n_ids++] = ev->token;
        return;
    }
    g->done = true;
    g->finish = ev->finish;
    g->error = ev->error;
    g->n_prompt = ev->n_prompt;
    g->n_gen = ev->n_gen;
}

int meshrun_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *tokens_file = NULL;
    const char *stops[S_MAX_STOPS];
    int n_stops = 0;
    long n_predict = 128;
    int n_threads = 0;
    bool print_ids = false, ignore_eos = false;
    meshrun_sampling_t smp;
    meshrun_sampling_init(&smp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        int taken = meshrun_sampling_opt(&smp, "generate", argc, argv, &i);
        if (taken < 0)
            return 2;
        if (taken)
            continue;
        if (!strcmp(a, "--print-ids")) {
            print_ids = true;
            continue;
        }
        if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "meshrun generate: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        double x;
        if (!strcmp(a, "--model"))
            model_path = v;
        else if (!strcmp(a, "--prompt"))
            prompt = v;
        else if (!strcmp(a, "--tokens-file"))
            tokens_file = v;
        else if (!strcmp(a, "--stop")) {
            if (n_stops == S_MAX_STOPS || !v[0]) {
                fprintf(stderr, "meshrun generate: --stop needs non-empty text, at most %d times\n",
                        S_MAX_STOPS);
                return 2;
            }
            stops[n_stops++] = v;
        } else if (!strcmp(a, "-n") && meshrun_parse_double(v, 1, 1 << 24, &x))
            n_predict = (long)x;
        else if (!strcmp(a, "--threads") && meshrun_parse_double(v, 1, 1024, &x))
            n_threads = (int)x;
        else if (!strcmp(a, "--model") || !strcmp(a, "-n") || !strcmp(a, "--threads")) {
            fprintf(stderr, "meshrun generate: bad value '%s' for %s (see --help)\n", v, a);
            return 2;
        } else {
            fprintf(stderr, "meshrun generate: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!model_path || (!prompt == !tokens_file)) {
        fprintf(stderr, "meshrun generate: need --model and exactly one of --prompt or "
                        "--tokens-file (see --help)\n");
        return 2;
    }
    meshrun_sampling_finish(&smp);

    int status = 1;
    char err[512] = "";
    mesh_model_t *model = NULL;
    mesh_tok_t *tok = NULL;
    mesh_sched_t *sched = NULL;
    int32_t *ids = NULL;
    int n_ids = 0;
    s_gen_t g;
    memset(&g, 0, sizeof g);

    // The prompt's ids first (file) so the KV pool can be sized to fit.
    if (tokens_file) {
        char *text = NULL;
        size_t len = 0, n = 0;
        int rc = meshrun_read_file(tokens_file, 0, &text, &len);
        if (rc) {
            fprintf(stderr, "meshrun generate: cannot read '%s': %s\n", tokens_file,
                    rc == MESH_EIO && errno ? strerror(errno) : mesh_strerror(rc));
            return 1;
        }
        char bad[32] = "";
        rc = meshrun_parse_ids(text, len, &ids, &n, bad, sizeof bad);
        free(text);
        if (rc || n == 0 || n > INT32_MAX / 2) {
            fprintf(stderr, "meshrun generate: %s: %s%s%s\n", tokens_file,
                    rc == MESH_EINVAL ? "'" : "", rc == MESH_EINVAL ? bad : rc ? mesh_strerror(rc) : "no token ids",
                    rc == MESH_EINVAL ? "' is not a token id" : "");
            free(ids);
            return 1;
        }
        n_ids = (int)n;
    }

    mesh_model_params_t mp;
    mesh_model_params_default(&mp);
    mp.n_threads = n_threads;
    mp.max_seqs = 4;
    // KV for this one request (prompt text length bounds its token count).
    uint64_t want = (uint64_t)n_predict + (uint64_t)(ids ? n_ids : (int)strlen(prompt) + 2) + 64;
    mp.kv_tokens = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
    int rc = mesh_model_load(model_path, &mp, &model, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun generate: %s\n", err[0] ? err : mesh_strerror(rc));
        goto out;
    }
    rc = mesh_tok_new_from_gguf(mesh_model_gguf(model), &tok, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun generate: tokenizer: %s\n", err[0] ? err : mesh_strerror(rc));
        goto out;
    }
    if (prompt) {
        size_t n = 0;
        rc = mesh_tok_encode_alloc(tok, prompt, strlen(prompt), true,
                                   mesh_tok_add_bos_default(tok), &ids, &n);
        if (rc || n == 0) {
            fprintf(stderr, "meshrun generate: cannot tokenize the prompt: %s\n",
                    rc ? mesh_strerror(rc) : "no tokens");
            goto out;
        }
        n_ids = (int)n;
    }
    rc = mesh_sched_new_engine(model, tok, NULL, &sched);
    if (rc) {
        fprintf(stderr, "meshrun generate: cannot start the scheduler: %s\n", mesh_strerror(rc));
        goto out;
    }

    g.print_ids = print_ids;
    g.cap = (int32_t)n_predict;
    g.ids = malloc((size_t)g.cap * sizeof *g.ids);
    if (!g.ids) {
        fprintf(stderr, "meshrun generate: out of memory\n");
        goto out;
    }
    mesh_sched_request_t req;
    mesh_sched_request_init(&req);
    req.prompt = ids;
    req.n_prompt = n_ids;
    req.sampling = smp.params;
    req.max_tokens = (int32_t)n_predict;
    req.stop = stops;
    req.n_stop = n_stops;
    req.stop_at_eog = !ignore_eos;
    req.on_event = s_on_event;
    req.user = &g;
    uint64_t id;
    rc = mesh_sched_submit(sched, &req, &id, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshrun generate: %s\n", err);
        goto out;
    }
    double t0 = meshrun_now();
    while (!g.done) {
        rc = mesh_sched_step(sched);
        if (rc < 0 && !g.done) {
            fprintf(stderr, "meshrun generate: forward pass failed: %s\n", mesh_strerror(rc));
            goto out;
        }
    }
    double t1 = meshrun_now();
    if (g.finish == MESH_SCHED_FINISH_ERROR) {
        fprintf(stderr, "\nmeshrun generate: generation failed: %s\n", mesh_strerror(g.error));
        goto out;
    }
    printf("\n");
    if (print_ids) {
        for (int32_t i = 0; i < g.n_ids; i++)
            printf("%s%d", i ? " " : "", (int)g.ids[i]);
        printf("\n");
    }
    fflush(stdout);
    double tp = g.n_ids ? g.t_first - t0 : t1 - t0;
    double tg = t1 - (g.n_ids ? g.t_first : t1);
    fprintf(stderr,
            "meshrun generate: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in "
            "%.3f s (%.1f tok/s after the first), finish %s, seed %llu\n",
            (int)g.n_prompt, tp, tp > 0 ? g.n_prompt / tp : 0.0, (int)g.n_gen, tg,
            tg > 0 && g.n_gen > 1 ? (g.n_gen - 1) / tg : 0.0, mesh_sched_finish_name(g.finish),
            (unsigned long long)smp.params.seed);
    status = 0;
out:
    mesh_sched_destroy(&sched);
    mesh_tok_destroy(&tok);
    mesh_model_destroy(&model);
    free(ids);
    free(g.ids);
    return status;
}
