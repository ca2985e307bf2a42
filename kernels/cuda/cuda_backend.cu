// SPDX-License-Identifier: MIT
// The CUDA backend: device buffers, an op queue replayed as CUDA graphs,
// and the op table (mesh_backend_iface_t) over the kernels of this folder.
//
// Ops are not launched when the graph calls them: each slot records its
// arguments (device pointers already resolved, weights by value) into a
// byte queue. buf_upload and buf_download flush the queue. A flush whose
// bytes equal the previous flush's is captured once into a CUDA graph and
// from then on replayed with one launch while the bytes stay the same: a
// decode step records the same bytes every time (positions, context lengths
// and block tables live in device memory that the graph uploads first), so
// steady-state decode costs one graph launch instead of ~900 kernel launches.
// Anything else runs its launches directly. MESH_CUDA_GRAPH=0 turns graphs
// off (for compute-sanitizer or debugging).
//
// Weights stay in their GGUF block formats in device memory (the model file
// is uploaded once); the KV pool is an ordinary device buffer.
#include "cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "mesh_err.h"
#include "mesh_log.h"
#include "quant.h"
int mesh_kern_cuda_register(const mesh_backend_params_t *p, mesh_backend_t **out);
}

bool mesh_gpu_pdl; // gpu_compat.h: launches may overlap the kernel before

struct mesh_bbuf {
    uint8_t *d;  // device memory
    size_t size; // bytes
};

typedef struct s_ctx s_ctx_t;
typedef int (*s_run_fn)(s_ctx_t *c, const void *args);

typedef struct {
    s_run_fn fn;
    uint32_t size; // bytes of args that follow (multiple of 8)
    uint32_t pad;
} s_rec_t;

struct s_ctx {
    int device;
    gpuStream_t stream;
    char name[320];
    // the queue of recorded ops (s_rec_t + args, back to back)
    uint8_t *q;
    size_t q_len, q_cap;
    size_t q_last; // offset of the newest record (valid while q_len > 0)
    // the bytes of the previous flush, and the graph captured from them
    uint8_t *prev;
    size_t prev_len, prev_cap;
    gpuGraphExec_t gexec;
    uint8_t *gsig;
    size_t gsig_len;
    bool graphs;
    // split-attention partials, grown on demand
    float *part;
    size_t part_floats;
    // 8-bit activations of the tensor-core products (mmq.cu), grown on demand
    uint8_t *xq;
    size_t xq_bytes;
    // MESH_CUDA_PROFILE=1: per-op GPU time (events around each op, graphs
    // off), printed to stderr when the backend is destroyed.
    bool prof;
    int n_prof;
    struct {
        char key[96];
        double ms;
        long calls;
    } pt[256];
};

static void s_prof_key(s_run_fn fn, const void *args, char *key, size_t n);

static int s_err(const char *what, gpuError_t e) {
    mesh_log(MESH_LOG_ERROR, "cuda: %s: %s", what, gpuGetErrorString(e));
    return MESH_EBACKEND;
}

static uint8_t *s_p(mesh_bptr_t b) {
    return b.buf->d + b.off;
}

// ---- the queue ----
static int s_push(s_ctx_t *c, s_run_fn fn, const void *args, size_t size) {
    size_t asz = (size + 7) & ~(size_t)7, need = c->q_len + sizeof(s_rec_t) + asz;
    if (need > c->q_cap) {
        size_t cap = c->q_cap ? c->q_cap : 1 << 16;
        while (cap < need)
            cap *= 2;
        uint8_t *q = (uint8_t *)realloc(c->q, cap);
        if (!q)
            return MESH_ENOMEM;
        c->q = q;
        c->q_cap = cap;
    }
    s_rec_t r;
    memset(&r, 0, sizeof r);
    r.fn = fn;
    r.size = (uint32_t)asz;
    memcpy(c->q + c->q_len, &r, sizeof r);
    memset(c->q + c->q_len + sizeof r, 0, asz);
    memcpy(c->q + c->q_len + sizeof r, args, size);
    c->q_last = c->q_len;
    c->q_len = need;
    return 0;
}

static void s_prof_add(s_ctx_t *c, const char *key, double ms) {
    for (int i = 0; i < c->n_prof; i++)
        if (!strcmp(c->pt[i].key, key)) {
            c->pt[i].ms += ms;
            c->pt[i].calls++;
            return;
        }
    if (c->n_prof < (int)(sizeof c->pt / sizeof c->pt[0])) {
        snprintf(c->pt[c->n_prof].key, sizeof c->pt[0].key, "%s", key);
        c->pt[c->n_prof].ms = ms;
        c->pt[c->n_prof].calls = 1;
        c->n_prof++;
    }
}

static int s_run_all(s_ctx_t *c) {
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (c->prof) {
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
    }
    int rc = 0;
    for (size_t off = 0; off < c->q_len && !rc;) {
        s_rec_t r;
        memcpy(&r, c->q + off, sizeof r);
        const void *args = c->q + off + sizeof r;
        if (c->prof)
            cudaEventRecord(e0, c->stream);
        rc = r.fn(c, args);
        if (c->prof) {
            cudaEventRecord(e1, c->stream);
            cudaEventSynchronize(e1);
            float ms = 0;
            cudaEventElapsedTime(&ms, e0, e1);
            char key[96];
            s_prof_key(r.fn, args, key, sizeof key);
            s_prof_add(c, key, ms);
        }
        off += sizeof r + r.size;
    }
    if (c->prof) {
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
    }
    return rc;
}

static void s_drop_graph(s_ctx_t *c) {
    if (c->gexec)
        gpuGraphExecDestroy(c->gexec);
    c->gexec = NULL;
    free(c->gsig);
    c->gsig = NULL;
    c->gsig_len = 0;
}

