// SPDX-License-Identifier: MIT
// GGUF reader (validating, zero-copy over an mmap or a caller's buffer) and
// streaming writer.
//
// Reader: one pass over the header, metadata and tensor table with a bounds-
// checked cursor; every length and count is checked against the bytes left
// before anything is allocated, so a hostile file costs at most O(file size)
// memory. Names and strings are copied NUL-terminated into an arena owned by
// the reader; numeric arrays are copied too (8-byte aligned, so callers may
// cast the pointer). Tensor data is never copied. Lookups go through two small
// open-addressing hash tables (FNV-1a, linear probing, load <= 1/2).
//
// Writer: metadata is kept as ready-serialised entries (key, type, value), so
// copying a key from a reader (nested arrays included) is a byte copy of the
// already validated value. Tensor data streams straight to "<path>.tmp",
// which is fsynced and renamed over path by finish.
#include "gguf.h"

#include "mesh_err.h"
#include "mesh_log.h"
#include "quant.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAGIC 0x46554747u // "GGUF" read as a little-endian u32
#define S_MAX_NEST 8        // arrays of arrays deeper than this are refused
#define S_MAX_NAME 64       // GGML_MAX_NAME: llama.cpp refuses tensor names >= 64 bytes

// ---------------------------------------------------------------- arena

// Bump allocator in linked chunks: pointers stay valid until the reader is
// closed, and freeing is one walk over the chunks.
typedef struct s_chunk {
    struct s_chunk *next;
    size_t used, cap; // bytes of data[]
    _Alignas(8) unsigned char data[];
} s_chunk_t;

