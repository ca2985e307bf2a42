// SPDX-License-Identifier: MIT
// Scheduler tests over a fake model whose logits depend only on a sequence's
// own tokens (a running hash), and which checks every batch it is given:
// positions without gaps, live sequences, KV blocks within the pool. They
// check that a batch gives each sequence its solo tokens, that sequences join
// and leave between steps, one forward pass per step, prompt chunking,
// cancel, KV refusal and queueing, stop strings, end tokens, max_tokens and
// submit from another thread.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh_err.h"
#include "scheduler.h"

enum { V = 40, MAXSEQ = 8, BLOCK = 4, CAP = 256, NCTX = 200, EOG = 39 };
static const char s_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789.,;!";

typedef struct {
    bool live[MAXSEQ];
    int32_t len[MAXSEQ];
    uint64_t h[MAXSEQ];
    int32_t blocks_used;
    int calls, max_n, violations, last_n_seqs;
} s_fake_t;

static uint64_t s_mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static int s_seq_new(void *ctx, int32_t *seq) {
    s_fake_t *f = ctx;
    for (int32_t i = 0; i < MAXSEQ; i++)
        if (!f->live[i]) {
            f->live[i] = true;
            f->len[i] = 0;
            f->h[i] = 1469598103934665603ULL;
            *seq = i;
            return 0;
        }
    return MESH_ENOSPACE;
}

static void s_seq_free(void *ctx, int32_t seq) {
    s_fake_t *f = ctx;
    assert_true(seq >= 0 && seq < MAXSEQ && f->live[seq]);
    f->live[seq] = false;
    f->blocks_used -= (f->len[seq] + BLOCK - 1) / BLOCK;
}

static int s_forward(void *ctx, int32_t n, const mesh_sched_tok_t *t, float *logits) {
    s_fake_t *f = ctx;
    f->calls++;
    if (n > f->max_n)
        f->max_n = n;
    bool seen[MAXSEQ] = {0};
    int rows = 0;
    f->last_n_seqs = 0;
    for (int32_t k = 0; k < n; k++) {
        int32_t q = t[k].seq;
        if (q < 0 || q >= MAXSEQ || !f->live[q] || t[k].pos != f->len[q] || t[k].token < 0 ||
            t[k].token >= V) {
            f->violations++;
            return MESH_EINVAL;
        }
        if (!seen[q])
            f->last_n_seqs++;
        seen[q] = true;
        if (f->len[q] % BLOCK == 0)
            f->blocks_used++;
        if (f->blocks_used * BLOCK > CAP) {
            f->violations++;
            return MESH_ENOSPACE;
        }
        f->len[q]++;
        f->h[q] = s_mix(f->h[q], (uint64_t)t[k].token);
        if (t[k].logits) {
            for (int v = 0; v < V; v++)
                logits[rows * V + v] = (float)(s_mix(f->h[q], (uint64_t)v) % 1000) / 100.0f;
            rows++;
        }
    }
    return 0;
}

typedef struct {
    char c[2];
} s_stream_t;

static void *s_stream_new(void *ctx) {
    (void)ctx;
    return calloc(1, sizeof(s_stream_t));
}
static void s_stream_destroy(void *st) { free(st); }
static int s_stream_push(void *st, int32_t token, const char **text, size_t *len) {
    s_stream_t *s = st;
    s->c[0] = s_chars[token];
    *text = s->c;
    *len = 1;
    return 0;
}
static int s_stream_flush(void *st, const char **text, size_t *len) {
    (void)st;
    *text = "";
    *len = 0;
    return 0;
}
static bool s_is_eog(void *ctx, int32_t token) {
    (void)ctx;
    return token == EOG;
}

static s_fake_t s_fake;

static mesh_sched_model_t s_model(void) {
    memset(&s_fake, 0, sizeof s_fake);
    mesh_sched_model_t m = {
        .ctx = &s_fake,
        .n_vocab = V,
        .n_ctx = NCTX,
        .kv_capacity_tokens = CAP,
        .kv_block_tokens = BLOCK,
        .kv_bytes_per_token = 1000,
        .max_seqs = MAXSEQ,
        .seq_new = s_seq_new,
        .seq_free = s_seq_free,
        .forward = s_forward,
        .stream_new = s_stream_new,
        .stream_destroy = s_stream_destroy,
        .stream_push = s_stream_push,
        .stream_flush = s_stream_flush,
        .is_eog = s_is_eog,
    };
    return m;
}