// Runs every recorded op (as a graph when the same bytes came before).
static int s_flush(s_ctx_t *c) {
    if (!c->q_len)
        return 0;
    int rc = 0;
    gpuError_t e;
    if (c->gexec && c->gsig_len == c->q_len && !memcmp(c->gsig, c->q, c->q_len)) {
        if ((e = gpuGraphLaunch(c->gexec, c->stream)) != gpuSuccess)
            rc = s_err("graph launch", e);
    } else if (c->graphs && c->prev_len == c->q_len && !memcmp(c->prev, c->q, c->q_len)) {
        s_drop_graph(c);
        gpuGraph_t g = NULL;
        if ((e = gpuStreamBeginCapture(c->stream, gpuStreamCaptureModeThreadLocal)) != gpuSuccess)
            return s_err("begin capture", e);
        rc = s_run_all(c);
        if ((e = gpuStreamEndCapture(c->stream, &g)) != gpuSuccess && !rc)
            rc = s_err("end capture", e);
        if (!rc && (e = gpuGraphInstantiate(&c->gexec, g)) != gpuSuccess) {
            c->gexec = NULL;
            rc = s_err("graph instantiate", e);
        }
        if (g)
            gpuGraphDestroy(g);
        if (!rc) {
            c->gsig = (uint8_t *)malloc(c->q_len);
            if (!c->gsig) {
                rc = MESH_ENOMEM;
            } else {
                memcpy(c->gsig, c->q, c->q_len);
                c->gsig_len = c->q_len;
                if ((e = gpuGraphLaunch(c->gexec, c->stream)) != gpuSuccess)
                    rc = s_err("graph launch", e);
            }
        }
        if (rc)
            s_drop_graph(c);
    } else {
        rc = s_run_all(c);
    }
    if (!rc && (e = gpuGetLastError()) != gpuSuccess)
        rc = s_err("kernel launch", e);
    // Remember these bytes (swap buffers; the queue starts empty again).
    if (c->graphs) {
        uint8_t *tp = c->prev;
        size_t tc = c->prev_cap;
        c->prev = c->q;
        c->prev_cap = c->q_cap;
        c->prev_len = c->q_len;
        c->q = tp;
        c->q_cap = tc;
    }
    c->q_len = 0;
    return rc;
}

static int s_sync(s_ctx_t *c) {
    int rc = s_flush(c);
    gpuError_t e = gpuStreamSynchronize(c->stream);
    if (e != gpuSuccess)
        return s_err("synchronize", e);
    return rc;
}

// ---- buffers ----
static int s_buf_alloc(void *ctx, size_t size, mesh_bbuf_t **out) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    *out = NULL;
    mesh_bbuf_t *b = (mesh_bbuf_t *)calloc(1, sizeof *b);
    if (!b)
        return MESH_ENOMEM;
    size_t sz = size ? (size + 255) & ~(size_t)255 : 256;
    gpuError_t e = gpuMalloc((void **)&b->d, sz);
    if (e != gpuSuccess) {
        free(b);
        mesh_log(MESH_LOG_ERROR, "cuda: cannot allocate %zu bytes: %s", sz, gpuGetErrorString(e));
        (void)gpuGetLastError();
        return MESH_ENOMEM;
    }
    if ((e = gpuMemsetAsync(b->d, 0, sz, c->stream)) != gpuSuccess ||
        (e = gpuStreamSynchronize(c->stream)) != gpuSuccess) {
        gpuFree(b->d);
        free(b);
        return s_err("memset", e);
    }
    b->size = size;
    *out = b;
    return 0;
}

static void s_buf_free(void *ctx, mesh_bbuf_t *b) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (!b)
        return;
    // Queued work may still name this buffer: finish it first.
    (void)s_sync(c);
    s_drop_graph(c);
    c->prev_len = 0;
    gpuFree(b->d);
    free(b);
}

static int s_buf_upload(void *ctx, mesh_bptr_t dst, const void *src, size_t n) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (dst.off > dst.buf->size || n > dst.buf->size - dst.off)
        return MESH_ERANGE;
    int rc = s_flush(c);
    if (rc)
        return rc;
    if (!n)
        return 0;
    gpuError_t e = gpuMemcpyAsync(s_p(dst), src, n, gpuMemcpyHostToDevice, c->stream);
    if (e == gpuSuccess)
        e = gpuStreamSynchronize(c->stream); // src may be reused as soon as we return
    return e == gpuSuccess ? 0 : s_err("upload", e);
}

static int s_buf_download(void *ctx, void *dst, mesh_bptr_t src, size_t n) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (src.off > src.buf->size || n > src.buf->size - src.off)
        return MESH_ERANGE;
    int rc = s_flush(c);
    if (rc)
        return rc;
    gpuError_t e = gpuMemcpyAsync(dst, s_p(src), n, gpuMemcpyDeviceToHost, c->stream);
    if (e == gpuSuccess)
        e = gpuStreamSynchronize(c->stream);
    return e == gpuSuccess ? 0 : s_err("download", e);
}

static int s_weight_prepare(void *ctx, mesh_bweight_t *w) {
    (void)ctx;
    if (!mesh_cu_type_ok(w->type))
        return MESH_EUNSUPPORTED;
    // Kernels load 4-byte words (2-byte for the types with odd half-sizes).
    size_t al = (w->type == MESH_QT_Q8_0 || w->type == MESH_QT_Q4_0 || w->type == MESH_QT_Q5_0 ||
                 w->type == MESH_QT_Q6_K || w->type == MESH_QT_F16 || w->type == MESH_QT_BF16)
                    ? 2
                    : 4;
    if (w->data.off % al || w->nb[1] % al || w->nb[2] % al)
        return MESH_EUNSUPPORTED;
    return 0;
}

