// SPDX-License-Identifier: MIT
// Synthetic models: random-weight GGUF files with a real architecture's exact
// shapes, for benchmarks and demos without downloads.
//
// A preset fixes the shapes (GLM-4.7-Flash's own, or scaled-down versions with
// its proportions); the writer fills every tensor with seeded random values,
// quantizes it to the requested file type, and writes a complete GGUF: the
// deepseek2 hyperparameters, a byte-level BPE vocabulary of our own (or one
// copied from another GGUF) and a GLM-style chat template. Such a file loads
// like any downloaded one; its text is gibberish because its weights are random.
#ifndef MESH_SYNTH_H
#define MESH_SYNTH_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef struct {
    const char *name;       // preset name: "glm-4.7-flash", "small", "tiny"
    uint32_t n_layer;       // transformer blocks
    uint32_t n_dense;       // leading blocks with a dense FFN instead of MoE
    uint32_t hidden;        // embedding width
    uint32_t ff_dense;      // dense FFN width
    uint32_t n_head;        // attention heads
    uint32_t q_lora;        // query low-rank width; 0: plain attn_q
    uint32_t kv_lora;       // latent KV width
    uint32_t nope;          // per-head key width without RoPE
    uint32_t rope;          // per-head (and shared key) RoPE width
    uint32_t v_dim;         // per-head value width
    uint32_t n_expert;      // routed experts per MoE layer
    uint32_t n_used;        // experts chosen per token
    uint32_t n_shared;      // shared experts (their FFN width is n_shared * expert_ff)
    uint32_t expert_ff;     // routed expert FFN width
    uint32_t vocab;         // vocabulary size
    uint32_t ctx;           // context length the file advertises
    float rope_theta;       // RoPE base
    float expert_scale;     // routed weights scale (expert_weights_scale)
    bool expert_norm;       // normalise top-k weights (expert_weights_norm)
    uint32_t gating;        // 1 softmax, 2 sigmoid
} mesh_synth_preset_t;

// The preset named `name`, or NULL. Pointer to static data.
const mesh_synth_preset_t *mesh_synth_find_preset(const char *name);
// Preset i for listing (NULL past the end).
const mesh_synth_preset_t *mesh_synth_preset_at(size_t i);

// Total parameter count of a preset's tensors (embeddings included).
uint64_t mesh_synth_n_params(const mesh_synth_preset_t *p);

typedef struct {
    mesh_synth_preset_t shape; // shapes to write (a preset, possibly edited)
    const char *ftype;         // file type as `meshrun quantize` names them (mesh_ftype_names())
    const char *out_path;      // file to write (atomically: tmp + rename)
    uint64_t seed;             // same seed, same file
    int n_threads;             // quantization threads (>= 1)
    const char *vocab_from;    // NULL: built-in vocabulary; else copy tokenizer.* from this GGUF
    bool quiet;                // no progress lines on stderr
} mesh_synth_params_t;

// Writes the model. Returns 0 or a negative MESH_E* code with a one-line
// reason in err. Memory: O(largest tensor), whatever the model's size.
int mesh_synth_write(const mesh_synth_params_t *p, char *err, size_t err_len);

#endif
