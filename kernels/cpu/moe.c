// SPDX-License-Identifier: MIT
// CPU mixture of experts for one layer over a batch, in phases (one pool run
// each; the small ones on the caller alone):
//   1. router logits, gating (sigmoid/softmax), top-k by score + selection
//      bias, weights (unbiased scores, optionally normalised, scaled);
//   2. group (token, k) pairs by expert (counting sort, thread 0), quantize
//      each token's row once, and gather the quantized rows per expert;
//   3. gate/up + SwiGLU per expert over its whole group (a gemm), plus the
//      shared expert over all tokens; work units are row tiles;
//   4. down projections likewise;
//   5. per token: shared + sum_k w_k * expert_k in k order.
// Every token's result is computed by the same operations whatever else is in
// the batch. Cost: each chosen expert's weights are read once per call.
#include "cpu_impl.h"
#include "mesh_err.h"
#include "quant_dot.h"

#include <math.h>
#include <string.h>

typedef struct {
    mesh_cpu_ctx_t *c;
    const mesh_moe_args_t *a;
    // scratch views
    float *logit;    // [n][n_expert]
    int32_t *sel;    // [n][n_used] expert ids
    float *wsel;     // [n][n_used]
    int32_t *cnt;    // [n_expert]
    int32_t *start;  // [n_expert + 1]
    int32_t *pair;   // [n*n_used] grouped: index t*n_used+k
    int32_t *slot;   // [n*n_used] position of pair (t,k) in grouped order
    float *xg;       // [n*n_used][n_embd] gathered inputs
    float *hg;       // [n*n_used][n_ff] gate -> silu*up
    float *ug;       // [n*n_used][n_ff]
    float *yg;       // [n*n_used][n_embd]
    float *hs, *us;  // [n][n_ff_sh]
    float *ys;       // [n][n_embd]
    // Quantized activations for fused weights (NULL: that weight uses f32 rows).
    uint8_t *q_gx, *q_ux, *q_dh, *q_gs, *q_us, *q_ds;
    // Each token's input quantized once ([n] rows for gate_exps' / up_exps'
    // format), then gathered per (token, k) pair: quantizing the gathered rows
    // would repeat the same work n_used times.
    uint8_t *q_tg, *q_tu;
    bool own_gs, own_us; // shared expert inputs need their own quantization
    size_t a_gx, a_ux, a_dh, a_gs, a_us, a_ds; // their row bytes
    int phase;       // S_P_* being run
} s_moe_t;

// Phases, one pool run each (a run per phase rather than barriers inside
// one run lets the pool fall back to one thread on an oversubscribed machine).
enum { S_P_ROUTER, S_P_ROUTE, S_P_GROUP, S_P_GATHER, S_P_QUANT_IN, S_P_GATE_UP, S_P_QUANT_H,
       S_P_DOWN, S_P_COMBINE };

// Row bytes of w's activation format when w takes the fused path, else 0.
static size_t s_arow(const mesh_bweight_t *w) {
    return w && mesh__cpu_fused(w) ? mesh_cpu_act_row_size(w->type, w->ne[0]) : 0;
}

// One matmul over rows [r0, r1) of matrix m, fused when q is set (q holds the
// rows' quantized activations, row j at q + j * arow).
static void s_mm(mesh_cpu_ctx_t *c, const mesh_bweight_t *w, int m, int64_t r0, int64_t r1,
                 const float *x, int64_t x_stride, const uint8_t *q, size_t arow, int n, float *y,
                 int64_t y_stride, float *ws) {
    if (q)
        mesh__cpu_mm_rows_q(w, m, r0, r1, q, arow, n, y, y_stride);
    else
        mesh__cpu_mm_rows(c, w, m, r0, r1, x, x_stride, n, y, y_stride, ws);
}

static size_t s_al(size_t b) {
    return (b + 63) & ~(size_t)63;
}

size_t mesh__cpu_moe_scratch_bytes(void *ctx, int n, int n_embd, int n_ff, int n_ff_sh,
                                   int n_expert, int n_used) {
    (void)ctx;
    size_t p = (size_t)n * (size_t)n_used;
    return s_al(sizeof(float) * (size_t)n * (size_t)n_expert) + s_al(4 * p) * 4 +
           s_al(4 * ((size_t)n_expert + 1)) * 2 + s_al(4 * p * (size_t)n_embd) * 2 +
           s_al(4 * p * (size_t)n_ff) * 2 + s_al(4 * (size_t)n * (size_t)(n_ff_sh ? n_ff_sh : 1)) * 2 +
           s_al(4 * (size_t)n * (size_t)n_embd);
}

