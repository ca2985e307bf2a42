// SPDX-License-Identifier: MIT
// Device-side dequantization of GGUF block types, 32 elements at a time.
//
// Every kernel that reads a weight (mat-vec, GEMM, get_rows) works in
// "chunks" of 32 consecutive elements of a row: one block of the 32-element
// types, one eighth of a K-quant super-block, or 32 plain values. s_deq<T>
// turns chunk c of a row into 32 floats in registers (the loops unroll, so
// v[] never leaves registers). Loads are 4-byte words where the block size
// keeps rows 4-byte aligned and 2-byte words otherwise (Q8_0, Q4_0, Q5_0,
// Q6_K have even block sizes only). Layouts are the published GGML ones
// (engine/quant.h describes each field).
#ifndef MESH_CU_QUANT_DEV_CUH
#define MESH_CU_QUANT_DEV_CUH

#include "gpu_compat.h"

#include <stdint.h>

// Type ids (GGUF's numbers, engine/quant.h); repeated here because device
// code cannot include the C header's inline helpers.
enum {
    CU_F32 = 0, CU_F16 = 1, CU_Q4_0 = 2, CU_Q4_1 = 3, CU_Q5_0 = 6, CU_Q5_1 = 7, CU_Q8_0 = 8,
    CU_Q4_K = 12, CU_Q5_K = 13, CU_Q6_K = 14, CU_BF16 = 30
};

#define CU_BYTE(w, b) (((w)[(b) >> 2] >> (8 * ((b) & 3))) & 0xffu)

static __device__ __forceinline__ float s_h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
static __device__ __forceinline__ float s_bf2f(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
static __device__ __forceinline__ uint16_t s_ld16(const uint8_t *p) {
    return *(const uint16_t *)p;
}
// nw words of 4 bytes from a 2-byte aligned address.
template <int NW> static __device__ __forceinline__ void s_ld_a2(const uint8_t *p, uint32_t *w) {
    const uint16_t *h = (const uint16_t *)p;
#pragma unroll
    for (int i = 0; i < NW; i++)
        w[i] = (uint32_t)h[2 * i] | ((uint32_t)h[2 * i + 1] << 16);
}
// nw words from a 4-byte aligned address.
template <int NW> static __device__ __forceinline__ void s_ld_a4(const uint8_t *p, uint32_t *w) {
    const uint32_t *q = (const uint32_t *)p;
#pragma unroll
    for (int i = 0; i < NW; i++)
        w[i] = q[i];
}

// 6-bit scale and min j (run-time 0..7) of a K-quant's 12 packed scale
// bytes at q, read as bytes from memory: indexing a register array with a
// run-time j would put it in local memory.
static __device__ __forceinline__ void s_k_scale_min(int j, const uint8_t *q, float *sc,
                                                     float *mn) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *mn = (float)(q[j + 4] & 63);
    } else {
        const uint32_t a = q[j + 4], lo = q[j - 4], hi = q[j];
        *sc = (float)((a & 0xF) | ((lo >> 6) << 4));
        *mn = (float)((a >> 4) | ((hi >> 6) << 4));
    }
}

// Bytes per block and elements per block of the types handled here.
static __host__ __device__ __forceinline__ int cu_type_bytes(int t) {
    switch (t) {
    case CU_F32: return 4;
    case CU_F16: case CU_BF16: return 2;
    case CU_Q4_0: return 18;
    case CU_Q4_1: return 20;
    case CU_Q5_0: return 22;
    case CU_Q5_1: return 24;
    case CU_Q8_0: return 34;
    case CU_Q4_K: return 144;
    case CU_Q5_K: return 176;
    case CU_Q6_K: return 210;
    default: return 0;
    }
}

