// SPDX-License-Identifier: MIT
// Engine adapter for the node. The engine API (engine/engine.h) is not in
// this build yet, so: models are described from their GGUF header, and
// generation is refused with a clear error instead of being faked. When the
// engine lands, submit/cancel run its batched API on an engine thread.
#include "node_engine.h"

#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>

struct mesh_node_engine {
    mesh_node_token_fn on_token;
    void *user;
};

int mesh_node_engine_new(mesh_node_token_fn on_token, void *user, mesh_node_engine_t **out) {
    mesh_node_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return MESH_ENOMEM;
    e->on_token = on_token;
    e->user = user;
    *out = e;
    return 0;
}

void mesh_node_engine_destroy(mesh_node_engine_t **e) {
    if (e && *e) {
        free(*e);
        *e = NULL;
    }
}

int mesh_node_engine_can_generate(void) {
    return 0;
}

int mesh_node_engine_load(mesh_node_engine_t *e, mesh_node_model_t *m, char *err,
                          size_t err_len) {
    (void)e, (void)err, (void)err_len;
    m->can_generate = 0;
    m->prefill_tps = m->decode_tps = 0.0f; // nothing to measure without the engine
    return 0;
}

int mesh_node_engine_submit(mesh_node_engine_t *e, const mesh_node_model_t *m,
                            const Mesh__GenerateRequest *g, char *err, size_t err_len) {
    (void)e, (void)g;
    snprintf(err, err_len,
             "model '%s': this meshnode was built without a generation engine yet",
             m->name);
    return MESH_EUNSUPPORTED;
}

int mesh_node_engine_cancel(mesh_node_engine_t *e, uint64_t request_id) {
    (void)e, (void)request_id;
    return MESH_ENOTFOUND;
}

void mesh_node_engine_load_counts(mesh_node_engine_t *e, uint32_t *active, uint32_t *queued) {
    (void)e;
    *active = *queued = 0;
}
