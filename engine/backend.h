// SPDX-License-Identifier: MIT
// The backend interface: what a model graph may ask of a device.
//
// A backend is a struct of function pointers (mesh_backend_iface_t) plus an
// opaque context, ggml-style. Model graphs (engine/model_*.c) call only these
// slots and never know which device they run on; kernels/<name>/ implement
// them and expose only mesh_kern_<name>_register(). Memory is named by
// backend buffers plus byte offsets (mesh_bptr_t), never by host pointers, so
// a GPU backend can implement every op on device memory.
//
// Activations are f32 unless a slot says otherwise. Strides are in elements
// (floats) unless named *_bytes. Every op must give each token's result
// independently of the other tokens in the call (bit-identical whatever the
// batch holds): the engine promises that "a batch of N sequences == each
// alone".
//
// Ops are synchronous from the caller's view on the CPU backend; a GPU
// backend may queue them and synchronise in buf_download (the only slot that
// returns data to the host).
#ifndef MESH_BACKEND_H
#define MESH_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mesh_bbuf mesh_bbuf_t; // backend-defined buffer

// A place in a backend buffer.
typedef struct {
    mesh_bbuf_t *buf;
    size_t off; // bytes from the start of buf
} mesh_bptr_t;

// A weight tensor as the backend holds it. Up to 3 dims, GGUF order:
// ne[0] is the row length (elements), ne[1] rows per matrix, ne[2] matrices
// (experts or heads). nb[1] = bytes per row, nb[2] = bytes per matrix.
typedef struct {
    mesh_bptr_t data;
    uint32_t type;   // mesh_qtype_t of the stored data
    int64_t ne[3];
    size_t nb[3];
    void *extra;     // backend-private (e.g. a repacked layout); NULL on CPU
} mesh_bweight_t;

// RoPE parameters (per model). Angles: theta_i = pos * freq_base^(-2i/n_rot),
// YaRN-corrected when yarn is set.
typedef struct {
    int n_rot;            // rotated dims per head (even)
    float freq_base;
    bool neox;            // false: rotate pairs (2i, 2i+1); true: (i, i+n_rot/2)
    bool yarn;
    float yarn_factor;    // context extension factor (>= 1)
    int yarn_orig_ctx;    // original training context
    float yarn_beta_fast; // 32 by convention
    float yarn_beta_slow; // 1 by convention
    float yarn_attn_factor; // mscale applied to cos/sin (1 for DeepSeek: folded into the attention scale)
} mesh_rope_params_t;

// Per-token attention plan entry for mla_attn (int32, uploaded by the graph).
typedef struct {
    int32_t n_ctx;     // cached tokens this token attends to: slots [0, n_ctx)
    int32_t table_off; // index into the block table array of this token's sequence
} mesh_attn_tok_t;

// MLA absorbed attention over the paged latent cache, one layer, a batch.
typedef struct {
    mesh_bptr_t q;        // [n][n_head][d_kv]: per head (k_b·q_nope, roped q_pe)
    mesh_bptr_t out;      // [n][n_head][kv_lora]: sum_t p_t * c_t
    mesh_bptr_t toks;     // [n] mesh_attn_tok_t
    mesh_bptr_t tables;   // int32 block ids, indexed by toks[i].table_off + slot / block_tokens
    mesh_bptr_t cache;    // the KV pool (see kv_store)
    int n;                // tokens
    int n_head;
    int kv_lora;          // latent width (c)
    int d_kv;             // kv_lora + rope dims: one cached row
    int layer;
    int n_layer;
    int block_tokens;     // tokens per cache block
    uint32_t cache_type;  // MESH_QT_F32 or MESH_QT_F16
    float scale;          // softmax scale (YaRN mscale already folded in)
} mesh_mla_args_t;

