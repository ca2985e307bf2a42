// SPDX-License-Identifier: MIT
// OpenAI request parsing: a JSON body of /v1/chat/completions or
// /v1/completions becomes a checked mesh_coord_request_t (coord_core.h) plus
// the options that shape the response (stream, usage, tool_choice, ...).
// Every rejection names the parameter, so the HTTP layer can answer with the
// OpenAI error shape unchanged. Pure: no I/O, no global state (fuzzed).
#ifndef MESH_OPENAI_REQUEST_H
#define MESH_OPENAI_REQUEST_H

#include "coord_core.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_OPENAI_MAX_STOP 16       // stop strings per request
#define MESH_OPENAI_MAX_DEPTH 64      // JSON nesting accepted
#define MESH_OPENAI_DEFAULT_MAX_TOKENS 1024u
#define MESH_OPENAI_MAX_MAX_TOKENS (1u << 24)

typedef enum {
    MESH_OPENAI_CHAT = 0,
    MESH_OPENAI_COMPLETION,
    MESH_OPENAI_KIND_COUNT
} mesh_openai_kind_t;

typedef enum {
    MESH_TOOL_CHOICE_AUTO = 0,  // tools rendered, model decides
    MESH_TOOL_CHOICE_NONE,      // tools not rendered at all
    MESH_TOOL_CHOICE_REQUIRED,  // told in the prompt; a reply without a call is an error
    MESH_TOOL_CHOICE_NAMED,     // as required, and only that function
    MESH_TOOL_CHOICE_COUNT
} mesh_tool_choice_t;

// What a rejected request gets: HTTP status and the OpenAI error fields.
typedef struct {
    int status;           // 400, 404, ...
    char type[32];        // "invalid_request_error"
    char param[64];       // "" when not about one parameter
    char code[48];        // "" or "invalid_value", "context_length_exceeded", ...
    char message[320];
} mesh_openai_error_t;

typedef struct {
    mesh_openai_kind_t kind;
    mesh_coord_request_t req;   // points into the owned fields below
    int stream;
    int include_usage;          // stream_options.include_usage
    int logprobs;               // chat: logprobs true; completions: logprobs >= 0 given
    uint32_t top_logprobs;
    mesh_tool_choice_t tool_choice;
    char tool_name[128];        // NAMED: the function
    int has_tools;              // tools given (and rendered)
    char *model;                // owned copies
    char *messages_json;
    char *tools_json;
    char *prompt;
    int32_t *ids;
    char **stop;
    size_t n_stop;
} mesh_openai_request_t;

// Parses body (len bytes, need not be NUL-terminated). Returns 0 and fills
// out, or a negative MESH_E* with err filled (out is then empty). On success
// the caller releases out with mesh_openai_request_clear.
int mesh_openai_request_parse(mesh_openai_kind_t kind, const char *body, size_t len,
                              mesh_openai_request_t *out, mesh_openai_error_t *err);
void mesh_openai_request_clear(mesh_openai_request_t *r);

// Fills err (status, type, param, code, printf message). Returns status.
int mesh_openai_error_set(mesh_openai_error_t *err, int status, const char *param,
                          const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

// 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
int mesh_openai_utf8_valid(const char *s, size_t n);

#endif