static void s_device_info(void *ctx, char *name, size_t name_len, uint64_t *total,
                          uint64_t *avail) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    snprintf(name, name_len, "%s", c->name);
    size_t fr = 0, tot = 0;
    if (gpuMemGetInfo(&fr, &tot) != gpuSuccess) {
        (void)gpuGetLastError();
        fr = tot = 0;
    }
    *total = tot;
    *avail = fr;
}

// ---- recorded ops ----
typedef struct {
    mesh_cu_mm_t a, b;
    int two;
} s_mm_args_t;
static int s_run_mm(s_ctx_t *c, const void *p) {
    const s_mm_args_t *a = (const s_mm_args_t *)p;
    return mesh_cu_matmul2(c->stream, &a->a, a->two ? &a->b : NULL);
}
// Replaces the scratch buffer *p with one of at least need bytes. Queued ops
// may use the old one: they run first, and the captured graph (which names
// the old address) goes.
static int s_grow(s_ctx_t *c, void **p, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    int rc = s_sync(c);
    if (rc)
        return rc;
    s_drop_graph(c);
    c->prev_len = 0;
    if (*p)
        gpuFree(*p);
    *p = NULL;
    *cap = 0;
    gpuError_t e = gpuMalloc(p, need);
    if (e != gpuSuccess) {
        (void)gpuGetLastError();
        *p = NULL;
        return MESH_ENOMEM;
    }
    *cap = need;
    return 0;
}

static size_t s_al(size_t b);

// Queues a product (or two in one launch); the tensor-core path gets its
// 8-bit activation scratch here, a's then b's.
static int s_push_mm(s_ctx_t *c, const mesh_cu_mm_t *a, const mesh_cu_mm_t *b) {
    s_mm_args_t r;
    memset(&r, 0, sizeof r);
    r.a = *a;
    if (b) {
        r.b = *b;
        r.two = 1;
    }
    const size_t na = s_al(mesh_cu_mmq_scratch(a)), nb = b ? s_al(mesh_cu_mmq_scratch(b)) : 0;
    if (na + nb) {
        int rc = s_grow(c, (void **)&c->xq, &c->xq_bytes, na + nb);
        if (rc)
            return rc;
        if (na)
            r.a.xq = c->xq;
        if (nb)
            r.b.xq = c->xq + na;
    }
    return s_push(c, s_run_mm, &r, sizeof r);
}

static void s_mm_from(mesh_cu_mm_t *m, const mesh_bweight_t *w) {
    memset(m, 0, sizeof *m);
    m->w = s_p(w->data);
    m->type = (int)w->type;
    m->K = (int)w->ne[0];
    m->rows = (int)w->ne[1];
    m->nb1 = w->nb[1];
    m->nb2 = w->nb[2];
}

static bool s_ranges_meet(const float *a, int64_t na, const float *b, int64_t nb) {
    return a < b + nb && b < a + na;
}

// Whether product m may join the queued single product p in one launch:
// both plain (one matrix, no grouping), same x, same type and row length
// class, and m's output clear of what p reads and writes.
static bool s_pairable(const s_mm_args_t *p, const mesh_cu_mm_t *m) {
    const mesh_cu_mm_t *a = &p->a;
    if (p->two || a->n_group != 1 || a->start || a->idx || a->act || a->w2 || a->xm || a->ym)
        return false;
    if (a->type != m->type || a->x != m->x || a->xs != m->xs || a->n != m->n || m->xm ||
        m->ym || a->K != m->K)
        return false;
    const int64_t nx = (int64_t)(m->n - 1) * m->xs + m->K;
    const int64_t ny_a = (int64_t)(a->n - 1) * a->ys + a->rows,
                  ny_m = (int64_t)(m->n - 1) * m->ys + m->rows;
    return !s_ranges_meet(m->y, ny_m, a->x, nx) && !s_ranges_meet(m->y, ny_m, a->y, ny_a);
}

static int s_matmul(void *ctx, const mesh_bweight_t *w, int m0, int n_mat, mesh_bptr_t x,
                    int64_t x_stride, int64_t x_mat, int n, mesh_bptr_t y, int64_t y_stride,
                    int64_t y_mat) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (!mesh_cu_type_ok(w->type))
        return MESH_EUNSUPPORTED;
    if (n <= 0 || n_mat <= 0)
        return 0;
    mesh_cu_mm_t m;
    s_mm_from(&m, w);
    m.x = (const float *)s_p(x);
    m.xs = x_stride;
    m.xm = x_mat;
    m.y = (float *)s_p(y);
    m.ys = y_stride;
    m.ym = y_mat;
    m.n = n;
    m.n_group = n_mat;
    m.m0 = m0;
    // Two plain products of the same x queued back to back (the MLA's q_a
    // and kv_a) become one launch: the record before is taken back and
    // queued again as a pair.
    if (c->q_len && n_mat == 1) {
        s_rec_t r;
        memcpy(&r, c->q + c->q_last, sizeof r);
        if (r.fn == s_run_mm) {
            s_mm_args_t p;
            memcpy(&p, c->q + c->q_last + sizeof r, sizeof p);
            if (s_pairable(&p, &m)) {
                c->q_len = c->q_last;
                return s_push_mm(c, &p.a, &m);
            }
        }
    }
    return s_push_mm(c, &m, NULL);
}

typedef struct {
    const uint8_t *table;
    int type, K;
    size_t nb1;
    const int32_t *ids;
    int n;
    float *y;
    int64_t ys;
} s_rows_args_t;
static int s_run_rows(s_ctx_t *c, const void *p) {
    const s_rows_args_t *a = (const s_rows_args_t *)p;
    return mesh_cu_get_rows(c->stream, a->table, a->type, a->K, a->nb1, a->ids, a->n, a->y, a->ys);
}
static int s_get_rows(void *ctx, const mesh_bweight_t *table, mesh_bptr_t ids, int n,
                      mesh_bptr_t y, int64_t y_stride) {
    if (!mesh_cu_type_ok(table->type))
        return MESH_EUNSUPPORTED;
    s_rows_args_t a;
    memset(&a, 0, sizeof a);
    a.table = s_p(table->data);
    a.type = (int)table->type;
    a.K = (int)table->ne[0];
    a.nb1 = table->nb[1];
    a.ids = (const int32_t *)s_p(ids);
    a.n = n;
    a.y = (float *)s_p(y);
    a.ys = y_stride;
    return s_push((s_ctx_t *)ctx, s_run_rows, &a, sizeof a);
}

