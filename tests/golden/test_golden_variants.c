// SPDX-License-Identifier: MIT
// deepseek2 models with other hyperparameters than the test files: each
// variant is written as a GGUF with random weights (mesh_gguf_writer), run
// through the engine, and compared with an independent naive reference in
// double precision written here the textbook way: un-absorbed MLA (k and v
// expanded per head from the latent with k_b / v_b, plain causal attention
// over the whole sequence, no cache), a plain MoE loop. Variants cover head
// counts, ranks, expert counts, two shared experts, none, no weight
// normalisation, more dense layers, no q_lora, softmax gating, old-style key
// names, widths that are not multiples of 8 (scalar kernel paths), and
// f32 / bf16 / f16 weights. Bound: mean abs error < 1e-3 and argmax 100%.
#include "engine.h"
#include "gguf.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct {
    const char *label;
    int n_layer, n_dense, E, V, H, q_lora, kv_lora, nope, rope, dv, n_ff;
    int n_exp, n_used, n_shared, n_ff_exp;
    int gating;      // 1 softmax, 2 sigmoid; 0: leave the key out (softmax by default)
    bool w_norm;
    float w_scale;
    bool sel_bias;
    bool old_keys;   // key_length/value_length instead of the _mla keys
    uint32_t wtype;  // weight type of the matrices
    float yarn_factor;   // > 0: YaRN context extension by this factor
    int yarn_orig_ctx;   // its original training context
    float yarn_log_mul;  // rope.scaling.yarn_log_multiplier (attention mscale)
} s_cfg_t;

#define S_MAXT 256
typedef struct {
    char name[64];
    uint32_t type;
    int nd;
    uint64_t ne[3];
    float *v; // values exactly as stored (after rounding to the type)
} s_tensor_t;

typedef struct {
    s_tensor_t t[S_MAXT];
    int n;
    uint32_t rng;
} s_model_t;

static float s_rand(s_model_t *m) {
    m->rng = m->rng * 1664525u + 1013904223u;
    return ((float)(m->rng >> 8) / (float)(1u << 24)) * 2.0f - 1.0f;
}

static void s_add(s_model_t *m, uint32_t type, float amp, float base, int nd, uint64_t ne0,
                  uint64_t ne1, uint64_t ne2, const char *fmt, ...) {
    s_tensor_t *t = &m->t[m->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->type = type;
    t->nd = nd;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    size_t n = (size_t)(ne0 * ne1 * ne2);
    t->v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        float x = base + amp * s_rand(m);
        if (type == MESH_QT_BF16)
            x = mesh_bf16_to_f32(mesh_f32_to_bf16(x));
        else if (type == MESH_QT_F16)
            x = mesh_fp16_to_f32(mesh_f32_to_fp16(x));
        t->v[i] = x;
    }
}

static const float *s_get(const s_model_t *m, const char *fmt, ...) {
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name))
            return m->t[i].v;
    return NULL;
}