// Mixture of experts, one layer, a batch: router + top-k + routed experts +
// shared expert + weighted sum. out[t] = sum_k w_k expert_{e_k}(x[t]) + shared(x[t]).
typedef struct {
    mesh_bptr_t x;                   // [n][n_embd] normalised input
    mesh_bptr_t out;                 // [n][n_embd] (overwritten)
    mesh_bptr_t scratch;             // moe_scratch_bytes() bytes
    int n;
    const mesh_bweight_t *router;    // [n_embd, n_expert] (f32 in practice)
    const mesh_bweight_t *sel_bias;  // [n_expert] f32 added for selection only, or NULL
    const mesh_bweight_t *gate_exps; // [n_embd, n_ff, n_expert]
    const mesh_bweight_t *up_exps;   // [n_embd, n_ff, n_expert]
    const mesh_bweight_t *down_exps; // [n_ff, n_embd, n_expert]
    const mesh_bweight_t *gate_sh;   // [n_embd, n_ff_sh] or NULL (no shared expert)
    const mesh_bweight_t *up_sh;     // [n_embd, n_ff_sh]
    const mesh_bweight_t *down_sh;   // [n_ff_sh, n_embd]
    int n_embd, n_ff, n_ff_sh, n_expert, n_used;
    int gating;                      // 1 softmax, 2 sigmoid
    bool norm_w;                     // normalise chosen weights to sum 1
    float w_scale;                   // multiply chosen weights
} mesh_moe_args_t;

// MLA's step between the projections and attention, one layer, a batch:
// rope of each head's rope part of q into qc (as the rope slot), RMSNorm of
// the kv latent kv[t][0:kv_lora] (weight kv_norm), rope of kv[t][kv_lora:
// kv_lora + n_rot] (both in place), then the row kv[t][0:kv_lora + n_rot]
// stored in the cache at slot[t] (as kv_store).
typedef struct {
    mesh_bptr_t q;                  // q[t][h*q_head + 0:n_rot]: rope input
    int64_t q_stride, q_head;
    mesh_bptr_t qc;                 // qc[t][h*qc_head + 0:n_rot]: rope output
    int64_t qc_stride, qc_head;
    int n_head;
    mesh_bptr_t kv;                 // [n][kv_stride]
    int64_t kv_stride;
    int kv_lora;
    const mesh_bweight_t *kv_norm;  // f32 [kv_lora]
    float eps;
    mesh_bptr_t pos, slot;          // int32 [n]
    mesh_bptr_t cache;              // the KV pool (see kv_store)
    uint32_t cache_type;
    int n_layer, layer, block_tokens;
    int n;
    const mesh_rope_params_t *rope;
} mesh_mla_prep_t;

typedef struct mesh_backend mesh_backend_t;

