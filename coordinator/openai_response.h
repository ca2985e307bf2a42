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

// "data: <json>\n\n" of a tree, as new text; caller frees. NULL on no memory.
char *mesh_openai_sse(const cJSON *j);

#endif
