// SPDX-License-Identifier: MIT
// Reference (scalar) dequantizers and quantizers for the block types.
//
// Dequantizers follow the published GGML block layouts exactly (see the
// structs in quant.h), so files written by llama.cpp read back bit-exact.
// Quantizers are ours: the 32-element types use the usual round-to-nearest
// with the scale taken from the block's extreme value; the K-quants search a
// few candidate scales per sub-block and keep the one with the smallest
// weighted squared error (weights favour large elements), then quantize the
// sub-block scales themselves to 4, 6 or 8 bits. Cost: the K-quant search is
// O(candidates * elements), about 20x a plain rounding pass; it runs once at
// conversion time, never on the inference path (except Q8_K, which is cheap).
#include "quant.h"

#include <math.h>
#include <string.h>

void mesh__quant_ref_fill(mesh_qtype_traits_t *traits, int n);

#define s_h2f mesh_fp16_to_f32
#define s_f2h mesh_f32_to_fp16

static inline int s_nearest(float x) { return (int)lrintf(x); }

static inline int s_clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// ---------------------------------------------------------------- 32-element types

static void s_q4_0_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q4_0_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
            y[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void s_q4_1_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q4_1_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d), m = s_h2f(b[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[i].qs[j] & 0xF) * d + m;
            y[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
        }
    }
}

static inline uint32_t s_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void s_q5_0_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q5_0_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d);
        uint32_t qh = s_le32(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(lo - 16) * d;
            y[j + 16] = (float)(hi - 16) * d;
        }
    }
}

static void s_q5_1_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q5_1_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d), m = s_h2f(b[i].m);
        uint32_t qh = s_le32(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        }
    }
}

static void s_q8_0_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q8_0_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = (float)b[i].qs[j] * d;
    }
}

static void s_q8_1_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q8_1_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK32; i++, y += 32) {
        float d = s_h2f(b[i].d);
        for (int j = 0; j < 32; j++)
            y[j] = (float)b[i].qs[j] * d;
    }
}

// Signed extreme (the element of largest magnitude, with its sign) and the
// plain min/max of a block.
static float s_signed_absmax(const float *x, int n) {
    float amax = 0.0f, v = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            v = x[j];
        }
    return v;
}

static void s_minmax(const float *x, int n, float *mn, float *mx) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *mn = lo;
    *mx = hi;
}

// Q4_0: the extreme maps to -8 exactly (so the extreme is represented
// without error and the other side has 7 steps).
static void s_q4_0_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q4_0_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float v = s_signed_absmax(x, 32);
        float d = v / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = s_f2h(d);
        for (int j = 0; j < 16; j++) {
            int a = s_clampi(s_nearest(x[j] * id) + 8, 0, 15);
            int c = s_clampi(s_nearest(x[j + 16] * id) + 8, 0, 15);
            b[i].qs[j] = (uint8_t)(a | c << 4);
        }
    }
}

static void s_q4_1_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q4_1_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float mn, mx;
        s_minmax(x, 32, &mn, &mx);
        float d = (mx - mn) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = s_f2h(d);
        b[i].m = s_f2h(mn);
        for (int j = 0; j < 16; j++) {
            int a = s_clampi(s_nearest((x[j] - mn) * id), 0, 15);
            int c = s_clampi(s_nearest((x[j + 16] - mn) * id), 0, 15);
            b[i].qs[j] = (uint8_t)(a | c << 4);
        }
    }
}

static void s_q5_0_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q5_0_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float v = s_signed_absmax(x, 32);
        float d = v / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = s_f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = s_clampi(s_nearest(x[j] * id) + 16, 0, 31);
            int c = s_clampi(s_nearest(x[j + 16] * id) + 16, 0, 31);
            b[i].qs[j] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
            qh |= (uint32_t)(a >> 4) << j | (uint32_t)(c >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

static void s_q5_1_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q5_1_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float mn, mx;
        s_minmax(x, 32, &mn, &mx);
        float d = (mx - mn) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = s_f2h(d);
        b[i].m = s_f2h(mn);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int a = s_clampi(s_nearest((x[j] - mn) * id), 0, 31);
            int c = s_clampi(s_nearest((x[j + 16] - mn) * id), 0, 31);
            b[i].qs[j] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
            qh |= (uint32_t)(a >> 4) << j | (uint32_t)(c >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

static void s_q8_0_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q8_0_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float amax = fabsf(s_signed_absmax(x, 32));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = s_f2h(d);
        // Half away from zero (roundf), as the published reference rounds
        // Q8_0: with it our Q8_0 files equal llama.cpp's byte for byte.
        for (int j = 0; j < 32; j++)
            b[i].qs[j] = (int8_t)s_clampi((int)roundf(x[j] * id), -127, 127);
    }
}

