// SPDX-License-Identifier: MIT
// The admin HTTP API (libmicrohttpd) that meshctl talks to. Every call needs
// "Authorization: Bearer TOKEN" with the token from the admin token file.
// Kept apart from the core so the OpenAI endpoint can run its own daemon or
// mount these handlers beside its own (mesh_coord_admin_handle).
//
//   GET    /admin/v1/nodes               registry with live reports
//   POST   /admin/v1/nodes               {"address","key","name"?}
//   DELETE /admin/v1/nodes/NAME
//   POST   /admin/v1/nodes/NAME/drain    {"on": true|false} (default true)
//   GET    /admin/v1/models              models across the mesh
//   GET    /admin/v1/status
//   GET    /admin/v1/keys                this coordinator's public key
//   POST   /admin/v1/route               {"model","quant"?,"tokens"} dry run
//   POST   /admin/v1/generate            {"model","prompt"|"tokens","max_tokens",
//                                         "temperature"?} runs one request to the end
#ifndef MESH_COORD_ADMIN_H
#define MESH_COORD_ADMIN_H

#include "coord_core.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mesh_coord_admin mesh_coord_admin_t;

// Reads the admin token from path, creating it (random, mode 0600) if it
// does not exist; refuses a file group/other can read. tok gets a copy.
int mesh_coord_admin_token(const char *path, char *tok, size_t cap, char *err, size_t err_len);

// Starts the API on host:port (port 0: any free one; *bound_port says which).
// The core is borrowed and must outlive the API. token is copied.
int mesh_coord_admin_start(mesh_coord_t *core, const char *host, uint16_t port,
                           const char *token, mesh_coord_admin_t **out, uint16_t *bound_port,
                           char *err, size_t err_len);
void mesh_coord_admin_stop(mesh_coord_admin_t **a);

// One admin call without HTTP: method, path, body (may be NULL). Returns the
// HTTP status and a new JSON text in *reply (caller frees). For a shared
// daemon and for tests; does not check the token.
int mesh_coord_admin_handle(mesh_coord_t *core, const char *method, const char *path,
                            const char *body, char **reply);

#endif