static void s_build(const s_cfg_t *c, s_model_t *m) {
    const uint32_t W = c->wtype, F = MESH_QT_F32;
    const int dq = c->nope + c->rope;
    s_add(m, W, 1.0f, 0, 2, c->E, c->V, 1, "token_embd.weight");
    s_add(m, F, 0.2f, 1.0f, 1, c->E, 1, 1, "output_norm.weight");
    s_add(m, W, 1.0f / sqrtf((float)c->E), 0, 2, c->E, c->V, 1, "output.weight");
    for (int l = 0; l < c->n_layer; l++) {
        float ie = 1.0f / sqrtf((float)c->E);
        s_add(m, F, 0.2f, 1.0f, 1, c->E, 1, 1, "blk.%d.attn_norm.weight", l);
        if (c->q_lora) {
            s_add(m, W, ie, 0, 2, c->E, c->q_lora, 1, "blk.%d.attn_q_a.weight", l);
            s_add(m, F, 0.2f, 1.0f, 1, c->q_lora, 1, 1, "blk.%d.attn_q_a_norm.weight", l);
            s_add(m, W, 1.0f / sqrtf((float)c->q_lora), 0, 2, c->q_lora, c->H * dq, 1,
                  "blk.%d.attn_q_b.weight", l);
        } else {
            s_add(m, W, ie, 0, 2, c->E, c->H * dq, 1, "blk.%d.attn_q.weight", l);
        }
        s_add(m, W, ie, 0, 2, c->E, c->kv_lora + c->rope, 1, "blk.%d.attn_kv_a_mqa.weight", l);
        s_add(m, F, 0.2f, 1.0f, 1, c->kv_lora, 1, 1, "blk.%d.attn_kv_a_norm.weight", l);
        s_add(m, W, 1.0f / sqrtf((float)c->kv_lora), 0, 3, c->nope, c->kv_lora, c->H,
              "blk.%d.attn_k_b.weight", l);
        s_add(m, W, 1.0f / sqrtf((float)c->kv_lora), 0, 3, c->kv_lora, c->dv, c->H,
              "blk.%d.attn_v_b.weight", l);
        s_add(m, W, 1.0f / sqrtf((float)(c->H * c->dv)), 0, 2, c->H * c->dv, c->E, 1,
              "blk.%d.attn_output.weight", l);
        s_add(m, F, 0.2f, 1.0f, 1, c->E, 1, 1, "blk.%d.ffn_norm.weight", l);
        if (l < c->n_dense) {
            s_add(m, W, ie, 0, 2, c->E, c->n_ff, 1, "blk.%d.ffn_gate.weight", l);
            s_add(m, W, ie, 0, 2, c->E, c->n_ff, 1, "blk.%d.ffn_up.weight", l);
            s_add(m, W, 1.0f / sqrtf((float)c->n_ff), 0, 2, c->n_ff, c->E, 1,
                  "blk.%d.ffn_down.weight", l);
        } else {
            int fs = c->n_ff_exp * c->n_shared;
            s_add(m, F, 2.0f * ie, 0, 2, c->E, c->n_exp, 1, "blk.%d.ffn_gate_inp.weight", l);
            if (c->sel_bias)
                s_add(m, F, 0.1f, 0, 1, c->n_exp, 1, 1, "blk.%d.exp_probs_b.bias", l);
            s_add(m, W, ie, 0, 3, c->E, c->n_ff_exp, c->n_exp, "blk.%d.ffn_gate_exps.weight", l);
            s_add(m, W, ie, 0, 3, c->E, c->n_ff_exp, c->n_exp, "blk.%d.ffn_up_exps.weight", l);
            s_add(m, W, 1.0f / sqrtf((float)c->n_ff_exp), 0, 3, c->n_ff_exp, c->E, c->n_exp,
                  "blk.%d.ffn_down_exps.weight", l);
            if (fs) {
                s_add(m, W, ie, 0, 2, c->E, fs, 1, "blk.%d.ffn_gate_shexp.weight", l);
                s_add(m, W, ie, 0, 2, c->E, fs, 1, "blk.%d.ffn_up_shexp.weight", l);
                s_add(m, W, 1.0f / sqrtf((float)fs), 0, 2, fs, c->E, 1,
                      "blk.%d.ffn_down_shexp.weight", l);
            }
        }
    }
}

// Knobs for the refusal tests: a wrong architecture, a key or tensor left
// out, one tensor written with a wrong shape or under another name.
static const char *s_bad_arch, *s_drop_key, *s_drop_tensor, *s_bad_shape, *s_rename_from,
    *s_rename_to;