typedef struct {
    const float *x;
    int64_t xs;
    float *y;
    int64_t ys;
    int n, width;
    const float *w;
    float eps;
} s_norm_args_t;
static int s_run_norm(s_ctx_t *c, const void *p) {
    const s_norm_args_t *a = (const s_norm_args_t *)p;
    return mesh_cu_rms_norm(c->stream, a->x, a->xs, a->y, a->ys, a->n, a->width, a->w, a->eps);
}
static int s_rms_norm(void *ctx, mesh_bptr_t x, int64_t x_stride, mesh_bptr_t y,
                      int64_t y_stride, int n, int width, const mesh_bweight_t *w, float eps) {
    if (w && w->type != MESH_QT_F32)
        return MESH_EUNSUPPORTED;
    s_norm_args_t a;
    memset(&a, 0, sizeof a);
    a.x = (const float *)s_p(x);
    a.xs = x_stride;
    a.y = (float *)s_p(y);
    a.ys = y_stride;
    a.n = n;
    a.width = width;
    a.w = w ? (const float *)s_p(w->data) : NULL;
    a.eps = eps;
    return s_push((s_ctx_t *)ctx, s_run_norm, &a, sizeof a);
}

typedef struct {
    const float *x;
    int64_t xs, xh;
    float *y;
    int64_t ys, yh;
    int n, n_head;
    const int32_t *pos;
    mesh_rope_params_t p;
} s_rope_args_t;
static int s_run_rope(s_ctx_t *c, const void *p) {
    const s_rope_args_t *a = (const s_rope_args_t *)p;
    return mesh_cu_rope(c->stream, a->x, a->xs, a->xh, a->y, a->ys, a->yh, a->n, a->n_head,
                        a->pos, &a->p);
}
static int s_rope(void *ctx, mesh_bptr_t x, int64_t x_stride, int64_t x_head, mesh_bptr_t y,
                  int64_t y_stride, int64_t y_head, int n, int n_head, mesh_bptr_t pos,
                  const mesh_rope_params_t *p) {
    s_rope_args_t a;
    memset(&a, 0, sizeof a);
    a.x = (const float *)s_p(x);
    a.xs = x_stride;
    a.xh = x_head;
    a.y = (float *)s_p(y);
    a.ys = y_stride;
    a.yh = y_head;
    a.n = n;
    a.n_head = n_head;
    a.pos = (const int32_t *)s_p(pos);
    a.p = *p;
    return s_push((s_ctx_t *)ctx, s_run_rope, &a, sizeof a);
}

typedef struct {
    uint8_t *cache;
    uint32_t type;
    int n_layer, layer, block_tokens, d_kv;
    const float *x;
    int64_t xs;
    const int32_t *slot;
    int n;
} s_kv_args_t;
static int s_run_kv(s_ctx_t *c, const void *p) {
    const s_kv_args_t *a = (const s_kv_args_t *)p;
    return mesh_cu_kv_store(c->stream, a->cache, a->type, a->n_layer, a->layer, a->block_tokens,
                            a->d_kv, a->x, a->xs, a->slot, a->n);
}
static int s_kv_store(void *ctx, mesh_bptr_t cache, uint32_t cache_type, int n_layer, int layer,
                      int block_tokens, int d_kv, mesh_bptr_t x, int64_t x_stride,
                      mesh_bptr_t slot, int n) {
    if (cache_type != MESH_QT_F32 && cache_type != MESH_QT_F16)
        return MESH_EUNSUPPORTED;
    s_kv_args_t a;
    memset(&a, 0, sizeof a);
    a.cache = s_p(cache);
    a.type = cache_type;
    a.n_layer = n_layer;
    a.layer = layer;
    a.block_tokens = block_tokens;
    a.d_kv = d_kv;
    a.x = (const float *)s_p(x);
    a.xs = x_stride;
    a.slot = (const int32_t *)s_p(slot);
    a.n = n;
    return s_push((s_ctx_t *)ctx, s_run_kv, &a, sizeof a);
}

static int s_run_mla(s_ctx_t *c, const void *p) {
    return mesh_cu_mla_attn(c->stream, (const mesh_cu_mla_t *)p);
}
static int s_mla_attn(void *ctx, const mesh_mla_args_t *m) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (m->cache_type != MESH_QT_F32 && m->cache_type != MESH_QT_F16)
        return MESH_EUNSUPPORTED;
    const size_t cache_bytes = m->cache.buf->size - m->cache.off;
    const int n_split = mesh_cu_mla_splits(m->n, cache_bytes, m->n_layer, m->d_kv, m->cache_type);
    size_t need = mesh_cu_mla_part_floats(m->n, n_split, m->n_head, m->kv_lora);
    if (need > c->part_floats) {
        size_t bytes = c->part_floats * sizeof(float);
        int rc = s_grow(c, (void **)&c->part, &bytes, need * sizeof(float));
        if (rc)
            return rc;
        c->part_floats = bytes / sizeof(float);
    }
    mesh_cu_mla_t a;
    memset(&a, 0, sizeof a);
    a.q = (const float *)s_p(m->q);
    a.out = (float *)s_p(m->out);
    a.toks = (const mesh_attn_tok_t *)s_p(m->toks);
    a.tables = (const int32_t *)s_p(m->tables);
    a.cache = s_p(m->cache);
    a.n = m->n;
    a.n_head = m->n_head;
    a.kv_lora = m->kv_lora;
    a.d_kv = m->d_kv;
    a.layer = m->layer;
    a.n_layer = m->n_layer;
    a.block_tokens = m->block_tokens;
    a.cache_type = m->cache_type;
    a.scale = m->scale;
    a.part = c->part;
    a.n_split = n_split;
    return s_push(c, s_run_mla, &a, sizeof a);
}

