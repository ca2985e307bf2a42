// SPDX-License-Identifier: MIT
// Benchmark of the fused CPU dot products (kernels/cpu/quant_dot.h), one
// thread. For every weight type:
//   decode: n_cols = 1 over a weight matrix larger than the caches, reported
//           as GB/s of weights streamed (the memory-bound case);
//   prompt: n_cols = 8 over a cache-sized matrix, reported as GFLOP/s
//           (2 flops per weight per column; the compute-bound case);
// each for the scalar reference and the best SIMD level, with the ratio
// SIMD / scalar. Best of several runs.
#include "cpu_features.h"
#include "quant.h"
#include "quant_dot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

// Thread CPU time, not wall time: on a shared build machine other jobs
// steal the core, and CPU time is what the kernel itself costs.
static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t s_rng = 88172645463325252ull;
static float s_randf(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (float)((double)(s_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

// Fills rows x k weights: 16 really quantized rows, repeated (quantizing
// hundreds of MB with the K-quant search would take longer than the bench).
static uint8_t *s_make_weights(mesh_qtype_t t, int64_t k, int rows, size_t *rb) {
    *rb = mesh_qtype_row_size(t, k);
    uint8_t *w = aligned_alloc(64, (*rb * (size_t)rows + 63) / 64 * 64);
    float *tmp = malloc(sizeof(float) * (size_t)k);
    int seed_rows = rows < 16 ? rows : 16;
    for (int r = 0; r < seed_rows; r++) {
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_randf() * 0.05f;
        mesh_qtype_traits(t)->from_float(tmp, w + (size_t)r * *rb, k);
    }
    for (int r = seed_rows; r < rows; r++)
        memcpy(w + (size_t)r * *rb, w + (size_t)(r % seed_rows) * *rb, *rb);
    free(tmp);
    return w;
}

static uint8_t *s_make_acts(mesh_qtype_t wt, int64_t k, int n, size_t *xrb) {
    *xrb = mesh_cpu_act_row_size(wt, k);
    uint8_t *x = aligned_alloc(64, (*xrb * (size_t)n + 63) / 64 * 64);
    float *tmp = malloc(sizeof(float) * (size_t)k);
    for (int c = 0; c < n; c++) {
        for (int64_t i = 0; i < k; i++)
            tmp[i] = s_randf();
        mesh_cpu_quantize_act(mesh_cpu_act_type(wt), tmp, x + (size_t)c * *xrb, k);
    }
    free(tmp);
    return x;
}

// Seconds per call, best of reps.
static double s_time(mesh_simd_level_t lv, mesh_qtype_t t, int64_t k, const uint8_t *w, size_t rb,
                     int rows, const uint8_t *x, size_t xrb, int nc, float *y, int reps) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = s_now();
        mesh_cpu_gemm_tile_level(lv, t, k, w, rb, rows, x, xrb, nc, y, (size_t)rows);
        double dt = s_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        mesh_qtype_t t;
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (mesh_qtype_parse(argv[i], &t) == 0) {
            only = argv[i];
        } else {
            printf("usage: bench_quant [--quick] [TYPE]\n\nSingle-thread speed of the fused CPU dot\n"
                   "products, scalar vs the best SIMD level of this CPU; TYPE (q4_K, bf16, ...)\n"
                   "limits it to one weight type. --quick: 16 MB matrices instead of 128 MB.\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    static const mesh_qtype_t types[] = {MESH_QT_BF16, MESH_QT_F16,  MESH_QT_F32,  MESH_QT_Q8_0,
                                         MESH_QT_Q6_K, MESH_QT_Q5_K, MESH_QT_Q4_K, MESH_QT_Q3_K,
                                         MESH_QT_Q2_K, MESH_QT_Q5_0, MESH_QT_Q5_1, MESH_QT_Q4_0,
                                         MESH_QT_Q4_1};
    mesh_simd_level_t best = mesh_cpu_simd_level();
    const int64_t k = 4096;
    const size_t decode_bytes = quick ? (16u << 20) : (128u << 20); // past the caches
    printf("bench_quant: one thread (timed in thread CPU time), k = %lld, SIMD level %s\n", (long long)k,
           mesh_cpu_simd_name(best));
    printf("%-6s | %-31s | %-33s\n", "", "decode n_cols=1 (GB/s weights)",
           "prompt n_cols=8 (GFLOP/s)");
    printf("%-6s | %9s %9s %9s | %9s %9s %9s\n", "type", "scalar", "simd", "ratio", "scalar",
           "simd", "ratio");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        mesh_qtype_t t = types[ti];
        if (only && strcasecmp(only, mesh_qtype_name(t)))
            continue;
        size_t rb, xrb;
        int rows = (int)(decode_bytes / mesh_qtype_row_size(t, k));
        uint8_t *w = s_make_weights(t, k, rows, &rb);
        uint8_t *x = s_make_acts(t, k, 8, &xrb);
        float *y = malloc(sizeof(float) * (size_t)rows * 8);
        int srows = rows / 8; // scalar is compute-bound anyway: fewer rows, same rate
        double ds = s_time(MESH_SIMD_SCALAR, t, k, w, rb, srows, x, xrb, 1, y, 2);
        double dv = s_time(best, t, k, w, rb, rows, x, xrb, 1, y, 3);
        double gbs_s = (double)rb * srows / ds / 1e9, gbs_v = (double)rb * rows / dv / 1e9;
        int prows = 256; // ~0.5-2 MB of weights: stays in L2/L3
        double ps = s_time(MESH_SIMD_SCALAR, t, k, w, rb, prows / 4, x, xrb, 8, y, 2);
        double pv = s_time(best, t, k, w, rb, prows, x, xrb, 8, y, 5);
        double gf_s = 2.0 * (double)k * (prows / 4) * 8 / ps / 1e9;
        double gf_v = 2.0 * (double)k * prows * 8 / pv / 1e9;
        printf("%-6s | %9.2f %9.2f %8.1fx | %9.2f %9.2f %8.1fx\n", mesh_qtype_name(t), gbs_s, gbs_v,
               gbs_v / gbs_s, gf_s, gf_v, gf_v / gf_s);
        fflush(stdout);
        free(w);
        free(x);
        free(y);
    }
    return 0;
}
