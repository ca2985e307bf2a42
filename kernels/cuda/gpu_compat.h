// SPDX-License-Identifier: MIT
// Portability layer between CUDA and HIP for the GPU kernels in this folder.
//
// Every .cu file includes this instead of naming the vendor runtime, so the
// HIP backend (kernels/hip/) can compile the same sources by defining
// MESH_GPU_HIP: runtime calls are spelled gpuXxx, warp shuffles go through
// s_shfl_xor, and the warp width is MESH_WARP. Costs nothing at run time
// (macros and inline functions only). Keep to what both toolkits support:
// no inline PTX outside #if MESH_GPU_CUDA blocks, wmma only behind
// MESH_GPU_HAS_WMMA.
#ifndef MESH_GPU_COMPAT_H
#define MESH_GPU_COMPAT_H

#include <stdint.h>

#include <utility>

#if defined(MESH_GPU_HIP)
#include <hip/hip_bf16.h>
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#define MESH_GPU_CUDA 0
#define MESH_WARP 64
#define gpuError_t hipError_t
#define gpuSuccess hipSuccess
#define gpuGetErrorString hipGetErrorString
#define gpuGetLastError hipGetLastError
#define gpuMalloc hipMalloc
#define gpuFree hipFree
#define gpuMemset hipMemset
#define gpuMemsetAsync hipMemsetAsync
#define gpuMemcpy hipMemcpy
#define gpuMemcpyAsync hipMemcpyAsync
#define gpuMemcpyHostToDevice hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define gpuMemGetInfo hipMemGetInfo
#define gpuSetDevice hipSetDevice
#define gpuGetDevice hipGetDevice
#define gpuDeviceGetAttribute hipDeviceGetAttribute
#define gpuDevAttrMaxSharedMemoryPerBlockOptin hipDeviceAttributeSharedMemPerBlockOptin
#define gpuDevAttrComputeCapabilityMajor hipDeviceAttributeComputeCapabilityMajor
#define gpuGetDeviceCount hipGetDeviceCount
#define gpuDeviceProp hipDeviceProp_t
#define gpuGetDeviceProperties hipGetDeviceProperties
#define gpuStream_t hipStream_t
#define gpuStreamCreateWithFlags hipStreamCreateWithFlags
#define gpuStreamNonBlocking hipStreamNonBlocking
#define gpuStreamDestroy hipStreamDestroy
#define gpuStreamSynchronize hipStreamSynchronize
#define gpuGraph_t hipGraph_t
#define gpuGraphExec_t hipGraphExec_t
#define gpuStreamBeginCapture hipStreamBeginCapture
#define gpuStreamCaptureModeThreadLocal hipStreamCaptureModeThreadLocal
#define gpuStreamEndCapture hipStreamEndCapture
#define gpuGraphInstantiate(e, g) hipGraphInstantiate(e, g, NULL, NULL, 0)
#define gpuGraphLaunch hipGraphLaunch
#define gpuGraphDestroy hipGraphDestroy
#define gpuGraphExecDestroy hipGraphExecDestroy
#define gpuFuncSetAttribute hipFuncSetAttribute
#define gpuFuncGetAttributes hipFuncGetAttributes
#define gpuFuncAttributes hipFuncAttributes
#define gpuFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define MESH_GPU_HAS_WMMA 0
typedef __hip_bfloat16 gpu_bf16;
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define MESH_GPU_CUDA 1
#define MESH_WARP 32
#define gpuError_t cudaError_t
#define gpuSuccess cudaSuccess
#define gpuGetErrorString cudaGetErrorString
#define gpuGetLastError cudaGetLastError
#define gpuMalloc cudaMalloc
#define gpuFree cudaFree
#define gpuMemset cudaMemset
#define gpuMemsetAsync cudaMemsetAsync
#define gpuMemcpy cudaMemcpy
#define gpuMemcpyAsync cudaMemcpyAsync
#define gpuMemcpyHostToDevice cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define gpuMemGetInfo cudaMemGetInfo
#define gpuSetDevice cudaSetDevice
#define gpuGetDevice cudaGetDevice
#define gpuDeviceGetAttribute cudaDeviceGetAttribute
#define gpuDevAttrMaxSharedMemoryPerBlockOptin cudaDevAttrMaxSharedMemoryPerBlockOptin
#define gpuDevAttrComputeCapabilityMajor cudaDevAttrComputeCapabilityMajor
#define gpuGetDeviceCount cudaGetDeviceCount
#define gpuDeviceProp cudaDeviceProp
#define gpuGetDeviceProperties cudaGetDeviceProperties
#define gpuStream_t cudaStream_t
#define gpuStreamCreateWithFlags cudaStreamCreateWithFlags
#define gpuStreamNonBlocking cudaStreamNonBlocking
#define gpuStreamDestroy cudaStreamDestroy
#define gpuStreamSynchronize cudaStreamSynchronize
#define gpuGraph_t cudaGraph_t
#define gpuGraphExec_t cudaGraphExec_t
#define gpuStreamBeginCapture cudaStreamBeginCapture
#define gpuStreamCaptureModeThreadLocal cudaStreamCaptureModeThreadLocal
#define gpuStreamEndCapture cudaStreamEndCapture
#define gpuGraphInstantiate(e, g) cudaGraphInstantiate(e, g, 0)
#define gpuGraphLaunch cudaGraphLaunch
#define gpuGraphDestroy cudaGraphDestroy
#define gpuGraphExecDestroy cudaGraphExecDestroy
#define gpuFuncSetAttribute cudaFuncSetAttribute
#define gpuFuncGetAttributes cudaFuncGetAttributes
#define gpuFuncAttributes cudaFuncAttributes
#define gpuFuncAttributeMaxDynamicSharedMemorySize cudaFuncAttributeMaxDynamicSharedMemorySize
#define MESH_GPU_HAS_WMMA 1
typedef __nv_bfloat16 gpu_bf16;
#endif

