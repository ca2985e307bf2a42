// SPDX-License-Identifier: MIT
// What a node reports about a model file: read from the GGUF header only
// (metadata key/values), so probing a 20 GB file costs a few reads, not a
// load. Bounded: every length is checked against the file size before use,
// so a truncated or hostile file gives an error, never a huge allocation.
#ifndef MESH_NODE_MODEL_H
#define MESH_NODE_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[64];               // served name ("tiny-glm")
    char arch[32];               // general.architecture ("deepseek2")
    char quant[24];              // from general.file_type ("q4_k_m"), lower case
    char path[1024];
    uint64_t file_size;          // bytes
    uint32_t ctx_limit;          // tokens ({arch}.context_length, or the node's cap)
    uint32_t n_layers;           // {arch}.block_count
    uint64_t kv_bytes_per_token; // bytes, all layers, f16 cache
    float prefill_tps, decode_tps; // tokens/s from the load-time benchmark (0: none)
    int can_generate;            // 1 when the engine loaded it
} mesh_node_model_t;

// Reads the GGUF header at path. name: served name, or NULL for
// general.name (lower case) or the file name. Returns 0 or a negative
// MESH_E* with a one-line reason in err.
int mesh_node_model_probe(const char *path, const char *name, mesh_node_model_t *m,
                          char *err, size_t err_len);

// Quant name for a llama.cpp file type number ("q4_k_m"), or NULL.
const char *mesh_node_ftype_name(uint32_t ftype);

#endif