static void s_route(s_moe_t *s, int t) {
    const mesh_moe_args_t *a = s->a;
    const int E = a->n_expert, K = a->n_used;
    float *lg = s->logit + (int64_t)t * E;
    float sc[1024]; // n_expert <= 1024 checked by the caller
    if (a->gating == 2) {
        for (int e = 0; e < E; e++)
            sc[e] = 1.0f / (1.0f + expf(-lg[e]));
    } else {
        float mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++)
            mx = lg[e] > mx ? lg[e] : mx;
        for (int e = 0; e < E; e++)
            sum += (sc[e] = expf(lg[e] - mx));
        for (int e = 0; e < E; e++)
            sc[e] /= sum;
    }
    const float *bias = a->sel_bias ? mesh__cpu_ptr(a->sel_bias->data) : NULL;
    int32_t *sel = s->sel + (int64_t)t * K;
    float *w = s->wsel + (int64_t)t * K;
    uint8_t used[1024];
    memset(used, 0, (size_t)E);
    float wsum = 0;
    for (int k = 0; k < K; k++) { // K passes: K is small (4-8)
        int best = -1;
        float bv = -INFINITY;
        for (int e = 0; e < E; e++) {
            float v = bias ? sc[e] + bias[e] : sc[e];
            if (!used[e] && (best < 0 || v > bv)) {
                best = e;
                bv = v;
            }
        }
        used[best] = 1;
        sel[k] = best;
        w[k] = sc[best];
        wsum += sc[best];
    }
    for (int k = 0; k < K; k++) {
        if (a->norm_w)
            w[k] /= wsum;
        w[k] *= a->w_scale;
    }
}

static inline float s_silu(float x) {
    return x / (1.0f + expf(-x));
}

// Work split of the expert phases. Only experts with tokens count (with a
// split by expert index, top-4 of 64 at batch 1 often put all four chosen
// experts on one thread). A row tile of an expert with cnt tokens costs
// S_TILE_COST + cnt (reading the tile's weights ~ a few tokens' arithmetic);
// each thread takes the tiles whose cost start falls in its equal share.
// Which thread computes a row never changes the row's result.
#define S_TILE_COST 4

// Thread ith's cost range [lo, hi) over the active experts (and the shared
// one, as expert E with all n tokens, when sh_tiles > 0).
static void s_share(const s_moe_t *s, int64_t tiles, int64_t sh_tiles, int ith, int nth, int64_t *lo,
                    int64_t *hi) {
    const int E = s->a->n_expert;
    int64_t tot = 0;
    for (int e = 0; e < E; e++) {
        int cnt = s->start[e + 1] - s->start[e];
        if (cnt)
            tot += (S_TILE_COST + cnt) * tiles;
    }
    tot += (S_TILE_COST + s->a->n) * sh_tiles;
    *lo = tot * ith / nth;
    *hi = tot * (ith + 1) / nth;
}

// Tiles [j0, j1) of an expert whose tiles start at cost P, cost cu each,
// whose start cost P + j * cu lies in [lo, hi).
static void s_units(int64_t P, int64_t cu, int64_t tiles, int64_t lo, int64_t hi, int64_t *j0,
                    int64_t *j1) {
    int64_t a = lo <= P ? 0 : (lo - P + cu - 1) / cu;
    int64_t b = hi <= P ? 0 : (hi - P + cu - 1) / cu;
    *j0 = a < tiles ? a : tiles;
    *j1 = b < tiles ? b : tiles;
}

