// SPDX-License-Identifier: MIT
// The CPU backend: host buffers (a mapped model file is wrapped, not
// copied), a persistent thread pool, and the op table. The op families live
// in matmul.c, norm_rope.c, mla_attn.c and moe.c; the small element-wise ops
// are here.
#include "cpu_features.h"
#include "cpu_impl.h"
#include "mesh_err.h"
#include "quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- buffers ----
static int s_buf_alloc(void *ctx, size_t size, mesh_bbuf_t **out) {
    (void)ctx;
    *out = NULL;
    mesh_bbuf_t *b = calloc(1, sizeof *b);
    if (!b)
        return MESH_ENOMEM;
    // 64-byte aligned, zeroed; at least one byte so empty buffers are valid.
    size_t sz = (size + 63) & ~(size_t)63;
    if (sz == 0)
        sz = 64;
    b->p = aligned_alloc(64, sz);
    if (!b->p) {
        free(b);
        return MESH_ENOMEM;
    }
    memset(b->p, 0, sz);
    b->size = size;
    b->owned = 1;
    *out = b;
    return 0;
}

static int s_buf_wrap_host(void *ctx, const void *host, size_t size, mesh_bbuf_t **out) {
    (void)ctx;
    mesh_bbuf_t *b = calloc(1, sizeof *b);
    if (!b)
        return MESH_ENOMEM;
    b->p = (uint8_t *)host; // read-only by contract: ops never write weights
    b->size = size;
    *out = b;
    return 0;
}

static void s_buf_free(void *ctx, mesh_bbuf_t *b) {
    (void)ctx;
    if (!b)
        return;
    if (b->owned)
        free(b->p);
    free(b);
}

static int s_buf_upload(void *ctx, mesh_bptr_t dst, const void *src, size_t n) {
    (void)ctx;
    if (dst.off > dst.buf->size || n > dst.buf->size - dst.off)
        return MESH_ERANGE;
    memcpy(dst.buf->p + dst.off, src, n);
    return 0;
}

static int s_buf_download(void *ctx, void *dst, mesh_bptr_t src, size_t n) {
    (void)ctx;
    if (src.off > src.buf->size || n > src.buf->size - src.off)
        return MESH_ERANGE;
    memcpy(dst, src.buf->p + src.off, n);
    return 0;
}

// Grows the per-thread scratch to cover rows of this weight (load time only).
static int s_weight_prepare(void *ctx, mesh_bweight_t *w) {
    mesh_cpu_ctx_t *c = ctx;
    if (w->ne[0] <= c->max_k)
        return 0;
    for (int i = 0; i < c->n_threads; i++) {
        float *p = realloc(c->wscratch[i], sizeof(float) * MESH_CPU_RB * (size_t)w->ne[0]);
        if (!p)
            return MESH_ENOMEM;
        c->wscratch[i] = p;
    }
    c->max_k = w->ne[0];
    if (c->max_k > c->tcap) {
        for (int i = 0; i < c->n_threads; i++) {
            float *p = realloc(c->tscratch[i], sizeof(float) * (size_t)c->max_k);
            if (!p)
                return MESH_ENOMEM;
            c->tscratch[i] = p;
        }
        c->tcap = c->max_k;
    }
    return 0;
}

static void s_device_info(void *ctx, char *name, size_t name_len, uint64_t *total,
                          uint64_t *avail) {
    mesh_cpu_ctx_t *c = ctx;
    snprintf(name, name_len, "cpu (%d threads, %s)", c->n_threads,
             mesh_cpu_simd_name((mesh_simd_level_t)c->simd));
    long pages = sysconf(_SC_PHYS_PAGES), av = sysconf(_SC_AVPHYS_PAGES),
         ps = sysconf(_SC_PAGESIZE);
    *total = pages > 0 && ps > 0 ? (uint64_t)pages * (uint64_t)ps : 0;
    *avail = av > 0 && ps > 0 ? (uint64_t)av * (uint64_t)ps : 0;
}

// ---- small element-wise ops (single thread: memory-bound and cheap) ----
static int s_get_rows(void *ctx, const mesh_bweight_t *table, mesh_bptr_t ids, int n,
                      mesh_bptr_t y, int64_t y_stride) {
    mesh_cpu_ctx_t *c = ctx;
    const int32_t *id = mesh__cpu_ptr(ids);
    float *out = mesh__cpu_ptr(y);
    const uint8_t *base = mesh__cpu_ptr(table->data);
    for (int t = 0; t < n; t++)
        mesh__cpu_row_to_f32(table->type, base + (size_t)id[t] * table->nb[1],
                             out + (int64_t)t * y_stride, table->ne[0], c->simd);
    return 0;
}

static int s_swiglu(void *ctx, mesh_bptr_t g, int64_t gs, mesh_bptr_t u, int64_t us,
                    mesh_bptr_t y, int64_t ys, int n, int width) {
    (void)ctx;
    const float *gp = mesh__cpu_ptr(g), *up = mesh__cpu_ptr(u);
    float *yp = mesh__cpu_ptr(y);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < width; i++) {
            float a = gp[(int64_t)t * gs + i];
            yp[(int64_t)t * ys + i] = a / (1.0f + expf(-a)) * up[(int64_t)t * us + i];
        }
    return 0;
}

