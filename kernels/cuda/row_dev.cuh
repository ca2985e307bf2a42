// SPDX-License-Identifier: MIT
// Device helpers for kernels that reduce over a token's row with one block
// (RMSNorm in norm_rope.cu, and the MoE combine fused with the residual add
// and the next norm in moe.cu), so every such norm rounds alike.
#ifndef MESH_CU_ROW_DEV_CUH
#define MESH_CU_ROW_DEV_CUH

#include "gpu_compat.h"

// Sum of v over the block (any multiple of 32 threads up to 1024), the same
// bits in every thread.
static __device__ float s_block_sum(float v) {
    __shared__ float red[32];
    v = mesh_warp_sum(v);
    if ((threadIdx.x & 31) == 0)
        red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        float u = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        u = mesh_warp_sum(u);
        if (threadIdx.x == 0)
            red[0] = u;
    }
    __syncthreads();
    const float r = red[0];
    __syncthreads(); // red may be reused by the caller's next sum
    return r;
}

// yr = xr / rms(xr) * w over width, the block's threads striding; ss is
// this thread's share of the sum of squares (its own elements, in order).
// In place is allowed: each thread rewrites only the elements it read.
static __device__ void s_rms_row(const float *xr, float *yr, int width, const float *w, float eps,
                                 float ss) {
    const float inv = rsqrtf(s_block_sum(ss) / (float)width + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x)
        yr[i] = w ? (xr[i] * inv) * w[i] : xr[i] * inv;
}

#endif