// What one request received.
typedef struct {
    int32_t tokens[512];
    int n_tokens;
    char text[1024];
    size_t text_len;
    int done;
    mesh_sched_finish_t finish;
    int32_t n_prompt, n_gen;
} s_rx_t;

static void s_on_event(const mesh_sched_event_t *ev, void *user) {
    s_rx_t *rx = user;
    assert_int_equal(rx->done, 0); // nothing after DONE
    if (ev->type == MESH_SCHED_EV_TOKEN) {
        assert_non_null(ev->sample);
        assert_int_equal(ev->sample->token, ev->token);
        rx->tokens[rx->n_tokens++] = ev->token;
    } else {
        rx->done = 1;
        rx->finish = ev->finish;
        rx->n_prompt = ev->n_prompt;
        rx->n_gen = ev->n_gen;
    }
    memcpy(rx->text + rx->text_len, ev->text, ev->text_len);
    rx->text_len += ev->text_len;
    rx->text[rx->text_len] = 0;
}

static void s_prompt(int32_t *p, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = s_mix(seed, (uint64_t)i);
        p[i] = (int32_t)(seed % (V - 1)); // never the end token
    }
}

static void s_req(mesh_sched_request_t *r, const int32_t *prompt, int n, int max_tokens,
                  s_rx_t *rx) {
    mesh_sched_request_init(r);
    r->prompt = prompt;
    r->n_prompt = n;
    r->max_tokens = max_tokens;
    r->stop_at_eog = false;
    r->on_event = s_on_event;
    r->user = rx;
    memset(rx, 0, sizeof *rx);
}

static void s_run_idle(mesh_sched_t *s) {
    for (int guard = 0; guard < 10000; guard++) {
        int n = mesh_sched_step(s);
        assert_true(n >= 0);
        if (n == 0 && !mesh_sched_wait(s, 0))
            return;
    }
    fail_msg("scheduler did not go idle");
}

static void s_solo(const mesh_sched_request_t *r0, s_rx_t *rx) {
    mesh_sched_model_t m = s_model();
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, NULL, &s), 0);
    mesh_sched_request_t r = *r0;
    r.user = rx;
    memset(rx, 0, sizeof *rx);
    uint64_t id;
    assert_int_equal(mesh_sched_submit(s, &r, &id, NULL, 0), 0);
    s_run_idle(s);
    assert_true(rx->done);
    mesh_sched_destroy(&s);
    assert_null(s);
    assert_int_equal(s_fake.violations, 0);
}

static void test_batch_equals_solo(void **state) {
    (void)state;
    enum { N = 6 };
    static int32_t prompts[N][40];
    static s_rx_t solo[N], batch[N];
    mesh_sched_request_t req[N];
    for (int i = 0; i < N; i++) {
        int len = 3 + 7 * i;
        s_prompt(prompts[i], len, 100 + (uint64_t)i);
        s_req(&req[i], prompts[i], len, 12 + i, &batch[i]);
        if (i % 2) { // half sampled, seeded
            req[i].sampling.temperature = 0.8f;
            req[i].sampling.top_p = 0.9f;
            req[i].sampling.seed = 1000 + (uint64_t)i;
        }
        s_solo(&req[i], &solo[i]);
        assert_int_equal(solo[i].n_tokens, 12 + i);
    }
    mesh_sched_model_t m = s_model();
    mesh_sched_params_t p = {.step_tokens = 16};
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, &p, &s), 0);
    uint64_t id;
    // Two start; the rest join while those decode.
    for (int i = 0; i < 2; i++) {
        memset(&batch[i], 0, sizeof batch[i]);
        assert_int_equal(mesh_sched_submit(s, &req[i], &id, NULL, 0), 0);
    }
    for (int k = 0; k < 5; k++)
        assert_true(mesh_sched_step(s) > 0);
    int calls_before = s_fake.calls;
    for (int i = 2; i < N; i++) {
        memset(&batch[i], 0, sizeof batch[i]);
        assert_int_equal(mesh_sched_submit(s, &req[i], &id, NULL, 0), 0);
    }
    int steps = 0, max_seqs_in_call = 0;
    while (mesh_sched_wait(s, 0)) {
        assert_true(mesh_sched_step(s) > 0);
        steps++;
        if (s_fake.last_n_seqs > max_seqs_in_call)
            max_seqs_in_call = s_fake.last_n_seqs;
    }
    assert_int_equal(s_fake.calls - calls_before, steps); // one forward per step
    assert_int_equal(max_seqs_in_call, N);                // all in one pass
    assert_true(s_fake.max_n <= 16);                      // the step budget holds
    assert_int_equal(s_fake.violations, 0);
    for (int i = 0; i < N; i++) {
        assert_true(batch[i].done);
        assert_int_equal(batch[i].finish, MESH_SCHED_FINISH_LENGTH);
        assert_int_equal(batch[i].n_tokens, solo[i].n_tokens);
        assert_memory_equal(batch[i].tokens, solo[i].tokens,
                            (size_t)solo[i].n_tokens * sizeof(int32_t));
        assert_string_equal(batch[i].text, solo[i].text);
        assert_int_equal(batch[i].n_prompt, 3 + 7 * i);
        assert_int_equal(batch[i].n_gen, 12 + i);
    }
    mesh_sched_stats_t st;
    mesh_sched_stats(s, &st);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.kv_reserved_tokens, 0);
    uint64_t gen = 0, pr = 0;
    for (int i = 0; i < N; i++) {
        gen += (uint64_t)(12 + i);
        pr += (uint64_t)(3 + 7 * i);
    }
    assert_int_equal(st.gen_tokens, gen);
    assert_int_equal(st.prompt_tokens, pr);
    mesh_sched_destroy(&s);
    for (int i = 0; i < MAXSEQ; i++)
        assert_false(s_fake.live[i]);
}

