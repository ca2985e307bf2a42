// SPDX-License-Identifier: MIT
// Fused quantized dot products for the CPU backend: the contract the matmul
// code calls. A weight row stays in its file format (q8_0, q4_K, bf16, ...);
// the activation row is first quantized once into the matching activation
// format (mesh_cpu_act_type), then mesh_cpu_gemm_tile multiplies a tile of
// weight rows by a tile of activation rows without ever widening the weights
// to f32 in memory.
//
// Exactness: integer parts of a block dot are exact and every output element
// is accumulated block by block in the same float order whatever the tile
// shape, so y[c][r] is bit-identical for any n_cols and any other columns
// (batch == token by token). For the block types the scalar and AVX2 paths
// give bit-identical results too; for f32/f16/bf16 weights they differ only
// in summation order (f32 accumulation either way).
//
// Threads: all functions are single-threaded and reentrant; the caller
// splits rows across its own threads. Nothing here allocates.
#ifndef MESH_QUANT_DOT_H
#define MESH_QUANT_DOT_H

#include "cpu_features.h"
#include "quant.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Activation format for a weight type: Q8_0 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0,
// Q8_K for the K-quants (Q2_K..Q6_K), F32 for F32/F16/BF16 (half-precision
// weights are multiplied with f32 activations and accumulated in f32).
// MESH_QT_COUNT when the weight type has no fused kernel.
mesh_qtype_t mesh_cpu_act_type(uint32_t wtype);

// True when mesh_cpu_gemm_tile supports wtype.
bool mesh_cpu_gemm_supported(uint32_t wtype);

// Bytes of one activation row of k elements for weight type wtype (0 when
// unsupported or k is not a multiple of the activation block size).
size_t mesh_cpu_act_row_size(uint32_t wtype, int64_t k);

// Quantizes one activation row of n elements into act_type's format
// (F32: a copy). n must be a multiple of the block size (32 for Q8_0, 256
// for Q8_K). Deterministic: the same x always gives the same bytes.
void mesh_cpu_quantize_act(mesh_qtype_t act_type, const float *x, void *out, int64_t n);
// Same with an explicit SIMD level; every level writes the same bytes.
void mesh_cpu_quantize_act_level(mesh_simd_level_t level, mesh_qtype_t act_type, const float *x,
                                 void *out, int64_t n);

// For r in [0, n_rows), c in [0, n_cols):
//   y[c * y_col_stride + r] = dot(weight row r, activation row c)
// Weight row r starts at (const uint8_t *)w + r * w_row_bytes and holds k
// elements of wtype; activation row c starts at x + c * x_row_bytes and holds
// k elements in mesh_cpu_act_type(wtype). k must be a multiple of wtype's
// block size (and of 32/256 for the activation). n_cols == 1 is the decode
// path (streams the weights once); n_cols > 1 reuses every decoded weight
// block across a micro-tile of columns held in registers. Pass all the rows
// one thread owns in one call: the kernels block rows for the caches
// themselves, and per-call set-up (the VNNI Q8_0 kernel's per-column block
// sums, O(n_cols * k)) is paid once. Stack use: up to about 40 KB.
// Uses the best SIMD level (mesh_cpu_simd_level(), chosen once).
void mesh_cpu_gemm_tile(uint32_t wtype, int64_t k, const void *w, size_t w_row_bytes, int n_rows,
                        const void *x, size_t x_row_bytes, int n_cols, float *y,
                        size_t y_col_stride);

// Same with an explicit level (tests and benchmarks compare levels); a level
// this build or CPU lacks falls back to the next lower one.
void mesh_cpu_gemm_tile_level(mesh_simd_level_t level, uint32_t wtype, int64_t k, const void *w,
                              size_t w_row_bytes, int n_rows, const void *x, size_t x_row_bytes,
                              int n_cols, float *y, size_t y_col_stride);

#endif