static void s_write(const s_cfg_t *c, const s_model_t *m, const char *path) {
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    assert_non_null(w);
    mesh_gguf_writer_set_str(w, "general.architecture", s_bad_arch ? s_bad_arch : "deepseek2");
    mesh_gguf_writer_set_str(w, "general.name", c->label);
    mesh_gguf_writer_set_u32(w, "deepseek2.block_count", (uint32_t)c->n_layer);
    mesh_gguf_writer_set_u32(w, "deepseek2.context_length", 512);
    mesh_gguf_writer_set_u32(w, "deepseek2.embedding_length", (uint32_t)c->E);
    mesh_gguf_writer_set_u32(w, "deepseek2.feed_forward_length", (uint32_t)c->n_ff);
    mesh_gguf_writer_set_u32(w, "deepseek2.attention.head_count", (uint32_t)c->H);
    if (c->q_lora)
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.q_lora_rank", (uint32_t)c->q_lora);
    mesh_gguf_writer_set_u32(w, "deepseek2.attention.kv_lora_rank", (uint32_t)c->kv_lora);
    mesh_gguf_writer_set_u32(w, "deepseek2.rope.dimension_count", (uint32_t)c->rope);
    mesh_gguf_writer_set_f32(w, "deepseek2.rope.freq_base", 10000.0f);
    if (c->yarn_factor > 0) {
        mesh_gguf_writer_set_str(w, "deepseek2.rope.scaling.type", "yarn");
        mesh_gguf_writer_set_f32(w, "deepseek2.rope.scaling.factor", c->yarn_factor);
        mesh_gguf_writer_set_u32(w, "deepseek2.rope.scaling.original_context_length",
                                 (uint32_t)c->yarn_orig_ctx);
        mesh_gguf_writer_set_f32(w, "deepseek2.rope.scaling.yarn_log_multiplier", c->yarn_log_mul);
    }
    if (c->old_keys) {
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(c->nope + c->rope));
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.value_length", (uint32_t)c->dv);
    } else {
        // As GLM-4.7-Flash files: key_length is the absorbed width, _mla the per-head one.
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.key_length", (uint32_t)(c->kv_lora + c->rope));
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.value_length", (uint32_t)c->kv_lora);
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.key_length_mla", (uint32_t)(c->nope + c->rope));
        mesh_gguf_writer_set_u32(w, "deepseek2.attention.value_length_mla", (uint32_t)c->dv);
    }
    mesh_gguf_writer_set_f32(w, "deepseek2.attention.layer_norm_rms_epsilon", 1e-5f);
    mesh_gguf_writer_set_u32(w, "deepseek2.leading_dense_block_count", (uint32_t)c->n_dense);
    mesh_gguf_writer_set_u32(w, "deepseek2.expert_count", (uint32_t)c->n_exp);
    mesh_gguf_writer_set_u32(w, "deepseek2.expert_used_count", (uint32_t)c->n_used);
    mesh_gguf_writer_set_u32(w, "deepseek2.expert_shared_count", (uint32_t)c->n_shared);
    mesh_gguf_writer_set_u32(w, "deepseek2.expert_feed_forward_length", (uint32_t)c->n_ff_exp);
    mesh_gguf_writer_set_f32(w, "deepseek2.expert_weights_scale", c->w_scale);
    mesh_gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", c->w_norm);
    if (c->gating)
        mesh_gguf_writer_set_u32(w, "deepseek2.expert_gating_func", (uint32_t)c->gating);
    if (s_drop_key) { // rewrite the file's keys without it: simplest is a fresh writer
        mesh_gguf_writer_t *w2 = mesh_gguf_writer_new();
        mesh_gguf_writer_set_str(w2, "general.architecture", "deepseek2");
        mesh_gguf_writer_set_u32(w2, "deepseek2.embedding_length", (uint32_t)c->E);
        mesh_gguf_writer_destroy(&w);
        w = w2;
    }
    int64_t idx[S_MAXT];
    for (int i = 0; i < m->n; i++) {
        idx[i] = -1;
        const char *name = m->t[i].name;
        if (s_drop_tensor && !strcmp(name, s_drop_tensor))
            continue;
        if (s_rename_from && !strcmp(name, s_rename_from))
            name = s_rename_to;
        uint64_t ne[3] = {m->t[i].ne[0], m->t[i].ne[1], m->t[i].ne[2]};
        if (s_bad_shape && !strcmp(name, s_bad_shape)) { // same bytes, other split
            ne[0] *= 2;
            ne[1] /= 2;
        }
        idx[i] = mesh_gguf_writer_add_tensor(w, name, m->t[i].type, (uint32_t)m->t[i].nd, ne);
        assert_true(idx[i] >= 0);
    }
    assert_int_equal(mesh_gguf_writer_begin(w, path), 0);
    for (int i = 0; i < m->n; i++) {
        const s_tensor_t *t = &m->t[i];
        if (idx[i] < 0)
            continue;
        size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2]);
        size_t bytes = mesh_qtype_row_size(t->type, (int64_t)t->ne[0]) * (n / t->ne[0]);
        void *buf = malloc(bytes);
        mesh_qtype_traits(t->type)->from_float(t->v, buf, (int64_t)n);
        assert_int_equal(mesh_gguf_writer_write_data(w, idx[i], buf, bytes), 0);
        free(buf);
    }
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
}