static void test_prefill_chunks(void **state) {
    (void)state;
    int32_t prompt[100];
    s_prompt(prompt, 100, 9);
    s_rx_t rx, solo;
    mesh_sched_request_t r;
    s_req(&r, prompt, 100, 5, &rx);
    s_solo(&r, &solo); // default budget 512: one pass for the prompt
    mesh_sched_model_t m = s_model();
    mesh_sched_params_t p = {.step_tokens = 32};
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, &p, &s), 0);
    uint64_t id;
    assert_int_equal(mesh_sched_submit(s, &r, &id, NULL, 0), 0);
    assert_int_equal(mesh_sched_step(s), 32);
    assert_int_equal(mesh_sched_step(s), 32);
    assert_int_equal(mesh_sched_step(s), 32);
    assert_int_equal(rx.n_tokens, 0);
    assert_int_equal(mesh_sched_step(s), 4); // last chunk: first token sampled
    assert_int_equal(rx.n_tokens, 1);
    s_run_idle(s);
    assert_memory_equal(rx.tokens, solo.tokens, 5 * sizeof(int32_t));
    mesh_sched_destroy(&s);
}

static void test_cancel_frees_kv(void **state) {
    (void)state;
    int32_t prompt[10];
    s_prompt(prompt, 10, 5);
    s_rx_t a, b;
    mesh_sched_request_t ra, rb;
    s_req(&ra, prompt, 10, 100, &a);
    s_req(&rb, prompt, 10, 8, &b);
    mesh_sched_model_t m = s_model();
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, NULL, &s), 0);
    uint64_t ida, idb;
    assert_int_equal(mesh_sched_submit(s, &ra, &ida, NULL, 0), 0);
    assert_int_equal(mesh_sched_submit(s, &rb, &idb, NULL, 0), 0);
    for (int k = 0; k < 4; k++)
        assert_true(mesh_sched_step(s) > 0);
    mesh_sched_stats_t st;
    mesh_sched_stats(s, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.kv_reserved_tokens, 112 + 20); // whole blocks of 4
    assert_int_equal(mesh_sched_cancel(s, ida), 0);
    assert_int_equal(a.done, 0); // takes effect at the next step
    assert_true(mesh_sched_step(s) > 0);
    assert_true(a.done);
    assert_int_equal(a.finish, MESH_SCHED_FINISH_CANCEL);
    assert_int_equal(a.n_gen, 4);
    mesh_sched_stats(s, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.kv_reserved_tokens, 20);
    int live = 0;
    for (int i = 0; i < MAXSEQ; i++)
        live += s_fake.live[i];
    assert_int_equal(live, 1);
    assert_int_equal(mesh_sched_cancel(s, ida), MESH_ENOENT);
    assert_int_equal(mesh_sched_cancel(s, 12345), MESH_ENOENT);
    s_run_idle(s);
    assert_int_equal(b.finish, MESH_SCHED_FINISH_LENGTH);
    assert_int_equal(b.n_tokens, 8);
    mesh_sched_stats(s, &st);
    assert_int_equal(st.kv_reserved_tokens, 0);
    // Cancel while still queued: DONE without any token.
    s_req(&ra, prompt, 10, 5, &a);
    assert_int_equal(mesh_sched_submit(s, &ra, &ida, NULL, 0), 0);
    assert_int_equal(mesh_sched_cancel(s, ida), 0);
    mesh_sched_step(s);
    assert_true(a.done);
    assert_int_equal(a.finish, MESH_SCHED_FINISH_CANCEL);
    assert_int_equal(a.n_tokens, 0);
    assert_int_equal(s_fake.violations, 0);
    // Destroy cancels what is left.
    s_req(&ra, prompt, 10, 5, &a);
    assert_int_equal(mesh_sched_submit(s, &ra, &ida, NULL, 0), 0);
    mesh_sched_step(s);
    mesh_sched_destroy(&s);
    assert_true(a.done);
    assert_int_equal(a.finish, MESH_SCHED_FINISH_CANCEL);
}

