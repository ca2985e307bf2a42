// SPDX-License-Identifier: MIT
// meshrun generate: one prompt, one continuation, streamed to stdout.
//
// Runs the same path the node uses: the continuous-batching scheduler over
// the engine (here with one sequence), the sampler, the stop-string matcher
// and the tokenizer's UTF-8-safe stream. Text goes to stdout as it comes;
// timing goes to stderr as one line at the end.
#include "meshrun.h"

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
            "  --greedy           always take the most likely token (= --temp 0)\n"
            "  --temp T           temperature (default 0.8; 0 = greedy)\n"
            "  --top-k K          keep the K most likely tokens (default 40; 0 = off)\n"
            "  --top-p P          nucleus sampling (default 0.95; 1 = off)\n"
            "  --min-p P          drop tokens below P x the best one (default 0.05; 0 = off)\n"
            "  --repeat-penalty R repetition penalty over the last 64 tokens (default 1 = off)\n"
            "  --seed S           RNG seed (default: from the clock; printed at the end)\n"
            "  --stop STR         stop before this text (repeatable, up to %d)\n"
            "  --ignore-eos       do not stop at the model's end-of-generation tokens\n"
            "  --print-ids        after the text, print the generated token ids on one line\n"
            "  --threads N        CPU threads (default: physical cores)\n"
            "  --help             this text\n",
            S_MAX_STOPS);
}

// Reads a whole file (or stdin for "-") as a NUL-terminated string. Caller frees.
static char *s_read_all(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    if (b && ferror(f)) {
        free(b);
        b = NULL;
    }
    if (f != stdin)
        fclose(f);
    if (b)
        b[n] = 0;
    return b;
}

// Parses ids separated by whitespace or commas. Returns the count or -1 with
// a reason in bad. Caller frees *ids.
static int s_parse_ids(const char *s, int32_t **ids, char *bad, size_t bad_len) {
    size_t cap = 64, n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        snprintf(bad, bad_len, "out of memory");
        return -1;
    }
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX ||
            (*end && !strchr(" \t\r\n,", *end))) {
            snprintf(bad, bad_len, "'%.20s' is not a token id", p);
            free(v);
            return -1;
        }
        if (n == cap) {
            int32_t *nv = realloc(v, cap * 2 * sizeof *v);
            if (!nv) {
                free(v);
                snprintf(bad, bad_len, "out of memory");
                return -1;
            }
            v = nv;
            cap *= 2;
        }
        v[n++] = (int32_t)x;
        p = end;
    }
    if (n > INT32_MAX / 2) {
        free(v);
        snprintf(bad, bad_len, "too many ids");
        return -1;
    }
    *ids = v;
    return (int)n;
}

static bool s_num(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x) || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
            g->t_first = s_now();
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
    bool have_seed = false, print_ids = false, ignore_eos = false;
    mesh_sampler_params_t sp = mesh_sampler_params_default();
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.min_p = 0.05f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--greedy")) {
            sp.temperature = 0.0f;
            continue;
        }
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
        } else if (!strcmp(a, "-n") && s_num(v, 1, 1 << 24, &x))
            n_predict = (long)x;
        else if (!strcmp(a, "--temp") && s_num(v, 0, 100, &x))
            sp.temperature = (float)x;
        else if (!strcmp(a, "--top-k") && s_num(v, 0, INT32_MAX, &x))
            sp.top_k = (int32_t)x;
        else if (!strcmp(a, "--top-p") && s_num(v, 1e-6, 1, &x))
            sp.top_p = (float)x;
        else if (!strcmp(a, "--min-p") && s_num(v, 0, 1, &x))
            sp.min_p = (float)x;
        else if (!strcmp(a, "--repeat-penalty") && s_num(v, 1e-3, 100, &x))
            sp.repetition_penalty = (float)x;
        else if (!strcmp(a, "--threads") && s_num(v, 1, 1024, &x))
            n_threads = (int)x;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-') {
                fprintf(stderr, "meshrun generate: bad --seed '%s' (want 0..2^64-1)\n", v);
                return 2;
            }
            sp.seed = s;
            have_seed = true;
        } else if (!strcmp(a, "--model") || !strcmp(a, "-n") || !strcmp(a, "--temp") ||
                   !strcmp(a, "--top-k") || !strcmp(a, "--top-p") || !strcmp(a, "--min-p") ||
                   !strcmp(a, "--repeat-penalty") || !strcmp(a, "--threads")) {
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
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        sp.seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
    }

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
        char *text = s_read_all(tokens_file);
        if (!text) {
            fprintf(stderr, "meshrun generate: cannot read '%s': %s\n", tokens_file,
                    strerror(errno));
            return 1;
        }
        n_ids = s_parse_ids(text, &ids, err, sizeof err);
        free(text);
        if (n_ids <= 0) {
            fprintf(stderr, "meshrun generate: %s: %s\n", tokens_file,
                    n_ids == 0 ? "no token ids" : err);
            return 1;
        }
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
    req.sampling = sp;
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
    double t0 = s_now();
    while (!g.done) {
        rc = mesh_sched_step(sched);
        if (rc < 0 && !g.done) {
            fprintf(stderr, "meshrun generate: forward pass failed: %s\n", mesh_strerror(rc));
            goto out;
        }
    }
    double t1 = s_now();
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
            (unsigned long long)sp.seed);
    status = 0;
out:
    mesh_sched_destroy(&sched);
    mesh_tok_destroy(&tok);
    mesh_model_destroy(&model);
    free(ids);
    free(g.ids);
    return status;
}