// ---- naive reference, double precision ----
static void s_rms(const double *x, int n, const float *w, double eps, double *y) {
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double inv = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        y[i] = x[i] * inv * w[i];
}
// y[r] = sum_k W[r*in + k] x[k]
static void s_mv(const float *W, int in, int out, const double *x, double *y) {
    for (int r = 0; r < out; r++) {
        double s = 0;
        for (int k = 0; k < in; k++)
            s += (double)W[(size_t)r * in + k] * x[k];
        y[r] = s;
    }
}
// YaRN (arXiv 2309.00071) as GGUF files describe it: pair i keeps its
// angle when its wavelength is short (i <= lo), is divided by the factor when
// long (i >= hi), with a linear ramp between; lo/hi are the dims where the
// original context holds beta_fast = 32 and beta_slow = 1 full turns.
static double s_yarn_dim(int R, int orig, double beta) {
    return R * log(orig / (beta * 2 * M_PI)) / (2 * log(10000.0));
}
static void s_rope(const s_cfg_t *c, double *x, int R, int pos) {
    double lo = 0, hi = 0;
    if (c->yarn_factor > 0) {
        lo = fmax(0, floor(s_yarn_dim(R, c->yarn_orig_ctx, 32)));
        hi = fmin(R - 1, ceil(s_yarn_dim(R, c->yarn_orig_ctx, 1)));
    }
    for (int i = 0; i < R / 2; i++) {
        double th = pos * pow(10000.0, -2.0 * i / R);
        if (c->yarn_factor > 0) {
            double keep = 1 - fmin(1, fmax(0, (i - lo) / fmax(0.001, hi - lo)));
            th = th / c->yarn_factor * (1 - keep) + th * keep;
        }
        double a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * cos(th) - b * sin(th);
        x[2 * i + 1] = a * sin(th) + b * cos(th);
    }
}
static double s_silu(double x) {
    return x / (1 + exp(-x));
}

static void s_swiglu_ffn(const float *g, const float *u, const float *d, int E, int F,
                         const double *x, double *y) {
    double *a = calloc((size_t)F, sizeof(double)), *b = calloc((size_t)F, sizeof(double));
    s_mv(g, E, F, x, a);
    s_mv(u, E, F, x, b);
    for (int i = 0; i < F; i++)
        a[i] = s_silu(a[i]) * b[i];
    s_mv(d, F, E, a, y);
    free(a);
    free(b);
}

