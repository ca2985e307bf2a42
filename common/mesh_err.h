// SPDX-License-Identifier: MIT
// Error codes shared by every part of meshinfer.
//
// Functions return 0 on success or a negative MESH_E* code; mesh_strerror()
// turns a code into a short English phrase. The table is an X-macro so the
// enum and the strings cannot drift apart. Codes are append-only: they travel
// on the wire inside error messages.
#ifndef MESH_ERR_H
#define MESH_ERR_H

#define MESH_ERRNO_MAP(X)                                                          \
    X(INVAL, 1, "invalid argument")                                                \
    X(NOMEM, 2, "out of memory")                                                   \
    X(IO, 3, "input/output error")                                                 \
    X(NOENT, 4, "no such file or object")                                          \
    X(FORMAT, 5, "malformed input")                                                \
    X(UNSUPPORTED, 6, "not supported")                                             \
    X(RANGE, 7, "value out of range")                                              \
    X(PERM, 8, "permission denied")                                                \
    X(EXISTS, 9, "already exists")                                                 \
    X(TIMEOUT, 10, "timed out")                                                    \
    X(BUSY, 11, "busy")                                                            \
    X(CANCELED, 12, "canceled")                                                    \
    X(NOSPACE, 13, "not enough capacity")                                          \
    X(PROTO, 14, "protocol error")                                                 \
    X(AUTH, 15, "authentication failed")                                           \
    X(STATE, 16, "invalid state")                                                  \
    X(BACKEND, 17, "backend failure")                                              \
    X(TRUNCATED, 18, "truncated input")                                            \
    X(OVERFLOW, 19, "arithmetic overflow")                                         \
    X(NOTFOUND, 20, "not found")

typedef enum {
    MESH_OK = 0,
#define MESH_ERR_ENUM_(name, num, msg) MESH_E##name = -(num),
    MESH_ERRNO_MAP(MESH_ERR_ENUM_)
#undef MESH_ERR_ENUM_
} mesh_err_t;

// Returns a static string for a code (0 or negative). Unknown codes give
// "unknown error". Never returns NULL.
const char *mesh_strerror(int code);

// Returns the symbolic name of a code ("MESH_EINVAL"), or "MESH_E?" if unknown.
const char *mesh_errname(int code);

#endif
