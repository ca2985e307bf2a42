// SPDX-License-Identifier: MIT
// The coordinator's registry file: the nodes it knows, so a restart dials
// them again without a new `node add`. JSON, written atomically (temporary
// file, fsync, rename, fsync of the directory): a crash leaves either the
// old or the new file, never half of one.
#ifndef MESH_COORD_STATE_H
#define MESH_COORD_STATE_H

#include <stddef.h>

#define MESH_COORD_STATE_MAX_NODES 64

typedef struct {
    char name[64];
    char address[256];   // tcp://HOST:PORT
    char key[41];        // node's Z85 public key
    int draining;        // set by `meshctl node drain`
} mesh_coord_state_node_t;

typedef struct {
    size_t n;
    mesh_coord_state_node_t nodes[MESH_COORD_STATE_MAX_NODES];
} mesh_coord_state_t;

// Loads path into st. MESH_ENOENT if it does not exist (a fresh start);
// MESH_EFORMAT with the reason in err if it is not a registry file.
int mesh_coord_state_load(const char *path, mesh_coord_state_t *st, char *err, size_t err_len);

// Writes st to path atomically (mode 0600). Returns 0 or MESH_EIO.
int mesh_coord_state_save(const char *path, const mesh_coord_state_t *st, char *err,
                          size_t err_len);

#endif
