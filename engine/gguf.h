// SPDX-License-Identifier: MIT
// GGUF files: a validating reader over an mmapped file, and a streaming writer.
//
// The reader checks everything before anyone uses it: magic, version (2 or 3),
// counts, string lengths, array sizes, key types, tensor types, dimensions
// (no overflow), tensor data ranges (inside the file, aligned), and duplicate
// names. A file that fails any check is refused with a message naming the
// problem; after a successful open, every pointer the reader hands out points
// inside the mapping (or the reader's own copies) and every size is exact.
// Also refused: empty key or tensor names and names holding a NUL byte, arrays
// nested deeper than 8, and well-known keys with another type than the engine
// relies on (general.architecture string, general.alignment uint32 and a
// power of two, token ids integers, tokenizer.ggml.tokens an array of strings...).
// The file must not shrink while it is mapped (that would fault on access).
//
// Cost: open is O(file header) plus one hash insert per key and tensor; the
// tensor data is not touched (it stays on disk until read through the map).
// A reader is immutable after open: any number of threads may use it at once.
// Tensor data of a mapped file is aligned to mesh_gguf_alignment() (the map
// starts on a page); over a caller's buffer, only as aligned as the buffer.
#ifndef MESH_GGUF_H
#define MESH_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Metadata value types, GGUF's on-disk numbers.
typedef enum {
    MESH_GGUF_UINT8 = 0,
    MESH_GGUF_INT8 = 1,
    MESH_GGUF_UINT16 = 2,
    MESH_GGUF_INT16 = 3,
    MESH_GGUF_UINT32 = 4,
    MESH_GGUF_INT32 = 5,
    MESH_GGUF_FLOAT32 = 6,
    MESH_GGUF_BOOL = 7,
    MESH_GGUF_STRING = 8,
    MESH_GGUF_ARRAY = 9,
    MESH_GGUF_UINT64 = 10,
    MESH_GGUF_INT64 = 11,
    MESH_GGUF_FLOAT64 = 12,
    MESH_GGUF_TYPE_COUNT
} mesh_gguf_type_t;

#define MESH_GGUF_MAX_DIMS 4
#define MESH_GGUF_DEFAULT_ALIGNMENT 32

typedef struct mesh_gguf mesh_gguf_t;

// "uint32", "string", "array", ...; "?" for a number outside the enum. Static.
const char *mesh_gguf_type_name(mesh_gguf_type_t t);

typedef struct {
    const char *name;               // NUL-terminated copy owned by the reader
    uint32_t type;                  // mesh_qtype_t id (engine/quant.h)
    uint32_t n_dims;                // 1..MESH_GGUF_MAX_DIMS
    uint64_t ne[MESH_GGUF_MAX_DIMS];// elements per dim, ne[0] is the row (fastest); unused dims are 1
    uint64_t n_elements;            // product of ne
    uint64_t n_bytes;               // exact data size
    uint64_t offset;                // from the start of the file
    const void *data;               // inside the mapping; n_bytes long
} mesh_gguf_tensor_t;

// Opens and validates a file. On success *out owns the mapping: caller
// destroys it with mesh_gguf_close. On failure returns a negative MESH_E*
// code, *out is NULL, and err (if not NULL) holds a one-line reason such as
// "tensor 'blk.0.ffn_up.weight' data ends past the end of the file".
int mesh_gguf_open(const char *path, mesh_gguf_t **out, char *err, size_t err_len);

// Same checks over a caller-owned buffer that must outlive the reader (for
// fuzzing and tests). The reader does not copy the buffer.
int mesh_gguf_open_memory(const void *buf, size_t len, mesh_gguf_t **out, char *err,
                          size_t err_len);

// Unmaps and frees; sets *g to NULL. Safe on NULL.
void mesh_gguf_close(mesh_gguf_t **g);

uint32_t mesh_gguf_version(const mesh_gguf_t *g);
uint32_t mesh_gguf_alignment(const mesh_gguf_t *g);
uint64_t mesh_gguf_file_size(const mesh_gguf_t *g);

// ---- metadata ----
int64_t mesh_gguf_n_kv(const mesh_gguf_t *g);
// Index of a key, or -1 when absent. O(1) average.
int64_t mesh_gguf_find_key(const mesh_gguf_t *g, const char *key);
const char *mesh_gguf_key_name(const mesh_gguf_t *g, int64_t i);
mesh_gguf_type_t mesh_gguf_key_type(const mesh_gguf_t *g, int64_t i);

// Typed getters. Each returns 0 and sets *out, MESH_ENOENT when the key is
// absent, or MESH_EFORMAT when it has another type (integers of any width
// are accepted by the integer getters when the value fits; floats accept
// f32 or f64). Strings point into the reader and live as long as it does;
// *len_out (may be NULL) gets the byte length (strings are not required to
// be NUL-free, but the reader stores them NUL-terminated).
int mesh_gguf_get_u32(const mesh_gguf_t *g, const char *key, uint32_t *out);
int mesh_gguf_get_u64(const mesh_gguf_t *g, const char *key, uint64_t *out);
int mesh_gguf_get_i64(const mesh_gguf_t *g, const char *key, int64_t *out);
int mesh_gguf_get_f32(const mesh_gguf_t *g, const char *key, float *out);
// Same as get_f32 at full precision (f32 or f64 values).
int mesh_gguf_get_f64(const mesh_gguf_t *g, const char *key, double *out);
int mesh_gguf_get_bool(const mesh_gguf_t *g, const char *key, bool *out);
int mesh_gguf_get_str(const mesh_gguf_t *g, const char *key, const char **out,
                      size_t *len_out);

