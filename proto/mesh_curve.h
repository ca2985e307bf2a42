// SPDX-License-Identifier: MIT
// CURVE key files and trusted-key lists (Z85 text, 40 characters per key).
//
// A key file holds two lines, "public = <z85>" and "secret = <z85>"; it is
// created on first use with mode 0600 and refused when group or others can
// read it (a leaked secret key lets anyone pose as this process). A trusted
// list holds one public key per line ('#' starts a comment). Stopgap until
// common/mesh_keys lands on main; the file formats are meant to match.
#ifndef MESH_CURVE_H
#define MESH_CURVE_H

#include <stddef.h>

#define MESH_Z85_KEY_LEN 40
#define MESH_CURVE_MAX_TRUSTED 256

typedef struct {
    char pub[MESH_Z85_KEY_LEN + 1];
    char sec[MESH_Z85_KEY_LEN + 1];
} mesh_curve_keypair_t;

typedef struct {
    size_t n;
    char keys[MESH_CURVE_MAX_TRUSTED][MESH_Z85_KEY_LEN + 1];
} mesh_curve_trusted_t;

// 1 if s is exactly a 40-character Z85 key that decodes, else 0.
int mesh_curve_is_key(const char *s);

// Loads the key file at path, creating it (mode 0600) with a new keypair
// when it does not exist. Refuses (MESH_EPERM) a file group/other can read.
// Returns 0 or a negative MESH_E* with a one-line reason in err.
int mesh_curve_load_or_create(const char *path, mesh_curve_keypair_t *kp, char *err,
                              size_t err_len);

// Reads a public key given either literally (40 Z85 chars) or as a file
// holding it (a bare key line, or a "public = KEY" line). out gets 41 bytes.
int mesh_curve_read_public(const char *key_or_path, char *out, char *err, size_t err_len);

// Loads a trusted-keys file (one key per line). Missing file: MESH_ENOENT.
int mesh_curve_trusted_load(const char *path, mesh_curve_trusted_t *t, char *err,
                            size_t err_len);
// Adds one key (no duplicate). Returns 0, MESH_EINVAL (not a key), MESH_ENOSPACE.
int mesh_curve_trusted_add(mesh_curve_trusted_t *t, const char *key);
// 1 if key (Z85) is in the list.
int mesh_curve_trusted_has(const mesh_curve_trusted_t *t, const char *key);

#endif
