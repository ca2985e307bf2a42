// SPDX-License-Identifier: MIT
// CPU MLA absorbed attention over the paged latent cache.
//
// Per (token, head): scores against every cached row [c, k_pe] of the
// token's sequence up to its position, softmax, and the weighted sum of the
// latents c. The softmax is computed in chunks of S_CHUNK slots with running
// max/sum (exact up to rounding), so scratch is O(S_CHUNK) whatever the
// context. Cost: n * n_head * n_ctx * (d_kv + kv_lora) multiply-adds; each
// cache row is read once per head.
#include "cpu_impl.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <string.h>

#define S_CHUNK 64

static inline float s_dot(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    mesh_cpu_ctx_t *c;
    const mesh_mla_args_t *a;
} s_attn_args_t;

static void s_attn_task(void *pp, int ith, int nth) {
    s_attn_args_t *aa = pp;
    const mesh_mla_args_t *a = aa->a;
    const float *q = mesh__cpu_ptr(a->q);
    float *out = mesh__cpu_ptr(a->out);
    const mesh_attn_tok_t *toks = mesh__cpu_ptr(a->toks);
    const int32_t *tables = mesh__cpu_ptr(a->tables);
    const uint8_t *cache = mesh__cpu_ptr(a->cache);
    const size_t esz = a->cache_type == MESH_QT_F16 ? 2 : 4;
    float *tmp = aa->c->tscratch[ith]; // S_CHUNK * d_kv floats (checked at prepare)
    int64_t units = (int64_t)a->n * a->n_head;
    int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
    for (int64_t u = u0; u < u1; u++) {
        int t = (int)(u / a->n_head), h = (int)(u % a->n_head);
        const float *qh = q + ((int64_t)t * a->n_head + h) * a->d_kv;
        float *o = out + ((int64_t)t * a->n_head + h) * a->kv_lora;
        memset(o, 0, sizeof(float) * (size_t)a->kv_lora);
        float m = -INFINITY, l = 0;
        const int n_ctx = toks[t].n_ctx;
        const int32_t *tab = tables + toks[t].table_off;
        for (int s0 = 0; s0 < n_ctx; s0 += S_CHUNK) {
            int cn = n_ctx - s0 < S_CHUNK ? n_ctx - s0 : S_CHUNK;
            float sc[S_CHUNK];
            const float *rows[S_CHUNK];
            float cmax = -INFINITY;
            for (int j = 0; j < cn; j++) {
                int s = s0 + j;
                size_t idx = ((size_t)tab[s / a->block_tokens] * (size_t)a->n_layer +
                              (size_t)a->layer) * (size_t)a->block_tokens +
                             (size_t)(s % a->block_tokens);
                const uint8_t *row = cache + idx * (size_t)a->d_kv * esz;
                if (esz == 2) {
                    float *r = tmp + (int64_t)j * a->d_kv;
                    const uint16_t *hr = (const uint16_t *)row;
                    for (int i = 0; i < a->d_kv; i++)
                        r[i] = mesh_fp16_to_f32(hr[i]);
                    rows[j] = r;
                } else {
                    rows[j] = (const float *)row;
                }
                sc[j] = s_dot(qh, rows[j], a->d_kv) * a->scale;
                if (sc[j] > cmax)
                    cmax = sc[j];
            }
            float nm = cmax > m ? cmax : m;
            float r = expf(m - nm); // 0 on the first chunk (m = -inf)
            l *= r;
            for (int i = 0; i < a->kv_lora; i++)
                o[i] *= r;
            for (int j = 0; j < cn; j++) {
                float p = expf(sc[j] - nm);
                l += p;
                const float *cr = rows[j];
                for (int i = 0; i < a->kv_lora; i++)
                    o[i] += p * cr[i];
            }
            m = nm;
        }
        float inv = l > 0 ? 1.0f / l : 0.0f;
        for (int i = 0; i < a->kv_lora; i++)
            o[i] *= inv;
    }
}

int mesh__cpu_mla_attn(void *ctx, const mesh_mla_args_t *a) {
    mesh_cpu_ctx_t *c = ctx;
    if ((int64_t)S_CHUNK * a->d_kv > c->tcap)
        return MESH_EUNSUPPORTED; // latent rows wider than the scratch allows
    s_attn_args_t aa = {c, a};
    mesh_tp_run(c->tp, s_attn_task, &aa);
    return 0;
}
