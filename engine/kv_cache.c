// SPDX-License-Identifier: MIT
// Paged latent KV cache: a free-list of blocks and per-sequence block tables.
// All bookkeeping is O(1) per block; nothing here allocates after creation.
#include "kv_cache.h"

#include "mesh_err.h"
#include "quant.h"

#include <stdlib.h>

#define S_BLOCK_TOKENS 32

int mesh_kv_new(mesh_backend_t *be, uint32_t type, int n_layer, int d_kv, uint64_t tokens,
                uint32_t max_seqs, uint32_t max_ctx, mesh_kv_t **out) {
    *out = NULL;
    if (type != MESH_QT_F32 && type != MESH_QT_F16)
        return MESH_EINVAL;
    mesh_kv_t *kv = calloc(1, sizeof *kv);
    if (!kv)
        return MESH_ENOMEM;
    kv->be = be;
    kv->type = type;
    kv->n_layer = n_layer;
    kv->d_kv = d_kv;
    kv->block_tokens = S_BLOCK_TOKENS;
    uint64_t nb = tokens / S_BLOCK_TOKENS;
    if (nb < 1)
        nb = 1;
    if (nb > INT32_MAX / 2)
        nb = INT32_MAX / 2;
    kv->n_blocks = (int32_t)nb;
    kv->max_seqs = (int32_t)(max_seqs ? max_seqs : 64);
    uint64_t mb = ((uint64_t)max_ctx + S_BLOCK_TOKENS - 1) / S_BLOCK_TOKENS;
    if (mb > nb)
        mb = nb;
    kv->max_blocks_per_seq = (int32_t)mb;
    size_t esz = type == MESH_QT_F32 ? 4 : 2;
    size_t bytes = (size_t)nb * (size_t)n_layer * S_BLOCK_TOKENS * (size_t)d_kv * esz;
    int rc = MESH_ENOMEM;
    kv->free_list = malloc(sizeof(int32_t) * (size_t)nb);
    kv->seqs = calloc((size_t)kv->max_seqs, sizeof *kv->seqs);
    if (!kv->free_list || !kv->seqs)
        goto err;
    for (int32_t i = 0; i < kv->max_seqs; i++) {
        kv->seqs[i].blocks = malloc(sizeof(int32_t) * (size_t)mb);
        if (!kv->seqs[i].blocks)
            goto err;
    }
    for (int32_t i = 0; i < kv->n_blocks; i++) // pop gives low ids first
        kv->free_list[i] = kv->n_blocks - 1 - i;
    kv->n_free = kv->n_blocks;
    rc = be->iface->buf_alloc(be->ctx, bytes, &kv->pool);
    if (rc)
        goto err;
    *out = kv;
    return 0;
err:
    mesh_kv_destroy(&kv);
    return rc;
}

void mesh_kv_destroy(mesh_kv_t **p) {
    mesh_kv_t *kv = *p;
    if (!kv)
        return;
    if (kv->pool)
        kv->be->iface->buf_free(kv->be->ctx, kv->pool);
    if (kv->seqs)
        for (int32_t i = 0; i < kv->max_seqs; i++)
            free(kv->seqs[i].blocks);
    free(kv->seqs);
    free(kv->free_list);
    free(kv);
    *p = NULL;
}

bool mesh_kv_seq_live(const mesh_kv_t *kv, int32_t seq) {
    return kv && seq >= 0 && seq < kv->max_seqs && kv->seqs[seq].live;
}

int mesh_kv_seq_new(mesh_kv_t *kv, int32_t *seq_out) {
    for (int32_t i = 0; i < kv->max_seqs; i++) {
        if (!kv->seqs[i].live) {
            kv->seqs[i].live = true;
            kv->seqs[i].len = 0;
            kv->seqs[i].n_blocks = 0;
            *seq_out = i;
            return 0;
        }
    }
    return MESH_ENOSPACE;
}

int mesh_kv_seq_free(mesh_kv_t *kv, int32_t seq) {
    if (!mesh_kv_seq_live(kv, seq))
        return MESH_ENOENT;
    for (int32_t i = 0; i < kv->seqs[seq].n_blocks; i++)
        kv->free_list[kv->n_free++] = kv->seqs[seq].blocks[i];
    kv->seqs[seq].n_blocks = 0;
    kv->seqs[seq].len = 0;
    kv->seqs[seq].live = false;
    return 0;
}

int32_t mesh_kv_seq_len(const mesh_kv_t *kv, int32_t seq) {
    if (!mesh_kv_seq_live(kv, seq))
        return MESH_ENOENT;
    return kv->seqs[seq].len;
}

int mesh_kv_seq_truncate(mesh_kv_t *kv, int32_t seq, int32_t len) {
    if (!mesh_kv_seq_live(kv, seq))
        return MESH_ENOENT;
    if (len < 0)
        return MESH_EINVAL;
    if (len < kv->seqs[seq].len)
        kv->seqs[seq].len = len;
    return 0;
}

uint32_t mesh_kv_capacity_tokens(const mesh_kv_t *kv) {
    return (uint32_t)kv->n_blocks * (uint32_t)kv->block_tokens;
}
uint32_t mesh_kv_free_tokens(const mesh_kv_t *kv) {
    return (uint32_t)kv->n_free * (uint32_t)kv->block_tokens;
}
uint64_t mesh_kv_bytes_per_token(const mesh_kv_t *kv) {
    return (uint64_t)kv->n_layer * (uint64_t)kv->d_kv * (kv->type == MESH_QT_F32 ? 4u : 2u);
}
uint32_t mesh_kv_block_tokens(const mesh_kv_t *kv) {
    return (uint32_t)kv->block_tokens;
}

int32_t mesh_kv_blocks_needed(const mesh_kv_t *kv, int32_t seq, int32_t len) {
    int32_t want = (len + kv->block_tokens - 1) / kv->block_tokens;
    int32_t have = kv->seqs[seq].n_blocks;
    return want > have ? want - have : 0;
}

int mesh_kv_grow(mesh_kv_t *kv, int32_t seq, int32_t len) {
    int32_t need = mesh_kv_blocks_needed(kv, seq, len);
    if (need == 0)
        return 0;
    if (need > kv->n_free || kv->seqs[seq].n_blocks + need > kv->max_blocks_per_seq)
        return MESH_ENOSPACE;
    for (int32_t i = 0; i < need; i++)
        kv->seqs[seq].blocks[kv->seqs[seq].n_blocks++] = kv->free_list[--kv->n_free];
    return 0;
}