// Butterfly reduction step across the warp (all lanes active).
static __device__ __forceinline__ float s_shfl_xor(float v, int m) {
#if MESH_GPU_CUDA
    return __shfl_xor_sync(0xffffffffu, v, m);
#else
    return __shfl_xor(v, m);
#endif
}

static __device__ __forceinline__ int s_shfl_xor_i(int v, int m) {
#if MESH_GPU_CUDA
    return __shfl_xor_sync(0xffffffffu, v, m);
#else
    return __shfl_xor(v, m);
#endif
}

// Lane src's value (all lanes active).
static __device__ __forceinline__ float s_shfl(float v, int src) {
#if MESH_GPU_CUDA
    return __shfl_sync(0xffffffffu, v, src);
#else
    return __shfl(v, src);
#endif
}

static __device__ __forceinline__ int s_shfl_i(int v, int src) {
#if MESH_GPU_CUDA
    return __shfl_sync(0xffffffffu, v, src);
#else
    return __shfl(v, src);
#endif
}

// Bit l set where lane l's predicate holds (lanes 0..31; all lanes active).
static __device__ __forceinline__ uint32_t s_ballot(bool p) {
#if MESH_GPU_CUDA
    return __ballot_sync(0xffffffffu, p);
#else
    return (uint32_t)__ballot(p);
#endif
}

static __device__ __forceinline__ float mesh_warp_sum(float v) {
    for (int m = MESH_WARP / 2; m > 0; m >>= 1)
        v += s_shfl_xor(v, m);
    return v;
}

static __device__ __forceinline__ float mesh_warp_max(float v) {
    for (int m = MESH_WARP / 2; m > 0; m >>= 1)
        v = fmaxf(v, s_shfl_xor(v, m));
    return v;
}

// Programmatic dependent launch (Hopper and later). Kernels are launched
// with mesh_launch, which on CUDA lets the next kernel of the stream (or of
// the captured decode graph) be scheduled while this one still runs, so its
// launch and block set-up hide behind this kernel's tail instead of leaving
// a gap between two short kernels. The contract that keeps this safe: every
// kernel in this folder calls mesh_pdl_begin() first. Its wait returns only
// once the kernel before has finished and its writes are visible (so the
// chain is ordered as without it); its trigger then lets the next kernel in.
// Off (mesh_gpu_pdl false: an ordinary launch, and mesh_pdl_begin() returns
// at once) on older GPUs, on HIP, and unless MESH_CUDA_PDL=1.
extern bool mesh_gpu_pdl; // set once by the backend at start

static __device__ __forceinline__ void mesh_pdl_begin(void) {
#if MESH_GPU_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... P, typename... A>
static inline void mesh_launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem,
                               gpuStream_t s, A &&...args) {
#if MESH_GPU_CUDA
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = mesh_gpu_pdl ? 1 : 0;
    (void)cudaLaunchKernelEx(&cfg, k, std::forward<A>(args)...); // errors: gpuGetLastError
#else
    k<<<grid, block, smem, s>>>(std::forward<A>(args)...);
#endif
}

#endif
