// SPDX-License-Identifier: MIT
// OpenAI response shapes: the error object, ids, stream chunks and whole
// responses for chat and text completions. Builders only: they make cJSON
// trees and text, the HTTP layer decides when to send them.
#ifndef MESH_OPENAI_RESPONSE_H
#define MESH_OPENAI_RESPONSE_H

#include "openai_request.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cJSON cJSON;

// What every response of one request shares.
typedef struct {
    mesh_openai_kind_t kind;
    char id[48];          // "chatcmpl-<24 hex>" / "cmpl-<24 hex>"
    long long created;    // Unix seconds when the request arrived
    char model[64];       // as the client asked for it
    char node[64];        // node that served it (after a failover: the last)
    char route[64];       // why that node ("most headroom", "failover", ...)
} mesh_openai_meta_t;

// Fills meta->id with a fresh random id of the kind's prefix and created.
void mesh_openai_meta_init(mesh_openai_meta_t *m, mesh_openai_kind_t kind, const char *model);

// "call_<24 hex>" for a tool call.
void mesh_openai_tool_call_id(char *out, size_t cap);

// {"error": {"message","type","param","code"}} as new text; caller frees.
char *mesh_openai_error_text(const mesh_openai_error_t *e);

// A stream chunk with one choice; *choice gets that choice object (for
// chat, add to its "delta"; for completions set "text"). Caller deletes.
cJSON *mesh_openai_chunk(const mesh_openai_meta_t *m, cJSON **choice);

// The "mesh" body field: {"node": ..., "route": ...}.
cJSON *mesh_openai_mesh_field(const mesh_openai_meta_t *m);

// {"prompt_tokens","completion_tokens","total_tokens"}.
cJSON *mesh_openai_usage(uint32_t prompt_tokens, uint32_t completion_tokens);

// ---- logprobs ----
// The text shown for a token's bytes: the bytes themselves when they are
// valid UTF-8 without a NUL, else "bytes:" and \xNN per byte (a token that
// holds part of a character), so the JSON stays valid and the exact bytes
// are in the entry's "bytes". New text; caller frees. NULL on no memory.
char *mesh_openai_token_text(const char *piece, size_t len);

// One chat choices[].logprobs.content[] entry: token, logprob, bytes (array
// of byte values) and top_logprobs[] (each {token, logprob, bytes}, most
// likely first). lp NULL: the node sent nothing (logprob and bytes null,
// token "", no alternatives); lp without a piece (an older node): token ""
// and bytes null, for the caller to fill. Caller deletes. NULL on no memory.
cJSON *mesh_openai_logprob_entry(const mesh_coord_logprob_t *lp);

// The completions endpoint's older shape made from chat entries (as above):
// {tokens, token_logprobs, top_logprobs, text_offset}. top_logprobs is one
// {token: logprob} object per token (the first of equal texts kept), or
// null when with_top is 0. text_offset: code points of the completion text
// before each token, starting at *offset, which is advanced past the last
// (streams carry it from chunk to chunk). Caller deletes.
cJSON *mesh_openai_legacy_logprobs(const cJSON *entries, int with_top, long *offset);

// "data: <json>\n\n" of a tree, as new text; caller frees. NULL on no memory.
char *mesh_openai_sse(const cJSON *j);

#endif