static void test_kv_refusal_and_queue(void **state) {
    (void)state;
    static int32_t prompt[400];
    s_prompt(prompt, 400, 3);
    s_rx_t a, b;
    mesh_sched_request_t r;
    mesh_sched_model_t m = s_model();
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, NULL, &s), 0);
    uint64_t id = 77;
    char msg[256];
    s_req(&r, prompt, 200, 100, &a);
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_ENOSPACE);
    assert_int_equal(id, 0);
    assert_non_null(strstr(msg, "needs 300 tokens x 1000 B = 300000 B"));
    assert_non_null(strstr(msg, "holds 256 tokens"));
    s_req(&r, prompt, 150, 100, &a);
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_ERANGE);
    assert_non_null(strstr(msg, "context length is 200"));
    s_req(&r, prompt, 10, 0, &a);
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_EINVAL);
    prompt[5] = V;
    s_req(&r, prompt, 10, 5, &a);
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_EINVAL);
    assert_non_null(strstr(msg, "outside the vocabulary"));
    prompt[5] = 1;
    s_req(&r, prompt, 10, 5, &a);
    r.sampling.top_p = 2.0f;
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_EINVAL);
    assert_non_null(strstr(msg, "top_p"));
    s_req(&r, NULL, 0, 5, &a); // text, but this model has no encoder
    r.prompt_text = "hello";
    r.prompt_text_len = 5;
    assert_int_equal(mesh_sched_submit(s, &r, &id, msg, sizeof msg), MESH_EINVAL);
    assert_non_null(strstr(msg, "tokenizer"));

    // Two requests of 160 tokens each: the second waits for the first.
    mesh_sched_request_t ra, rb;
    s_req(&ra, prompt, 60, 100, &a);
    s_req(&rb, prompt + 1, 60, 100, &b);
    uint64_t ida, idb;
    assert_int_equal(mesh_sched_submit(s, &ra, &ida, NULL, 0), 0);
    assert_int_equal(mesh_sched_submit(s, &rb, &idb, NULL, 0), 0);
    assert_true(idb > ida);
    mesh_sched_step(s);
    mesh_sched_stats_t st;
    mesh_sched_stats(s, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.kv_reserved_tokens, 160);
    assert_int_equal(st.kv_bytes_per_token, 1000);
    while (!a.done)
        mesh_sched_step(s);
    assert_int_equal(b.n_tokens, 0);
    s_run_idle(s);
    assert_int_equal(a.n_tokens, 100);
    assert_int_equal(b.n_tokens, 100);
    assert_int_equal(s_fake.violations, 0);
    mesh_sched_destroy(&s);
}