static void *s_arena_alloc(s_chunk_t **head, size_t n) {
    n = (n + 7) & ~(size_t)7;
    s_chunk_t *c = *head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = *head;
        *head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void s_arena_free(s_chunk_t **head) {
    s_chunk_t *c = *head;
    while (c) {
        s_chunk_t *n = c->next;
        free(c);
        c = n;
    }
    *head = NULL;
}

// ---------------------------------------------------------------- hash table

// FNV-1a from a per-table seed, then a 64-bit finaliser so the low bits (the
// slot) depend on every byte. The seed varies per table, so a hostile file
// cannot precompute names that all land in one slot (O(n^2) open).
static uint64_t s_hash(uint64_t seed, const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

// Open addressing over int64 indices into an external name array; -1 is empty.
typedef struct {
    int64_t *slots;
    uint64_t mask; // capacity - 1 (capacity a power of two >= 2 * entries)
    uint64_t seed;
} s_htab_t;

static int s_htab_init(s_htab_t *t, uint64_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t->seed = ((uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull) ^ (uint64_t)(uintptr_t)t ^
              ((uint64_t)ts.tv_sec << 32);
    uint64_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    t->slots = malloc(cap * sizeof *t->slots);
    if (!t->slots)
        return MESH_ENOMEM;
    memset(t->slots, 0xff, cap * sizeof *t->slots); // all -1
    t->mask = cap - 1;
    return 0;
}

// ---------------------------------------------------------------- reader types

typedef struct {
    const char *s; // NUL-terminated copy in the arena
    uint64_t len;
} s_str_t;

typedef struct {
    const char *name;       // NUL-terminated copy in the arena
    size_t name_len;
    mesh_gguf_type_t type;
    const unsigned char *raw; // the value's bytes in the buffer (after the type)
    uint64_t raw_len;
    union {
        uint64_t u;  // unsigned integers and bool
        int64_t i;   // signed integers
        double f;    // f32 / f64
    } num;
    s_str_t str;               // STRING
    mesh_gguf_type_t elem_type; // ARRAY
    uint64_t n;                 // ARRAY element count
    const void *arr;            // ARRAY: numeric copy, or s_str_t[n] for strings, NULL for nested
} s_kv_t;

struct mesh_gguf {
    const unsigned char *base;
    uint64_t size;  // bytes
    bool mapped;    // munmap on close
    uint32_t version;
    uint32_t alignment;
    int64_t n_kv, n_tensors;
    s_kv_t *kv;                    // [n_kv]
    mesh_gguf_tensor_t *tensors;   // [n_tensors]
    s_htab_t kv_tab, t_tab;
    s_chunk_t *arena;
    const char *arch; // "" when absent
};

// Parse state: a cursor plus where we are, for error messages.
typedef struct {
    mesh_gguf_t *g;
    const unsigned char *p, *end;
    char *err;
    size_t err_len;
    char where[160]; // "metadata (key 5 of 45)", "tensor table (tensor 12 of 70)"
} s_parse_t;

static void s_set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_set_err(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

// Printable, bounded copy of a name from a file, for messages.
static const char *s_disp(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) || c >= 0x80 ? (char)c : '?';
    }
    if (o + 4 >= cap && n > o) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o] = 0;
    return buf;
}

static int s_trunc(s_parse_t *ps) {
    s_set_err(ps->err, ps->err_len, "file truncated in %s", ps->where);
    return MESH_ETRUNCATED;
}

static uint64_t s_left(const s_parse_t *ps) { return (uint64_t)(ps->end - ps->p); }

// A length or count that does not fit in the bytes left: a plausible value
// means the file was cut short; an absurd one (> 2^32) means it is corrupt.
static int s_too_many(s_parse_t *ps, uint64_t n, const char *what) {
    if (n > (1ull << 32)) {
        s_set_err(ps->err, ps->err_len, "%s %llu in %s is implausibly large", what,
                  (unsigned long long)n, ps->where);
        return MESH_EFORMAT;
    }
    s_set_err(ps->err, ps->err_len, "file truncated in %s (%s %llu, %llu bytes left)",
              ps->where, what, (unsigned long long)n, (unsigned long long)s_left(ps));
    return MESH_ETRUNCATED;
}

static int s_rd(s_parse_t *ps, void *out, size_t n) {
    if (s_left(ps) < n)
        return s_trunc(ps);
    memcpy(out, ps->p, n); // little-endian host assumed (x86-64, arm64)
    ps->p += n;
    return 0;
}

static int s_rd_u32(s_parse_t *ps, uint32_t *v) { return s_rd(ps, v, 4); }
static int s_rd_u64(s_parse_t *ps, uint64_t *v) { return s_rd(ps, v, 8); }

// Reads a GGUF string (u64 length + bytes) and copies it NUL-terminated
// into the arena (copy == false: only skips it).
static int s_rd_str(s_parse_t *ps, s_str_t *out, bool copy, const char *what) {
    uint64_t n;
    int rc = s_rd_u64(ps, &n);
    if (rc)
        return rc;
    if (n > s_left(ps))
        return s_too_many(ps, n, what);
    if (copy) {
        char *s = s_arena_alloc(&ps->g->arena, (size_t)n + 1);
        if (!s)
            return MESH_ENOMEM;
        memcpy(s, ps->p, (size_t)n);
        s[n] = 0;
        out->s = s;
        out->len = n;
    }
    ps->p += n;
    return 0;
}

static const uint8_t s_type_size[MESH_GGUF_TYPE_COUNT] = {
    [MESH_GGUF_UINT8] = 1,  [MESH_GGUF_INT8] = 1,    [MESH_GGUF_UINT16] = 2,
    [MESH_GGUF_INT16] = 2,  [MESH_GGUF_UINT32] = 4,  [MESH_GGUF_INT32] = 4,
    [MESH_GGUF_FLOAT32] = 4, [MESH_GGUF_BOOL] = 1,   [MESH_GGUF_STRING] = 0,
    [MESH_GGUF_ARRAY] = 0,  [MESH_GGUF_UINT64] = 8,  [MESH_GGUF_INT64] = 8,
    [MESH_GGUF_FLOAT64] = 8,
};

static const char *const s_type_names[MESH_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

const char *mesh_gguf_type_name(mesh_gguf_type_t t) {
    return (unsigned)t < MESH_GGUF_TYPE_COUNT ? s_type_names[t] : "?";
}

static bool s_is_int(mesh_gguf_type_t t) {
    return t <= MESH_GGUF_INT32 || t == MESH_GGUF_UINT64 || t == MESH_GGUF_INT64;
}
static bool s_is_signed(mesh_gguf_type_t t) {
    return t == MESH_GGUF_INT8 || t == MESH_GGUF_INT16 || t == MESH_GGUF_INT32 ||
           t == MESH_GGUF_INT64;
}

// Smallest encoded size of one element of type t: bounds array counts by the
// bytes left before anything is allocated.
static uint64_t s_min_size(mesh_gguf_type_t t) {
    if (t == MESH_GGUF_STRING)
        return 8;
    if (t == MESH_GGUF_ARRAY)
        return 12;
    return s_type_size[t];
}

// Skips (validates) one value of type t; used for nested arrays.
static int s_skip_value(s_parse_t *ps, mesh_gguf_type_t t, int depth) {
    if (t == MESH_GGUF_STRING)
        return s_rd_str(ps, NULL, false, "string");
    if (t != MESH_GGUF_ARRAY) {
        if (s_left(ps) < s_type_size[t])
            return s_trunc(ps);
        ps->p += s_type_size[t];
        return 0;
    }
    if (depth >= S_MAX_NEST) {
        s_set_err(ps->err, ps->err_len, "arrays nested deeper than %d in %s", S_MAX_NEST,
                  ps->where);
        return MESH_EFORMAT;
    }
    uint32_t et;
    uint64_t n;
    int rc;
    if ((rc = s_rd_u32(ps, &et)) || (rc = s_rd_u64(ps, &n)))
        return rc;
    if (et >= MESH_GGUF_TYPE_COUNT) {
        s_set_err(ps->err, ps->err_len, "array in %s has unknown element type %u", ps->where,
                  et);
        return MESH_EFORMAT;
    }
    uint64_t ms = s_min_size((mesh_gguf_type_t)et);
    if (n > s_left(ps) / ms)
        return s_too_many(ps, n, "array length");
    if (et != MESH_GGUF_STRING && et != MESH_GGUF_ARRAY) {
        ps->p += n * ms;
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if ((rc = s_skip_value(ps, (mesh_gguf_type_t)et, depth + 1)))
            return rc;
    return 0;
}

// Well-known keys whose type the rest of the engine relies on. "int" means
// any integer type (token ids are u32 in llama.cpp's files, i32 in some others).
typedef enum { S_K_EXACT, S_K_ANYINT, S_K_ARR } s_kclass_t;
typedef struct {
    const char *key;
    s_kclass_t cls;
    mesh_gguf_type_t type; // EXACT: the type; ARR: the element type
} s_known_t;

static const s_known_t s_known[] = {
    {"general.architecture", S_K_EXACT, MESH_GGUF_STRING},
    {"general.alignment", S_K_EXACT, MESH_GGUF_UINT32},
    {"general.name", S_K_EXACT, MESH_GGUF_STRING},
    {"general.type", S_K_EXACT, MESH_GGUF_STRING},
    {"general.file_type", S_K_ANYINT, 0},
    {"general.quantization_version", S_K_ANYINT, 0},
    {"tokenizer.ggml.model", S_K_EXACT, MESH_GGUF_STRING},
    {"tokenizer.ggml.pre", S_K_EXACT, MESH_GGUF_STRING},
    {"tokenizer.chat_template", S_K_EXACT, MESH_GGUF_STRING},
    {"tokenizer.ggml.tokens", S_K_ARR, MESH_GGUF_STRING},
    {"tokenizer.ggml.merges", S_K_ARR, MESH_GGUF_STRING},
    {"tokenizer.ggml.scores", S_K_ARR, MESH_GGUF_FLOAT32},
    {"tokenizer.ggml.token_type", S_K_ARR, MESH_GGUF_INT32},
    {"tokenizer.ggml.bos_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.eos_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.eot_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.eom_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.unknown_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.padding_token_id", S_K_ANYINT, 0},
    {"tokenizer.ggml.add_bos_token", S_K_EXACT, MESH_GGUF_BOOL},
    {"tokenizer.ggml.add_eos_token", S_K_EXACT, MESH_GGUF_BOOL},
};

// 0 when (type, elem_type) suits key, else writes a reason into buf.
static int s_check_known(const char *key, mesh_gguf_type_t type, mesh_gguf_type_t elem,
                         char *buf, size_t cap) {
    for (size_t i = 0; i < sizeof s_known / sizeof s_known[0]; i++) {
        const s_known_t *k = &s_known[i];
        if (strcmp(k->key, key))
            continue;
        switch (k->cls) {
        case S_K_EXACT:
            if (type == k->type)
                return 0;
            snprintf(buf, cap, "key '%s' has type %s, expected %s", key,
                     mesh_gguf_type_name(type), mesh_gguf_type_name(k->type));
            return MESH_EFORMAT;
        case S_K_ANYINT:
            if (s_is_int(type))
                return 0;
            snprintf(buf, cap, "key '%s' has type %s, expected an integer", key,
                     mesh_gguf_type_name(type));
            return MESH_EFORMAT;
        case S_K_ARR:
            if (type == MESH_GGUF_ARRAY && elem == k->type)
                return 0;
            if (type == MESH_GGUF_ARRAY)
                snprintf(buf, cap, "key '%s' is an array of %s, expected an array of %s", key,
                         mesh_gguf_type_name(elem), mesh_gguf_type_name(k->type));
            else
                snprintf(buf, cap, "key '%s' has type %s, expected an array of %s", key,
                         mesh_gguf_type_name(type), mesh_gguf_type_name(k->type));
            return MESH_EFORMAT;
        }
    }
    return 0;
}

// Reads the value of kv (its type already read).
static int s_read_value(s_parse_t *ps, s_kv_t *kv) {
    const unsigned char *start = ps->p;
    int rc = 0;
    switch (kv->type) {
    case MESH_GGUF_STRING:
        rc = s_rd_str(ps, &kv->str, true, "string value");
        break;
    case MESH_GGUF_ARRAY: {
        uint32_t et;
        if ((rc = s_rd_u32(ps, &et)) || (rc = s_rd_u64(ps, &kv->n)))
            return rc;
        if (et >= MESH_GGUF_TYPE_COUNT) {
            s_set_err(ps->err, ps->err_len, "array in %s has unknown element type %u", ps->where,
                      et);
            return MESH_EFORMAT;
        }
        kv->elem_type = (mesh_gguf_type_t)et;
        uint64_t ms = s_min_size(kv->elem_type);
        if (kv->n > s_left(ps) / ms)
            return s_too_many(ps, kv->n, "array length");
        if (kv->elem_type == MESH_GGUF_STRING) {
            s_str_t *v = kv->n ? s_arena_alloc(&ps->g->arena, (size_t)kv->n * sizeof *v) : NULL;
            if (kv->n && !v)
                return MESH_ENOMEM;
            for (uint64_t i = 0; i < kv->n; i++)
                if ((rc = s_rd_str(ps, &v[i], true, "array string")))
                    return rc;
            kv->arr = v;
        } else if (kv->elem_type == MESH_GGUF_ARRAY) {
            for (uint64_t i = 0; i < kv->n; i++)
                if ((rc = s_skip_value(ps, MESH_GGUF_ARRAY, 1)))
                    return rc;
        } else {
            size_t nb = (size_t)(kv->n * ms);
            void *d = s_arena_alloc(&ps->g->arena, nb ? nb : 1);
            if (!d)
                return MESH_ENOMEM;
            memcpy(d, ps->p, nb);
            ps->p += nb;
            kv->arr = d;
        }
        break;
    }
    default: {
        size_t sz = s_type_size[kv->type];
        unsigned char b[8] = {0};
        if ((rc = s_rd(ps, b, sz)))
            return rc;
        switch (kv->type) {
        case MESH_GGUF_UINT8:
        case MESH_GGUF_BOOL: kv->num.u = b[0]; break;
        case MESH_GGUF_INT8: kv->num.i = (int8_t)b[0]; break;
        case MESH_GGUF_UINT16: { uint16_t v; memcpy(&v, b, 2); kv->num.u = v; break; }
        case MESH_GGUF_INT16: { int16_t v; memcpy(&v, b, 2); kv->num.i = v; break; }
        case MESH_GGUF_UINT32: { uint32_t v; memcpy(&v, b, 4); kv->num.u = v; break; }
        case MESH_GGUF_INT32: { int32_t v; memcpy(&v, b, 4); kv->num.i = v; break; }
        case MESH_GGUF_UINT64: memcpy(&kv->num.u, b, 8); break;
        case MESH_GGUF_INT64: memcpy(&kv->num.i, b, 8); break;
        case MESH_GGUF_FLOAT32: { float v; memcpy(&v, b, 4); kv->num.f = v; break; }
        case MESH_GGUF_FLOAT64: memcpy(&kv->num.f, b, 8); break;
        default: break;
        }
    }
    }
    if (rc)
        return rc;
    kv->raw = start;
    kv->raw_len = (uint64_t)(ps->p - start);
    return 0;
}

// Inserts index idx under name; returns the index already there on a clash, else -1.
static int64_t s_htab_insert(s_htab_t *t, const char *name, size_t len, int64_t idx,
                             const char *(*name_of)(const mesh_gguf_t *, int64_t, size_t *),
                             const mesh_gguf_t *g) {
    uint64_t h = s_hash(t->seed, name, len) & t->mask;
    for (;;) {
        int64_t s = t->slots[h];
        if (s < 0) {
            t->slots[h] = idx;
            return -1;
        }
        size_t l2;
        const char *n2 = name_of(g, s, &l2);
        if (l2 == len && !memcmp(n2, name, len))
            return s;
        h = (h + 1) & t->mask;
    }
}

static int64_t s_htab_find(const s_htab_t *t, const char *name,
                           const char *(*name_of)(const mesh_gguf_t *, int64_t, size_t *),
                           const mesh_gguf_t *g) {
    if (!t->slots || !name)
        return -1;
    size_t len = strlen(name);
    uint64_t h = s_hash(t->seed, name, len) & t->mask;
    for (;;) {
        int64_t s = t->slots[h];
        if (s < 0)
            return -1;
        size_t l2;
        const char *n2 = name_of(g, s, &l2);
        if (l2 == len && !memcmp(n2, name, len))
            return s;
        h = (h + 1) & t->mask;
    }
}

static const char *s_kv_name(const mesh_gguf_t *g, int64_t i, size_t *len) {
    *len = g->kv[i].name_len;
    return g->kv[i].name;
}
static const char *s_t_name(const mesh_gguf_t *g, int64_t i, size_t *len) {
    *len = strlen(g->tensors[i].name); // names are NUL-free (checked at parse)
    return g->tensors[i].name;
}

static int s_parse_kv(s_parse_t *ps) {
    mesh_gguf_t *g = ps->g;
    char disp[80];
    for (int64_t i = 0; i < g->n_kv; i++) {
        s_kv_t *kv = &g->kv[i];
        snprintf(ps->where, sizeof ps->where, "metadata (key %lld of %lld)", (long long)i + 1,
                 (long long)g->n_kv);
        s_str_t name;
        int rc = s_rd_str(ps, &name, true, "key name");
        if (rc)
            return rc;
        kv->name = name.s;
        kv->name_len = (size_t)name.len;
        if (!name.len || memchr(name.s, 0, name.len)) {
            s_set_err(ps->err, ps->err_len, "key %lld of %lld has an empty name or one with a NUL byte",
                      (long long)i + 1, (long long)g->n_kv);
            return MESH_EFORMAT;
        }
        snprintf(ps->where, sizeof ps->where, "metadata (key %lld of %lld, '%s')",
                 (long long)i + 1, (long long)g->n_kv, s_disp(name.s, name.len, disp, 64));
        uint32_t t;
        if ((rc = s_rd_u32(ps, &t)))
            return rc;
        if (t >= MESH_GGUF_TYPE_COUNT) {
            s_set_err(ps->err, ps->err_len, "key '%s' has unknown type %u", disp, t);
            return MESH_EFORMAT;
        }
        kv->type = (mesh_gguf_type_t)t;
        if ((rc = s_read_value(ps, kv)))
            return rc;
        if (s_htab_insert(&g->kv_tab, kv->name, kv->name_len, i, s_kv_name, g) >= 0) {
            s_set_err(ps->err, ps->err_len, "duplicate key '%s'", disp);
            return MESH_EFORMAT;
        }
        char why[256];
        if (s_check_known(kv->name, kv->type, kv->elem_type, why, sizeof why)) {
            s_set_err(ps->err, ps->err_len, "%s", why);
            return MESH_EFORMAT;
        }
        if (!strcmp(kv->name, "general.alignment")) {
            uint64_t a = kv->num.u;
            if (a == 0 || (a & (a - 1))) {
                s_set_err(ps->err, ps->err_len,
                          "key 'general.alignment' is %llu, expected a non-zero power of two",
                          (unsigned long long)a);
                return MESH_EFORMAT;
            }
            g->alignment = (uint32_t)a;
        }
        if (!strcmp(kv->name, "general.architecture"))
            g->arch = kv->str.s;
    }
    return 0;
}

static int s_parse_tensors(s_parse_t *ps) {
    mesh_gguf_t *g = ps->g;
    char disp[80];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        mesh_gguf_tensor_t *t = &g->tensors[i];
        snprintf(ps->where, sizeof ps->where, "tensor table (tensor %lld of %lld)",
                 (long long)i + 1, (long long)g->n_tensors);
        s_str_t name;
        int rc = s_rd_str(ps, &name, true, "tensor name");
        if (rc)
            return rc;
        if (!name.len || memchr(name.s, 0, name.len)) {
            s_set_err(ps->err, ps->err_len,
                      "tensor %lld of %lld has an empty name or one with a NUL byte",
                      (long long)i + 1, (long long)g->n_tensors);
            return MESH_EFORMAT;
        }
        t->name = name.s;
        s_disp(name.s, name.len, disp, 64);
        if ((rc = s_rd_u32(ps, &t->n_dims)))
            return rc;
        if (t->n_dims < 1 || t->n_dims > MESH_GGUF_MAX_DIMS) {
            s_set_err(ps->err, ps->err_len, "tensor '%s' has %u dimensions, expected 1..%d", disp,
                      t->n_dims, MESH_GGUF_MAX_DIMS);
            return MESH_EFORMAT;
        }
        for (int d = 0; d < MESH_GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if ((rc = s_rd_u64(ps, &t->ne[d])))
                return rc;
            if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX ||
                __builtin_mul_overflow(n_el, t->ne[d], &n_el) || n_el > (uint64_t)INT64_MAX) {
                s_set_err(ps->err, ps->err_len,
                          "tensor '%s' has dimension %u = %llu (zero, or the element count overflows)",
                          disp, d, (unsigned long long)t->ne[d]);
                return MESH_EFORMAT;
            }
        }
        t->n_elements = n_el;
        if ((rc = s_rd_u32(ps, &t->type)) || (rc = s_rd_u64(ps, &t->offset)))
            return rc;
        const mesh_qtype_traits_t *tr = mesh_qtype_traits(t->type);
        if (!tr) {
            s_set_err(ps->err, ps->err_len, "tensor '%s' has unknown type %u", disp, t->type);
            return MESH_EFORMAT;
        }
        if (t->ne[0] % tr->blck) {
            s_set_err(ps->err, ps->err_len,
                      "tensor '%s' has rows of %llu elements, not a multiple of %s's block of %u",
                      disp, (unsigned long long)t->ne[0], tr->name, tr->blck);
            return MESH_EFORMAT;
        }
        uint64_t nb = (t->ne[0] / tr->blck) * tr->size; // <= ne0 * 292 / 256 or ne0 * 4
        if (__builtin_mul_overflow(nb, n_el / t->ne[0], &nb)) {
            s_set_err(ps->err, ps->err_len, "tensor '%s' byte size overflows", disp);
            return MESH_EFORMAT;
        }
        t->n_bytes = nb;
        if (s_htab_insert(&g->t_tab, t->name, (size_t)name.len, i, s_t_name, g) >= 0) {
            s_set_err(ps->err, ps->err_len, "duplicate tensor '%s'", disp);
            return MESH_EFORMAT;
        }
    }
    return 0;
}

static int s_parse(mesh_gguf_t *g, char *err, size_t err_len) {
    s_parse_t ps = {.g = g, .p = g->base, .end = g->base + g->size, .err = err,
                    .err_len = err_len};
    snprintf(ps.where, sizeof ps.where, "header");
    uint32_t magic;
    int rc;
    if ((rc = s_rd_u32(&ps, &magic)))
        return rc;
    if (magic != S_MAGIC) {
        s_set_err(err, err_len, "not a GGUF file (bad magic %02x %02x %02x %02x)",
                  g->base[0], g->base[1], g->base[2], g->base[3]);
        return MESH_EFORMAT;
    }
    if ((rc = s_rd_u32(&ps, &g->version)))
        return rc;
    if (g->version == 1) {
        s_set_err(err, err_len, "GGUF version 1 is not supported (only versions 2 and 3)");
        return MESH_EUNSUPPORTED;
    }
    if (g->version != 2 && g->version != 3) {
        // A byte-swapped small number is a big-endian file.
        uint32_t sw = __builtin_bswap32(g->version);
        if (sw == 2 || sw == 3)
            s_set_err(err, err_len, "big-endian GGUF files are not supported");
        else
            s_set_err(err, err_len, "GGUF version %u is not supported (only versions 2 and 3)",
                      g->version);
        return MESH_EUNSUPPORTED;
    }
    uint64_t nt, nkv;
    if ((rc = s_rd_u64(&ps, &nt)) || (rc = s_rd_u64(&ps, &nkv)))
        return rc;
    // Each tensor entry takes at least 32 bytes (name length, n_dims, one
    // dim, type, offset) and each key at least 13 (name length, type, one byte).
    if (nkv > s_left(&ps) / 13)
        return s_too_many(&ps, nkv, "key count");
    g->n_kv = (int64_t)nkv;
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    if (!g->kv)
        return MESH_ENOMEM;
    if ((rc = s_htab_init(&g->kv_tab, nkv)) || (rc = s_parse_kv(&ps)))
        return rc;
    // The tensor count is checked against what is left after the metadata.
    snprintf(ps.where, sizeof ps.where, "tensor table");
    if (nt > s_left(&ps) / 32)
        return s_too_many(&ps, nt, "tensor count");
    g->n_tensors = (int64_t)nt;
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->tensors)
        return MESH_ENOMEM;
    if ((rc = s_htab_init(&g->t_tab, nt)) || (rc = s_parse_tensors(&ps)))
        return rc;

    // The data section starts at the next multiple of the alignment.
    uint64_t pos = (uint64_t)(ps.p - g->base);
    uint64_t a = g->alignment;
    uint64_t data_start = (pos + a - 1) / a * a; // pos < 2^63, no overflow
    char disp[80];
    for (int64_t i = 0; i < g->n_tensors; i++) {
        mesh_gguf_tensor_t *t = &g->tensors[i];
        s_disp(t->name, strlen(t->name), disp, 64);
        if (t->offset % a) {
            s_set_err(err, err_len, "tensor '%s' data offset %llu is not a multiple of the alignment %llu",
                      disp, (unsigned long long)t->offset, (unsigned long long)a);
            return MESH_EFORMAT;
        }
        uint64_t abs, end;
        if (__builtin_add_overflow(data_start, t->offset, &abs) ||
            __builtin_add_overflow(abs, t->n_bytes, &end) || end > g->size) {
            s_set_err(err, err_len, "tensor '%s' data ends past the end of the file", disp);
            return MESH_ETRUNCATED;
        }
        t->offset = abs;
        t->data = g->base + abs;
    }
    return 0;
}

