// SPDX-License-Identifier: MIT
// What the CPU we run on can do, read once at first use (CPUID on x86-64).
// SIMD kernels pick their variant from this at run time, so one binary runs
// on any CPU of its architecture. MESH_CPU_SIMD=scalar|avx2|avx512 in the
// environment caps the level (for tests that compare variants).
#ifndef MESH_CPU_FEATURES_H
#define MESH_CPU_FEATURES_H

#include <stdbool.h>

typedef enum {
    MESH_SIMD_SCALAR = 0,
    MESH_SIMD_AVX2,   // AVX2 + FMA + F16C
    MESH_SIMD_AVX512, // AVX-512 F/BW/VL/DQ on top of AVX2
    MESH_SIMD_NEON,
    MESH_SIMD_COUNT
} mesh_simd_level_t;

typedef struct {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni;
    bool neon;
    int physical_cores; // best guess; at least 1
} mesh_cpu_features_t;

const mesh_cpu_features_t *mesh_cpu_features(void);
// Highest level usable here, after the MESH_CPU_SIMD cap.
mesh_simd_level_t mesh_cpu_simd_level(void);
const char *mesh_cpu_simd_name(mesh_simd_level_t level);
// Architecture string for capability reports: "cpu-avx512", "cpu-avx2", "cpu-neon", "cpu".
const char *mesh_cpu_arch_name(void);

#endif
