// SPDX-License-Identifier: MIT
// Engine-internal model state: hyperparameters read from GGUF, weights bound
// to backend buffers, scratch. The deepseek2 graph is model_deepseek2.c;
// loading and binding are model.c.
#ifndef MESH_MODEL_H
#define MESH_MODEL_H

#include "backend.h"
#include "engine.h"
#include "kv_cache.h"

#define MESH_MODEL_MAX_LAYERS 512
#define MESH_LOGIT_ROWS 64 // output rows computed per matmul (bounds scratch for big vocabularies)

typedef struct {
    uint32_t n_layer, n_embd, n_ff, n_head, n_vocab, n_ctx_train;
    uint32_t q_lora;       // 0: plain attn_q
    uint32_t kv_lora;      // latent width
    uint32_t n_rot;        // rope dims per head
    uint32_t d_nope;       // qk nope dims per head
    uint32_t d_v;          // v dims per head
    uint32_t n_dense;      // leading dense blocks
    uint32_t n_expert, n_expert_used, n_expert_shared, n_ff_exp;
    float eps, w_scale;
    bool w_norm;
    int gating;            // 1 softmax, 2 sigmoid
    float attn_scale;      // 1/sqrt(d_nope + n_rot) * mscale^2
    mesh_rope_params_t rope;
} mesh_hparams_t;

typedef struct {
    mesh_bweight_t attn_norm;   // [n_embd]
    mesh_bweight_t q_a;         // [n_embd, q_lora]
    mesh_bweight_t q_a_norm;    // [q_lora]
    mesh_bweight_t q_b;         // [q_lora, n_head*(d_nope+n_rot)]
    mesh_bweight_t q;           // [n_embd, n_head*(d_nope+n_rot)] when q_lora == 0
    mesh_bweight_t kv_a;        // [n_embd, kv_lora + n_rot]
    mesh_bweight_t kv_a_norm;   // [kv_lora]
    mesh_bweight_t k_b;         // [d_nope, kv_lora, n_head]
    mesh_bweight_t v_b;         // [kv_lora, d_v, n_head]
    mesh_bweight_t o;           // [n_head*d_v, n_embd]
    mesh_bweight_t ffn_norm;    // [n_embd]
    mesh_bweight_t gate, up;    // [n_embd, n_ff]        dense
    mesh_bweight_t down;        // [n_ff, n_embd]        dense
    mesh_bweight_t router;      // [n_embd, n_expert]
    mesh_bweight_t sel_bias;    // [n_expert] (data.buf NULL when absent)
    mesh_bweight_t gate_exps, up_exps; // [n_embd, n_ff_exp, n_expert]
    mesh_bweight_t down_exps;   // [n_ff_exp, n_embd, n_expert]
    mesh_bweight_t gate_sh, up_sh; // [n_embd, n_ff_exp*n_shared]
    mesh_bweight_t down_sh;     // [n_ff_exp*n_shared, n_embd]
    bool moe;
} mesh_layer_t;

// Scratch regions (offsets in model->work), sized for max_batch tokens.
typedef struct {
    size_t x, xn, qa, q, qcat, kv, olat, o, g, u, moe, logits_in, logits, ids, pos, slots,
        atok, tables, lidx;
    size_t total;
} mesh_work_layout_t;

struct mesh_model {
    mesh_gguf_t *gguf;
    mesh_backend_t *be;
    mesh_hparams_t hp;
    mesh_bweight_t tok_embd;   // [n_embd, n_vocab]
    mesh_bweight_t out_norm;   // [n_embd]
    mesh_bweight_t output;     // [n_embd, n_vocab]
    mesh_layer_t *layers;      // [n_layer]
    mesh_bbuf_t *weights_buf;  // the whole file (wrapped or uploaded)
    mesh_bbuf_t *split_buf;    // k_b/v_b split from an old attn_kv_b, or NULL
    mesh_kv_t *kv;
    mesh_bbuf_t *work;
    mesh_work_layout_t wl;
    int max_batch;
    int32_t *h_i32;            // host staging for ids/pos/slots/tables [several * max_batch...]
    mesh_attn_tok_t *h_atok;   // [max_batch]
    size_t h_tables_cap;       // int32 entries in h_tables
    int32_t *h_tables;
    int32_t *h_seq_len;        // [max_seqs] running lengths during a forward
    int32_t *h_seq_off;        // [max_seqs] table offset in this chunk (-1 none)
    char file_type[16];
    uint64_t n_params;
    int n_threads;
};

// Runs one chunk (n <= max_batch) after validation and KV growth.
int mesh_ds2_forward_chunk(mesh_model_t *m, const mesh_batch_tok_t *tok, int n, float *logits);

#endif