static int s_open_common(mesh_gguf_t *g, mesh_gguf_t **out, char *err, size_t err_len) {
    g->alignment = MESH_GGUF_DEFAULT_ALIGNMENT;
    g->arch = "";
    int rc = s_parse(g, err, err_len);
    if (rc) {
        if (rc == MESH_ENOMEM)
            s_set_err(err, err_len, "out of memory while reading the GGUF header");
        mesh_gguf_close(&g);
        return rc;
    }
    *out = g;
    return 0;
}

int mesh_gguf_open_memory(const void *buf, size_t len, mesh_gguf_t **out, char *err,
                          size_t err_len) {
    if (!out)
        return MESH_EINVAL;
    *out = NULL;
    if (!buf && len) {
        s_set_err(err, err_len, "no buffer");
        return MESH_EINVAL;
    }
    mesh_gguf_t *g = calloc(1, sizeof *g);
    if (!g) {
        s_set_err(err, err_len, "out of memory");
        return MESH_ENOMEM;
    }
    static const unsigned char empty[1];
    g->base = buf ? buf : empty;
    g->size = len;
    return s_open_common(g, out, err, err_len);
}

int mesh_gguf_open(const char *path, mesh_gguf_t **out, char *err, size_t err_len) {
    if (!out || !path)
        return MESH_EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        s_set_err(err, err_len, "cannot open '%s': %s", path, strerror(e));
        return e == ENOENT ? MESH_ENOENT : e == EACCES ? MESH_EPERM : MESH_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        s_set_err(err, err_len, "'%s' is not a regular file", path);
        close(fd);
        return MESH_EINVAL;
    }
    if (st.st_size == 0) { // mmap cannot map nothing
        s_set_err(err, err_len, "'%s' is empty", path);
        close(fd);
        return MESH_ETRUNCATED;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd); // the mapping keeps the file open
    if (m == MAP_FAILED) {
        s_set_err(err, err_len, "cannot map '%s': %s", path, strerror(e));
        return MESH_EIO;
    }
    mesh_gguf_t *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(m, (size_t)st.st_size);
        s_set_err(err, err_len, "out of memory");
        return MESH_ENOMEM;
    }
    g->base = m;
    g->size = (uint64_t)st.st_size;
    g->mapped = true;
    return s_open_common(g, out, err, err_len);
}