static void s_q8_1_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q8_1_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK32; i++, x += 32) {
        float amax = fabsf(s_signed_absmax(x, 32));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = s_clampi(s_nearest(x[j] * id), -127, 127);
            b[i].qs[j] = (int8_t)q;
            sum += q;
        }
        b[i].d = s_f2h(d);
        b[i].s = s_f2h(d * (float)sum);
    }
}

// ---------------------------------------------------------------- K-quant dequantizers

static void s_q2_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q2_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++) {
        float d = s_h2f(b[i].d), dmin = s_h2f(b[i].dmin);
        const uint8_t *q = b[i].qs;
        int is = 0;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; part++) {
                    uint8_t sc = b[i].scales[is++];
                    float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++)
                        *y++ = dl * (float)((q[l + 16 * part] >> shift) & 3) - ml;
                }
            }
        }
    }
}

static void s_q3_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q3_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++) {
        float d = s_h2f(b[i].d);
        const uint8_t *q = b[i].qs, *hm = b[i].hmask;
        int is = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; half++, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int part = 0; part < 2; part++) {
                    float dl = d * (float)mesh_q3k_scale(is++, b[i].scales);
                    for (int l = 0; l < 16; l++) {
                        int k = l + 16 * part;
                        int v = ((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

static void s_q4_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q4_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++) {
        float d = s_h2f(b[i].d), dmin = s_h2f(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int j = 0; j < 4; j++, q += 32) {
            uint8_t sc, m;
            mesh_q4k_scale_min(2 * j, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            mesh_q4k_scale_min(2 * j + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void s_q5_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q5_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++) {
        float d = s_h2f(b[i].d), dmin = s_h2f(b[i].dmin);
        const uint8_t *ql = b[i].qs, *qh = b[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 4; j++, ql += 32, u1 <<= 2, u2 <<= 2) {
            uint8_t sc, m;
            mesh_q4k_scale_min(2 * j, b[i].scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            mesh_q4k_scale_min(2 * j + 1, b[i].scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

static void s_q6_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q6_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++) {
        float d = s_h2f(b[i].d);
        const uint8_t *ql = b[i].ql, *qh = b[i].qh;
        const int8_t *sc = b[i].scales;
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

static void s_q8_k_to_float(const void *src, float *y, int64_t n) {
    const mesh_block_q8_k_t *b = src;
    for (int64_t i = 0; i < n / MESH_QK_K; i++)
        for (int j = 0; j < MESH_QK_K; j++)
            *y++ = b[i].d * (float)b[i].qs[j];
}

// ---------------------------------------------------------------- K-quant scale search

// Symmetric: x ~ scale * L with L in [-nmax, nmax-1]. Tries iscale candidates
// around nmax/|extreme| and keeps the one maximising (sum w x L)^2 / sum w L^2
// (equivalent to the least weighted squared error with the best scale for
// that L). Writes L + nmax into L (so 0..2*nmax-1) and returns the scale.
static float s_fit_sym(int n, int nmax, const float *x, const float *w, uint8_t *L) {
    float v = s_signed_absmax(x, n);
    if (v == 0.0f) {
        memset(L, nmax, (size_t)n);
        return 0.0f;
    }
    float best_score = -1.0f, best_scale = 0.0f;
    for (int is = -9; is <= 9; is++) {
        float iscale = -((float)nmax + 0.1f * (float)is) / v;
        double sxl = 0, sll = 0;
        for (int j = 0; j < n; j++) {
            int l = s_clampi(s_nearest(iscale * x[j]), -nmax, nmax - 1);
            sxl += (double)w[j] * x[j] * l;
            sll += (double)w[j] * l * l;
        }
        if (sll > 0 && sxl * sxl / sll > best_score) {
            best_score = (float)(sxl * sxl / sll);
            best_scale = (float)(sxl / sll);
        }
    }
    float id = best_scale != 0.0f ? 1.0f / best_scale : 0.0f;
    for (int j = 0; j < n; j++)
        L[j] = (uint8_t)(s_clampi(s_nearest(id * x[j]), -nmax, nmax - 1) + nmax);
    return best_scale;
}

// Asymmetric: x ~ scale * L - mn with L in [0, nmax] and mn >= 0. For each
// candidate step ((max-min)/(nmax + rmin + rdelta*is), is = 0..nstep) rounds,
// then solves the weighted least-squares scale and offset for that L, keeping
// the fit with the least weighted squared error. Returns the scale; *mn_out
// gets the (non-negative) min to subtract.
static float s_fit_asym(int n, int nmax, const float *x, const float *w, uint8_t *L,
                        float *mn_out, float rmin, float rdelta, int nstep) {
    float mn, mx;
    s_minmax(x, n, &mn, &mx);
    if (mn > 0)
        mn = 0; // the format only subtracts; a positive offset is not representable
    if (mx <= mn) {
        memset(L, 0, (size_t)n);
        *mn_out = -mn;
        return 0.0f;
    }
    // Start: plain rounding over [mn, mx].
    float scale = (mx - mn) / (float)nmax, off = mn;
    double best_err = 0;
    {
        float id = 1.0f / scale;
        for (int j = 0; j < n; j++) {
            int l = s_clampi(s_nearest(id * (x[j] - off)), 0, nmax);
            L[j] = (uint8_t)l;
            double e = scale * l + off - x[j];
            best_err += w[j] * e * e;
        }
    }
    uint8_t Lt[MESH_QK_K];
    for (int is = 0; is <= nstep; is++) {
        float iscale = ((float)nmax + rmin + rdelta * (float)is) / (mx - mn);
        double sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
        for (int j = 0; j < n; j++) {
            int l = s_clampi(s_nearest(iscale * (x[j] - mn)), 0, nmax);
            Lt[j] = (uint8_t)l;
            sw += w[j];
            sl += w[j] * l;
            sll += (double)w[j] * l * l;
            sx += w[j] * x[j];
            sxl += (double)w[j] * x[j] * l;
        }
        double det = sw * sll - sl * sl;
        if (det <= 0)
            continue;
        double s = (sw * sxl - sx * sl) / det;
        double o = (sll * sx - sl * sxl) / det;
        if (o > 0) { // clamp the offset to 0 and refit the scale alone
            o = 0;
            s = sll > 0 ? sxl / sll : 0;
        }
        if (s <= 0)
            continue;
        double err = 0;
        for (int j = 0; j < n; j++) {
            double e = s * Lt[j] + o - x[j];
            err += w[j] * e * e;
        }
        if (err < best_err) {
            best_err = err;
            memcpy(L, Lt, (size_t)n);
            scale = (float)s;
            off = (float)o;
        }
    }
    *mn_out = -off;
    return scale;
}

// Weights of the K-quant error: sqrt(mean x^2) + |x| (large elements matter
// more, small ones still count).
static void s_weights_rms_abs(const float *x, int n, float *w) {
    double s2 = 0;
    for (int j = 0; j < n; j++)
        s2 += (double)x[j] * x[j];
    float av = (float)sqrt(s2 / n);
    for (int j = 0; j < n; j++)
        w[j] = av + fabsf(x[j]);
}

// Packs 8 6-bit scales and 8 6-bit mins into the 12-byte Q4_K/Q5_K layout.
static void s_pack_scale_min(const uint8_t *ls, const uint8_t *lm, uint8_t *q) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            q[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32, each
// with its own fitted scale and min, both quantized to 6 bits against the
// super-block's f16 d and dmin; then every element is re-rounded against
// the quantized scale/min it will actually be decoded with.
static void s_qk_asym_super(const float *x, int nmax, uint16_t *d_out, uint16_t *dmin_out,
                            uint8_t *scales, uint8_t *Lq) {
    float sc[8], mn[8], w[32];
    uint8_t L[32];
    float max_sc = 0, max_mn = 0;
    for (int j = 0; j < 8; j++) {
        s_weights_rms_abs(x + 32 * j, 32, w);
        sc[j] = s_fit_asym(32, nmax, x + 32 * j, w, L, &mn[j], -1.0f, 0.1f, 20);
        max_sc = sc[j] > max_sc ? sc[j] : max_sc;
        max_mn = mn[j] > max_mn ? mn[j] : max_mn;
    }
    float inv_sc = max_sc > 0 ? 63.0f / max_sc : 0.0f;
    float inv_mn = max_mn > 0 ? 63.0f / max_mn : 0.0f;
    *d_out = s_f2h(max_sc / 63.0f);
    *dmin_out = s_f2h(max_mn / 63.0f);
    float d = s_h2f(*d_out), dmin = s_h2f(*dmin_out);
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        // Rounding the 6-bit scale and min independently is not the best
        // pair once the elements are re-rounded against them: try the
        // neighbours too (9 pairs x 32 elements, cheap next to the search).
        const float *xs = x + 32 * j;
        s_weights_rms_abs(xs, 32, w);
        int s0 = s_clampi(s_nearest(inv_sc * sc[j]), 0, 63);
        int m0 = s_clampi(s_nearest(inv_mn * mn[j]), 0, 63);
        double best = -1;
        for (int ds = -1; ds <= 1; ds++)
            for (int dm = -1; dm <= 1; dm++) {
                int s6 = s0 + ds, m6 = m0 + dm;
                if (s6 < 0 || s6 > 63 || m6 < 0 || m6 > 63)
                    continue;
                float dl = d * (float)s6, ml = dmin * (float)m6;
                double err = 0;
                for (int l = 0; l < 32; l++) {
                    int q = dl != 0.0f ? s_clampi(s_nearest((xs[l] + ml) / dl), 0, nmax) : 0;
                    double e = dl * (float)q - ml - xs[l];
                    err += w[l] * e * e;
                }
                if (best < 0 || err < best) {
                    best = err;
                    ls[j] = (uint8_t)s6;
                    lm[j] = (uint8_t)m6;
                }
            }
    }
    memset(scales, 0, MESH_K_SCALE_SIZE);
    s_pack_scale_min(ls, lm, scales);
    for (int j = 0; j < 8; j++) {
        uint8_t s6, m6;
        mesh_q4k_scale_min(j, scales, &s6, &m6);
        float dl = d * s6, ml = dmin * m6;
        for (int l = 0; l < 32; l++) {
            int q = dl != 0.0f ? s_nearest((x[32 * j + l] + ml) / dl) : 0;
            Lq[32 * j + l] = (uint8_t)s_clampi(q, 0, nmax);
        }
    }
}

static void s_q4_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q4_k_t *b = dst;
    uint8_t L[MESH_QK_K];
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        s_qk_asym_super(x, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * j + l] = (uint8_t)(L[64 * j + l] | L[64 * j + 32 + l] << 4);
    }
}

static void s_q5_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q5_k_t *b = dst;
    uint8_t L[MESH_QK_K];
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        s_qk_asym_super(x, 31, &b[i].d, &b[i].dmin, b[i].scales, L);
        memset(b[i].qh, 0, 32);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int a = L[64 * j + l], c = L[64 * j + 32 + l];
                b[i].qs[32 * j + l] = (uint8_t)((a & 0xF) | (c & 0xF) << 4);
                b[i].qh[l] |= (uint8_t)(((a >> 4) << (2 * j)) | ((c >> 4) << (2 * j + 1)));
            }
    }
}

static void s_q2_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q2_k_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        float sc[16], mn[16], w[16];
        uint8_t L[MESH_QK_K];
        float max_sc = 0, max_mn = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = fabsf(x[16 * j + l]);
            sc[j] = s_fit_asym(16, 3, x + 16 * j, w, L + 16 * j, &mn[j], -0.5f, 0.1f, 15);
            max_sc = sc[j] > max_sc ? sc[j] : max_sc;
            max_mn = mn[j] > max_mn ? mn[j] : max_mn;
        }
        float inv_sc = max_sc > 0 ? 15.0f / max_sc : 0.0f;
        float inv_mn = max_mn > 0 ? 15.0f / max_mn : 0.0f;
        for (int j = 0; j < 16; j++) {
            int ls = s_clampi(s_nearest(inv_sc * sc[j]), 0, 15);
            int lm = s_clampi(s_nearest(inv_mn * mn[j]), 0, 15);
            b[i].scales[j] = (uint8_t)(ls | lm << 4);
        }
        b[i].d = s_f2h(max_sc / 15.0f);
        b[i].dmin = s_f2h(max_mn / 15.0f);
        float d = s_h2f(b[i].d), dmin = s_h2f(b[i].dmin);
        for (int j = 0; j < 16; j++) {
            float dl = d * (float)(b[i].scales[j] & 0xF);
            float ml = dmin * (float)(b[i].scales[j] >> 4);
            for (int l = 0; l < 16; l++) {
                int q = dl != 0.0f ? s_nearest((x[16 * j + l] + ml) / dl) : 0;
                L[16 * j + l] = (uint8_t)s_clampi(q, 0, 3);
            }
        }
        // Element 32*g + l (g = 0..7 within each 128-half) sits in qs[32*half + l]
        // at bit 2*(g%4): groups of 32 share a byte column across 4 shifts.
        memset(b[i].qs, 0, 64);
        for (int half = 0; half < 2; half++)
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++)
                    b[i].qs[32 * half + l] |= (uint8_t)(L[128 * half + 32 * g + l] << (2 * g));
    }
}

static void s_q3_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q3_k_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        float sc[16], w[16];
        uint8_t L[MESH_QK_K];
        float max_abs = 0, max_sc = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = x[16 * j + l] * x[16 * j + l];
            sc[j] = s_fit_sym(16, 4, x + 16 * j, w, L + 16 * j);
            if (fabsf(sc[j]) > max_abs) {
                max_abs = fabsf(sc[j]);
                max_sc = sc[j];
            }
        }
        memset(b[i].scales, 0, 12);
        float d = 0.0f;
        if (max_sc != 0.0f) {
            float iscale = -32.0f / max_sc;
            for (int j = 0; j < 16; j++) {
                int l = s_clampi(s_nearest(iscale * sc[j]), -32, 31) + 32;
                if (j < 8)
                    b[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    b[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                b[i].scales[8 + (j & 3)] |= (uint8_t)((l >> 4) << (2 * (j >> 2)));
            }
            d = 1.0f / iscale;
        }
        b[i].d = s_f2h(d);
        float dh = s_h2f(b[i].d);
        for (int j = 0; j < 16; j++) {
            float dl = dh * (float)mesh_q3k_scale(j, b[i].scales);
            for (int l = 0; l < 16; l++) {
                int q = dl != 0.0f ? s_nearest(x[16 * j + l] / dl) : 0;
                L[16 * j + l] = (uint8_t)(s_clampi(q, -4, 3) + 4);
            }
        }
        memset(b[i].hmask, 0, 32);
        memset(b[i].qs, 0, 64);
        // Element 128*half + 32*g + l: low 2 bits in qs[32*half + l] at 2*g,
        // high bit in hmask[l] at bit 4*half + g.
        for (int half = 0; half < 2; half++)
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++) {
                    int q = L[128 * half + 32 * g + l];
                    b[i].qs[32 * half + l] |= (uint8_t)((q & 3) << (2 * g));
                    if (q > 3)
                        b[i].hmask[l] |= (uint8_t)(1 << (4 * half + g));
                }
    }
}

