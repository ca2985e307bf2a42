// SPDX-License-Identifier: MIT
// Token sampler (see sampler.h for the chain and its semantics).
//
// Work arrays are sized for the vocabulary at creation: the candidate list
// (id + penalised logit), the per-token counts of the penalty window and the
// window ring itself. A draw is O(V): copy + bias + penalties, then
// quickselect for top-k, a sorted prefix for top-p (grown by doubling, so a
// peaked distribution sorts 64 entries and not 150k), a linear filter for
// min-p and a linear walk for the draw.
#include "sampler.h"

#include "mesh_err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t id;
    float logit; // after bias and penalties, before temperature
    float w;     // exp((logit - max) / temperature): unnormalised probability
} s_cand_t;

struct mesh_sampler {
    mesh_sampler_params_t params;
    mesh_sampler_bias_t *bias; // (n_logit_bias) owned copy
    int32_t vocab;
    uint64_t rng[4]; // xoshiro256** state

    s_cand_t *cands; // (vocab) work array
    // Penalty window: ring of the last `window` accepted tokens (window 0 when
    // penalty_last_n is -1: counts then grow over the whole history).
    int32_t *ring; // (window)
    int32_t window, ring_len, ring_head;
    int32_t *counts;   // (vocab) occurrences in the window
    int32_t *distinct; // (vocab) tokens with counts > 0, unordered
    int32_t *slot;     // (vocab) index of a token in distinct[], -1 if absent
    int32_t n_distinct;
};

// ---- RNG: splitmix64 seeding, xoshiro256** ------------------------------

static uint64_t s_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t s_rng_next(uint64_t st[4]) {
    uint64_t r = s_rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = s_rotl(st[3], 45);
    return r;
}

// Uniform in [0, 1) with 53 random bits.
static double s_rng_uniform(uint64_t st[4]) {
    return (double)(s_rng_next(st) >> 11) * 0x1.0p-53;
}

static void s_seed(mesh_sampler_t *s) {
    uint64_t x = s->params.seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = s_splitmix64(&x);
}

// ---- params -------------------------------------------------------------

mesh_sampler_params_t mesh_sampler_params_default(void) {
    mesh_sampler_params_t p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.penalty_last_n = 64;
    return p;
}

#define S_FAIL(...)                                                                        \
    do {                                                                                   \
        if (msg && msg_len)                                                                \
            snprintf(msg, msg_len, __VA_ARGS__);                                           \
        return MESH_EINVAL;                                                                \
    } while (0)

