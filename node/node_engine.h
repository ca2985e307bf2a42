// SPDX-License-Identifier: MIT
// The node's view of the engine: load a model, run generation requests,
// cancel them. Small on purpose so the node agent does not change when the
// engine's API does; node_engine.c adapts it to engine/engine.h.
//
// Until the engine (branch `model`) is merged into this build, load reports
// the model from its GGUF header with can_generate = 0 and submit refuses
// with MESH_EUNSUPPORTED: the node never invents tokens.
#ifndef MESH_NODE_ENGINE_H
#define MESH_NODE_ENGINE_H

#include "mesh.pb-c.h"
#include "node_model.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mesh_node_engine mesh_node_engine_t;

// Called from the engine thread for each batch of new tokens of a request
// and once more with done = 1 (finish "stop", "length" or "cancel").
typedef void (*mesh_node_token_fn)(void *user, uint64_t request_id, const int32_t *ids,
                                   size_t n, const char *text, int done, const char *finish);

// Caller destroys the result with mesh_node_engine_destroy.
int mesh_node_engine_new(mesh_node_token_fn on_token, void *user, mesh_node_engine_t **out);
void mesh_node_engine_destroy(mesh_node_engine_t **e);

// 1 when this build can generate.
int mesh_node_engine_can_generate(void);

// Loads m (already probed): sets m->can_generate and the measured speeds.
int mesh_node_engine_load(mesh_node_engine_t *e, mesh_node_model_t *m, char *err,
                          size_t err_len);

// Starts a request on a loaded model. Returns 0 (tokens follow through the
// callback) or a negative MESH_E* with the reason in err.
int mesh_node_engine_submit(mesh_node_engine_t *e, const mesh_node_model_t *m,
                            const Mesh__GenerateRequest *g, char *err, size_t err_len);

// Stops a request at once; MESH_ENOTFOUND if it is not running.
int mesh_node_engine_cancel(mesh_node_engine_t *e, uint64_t request_id);

// Sequences running and waiting.
void mesh_node_engine_load_counts(mesh_node_engine_t *e, uint32_t *active, uint32_t *queued);

#endif
