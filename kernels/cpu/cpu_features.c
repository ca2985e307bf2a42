// SPDX-License-Identifier: MIT
// CPU feature detection (CPUID/XGETBV on x86-64, compile-time on arm64) and
// a physical core count from sysfs.
#include "cpu_features.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static mesh_cpu_features_t s_feat;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

// Counts distinct (package, core) pairs; falls back to online CPUs. O(cpus).
static int s_count_physical_cores(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1)
        online = 1;
    int seen[1024][2];
    int n_seen = 0;
    for (long cpu = 0; cpu < online && cpu < 1024; cpu++) {
        char path[128];
        int pkg = -1, core = -1;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", cpu);
        FILE *f = fopen(path, "r");
        if (!f)
            return (int)online;
        if (fscanf(f, "%d", &pkg) != 1)
            pkg = -1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", cpu);
        f = fopen(path, "r");
        if (!f)
            return (int)online;
        if (fscanf(f, "%d", &core) != 1)
            core = -1;
        fclose(f);
        int dup = 0;
        for (int i = 0; i < n_seen; i++)
            if (seen[i][0] == pkg && seen[i][1] == core)
                dup = 1;
        if (!dup) {
            seen[n_seen][0] = pkg;
            seen[n_seen][1] = core;
            n_seen++;
        }
    }
    return n_seen > 0 ? n_seen : (int)online;
}

static void s_detect(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = (c >> 27) & 1;
        bool avx = (c >> 28) & 1;
        s_feat.fma = (c >> 12) & 1;
        s_feat.f16c = (c >> 29) & 1;
        unsigned xcr0 = 0;
        if (osxsave) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = lo;
        }
        bool ymm_ok = avx && (xcr0 & 0x6) == 0x6;
        bool zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            s_feat.avx2 = ymm_ok && ((b >> 5) & 1);
            s_feat.avx512f = zmm_ok && ((b >> 16) & 1);
            s_feat.avx512dq = zmm_ok && ((b >> 17) & 1);
            s_feat.avx512bw = zmm_ok && ((b >> 30) & 1);
            s_feat.avx512vl = zmm_ok && ((b >> 31) & 1);
            s_feat.avx512vnni = zmm_ok && ((c >> 11) & 1);
        }
        if (!ymm_ok)
            s_feat.fma = s_feat.f16c = false;
    }
#elif defined(__aarch64__)
    s_feat.neon = true;
#endif
    s_feat.physical_cores = s_count_physical_cores();
}

const mesh_cpu_features_t *mesh_cpu_features(void) {
    pthread_once(&s_once, s_detect);
    return &s_feat;
}

mesh_simd_level_t mesh_cpu_simd_level(void) {
    const mesh_cpu_features_t *f = mesh_cpu_features();
    mesh_simd_level_t lv = MESH_SIMD_SCALAR;
    if (f->neon)
        lv = MESH_SIMD_NEON;
    if (f->avx2 && f->fma && f->f16c)
        lv = MESH_SIMD_AVX2;
    if (lv == MESH_SIMD_AVX2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq)
        lv = MESH_SIMD_AVX512;
    const char *cap = getenv("MESH_CPU_SIMD");
    if (cap) {
        mesh_simd_level_t want = lv;
        if (!strcmp(cap, "scalar"))
            want = MESH_SIMD_SCALAR;
        else if (!strcmp(cap, "avx2"))
            want = MESH_SIMD_AVX2;
        else if (!strcmp(cap, "avx512"))
            want = MESH_SIMD_AVX512;
        if (want < lv)
            lv = want;
    }
    return lv;
}

const char *mesh_cpu_simd_name(mesh_simd_level_t level) {
    static const char *const names[MESH_SIMD_COUNT] = {"scalar", "avx2", "avx512", "neon"};
    return (unsigned)level < MESH_SIMD_COUNT ? names[level] : "?";
}

const char *mesh_cpu_arch_name(void) {
    switch (mesh_cpu_simd_level()) {
    case MESH_SIMD_AVX512:
        return "cpu-avx512";
    case MESH_SIMD_AVX2:
        return "cpu-avx2";
    case MESH_SIMD_NEON:
        return "cpu-neon";
    default:
        return "cpu";
    }
}
