// SPDX-License-Identifier: MIT
// NEON kernels for the CPU matmul (arm64 only): the f32 dot tile and the
// bf16/f16 -> f32 row conversions, the counterparts of matmul_avx2.c.
//
// Dot tile: per output one 8-lane accumulator (two float32x4 FMA chains, the
// lanes the scalar tile's acc[8] has), over k in steps of 8 from zero, then
// one fixed horizontal sum and the k % 8 tail in order. Every output element
// gets the same instruction sequence whatever nr, n or the tile position,
// so results do not depend on the batch. They differ from the scalar tile
// in rounding (fused multiply-add), as the AVX2 tile's do.
// Cost: 2 FMAs per 8 elements per output; 4 rows share each x load.
#include "cpu_impl.h"
#include "quant.h"

#include <arm_neon.h>
#include <string.h>

static inline float s_hsum8(float32x4_t a, float32x4_t b) { return vaddvq_f32(vaddq_f32(a, b)); }

// Sum of w[i]*x[i] over the k % 8 tail, in order, added to s.
static inline float s_tail(float s, const float *w, const float *x, int64_t k0, int64_t k) {
    for (int64_t i = k0; i < k; i++)
        s += w[i] * x[i];
    return s;
}

void mesh__cpu_dot_tile_neon(const float *w, int nr, int64_t k, const float *x, int64_t x_stride,
                             int n, float *y, int64_t y_stride) {
    // Rows past nr read row 0 again (their results are dropped): one code path.
    const float *wr[4] = {w, w + (nr > 1 ? 1 : 0) * k, w + (nr > 2 ? 2 : 0) * k,
                          w + (nr > 3 ? 3 : 0) * k};
    const int64_t k8 = k & ~(int64_t)7;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (int64_t)t * x_stride;
        float32x4_t lo[4], hi[4];
        for (int i = 0; i < 4; i++)
            lo[i] = hi[i] = vdupq_n_f32(0.0f);
        for (int64_t j = 0; j < k8; j += 8) {
            float32x4_t x0 = vld1q_f32(xt + j), x1 = vld1q_f32(xt + j + 4);
            for (int i = 0; i < 4; i++) {
                lo[i] = vfmaq_f32(lo[i], vld1q_f32(wr[i] + j), x0);
                hi[i] = vfmaq_f32(hi[i], vld1q_f32(wr[i] + j + 4), x1);
            }
        }
        for (int i = 0; i < nr; i++)
            y[(int64_t)t * y_stride + i] = s_tail(s_hsum8(lo[i], hi[i]), wr[i], xt, k8, k);
    }
}

void mesh__cpu_bf16_to_f32_neon(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t v = vld1q_u16(src + i);
        vst1q_f32(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)));
        vst1q_f32(dst + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t b = (uint32_t)src[i] << 16;
        memcpy(&dst[i], &b, 4);
    }
}

void mesh__cpu_f16_to_f32_neon(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
    for (; i < n; i++)
        dst[i] = mesh_fp16_to_f32(src[i]);
}
