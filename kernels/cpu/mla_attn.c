// SPDX-License-Identifier: MIT
// CPU MLA absorbed attention over the paged latent cache.
//
// Per (token, head): scores against every cached row [c, k_pe] of the
// token's sequence up to its position, softmax, and the weighted sum of the
// latents c. The softmax is computed in chunks of 64 slots with running
// max/sum (exact up to rounding), so scratch is O(64 rows) whatever the
// context. Cost: n * n_head * n_ctx * (d_kv + kv_lora) multiply-adds; each
// cache row is read once per head. The inner loop has an AVX2 variant
// (mla_attn_avx2.c); the choice depends only on the CPU, never on the batch.
#include "cpu_features.h"
#include "cpu_impl.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <string.h>

#define S_CHUNK 64

typedef struct {
    const mesh_mla_args_t *a;
    const uint8_t *cache;
    const int32_t *tab;
    size_t esz;
    float *tmp; // S_CHUNK * d_kv floats for f16 rows
} s_rows_ctx_t;

// Pointers to cached rows [s0, s0 + cn) of one sequence (f16 rows converted).
static void s_get_rows(void *p, int s0, int cn, const float **rows) {
    s_rows_ctx_t *r = p;
    const mesh_mla_args_t *a = r->a;
    // Rows of one cache block are contiguous: one table lookup per block.
    const size_t rb = (size_t)a->d_kv * r->esz;
    const uint8_t *row = NULL;
    int in = s0 % a->block_tokens; // row within its block
    for (int j = 0; j < cn; j++, in++) {
        if (in == a->block_tokens)
            in = 0;
        if (j == 0 || in == 0) {
            size_t idx = ((size_t)r->tab[(s0 + j) / a->block_tokens] * (size_t)a->n_layer +
                          (size_t)a->layer) * (size_t)a->block_tokens + (size_t)in;
            row = r->cache + idx * rb;
        } else {
            row += rb;
        }
        if (r->esz == 2) {
            float *d = r->tmp + (int64_t)j * a->d_kv;
            const uint16_t *hr = (const uint16_t *)row;
            for (int i = 0; i < a->d_kv; i++)
                d[i] = mesh_fp16_to_f32(hr[i]);
            rows[j] = d;
        } else {
            rows[j] = (const float *)row;
        }
    }
}

static void s_head_scalar(const float *qh, float *o, int n_ctx, int d_kv, int kv_lora,
                          float scale, s_rows_ctx_t *rc) {
    memset(o, 0, sizeof(float) * (size_t)kv_lora);
    float m = -INFINITY, l = 0;
    for (int s0 = 0; s0 < n_ctx; s0 += S_CHUNK) {
        int cn = n_ctx - s0 < S_CHUNK ? n_ctx - s0 : S_CHUNK;
        const float *rows[S_CHUNK];
        float sc[S_CHUNK];
        s_get_rows(rc, s0, cn, rows);
        float cmax = -INFINITY;
        for (int j = 0; j < cn; j++) {
            float s = 0;
            for (int i = 0; i < d_kv; i++)
                s += qh[i] * rows[j][i];
            sc[j] = s * scale;
            cmax = sc[j] > cmax ? sc[j] : cmax;
        }
        float nm = cmax > m ? cmax : m;
        float r = expf(m - nm); // 0 on the first chunk (m = -inf)
        l *= r;
        for (int i = 0; i < kv_lora; i++)
            o[i] *= r;
        for (int j = 0; j < cn; j++) {
            float p = expf(sc[j] - nm);
            l += p;
            for (int i = 0; i < kv_lora; i++)
                o[i] += p * rows[j][i];
        }
        m = nm;
    }
    float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int i = 0; i < kv_lora; i++)
        o[i] *= inv;
}

typedef struct {
    mesh_cpu_ctx_t *c;
    const mesh_mla_args_t *a;
    int grp; // heads per work unit
} s_attn_args_t;

static void s_attn_task(void *pp, int ith, int nth) {
    s_attn_args_t *aa = pp;
    const mesh_mla_args_t *a = aa->a;
    const float *q = mesh__cpu_ptr(a->q);
    float *out = mesh__cpu_ptr(a->out);
    const mesh_attn_tok_t *toks = mesh__cpu_ptr(a->toks);
    const int32_t *tables = mesh__cpu_ptr(a->tables);
    s_rows_ctx_t rc = {a, mesh__cpu_ptr(a->cache), NULL, a->cache_type == MESH_QT_F16 ? 2 : 4,
                       aa->c->tscratch[ith]};
    const bool vec = aa->c->simd >= MESH_SIMD_AVX2 && a->d_kv % 8 == 0 && a->kv_lora % 8 == 0;
    // Units of (token, group of heads): whole groups when there are many
    // tokens (cache rows fetched once per group), single heads for decode so
    // threads share the heads. Per-head results do not depend on the grouping.
    const int grp = aa->grp;
    const int ngrp = (a->n_head + grp - 1) / grp;
    int64_t units = (int64_t)a->n * ngrp;
    // Strided split: later tokens attend to more positions, so contiguous
    // ranges would leave the last thread with most of a prompt's work.
    for (int64_t u = ith; u < units; u += nth) {
        int t = (int)(u / ngrp), h0 = (int)(u % ngrp) * grp;
        int nh = a->n_head - h0 < grp ? a->n_head - h0 : grp;
        const float *qh = q + ((int64_t)t * a->n_head + h0) * a->d_kv;
        float *o = out + ((int64_t)t * a->n_head + h0) * a->kv_lora;
        rc.tab = tables + toks[t].table_off;
#if defined(MESH_CPU_X86)
        if (vec) {
            mesh__cpu_attn_heads_avx2(qh, nh, a->d_kv, o, a->kv_lora, toks[t].n_ctx, a->d_kv,
                                      a->kv_lora, a->scale, s_get_rows, &rc);
            continue;
        }
#else
        (void)vec;
#endif
        for (int h = 0; h < nh; h++)
            s_head_scalar(qh + (int64_t)h * a->d_kv, o + (int64_t)h * a->kv_lora, toks[t].n_ctx,
                          a->d_kv, a->kv_lora, a->scale, &rc);
    }
}

int mesh__cpu_mla_attn(void *ctx, const mesh_mla_args_t *a) {
    mesh_cpu_ctx_t *c = ctx;
    if ((int64_t)S_CHUNK * a->d_kv > c->tcap)
        return MESH_EUNSUPPORTED; // latent rows wider than the scratch allows
    // Few tokens: the largest even group of heads that still splits evenly
    // over the threads (the AVX2 loop works on head pairs), else one head.
    int grp = MESH_ATTN_MAX_GROUP;
    if (a->n < 2 * c->n_threads) {
        grp = 1;
        for (int g = a->n_head / c->n_threads; g >= 2; g--) {
            int units = a->n * ((a->n_head + g - 1) / g);
            if (g % 2 == 0 && g <= MESH_ATTN_MAX_GROUP && units % c->n_threads == 0) {
                grp = g;
                break;
            }
        }
    }
    s_attn_args_t aa = {c, a, grp};
    int64_t work = (int64_t)a->n * a->n_head;
    mesh_tp_run_n(c->tp, work < 2 ? 1 : c->n_threads, s_attn_task, &aa);
    return 0;
}