void mesh_gguf_close(mesh_gguf_t **gp) {
    if (!gp || !*gp)
        return;
    mesh_gguf_t *g = *gp;
    if (g->mapped)
        munmap((void *)g->base, (size_t)g->size);
    free(g->kv);
    free(g->tensors);
    free(g->kv_tab.slots);
    free(g->t_tab.slots);
    s_arena_free(&g->arena);
    free(g);
    *gp = NULL;
}

uint32_t mesh_gguf_version(const mesh_gguf_t *g) { return g->version; }
uint32_t mesh_gguf_alignment(const mesh_gguf_t *g) { return g->alignment; }
uint64_t mesh_gguf_file_size(const mesh_gguf_t *g) { return g->size; }
int64_t mesh_gguf_n_kv(const mesh_gguf_t *g) { return g->n_kv; }

int64_t mesh_gguf_find_key(const mesh_gguf_t *g, const char *key) {
    return s_htab_find(&g->kv_tab, key, s_kv_name, g);
}

const char *mesh_gguf_key_name(const mesh_gguf_t *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].name : NULL;
}

mesh_gguf_type_t mesh_gguf_key_type(const mesh_gguf_t *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? g->kv[i].type : MESH_GGUF_TYPE_COUNT;
}

static const s_kv_t *s_get(const mesh_gguf_t *g, const char *key, int *rc) {
    int64_t i = mesh_gguf_find_key(g, key);
    if (i < 0) {
        *rc = MESH_ENOENT;
        return NULL;
    }
    *rc = 0;
    return &g->kv[i];
}

