// SPDX-License-Identifier: MIT
// The paged latent KV cache (engine-internal part; the public calls are in
// engine.h). One pool of blocks in one backend buffer; each block holds
// block_tokens tokens for every layer; each sequence has a block table.
// Bookkeeping lives on the host; the pool on the device.
#ifndef MESH_KV_CACHE_H
#define MESH_KV_CACHE_H

#include "backend.h"
#include "engine.h"

struct mesh_kv {
    mesh_backend_t *be;      // not owned
    mesh_bbuf_t *pool;       // n_blocks * n_layer * block_tokens * d_kv elements
    uint32_t type;           // MESH_QT_F32 / MESH_QT_F16
    int n_layer, d_kv, block_tokens;
    int32_t n_blocks, n_free;
    int32_t *free_list;      // [n_blocks] stack of free block ids
    int32_t max_seqs;
    int32_t max_blocks_per_seq;
    struct {
        bool live;
        int32_t len;         // tokens cached
        int32_t n_blocks;    // blocks owned
        int32_t *blocks;     // [max_blocks_per_seq]
    } *seqs;                 // [max_seqs]
};

// Creates the pool: capacity rounded down to whole blocks (at least one).
// Caller destroys with mesh_kv_destroy.
int mesh_kv_new(mesh_backend_t *be, uint32_t type, int n_layer, int d_kv, uint64_t tokens,
                uint32_t max_seqs, uint32_t max_ctx, mesh_kv_t **out);
void mesh_kv_destroy(mesh_kv_t **kv);
// Blocks needed for seq to hold `len` tokens beyond what it has.
int32_t mesh_kv_blocks_needed(const mesh_kv_t *kv, int32_t seq, int32_t len);
// Grows seq to hold len tokens. MESH_ENOSPACE (nothing changed) if the pool can't.
int mesh_kv_grow(mesh_kv_t *kv, int32_t seq, int32_t len);
bool mesh_kv_seq_live(const mesh_kv_t *kv, int32_t seq);

#endif