// MoE scratch layout (floats unless named), each region 256-byte aligned.
typedef struct {
    size_t logits, sel, wsel, start, act, pair_tok, slot, hg, ug, yg, hs, us, ys, total;
} s_moe_layout_t;

static size_t s_al(size_t b) {
    return (b + 255) & ~(size_t)255;
}

static s_moe_layout_t s_moe_layout(int n, int D, int F, int FS, int E, int K) {
    s_moe_layout_t l;
    size_t p = (size_t)n * (size_t)K, o = 0;
    l.logits = o; o += s_al(4 * (size_t)n * (size_t)E);
    l.sel = o; o += s_al(4 * p);
    l.wsel = o; o += s_al(4 * p);
    l.start = o; o += s_al(4 * ((size_t)E + 1));
    l.act = o; o += s_al(4 * ((size_t)E + 1));
    l.pair_tok = o; o += s_al(4 * p);
    l.slot = o; o += s_al(4 * p);
    l.hg = o; o += s_al(4 * p * (size_t)F);
    l.ug = o; o += s_al(4 * p * (size_t)F);
    l.yg = o; o += s_al(4 * p * (size_t)D);
    l.hs = o; o += s_al(4 * (size_t)n * (size_t)(FS ? FS : 1));
    l.us = o; o += s_al(4 * (size_t)n * (size_t)(FS ? FS : 1));
    l.ys = o; o += s_al(4 * (size_t)n * (size_t)D);
    l.total = o;
    return l;
}

static size_t s_moe_scratch_bytes(void *ctx, int n, int n_embd, int n_ff, int n_ff_sh,
                                  int n_expert, int n_used) {
    (void)ctx;
    return s_moe_layout(n, n_embd, n_ff, n_ff_sh, n_expert, n_used).total;
}

typedef struct {
    mesh_cu_route_t r;
} s_route_args_t;
static int s_run_route(s_ctx_t *c, const void *p) {
    return mesh_cu_moe_route(c->stream, &((const s_route_args_t *)p)->r);
}

typedef struct {
    float *out;
    const float *ys, *yg;
    const int32_t *slot;
    const float *wsel;
    int n, D, K;
} s_comb_args_t;
static int s_run_comb(s_ctx_t *c, const void *p) {
    const s_comb_args_t *a = (const s_comb_args_t *)p;
    return mesh_cu_moe_combine(c->stream, a->out, a->ys, a->yg, a->slot, a->wsel, a->n, a->D, a->K);
}

typedef struct {
    const float *g;
    int64_t gs;
    const float *u;
    int64_t us;
    float *y;
    int64_t ys;
    int n, width;
} s_swiglu_args_t;
static int s_run_swiglu(s_ctx_t *c, const void *p) {
    const s_swiglu_args_t *a = (const s_swiglu_args_t *)p;
    return mesh_cu_swiglu(c->stream, a->g, a->gs, a->u, a->us, a->y, a->ys, a->n, a->width);
}
static int s_push_swiglu(s_ctx_t *c, const float *g, int64_t gs, const float *u, int64_t us,
                         float *y, int64_t ys, int n, int width) {
    s_swiglu_args_t a;
    memset(&a, 0, sizeof a);
    a.g = g;
    a.gs = gs;
    a.u = u;
    a.us = us;
    a.y = y;
    a.ys = ys;
    a.n = n;
    a.width = width;
    return s_push(c, s_run_swiglu, &a, sizeof a);
}

#define S_CK(x)                                                                                   \
    do {                                                                                          \
        int rc_ = (x);                                                                            \
        if (rc_)                                                                                  \
            return rc_;                                                                           \
    } while (0)