// Arrays: element type and count. MESH_EFORMAT when the key is not an array.
int mesh_gguf_get_arr_info(const mesh_gguf_t *g, const char *key,
                           mesh_gguf_type_t *elem_type, uint64_t *n);
// Raw element data of a numeric array (little-endian, packed). Points into the
// reader: an 8-byte aligned copy, so it may be cast to the element type.
int mesh_gguf_get_arr_data(const mesh_gguf_t *g, const char *key, const void **data);
// i-th string of a string array. MESH_ERANGE when i >= n.
int mesh_gguf_get_arr_str(const mesh_gguf_t *g, const char *key, uint64_t i,
                          const char **out, size_t *len_out);

// Convenience: architecture-prefixed key, "<general.architecture>.<suffix>".
// Same return codes as the getters.
int mesh_gguf_get_arch_u32(const mesh_gguf_t *g, const char *suffix, uint32_t *out);
int mesh_gguf_get_arch_f32(const mesh_gguf_t *g, const char *suffix, float *out);
int mesh_gguf_get_arch_bool(const mesh_gguf_t *g, const char *suffix, bool *out);
const char *mesh_gguf_arch(const mesh_gguf_t *g); // "" when absent

// ---- tensors ----
int64_t mesh_gguf_n_tensors(const mesh_gguf_t *g);
const mesh_gguf_tensor_t *mesh_gguf_tensor(const mesh_gguf_t *g, int64_t i);
// NULL when absent. O(1) average.
const mesh_gguf_tensor_t *mesh_gguf_find_tensor(const mesh_gguf_t *g, const char *name);

// ---- writer ----
// Streaming: set metadata, declare every tensor, then write the data tensor
// by tensor in declaration order. Memory is O(metadata + tensor table), so a
// 30B-parameter file can be written from data produced one tensor at a time.
typedef struct mesh_gguf_writer mesh_gguf_writer_t;

// Caller destroys with mesh_gguf_writer_destroy.
mesh_gguf_writer_t *mesh_gguf_writer_new(void);
void mesh_gguf_writer_destroy(mesh_gguf_writer_t **w);

// Setting a key that exists replaces it (keeps its position). A well-known key
// with a type the reader would refuse (general.alignment not a uint32 power of
// two, general.architecture not a string, ...) gives MESH_EINVAL; after begin,
// setters give MESH_ESTATE. Refusals are logged through mesh_log.
int mesh_gguf_writer_set_u32(mesh_gguf_writer_t *w, const char *key, uint32_t v);
int mesh_gguf_writer_set_i32(mesh_gguf_writer_t *w, const char *key, int32_t v);
int mesh_gguf_writer_set_u64(mesh_gguf_writer_t *w, const char *key, uint64_t v);
int mesh_gguf_writer_set_f32(mesh_gguf_writer_t *w, const char *key, float v);
int mesh_gguf_writer_set_bool(mesh_gguf_writer_t *w, const char *key, bool v);
int mesh_gguf_writer_set_str(mesh_gguf_writer_t *w, const char *key, const char *v);
// Numeric array: copies n elements of elem_type from data.
int mesh_gguf_writer_set_arr(mesh_gguf_writer_t *w, const char *key,
                             mesh_gguf_type_t elem_type, const void *data, uint64_t n);
int mesh_gguf_writer_set_arr_str(mesh_gguf_writer_t *w, const char *key,
                                 const char *const *strs, uint64_t n);
// Copies key i of a reader (any type, arrays included) into the writer.
int mesh_gguf_writer_copy_kv(mesh_gguf_writer_t *w, const mesh_gguf_t *src, int64_t i);

// Declares a tensor; returns its index or a negative code: MESH_EEXISTS for a
// duplicate name, MESH_EINVAL for an empty name or one of 64 bytes or more
// (llama.cpp's limit), an unknown type, n_dims outside 1..4, or a row that is
// not a multiple of the type's block; MESH_EOVERFLOW for a zero or too large
// dimension.
int64_t mesh_gguf_writer_add_tensor(mesh_gguf_writer_t *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne);

// Opens path and writes the header and tensor table. Then call write_data once
// per tensor in order with exactly its byte size; then finish (pads, fsyncs,
// closes; on any error the partial file is removed).
// The file is written to "<path>.tmp" and renamed over path by finish, so a
// reader never sees a partial file; destroying a writer between begin and
// finish removes the tmp file. Layout: GGUF v3, alignment 32 or
// general.alignment, each tensor's data padded to the alignment (llama.cpp's).
// write_data with the wrong index gives MESH_ESTATE, with the wrong size
// MESH_EINVAL (neither ends the write); an I/O error gives MESH_EIO and ends it.
int mesh_gguf_writer_begin(mesh_gguf_writer_t *w, const char *path);
int mesh_gguf_writer_write_data(mesh_gguf_writer_t *w, int64_t index, const void *data,
                                uint64_t n_bytes);
int mesh_gguf_writer_finish(mesh_gguf_writer_t *w);

#endif