// Chunk c (elements [32c, 32c+32)) of a row of K elements, as floats.
// Elements at or beyond K read as 0 (only the plain types may have K % 32).
template <int T>
static __device__ __forceinline__ void s_deq(const uint8_t *row, int c, int K, float *v) {
    if (T == CU_F32 || T == CU_F16 || T == CU_BF16) {
        const int e0 = c * 32;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int e = e0 + l;
            float x = 0.0f;
            if (e < K) {
                if (T == CU_F32)
                    x = ((const float *)row)[e];
                else if (T == CU_F16)
                    x = s_h2f(((const uint16_t *)row)[e]);
                else
                    x = s_bf2f(((const uint16_t *)row)[e]);
            }
            v[l] = x;
        }
    } else if (T == CU_Q8_0) {
        const uint8_t *b = row + (size_t)c * 34;
        float d = s_h2f(s_ld16(b));
        uint32_t w[8];
        s_ld_a2<8>(b + 2, w);
#pragma unroll
        for (int l = 0; l < 32; l++)
            v[l] = (float)(int8_t)CU_BYTE(w, l) * d;
    } else if (T == CU_Q4_0) {
        const uint8_t *b = row + (size_t)c * 18;
        float d = s_h2f(s_ld16(b));
        uint32_t w[4];
        s_ld_a2<4>(b + 2, w);
#pragma unroll
        for (int l = 0; l < 16; l++) {
            v[l] = ((int)(CU_BYTE(w, l) & 15) - 8) * d;
            v[l + 16] = ((int)(CU_BYTE(w, l) >> 4) - 8) * d;
        }
    } else if (T == CU_Q4_1) {
        const uint8_t *b = row + (size_t)c * 20;
        float d = s_h2f(s_ld16(b)), m = s_h2f(s_ld16(b + 2));
        uint32_t w[4];
        s_ld_a4<4>(b + 4, w);
#pragma unroll
        for (int l = 0; l < 16; l++) {
            v[l] = (float)(CU_BYTE(w, l) & 15) * d + m;
            v[l + 16] = (float)(CU_BYTE(w, l) >> 4) * d + m;
        }
    } else if (T == CU_Q5_0) {
        const uint8_t *b = row + (size_t)c * 22;
        float d = s_h2f(s_ld16(b));
        uint32_t qh = (uint32_t)s_ld16(b + 2) | ((uint32_t)s_ld16(b + 4) << 16);
        uint32_t w[4];
        s_ld_a2<4>(b + 6, w);
#pragma unroll
        for (int l = 0; l < 16; l++) {
            v[l] = ((int)((CU_BYTE(w, l) & 15) | (((qh >> l) & 1) << 4)) - 16) * d;
            v[l + 16] = ((int)((CU_BYTE(w, l) >> 4) | (((qh >> (l + 16)) & 1) << 4)) - 16) * d;
        }
    } else if (T == CU_Q5_1) {
        const uint8_t *b = row + (size_t)c * 24;
        float d = s_h2f(s_ld16(b)), m = s_h2f(s_ld16(b + 2));
        uint32_t qh = *(const uint32_t *)(b + 4);
        uint32_t w[4];
        s_ld_a4<4>(b + 8, w);
#pragma unroll
        for (int l = 0; l < 16; l++) {
            v[l] = (float)((CU_BYTE(w, l) & 15) | (((qh >> l) & 1) << 4)) * d + m;
            v[l + 16] = (float)((CU_BYTE(w, l) >> 4) | (((qh >> (l + 16)) & 1) << 4)) * d + m;
        }
    } else if (T == CU_Q4_K || T == CU_Q5_K) {
        const int bs = T == CU_Q4_K ? 144 : 176;
        const uint8_t *b = row + (size_t)(c >> 3) * bs;
        const int j = c & 7;
        uint32_t hd = *(const uint32_t *)b;
        float d = s_h2f((uint16_t)(hd & 0xffff)), dmin = s_h2f((uint16_t)(hd >> 16));
        float sc, mn;
        s_k_scale_min(j, b + 4, &sc, &mn);
        const float dl = d * sc, ml = dmin * mn;
        uint32_t q[8];
        s_ld_a4<8>(b + (T == CU_Q4_K ? 16 : 48) + (j >> 1) * 32, q);
        const int sh = (j & 1) * 4;
        if (T == CU_Q4_K) {
#pragma unroll
            for (int l = 0; l < 32; l++)
                v[l] = dl * (float)((CU_BYTE(q, l) >> sh) & 15) - ml;
        } else {
            uint32_t h[8];
            s_ld_a4<8>(b + 16, h);
#pragma unroll
            for (int l = 0; l < 32; l++)
                v[l] = dl * (float)(((CU_BYTE(q, l) >> sh) & 15) | (((CU_BYTE(h, l) >> j) & 1) << 4)) - ml;
        }
    } else if (T == CU_Q6_K) {
        const uint8_t *b = row + (size_t)(c >> 3) * 210;
        const int j = c & 7, h = j >> 2, g = j & 3;
        uint32_t ql[8], qh[8];
        s_ld_a2<8>(b + h * 64 + (g & 1) * 32, ql);
        s_ld_a2<8>(b + 128 + h * 32, qh);
        const float d = s_h2f(s_ld16(b + 208));
        const float s0 = d * (float)(int8_t)b[192 + h * 8 + 2 * g];
        const float s1 = d * (float)(int8_t)b[192 + h * 8 + 2 * g + 1];
        const int sh = (g >> 1) * 4;
#pragma unroll
        for (int l = 0; l < 32; l++) {
            int qv = (int)(((CU_BYTE(ql, l) >> sh) & 15) | (((CU_BYTE(qh, l) >> (2 * g)) & 3) << 4)) - 32;
            v[l] = (l < 16 ? s0 : s1) * (float)qv;
        }
    }
}

