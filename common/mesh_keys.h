// SPDX-License-Identifier: MIT
// CURVE key files: this process's keypair, and the list of public keys it trusts.
//
// Every ZeroMQ link in the mesh is CURVE-encrypted. Each process (node,
// coordinator, meshctl) has one keypair, created on first start and kept in a
// file only its owner can read; each node and the coordinator keep a list of
// the public keys they accept.
//
// KEYPAIR FILE (e.g. /var/lib/meshinfer/node.key), mode 0600, written by
// mesh_keys_load_or_create():
//
//     # meshinfer CURVE keypair. Keep it secret: mode 0600.
//     public = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
//     secret = JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6
//
// Lines "public = Z85" and "secret = Z85" (40 Z85 characters each, split at
// the first '='; surrounding blanks ignored), blank lines and comment lines
// (first non-blank character '#'). Both keys must be present, decode to 32
// bytes, and the public key must be the one the secret key gives. A file
// whose mode lets group or others read, write or run it is refused
// (MESH_EPERM) with a message that names the file and the "chmod 600" fix:
// a secret key others could read is no secret.
//
// TRUSTED-KEYS FILE (e.g. /etc/meshinfer/trusted.keys), one public key per line:
//
//     # coordinator
//     rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 coordinator
//     Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID gpu-box-2   # a comment
//
// A line holds a 40-character Z85 public key, then optionally blanks and a
// name (up to 63 printable characters, no blanks; text after it must be a
// '#' comment). A line whose first non-blank character is '#' is a comment
// (no valid key starts with '#': a 5-character Z85 group starting with '#'
// exceeds 32 bits). Blank lines are ignored. A key may appear once. The file may be readable by
// anyone (public keys are not secret) but must not be writable by group or
// others: whoever can write it can let any key in (MESH_EPERM otherwise).
//
// Errors: functions return 0 or a negative MESH_E* code; a failure also logs
// one ERROR line naming the file (and line), which mesh_keys_last_error()
// returns too (thread-local), so a CLI can print it without a logger.
#ifndef MESH_KEYS_H
#define MESH_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define MESH_KEY_Z85_LEN 40 // Z85 characters of a 32-byte CURVE key
#define MESH_KEY_NAME_MAX 64 // bytes of a trusted key's name, with the NUL

// Loads the keypair at path, or creates it if the file does not exist.
// On success writes two NUL-terminated 40-character Z85 strings into
// public_z85 and secret_z85 (caller's buffers of 41 bytes) and returns 0.
// Creation: zmq_curve_keypair, then write to a temporary file beside path
// (O_CREAT|O_EXCL, mode 0600), fsync, and link it into place, so a reader
// never sees a half-written file and two processes starting at once end up
// with the same keypair (the loser loads the winner's file). The directory
// must exist. Errors: MESH_EPERM (mode too open, or no access), MESH_EFORMAT
// (bad content or public/secret mismatch), MESH_EUNSUPPORTED (libzmq built
// without CURVE), MESH_EIO.
int mesh_keys_load_or_create(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1],
                             char secret_z85[MESH_KEY_Z85_LEN + 1]);

// Loads an existing keypair only (MESH_ENOENT if the file does not exist).
int mesh_keys_load(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1],
                   char secret_z85[MESH_KEY_Z85_LEN + 1]);

// Reads only the public key of a keypair file (same checks as mesh_keys_load).
int mesh_keys_load_public(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1]);

// True if s is exactly 40 Z85 characters that decode to 32 bytes.
bool mesh_keys_z85_valid(const char *s);

// 0 if public_z85 is the public key of secret_z85; MESH_EFORMAT if either is
// not a valid key or they do not match; MESH_EUNSUPPORTED without CURVE.
int mesh_keys_check_pair(const char *public_z85, const char *secret_z85);

// The last error message of this thread's mesh_keys_* / mesh_trusted_* call
// ("" if none). Thread-local; valid until the thread's next call.
const char *mesh_keys_last_error(void);

// --- Trusted keys -----------------------------------------------------------

typedef struct {
    char key[MESH_KEY_Z85_LEN + 1]; // Z85 public key
    char name[MESH_KEY_NAME_MAX];   // "" when the line had no name
} mesh_trusted_key_t;

typedef struct mesh_trusted mesh_trusted_t;

// An empty list. Caller destroys it. NULL when out of memory.
mesh_trusted_t *mesh_trusted_new(void);

// Frees the list and sets *list_p to NULL. NULL or *NULL is a no-op.
void mesh_trusted_destroy(mesh_trusted_t **list_p);

// Reads a trusted-keys file into a new list (caller destroys *out). A missing
// file gives MESH_ENOENT (callers that start with an empty list use
// mesh_trusted_new then). Bad lines give MESH_EFORMAT naming file and line;
// a duplicate key gives MESH_EEXISTS; a group/other-writable file MESH_EPERM.
int mesh_trusted_load(const char *path, mesh_trusted_t **out);

// Parses text in memory (len bytes); name is used in messages.
int mesh_trusted_parse(const char *text, size_t len, const char *name, mesh_trusted_t **out);

// Writes the list (a header comment, then "KEY NAME" lines) to path
// atomically: temporary file with mode 0644, fsync, rename over path.
int mesh_trusted_save(const mesh_trusted_t *list, const char *path);

size_t mesh_trusted_count(const mesh_trusted_t *list);

// The i-th entry (owned by the list, valid until it changes), NULL if out of range.
const mesh_trusted_key_t *mesh_trusted_at(const mesh_trusted_t *list, size_t i);

// The entry with this public key, or NULL. O(n): lists are short.
const mesh_trusted_key_t *mesh_trusted_find(const mesh_trusted_t *list, const char *public_z85);

// Adds a key (name may be NULL or ""). MESH_EFORMAT for an invalid key or a
// name with blanks, control characters or over 63 bytes; MESH_EEXISTS if the
// key is already there.
int mesh_trusted_add(mesh_trusted_t *list, const char *public_z85, const char *name);

// Removes a key, given either as a Z85 key or as a name. MESH_ENOTFOUND if none.
int mesh_trusted_remove(mesh_trusted_t *list, const char *key_or_name);

#endif