// logits [T][V] for the whole sequence.
static void s_reference(const s_cfg_t *c, const s_model_t *m, const int32_t *tok, int T,
                        double *logits) {
    const int E = c->E, H = c->H, L = c->kv_lora, R = c->rope, N = c->nope, dq = N + R;
    double *x = calloc((size_t)T * E, sizeof(double));
    double *xn = calloc((size_t)E, sizeof(double));
    double *q = calloc((size_t)T * H * dq, sizeof(double));
    double *kn = calloc((size_t)T * H * N, sizeof(double)); // expanded k_nope
    double *vv = calloc((size_t)T * H * c->dv, sizeof(double));
    double *kpe = calloc((size_t)T * R, sizeof(double));
    double *tmp = calloc(4096, sizeof(double)), *tmp2 = calloc(4096, sizeof(double));
    double *o = calloc((size_t)H * c->dv, sizeof(double)), *sc = calloc((size_t)T, sizeof(double));
    const float *emb = s_get(m, "token_embd.weight");
    for (int t = 0; t < T; t++)
        for (int i = 0; i < E; i++)
            x[(size_t)t * E + i] = emb[(size_t)tok[t] * E + i];
    double scale = 1.0 / sqrt((double)dq);
    if (c->yarn_factor > 0) { // DeepSeek-V2: mscale^2 on the softmax scale
        double ms = 1 + c->yarn_log_mul * log(c->yarn_factor);
        scale *= ms * ms;
    }
    for (int l = 0; l < c->n_layer; l++) {
        const float *kb = s_get(m, "blk.%d.attn_k_b.weight", l), *vb = s_get(m, "blk.%d.attn_v_b.weight", l);
        for (int t = 0; t < T; t++) {
            s_rms(x + (size_t)t * E, E, s_get(m, "blk.%d.attn_norm.weight", l), 1e-5, xn);
            if (c->q_lora) {
                s_mv(s_get(m, "blk.%d.attn_q_a.weight", l), E, c->q_lora, xn, tmp);
                s_rms(tmp, c->q_lora, s_get(m, "blk.%d.attn_q_a_norm.weight", l), 1e-5, tmp2);
                s_mv(s_get(m, "blk.%d.attn_q_b.weight", l), c->q_lora, H * dq, tmp2, q + (size_t)t * H * dq);
            } else {
                s_mv(s_get(m, "blk.%d.attn_q.weight", l), E, H * dq, xn, q + (size_t)t * H * dq);
            }
            for (int h = 0; h < H; h++)
                s_rope(c, q + ((size_t)t * H + h) * dq + N, R, t);
            s_mv(s_get(m, "blk.%d.attn_kv_a_mqa.weight", l), E, L + R, xn, tmp);
            s_rms(tmp, L, s_get(m, "blk.%d.attn_kv_a_norm.weight", l), 1e-5, tmp2); // c
            for (int i = 0; i < R; i++)
                kpe[(size_t)t * R + i] = tmp[L + i];
            s_rope(c, kpe + (size_t)t * R, R, t);
            for (int h = 0; h < H; h++) {
                for (int i = 0; i < N; i++) { // k_nope = k_b[h]^T c
                    double s = 0;
                    for (int j = 0; j < L; j++)
                        s += (double)kb[((size_t)h * L + j) * N + i] * tmp2[j];
                    kn[((size_t)t * H + h) * N + i] = s;
                }
                for (int i = 0; i < c->dv; i++) { // v = v_b[h] c
                    double s = 0;
                    for (int j = 0; j < L; j++)
                        s += (double)vb[((size_t)h * c->dv + i) * L + j] * tmp2[j];
                    vv[((size_t)t * H + h) * c->dv + i] = s;
                }
            }
        }
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < H; h++) {
                const double *qh = q + ((size_t)t * H + h) * dq;
                double mx = -1e300, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < N; i++)
                        d += qh[i] * kn[((size_t)s * H + h) * N + i];
                    for (int i = 0; i < R; i++)
                        d += qh[N + i] * kpe[(size_t)s * R + i];
                    sc[s] = d * scale;
                    mx = fmax(mx, sc[s]);
                }
                for (int s = 0; s <= t; s++)
                    sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < c->dv; i++) {
                    double a = 0;
                    for (int s = 0; s <= t; s++)
                        a += sc[s] / sum * vv[((size_t)s * H + h) * c->dv + i];
                    o[h * c->dv + i] = a;
                }
            }
            s_mv(s_get(m, "blk.%d.attn_output.weight", l), H * c->dv, E, o, tmp);
            for (int i = 0; i < E; i++)
                x[(size_t)t * E + i] += tmp[i];
        }
        for (int t = 0; t < T; t++) {
            double *xt = x + (size_t)t * E;
            s_rms(xt, E, s_get(m, "blk.%d.ffn_norm.weight", l), 1e-5, xn);
            double *y = calloc((size_t)E, sizeof(double)), *ye = calloc((size_t)E, sizeof(double));
            if (l < c->n_dense) {
                s_swiglu_ffn(s_get(m, "blk.%d.ffn_gate.weight", l), s_get(m, "blk.%d.ffn_up.weight", l),
                             s_get(m, "blk.%d.ffn_down.weight", l), E, c->n_ff, xn, y);
            } else {
                double lg[64], p[64];
                s_mv(s_get(m, "blk.%d.ffn_gate_inp.weight", l), E, c->n_exp, xn, lg);
                if (c->gating == 2) {
                    for (int e = 0; e < c->n_exp; e++)
                        p[e] = 1 / (1 + exp(-lg[e]));
                } else {
                    double mx = -1e300, s = 0;
                    for (int e = 0; e < c->n_exp; e++)
                        mx = fmax(mx, lg[e]);
                    for (int e = 0; e < c->n_exp; e++)
                        s += (p[e] = exp(lg[e] - mx));
                    for (int e = 0; e < c->n_exp; e++)
                        p[e] /= s;
                }
                const float *bias = s_get(m, "blk.%d.exp_probs_b.bias", l);
                int chosen[64];
                bool used[64] = {0};
                double wsum = 0;
                for (int k = 0; k < c->n_used; k++) {
                    int best = -1;
                    for (int e = 0; e < c->n_exp; e++) {
                        double v = p[e] + (bias ? bias[e] : 0);
                        double bv = best < 0 ? 0 : p[best] + (bias ? bias[best] : 0);
                        if (!used[e] && (best < 0 || v > bv))
                            best = e;
                    }
                    used[best] = true;
                    chosen[k] = best;
                    wsum += p[best];
                }
                const float *g = s_get(m, "blk.%d.ffn_gate_exps.weight", l),
                            *u = s_get(m, "blk.%d.ffn_up_exps.weight", l),
                            *d = s_get(m, "blk.%d.ffn_down_exps.weight", l);
                size_t me = (size_t)E * c->n_ff_exp;
                for (int k = 0; k < c->n_used; k++) {
                    int e = chosen[k];
                    double w = p[e] / (c->w_norm ? wsum : 1.0) * c->w_scale;
                    s_swiglu_ffn(g + e * me, u + e * me, d + e * me, E, c->n_ff_exp, xn, ye);
                    for (int i = 0; i < E; i++)
                        y[i] += w * ye[i];
                }
                if (c->n_shared) {
                    s_swiglu_ffn(s_get(m, "blk.%d.ffn_gate_shexp.weight", l),
                                 s_get(m, "blk.%d.ffn_up_shexp.weight", l),
                                 s_get(m, "blk.%d.ffn_down_shexp.weight", l), E,
                                 c->n_ff_exp * c->n_shared, xn, ye);
                    for (int i = 0; i < E; i++)
                        y[i] += ye[i];
                }
            }
            for (int i = 0; i < E; i++)
                xt[i] += y[i];
            free(y);
            free(ye);
        }
    }
    for (int t = 0; t < T; t++) {
        s_rms(x + (size_t)t * E, E, s_get(m, "output_norm.weight"), 1e-5, xn);
        s_mv(s_get(m, "output.weight"), E, c->V, xn, logits + (size_t)t * c->V);
    }
    free(x);
    free(xn);
    free(q);
    free(kn);
    free(vv);
    free(kpe);
    free(tmp);
    free(tmp2);
    free(o);
    free(sc);
}