// Group g (elements [8g, 8g+8)) of a row of K elements, as floats: the unit
// of the mat-vec kernels, where lane l of a warp takes group 32*step + l so
// that a warp reads 256 consecutive elements (one K-quant super-block, eight
// 32-element blocks) and 1 KiB of x per step, all coalesced.
template <int T>
static __device__ __forceinline__ void s_deq8(const uint8_t *row, int g, int K, float *v) {
    if (T == CU_F32 || T == CU_F16 || T == CU_BF16) {
        const int e0 = g * 8;
        if (e0 + 8 <= K && T == CU_F32 && ((((uintptr_t)row) & 15) == 0) && (K % 4 == 0)) {
            const float4 *p = (const float4 *)((const float *)row + e0);
            float4 a = p[0], b = p[1];
            v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
            v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
            return;
        }
#pragma unroll
        for (int l = 0; l < 8; l++) {
            int e = e0 + l;
            float x = 0.0f;
            if (e < K) {
                if (T == CU_F32)
                    x = ((const float *)row)[e];
                else if (T == CU_F16)
                    x = s_h2f(((const uint16_t *)row)[e]);
                else
                    x = s_bf2f(((const uint16_t *)row)[e]);
            }
            v[l] = x;
        }
    } else if (T == CU_Q8_0) {
        const uint8_t *b = row + (size_t)(g >> 2) * 34;
        const float d = s_h2f(s_ld16(b));
        uint32_t w[2];
        s_ld_a2<2>(b + 2 + 8 * (g & 3), w);
#pragma unroll
        for (int l = 0; l < 8; l++)
            v[l] = (float)(int8_t)CU_BYTE(w, l) * d;
    } else if (T == CU_Q4_0 || T == CU_Q5_0) {
        const int sub = g & 3;
        const uint8_t *b = row + (size_t)(g >> 2) * (T == CU_Q4_0 ? 18 : 22);
        const float d = s_h2f(s_ld16(b));
        uint32_t w[2];
        s_ld_a2<2>(b + (T == CU_Q4_0 ? 2 : 6) + 8 * (sub & 1), w);
        const int sh = (sub >> 1) * 4;
        if (T == CU_Q4_0) {
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = ((int)((CU_BYTE(w, l) >> sh) & 15) - 8) * d;
        } else {
            const uint32_t qh = ((uint32_t)s_ld16(b + 2) | ((uint32_t)s_ld16(b + 4) << 16)) >> (8 * sub);
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = ((int)(((CU_BYTE(w, l) >> sh) & 15) | (((qh >> l) & 1) << 4)) - 16) * d;
        }
    } else if (T == CU_Q4_1 || T == CU_Q5_1) {
        const int sub = g & 3;
        const uint8_t *b = row + (size_t)(g >> 2) * (T == CU_Q4_1 ? 20 : 24);
        const uint32_t hd = *(const uint32_t *)b;
        const float d = s_h2f((uint16_t)(hd & 0xffff)), m = s_h2f((uint16_t)(hd >> 16));
        uint32_t w[2];
        s_ld_a4<2>(b + (T == CU_Q4_1 ? 4 : 8) + 8 * (sub & 1), w);
        const int sh = (sub >> 1) * 4;
        if (T == CU_Q4_1) {
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = (float)((CU_BYTE(w, l) >> sh) & 15) * d + m;
        } else {
            const uint32_t qh = *(const uint32_t *)(b + 4) >> (8 * sub);
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = (float)(((CU_BYTE(w, l) >> sh) & 15) | (((qh >> l) & 1) << 4)) * d + m;
        }
    } else if (T == CU_Q4_K || T == CU_Q5_K) {
        const int bs = T == CU_Q4_K ? 144 : 176;
        const uint8_t *b = row + (size_t)(g >> 5) * bs;
        const int w = g & 31, j = w >> 2, pos = 8 * (w & 3);
        const uint32_t hd = *(const uint32_t *)b;
        const float d = s_h2f((uint16_t)(hd & 0xffff)), dmin = s_h2f((uint16_t)(hd >> 16));
        float sc, mn;
        s_k_scale_min(j, b + 4, &sc, &mn);
        const float dl = d * sc, ml = dmin * mn;
        uint32_t q[2];
        s_ld_a4<2>(b + (T == CU_Q4_K ? 16 : 48) + (j >> 1) * 32 + pos, q);
        const int sh = (j & 1) * 4;
        if (T == CU_Q4_K) {
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = dl * (float)((CU_BYTE(q, l) >> sh) & 15) - ml;
        } else {
            uint32_t h[2];
            s_ld_a4<2>(b + 16 + pos, h);
#pragma unroll
            for (int l = 0; l < 8; l++)
                v[l] = dl * (float)(((CU_BYTE(q, l) >> sh) & 15) | (((CU_BYTE(h, l) >> j) & 1) << 4)) - ml;
        }
    } else if (T == CU_Q6_K) {
        const uint8_t *b = row + (size_t)(g >> 5) * 210;
        const int w = g & 31, j = w >> 2, pos = 8 * (w & 3), h = j >> 2, gq = j & 3;
        uint32_t ql[2], qh[2];
        s_ld_a2<2>(b + h * 64 + (gq & 1) * 32 + pos, ql);
        s_ld_a2<2>(b + 128 + h * 32 + pos, qh);
        const float dd = s_h2f(s_ld16(b + 208)) * (float)(int8_t)b[192 + h * 8 + 2 * gq + (pos >> 4)];
        const int sh = (gq >> 1) * 4;
#pragma unroll
        for (int l = 0; l < 8; l++)
            v[l] = dd * (float)((int)(((CU_BYTE(ql, l) >> sh) & 15) | (((CU_BYTE(qh, l) >> (2 * gq)) & 3) << 4)) - 32);
    }
}

// Runs F<T>() for the run-time type id t (F is a functor template instance
// maker); returns false for a type this backend does not handle.
#define CU_TYPE_SWITCH(t, MACRO)                                                                  \
    switch (t) {                                                                                  \
    case CU_F32: MACRO(CU_F32); break;                                                            \
    case CU_F16: MACRO(CU_F16); break;                                                            \
    case CU_BF16: MACRO(CU_BF16); break;                                                          \
    case CU_Q4_0: MACRO(CU_Q4_0); break;                                                          \
    case CU_Q4_1: MACRO(CU_Q4_1); break;                                                          \
    case CU_Q5_0: MACRO(CU_Q5_0); break;                                                          \
    case CU_Q5_1: MACRO(CU_Q5_1); break;                                                          \
    case CU_Q8_0: MACRO(CU_Q8_0); break;                                                          \
    case CU_Q4_K: MACRO(CU_Q4_K); break;                                                          \
    case CU_Q5_K: MACRO(CU_Q5_K); break;                                                          \
    case CU_Q6_K: MACRO(CU_Q6_K); break;                                                          \
    default: break;                                                                               \
    }

#endif