static void s_q6_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q6_k_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        float sc[16], w[16];
        uint8_t L[MESH_QK_K];
        float max_abs = 0, max_sc = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                w[l] = x[16 * j + l] * x[16 * j + l];
            sc[j] = s_fit_sym(16, 32, x + 16 * j, w, L + 16 * j);
            if (fabsf(sc[j]) > max_abs) {
                max_abs = fabsf(sc[j]);
                max_sc = sc[j];
            }
        }
        float d = 0.0f;
        if (max_sc != 0.0f) {
            float iscale = -128.0f / max_sc;
            d = 1.0f / iscale;
            for (int j = 0; j < 16; j++)
                b[i].scales[j] = (int8_t)s_clampi(s_nearest(iscale * sc[j]), -128, 127);
        } else {
            memset(b[i].scales, 0, 16);
        }
        b[i].d = s_f2h(d);
        float dh = s_h2f(b[i].d);
        for (int j = 0; j < 16; j++) {
            float dl = dh * (float)b[i].scales[j];
            for (int l = 0; l < 16; l++) {
                int q = dl != 0.0f ? s_nearest(x[16 * j + l] / dl) : 0;
                L[16 * j + l] = (uint8_t)(s_clampi(q, -32, 31) + 32);
            }
        }
        // Element 128*half + 32*g + l (g = 0..3): low nibble in ql[64*half +
        // 32*(g&1) + l] (high nibble when g >= 2), top 2 bits in qh[32*half + l]
        // at bit 2*g.
        memset(b[i].ql, 0, 128);
        memset(b[i].qh, 0, 64);
        for (int half = 0; half < 2; half++)
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++) {
                    int q = L[128 * half + 32 * g + l];
                    b[i].ql[64 * half + 32 * (g & 1) + l] |= (uint8_t)((q & 0xF) << (4 * (g >> 1)));
                    b[i].qh[32 * half + l] |= (uint8_t)((q >> 4) << (2 * g));
                }
    }
}

