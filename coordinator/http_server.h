// SPDX-License-Identifier: MIT
// The OpenAI-compatible HTTP endpoint of meshcoord (libmicrohttpd, its own
// listener, separate from the admin API):
//
//   POST /v1/chat/completions   POST /v1/completions
//   GET  /v1/models             GET  /v1/models/{id}
//   GET  /health                GET  /metrics (Prometheus text)
//
// Requests go to the core (coord_core.h); streams are Server-Sent Events.
// A thread per connection: a streaming response blocks its own thread
// only, and that thread notices a client that hangs up (poll on the
// socket) and cancels the generation on the node within a step.
#ifndef MESH_HTTP_SERVER_H
#define MESH_HTTP_SERVER_H

#include "coord_core.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mesh_http mesh_http_t;

typedef struct {
    const char *host;           // IPv4 address to listen on ("127.0.0.1")
    uint16_t port;              // 0: any free port (see bound_port)
    const char *api_keys_path;  // NULL: no keys needed; else one key per line
    size_t max_body;            // bytes (0: 8 MiB)
    uint32_t max_queue;         // generations in flight before 429 (0: 256)
} mesh_http_opts_t;

// Starts the endpoint. core is borrowed and must outlive it. On error
// returns a negative MESH_E* with a one-line reason in err.
int mesh_http_start(mesh_coord_t *core, const mesh_http_opts_t *opts, mesh_http_t **out,
                    uint16_t *bound_port, char *err, size_t err_len);
// Stops listening, cancels open generations, waits for their threads,
// nulls *h.
void mesh_http_stop(mesh_http_t **h);

// Reads an API key file: one key per line (8 to 200 printable characters,
// no spaces), blank lines and lines starting with '#' ignored; the file
// must not be readable by group or others. *keys is a new array of new
// strings (caller frees each and the array). MESH_EFORMAT/MESH_EPERM/
// MESH_EIO with err naming the file and line.
int mesh_http_read_keys(const char *path, char ***keys, size_t *n, char *err, size_t err_len);

#endif
