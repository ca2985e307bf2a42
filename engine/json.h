// SPDX-License-Identifier: MIT
// A small strict JSON library for the engine (which may depend on libc only).
//
// Values form a tree of heap nodes: null, bool, integer (kept exactly as
// int64 when the text has no fraction or exponent), double, string (UTF-8
// with an explicit length, so embedded NULs survive), array and object
// (members kept in the order written). The parser follows RFC 8259 strictly:
// no comments, no trailing commas, no leading zeros, no NaN/Infinity, valid
// UTF-8 only, \u escapes decoded (surrogate pairs joined, lone surrogates
// rejected), a nesting limit and a size limit; errors name the byte offset.
// Duplicate object keys keep the last value at the first key's position (what
// Python's json.loads does). The writer is compact by default and can mimic
// Python's json.dumps byte for byte (", " / ": " separators, ensure_ascii,
// indent), which chat templates' `tojson` needs.
//
// Ownership: every mesh_json_t returned by a parse or mesh_json_new_* belongs
// to the caller until it is handed to a container (append/set take ownership).
// Accessors return borrowed pointers that live as long as the tree.
#ifndef MESH_JSON_H
#define MESH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    MESH_JSON_NULL = 0,
    MESH_JSON_BOOL,
    MESH_JSON_INT,    // integer text that fits int64
    MESH_JSON_DOUBLE, // text with fraction or exponent
    MESH_JSON_STRING,
    MESH_JSON_ARRAY,
    MESH_JSON_OBJECT,
    MESH_JSON_TYPE_COUNT
} mesh_json_type_t;

typedef struct mesh_json mesh_json_t;

typedef struct {
    int max_depth;    // nesting limit (arrays + objects); 0 = default 128
    size_t max_bytes; // input size limit; 0 = default 64 MiB
} mesh_json_parse_opts_t;

// Parses exactly one JSON text (surrounding whitespace allowed). On success
// *out gets a new tree (caller destroys) and 0 is returned. On failure *out is
// NULL, err (if non-NULL) gets "json: offset N: what", and the return is
// MESH_EFORMAT (syntax, bad UTF-8), MESH_ERANGE (depth, size, a number that
// does not fit) or MESH_ENOMEM. opts may be NULL.
int mesh_json_parse(const char *text, size_t len, mesh_json_t **out, char *err,
                    size_t err_len);
int mesh_json_parse_opts(const char *text, size_t len, const mesh_json_parse_opts_t *opts,
                         mesh_json_t **out, char *err, size_t err_len);

// Frees a tree and nulls the caller's pointer. NULL-safe.
void mesh_json_destroy(mesh_json_t **v);

// Deep copy; caller destroys. NULL on out of memory.
mesh_json_t *mesh_json_clone(const mesh_json_t *v);

// --- accessors (v may be NULL: type NULL, zero values) ---
mesh_json_type_t mesh_json_type(const mesh_json_t *v);
const char *mesh_json_type_name(mesh_json_type_t t);
bool mesh_json_bool(const mesh_json_t *v);     // false unless a true bool
int64_t mesh_json_int(const mesh_json_t *v);   // INT value; DOUBLE truncated; else 0
double mesh_json_number(const mesh_json_t *v); // INT or DOUBLE as double; else 0
// String bytes (NUL-terminated, may hold inner NULs) and length; NULL if not a string.
const char *mesh_json_str(const mesh_json_t *v, size_t *len);
// Number of elements (array) or members (object); 0 otherwise.
size_t mesh_json_len(const mesh_json_t *v);
// i-th element of an array or i-th member value of an object; NULL if out of range.
mesh_json_t *mesh_json_at(const mesh_json_t *v, size_t i);
// i-th member key of an object (NUL-terminated; *len its length); NULL otherwise.
const char *mesh_json_key_at(const mesh_json_t *v, size_t i, size_t *len);
// Member of an object by NUL-terminated key; NULL when absent. O(members).
mesh_json_t *mesh_json_get(const mesh_json_t *obj, const char *key);
mesh_json_t *mesh_json_get_n(const mesh_json_t *obj, const char *key, size_t key_len);
// Deep equality (INT 1 equals DOUBLE 1.0; object member order ignored).
bool mesh_json_equal(const mesh_json_t *a, const mesh_json_t *b);

// --- builders (NULL on out of memory; caller owns the result) ---
mesh_json_t *mesh_json_new_null(void);
mesh_json_t *mesh_json_new_bool(bool b);
mesh_json_t *mesh_json_new_int(int64_t i);
mesh_json_t *mesh_json_new_double(double d);
// Copies len bytes of s. Does not validate UTF-8 (the writer escapes what it is given).
mesh_json_t *mesh_json_new_string(const char *s, size_t len);
mesh_json_t *mesh_json_new_cstr(const char *s);
mesh_json_t *mesh_json_new_array(void);
mesh_json_t *mesh_json_new_object(void);
// Appends item to an array. Takes ownership of item, also on failure (it is
// destroyed then). Returns 0, MESH_EINVAL (not an array) or MESH_ENOMEM.
int mesh_json_append(mesh_json_t *arr, mesh_json_t *item);
// Sets obj[key] = val (replacing an existing member in place, else appending).
// Takes ownership of val, also on failure. Returns 0, MESH_EINVAL or MESH_ENOMEM.
int mesh_json_set(mesh_json_t *obj, const char *key, size_t key_len, mesh_json_t *val);

// --- writer ---
typedef struct {
    bool ensure_ascii;       // non-ASCII as \uXXXX (surrogate pairs above U+FFFF)
    bool python_separators;  // ", " and ": " (json.dumps defaults) instead of "," ":"
    int indent;              // < 0: one line; >= 0: newline + indent spaces per level
                             // (item separator becomes "," as in json.dumps)
    bool sort_keys;          // members in byte order of their keys
} mesh_json_write_opts_t;

// Serializes v. opts NULL = compact. Returns a malloc'd NUL-terminated string
// (caller frees) and its length in *len (if non-NULL); NULL on out of memory.
// Non-finite doubles are written as NaN / Infinity / -Infinity, as Python does.
char *mesh_json_write(const mesh_json_t *v, const mesh_json_write_opts_t *opts, size_t *len);

// Formats a double as Python's repr(float) does: the shortest text that reads
// back to the same double ("1.0", "0.1", "1e+16", "1.5e-05", "inf", "nan").
// buf must hold 32 bytes. Returns the length written.
int mesh_json_format_double(double d, char *buf);

// Checks that s[0..len) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool mesh_json_utf8_valid(const char *s, size_t len);

#endif