static int s_moe(void *ctx, const mesh_moe_args_t *a) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    const int n = a->n, D = a->n_embd, F = a->n_ff, E = a->n_expert, K = a->n_used;
    const int FS = a->gate_sh ? a->n_ff_sh : 0;
    if (E > 1024 || K < 1 || K > E)
        return MESH_EUNSUPPORTED;
    if (n <= 0)
        return 0;
    const mesh_bweight_t *ws[6] = {a->router, a->gate_exps, a->up_exps, a->down_exps,
                                   a->gate_sh, a->up_sh};
    for (int i = 0; i < 6; i++)
        if (ws[i] && !mesh_cu_type_ok(ws[i]->type))
            return MESH_EUNSUPPORTED;
    if (a->sel_bias && a->sel_bias->type != MESH_QT_F32)
        return MESH_EUNSUPPORTED;
    uint8_t *sb = s_p(a->scratch);
    s_moe_layout_t l = s_moe_layout(n, D, F, FS, E, K);
    float *logits = (float *)(sb + l.logits), *wsel = (float *)(sb + l.wsel),
          *hg = (float *)(sb + l.hg), *ug = (float *)(sb + l.ug), *yg = (float *)(sb + l.yg),
          *hs = (float *)(sb + l.hs), *us = (float *)(sb + l.us), *ys = (float *)(sb + l.ys);
    int32_t *sel = (int32_t *)(sb + l.sel), *start = (int32_t *)(sb + l.start),
            *act = (int32_t *)(sb + l.act),
            *pair_tok = (int32_t *)(sb + l.pair_tok), *slot = (int32_t *)(sb + l.slot);
    // 1. router logits
    mesh_cu_mm_t m;
    s_mm_from(&m, a->router);
    m.x = (const float *)s_p(a->x);
    m.xs = D;
    m.y = logits;
    m.ys = E;
    m.n = n;
    m.n_group = 1;
    S_CK(s_push_mm(c, &m, NULL));
    // 2. gating, top-k, grouping
    s_route_args_t ra;
    memset(&ra, 0, sizeof ra);
    ra.r.logits = logits;
    ra.r.bias = a->sel_bias ? (const float *)s_p(a->sel_bias->data) : NULL;
    ra.r.sel = sel;
    ra.r.wsel = wsel;
    ra.r.start = start;
    ra.r.pair_tok = pair_tok;
    ra.r.slot = slot;
    ra.r.act = act;
    ra.r.n = n;
    ra.r.E = E;
    ra.r.K = K;
    ra.r.gating = a->gating;
    ra.r.norm_w = a->norm_w;
    ra.r.w_scale = a->w_scale;
    S_CK(s_push(c, s_run_route, &ra, sizeof ra));
    // 3. gate + up (+ SwiGLU) of the chosen experts, and of the shared expert
    mesh_cu_mm_t ge, gs;
    s_mm_from(&ge, a->gate_exps);
    ge.x = (const float *)s_p(a->x);
    ge.xs = D;
    ge.y = hg;
    ge.ys = F;
    ge.n = n;
    const int n_act = n * K < E ? n * K : E; // experts a batch can use at most
    ge.n_group = n_act;
    ge.start = start;
    ge.idx = pair_tok;
    ge.act = act;
    const bool fuse_e = a->gate_exps->type == a->up_exps->type;
    if (fuse_e)
        ge.w2 = s_p(a->up_exps->data);
    bool sh_done = false;
    if (FS) {
        s_mm_from(&gs, a->gate_sh);
        gs.x = (const float *)s_p(a->x);
        gs.xs = D;
        gs.y = hs;
        gs.ys = FS;
        gs.n = n;
        gs.n_group = 1;
        const bool fuse_s = a->gate_sh->type == a->up_sh->type;
        if (fuse_s)
            gs.w2 = s_p(a->up_sh->data);
        if (fuse_e && fuse_s && a->gate_sh->type == a->gate_exps->type) {
            S_CK(s_push_mm(c, &ge, &gs));
            sh_done = true;
        } else if (fuse_s) {
            S_CK(s_push_mm(c, &gs, NULL));
            sh_done = true;
        } else {
            S_CK(s_push_mm(c, &gs, NULL));
            mesh_cu_mm_t u;
            s_mm_from(&u, a->up_sh);
            u.x = gs.x;
            u.xs = D;
            u.y = us;
            u.ys = FS;
            u.n = n;
            u.n_group = 1;
            S_CK(s_push_mm(c, &u, NULL));
            S_CK(s_push_swiglu(c, hs, FS, us, FS, hs, FS, n, FS));
            sh_done = true;
        }
    }
    if (fuse_e) {
        if (!(FS && sh_done && a->gate_sh->type == a->gate_exps->type &&
              a->gate_sh->type == a->up_sh->type))
            S_CK(s_push_mm(c, &ge, NULL));
    } else {
        S_CK(s_push_mm(c, &ge, NULL));
        mesh_cu_mm_t u;
        s_mm_from(&u, a->up_exps);
        u.x = ge.x;
        u.xs = D;
        u.y = ug;
        u.ys = F;
        u.n = n;
        u.n_group = n_act;
        u.start = start;
        u.idx = pair_tok;
        u.act = act;
        S_CK(s_push_mm(c, &u, NULL));
        S_CK(s_push_swiglu(c, hg, F, ug, F, hg, F, n * K, F));
    }
    // 4. down projections
    mesh_cu_mm_t de, ds;
    s_mm_from(&de, a->down_exps);
    de.x = hg;
    de.xs = F;
    de.y = yg;
    de.ys = D;
    de.n = n;
    de.n_group = n_act;
    de.start = start;
    de.act = act;
    de.n_src = n * K; // grouped rows of hg
    if (FS) {
        s_mm_from(&ds, a->down_sh);
        ds.x = hs;
        ds.xs = FS;
        ds.y = ys;
        ds.ys = D;
        ds.n = n;
        ds.n_group = 1;
        if (ds.type == de.type) {
            S_CK(s_push_mm(c, &de, &ds));
        } else {
            S_CK(s_push_mm(c, &de, NULL));
            S_CK(s_push_mm(c, &ds, NULL));
        }
    } else {
        S_CK(s_push_mm(c, &de, NULL));
    }
    // 5. weighted sum
    s_comb_args_t ca;
    memset(&ca, 0, sizeof ca);
    ca.out = (float *)s_p(a->out);
    ca.ys = FS ? ys : NULL;
    ca.yg = yg;
    ca.slot = slot;
    ca.wsel = wsel;
    ca.n = n;
    ca.D = D;
    ca.K = K;
    return s_push(c, s_run_comb, &ca, sizeof ca);
}

static int s_swiglu(void *ctx, mesh_bptr_t g, int64_t gs, mesh_bptr_t u, int64_t us,
                    mesh_bptr_t y, int64_t ys, int n, int width) {
    return s_push_swiglu((s_ctx_t *)ctx, (const float *)s_p(g), gs, (const float *)s_p(u), us,
                         (float *)s_p(y), ys, n, width);
}

typedef struct {
    float *y;
    int64_t ys;
    const float *x;
    int64_t xs;
    int n, width;
} s_add_args_t;
static int s_run_add(s_ctx_t *c, const void *p) {
    const s_add_args_t *a = (const s_add_args_t *)p;
    return mesh_cu_add(c->stream, a->y, a->ys, a->x, a->xs, a->n, a->width);
}
static int s_add(void *ctx, mesh_bptr_t y, int64_t ys, mesh_bptr_t x, int64_t xs, int n,
                 int width) {
    s_add_args_t a;
    memset(&a, 0, sizeof a);
    a.y = (float *)s_p(y);
    a.ys = ys;
    a.x = (const float *)s_p(x);
    a.xs = xs;
    a.n = n;
    a.width = width;
    return s_push((s_ctx_t *)ctx, s_run_add, &a, sizeof a);
}