// Integer value of kv as (negative?, magnitude bits); false when not an integer.
static bool s_int_of(const s_kv_t *kv, bool *neg, uint64_t *u, int64_t *i) {
    if (!s_is_int(kv->type))
        return false;
    if (s_is_signed(kv->type)) {
        *i = kv->num.i;
        *neg = kv->num.i < 0;
        *u = (uint64_t)kv->num.i;
    } else {
        *u = kv->num.u;
        *neg = false;
        *i = (int64_t)kv->num.u;
    }
    return true;
}

int mesh_gguf_get_u64(const mesh_gguf_t *g, const char *key, uint64_t *out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    bool neg;
    uint64_t u;
    int64_t i;
    if (!s_int_of(kv, &neg, &u, &i) || neg)
        return MESH_EFORMAT;
    *out = u;
    return 0;
}

int mesh_gguf_get_u32(const mesh_gguf_t *g, const char *key, uint32_t *out) {
    uint64_t v = 0; // gcc 13 cannot see that a 0 return always sets it
    int rc = mesh_gguf_get_u64(g, key, &v);
    if (rc)
        return rc;
    if (v > UINT32_MAX)
        return MESH_EFORMAT;
    *out = (uint32_t)v;
    return 0;
}

int mesh_gguf_get_i64(const mesh_gguf_t *g, const char *key, int64_t *out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    bool neg;
    uint64_t u;
    int64_t i;
    if (!s_int_of(kv, &neg, &u, &i))
        return MESH_EFORMAT;
    if (!s_is_signed(kv->type) && u > (uint64_t)INT64_MAX)
        return MESH_EFORMAT;
    *out = i;
    return 0;
}

int mesh_gguf_get_f64(const mesh_gguf_t *g, const char *key, double *out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_FLOAT32 && kv->type != MESH_GGUF_FLOAT64)
        return MESH_EFORMAT;
    *out = kv->num.f;
    return 0;
}