static void s_run_variant(const s_cfg_t *c, uint32_t seed) {
    s_model_t *m = calloc(1, sizeof *m);
    m->rng = seed;
    s_build(c, m);
    char path[128];
    snprintf(path, sizeof path, "variant-%s-%d.gguf", c->label, (int)getpid());
    s_write(c, m, path);
    const int T = 40;
    int32_t tok[40];
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)((seed >> 3) * 31u + (uint32_t)t * 7919u) % c->V;
    double *ref = malloc(sizeof(double) * (size_t)T * c->V);
    s_reference(c, m, tok, T, ref);

    mesh_model_params_t p;
    mesh_model_params_default(&p);
    if (getenv("MESH_TEST_BACKEND")) // e.g. cuda: the same bounds on another backend
        p.backend = getenv("MESH_TEST_BACKEND");
    p.kv_tokens = 128;
    p.max_seqs = 2;
    p.max_batch = 16; // forces chunks
    char err[256] = "";
    mesh_model_t *mm = NULL;
    int rc = mesh_model_load(path, &p, &mm, err, sizeof err);
    if (rc)
        fprintf(stderr, "variant %s: %s\n", c->label, err);
    assert_int_equal(rc, 0);
    unlink(path);
    mesh_kv_t *kv = mesh_model_kv(mm);
    int32_t seq;
    assert_int_equal(mesh_kv_seq_new(kv, &seq), 0);
    mesh_batch_tok_t bt[40];
    for (int t = 0; t < T; t++)
        bt[t] = (mesh_batch_tok_t){tok[t], seq, t, true};
    float *got = malloc(sizeof(float) * (size_t)T * c->V);
    mesh_batch_t b = {T, bt};
    assert_int_equal(mesh_model_forward(mm, kv, &b, got), 0);
    double s = 0, mx = 0;
    int agree = 0;
    for (int t = 0; t < T; t++) {
        int ia = 0, ib = 0;
        for (int v = 0; v < c->V; v++) {
            double d = fabs(got[(size_t)t * c->V + v] - ref[(size_t)t * c->V + v]);
            s += d;
            mx = fmax(mx, d);
            if (got[(size_t)t * c->V + v] > got[(size_t)t * c->V + ia])
                ia = v;
            if (ref[(size_t)t * c->V + v] > ref[(size_t)t * c->V + ib])
                ib = v;
        }
        agree += ia == ib;
    }
    double mean = s / ((double)T * c->V);
    printf("variant %-12s: mean abs err %.2e, max %.2e, argmax %d/%d\n", c->label, mean, mx,
           agree, T);
    assert_true(mean < 1e-3);
    assert_int_equal(agree, T);
    free(got);
    free(ref);
    mesh_model_destroy(&mm);
    for (int i = 0; i < m->n; i++)
        free(m->t[i].v);
    free(m);
}