static int s_add(void *ctx, mesh_bptr_t y, int64_t ys, mesh_bptr_t x, int64_t xs, int n,
                 int width) {
    (void)ctx;
    float *yp = mesh__cpu_ptr(y);
    const float *xp = mesh__cpu_ptr(x);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < width; i++)
            yp[(int64_t)t * ys + i] += xp[(int64_t)t * xs + i];
    return 0;
}

static int s_copy_rows(void *ctx, mesh_bptr_t x, int64_t xs, mesh_bptr_t idx, int n,
                       mesh_bptr_t y, int64_t ys, int width) {
    (void)ctx;
    const float *xp = mesh__cpu_ptr(x);
    const int32_t *ip = mesh__cpu_ptr(idx);
    float *yp = mesh__cpu_ptr(y);
    for (int j = 0; j < n; j++)
        memmove(yp + (int64_t)j * ys, xp + (int64_t)ip[j] * xs, sizeof(float) * (size_t)width);
    return 0;
}

int mesh__cpu_kv_store(void *ctx, mesh_bptr_t cache, uint32_t cache_type, int n_layer,
                       int layer, int block_tokens, int d_kv, mesh_bptr_t x, int64_t x_stride,
                       mesh_bptr_t slot, int n) {
    (void)ctx;
    uint8_t *cp = mesh__cpu_ptr(cache);
    const float *xp = mesh__cpu_ptr(x);
    const int32_t *sp = mesh__cpu_ptr(slot);
    for (int t = 0; t < n; t++) {
        size_t blk = (size_t)sp[t] / (size_t)block_tokens, i = (size_t)sp[t] % (size_t)block_tokens;
        size_t row = (blk * (size_t)n_layer + (size_t)layer) * (size_t)block_tokens + i;
        const float *src = xp + (int64_t)t * x_stride;
        if (cache_type == MESH_QT_F16) {
            uint16_t *dst = (uint16_t *)(cp + row * (size_t)d_kv * 2);
            for (int j = 0; j < d_kv; j++)
                dst[j] = mesh_f32_to_fp16(src[j]);
        } else {
            memcpy(cp + row * (size_t)d_kv * 4, src, sizeof(float) * (size_t)d_kv);
        }
    }
    return 0;
}

static void s_destroy(void *ctx) {
    mesh_cpu_ctx_t *c = ctx;
    if (!c)
        return;
    mesh_tp_destroy(&c->tp);
    for (int i = 0; i < c->n_threads; i++) {
        if (c->wscratch)
            free(c->wscratch[i]);
        if (c->tscratch)
            free(c->tscratch[i]);
    }
    free(c->wscratch);
    free(c->tscratch);
    free(c->act);
    free(c);
}

static const mesh_backend_iface_t s_iface = {
    .name = "cpu",
    .device_info = s_device_info,
    .buf_alloc = s_buf_alloc,
    .buf_wrap_host = s_buf_wrap_host,
    .buf_free = s_buf_free,
    .buf_upload = s_buf_upload,
    .buf_download = s_buf_download,
    .weight_prepare = s_weight_prepare,
    .weight_release = NULL,
    .matmul = mesh__cpu_matmul,
    .get_rows = s_get_rows,
    .rms_norm = mesh__cpu_rms_norm,
    .rope = mesh__cpu_rope,
    .kv_store = mesh__cpu_kv_store,
    .mla_attn = mesh__cpu_mla_attn,
    .moe_scratch_bytes = mesh__cpu_moe_scratch_bytes,
    .moe = mesh__cpu_moe,
    .swiglu = s_swiglu,
    .add = s_add,
    .copy_rows = s_copy_rows,
    .add_rms_norm = NULL, // the plain ops (mesh_be_add_rms_norm)
    .mla_prep = NULL,     // the plain ops (mesh_be_mla_prep)
    .destroy = s_destroy,
};

int mesh_kern_cpu_register(const mesh_backend_params_t *p, mesh_backend_t **out) {
    *out = NULL;
    int nt = p && p->n_threads > 0 ? p->n_threads : mesh_cpu_features()->physical_cores;
    if (nt < 1)
        nt = 1;
    if (nt > 256)
        nt = 256;
    mesh_backend_t *b = calloc(1, sizeof *b);
    mesh_cpu_ctx_t *c = calloc(1, sizeof *c);
    if (!b || !c)
        goto nomem;
    c->n_threads = nt;
    c->simd = (int)mesh_cpu_simd_level();
    c->wscratch = calloc((size_t)nt, sizeof(float *));
    c->tscratch = calloc((size_t)nt, sizeof(float *));
    if (!c->wscratch || !c->tscratch)
        goto nomem;
    // Attention scratch: 64 latent rows up to 1024 wide.
    c->tcap = 64 * 1024;
    for (int i = 0; i < nt; i++)
        if (!(c->tscratch[i] = malloc(sizeof(float) * (size_t)c->tcap)))
            goto nomem;
    if (mesh_tp_new(nt, &c->tp))
        goto nomem;
    b->iface = &s_iface;
    b->ctx = c;
    *out = b;
    return 0;
nomem:
    s_destroy(c);
    free(b);
    return MESH_ENOMEM;
}