int mesh_sampler_params_check(const mesh_sampler_params_t *p, int32_t vocab, char *msg,
                              size_t msg_len) {
    if (!p)
        S_FAIL("sampler: no parameters");
    if (vocab <= 0)
        S_FAIL("sampler: vocabulary size %d must be positive", (int)vocab);
    if (!isfinite(p->temperature) || p->temperature > 100.0f)
        S_FAIL("sampler: temperature %g must be finite and <= 100", (double)p->temperature);
    if (p->top_k < 0)
        S_FAIL("sampler: top_k %d must be >= 0", (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        S_FAIL("sampler: top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        S_FAIL("sampler: min_p %g must be in [0, 1]", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || !isfinite(p->repetition_penalty))
        S_FAIL("sampler: repetition_penalty %g must be > 0", (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        S_FAIL("sampler: presence and frequency penalties must be finite");
    if (p->penalty_last_n < -1)
        S_FAIL("sampler: penalty_last_n %d must be -1, 0 or positive", (int)p->penalty_last_n);
    if (p->n_logprobs < 0 || p->n_logprobs > MESH_SAMPLER_MAX_LOGPROBS)
        S_FAIL("sampler: n_logprobs %d must be in 0..%d", (int)p->n_logprobs,
               MESH_SAMPLER_MAX_LOGPROBS);
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        S_FAIL("sampler: bad logit bias list");
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const mesh_sampler_bias_t *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= vocab)
            S_FAIL("sampler: logit bias token %d is outside the vocabulary (0..%d)",
                   (int)b->token, (int)vocab - 1);
        if (isnan(b->bias) || b->bias == INFINITY)
            S_FAIL("sampler: logit bias for token %d must be a number or -inf", (int)b->token);
    }
    return 0;
}

// ---- lifetime -----------------------------------------------------------

int mesh_sampler_new(const mesh_sampler_params_t *params, int32_t vocab, mesh_sampler_t **out) {
    *out = NULL;
    int rc = mesh_sampler_params_check(params, vocab, NULL, 0);
    if (rc)
        return rc;
    mesh_sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return MESH_ENOMEM;
    s->params = *params;
    s->vocab = vocab;
    s->window = params->penalty_last_n > 0 ? params->penalty_last_n : 0;
    size_t v = (size_t)vocab;
    s->cands = malloc(v * sizeof *s->cands);
    s->counts = calloc(v, sizeof *s->counts);
    s->distinct = malloc(v * sizeof *s->distinct);
    s->slot = malloc(v * sizeof *s->slot);
    if (s->window)
        s->ring = malloc((size_t)s->window * sizeof *s->ring);
    if (params->n_logit_bias) {
        s->bias = malloc((size_t)params->n_logit_bias * sizeof *s->bias);
        if (s->bias)
            memcpy(s->bias, params->logit_bias, (size_t)params->n_logit_bias * sizeof *s->bias);
    }
    if (!s->cands || !s->counts || !s->distinct || !s->slot || (s->window && !s->ring) ||
        (params->n_logit_bias && !s->bias)) {
        mesh_sampler_destroy(&s);
        return MESH_ENOMEM;
    }
    s->params.logit_bias = s->bias;
    for (size_t i = 0; i < v; i++)
        s->slot[i] = -1;
    s_seed(s);
    *out = s;
    return 0;
}

void mesh_sampler_destroy(mesh_sampler_t **s_p) {
    if (!s_p || !*s_p)
        return;
    mesh_sampler_t *s = *s_p;
    free(s->cands);
    free(s->counts);
    free(s->distinct);
    free(s->slot);
    free(s->ring);
    free(s->bias);
    free(s);
    *s_p = NULL;
}

const mesh_sampler_params_t *mesh_sampler_params(const mesh_sampler_t *s) { return &s->params; }

// ---- history ------------------------------------------------------------

static void s_count_add(mesh_sampler_t *s, int32_t t) {
    if (s->counts[t]++ == 0) {
        s->slot[t] = s->n_distinct;
        s->distinct[s->n_distinct++] = t;
    }
}

static void s_count_remove(mesh_sampler_t *s, int32_t t) {
    if (--s->counts[t] == 0) {
        int32_t i = s->slot[t];
        int32_t last = s->distinct[--s->n_distinct];
        s->distinct[i] = last;
        s->slot[last] = i;
        s->slot[t] = -1;
    }
}

void mesh_sampler_accept(mesh_sampler_t *s, int32_t token) {
    if (token < 0 || token >= s->vocab || s->params.penalty_last_n == 0)
        return;
    if (s->window) {
        if (s->ring_len == s->window) {
            s_count_remove(s, s->ring[s->ring_head]);
            s->ring[s->ring_head] = token;
            s->ring_head = (s->ring_head + 1) % s->window;
        } else {
            s->ring[(s->ring_head + s->ring_len) % s->window] = token;
            s->ring_len++;
        }
    }
    s_count_add(s, token);
}

void mesh_sampler_reset(mesh_sampler_t *s) {
    for (int32_t i = 0; i < s->n_distinct; i++) {
        s->counts[s->distinct[i]] = 0;
        s->slot[s->distinct[i]] = -1;
    }
    s->n_distinct = 0;
    s->ring_len = s->ring_head = 0;
    s_seed(s);
}

// ---- logit processing ---------------------------------------------------

static float s_penalise(const mesh_sampler_params_t *p, float l, int32_t count) {
    if (p->repetition_penalty != 1.0f)
        l = l > 0.0f ? l / p->repetition_penalty : l * p->repetition_penalty;
    return l - p->presence_penalty - p->frequency_penalty * (float)count;
}

void mesh_sampler_apply_penalties(const mesh_sampler_t *s, float *logits) {
    for (int32_t i = 0; i < s->params.n_logit_bias; i++)
        logits[s->bias[i].token] += s->bias[i].bias;
    for (int32_t i = 0; i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        logits[t] = s_penalise(&s->params, logits[t], s->counts[t]);
    }
}

// Descending by logit, ties by ascending id, so every order is total and
// the result does not depend on the input permutation.
static int s_before(const s_cand_t *a, const s_cand_t *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int s_cmp_desc(const void *pa, const void *pb) {
    const s_cand_t *a = pa, *b = pb;
    return s_before(a, b) ? -1 : s_before(b, a) ? 1 : 0;
}

static void s_swap(s_cand_t *a, s_cand_t *b) {
    s_cand_t t = *a;
    *a = *b;
    *b = t;
}

// Quickselect: reorders c[0..n) so that its k best (by s_before) come first,
// in no particular order. O(n) expected; pivot from the middle of three.
static void s_select(s_cand_t *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi && k > lo && k <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (s_before(&c[hi], &c[lo]))
            s_swap(&c[hi], &c[lo]);
        if (s_before(&c[mid], &c[lo]))
            s_swap(&c[mid], &c[lo]);
        if (s_before(&c[hi], &c[mid]))
            s_swap(&c[hi], &c[mid]);
        s_cand_t pivot = c[mid];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (s_before(&c[i], &pivot))
                i++;
            while (s_before(&pivot, &c[j]))
                j--;
            if (i <= j) {
                s_swap(&c[i], &c[j]);
                i++;
                j--;
            }
        }
        // Now c[lo..j] are all >= pivot-rank and c[i..hi] <= it.
        if (k <= j + 1)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

// Keeps the n best of out[] (sorted, best first) while scanning c[0..v).
// O(V * n) worst case, O(V) typical for n <= 20.
static void s_top_n(const s_cand_t *c, int32_t v, int32_t n, s_cand_t *out) {
    int32_t have = 0;
    for (int32_t i = 0; i < v; i++) {
        if (have == n && !s_before(&c[i], &out[n - 1]))
            continue;
        int32_t j = have < n ? have++ : n - 1;
        while (j > 0 && s_before(&c[i], &out[j - 1])) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = c[i];
    }
}

// A token's logprob in the raw distribution whose log-normaliser is log_z.
static float s_raw_logprob(const float *logits, int32_t id, double log_z) {
    float l = isnan(logits[id]) ? -INFINITY : logits[id];
    return (float)((double)l - log_z);
}

int mesh_sampler_sample(mesh_sampler_t *s, const float *logits, mesh_sampler_result_t *out) {
    const mesh_sampler_params_t *p = &s->params;
    s_cand_t *c = s->cands;
    int32_t v = s->vocab;

    // 1. Copy (NaN -> -inf).
    for (int32_t i = 0; i < v; i++) {
        c[i].id = i;
        c[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    }

    // 2. Logprobs, when asked, of the model's own distribution: log-softmax
    //    of these raw logits, before bias, penalties, temperature and
    //    truncation (see sampler.h). expf in float (cheap), summed in double;
    //    the top n over the same raw logits.
    double log_z = 0.0;
    bool want_lp = p->logprobs || p->n_logprobs > 0;
    if (want_lp) {
        float rmax = -INFINITY;
        for (int32_t i = 0; i < v; i++)
            rmax = c[i].logit > rmax ? c[i].logit : rmax;
        if (!(rmax > -INFINITY))
            return MESH_ERANGE; // bias and penalties cannot lift a -inf
        double z = 0.0;
        for (int32_t i = 0; i < v; i++)
            z += (double)expf(c[i].logit - rmax);
        log_z = (double)rmax + log(z);
    }
    out->n_top = p->n_logprobs < v ? p->n_logprobs : v;
    if (out->n_top > 0) {
        s_cand_t top[MESH_SAMPLER_MAX_LOGPROBS];
        s_top_n(c, v, out->n_top, top);
        for (int32_t i = 0; i < out->n_top; i++) {
            out->top[i].token = top[i].id;
            out->top[i].logprob = (float)((double)top[i].logit - log_z);
        }
    }

    // 3. Bias, penalties, argmax (ties: lowest id).
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        c[s->bias[i].token].logit += s->bias[i].bias;
    for (int32_t i = 0; i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        c[t].logit = s_penalise(p, c[t].logit, s->counts[t]);
    }
    int32_t best = 0;
    float lmax = c[0].logit;
    for (int32_t i = 1; i < v; i++)
        if (c[i].logit > lmax) {
            lmax = c[i].logit;
            best = i;
        }
    if (!(lmax > -INFINITY))
        return MESH_ERANGE;

    // Greedy.
    if (!(p->temperature > 0.0f)) {
        out->token = best;
        out->logprob = want_lp ? s_raw_logprob(logits, best, log_z) : 0.0f;
        return 0;
    }
    float inv_t = 1.0f / p->temperature;

    // 4. top-k: the k best first, unordered.
    int32_t n = v;
    if (p->top_k > 0 && p->top_k < n) {
        s_select(c, n, p->top_k);
        n = p->top_k;
    }
    for (int32_t i = 0; i < n; i++)
        c[i].w = expf((c[i].logit - lmax) * inv_t);

    // 5. top-p over the renormalised survivors: sort a prefix that doubles
    //    until its mass reaches top_p (or covers everything).
    if (p->top_p < 1.0f && n > 1) {
        double zt = 0.0;
        for (int32_t i = 0; i < n; i++)
            zt += (double)c[i].w;
        double target = (double)p->top_p * zt;
        int32_t m = n < 64 ? n : 64;
        int32_t done = 0; // c[0..done) already sorted and in final place
        for (;;) {
            s_select(c + done, n - done, m - done);
            qsort(c + done, (size_t)(m - done), sizeof *c, s_cmp_desc);
            double cum = 0.0;
            int32_t cut = -1;
            for (int32_t i = 0; i < m; i++) {
                cum += (double)c[i].w;
                if (cum >= target) {
                    cut = i + 1;
                    break;
                }
            }
            if (cut > 0) {
                n = cut;
                break;
            }
            if (m == n)
                break; // rounding: the whole set is needed
            done = m;
            m = m > n / 2 ? n : m * 2;
        }
    }

    // 6. min-p relative to the best survivor (which is the global best: every
    //    filter above keeps the best token).
    if (p->min_p > 0.0f && n > 1) {
        int32_t k = 0; // w of the best is 1, so p / p_max = w
        for (int32_t i = 0; i < n; i++)
            if (c[i].w >= p->min_p || c[i].logit == lmax)
                c[k++] = c[i];
        n = k; // >= 1: lmax itself passes
    }

    // 7. Draw.
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += (double)c[i].w;
    double u = s_rng_uniform(s->rng) * sum;
    int32_t pick = n - 1;
    double acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += (double)c[i].w;
        if (u < acc) {
            pick = i;
            break;
        }
    }
    // A zero-weight survivor can be picked only through rounding at the
    // tail; step back to one with weight.
    while (pick > 0 && !(c[pick].w > 0.0f))
        pick--;
    out->token = c[pick].id;
    out->logprob = want_lp ? s_raw_logprob(logits, c[pick].id, log_z) : 0.0f;
    return 0;
}
