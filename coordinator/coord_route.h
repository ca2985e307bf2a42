// SPDX-License-Identifier: MIT
// Routing: which node serves a request. A pure function over the nodes'
// latest reports, so it is unit-tested on tables and costs O(nodes x models).
//
// A node is a candidate if it is up (not dead, not draining), serves the
// model (the named quant, else its best quant that fits), its context limit
// covers prompt + max tokens, and its free memory, less what requests
// already routed to it have reserved, covers the request's KV cache.
// Among candidates: most headroom after the request, then the shortest
// queue, then the fastest decode. Headrooms within 5% of each other count
// as equal, so queue and speed decide between similar nodes instead of a
// few bytes of difference.
#ifndef MESH_COORD_ROUTE_H
#define MESH_COORD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;             // model name as served
    const char *quant;            // "q4_k_m" (lower case)
    uint32_t ctx_limit;           // tokens
    uint64_t kv_bytes_per_token;  // bytes
    float decode_tps;             // tokens/s (0: unknown)
} mesh_route_model_t;

typedef struct {
    const char *name;
    int up;                       // 1: connected and heartbeating
    int draining;                 // 1: takes nothing new
    uint64_t mem_free;            // bytes, from the last heartbeat
    uint64_t reserved;            // bytes promised to requests routed since
    uint32_t active, queued;      // sequences
    const mesh_route_model_t *models;
    size_t n_models;
} mesh_route_node_t;

typedef struct {
    const char *model;            // required
    const char *quant;            // NULL or "": any (best that fits)
    uint64_t tokens;              // prompt + max_tokens
    const uint8_t *exclude;       // NULL or one flag per node: skip it
} mesh_route_req_t;

typedef struct {
    int node;                     // index into the nodes array
    int model;                    // index into that node's models
    uint64_t kv_bytes;            // KV cache the request needs there
    uint64_t headroom;            // bytes left after it
    char reason[48];              // "only fit", "most headroom", ...
    char missing[256];            // on error: what was missing
} mesh_route_result_t;

// Picks a node. Returns 0 and fills out->node/model/reason, or on no
// candidate: MESH_ENOTFOUND (model or quant), MESH_ERANGE (context),
// MESH_ENOSPACE (memory), MESH_EBUSY (only dead or draining nodes serve it),
// with out->missing naming what was missing.
int mesh_route_pick(const mesh_route_req_t *req, const mesh_route_node_t *nodes, size_t n,
                    mesh_route_result_t *out);

// Quality rank of a quant name for "best quant" (higher is better; unknown 0).
int mesh_route_quant_rank(const char *quant);

#endif