int mesh_gguf_get_f32(const mesh_gguf_t *g, const char *key, float *out) {
    double d = 0; // gcc 13 cannot see that a 0 return always sets it
    int rc = mesh_gguf_get_f64(g, key, &d);
    if (!rc)
        *out = (float)d;
    return rc;
}

int mesh_gguf_get_bool(const mesh_gguf_t *g, const char *key, bool *out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_BOOL)
        return MESH_EFORMAT;
    *out = kv->num.u != 0;
    return 0;
}

int mesh_gguf_get_str(const mesh_gguf_t *g, const char *key, const char **out,
                      size_t *len_out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_STRING)
        return MESH_EFORMAT;
    *out = kv->str.s;
    if (len_out)
        *len_out = (size_t)kv->str.len;
    return 0;
}

int mesh_gguf_get_arr_info(const mesh_gguf_t *g, const char *key, mesh_gguf_type_t *elem_type,
                           uint64_t *n) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_ARRAY)
        return MESH_EFORMAT;
    if (elem_type)
        *elem_type = kv->elem_type;
    if (n)
        *n = kv->n;
    return 0;
}

int mesh_gguf_get_arr_data(const mesh_gguf_t *g, const char *key, const void **data) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_ARRAY || kv->elem_type == MESH_GGUF_STRING ||
        kv->elem_type == MESH_GGUF_ARRAY)
        return MESH_EFORMAT;
    *data = kv->arr;
    return 0;
}

int mesh_gguf_get_arr_str(const mesh_gguf_t *g, const char *key, uint64_t i, const char **out,
                          size_t *len_out) {
    int rc;
    const s_kv_t *kv = s_get(g, key, &rc);
    if (!kv)
        return rc;
    if (kv->type != MESH_GGUF_ARRAY || kv->elem_type != MESH_GGUF_STRING)
        return MESH_EFORMAT;
    if (i >= kv->n)
        return MESH_ERANGE;
    const s_str_t *s = &((const s_str_t *)kv->arr)[i];
    *out = s->s;
    if (len_out)
        *len_out = (size_t)s->len;
    return 0;
}

// Runs fn on "<arch>.<suffix>"; the name lives on the stack unless it is long.
#define S_ARCH_KEY(g, suffix, call)                                                      \
    do {                                                                                 \
        char kb_[256];                                                                   \
        const char *a_ = mesh_gguf_arch(g);                                              \
        if (!*a_)                                                                        \
            return MESH_ENOENT;                                                          \
        size_t al_ = strlen(a_), sl_ = strlen(suffix);                                   \
        char *key = al_ + sl_ + 2 <= sizeof kb_ ? kb_ : malloc(al_ + sl_ + 2);           \
        if (!key)                                                                        \
            return MESH_ENOMEM;                                                          \
        memcpy(key, a_, al_);                                                            \
        key[al_] = '.';                                                                  \
        memcpy(key + al_ + 1, suffix, sl_ + 1);                                          \
        int rc_ = (call);                                                                \
        if (key != kb_)                                                                  \
            free(key);                                                                   \
        return rc_;                                                                      \
    } while (0)

int mesh_gguf_get_arch_u32(const mesh_gguf_t *g, const char *suffix, uint32_t *out) {
    S_ARCH_KEY(g, suffix, mesh_gguf_get_u32(g, key, out));
}
int mesh_gguf_get_arch_f32(const mesh_gguf_t *g, const char *suffix, float *out) {
    S_ARCH_KEY(g, suffix, mesh_gguf_get_f32(g, key, out));
}
int mesh_gguf_get_arch_bool(const mesh_gguf_t *g, const char *suffix, bool *out) {
    S_ARCH_KEY(g, suffix, mesh_gguf_get_bool(g, key, out));
}

const char *mesh_gguf_arch(const mesh_gguf_t *g) { return g->arch; }

int64_t mesh_gguf_n_tensors(const mesh_gguf_t *g) { return g->n_tensors; }

const mesh_gguf_tensor_t *mesh_gguf_tensor(const mesh_gguf_t *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const mesh_gguf_tensor_t *mesh_gguf_find_tensor(const mesh_gguf_t *g, const char *name) {
    int64_t i = s_htab_find(&g->t_tab, name, s_t_name, g);
    return i >= 0 ? &g->tensors[i] : NULL;
}

// ---------------------------------------------------------------- writer

typedef struct {
    char *key;      // NUL-terminated
    mesh_gguf_type_t type;
    uint32_t elem_type; // ARRAY: element type
    uint32_t alignment_value; // general.alignment only
    unsigned char *blob; // serialised entry: key string, type, value
    size_t len;
} s_wkv_t;

typedef struct {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[MESH_GGUF_MAX_DIMS];
    uint64_t n_bytes;
    uint64_t offset; // relative to the data section, set by begin
} s_wtensor_t;

typedef enum { S_W_BUILD, S_W_DATA, S_W_DONE } s_wstate_t;

struct mesh_gguf_writer {
    s_wkv_t *kv;
    size_t n_kv, cap_kv;
    s_wtensor_t *t;
    size_t n_t, cap_t;
    s_wstate_t state;
    FILE *f;
    char *path, *tmp;
    uint32_t alignment;
    int64_t next;     // next tensor to write
    uint64_t written; // bytes of the data section written so far
};

mesh_gguf_writer_t *mesh_gguf_writer_new(void) { return calloc(1, sizeof(mesh_gguf_writer_t)); }

static void s_w_abort(mesh_gguf_writer_t *w) {
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    if (w->tmp)
        unlink(w->tmp);
    w->state = S_W_DONE;
}

void mesh_gguf_writer_destroy(mesh_gguf_writer_t **wp) {
    if (!wp || !*wp)
        return;
    mesh_gguf_writer_t *w = *wp;
    if (w->state == S_W_DATA)
        s_w_abort(w); // abandoned mid-write: leave no partial file
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w->path);
    free(w->tmp);
    free(w);
    *wp = NULL;
}

// A growable byte buffer for serialising one entry.
typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} s_buf_t;