typedef struct {
    float *y;
    int64_t ys;
    const float *x;
    int64_t xs;
    float *out;
    int64_t os;
    int n, width;
    const float *w;
    float eps;
} s_addnorm_args_t;
static int s_run_addnorm(s_ctx_t *c, const void *p) {
    const s_addnorm_args_t *a = (const s_addnorm_args_t *)p;
    return mesh_cu_add_rms_norm(c->stream, a->y, a->ys, a->x, a->xs, a->out, a->os, a->n,
                                a->width, a->w, a->eps);
}
typedef struct {
    s_comb_args_t c;
    s_addnorm_args_t n;
} s_combnorm_args_t;
static int s_run_combnorm(s_ctx_t *c, const void *p) {
    const s_combnorm_args_t *a = (const s_combnorm_args_t *)p;
    return mesh_cu_moe_combine_add_rms(c->stream, a->c.out, a->c.ys, a->c.yg, a->c.slot,
                                       a->c.wsel, a->c.n, a->c.D, a->c.K, a->n.y, a->n.ys,
                                       a->n.out, a->n.os, a->n.w, a->n.eps);
}

static int s_add_rms_norm(void *ctx, mesh_bptr_t y, int64_t ys, mesh_bptr_t x, int64_t xs,
                          mesh_bptr_t out, int64_t os, int n, int width, const mesh_bweight_t *w,
                          float eps) {
    if (w && w->type != MESH_QT_F32)
        return MESH_EUNSUPPORTED;
    s_addnorm_args_t a;
    memset(&a, 0, sizeof a);
    a.y = (float *)s_p(y);
    a.ys = ys;
    a.x = (const float *)s_p(x);
    a.xs = xs;
    a.out = (float *)s_p(out);
    a.os = os;
    a.n = n;
    a.width = width;
    a.w = w ? (const float *)s_p(w->data) : NULL;
    a.eps = eps;
    s_ctx_t *c = (s_ctx_t *)ctx;
    // The MoE's combination queued just before, writing exactly x: both in
    // one launch (the combination is still stored in x).
    if (c->q_len) {
        s_rec_t r;
        memcpy(&r, c->q + c->q_last, sizeof r);
        if (r.fn == s_run_comb) {
            s_combnorm_args_t f;
            memset(&f, 0, sizeof f);
            memcpy(&f.c, c->q + c->q_last + sizeof r, sizeof f.c);
            if (f.c.out == a.x && f.c.n == n && f.c.D == width && xs == width) {
                f.n = a;
                c->q_len = c->q_last;
                return s_push(c, s_run_combnorm, &f, sizeof f);
            }
        }
    }
    return s_push(c, s_run_addnorm, &a, sizeof a);
}

typedef struct {
    mesh_cu_mla_prep_t a;
    mesh_rope_params_t p;
} s_prep_args_t;
static int s_run_prep(s_ctx_t *c, const void *p) {
    const s_prep_args_t *a = (const s_prep_args_t *)p;
    return mesh_cu_mla_prep(c->stream, &a->a, &a->p);
}
static int s_mla_prep(void *ctx, const mesh_mla_prep_t *m) {
    if ((m->cache_type != MESH_QT_F32 && m->cache_type != MESH_QT_F16) ||
        (m->kv_norm && m->kv_norm->type != MESH_QT_F32))
        return MESH_EUNSUPPORTED;
    s_prep_args_t a;
    memset(&a, 0, sizeof a);
    a.a.q = (const float *)s_p(m->q);
    a.a.qs = m->q_stride;
    a.a.qh = m->q_head;
    a.a.qc = (float *)s_p(m->qc);
    a.a.qcs = m->qc_stride;
    a.a.qch = m->qc_head;
    a.a.n_head = m->n_head;
    a.a.kv = (float *)s_p(m->kv);
    a.a.kvs = m->kv_stride;
    a.a.kv_lora = m->kv_lora;
    a.a.w = m->kv_norm ? (const float *)s_p(m->kv_norm->data) : NULL;
    a.a.eps = m->eps;
    a.a.pos = (const int32_t *)s_p(m->pos);
    a.a.slot = (const int32_t *)s_p(m->slot);
    a.a.cache = s_p(m->cache);
    a.a.f16 = m->cache_type == MESH_QT_F16;
    a.a.n_layer = m->n_layer;
    a.a.layer = m->layer;
    a.a.block_tokens = m->block_tokens;
    a.a.n = m->n;
    a.p = *m->rope;
    return s_push((s_ctx_t *)ctx, s_run_prep, &a, sizeof a);
}

typedef struct {
    const float *x;
    int64_t xs;
    const int32_t *idx;
    int n;
    float *y;
    int64_t ys;
    int width;
} s_copy_args_t;
static int s_run_copy(s_ctx_t *c, const void *p) {
    const s_copy_args_t *a = (const s_copy_args_t *)p;
    return mesh_cu_copy_rows(c->stream, a->x, a->xs, a->idx, a->n, a->y, a->ys, a->width);
}
static int s_copy_rows(void *ctx, mesh_bptr_t x, int64_t xs, mesh_bptr_t idx, int n,
                       mesh_bptr_t y, int64_t ys, int width) {
    s_copy_args_t a;
    memset(&a, 0, sizeof a);
    a.x = (const float *)s_p(x);
    a.xs = xs;
    a.idx = (const int32_t *)s_p(idx);
    a.n = n;
    a.y = (float *)s_p(y);
    a.ys = ys;
    a.width = width;
    return s_push((s_ctx_t *)ctx, s_run_copy, &a, sizeof a);
}