static void s_moe_task(void *pp, int ith, int nth) {
    s_moe_t *s = pp;
    const mesh_moe_args_t *a = s->a;
    mesh_cpu_ctx_t *c = s->c;
    const int n = a->n, E = a->n_expert, K = a->n_used, D = a->n_embd, F = a->n_ff;
    const float *x = mesh__cpu_ptr(a->x);
    float *ws = c->wscratch[ith];
    const int FS = a->gate_sh ? a->n_ff_sh : 0;
    const int64_t ftiles = (F + MESH_CPU_MR - 1) / MESH_CPU_MR;
    const int64_t stiles = (FS + MESH_CPU_MR - 1) / MESH_CPU_MR;
    const int64_t dtiles = (D + MESH_CPU_MR - 1) / MESH_CPU_MR;

    switch (s->phase) {
    case S_P_ROUTER: { // 1. router logits
        int64_t tiles = (E + MESH_CPU_MR - 1) / MESH_CPU_MR;
        int64_t t0 = tiles * ith / nth, t1 = tiles * (ith + 1) / nth;
        int64_t r1 = t1 * MESH_CPU_MR < E ? t1 * MESH_CPU_MR : E;
        if (t0 < t1)
            mesh__cpu_mm_rows(c, a->router, 0, t0 * MESH_CPU_MR, r1, x, D, n, s->logit, E, ws);
        break;
    }
    case S_P_ROUTE: // gating, top-k, weights
        for (int t = (int)((int64_t)n * ith / nth); t < (int)((int64_t)n * (ith + 1) / nth); t++)
            s_route(s, t);
        break;
    case S_P_GROUP: { // 2. group by expert (one thread: O(n * n_used))
        memset(s->cnt, 0, sizeof(int32_t) * (size_t)E);
        for (int i = 0; i < n * K; i++)
            s->cnt[s->sel[i]]++;
        s->start[0] = 0;
        for (int e = 0; e < E; e++)
            s->start[e + 1] = s->start[e] + s->cnt[e];
        memset(s->cnt, 0, sizeof(int32_t) * (size_t)E);
        for (int i = 0; i < n * K; i++) {
            int e = s->sel[i];
            int p = s->start[e] + s->cnt[e]++;
            s->pair[p] = i;
            s->slot[i] = p;
        }
        break;
    }
    case S_P_GATHER: // f32 rows only for a weight without the fused path
        for (int p = (int)((int64_t)n * K * ith / nth); p < (int)((int64_t)n * K * (ith + 1) / nth); p++) {
            int64_t t = s->pair[p] / K;
            if (!s->q_gx || !s->q_ux)
                memcpy(s->xg + (int64_t)p * D, x + t * D, sizeof(float) * (size_t)D);
            if (s->q_gx)
                memcpy(s->q_gx + (size_t)p * s->a_gx, s->q_tg + (size_t)t * s->a_gx, s->a_gx);
            if (s->q_ux && s->q_ux != s->q_gx)
                memcpy(s->q_ux + (size_t)p * s->a_ux, s->q_tu + (size_t)t * s->a_ux, s->a_ux);
        }
        break;
    case S_P_QUANT_IN:
        // Each token's row is quantized once per activation format in use.
        if (s->q_gx)
            mesh__cpu_quant_rows(a->gate_exps, x, D, n, s->q_tg, ith, nth);
        if (s->q_ux && s->q_tu != s->q_tg)
            mesh__cpu_quant_rows(a->up_exps, x, D, n, s->q_tu, ith, nth);
        if (s->own_gs)
            mesh__cpu_quant_rows(a->gate_sh, x, D, n, s->q_gs, ith, nth);
        if (s->own_us)
            mesh__cpu_quant_rows(a->up_sh, x, D, n, s->q_us, ith, nth);
        break;
    case S_P_GATE_UP: { // 3. gate/up (+ silu) per expert row tile; shared expert as one more
        int64_t lo, hi;
        s_share(s, ftiles, stiles, ith, nth, &lo, &hi);
        int64_t P = 0; // cost before the current expert's first tile
        for (int e = 0; e <= E; e++) {
            int cnt = e < E ? s->start[e + 1] - s->start[e] : n;
            int64_t tiles = e < E ? ftiles : stiles;
            if (!cnt || !tiles)
                continue;
            int64_t cu = S_TILE_COST + cnt, j0, j1;
            s_units(P, cu, tiles, lo, hi, &j0, &j1);
            P += cu * tiles;
            if (j0 >= j1)
                continue;
            if (e < E) {
                int64_t r0 = j0 * MESH_CPU_MR, r1 = j1 * MESH_CPU_MR < F ? j1 * MESH_CPU_MR : F;
                const float *xe = s->xg + (int64_t)s->start[e] * D;
                float *he = s->hg + (int64_t)s->start[e] * F, *ue = s->ug + (int64_t)s->start[e] * F;
                s_mm(c, a->gate_exps, e, r0, r1, xe, D,
                     s->q_gx ? s->q_gx + (size_t)s->start[e] * s->a_gx : NULL, s->a_gx, cnt, he, F, ws);
                s_mm(c, a->up_exps, e, r0, r1, xe, D,
                     s->q_ux ? s->q_ux + (size_t)s->start[e] * s->a_ux : NULL, s->a_ux, cnt, ue, F, ws);
                for (int j = 0; j < cnt; j++)
                    for (int64_t r = r0; r < r1; r++)
                        he[(int64_t)j * F + r] = s_silu(he[(int64_t)j * F + r]) * ue[(int64_t)j * F + r];
            } else {
                int64_t r0 = j0 * MESH_CPU_MR, r1 = j1 * MESH_CPU_MR < FS ? j1 * MESH_CPU_MR : FS;
                s_mm(c, a->gate_sh, 0, r0, r1, x, D, s->q_gs, s->a_gs, n, s->hs, FS, ws);
                s_mm(c, a->up_sh, 0, r0, r1, x, D, s->q_us, s->a_us, n, s->us, FS, ws);
                for (int j = 0; j < n; j++)
                    for (int64_t r = r0; r < r1; r++)
                        s->hs[(int64_t)j * FS + r] = s_silu(s->hs[(int64_t)j * FS + r]) * s->us[(int64_t)j * FS + r];
            }
        }
        break;
    }
    case S_P_QUANT_H:
        if (s->q_dh)
            mesh__cpu_quant_rows(a->down_exps, s->hg, F, n * K, s->q_dh, ith, nth);
        if (s->q_ds)
            mesh__cpu_quant_rows(a->down_sh, s->hs, FS, n, s->q_ds, ith, nth);
        break;
    case S_P_DOWN: { // 4. down projections, split like gate/up
        int64_t lo, hi;
        s_share(s, dtiles, FS ? dtiles : 0, ith, nth, &lo, &hi);
        int64_t P = 0;
        for (int e = 0; e <= E; e++) {
            int cnt = e < E ? s->start[e + 1] - s->start[e] : (FS ? n : 0);
            if (!cnt)
                continue;
            int64_t cu = S_TILE_COST + cnt, j0, j1;
            s_units(P, cu, dtiles, lo, hi, &j0, &j1);
            P += cu * dtiles;
            if (j0 >= j1)
                continue;
            int64_t r0 = j0 * MESH_CPU_MR, r1 = j1 * MESH_CPU_MR < D ? j1 * MESH_CPU_MR : D;
            if (e < E)
                s_mm(c, a->down_exps, e, r0, r1, s->hg + (int64_t)s->start[e] * F, F,
                     s->q_dh ? s->q_dh + (size_t)s->start[e] * s->a_dh : NULL, s->a_dh, cnt,
                     s->yg + (int64_t)s->start[e] * D, D, ws);
            else
                s_mm(c, a->down_sh, 0, r0, r1, s->hs, FS, s->q_ds, s->a_ds, n, s->ys, D, ws);
        }
        break;
    }
    case S_P_COMBINE: { // 5. shared + weighted experts, k in order
        float *out = mesh__cpu_ptr(a->out);
        for (int t = (int)((int64_t)n * ith / nth); t < (int)((int64_t)n * (ith + 1) / nth); t++) {
            float *o = out + (int64_t)t * D;
            if (FS)
                memcpy(o, s->ys + (int64_t)t * D, sizeof(float) * (size_t)D);
            else
                memset(o, 0, sizeof(float) * (size_t)D);
            for (int k = 0; k < K; k++) {
                const float *ye = s->yg + (int64_t)s->slot[t * K + k] * D;
                float w = s->wsel[t * K + k];
                for (int i = 0; i < D; i++)
                    o[i] += w * ye[i];
            }
    }
        break;
    }
    default:
        break;
    }
}