static void s_q8_k_from_float(const float *x, void *dst, int64_t n) {
    mesh_block_q8_k_t *b = dst;
    for (int64_t i = 0; i < n / MESH_QK_K; i++, x += MESH_QK_K) {
        float amax = fabsf(s_signed_absmax(x, MESH_QK_K));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = d;
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                int q = s_clampi(s_nearest(x[16 * g + l] * id), -127, 127);
                b[i].qs[16 * g + l] = (int8_t)q;
                sum += q;
            }
            b[i].bsums[g] = (int16_t)sum;
        }
    }
}

_Static_assert(sizeof(mesh_block_q4_0_t) == 18, "q4_0 layout");
_Static_assert(sizeof(mesh_block_q4_1_t) == 20, "q4_1 layout");
_Static_assert(sizeof(mesh_block_q5_0_t) == 22, "q5_0 layout");
_Static_assert(sizeof(mesh_block_q5_1_t) == 24, "q5_1 layout");
_Static_assert(sizeof(mesh_block_q8_0_t) == 34, "q8_0 layout");
_Static_assert(sizeof(mesh_block_q8_1_t) == 36, "q8_1 layout");
_Static_assert(sizeof(mesh_block_q2_k_t) == 84, "q2_K layout");
_Static_assert(sizeof(mesh_block_q3_k_t) == 110, "q3_K layout");
_Static_assert(sizeof(mesh_block_q4_k_t) == 144, "q4_K layout");
_Static_assert(sizeof(mesh_block_q5_k_t) == 176, "q5_K layout");
_Static_assert(sizeof(mesh_block_q6_k_t) == 210, "q6_K layout");
_Static_assert(sizeof(mesh_block_q8_k_t) == 292, "q8_K layout");