static void test_base(void **st) {
    (void)st;
    s_cfg_t c = {"base", 3, 1, 64, 97, 4, 32, 32, 16, 8, 16, 96, 8, 2, 1, 32, 2, true, 1.5f,
                 true, false, MESH_QT_F32, 0, 0, 0};
    s_run_variant(&c, 11);
}
static void test_no_qlora_softmax(void **st) {
    (void)st;
    // no q_lora, softmax gating, no weight normalisation, two shared experts,
    // two dense layers of four, no selection bias
    s_cfg_t c = {"noqlora-smax", 4, 2, 48, 71, 2, 0, 16, 24, 8, 8, 64, 6, 3, 2, 16, 1, false,
                 1.0f, false, false, MESH_QT_F32, 0, 0, 0};
    s_run_variant(&c, 23);
}
static void test_odd_widths_bf16(void **st) {
    (void)st;
    // widths not multiples of 8 (scalar paths), no shared expert, bf16 weights
    s_cfg_t c = {"odd-bf16", 2, 1, 40, 53, 3, 20, 12, 10, 6, 14, 36, 5, 3, 0, 12, 2, true, 2.5f,
                 true, false, MESH_QT_BF16, 0, 0, 0};
    s_run_variant(&c, 37);
}
static void test_old_keys_f16(void **st) {
    (void)st;
    // DeepSeek-V2 style key names, gating key absent (softmax), f16 weights,
    // more heads, larger ranks
    s_cfg_t c = {"oldkeys-f16", 2, 1, 64, 61, 8, 48, 64, 16, 16, 24, 64, 16, 6, 1, 16, 0, true,
                 1.0f, false, true, MESH_QT_F16, 0, 0, 0};
    s_run_variant(&c, 41);
}

static void test_yarn(void **st) {
    (void)st;
    // YaRN scaling (factor 4 over an original context of 16, so the 40
    // positions run past it and every ramp region is used); q_lora as GLM
    s_cfg_t c = {"yarn", 2, 1, 64, 89, 4, 32, 32, 16, 16, 16, 96, 8, 2, 1, 32, 2, true, 1.0f,
                 true, false, MESH_QT_F32, 4.0f, 16, 0.1f};
    s_run_variant(&c, 53);
}

// Bad files are refused with a one-line reason naming the problem.
static void s_expect_refusal(const char *want_in_err) {
    s_cfg_t c = {"bad", 2, 1, 64, 97, 4, 32, 32, 16, 8, 16, 96, 8, 2, 1, 32, 2, true, 1.5f,
                 true, false, MESH_QT_F32, 0, 0, 0};
    s_model_t *m = calloc(1, sizeof *m);
    m->rng = 5;
    s_build(&c, m);
    char path[128];
    snprintf(path, sizeof path, "variant-bad-%d.gguf", (int)getpid());
    s_write(&c, m, path);
    char err[256] = "";
    mesh_model_t *mm = NULL;
    int rc = mesh_model_load(path, NULL, &mm, err, sizeof err);
    unlink(path);
    printf("refused (%s): %s\n", mesh_errname(rc), err);
    assert_true(rc < 0);
    assert_null(mm);
    assert_non_null(strstr(err, want_in_err));
    assert_null(strchr(err, '\n'));
    for (int i = 0; i < m->n; i++)
        free(m->t[i].v);
    free(m);
    s_bad_arch = s_drop_key = s_drop_tensor = s_bad_shape = s_rename_from = s_rename_to = NULL;
}

static void test_refusals(void **st) {
    (void)st;
    s_bad_arch = "llama";
    s_expect_refusal("'llama'");
    s_drop_key = "deepseek2.block_count";
    s_expect_refusal("block_count");
    s_drop_tensor = "blk.1.attn_kv_a_norm.weight";
    s_expect_refusal("blk.1.attn_kv_a_norm.weight");
    s_bad_shape = "blk.0.attn_q_b.weight";
    s_expect_refusal("blk.0.attn_q_b.weight' has shape");
    s_rename_from = "blk.0.attn_k_b.weight";
    s_rename_to = "blk.0.attn_kv_b.weight";
    s_expect_refusal("attn_kv_b");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_no_qlora_softmax),
        cmocka_unit_test(test_odd_widths_bf16),
        cmocka_unit_test(test_old_keys_f16),
        cmocka_unit_test(test_yarn),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