int mesh__cpu_moe(void *ctx, const mesh_moe_args_t *a) {
    mesh_cpu_ctx_t *c = ctx;
    if (a->n_expert > 1024 || a->n_used > a->n_expert || a->n_used < 1)
        return MESH_EUNSUPPORTED;
    const size_t n = (size_t)a->n, p = n * (size_t)a->n_used;
    uint8_t *b = mesh__cpu_ptr(a->scratch);
    s_moe_t s = {.c = c, .a = a};
#define S_TAKE(field, type, count)                                                                \
    do {                                                                                          \
        s.field = (type *)b;                                                                      \
        b += s_al(sizeof(type) * (count));                                                        \
    } while (0)
    S_TAKE(logit, float, n * (size_t)a->n_expert);
    S_TAKE(sel, int32_t, p);
    S_TAKE(wsel, float, p);
    S_TAKE(pair, int32_t, p);
    S_TAKE(slot, int32_t, p);
    S_TAKE(cnt, int32_t, (size_t)a->n_expert + 1);
    S_TAKE(start, int32_t, (size_t)a->n_expert + 1);
    S_TAKE(xg, float, p * (size_t)a->n_embd);
    S_TAKE(yg, float, p * (size_t)a->n_embd);
    S_TAKE(hg, float, p * (size_t)a->n_ff);
    S_TAKE(ug, float, p * (size_t)a->n_ff);
    S_TAKE(hs, float, n * (size_t)(a->n_ff_sh ? a->n_ff_sh : 1));
    S_TAKE(us, float, n * (size_t)(a->n_ff_sh ? a->n_ff_sh : 1));
    S_TAKE(ys, float, n * (size_t)a->n_embd);
#undef S_TAKE
    // Quantized activation buffers (ctx->act, grown once to the largest batch).
    const mesh_bweight_t *sh_g = a->gate_sh, *sh_u = a->gate_sh ? a->up_sh : NULL,
                         *sh_d = a->gate_sh ? a->down_sh : NULL;
    s.a_gx = s_arow(a->gate_exps);
    s.a_ux = s_arow(a->up_exps);
    s.a_dh = s_arow(a->down_exps);
    s.a_gs = s_arow(sh_g);
    s.a_us = s_arow(sh_u);
    s.a_ds = s_arow(sh_d);
    // 0-5: gathered gate/up inputs, down inputs, shared gate/up/down inputs;
    // 6-7: per-token gate/up inputs (gathered into 0-1).
    size_t sz[8] = {s.a_gx * p, s.a_ux * p, s.a_dh * p, s.a_gs * n, s.a_us * n, s.a_ds * n,
                    s.a_gx * n, s.a_ux * n};
    const mesh_qtype_t tg = sz[0] ? mesh_cpu_act_type(a->gate_exps->type) : MESH_QT_COUNT,
                       tu = sz[1] ? mesh_cpu_act_type(a->up_exps->type) : MESH_QT_COUNT;
    // gate and up share one buffer when their activation formats agree
    bool share_x = sz[0] && tg == tu;
    bool share_s = sz[3] && sz[4] && mesh_cpu_act_type(sh_g->type) == mesh_cpu_act_type(sh_u->type);
    // The shared expert reads the per-token rows when its format matches
    // (same k, same format: the same bytes).
    const mesh_qtype_t tsg = sz[3] ? mesh_cpu_act_type(sh_g->type) : MESH_QT_COUNT,
                       tsu = sz[4] ? mesh_cpu_act_type(sh_u->type) : MESH_QT_COUNT;
    bool gs_tok = sz[3] && (tsg == tg || tsg == tu), us_tok = sz[4] && (tsu == tg || tsu == tu);
    size_t tot = 0, off[8];
    for (int i = 0; i < 8; i++) {
        off[i] = tot;
        bool skip = ((i == 1 || i == 7) && share_x) || (i == 3 && gs_tok) ||
                    (i == 4 && (us_tok || share_s));
        if (!skip)
            tot += (sz[i] + 63) & ~(size_t)63;
    }
    int rc = mesh__cpu_act_reserve(c, tot);
    if (rc)
        return rc;
    uint8_t **qs[8] = {&s.q_gx, &s.q_ux, &s.q_dh, &s.q_gs, &s.q_us, &s.q_ds, &s.q_tg, &s.q_tu};
    for (int i = 0; i < 8; i++)
        *qs[i] = sz[i] ? c->act + off[i] : NULL;
    if (share_x) {
        s.q_ux = s.q_gx;
        s.q_tu = s.q_tg;
    }
    s.own_gs = sz[3] && !gs_tok;
    s.own_us = sz[4] && !us_tok;
    if (gs_tok)
        s.q_gs = tsg == tg ? s.q_tg : s.q_tu;
    if (us_tok)
        s.q_us = tsu == tg ? s.q_tg : s.q_tu;
    else if (share_s) {
        s.q_us = s.q_gs;
        s.own_us = false;
    }
    // Small phases run on the caller: waking the pool costs more than they do.
    const int nt = c->n_threads, big = a->n >= 32 ? nt : 1;
    const int64_t rwork = (int64_t)a->n * a->n_expert * a->n_embd;
    const int plan[][2] = {{S_P_ROUTER, rwork < 16384 ? 1 : nt}, {S_P_ROUTE, big}, {S_P_GROUP, 1},
                           {S_P_QUANT_IN, big}, {S_P_GATHER, big}, {S_P_GATE_UP, nt},
                           {S_P_QUANT_H, big}, {S_P_DOWN, nt}, {S_P_COMBINE, big}};
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        if (plan[i][0] == S_P_QUANT_IN && !(s.q_gx || s.q_ux || s.own_gs || s.own_us))
            continue;
        if (plan[i][0] == S_P_QUANT_H && !(s.q_dh || s.q_ds))
            continue;
        s.phase = plan[i][0];
        mesh_tp_run_n(c->tp, plan[i][1], s_moe_task, &s);
    }
    return 0;
}
