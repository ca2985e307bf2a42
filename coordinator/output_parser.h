// SPDX-License-Identifier: MIT
// Model output parsers: turn the text a model generates into the structured
// fields of an OpenAI response (content, reasoning_content, tool_calls).
// Each model family has its own conventions (GLM: <think>, <tool_call> with
// <arg_key>/<arg_value>), so each family gets one parser behind this small
// interface; the HTTP layer picks one by the model's architecture and never
// looks at tags itself.
//
// Parsers are streaming state machines: text arrives in arbitrary pieces
// (a tag may be split over two tokens), output is emitted as soon as it is
// certain. Cost: O(bytes fed); memory holds at most one partial tag plus the
// tool call being read.
#ifndef MESH_OUTPUT_PARSER_H
#define MESH_OUTPUT_PARSER_H

#include <stddef.h>

// Where parsed output goes. Called synchronously from feed/finish. Text
// pointers are valid only during the call.
typedef struct {
    void (*content)(void *user, const char *text, size_t len);
    void (*reasoning)(void *user, const char *text, size_t len);
    // One complete tool call: name and its arguments as JSON object text.
    void (*tool_call)(void *user, const char *name, const char *arguments_json);
} mesh_out_sink_t;

typedef struct mesh_out_parser mesh_out_parser_t;

typedef struct {
    const char *family;   // "glm"
    // New parser. thinking: the prompt opened a reasoning block, so output
    // starts as reasoning. sink is copied, user borrowed. NULL on no memory.
    mesh_out_parser_t *(*create)(int thinking, const mesh_out_sink_t *sink, void *user);
    // Feeds text (any split, not necessarily NUL-terminated). 0 or MESH_ENOMEM.
    int (*feed)(mesh_out_parser_t *p, const char *text, size_t len);
    // End of output: flushes what was held back (an unfinished tool call is
    // given back as content, so nothing generated is lost).
    int (*finish)(mesh_out_parser_t *p);
    void (*destroy)(mesh_out_parser_t **p);
} mesh_out_family_t;

extern const mesh_out_family_t mesh_out_glm;

// The parser for a GGUF architecture name ("deepseek2", "glm4moe"); GLM's
// conventions are the default while it is the only family.
static inline const mesh_out_family_t *mesh_out_family_for(const char *arch) {
    (void)arch;
    return &mesh_out_glm;
}

#endif