typedef struct {
    const char *name; // "cpu", "cuda", ...

    // Device description for capability reports. Bytes.
    void (*device_info)(void *ctx, char *name, size_t name_len, uint64_t *mem_total,
                        uint64_t *mem_free);

    // ---- memory ----
    // Allocates size bytes (zeroed). 0 or a negative MESH_E* code.
    int (*buf_alloc)(void *ctx, size_t size, mesh_bbuf_t **out);
    // (optional) Wraps host memory that outlives the buffer (a mapped file)
    // without copying; read-only for ops. (defaults to buf_alloc + buf_upload)
    int (*buf_wrap_host)(void *ctx, const void *host, size_t size, mesh_bbuf_t **out);
    void (*buf_free)(void *ctx, mesh_bbuf_t *buf); // NULL-safe
    int (*buf_upload)(void *ctx, mesh_bptr_t dst, const void *src, size_t n);
    int (*buf_download)(void *ctx, void *dst, mesh_bptr_t src, size_t n);

    // (optional) Prepares a weight after its data is in a buffer (repack,
    // device copy); may set w->extra. (defaults to using the data as is)
    int (*weight_prepare)(void *ctx, mesh_bweight_t *w);
    // (optional) Frees what weight_prepare made. (defaults to nothing)
    void (*weight_release)(void *ctx, mesh_bweight_t *w);

    // ---- ops ----
    // y[t][m*y_mat + r] = sum_k W_m[r][k] * x[t][m*x_mat + k] for t < n,
    // r < ne[1], m in [m0, m0 + n_mat). ne[0] = k.
    int (*matmul)(void *ctx, const mesh_bweight_t *w, int m0, int n_mat, mesh_bptr_t x,
                  int64_t x_stride, int64_t x_mat, int n, mesh_bptr_t y, int64_t y_stride,
                  int64_t y_mat);
    // y[t][:] = row ids[t] of the table as f32 (ids int32, validated by the caller).
    int (*get_rows)(void *ctx, const mesh_bweight_t *table, mesh_bptr_t ids, int n,
                    mesh_bptr_t y, int64_t y_stride);
    // y[t][i] = x[t][i] / rms(x[t][0:width]) * w[i] (w f32 [width] or NULL). In-place allowed.
    int (*rms_norm)(void *ctx, mesh_bptr_t x, int64_t x_stride, mesh_bptr_t y,
                    int64_t y_stride, int n, int width, const mesh_bweight_t *w, float eps);
    // Rotates n_head heads of each of n tokens: in x[t][h*x_head + 0:n_rot],
    // written to y[t][h*y_head + 0:n_rot] (in-place allowed), at pos[t] (int32).
    int (*rope)(void *ctx, mesh_bptr_t x, int64_t x_stride, int64_t x_head, mesh_bptr_t y,
                int64_t y_stride, int64_t y_head, int n, int n_head, mesh_bptr_t pos,
                const mesh_rope_params_t *p);
    // Writes n rows of d_kv floats (x[t][0:d_kv], stride x_stride) into the
    // cache at physical slots slot[t] (int32: block * block_tokens + index)
    // of layer `layer`. Pool layout: element ((block * n_layer + layer) *
    // block_tokens + index) * d_kv, of cache_type (f32 or f16).
    int (*kv_store)(void *ctx, mesh_bptr_t cache, uint32_t cache_type, int n_layer, int layer,
                    int block_tokens, int d_kv, mesh_bptr_t x, int64_t x_stride,
                    mesh_bptr_t slot, int n);
    int (*mla_attn)(void *ctx, const mesh_mla_args_t *a);
    // Scratch bytes the moe slot needs for n tokens.
    size_t (*moe_scratch_bytes)(void *ctx, int n, int n_embd, int n_ff, int n_ff_sh,
                                int n_expert, int n_used);
    int (*moe)(void *ctx, const mesh_moe_args_t *a);
    // y[t][i] = silu(g[t][i]) * u[t][i], i < width.
    int (*swiglu)(void *ctx, mesh_bptr_t g, int64_t g_stride, mesh_bptr_t u, int64_t u_stride,
                  mesh_bptr_t y, int64_t y_stride, int n, int width);
    // y[t][i] += x[t][i], i < width.
    int (*add)(void *ctx, mesh_bptr_t y, int64_t y_stride, mesh_bptr_t x, int64_t x_stride,
               int n, int width);
    // y[j][:] = x[idx[j]][:] (width floats), idx int32.
    int (*copy_rows)(void *ctx, mesh_bptr_t x, int64_t x_stride, mesh_bptr_t idx, int n,
                     mesh_bptr_t y, int64_t y_stride, int width);

    // ---- fused ops (optional: NULL runs the ops they stand for; call them
    // through mesh_be_*() below, which picks) ----
    // y[t][i] += x[t][i], then out[t] = rmsnorm(y[t][0:width]) * w: a residual
    // add and the next norm. out may be x (not y).
    int (*add_rms_norm)(void *ctx, mesh_bptr_t y, int64_t y_stride, mesh_bptr_t x,
                        int64_t x_stride, mesh_bptr_t out, int64_t out_stride, int n, int width,
                        const mesh_bweight_t *w, float eps);
    // See mesh_mla_prep_t.
    int (*mla_prep)(void *ctx, const mesh_mla_prep_t *a);

    // Destroys the context (threads, buffers it made). Buffers handed out
    // must have been freed before.
    void (*destroy)(void *ctx);
} mesh_backend_iface_t;

struct mesh_backend {
    const mesh_backend_iface_t *iface;
    void *ctx;
};

typedef struct {
    int device;    // device index (CPU: ignored)
    int n_threads; // CPU: worker threads incl. the caller; 0 = physical cores
} mesh_backend_params_t;

// Creates a backend by name ("cpu"; others when built). Caller destroys the
// result with mesh_backend_destroy. MESH_ENOTFOUND for an unknown or unbuilt name.
int mesh_backend_new(const char *name, const mesh_backend_params_t *p, mesh_backend_t **out);
void mesh_backend_destroy(mesh_backend_t **b);

// The fused ops, on the backend's slot when it has one, else as the ops
// they stand for (what the CPU backend does).
int mesh_be_add_rms_norm(const mesh_backend_t *b, mesh_bptr_t y, int64_t y_stride, mesh_bptr_t x,
                         int64_t x_stride, mesh_bptr_t out, int64_t out_stride, int n, int width,
                         const mesh_bweight_t *w, float eps);
int mesh_be_mla_prep(const mesh_backend_t *b, const mesh_mla_prep_t *a);

// Each backend's constructor (kernels/<name>/): fills *out on success.
int mesh_kern_cpu_register(const mesh_backend_params_t *p, mesh_backend_t **out);
int mesh_kern_cuda_register(const mesh_backend_params_t *p, mesh_backend_t **out); // MESH_CUDA builds

#endif
