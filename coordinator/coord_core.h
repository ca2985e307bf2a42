// SPDX-License-Identifier: MIT
// The coordinator core: node registry, connections, routing, streaming and
// failover, behind a small thread-safe API. The HTTP layers (admin API in
// coord_admin.c, the OpenAI endpoint later) call only this header.
//
// One core thread owns every ZeroMQ socket (a CURVE-client DEALER per node)
// and runs all callbacks. Other threads talk to it through a mutex and a
// wake-up pipe, so a submitted request is routed and on the wire within one
// loop turn (microseconds), not at the next poll timeout.
#ifndef MESH_COORD_CORE_H
#define MESH_COORD_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mesh_coord mesh_coord_t;
typedef struct cJSON cJSON;

typedef struct {
    const char *state_path;     // registry file (JSON), written atomically; required
    const char *key_path;       // this coordinator's CURVE key file; required
    const char *name;           // shown to nodes (default "meshcoord")
    uint32_t heartbeat_ms;      // node heartbeat interval assumed until a node says (1000)
    uint32_t dead_after;        // missed heartbeats before a node is dead (3)
    uint32_t max_attempts;      // nodes tried per request before giving up (3)
} mesh_coord_opts_t;

// Most alternatives per token (OpenAI's top_logprobs limit).
#define MESH_COORD_MAX_TOP_LOGPROBS 20

// A candidate token at one generated position (an OpenAI top_logprobs entry).
typedef struct {
    int32_t id;
    float logprob;             // natural log, <= 0
    const char *piece;         // the token decoded alone by the node's tokenizer:
    size_t piece_len;          // raw bytes, maybe part of a UTF-8 character
} mesh_coord_alt_t;

// What the node reported about one generated token. Pointers are valid
// during the callback only.
typedef struct {
    float logprob;             // the sampled token's (model distribution, see sampler.h)
    int has_piece;             // 0: an older node sent the logprob alone
    const char *piece;         // has_piece: the token decoded alone (raw bytes)
    size_t piece_len;
    const mesh_coord_alt_t *top; // (n_top) most likely first; n_top <= top_logprobs
    size_t n_top;
} mesh_coord_logprob_t;

// A generation request. Borrowed for the duration of mesh_coord_submit only:
// the core copies what it needs. Exactly one input: prompt, messages_json or
// prompt_ids.
typedef struct {
    const char *model;          // "glm-4.7-flash" or "glm-4.7-flash:q4_k_m"
    const char *quant;          // NULL: from the model suffix, or any
    const char *prompt;         // plain text prompt
    const char *messages_json;  // chat: OpenAI messages array as JSON text
    const char *tools_json;     // chat: tools array JSON text or NULL
    int add_generation_prompt;  // chat
    int enable_thinking;        // chat
    const int32_t *prompt_ids;  // token ids
    size_t n_prompt_ids;
    float temperature, top_p, min_p;
    uint32_t top_k;
    float repeat_penalty, presence_penalty, frequency_penalty;
    uint64_t seed;
    int has_seed;
    const char *const *stop;    // stop strings
    size_t n_stop;
    uint32_t max_tokens;        // required, > 0
    uint32_t logprobs;          // nonzero: each token's logprob
    // (optional) What the node reports about the ids the next on_chunk
    // delivers, one entry per id, called just before it (core thread, same
    // user) when the node sent logprobs. After a failover the entries go on
    // from the new node exactly as the ids do. Here rather than in
    // mesh_coord_stream_t so positional initialisers of that struct stay valid.
    void (*on_logprobs)(void *user, const mesh_coord_logprob_t *lp, size_t n);
    uint32_t top_logprobs;      // alternatives per token, 0..MESH_COORD_MAX_TOP_LOGPROBS
} mesh_coord_request_t;

// Stream callbacks, called on the core thread (keep them short; they may
// call mesh_coord_cancel). After mesh_coord_submit returns 0, on_done is
// called exactly once, last.
typedef struct {
    // The node chosen (again after a failover) and why, in a word or two.
    void (*on_route)(void *user, const char *node, const char *reason);
    // New tokens, in order, never repeated across failovers.
    void (*on_chunk)(void *user, const int32_t *ids, size_t n, const char *text);
    // status 0: finished (detail = finish reason "stop"/"length"/"cancel");
    // else a negative MESH_E* with detail a one-line error.
    void (*on_done)(void *user, int status, const char *detail, uint32_t prompt_tokens,
                    uint32_t completion_tokens);
} mesh_coord_stream_t;

// Starts the core (loads the registry and dials every node in it).
// On error returns a negative MESH_E* with a reason in err.
int mesh_coord_new(const mesh_coord_opts_t *opts, mesh_coord_t **out, char *err,
                   size_t err_len);
// Stops the core thread, ends every open request with MESH_ECANCELED, and
// nulls *c.
void mesh_coord_destroy(mesh_coord_t **c);

// Z85 public key of this coordinator (static for the core's lifetime).
const char *mesh_coord_public_key(const mesh_coord_t *c);

// Registry. Each change is persisted before it returns.
// add: address "tcp://HOST:PORT", key the node's Z85 public key, name
// optional (default HOST:PORT). MESH_EEXISTS if the name or address is known.
int mesh_coord_node_add(mesh_coord_t *c, const char *addr, const char *key, const char *name,
                        char *err, size_t err_len);
int mesh_coord_node_remove(mesh_coord_t *c, const char *name);   // MESH_ENOTFOUND
int mesh_coord_node_drain(mesh_coord_t *c, const char *name, int on);

// Snapshots as new cJSON trees; caller deletes them with cJSON_Delete.
cJSON *mesh_coord_nodes_json(mesh_coord_t *c);
cJSON *mesh_coord_models_json(mesh_coord_t *c);
cJSON *mesh_coord_status_json(mesh_coord_t *c);

// Routing decision without running anything (what submit would pick now).
// node/reason get the choice; on error err says what was missing.
int mesh_coord_route_dry(mesh_coord_t *c, const char *model, const char *quant,
                         uint64_t tokens, char *node, size_t node_len, char *reason,
                         size_t reason_len, char *err, size_t err_len);

// Submits a generation request. Returns 0 (then on_done comes exactly once)
// and its id, or a negative MESH_E* for a request that is malformed (err
// says why; no callback is called).
int mesh_coord_submit(mesh_coord_t *c, const mesh_coord_request_t *req,
                      const mesh_coord_stream_t *cb, void *user, uint64_t *id, char *err,
                      size_t err_len);
// Cancels a request: the node is told, on_done comes with "cancel".
// MESH_ENOTFOUND if it already finished.
int mesh_coord_cancel(mesh_coord_t *c, uint64_t id);

// Waits until at least n nodes are up, or timeout_ms passes. Returns the
// number up. For tools and tests.
int mesh_coord_wait_up(mesh_coord_t *c, int n, int timeout_ms);

#endif
