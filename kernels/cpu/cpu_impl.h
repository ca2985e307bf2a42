// SPDX-License-Identifier: MIT
// Private contract between the CPU backend's files (cpu_backend.c and the op
// families matmul.c, norm_rope.c, mla_attn.c, moe.c). Nothing outside
// kernels/cpu includes this.
#ifndef MESH_CPU_IMPL_H
#define MESH_CPU_IMPL_H

#include "backend.h"
#include "threadpool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mesh_bbuf {
    uint8_t *p;   // host memory
    size_t size;  // bytes
    int owned;    // 1: malloc'ed by us; 0: wrapped host memory
};

#define MESH_CPU_MR 4  // weight rows per matmul tile
#define MESH_CPU_RB 32 // weight rows converted per block (scratch)

typedef struct {
    mesh_tp_t *tp;
    int n_threads;
    int64_t max_k;     // longest weight row seen by weight_prepare (elements)
    float **wscratch;  // [n_threads][MESH_CPU_RB * max_k] dequantized weight rows
    float **tscratch;  // [n_threads][tcap] misc per-thread rows
    int64_t tcap;      // floats in each tscratch
    int simd;          // mesh_simd_level_t in use
    uint8_t *act;      // quantized activations for fused matmuls (grows to the largest batch)
    size_t act_cap;    // bytes in act
} mesh_cpu_ctx_t;

static inline void *mesh__cpu_ptr(mesh_bptr_t p) {
    return p.buf->p + p.off;
}

// Converts one weight row of k elements (any known type) to f32.
void mesh__cpu_row_to_f32(uint32_t type, const void *row, float *dst, int64_t k, int simd);

// Single-thread matmul over weight rows [r0, r1) of matrix m:
// y[t*y_stride + r] = dot(W_m row r, x[t*x_stride :]) for t < n.
// ws: scratch of MESH_CPU_RB * k floats. Bit-identical per element whatever n.
void mesh__cpu_mm_rows(mesh_cpu_ctx_t *c, const mesh_bweight_t *w, int m, int64_t r0,
                       int64_t r1, const float *x, int64_t x_stride, int n, float *y,
                       int64_t y_stride, float *ws);

// Fused quantized path (quant_dot.h): weights of block types whose rows suit
// their activation format multiply pre-quantized activations.
bool mesh__cpu_fused(const mesh_bweight_t *w);
int mesh__cpu_act_reserve(mesh_cpu_ctx_t *c, size_t bytes); // not thread-safe: call before a run
// Quantizes rows [n*ith/nth, n*(ith+1)/nth) of x for w's activation format.
void mesh__cpu_quant_rows(const mesh_bweight_t *w, const float *x, int64_t x_stride, int n,
                          uint8_t *dst, int ith, int nth);
// Like mesh__cpu_mm_rows over pre-quantized activation rows (act, n rows).
void mesh__cpu_mm_rows_q(const mesh_bweight_t *w, int m, int64_t r0, int64_t r1,
                         const uint8_t *act, size_t arow, int n, float *y, int64_t y_stride);

// f32 dot kernels (matmul_avx2.c when available; scalar otherwise).
// y[t*y_stride + i] = dot(w + i*k, x + t*x_stride) for i < nr (<= MR), t < n.
void mesh__cpu_dot_tile_avx2(const float *w, int nr, int64_t k, const float *x,
                             int64_t x_stride, int n, float *y, int64_t y_stride);
void mesh__cpu_dot_tile_bf16_avx2(const uint16_t *w, size_t row_stride, int nr, int64_t k,
                                  const float *x, int64_t x_stride, int n, float *y,
                                  int64_t y_stride);
void mesh__cpu_bf16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n);
void mesh__cpu_f16_to_f32_avx2(const uint16_t *src, float *dst, int64_t n);
// NEON counterparts (matmul_neon.c, arm64 only); the tile takes any k.
void mesh__cpu_dot_tile_neon(const float *w, int nr, int64_t k, const float *x, int64_t x_stride,
                             int n, float *y, int64_t y_stride);
void mesh__cpu_bf16_to_f32_neon(const uint16_t *src, float *dst, int64_t n);
void mesh__cpu_f16_to_f32_neon(const uint16_t *src, float *dst, int64_t n);

// Fills rows[0..cn) with pointers to cached rows [s0, s0+cn) of one sequence.
typedef void (*mesh_attn_rows_fn)(void *ctx, int s0, int cn, const float **rows);
#define MESH_ATTN_MAX_GROUP 16 // heads per attention work unit
// Attention for nh heads of one token (q rows q_head apart, outputs o_head
// apart); each head's arithmetic is the same whatever nh is.
void mesh__cpu_attn_heads_avx2(const float *q, int nh, int64_t q_head, float *o, int64_t o_head,
                               int n_ctx, int d_kv, int kv_lora, float scale,
                               const mesh_attn_rows_fn get_rows, void *rows_ctx);

int mesh__cpu_matmul(void *ctx, const mesh_bweight_t *w, int m0, int n_mat, mesh_bptr_t x,
                     int64_t x_stride, int64_t x_mat, int n, mesh_bptr_t y, int64_t y_stride,
                     int64_t y_mat);
int mesh__cpu_rms_norm(void *ctx, mesh_bptr_t x, int64_t x_stride, mesh_bptr_t y,
                       int64_t y_stride, int n, int width, const mesh_bweight_t *w, float eps);
int mesh__cpu_rope(void *ctx, mesh_bptr_t x, int64_t x_stride, int64_t x_head, mesh_bptr_t y,
                   int64_t y_stride, int64_t y_head, int n, int n_head, mesh_bptr_t pos,
                   const mesh_rope_params_t *p);
int mesh__cpu_kv_store(void *ctx, mesh_bptr_t cache, uint32_t cache_type, int n_layer,
                       int layer, int block_tokens, int d_kv, mesh_bptr_t x, int64_t x_stride,
                       mesh_bptr_t slot, int n);
int mesh__cpu_mla_attn(void *ctx, const mesh_mla_args_t *a);
size_t mesh__cpu_moe_scratch_bytes(void *ctx, int n, int n_embd, int n_ff, int n_ff_sh,
                                   int n_expert, int n_used);
int mesh__cpu_moe(void *ctx, const mesh_moe_args_t *a);

#endif