static void s_destroy(void *ctx) {
    s_ctx_t *c = (s_ctx_t *)ctx;
    if (!c)
        return;
    if (c->prof && c->n_prof) {
        double tot = 0;
        for (int i = 0; i < c->n_prof; i++)
            tot += c->pt[i].ms;
        fprintf(stderr, "cuda profile (GPU time per op, all calls):\n");
        for (int i = 0; i < c->n_prof; i++)
            fprintf(stderr, "  %-60s %8ld calls %10.3f ms %5.1f%%\n", c->pt[i].key, c->pt[i].calls,
                    c->pt[i].ms, tot > 0 ? 100.0 * c->pt[i].ms / tot : 0.0);
        fprintf(stderr, "  total %.3f ms\n", tot);
    }
    if (c->stream) {
        (void)s_sync(c);
        gpuStreamDestroy(c->stream);
    }
    s_drop_graph(c);
    if (c->part)
        gpuFree(c->part);
    if (c->xq)
        gpuFree(c->xq);
    free(c->q);
    free(c->prev);
    free(c);
}

// Profile key of a recorded op: its kind, and for products the type and shape.
static void s_prof_key(s_run_fn fn, const void *args, char *key, size_t n) {
    if (fn == s_run_mm) {
        const s_mm_args_t *a = (const s_mm_args_t *)args;
        snprintf(key, n, "matmul%s %s K=%d rows=%d groups=%d%s n=%d", a->a.w2 ? "+swiglu" : "",
                 mesh_qtype_name((uint32_t)a->a.type), a->a.K, a->a.rows, a->a.n_group,
                 a->two ? " +shared" : "", a->a.n);
    } else {
        const char *name = fn == s_run_rows ? "get_rows" : fn == s_run_norm ? "rms_norm"
                           : fn == s_run_rope ? "rope" : fn == s_run_kv ? "kv_store"
                           : fn == s_run_mla ? "mla_attn" : fn == s_run_route ? "moe_route"
                           : fn == s_run_comb ? "moe_combine" : fn == s_run_swiglu ? "swiglu"
                           : fn == s_run_add ? "add" : fn == s_run_copy ? "copy_rows"
                           : fn == s_run_addnorm ? "add_rms_norm"
                           : fn == s_run_combnorm ? "moe_combine+add_rms_norm"
                           : fn == s_run_prep ? "mla_prep" : "?";
        snprintf(key, n, "%s", name);
    }
}

static const mesh_backend_iface_t s_iface = {
    "cuda",
    s_device_info,
    s_buf_alloc,
    NULL, // buf_wrap_host: weights are copied to the device
    s_buf_free,
    s_buf_upload,
    s_buf_download,
    s_weight_prepare,
    NULL,
    s_matmul,
    s_get_rows,
    s_rms_norm,
    s_rope,
    s_kv_store,
    s_mla_attn,
    s_moe_scratch_bytes,
    s_moe,
    s_swiglu,
    s_add,
    s_copy_rows,
    s_add_rms_norm,
    s_mla_prep,
    s_destroy,
};

int mesh_kern_cuda_register(const mesh_backend_params_t *p, mesh_backend_t **out) {
    *out = NULL;
    int ndev = 0, dev = p ? p->device : 0;
    gpuError_t e = gpuGetDeviceCount(&ndev);
    if (e != gpuSuccess || ndev <= 0) {
        (void)gpuGetLastError();
        mesh_log(MESH_LOG_ERROR, "cuda: no CUDA device (%s)",
                 e != gpuSuccess ? gpuGetErrorString(e) : "none found");
        return MESH_EBACKEND; // built, but cannot start here (ENOTFOUND means "not built")
    }
    if (dev < 0 || dev >= ndev) {
        mesh_log(MESH_LOG_ERROR, "cuda: device %d does not exist (%d found)", dev, ndev);
        return MESH_EBACKEND;
    }
    if ((e = gpuSetDevice(dev)) != gpuSuccess)
        return s_err("set device", e);
    mesh_backend_t *b = (mesh_backend_t *)calloc(1, sizeof *b);
    s_ctx_t *c = (s_ctx_t *)calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        return MESH_ENOMEM;
    }
    c->device = dev;
    gpuDeviceProp prop;
    if ((e = gpuGetDeviceProperties(&prop, dev)) != gpuSuccess) {
        free(b);
        free(c);
        return s_err("device properties", e);
    }
    snprintf(c->name, sizeof c->name, "%s (sm_%d%d, %d SMs)", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount);
    const char *g = getenv("MESH_CUDA_GRAPH"), *pf = getenv("MESH_CUDA_PROFILE");
    c->prof = pf && !strcmp(pf, "1");
    c->graphs = !(g && !strcmp(g, "0")) && !c->prof;
    // Programmatic dependent launch (gpu_compat.h) from sm_90 on, opt-in
    // with MESH_CUDA_PDL=1 until a GPU run has checked it (kernels/cuda/README.md).
    const char *pdl = getenv("MESH_CUDA_PDL");
    mesh_gpu_pdl = MESH_GPU_CUDA && prop.major >= 9 && pdl && !strcmp(pdl, "1");
    if ((e = gpuStreamCreateWithFlags(&c->stream, gpuStreamNonBlocking)) != gpuSuccess) {
        free(b);
        free(c);
        return s_err("stream", e);
    }
    int rc = mesh_cu_mla_setup();
    if (!rc)
        rc = mesh_cu_mmq_setup(prop.major);
    if (rc) {
        s_destroy(c);
        free(b);
        return rc;
    }
    b->iface = &s_iface;
    b->ctx = c;
    *out = b;
    return 0;
}
