// SPDX-License-Identifier: MIT
// libmeshengine's public API: load a model, keep a paged KV cache, run one
// forward pass over a batch of tokens from any number of sequences.
//
// Typical use (continuous batching): load once; create a sequence per
// request; each step, put every active sequence's next token(s) into one
// mesh_batch_t and call mesh_model_forward; free a sequence when its request
// ends. A token's logits never depend on what else is in the batch.
//
// Threading: one model (and its KV cache) is used by one thread at a time;
// the backend parallelises inside each call.
#ifndef MESH_ENGINE_H
#define MESH_ENGINE_H

#include "gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mesh_model mesh_model_t;
typedef struct mesh_kv mesh_kv_t;

typedef struct {
    const char *backend; // "cpu" (default when NULL), "cuda" when built
    int device;          // device index for GPU backends
    int n_threads;       // CPU threads; 0 = mesh_cpu_features()->physical_cores
    uint32_t kv_type;    // MESH_QT_F32 (default) or MESH_QT_F16
    uint64_t kv_bytes;   // KV pool budget in bytes; 0 = use kv_tokens
    uint32_t kv_tokens;  // KV pool size in tokens when kv_bytes is 0; 0 = min(context_length, 8192)
    uint32_t max_seqs;   // sequences that may live at once; 0 = 64
    uint32_t max_batch;  // tokens per internal forward chunk (scratch size); 0 = 512
} mesh_model_params_t;

// Fills the defaults above.
void mesh_model_params_default(mesh_model_params_t *p);

// Loads a GGUF model (architecture deepseek2). p may be NULL (defaults).
// On success *out owns the mapping, the backend and the KV cache: destroy
// with mesh_model_destroy. On failure returns a negative MESH_E* code and
// writes a one-line reason to err (if not NULL), e.g.
// "model: tensor 'blk.3.attn_q_b.weight' has shape [64,190], want [64,192]".
int mesh_model_load(const char *path, const mesh_model_params_t *p, mesh_model_t **out,
                    char *err, size_t err_len);
// Frees everything; sets *m to NULL. Safe on NULL.
void mesh_model_destroy(mesh_model_t **m);

typedef struct {
    char arch[32];              // "deepseek2"
    char name[128];             // general.name or ""
    char file_type[16];         // "BF16", "Q8_0", "Q4_K_M", ... from general.file_type ("?" if unknown)
    uint64_t n_params;          // parameters (elements of all tensors)
    uint64_t file_bytes;
    uint32_t n_vocab;
    uint32_t n_ctx_train;       // context_length
    uint32_t n_layer, n_embd, n_head, n_expert, n_expert_used;
    uint64_t kv_bytes_per_token;// all layers, at the chosen KV element type
    uint32_t kv_capacity_tokens;// the pool's capacity
    char backend[16];           // "cpu"
    char device[128];           // e.g. "AMD EPYC (2 threads, avx2)"
    uint64_t mem_total, mem_free; // device memory, bytes
} mesh_model_info_t;

void mesh_model_info(const mesh_model_t *m, mesh_model_info_t *out);
// The model's GGUF reader (tokenizer, template, metadata). Owned by the model.
const mesh_gguf_t *mesh_model_gguf(const mesh_model_t *m);
uint32_t mesh_model_n_vocab(const mesh_model_t *m);

// ---- KV cache: paged blocks from one pool, a block table per sequence ----
// The model owns one cache, created at load with the budget in the params.
mesh_kv_t *mesh_model_kv(mesh_model_t *m);

// New empty sequence. MESH_ENOSPACE when max_seqs are alive.
int mesh_kv_seq_new(mesh_kv_t *kv, int32_t *seq_out);
// Releases the sequence's blocks. MESH_ENOENT for an unknown id.
int mesh_kv_seq_free(mesh_kv_t *kv, int32_t seq);
// Tokens cached for seq (positions [0, len)), or a negative code.
int32_t mesh_kv_seq_len(const mesh_kv_t *kv, int32_t seq);
// Forgets positions >= len (keeps the blocks that still hold tokens).
int mesh_kv_seq_truncate(mesh_kv_t *kv, int32_t seq, int32_t len);
uint32_t mesh_kv_capacity_tokens(const mesh_kv_t *kv); // whole pool
uint32_t mesh_kv_free_tokens(const mesh_kv_t *kv);     // in unused blocks
uint64_t mesh_kv_bytes_per_token(const mesh_kv_t *kv);
uint32_t mesh_kv_block_tokens(const mesh_kv_t *kv);

// ---- forward ----
typedef struct {
    int32_t token;      // id < n_vocab
    int32_t seq;        // a live sequence
    int32_t pos;        // position in its sequence: <= its length so far
    bool logits;        // write this token's logits row
} mesh_batch_tok_t;

typedef struct {
    int32_t n;
    const mesh_batch_tok_t *tok; // n entries (caller-owned)
} mesh_batch_t;

// Evaluates the batch: stores each token's KV at its position (a token at
// position p attends to positions [0, p] of its sequence, including earlier
// tokens of the same batch), extends sequence lengths, and writes
// [n_flagged][n_vocab] float logits, rows in batch order of the flagged
// tokens. Batches larger than max_batch are run in chunks (same results).
// Errors: MESH_EINVAL (bad token id / seq / position gap: nothing changed),
// MESH_ENOSPACE (the pool cannot hold the new tokens: nothing changed).
int mesh_model_forward(mesh_model_t *m, mesh_kv_t *kv, const mesh_batch_t *b, float *logits);

#endif