static void test_stop_strings_and_eog(void **state) {
    (void)state;
    int32_t prompt[12];
    s_prompt(prompt, 12, 21);
    s_rx_t full, rx;
    mesh_sched_request_t r;
    s_req(&r, prompt, 12, 60, &full);
    s_solo(&r, &full);
    assert_int_equal((int)full.text_len, 60);
    // A stop string taken from the middle of the full text.
    char stop[4];
    memcpy(stop, full.text + 30, 3);
    stop[3] = 0;
    size_t first = (size_t)(strstr(full.text, stop) - full.text);
    const char *stops[] = {"never-there", stop};
    s_req(&r, prompt, 12, 60, &rx);
    r.stop = stops;
    r.n_stop = 2;
    s_solo(&r, &rx);
    assert_int_equal(rx.finish, MESH_SCHED_FINISH_STOP);
    assert_int_equal(rx.text_len, first);
    assert_memory_equal(rx.text, full.text, first);
    assert_int_equal(rx.n_gen, (int)first + 3); // the stop's tokens were generated

    // max_tokens: all the text, held-back tail included.
    const char *stops2[] = {"!!!!"};
    s_req(&r, prompt, 12, 60, &rx);
    r.stop = stops2;
    r.n_stop = 1;
    s_solo(&r, &rx);
    assert_int_equal(rx.finish, MESH_SCHED_FINISH_LENGTH);
    assert_string_equal(rx.text, full.text);

    // End token forced by a bias: ends at once, no token event.
    mesh_sampler_bias_t bias = {EOG, 1000.0f};
    s_req(&r, prompt, 12, 60, &rx);
    r.stop_at_eog = true;
    r.sampling.logit_bias = &bias;
    r.sampling.n_logit_bias = 1;
    s_solo(&r, &rx);
    assert_int_equal(rx.finish, MESH_SCHED_FINISH_STOP);
    assert_int_equal(rx.n_tokens, 0);
    assert_int_equal(rx.n_gen, 1);
    // Without stop_at_eog the end token is an ordinary token.
    s_req(&r, prompt, 12, 3, &rx);
    r.sampling.logit_bias = &bias;
    r.sampling.n_logit_bias = 1;
    s_solo(&r, &rx);
    assert_int_equal(rx.finish, MESH_SCHED_FINISH_LENGTH);
    assert_string_equal(rx.text, "!!!");
}

typedef struct {
    mesh_sched_t *s;
    int32_t *prompt;
    s_rx_t *rx;
    int n;
} s_submitter_t;

static void *s_submit_thread(void *arg) {
    s_submitter_t *t = arg;
    for (int i = 0; i < t->n; i++) {
        mesh_sched_request_t r;
        s_rx_t scratch; // s_req clears its rx; the main thread reads t->rx
        s_req(&r, t->prompt + i, 8, 10, &scratch);
        r.user = &t->rx[i]; // zeroed before the thread started
        uint64_t id;
        int rc;
        while ((rc = mesh_sched_submit(t->s, &r, &id, NULL, 0)) == MESH_EBUSY)
            ;
        assert_int_equal(rc, 0);
        if (i % 5 == 4)
            mesh_sched_cancel(t->s, id);
    }
    return NULL;
}

static void test_submit_from_another_thread(void **state) {
    (void)state;
    enum { N = 40 };
    static int32_t prompt[N + 8];
    static s_rx_t rx[N];
    s_prompt(prompt, N + 8, 77);
    memset(rx, 0, sizeof rx);
    mesh_sched_model_t m = s_model();
    mesh_sched_params_t p = {.max_queue = 8};
    mesh_sched_t *s = NULL;
    assert_int_equal(mesh_sched_new(&m, &p, &s), 0);
    s_submitter_t t = {s, prompt, rx, N};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_submit_thread, &t), 0);
    int finished = 0;
    for (int guard = 0; finished < N && guard < 1000000; guard++) {
        if (mesh_sched_wait(s, 10))
            assert_true(mesh_sched_step(s) >= 0);
        finished = 0;
        for (int i = 0; i < N; i++)
            finished += __atomic_load_n(&rx[i].done, __ATOMIC_SEQ_CST);
    }
    pthread_join(th, NULL);
    assert_int_equal(finished, N);
    for (int i = 0; i < N; i++)
        if (rx[i].finish == MESH_SCHED_FINISH_LENGTH)
            assert_int_equal(rx[i].n_tokens, 10);
    assert_int_equal(s_fake.violations, 0);
    mesh_sched_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_solo),
        cmocka_unit_test(test_prefill_chunks),
        cmocka_unit_test(test_cancel_frees_kv),
        cmocka_unit_test(test_kv_refusal_and_queue),
        cmocka_unit_test(test_stop_strings_and_eog),
        cmocka_unit_test(test_submit_from_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
