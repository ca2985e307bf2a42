// SPDX-License-Identifier: MIT
// Backend registry: names to constructors. The CPU backend is always built;
// GPU backends add their entry when their build option is on.
#include "backend.h"

#include "mesh_err.h"

#include <stdlib.h>
#include <string.h>

int mesh_backend_new(const char *name, const mesh_backend_params_t *p, mesh_backend_t **out) {
    *out = NULL;
    if (!name || !strcmp(name, "cpu"))
        return mesh_kern_cpu_register(p, out);
#ifdef MESH_HAVE_CUDA
    if (!strcmp(name, "cuda"))
        return mesh_kern_cuda_register(p, out);
#endif
    return MESH_ENOTFOUND;
}

void mesh_backend_destroy(mesh_backend_t **b) {
    if (!*b)
        return;
    (*b)->iface->destroy((*b)->ctx);
    // The struct itself was allocated by the constructor with calloc.
    free(*b);
    *b = NULL;
}

int mesh_be_add_rms_norm(const mesh_backend_t *b, mesh_bptr_t y, int64_t y_stride, mesh_bptr_t x,
                         int64_t x_stride, mesh_bptr_t out, int64_t out_stride, int n, int width,
                         const mesh_bweight_t *w, float eps) {
    const mesh_backend_iface_t *B = b->iface;
    if (B->add_rms_norm)
        return B->add_rms_norm(b->ctx, y, y_stride, x, x_stride, out, out_stride, n, width, w,
                               eps);
    int rc = B->add(b->ctx, y, y_stride, x, x_stride, n, width);
    return rc ? rc : B->rms_norm(b->ctx, y, y_stride, out, out_stride, n, width, w, eps);
}

int mesh_be_mla_prep(const mesh_backend_t *b, const mesh_mla_prep_t *a) {
    const mesh_backend_iface_t *B = b->iface;
    if (B->mla_prep)
        return B->mla_prep(b->ctx, a);
    const mesh_bptr_t kvr = {a->kv.buf, a->kv.off + (size_t)a->kv_lora * sizeof(float)};
    int rc = B->rope(b->ctx, a->q, a->q_stride, a->q_head, a->qc, a->qc_stride, a->qc_head, a->n,
                     a->n_head, a->pos, a->rope);
    if (!rc)
        rc = B->rms_norm(b->ctx, a->kv, a->kv_stride, a->kv, a->kv_stride, a->n, a->kv_lora,
                         a->kv_norm, a->eps);
    if (!rc)
        rc = B->rope(b->ctx, kvr, a->kv_stride, 0, kvr, a->kv_stride, 0, a->n, 1, a->pos, a->rope);
    if (!rc)
        rc = B->kv_store(b->ctx, a->cache, a->cache_type, a->n_layer, a->layer, a->block_tokens,
                         a->kv_lora + a->rope->n_rot, a->kv, a->kv_stride, a->slot, a->n);
    return rc;
}