static void s_put(s_buf_t *b, const void *d, size_t n) {
    if (b->oom)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void s_put_u32(s_buf_t *b, uint32_t v) { s_put(b, &v, 4); }
static void s_put_u64(s_buf_t *b, uint64_t v) { s_put(b, &v, 8); }
static void s_put_str(s_buf_t *b, const char *s, size_t n) {
    s_put_u64(b, n);
    s_put(b, s, n);
}

// Starts an entry: key name and type.
static void s_entry_begin(s_buf_t *b, const char *key, mesh_gguf_type_t type) {
    s_put_str(b, key, strlen(key));
    s_put_u32(b, (uint32_t)type);
}

// Stores a finished entry, replacing an existing key in place. Takes b's memory.
static int s_w_store(mesh_gguf_writer_t *w, const char *key, mesh_gguf_type_t type,
                     mesh_gguf_type_t elem, uint32_t align_v, s_buf_t *b) {
    char why[256];
    if (b->oom) {
        free(b->p);
        return MESH_ENOMEM;
    }
    if (s_check_known(key, type, elem, why, sizeof why)) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: %s", why);
        free(b->p);
        return MESH_EINVAL;
    }
    if (!strcmp(key, "general.alignment") && (align_v == 0 || (align_v & (align_v - 1)))) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: general.alignment %u is not a power of two",
                 align_v);
        free(b->p);
        return MESH_EINVAL;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kv[i].key, key)) {
            free(w->kv[i].blob);
            w->kv[i].blob = b->p;
            w->kv[i].len = b->len;
            w->kv[i].type = type;
            w->kv[i].elem_type = elem;
            w->kv[i].alignment_value = align_v;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        s_wkv_t *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) {
            free(b->p);
            return MESH_ENOMEM;
        }
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(b->p);
        return MESH_ENOMEM;
    }
    w->kv[w->n_kv++] = (s_wkv_t){k, type, elem, align_v, b->p, b->len};
    return 0;
}

static int s_w_check(const mesh_gguf_writer_t *w, const char *key) {
    if (!w || !key || !*key)
        return MESH_EINVAL;
    if (w->state != S_W_BUILD)
        return MESH_ESTATE;
    return 0;
}

static int s_w_scalar(mesh_gguf_writer_t *w, const char *key, mesh_gguf_type_t t, const void *v) {
    int rc = s_w_check(w, key);
    if (rc)
        return rc;
    s_buf_t b = {0};
    s_entry_begin(&b, key, t);
    s_put(&b, v, s_type_size[t]);
    uint32_t av = 0;
    if (t == MESH_GGUF_UINT32)
        memcpy(&av, v, 4);
    return s_w_store(w, key, t, 0, av, &b);
}

int mesh_gguf_writer_set_u32(mesh_gguf_writer_t *w, const char *key, uint32_t v) {
    return s_w_scalar(w, key, MESH_GGUF_UINT32, &v);
}
int mesh_gguf_writer_set_i32(mesh_gguf_writer_t *w, const char *key, int32_t v) {
    return s_w_scalar(w, key, MESH_GGUF_INT32, &v);
}
int mesh_gguf_writer_set_u64(mesh_gguf_writer_t *w, const char *key, uint64_t v) {
    return s_w_scalar(w, key, MESH_GGUF_UINT64, &v);
}
int mesh_gguf_writer_set_f32(mesh_gguf_writer_t *w, const char *key, float v) {
    return s_w_scalar(w, key, MESH_GGUF_FLOAT32, &v);
}
int mesh_gguf_writer_set_bool(mesh_gguf_writer_t *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    return s_w_scalar(w, key, MESH_GGUF_BOOL, &b);
}

int mesh_gguf_writer_set_str(mesh_gguf_writer_t *w, const char *key, const char *v) {
    int rc = s_w_check(w, key);
    if (rc)
        return rc;
    if (!v)
        return MESH_EINVAL;
    s_buf_t b = {0};
    s_entry_begin(&b, key, MESH_GGUF_STRING);
    s_put_str(&b, v, strlen(v));
    return s_w_store(w, key, MESH_GGUF_STRING, 0, 0, &b);
}

int mesh_gguf_writer_set_arr(mesh_gguf_writer_t *w, const char *key, mesh_gguf_type_t elem_type,
                             const void *data, uint64_t n) {
    int rc = s_w_check(w, key);
    if (rc)
        return rc;
    if ((unsigned)elem_type >= MESH_GGUF_TYPE_COUNT || elem_type == MESH_GGUF_STRING ||
        elem_type == MESH_GGUF_ARRAY || (n && !data))
        return MESH_EINVAL;
    uint64_t nb;
    if (__builtin_mul_overflow(n, (uint64_t)s_type_size[elem_type], &nb) || nb > SIZE_MAX / 2)
        return MESH_EOVERFLOW;
    s_buf_t b = {0};
    s_entry_begin(&b, key, MESH_GGUF_ARRAY);
    s_put_u32(&b, (uint32_t)elem_type);
    s_put_u64(&b, n);
    s_put(&b, data, (size_t)nb);
    return s_w_store(w, key, MESH_GGUF_ARRAY, elem_type, 0, &b);
}

int mesh_gguf_writer_set_arr_str(mesh_gguf_writer_t *w, const char *key,
                                 const char *const *strs, uint64_t n) {
    int rc = s_w_check(w, key);
    if (rc)
        return rc;
    if (n && !strs)
        return MESH_EINVAL;
    s_buf_t b = {0};
    s_entry_begin(&b, key, MESH_GGUF_ARRAY);
    s_put_u32(&b, MESH_GGUF_STRING);
    s_put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(b.p);
            return MESH_EINVAL;
        }
        s_put_str(&b, strs[i], strlen(strs[i]));
    }
    return s_w_store(w, key, MESH_GGUF_ARRAY, MESH_GGUF_STRING, 0, &b);
}

int mesh_gguf_writer_copy_kv(mesh_gguf_writer_t *w, const mesh_gguf_t *src, int64_t i) {
    if (!src || i < 0 || i >= src->n_kv)
        return MESH_EINVAL;
    const s_kv_t *kv = &src->kv[i];
    int rc = s_w_check(w, kv->name);
    if (rc)
        return rc;
    if (kv->raw_len > SIZE_MAX / 2)
        return MESH_EOVERFLOW;
    s_buf_t b = {0};
    s_entry_begin(&b, kv->name, kv->type);
    s_put(&b, kv->raw, (size_t)kv->raw_len); // validated bytes, nested arrays included
    uint32_t av = kv->type == MESH_GGUF_UINT32 ? (uint32_t)kv->num.u : 0;
    return s_w_store(w, kv->name, kv->type, kv->elem_type, av, &b);
}

