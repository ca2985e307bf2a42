// SPDX-License-Identifier: MIT
// A small reader for daemon config files such as node.conf (libc only).
//
// Format, one statement per line:
//
//     # a comment (a '#' at the start of a line, or after a blank in a value)
//     listen = tcp://0.0.0.0:5555
//     [engine]                      # a section: later keys read "engine.threads"
//     threads = 8
//     model = /models/glm-4.7-flash.q4_k_m.gguf
//     model = "/models/with # hash and spaces.gguf"   # quoted: kept as written
//
// - Keys and section names use [A-Za-z0-9_.-]. A key before any section header
//   has no prefix; "[a]" then "k = v" gives the key "a.k". "[]" goes back to no
//   section.
// - Values are trimmed. An unquoted value ends at a '#' that follows a blank.
//   A quoted value ("...") may hold anything; escapes \" \\ \n \t; after the
//   closing quote only blanks or a comment may follow. An empty value is "".
// - A key may repeat (several "model = ..." lines): the scalar getters return
//   the LAST occurrence, mesh_config_next() walks all of them in file order.
// - Every error names the file and line: "node.conf:12: expected 'key = value'".
//
// Lookups are O(entries) (a linear scan): config files are tens of lines and
// are read once at start-up, so a hash table would cost more than it saves.
// Not thread-safe for concurrent use of one object (getters mark keys as
// read and record the last error).
#ifndef MESH_CONFIG_H
#define MESH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mesh_config mesh_config_t;

// Largest file mesh_config_load() accepts (bytes); larger gives MESH_ERANGE.
#define MESH_CONFIG_MAX_BYTES (1u << 20)

// Reads and parses a file. On success *out is a new config (caller destroys it
// with mesh_config_destroy) and 0 is returned. On failure *out is NULL, a
// negative MESH_E* code is returned and, when err is not NULL, err receives
// one line "PATH:LINE: problem" (or "PATH: problem" for I/O errors).
int mesh_config_load(const char *path, mesh_config_t **out, char *err, size_t errlen);

// Parses text held in memory (len bytes; need not be NUL-terminated). name is
// used in messages in place of a file path. Same contract as mesh_config_load.
int mesh_config_parse(const char *text, size_t len, const char *name, mesh_config_t **out,
                      char *err, size_t errlen);

// Frees the config and sets *cfg_p to NULL. NULL or *NULL is a no-op.
void mesh_config_destroy(mesh_config_t **cfg_p);

// The file name given to load/parse (owned by cfg).
const char *mesh_config_name(const mesh_config_t *cfg);

// The message of the last getter that failed with a code other than
// MESH_ENOENT ("node.conf:7: threads: 'x8' is not an integer"), or "" if none.
// Owned by cfg, valid until the next getter call.
const char *mesh_config_error(const mesh_config_t *cfg);

// Typed getters. Each returns 0 and writes *out on success; MESH_ENOENT when
// the key is absent (*out untouched, so preset it to the default); on a bad
// value MESH_EFORMAT or MESH_ERANGE, *out untouched, and mesh_config_error()
// says which file, line, key and value.

// The raw string (owned by cfg, valid until destroy).
int mesh_config_get_str(mesh_config_t *cfg, const char *key, const char **out);

// A decimal integer (optional sign; "0x" hex accepted) in [min, max].
int mesh_config_get_int(mesh_config_t *cfg, const char *key, int64_t min, int64_t max,
                        int64_t *out);

// true/false, yes/no, on/off, 1/0 (case-insensitive).
int mesh_config_get_bool(mesh_config_t *cfg, const char *key, bool *out);

// A byte count: a whole number with an optional suffix B, K, M, G, T or KiB,
// MiB, GiB, TiB (all powers of 1024: memory sizes, not disk marketing; "KB"
// etc. are also read as powers of 1024). "512M" = 536870912. At most max.
int mesh_config_get_size(mesh_config_t *cfg, const char *key, uint64_t max, uint64_t *out_bytes);

// A duration with a unit: ms, s, m (minutes) or h, with up to three decimals
// ("1.5s", "250ms", "2m"). A bare number is refused (which unit was meant?).
// Result in milliseconds, at most max_ms.
int mesh_config_get_duration_ms(mesh_config_t *cfg, const char *key, int64_t max_ms,
                                int64_t *out_ms);

// Walks every occurrence of a repeated key in file order. Start with
// *iter = 0; each call returns the next value (owned by cfg) or NULL at the end.
//     size_t it = 0; for (const char *m; (m = mesh_config_next(cfg, "model", &it));) ...
const char *mesh_config_next(mesh_config_t *cfg, const char *key, size_t *iter);

// How many times the key occurs.
size_t mesh_config_count(const mesh_config_t *cfg, const char *key);

// Raw access to every entry in file order: i < mesh_config_size(cfg).
// Pointers are owned by cfg. Returns MESH_ERANGE when i is out of range.
size_t mesh_config_size(const mesh_config_t *cfg);
int mesh_config_entry(const mesh_config_t *cfg, size_t i, const char **key, const char **value,
                      int *line);

// Reports keys that look like typos, calling fn once per entry (in file
// order). With known != NULL (a NULL-terminated list of keys; an entry
// "section.*" allows every key of that section) an unknown key is one not in
// the list. With known == NULL an unknown key is one no getter has read yet,
// so a daemon can call this after reading its settings. Returns the count.
typedef void (*mesh_config_unknown_fn)(const char *file, int line, const char *key, void *user);
size_t mesh_config_unknown(const mesh_config_t *cfg, const char *const *known,
                           mesh_config_unknown_fn fn, void *user);

#endif
