// SPDX-License-Identifier: MIT
// The built-in vocabulary and chat template of synthetic models (synth_vocab.c).
#ifndef MESH_SYNTH_VOCAB_H
#define MESH_SYNTH_VOCAB_H

#include "gguf.h"

// Sets every tokenizer.* key of a vocabulary of exactly `vocab` tokens on w:
// byte tokens, learned merges, filler tokens and GLM's 22 special tokens last.
// Returns 0 or a negative MESH_E* code with a reason in err.
int mesh__synth_vocab(mesh_gguf_writer_t *w, uint32_t vocab, char *err, size_t err_len);

#endif
