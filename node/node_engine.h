// SPDX-License-Identifier: MIT
// The node's view of the engine: load models, render + tokenize requests,
// run them through the engine's continuous-batching scheduler, cancel them.
// node_engine.c adapts it to engine/engine.h, engine/scheduler.h,
// engine/tokenizer.h and engine/chat_template.h.
//
// Threads: each loaded model has one scheduler and one engine thread that
// alone steps it (and so alone touches the model and its KV cache). submit,
// cancel, tokenize and stats are safe from any thread. Events come on the
// model's engine thread: keep the callback short (the node queues them for
// its socket thread).
//
// Debugging aid: MESH_NODE_DEBUG_TOKEN_DELAY_MS=N (read once at
// mesh_node_engine_new) makes the engine thread sleep N ms before it delivers
// each token event (the first one too), so a test can kill a node deterministically in mid-stream. Never
// set it in production.
#ifndef MESH_NODE_ENGINE_H
#define MESH_NODE_ENGINE_H

#include "mesh.pb-c.h"
#include "node_model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mesh_node_engine mesh_node_engine_t;

typedef struct {
    const char *backend; // "cpu" (default), "cuda" when the engine has it
    int device;          // device index of GPU backends
    int n_threads;       // CPU threads; 0 = the engine's default (physical cores)
} mesh_node_engine_opts_t;

// Most alternatives per token an event carries (OpenAI's top_logprobs limit).
#define MESH_NODE_MAX_TOP 20

// A candidate token at one position.
typedef struct {
    int32_t token;
    float logprob;             // natural log of its probability (<= 0)
    const char *piece;         // its bytes decoded alone (may be part of a UTF-8
    size_t piece_len;          // character; special tokens as their text)
} mesh_node_alt_t;

// One event of a request, on the engine thread. Pointers are valid during
// the callback only. Logprobs are the model's raw distribution (sampler.h):
// before penalties and temperature.
typedef struct {
    uint64_t request_id;       // the coordinator's id
    int32_t token;             // done == 0: the new token
    float logprob;             // its log-probability (0 unless asked for)
    int has_logprob;           // 1: logprob, piece and top[] are filled
    const char *piece;         // has_logprob: the token decoded alone
    size_t piece_len;
    int n_top;                 // alternatives in top[] (sampling.top_logprobs, <= 20)
    const mesh_node_alt_t *top; // most likely first
    const char *text;          // UTF-8-complete text it releases (may be empty);
    size_t text_len;           // done == 1: text still held back
    int done;                  // 1: the request ended; last event
    const char *finish;        // done: "stop", "length", "cancel", "error"
    uint32_t prompt_tokens;    // done: prompt tokens, without the replayed ones
    uint32_t completion_tokens;// done: generated here (replayed ones not counted)
} mesh_node_event_t;

typedef void (*mesh_node_event_fn)(void *user, const mesh_node_event_t *ev);

// Caller destroys the result with mesh_node_engine_destroy. opts may be NULL.
int mesh_node_engine_new(const mesh_node_engine_opts_t *opts, mesh_node_event_fn on_event,
                         void *user, mesh_node_engine_t **out);
// Stops every engine thread (running requests end with "cancel"), frees all
// models, nulls *e.
void mesh_node_engine_destroy(mesh_node_engine_t **e);

// 1 when this build can generate.
int mesh_node_engine_can_generate(void);

// Loads m (already probed) with a KV pool of kv_budget bytes (0: the
// engine's default of min(context, 8192) tokens), runs the load-time
// self-benchmark (a 64-token prefill, then 16 single-token decode steps) and
// starts the model's engine thread. Updates m: can_generate, measured
// prefill/decode tokens/s, kv_bytes_per_token (the engine's real cache).
// Returns 0 or a negative
// MESH_E* with a one-line reason in err. The engine keeps the pointer m.
int mesh_node_engine_load(mesh_node_engine_t *e, mesh_node_model_t *m, uint64_t kv_budget,
                          char *err, size_t err_len);

// Prompt ids of an input: chat messages rendered with the model's chat
// template, then tokenized; or text tokenized (special tokens parsed, no
// BOS). Exactly one of chat / prompt. *ids is malloc'd (caller frees).
int mesh_node_engine_tokenize(mesh_node_engine_t *e, const mesh_node_model_t *m,
                              const Mesh__ChatInput *chat, const char *prompt, int32_t **ids,
                              size_t *n, char *err, size_t err_len);

// Starts a request on a loaded model (prompt from the request's input, then
// continue_ids appended). Returns 0 (events follow) or a negative MESH_E*
// with the reason in err (no event then).
int mesh_node_engine_submit(mesh_node_engine_t *e, const mesh_node_model_t *m,
                            const Mesh__GenerateRequest *g, char *err, size_t err_len);

// Ends a request at the engine's next step (its DONE event says "cancel");
// MESH_ENOTFOUND if it is not running.
int mesh_node_engine_cancel(mesh_node_engine_t *e, uint64_t request_id);

typedef struct {
    uint32_t active, queued;  // sequences, all models
    uint64_t kv_reserved;     // bytes of KV reserved by admitted sequences
    uint64_t gen_tokens;      // tokens generated since load, all models
} mesh_node_engine_stats_t;

void mesh_node_engine_stats(mesh_node_engine_t *e, mesh_node_engine_stats_t *out);

#endif
