// SPDX-License-Identifier: MIT
// Internal interface between the CUDA backend's host code (cuda_backend.cu:
// buffers, the op queue, CUDA graphs) and its kernel families (matmul.cu,
// moe.cu, mla_attn.cu, norm_rope.cu). Everything here takes device pointers
// already resolved from (buffer, offset) pairs and a stream; launchers only
// enqueue work (errors surface through gpuGetLastError at the next flush).
#ifndef MESH_CU_IMPL_H
#define MESH_CU_IMPL_H

#include "gpu_compat.h"

#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
}

// One matrix product family, possibly grouped:
//   for group g < n_group, for grouped row p in [start[g], start[g+1])
//   (or p in [0, n) when start is NULL):
//     y[p*ys + g*ym + r] = sum_k W_{m0+g}[r][k] * x[in(p)*xs + g*xm + k]
//   with in(p) = idx ? idx[p] : p. With w2 set (same type): the result is
//   silu(W x) * (W2 x) (fused SwiGLU of gate and up).
typedef struct {
    const uint8_t *w, *w2;
    int type;
    int K, rows;          // ne[0], ne[1]
    size_t nb1, nb2;      // bytes per row, per matrix (w2 shares them)
    const float *x;
    int64_t xs, xm;       // floats
    float *y;
    int64_t ys, ym;       // floats
    int n;                // rows of x per group when start is NULL; else max per group
    int n_group;
    int m0;
    const int32_t *start; // [n_group + 1] device, or NULL
    const int32_t *idx;   // device, or NULL
    const int32_t *act;   // device: [0] count, then the non-empty group ids; grid
                          // covers n_group slots of this list (NULL: all groups)
    int n_src;            // rows of x (0: n); the grouped down projection reads n*K
    uint8_t *xq;          // scratch for the 8-bit x of mmq.cu (mesh_cu_mmq_scratch
                          // bytes) or NULL: then every product takes k_mv
} mesh_cu_mm_t;

// Up to two families in one launch (e.g. routed experts + shared expert);
// both must have the same type and the same fusion. b.n_group may be 0.
int mesh_cu_matmul2(gpuStream_t s, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b);
static inline int mesh_cu_matmul(gpuStream_t s, const mesh_cu_mm_t *a) {
    return mesh_cu_matmul2(s, a, NULL);
}
bool mesh_cu_type_ok(uint32_t type);

// Tensor-core products of quantized weights (mmq.cu). Whether a family
// takes them depends on its weight and layout only (never on n), so a
// token's result never depends on the batch.
// Once per device: the architecture (major) decides whether the tensor-core
// paths run; raises their shared-memory limit. 0 or MESH_EBACKEND.
int mesh_cu_mmq_setup(int major);
// Whether the environment leaves the tensor-core paths (mmq.cu and
// k_mla_tc) on: MESH_CUDA_MMQ=0 turns them off, for comparisons.
bool mesh_cu_tc_env(void);
bool mesh_cu_mmq_ok(const mesh_cu_mm_t *m);
size_t mesh_cu_mmq_scratch(const mesh_cu_mm_t *m); // 0 when not mmq_ok
int mesh_cu_mmq2(gpuStream_t s, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b);

int mesh_cu_get_rows(gpuStream_t s, const uint8_t *table, int type, int K, size_t nb1,
                     const int32_t *ids, int n, float *y, int64_t ys);
int mesh_cu_rms_norm(gpuStream_t s, const float *x, int64_t xs, float *y, int64_t ys, int n,
                     int width, const float *w, float eps);
int mesh_cu_rope(gpuStream_t s, const float *x, int64_t xs, int64_t xh, float *y, int64_t ys,
                 int64_t yh, int n, int n_head, const int32_t *pos, const mesh_rope_params_t *p);
int mesh_cu_kv_store(gpuStream_t s, uint8_t *cache, uint32_t cache_type, int n_layer, int layer,
                     int block_tokens, int d_kv, const float *x, int64_t xs, const int32_t *slot,
                     int n);
int mesh_cu_swiglu(gpuStream_t s, const float *g, int64_t gs, const float *u, int64_t us,
                   float *y, int64_t ys, int n, int width);
int mesh_cu_add_rms_norm(gpuStream_t s, float *y, int64_t ys, const float *x, int64_t xs,
                         float *out, int64_t os, int n, int width, const float *w, float eps);
typedef struct {
    const float *q;
    int64_t qs, qh;
    float *qc;
    int64_t qcs, qch;
    int n_head;
    float *kv;
    int64_t kvs;
    int kv_lora;
    const float *w;
    float eps;
    const int32_t *pos, *slot;
    uint8_t *cache;
    int f16, n_layer, layer, block_tokens, n;
} mesh_cu_mla_prep_t;
int mesh_cu_mla_prep(gpuStream_t s, const mesh_cu_mla_prep_t *a, const mesh_rope_params_t *p);
int mesh_cu_add(gpuStream_t s, float *y, int64_t ys, const float *x, int64_t xs, int n,
                int width);
int mesh_cu_copy_rows(gpuStream_t s, const float *x, int64_t xs, const int32_t *idx, int n,
                      float *y, int64_t ys, int width);

// MLA attention; part is scratch of mesh_cu_mla_part_floats(n, n_head, kv_lora) floats.
typedef struct {
    const float *q;
    float *out;
    const mesh_attn_tok_t *toks;
    const int32_t *tables;
    const uint8_t *cache;
    int n, n_head, kv_lora, d_kv, layer, n_layer, block_tokens;
    uint32_t cache_type;
    float scale;
    float *part;          // chunk partials [n][n_split][n_head][kv_lora + 2]
    int n_split;          // chunks per token with a block each (1: one block per token)
} mesh_cu_mla_t;
// Blocks per token for a batch of n over a pool of cache_bytes (see mla_attn.cu).
int mesh_cu_mla_splits(int n, size_t cache_bytes, int n_layer, int d_kv, uint32_t cache_type);
size_t mesh_cu_mla_part_floats(int n, int n_split, int n_head, int kv_lora);
int mesh_cu_mla_attn(gpuStream_t s, const mesh_cu_mla_t *a);
int mesh_cu_mla_setup(void); // raises shared-memory limits once

// MoE helpers (moe.cu): routing, grouping, combination.
typedef struct {
    const float *logits;  // [n][E]
    const float *bias;    // [E] or NULL
    int32_t *sel;         // [n][K]
    float *wsel;          // [n][K]
    int32_t *start;       // [E+1]
    int32_t *pair_tok;    // [n*K] token of grouped position p
    int32_t *slot;        // [n*K] grouped position of (t, k)
    int32_t *act;         // [1 + E] number of used experts, then their ids
    int n, E, K, gating;
    bool norm_w;
    float w_scale;
} mesh_cu_route_t;
int mesh_cu_moe_route(gpuStream_t s, const mesh_cu_route_t *r);
int mesh_cu_moe_combine(gpuStream_t s, float *out, const float *ys, const float *yg,
                        const int32_t *slot, const float *wsel, int n, int D, int K);
// The combination, then y += it and nout = rmsnorm(y) * w (k_add_rms_norm's
// bits), in one launch.
int mesh_cu_moe_combine_add_rms(gpuStream_t s, float *out, const float *ys, const float *yg,
                                const int32_t *slot, const float *wsel, int n, int D, int K,
                                float *y, int64_t yst, float *nout, int64_t nst, const float *w,
                                float eps);

#endif