int64_t mesh_gguf_writer_add_tensor(mesh_gguf_writer_t *w, const char *name, uint32_t type,
                                    uint32_t n_dims, const uint64_t *ne) {
    if (!w || !name || !ne)
        return MESH_EINVAL;
    if (w->state != S_W_BUILD)
        return MESH_ESTATE;
    size_t nl = strlen(name);
    if (!nl || nl >= S_MAX_NAME || n_dims < 1 || n_dims > MESH_GGUF_MAX_DIMS) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: tensor '%.80s': empty or too long a name (limit %d), or %u dimensions",
                 name, S_MAX_NAME - 1, n_dims);
        return MESH_EINVAL;
    }
    const mesh_qtype_traits_t *tr = mesh_qtype_traits(type);
    if (!tr) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: tensor '%s' has unknown type %u", name, type);
        return MESH_EINVAL;
    }
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX ||
            __builtin_mul_overflow(n_el, ne[d], &n_el) || n_el > (uint64_t)INT64_MAX)
            return MESH_EOVERFLOW;
    if (ne[0] % tr->blck) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: tensor '%s' row of %llu is not a multiple of %u",
                 name, (unsigned long long)ne[0], tr->blck);
        return MESH_EINVAL;
    }
    uint64_t nb = (ne[0] / tr->blck) * tr->size;
    if (__builtin_mul_overflow(nb, n_el / ne[0], &nb))
        return MESH_EOVERFLOW;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) {
            mesh_log(MESH_LOG_ERROR, "gguf writer: duplicate tensor '%s'", name);
            return MESH_EEXISTS;
        }
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        s_wtensor_t *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return MESH_ENOMEM;
        w->t = t;
        w->cap_t = cap;
    }
    s_wtensor_t *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return MESH_ENOMEM;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < MESH_GGUF_MAX_DIMS; d++)
        t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    t->n_bytes = nb;
    return (int64_t)w->n_t++;
}

static int s_w_write(mesh_gguf_writer_t *w, const void *d, size_t n) {
    if (n && fwrite(d, 1, n, w->f) != n) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: write '%s': %s", w->tmp, strerror(errno));
        s_w_abort(w);
        return MESH_EIO;
    }
    return 0;
}

static int s_w_pad(mesh_gguf_writer_t *w, uint64_t pos) {
    static const unsigned char zeros[256];
    uint64_t pad = (w->alignment - pos % w->alignment) % w->alignment;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        int rc = s_w_write(w, zeros, k);
        if (rc)
            return rc;
        pad -= k;
    }
    return 0;
}

int mesh_gguf_writer_begin(mesh_gguf_writer_t *w, const char *path) {
    if (!w || !path || !*path)
        return MESH_EINVAL;
    if (w->state != S_W_BUILD)
        return MESH_ESTATE;
    w->alignment = MESH_GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment"))
            w->alignment = w->kv[i].alignment_value; // checked when set
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded = (w->t[i].n_bytes + w->alignment - 1) / w->alignment * w->alignment;
        if (__builtin_add_overflow(off, padded, &off))
            return MESH_EOVERFLOW;
    }
    size_t pl = strlen(path);
    free(w->path); // from an earlier begin that failed to create the file
    free(w->tmp);
    w->path = strdup(path);
    w->tmp = malloc(pl + 5);
    if (!w->path || !w->tmp)
        return MESH_ENOMEM;
    memcpy(w->tmp, path, pl);
    memcpy(w->tmp + pl, ".tmp", 5);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        mesh_log(MESH_LOG_ERROR, "gguf writer: cannot create '%s': %s", w->tmp, strerror(e));
        free(w->tmp);
        w->tmp = NULL; // nothing to remove
        return e == EACCES ? MESH_EPERM : e == ENOENT ? MESH_ENOENT : MESH_EIO;
    }
    w->state = S_W_DATA;
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);

    s_buf_t h = {0};
    s_put_u32(&h, S_MAGIC);
    s_put_u32(&h, 3);
    s_put_u64(&h, w->n_t);
    s_put_u64(&h, w->n_kv);
    int rc = s_w_write(w, h.p, h.len);
    free(h.p);
    if (h.oom) {
        s_w_abort(w);
        return MESH_ENOMEM;
    }
    if (rc)
        return rc;
    uint64_t pos = 24;
    for (size_t i = 0; i < w->n_kv; i++) {
        if ((rc = s_w_write(w, w->kv[i].blob, w->kv[i].len)))
            return rc;
        pos += w->kv[i].len;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        s_buf_t b = {0};
        const s_wtensor_t *t = &w->t[i];
        s_put_str(&b, t->name, strlen(t->name));
        s_put_u32(&b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            s_put_u64(&b, t->ne[d]);
        s_put_u32(&b, t->type);
        s_put_u64(&b, t->offset);
        if (b.oom) {
            free(b.p);
            s_w_abort(w);
            return MESH_ENOMEM;
        }
        rc = s_w_write(w, b.p, b.len);
        pos += b.len;
        free(b.p);
        if (rc)
            return rc;
    }
    w->next = 0;
    w->written = 0;
    return s_w_pad(w, pos);
}

int mesh_gguf_writer_write_data(mesh_gguf_writer_t *w, int64_t index, const void *data,
                                uint64_t n_bytes) {
    if (!w || (!data && n_bytes))
        return MESH_EINVAL;
    if (w->state != S_W_DATA || index != w->next || (size_t)index >= w->n_t)
        return MESH_ESTATE;
    const s_wtensor_t *t = &w->t[index];
    if (n_bytes != t->n_bytes) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: tensor '%s' needs %llu bytes, got %llu", t->name,
                 (unsigned long long)t->n_bytes, (unsigned long long)n_bytes);
        return MESH_EINVAL;
    }
    const unsigned char *p = data;
    uint64_t left = n_bytes;
    while (left) { // size_t may be narrower than uint64_t on 32-bit hosts
        size_t k = left > (1u << 30) ? (1u << 30) : (size_t)left;
        int rc = s_w_write(w, p, k);
        if (rc)
            return rc;
        p += k;
        left -= k;
    }
    w->written = t->offset + n_bytes;
    w->next++;
    // llama.cpp's writer pads after every tensor, the last one included.
    return s_w_pad(w, w->written);
}

int mesh_gguf_writer_finish(mesh_gguf_writer_t *w) {
    if (!w)
        return MESH_EINVAL;
    if (w->state != S_W_DATA)
        return MESH_ESTATE;
    if ((size_t)w->next != w->n_t) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: finish after %lld of %zu tensors",
                 (long long)w->next, w->n_t);
        return MESH_ESTATE;
    }
    int rc = 0;
    if (fflush(w->f) || fsync(fileno(w->f))) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: flush '%s': %s", w->tmp, strerror(errno));
        rc = MESH_EIO;
    }
    if (fclose(w->f) && !rc) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: close '%s': %s", w->tmp, strerror(errno));
        rc = MESH_EIO;
    }
    w->f = NULL;
    if (!rc && rename(w->tmp, w->path)) {
        mesh_log(MESH_LOG_ERROR, "gguf writer: rename '%s': %s", w->tmp, strerror(errno));
        rc = MESH_EIO;
    }
    if (rc) {
        s_w_abort(w);
        return rc;
    }
    // Make the rename itself durable: fsync the directory (best effort).
    char *slash = strrchr(w->path, '/');
    char *dir = slash ? strndup(w->path, (size_t)(slash - w->path) + 1) : strdup(".");
    if (dir) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    w->state = S_W_DONE;
    return 0;
}