void mesh__quant_ref_fill(mesh_qtype_traits_t *t, int n) {
    static const struct {
        mesh_qtype_t type;
        mesh_qt_to_float_fn to;
        mesh_qt_from_float_fn from;
    } fns[] = {
        {MESH_QT_Q4_0, s_q4_0_to_float, s_q4_0_from_float},
        {MESH_QT_Q4_1, s_q4_1_to_float, s_q4_1_from_float},
        {MESH_QT_Q5_0, s_q5_0_to_float, s_q5_0_from_float},
        {MESH_QT_Q5_1, s_q5_1_to_float, s_q5_1_from_float},
        {MESH_QT_Q8_0, s_q8_0_to_float, s_q8_0_from_float},
        {MESH_QT_Q8_1, s_q8_1_to_float, s_q8_1_from_float},
        {MESH_QT_Q2_K, s_q2_k_to_float, s_q2_k_from_float},
        {MESH_QT_Q3_K, s_q3_k_to_float, s_q3_k_from_float},
        {MESH_QT_Q4_K, s_q4_k_to_float, s_q4_k_from_float},
        {MESH_QT_Q5_K, s_q5_k_to_float, s_q5_k_from_float},
        {MESH_QT_Q6_K, s_q6_k_to_float, s_q6_k_from_float},
        {MESH_QT_Q8_K, s_q8_k_to_float, s_q8_k_from_float},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        if ((int)fns[i].type >= n)
            continue;
        t[fns[i].type].to_float = fns[i].to;
        t[fns[i].type].from_float = fns[i].from;
    }
}
