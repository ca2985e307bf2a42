// SPDX-License-Identifier: MIT
// GGUF file conversion to another tensor type (meshrun quantize).
//
// A file type ("q4_k_m", "q8_0", "bf16", ...) names a mix as llama.cpp
// users expect it: 1-D tensors, norms and the MoE router stay F32; output
// gets Q6_K in the quantized mixes; the "_m" mixes give some ffn_down/attn_v
// layers Q6_K; rows that are not a multiple of 256 fall back to a 32-block
// type (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0).
// Conversion streams tensor by tensor: memory is one output tensor plus a
// row of f32 per thread; the input stays mmapped.
#ifndef MESH_QUANTIZE_H
#define MESH_QUANTIZE_H

#include "quant.h"

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *name;     // "q4_k_m"
    mesh_qtype_t base;    // the main tensor type
    uint32_t llama_ftype; // general.file_type (LLAMA_FTYPE_*)
    int mix;              // internal: which per-tensor rules apply
} mesh_ftype_t;

// Looks up a file type name, case-insensitive. NULL when unknown.
const mesh_ftype_t *mesh_ftype_find(const char *name);

// Comma-separated list of the file type names (static string).
const char *mesh_ftype_names(void);

// The type a tensor gets in file type ft. name is the GGUF tensor name,
// n_dims/ne its shape (ne[0] the row), n_layer the model's block count (for
// the "_m" mixes; 0 if unknown), src_type its current type.
mesh_qtype_t mesh_ftype_tensor_type(const mesh_ftype_t *ft, const char *name, uint32_t n_dims,
                                    const uint64_t *ne, uint32_t n_layer, uint32_t src_type);

// Converts in_path to out_path in file type ft_name with n_threads worker
// threads (0: one per core). Writes a line per tensor and a summary to log
// (NULL: silent). Returns 0 or a negative MESH_E* code with a one-line
// reason in err. On failure no output file is left behind.
int mesh_quantize_file(const char *in_path, const char *out_path, const char *ft_name,
                       int n_threads, FILE *log, char *err, size_t err_len);

#endif
