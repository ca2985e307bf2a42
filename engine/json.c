// SPDX-License-Identifier: MIT
// Strict JSON parser, tree, builders and a Python-compatible writer (see json.h).
//
// Every node is its own malloc: simple and fast enough for requests and chat
// contexts (a 1 MB request is ~50k nodes). The parser is recursive with an
// explicit depth limit, so hostile nesting costs an error, not the stack.
#include "json.h"

#include "mesh_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mesh_json {
    mesh_json_type_t type;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            char *s;  // NUL-terminated copy
            size_t n; // bytes, without the NUL
        } str;
        struct {
            mesh_json_t **items; // [n] values
            char **keys;         // [n] keys (objects only), NUL-terminated
            size_t *key_lens;    // [n] key lengths (objects only)
            size_t n, cap;
        } c;
    } u;
};

// ---------------------------------------------------------------- tree

static mesh_json_t *s_node(mesh_json_type_t t) {
    mesh_json_t *v = calloc(1, sizeof *v);
    if (v)
        v->type = t;
    return v;
}

mesh_json_t *mesh_json_new_null(void) { return s_node(MESH_JSON_NULL); }
mesh_json_t *mesh_json_new_bool(bool b) {
    mesh_json_t *v = s_node(MESH_JSON_BOOL);
    if (v)
        v->u.b = b;
    return v;
}
mesh_json_t *mesh_json_new_int(int64_t i) {
    mesh_json_t *v = s_node(MESH_JSON_INT);
    if (v)
        v->u.i = i;
    return v;
}
mesh_json_t *mesh_json_new_double(double d) {
    mesh_json_t *v = s_node(MESH_JSON_DOUBLE);
    if (v)
        v->u.d = d;
    return v;
}
mesh_json_t *mesh_json_new_string(const char *s, size_t len) {
    mesh_json_t *v = s_node(MESH_JSON_STRING);
    if (!v)
        return NULL;
    v->u.str.s = malloc(len + 1);
    if (!v->u.str.s) {
        free(v);
        return NULL;
    }
    if (len)
        memcpy(v->u.str.s, s, len);
    v->u.str.s[len] = 0;
    v->u.str.n = len;
    return v;
}
mesh_json_t *mesh_json_new_cstr(const char *s) { return mesh_json_new_string(s, strlen(s)); }
mesh_json_t *mesh_json_new_array(void) { return s_node(MESH_JSON_ARRAY); }
mesh_json_t *mesh_json_new_object(void) { return s_node(MESH_JSON_OBJECT); }

static void s_free(mesh_json_t *v) {
    if (!v)
        return;
    if (v->type == MESH_JSON_STRING) {
        free(v->u.str.s);
    } else if (v->type == MESH_JSON_ARRAY || v->type == MESH_JSON_OBJECT) {
        for (size_t i = 0; i < v->u.c.n; i++) {
            s_free(v->u.c.items[i]);
            if (v->u.c.keys)
                free(v->u.c.keys[i]);
        }
        free(v->u.c.items);
        free(v->u.c.keys);
        free(v->u.c.key_lens);
    }
    free(v);
}

void mesh_json_destroy(mesh_json_t **v) {
    if (!v)
        return;
    s_free(*v);
    *v = NULL;
}

static int s_grow(mesh_json_t *c) {
    if (c->u.c.n < c->u.c.cap)
        return 0;
    size_t cap = c->u.c.cap ? c->u.c.cap * 2 : 4;
    mesh_json_t **it = realloc(c->u.c.items, cap * sizeof *it);
    if (!it)
        return MESH_ENOMEM;
    c->u.c.items = it;
    if (c->type == MESH_JSON_OBJECT) {
        char **k = realloc(c->u.c.keys, cap * sizeof *k);
        if (!k)
            return MESH_ENOMEM;
        c->u.c.keys = k;
        size_t *kl = realloc(c->u.c.key_lens, cap * sizeof *kl);
        if (!kl)
            return MESH_ENOMEM;
        c->u.c.key_lens = kl;
    }
    c->u.c.cap = cap;
    return 0;
}

int mesh_json_append(mesh_json_t *arr, mesh_json_t *item) {
    if (!arr || arr->type != MESH_JSON_ARRAY || !item) {
        s_free(item);
        return MESH_EINVAL;
    }
    if (s_grow(arr)) {
        s_free(item);
        return MESH_ENOMEM;
    }
    arr->u.c.items[arr->u.c.n++] = item;
    return 0;
}

// Appends without looking for an existing key (the parser checks duplicates
// once per object). Takes ownership of key (malloc'd) and val.
static int s_obj_push(mesh_json_t *obj, char *key, size_t key_len, mesh_json_t *val) {
    if (s_grow(obj)) {
        free(key);
        s_free(val);
        return MESH_ENOMEM;
    }
    obj->u.c.keys[obj->u.c.n] = key;
    obj->u.c.key_lens[obj->u.c.n] = key_len;
    obj->u.c.items[obj->u.c.n++] = val;
    return 0;
}

int mesh_json_set(mesh_json_t *obj, const char *key, size_t key_len, mesh_json_t *val) {
    if (!obj || obj->type != MESH_JSON_OBJECT || !val || !key) {
        s_free(val);
        return MESH_EINVAL;
    }
    for (size_t i = 0; i < obj->u.c.n; i++) {
        if (obj->u.c.key_lens[i] == key_len && !memcmp(obj->u.c.keys[i], key, key_len)) {
            s_free(obj->u.c.items[i]);
            obj->u.c.items[i] = val;
            return 0;
        }
    }
    char *k = malloc(key_len + 1);
    if (!k) {
        s_free(val);
        return MESH_ENOMEM;
    }
    memcpy(k, key, key_len);
    k[key_len] = 0;
    return s_obj_push(obj, k, key_len, val);
}

mesh_json_t *mesh_json_clone(const mesh_json_t *v) {
    if (!v)
        return NULL;
    switch (v->type) {
    case MESH_JSON_NULL: return mesh_json_new_null();
    case MESH_JSON_BOOL: return mesh_json_new_bool(v->u.b);
    case MESH_JSON_INT: return mesh_json_new_int(v->u.i);
    case MESH_JSON_DOUBLE: return mesh_json_new_double(v->u.d);
    case MESH_JSON_STRING: return mesh_json_new_string(v->u.str.s, v->u.str.n);
    case MESH_JSON_ARRAY:
    case MESH_JSON_OBJECT: {
        mesh_json_t *c = s_node(v->type);
        if (!c)
            return NULL;
        for (size_t i = 0; i < v->u.c.n; i++) {
            mesh_json_t *e = mesh_json_clone(v->u.c.items[i]);
            int rc = !e ? MESH_ENOMEM
                        : v->type == MESH_JSON_ARRAY
                              ? mesh_json_append(c, e)
                              : mesh_json_set(c, v->u.c.keys[i], v->u.c.key_lens[i], e);
            if (rc) {
                s_free(c);
                return NULL;
            }
        }
        return c;
    }
    default: return NULL;
    }
}

// ---------------------------------------------------------------- accessors

mesh_json_type_t mesh_json_type(const mesh_json_t *v) { return v ? v->type : MESH_JSON_NULL; }

const char *mesh_json_type_name(mesh_json_type_t t) {
    static const char *names[MESH_JSON_TYPE_COUNT] = {"null",   "bool",   "integer", "number",
                                                      "string", "array", "object"};
    return (unsigned)t < MESH_JSON_TYPE_COUNT ? names[t] : "?";
}

bool mesh_json_bool(const mesh_json_t *v) { return v && v->type == MESH_JSON_BOOL && v->u.b; }

int64_t mesh_json_int(const mesh_json_t *v) {
    if (!v)
        return 0;
    if (v->type == MESH_JSON_INT)
        return v->u.i;
    if (v->type == MESH_JSON_DOUBLE && isfinite(v->u.d) && fabs(v->u.d) < 9.2e18)
        return (int64_t)v->u.d;
    return 0;
}

double mesh_json_number(const mesh_json_t *v) {
    if (!v)
        return 0;
    if (v->type == MESH_JSON_INT)
        return (double)v->u.i;
    if (v->type == MESH_JSON_DOUBLE)
        return v->u.d;
    return 0;
}

const char *mesh_json_str(const mesh_json_t *v, size_t *len) {
    if (!v || v->type != MESH_JSON_STRING)
        return NULL;
    if (len)
        *len = v->u.str.n;
    return v->u.str.s;
}

size_t mesh_json_len(const mesh_json_t *v) {
    return v && (v->type == MESH_JSON_ARRAY || v->type == MESH_JSON_OBJECT) ? v->u.c.n : 0;
}

mesh_json_t *mesh_json_at(const mesh_json_t *v, size_t i) {
    return i < mesh_json_len(v) ? v->u.c.items[i] : NULL;
}

const char *mesh_json_key_at(const mesh_json_t *v, size_t i, size_t *len) {
    if (!v || v->type != MESH_JSON_OBJECT || i >= v->u.c.n)
        return NULL;
    if (len)
        *len = v->u.c.key_lens[i];
    return v->u.c.keys[i];
}

mesh_json_t *mesh_json_get_n(const mesh_json_t *obj, const char *key, size_t key_len) {
    if (!obj || obj->type != MESH_JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < obj->u.c.n; i++)
        if (obj->u.c.key_lens[i] == key_len && !memcmp(obj->u.c.keys[i], key, key_len))
            return obj->u.c.items[i];
    return NULL;
}

mesh_json_t *mesh_json_get(const mesh_json_t *obj, const char *key) {
    return key ? mesh_json_get_n(obj, key, strlen(key)) : NULL;
}

bool mesh_json_equal(const mesh_json_t *a, const mesh_json_t *b) {
    mesh_json_type_t ta = mesh_json_type(a), tb = mesh_json_type(b);
    bool na = ta == MESH_JSON_INT || ta == MESH_JSON_DOUBLE;
    bool nb = tb == MESH_JSON_INT || tb == MESH_JSON_DOUBLE;
    if (na && nb) {
        if (ta == MESH_JSON_INT && tb == MESH_JSON_INT)
            return a->u.i == b->u.i;
        return mesh_json_number(a) == mesh_json_number(b);
    }
    if (ta != tb)
        return false;
    switch (ta) {
    case MESH_JSON_NULL: return true;
    case MESH_JSON_BOOL: return a->u.b == b->u.b;
    case MESH_JSON_STRING:
        return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
    case MESH_JSON_ARRAY:
        if (a->u.c.n != b->u.c.n)
            return false;
        for (size_t i = 0; i < a->u.c.n; i++)
            if (!mesh_json_equal(a->u.c.items[i], b->u.c.items[i]))
                return false;
        return true;
    case MESH_JSON_OBJECT:
        if (a->u.c.n != b->u.c.n)
            return false;
        for (size_t i = 0; i < a->u.c.n; i++) {
            mesh_json_t *o = mesh_json_get_n(b, a->u.c.keys[i], a->u.c.key_lens[i]);
            if (!o || !mesh_json_equal(a->u.c.items[i], o))
                return false;
        }
        return true;
    default: return false;
    }
}

// ---------------------------------------------------------------- UTF-8

// Decodes one UTF-8 sequence at s[0..len). Returns its length (1..4) and the
// code point in *cp, or 0 if the bytes are not valid UTF-8 (overlong forms,
// surrogates and values above U+10FFFF are invalid).
static size_t s_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    if (!len)
        return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

bool mesh_json_utf8_valid(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = s_utf8_decode(p + i, len - i, &cp);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

// ---------------------------------------------------------------- parser

typedef struct {
    const char *p;   // input
    size_t len;      // input bytes
    size_t pos;      // current offset
    int depth;       // current nesting
    int max_depth;   // limit
    int rc;          // first error code
    char *err;       // caller's buffer
    size_t err_len;  // its size
} s_parser_t;

static int s_fail(s_parser_t *ps, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(s_parser_t *ps, int rc, const char *fmt, ...) {
    if (ps->rc)
        return ps->rc;
    ps->rc = rc;
    if (ps->err && ps->err_len) {
        int k = snprintf(ps->err, ps->err_len, "json: offset %zu: ", ps->pos);
        if (k >= 0 && (size_t)k < ps->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + k, ps->err_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static void s_ws(s_parser_t *ps) {
    while (ps->pos < ps->len) {
        char c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

// A growable byte buffer used by the parser for strings and by the writer.
typedef struct {
    char *b;
    size_t n, cap;
    bool oom;
} s_buf_t;

static void s_put(s_buf_t *b, const void *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *nb = realloc(b->b, cap);
        if (!nb) {
            b->oom = true;
            return;
        }
        b->b = nb;
        b->cap = cap;
    }
    memcpy(b->b + b->n, s, n);
    b->n += n;
    b->b[b->n] = 0;
}
static void s_putc(s_buf_t *b, char c) { s_put(b, &c, 1); }

static void s_put_utf8(s_buf_t *b, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6)), t[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12)), t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18)), t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), t[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    s_put(b, t, n);
}

static int s_hex4(s_parser_t *ps, uint32_t *out) {
    if (ps->len - ps->pos < 4)
        return s_fail(ps, MESH_EFORMAT, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = ps->p[ps->pos + (size_t)i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return s_fail(ps, MESH_EFORMAT, "bad hex digit in \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    ps->pos += 4;
    *out = v;
    return 0;
}

// Parses a string at ps->pos (on the opening quote) into a new malloc'd buffer.
static int s_string(s_parser_t *ps, char **out, size_t *out_len) {
    s_buf_t b = {0};
    ps->pos++; // opening quote
    for (;;) {
        if (ps->pos >= ps->len) {
            free(b.b);
            return s_fail(ps, MESH_EFORMAT, "unterminated string");
        }
        unsigned char c = (unsigned char)ps->p[ps->pos];
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c < 0x20) {
            free(b.b);
            return s_fail(ps, MESH_EFORMAT, "control character 0x%02x in string", c);
        }
        if (c == '\\') {
            if (ps->pos + 1 >= ps->len) {
                free(b.b);
                return s_fail(ps, MESH_EFORMAT, "unterminated string");
            }
            char e = ps->p[ps->pos + 1];
            ps->pos += 2;
            char lit = 0;
            switch (e) {
            case '"': lit = '"'; break;
            case '\\': lit = '\\'; break;
            case '/': lit = '/'; break;
            case 'b': lit = '\b'; break;
            case 'f': lit = '\f'; break;
            case 'n': lit = '\n'; break;
            case 'r': lit = '\r'; break;
            case 't': lit = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (s_hex4(ps, &cp)) {
                    free(b.b);
                    return ps->rc;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    free(b.b);
                    ps->pos -= 6;
                    return s_fail(ps, MESH_EFORMAT, "lone low surrogate \\u%04x", cp);
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (ps->len - ps->pos < 6 || ps->p[ps->pos] != '\\' ||
                        ps->p[ps->pos + 1] != 'u') {
                        free(b.b);
                        return s_fail(ps, MESH_EFORMAT, "lone high surrogate \\u%04x", cp);
                    }
                    ps->pos += 2;
                    if (s_hex4(ps, &lo)) {
                        free(b.b);
                        return ps->rc;
                    }
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        free(b.b);
                        return s_fail(ps, MESH_EFORMAT, "high surrogate not followed by a low one");
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                s_put_utf8(&b, cp);
                continue;
            }
            default:
                free(b.b);
                ps->pos -= 2;
                return s_fail(ps, MESH_EFORMAT, "bad escape '\\%c'",
                              (e >= 0x20 && e < 0x7f) ? e : '?');
            }
            s_putc(&b, lit);
            continue;
        }
        // Copy a run of plain bytes at once, validating UTF-8.
        size_t start = ps->pos;
        while (ps->pos < ps->len) {
            unsigned char d = (unsigned char)ps->p[ps->pos];
            if (d == '"' || d == '\\' || d < 0x20)
                break;
            if (d < 0x80) {
                ps->pos++;
                continue;
            }
            uint32_t cp;
            size_t n = s_utf8_decode((const unsigned char *)ps->p + ps->pos, ps->len - ps->pos, &cp);
            if (!n) {
                free(b.b);
                return s_fail(ps, MESH_EFORMAT, "invalid UTF-8 in string");
            }
            ps->pos += n;
        }
        s_put(&b, ps->p + start, ps->pos - start);
    }
    if (!b.b)
        s_put(&b, "", 0);
    if (b.oom) {
        free(b.b);
        return s_fail(ps, MESH_ENOMEM, "out of memory");
    }
    *out = b.b;
    *out_len = b.n;
    return 0;
}

static mesh_json_t *s_number(s_parser_t *ps) {
    size_t start = ps->pos, i = ps->pos;
    const char *p = ps->p;
    bool is_int = true;
    if (i < ps->len && p[i] == '-')
        i++;
    if (i >= ps->len || p[i] < '0' || p[i] > '9') {
        s_fail(ps, MESH_EFORMAT, "bad number");
        return NULL;
    }
    if (p[i] == '0') {
        i++;
        if (i < ps->len && p[i] >= '0' && p[i] <= '9') {
            s_fail(ps, MESH_EFORMAT, "leading zero in number");
            return NULL;
        }
    } else {
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < ps->len && p[i] == '.') {
        is_int = false;
        i++;
        if (i >= ps->len || p[i] < '0' || p[i] > '9') {
            ps->pos = i;
            s_fail(ps, MESH_EFORMAT, "digit expected after '.'");
            return NULL;
        }
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < ps->len && (p[i] == 'e' || p[i] == 'E')) {
        is_int = false;
        i++;
        if (i < ps->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= ps->len || p[i] < '0' || p[i] > '9') {
            ps->pos = i;
            s_fail(ps, MESH_EFORMAT, "digit expected in exponent");
            return NULL;
        }
        while (i < ps->len && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    size_t n = i - start;
    if (is_int) {
        // Exact int64 or an error: never round an integer silently.
        bool neg = p[start] == '-';
        uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t k = start + neg; k < i; k++) {
            unsigned d = (unsigned)(p[k] - '0');
            if (v > (lim - d) / 10) {
                s_fail(ps, MESH_ERANGE, "integer does not fit in 64 bits");
                return NULL;
            }
            v = v * 10 + d;
        }
        ps->pos = i;
        int64_t iv = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
        mesh_json_t *r = mesh_json_new_int(iv);
        if (!r)
            s_fail(ps, MESH_ENOMEM, "out of memory");
        return r;
    }
    char small[64], *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp) {
        s_fail(ps, MESH_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(tmp, p + start, n);
    tmp[n] = 0;
    double d = strtod(tmp, NULL);
    if (tmp != small)
        free(tmp);
    if (!isfinite(d)) {
        s_fail(ps, MESH_ERANGE, "number out of range");
        return NULL;
    }
    ps->pos = i;
    mesh_json_t *r = mesh_json_new_double(d);
    if (!r)
        s_fail(ps, MESH_ENOMEM, "out of memory");
    return r;
}

static mesh_json_t *s_value(s_parser_t *ps);

typedef struct {
    size_t idx;
    const char *k;
    size_t n;
} s_keyref_t;

static int s_keyref_cmp(const void *a, const void *b) {
    const s_keyref_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->k, y->k, m);
    if (c)
        return c;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

// Python semantics for duplicate keys: the last value wins, kept at the
// position of the first occurrence. O(n log n) once per object.
static int s_dedup(mesh_json_t *o) {
    size_t n = o->u.c.n;
    if (n < 2)
        return 0;
    if (n <= 8) { // small objects: quadratic scan, no allocation
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            for (size_t j = i + 1; j < n && !dup; j++)
                dup = o->u.c.key_lens[i] == o->u.c.key_lens[j] &&
                      !memcmp(o->u.c.keys[i], o->u.c.keys[j], o->u.c.key_lens[i]);
        if (!dup)
            return 0;
    }
    s_keyref_t *r = malloc(n * sizeof *r);
    if (!r)
        return MESH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r[i] = (s_keyref_t){i, o->u.c.keys[i], o->u.c.key_lens[i]};
    qsort(r, n, sizeof *r, s_keyref_cmp);
    bool any = false;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && r[j].n == r[i].n && !memcmp(r[j].k, r[i].k, r[i].n))
            j++;
        if (j - i > 1) {
            any = true;
            size_t first = r[i].idx, last = r[j - 1].idx;
            mesh_json_t *tmp = o->u.c.items[first];
            o->u.c.items[first] = o->u.c.items[last];
            o->u.c.items[last] = tmp;
            for (size_t k = i + 1; k < j; k++) { // drop the later ones
                size_t x = r[k].idx;
                s_free(o->u.c.items[x]);
                free(o->u.c.keys[x]);
                o->u.c.items[x] = NULL;
                o->u.c.keys[x] = NULL;
            }
        }
        i = j;
    }
    free(r);
    if (any) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (!o->u.c.keys[i])
                continue;
            o->u.c.items[w] = o->u.c.items[i];
            o->u.c.keys[w] = o->u.c.keys[i];
            o->u.c.key_lens[w] = o->u.c.key_lens[i];
            w++;
        }
        o->u.c.n = w;
    }
    return 0;
}

static mesh_json_t *s_container(s_parser_t *ps, bool is_obj) {
    if (++ps->depth > ps->max_depth) {
        s_fail(ps, MESH_ERANGE, "nesting deeper than %d", ps->max_depth);
        return NULL;
    }
    mesh_json_t *c = is_obj ? mesh_json_new_object() : mesh_json_new_array();
    if (!c) {
        s_fail(ps, MESH_ENOMEM, "out of memory");
        return NULL;
    }
    char close = is_obj ? '}' : ']';
    ps->pos++; // '[' or '{'
    s_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == close) {
        ps->pos++;
        ps->depth--;
        return c;
    }
    for (;;) {
        s_ws(ps);
        char *key = NULL;
        size_t key_len = 0;
        if (is_obj) {
            if (ps->pos >= ps->len || ps->p[ps->pos] != '"') {
                s_fail(ps, MESH_EFORMAT, "object key (a string) expected");
                goto err;
            }
            if (s_string(ps, &key, &key_len))
                goto err;
            s_ws(ps);
            if (ps->pos >= ps->len || ps->p[ps->pos] != ':') {
                free(key);
                s_fail(ps, MESH_EFORMAT, "':' expected after object key");
                goto err;
            }
            ps->pos++;
            s_ws(ps);
        }
        mesh_json_t *v = s_value(ps);
        if (!v) {
            free(key);
            goto err;
        }
        int rc = is_obj ? s_obj_push(c, key, key_len, v) : mesh_json_append(c, v);
        if (rc) {
            s_fail(ps, rc, "out of memory");
            goto err;
        }
        s_ws(ps);
        if (ps->pos >= ps->len) {
            s_fail(ps, MESH_EFORMAT, "unterminated %s", is_obj ? "object" : "array");
            goto err;
        }
        char ch = ps->p[ps->pos];
        if (ch == ',') {
            ps->pos++;
            s_ws(ps);
            if (ps->pos < ps->len && ps->p[ps->pos] == close) {
                s_fail(ps, MESH_EFORMAT, "trailing comma");
                goto err;
            }
            continue;
        }
        if (ch == close) {
            ps->pos++;
            break;
        }
        s_fail(ps, MESH_EFORMAT, "',' or '%c' expected", close);
        goto err;
    }
    if (is_obj && s_dedup(c)) {
        s_fail(ps, MESH_ENOMEM, "out of memory");
        goto err;
    }
    ps->depth--;
    return c;
err:
    s_free(c);
    return NULL;
}

static bool s_lit(s_parser_t *ps, const char *w) {
    size_t n = strlen(w);
    if (ps->len - ps->pos >= n && !memcmp(ps->p + ps->pos, w, n)) {
        ps->pos += n;
        return true;
    }
    return false;
}

static mesh_json_t *s_value(s_parser_t *ps) {
    if (ps->pos >= ps->len) {
        s_fail(ps, MESH_EFORMAT, "value expected, found end of input");
        return NULL;
    }
    char c = ps->p[ps->pos];
    mesh_json_t *v = NULL;
    switch (c) {
    case '{': return s_container(ps, true);
    case '[': return s_container(ps, false);
    case '"': {
        char *s;
        size_t n;
        if (s_string(ps, &s, &n))
            return NULL;
        v = s_node(MESH_JSON_STRING);
        if (!v) {
            free(s);
            s_fail(ps, MESH_ENOMEM, "out of memory");
            return NULL;
        }
        v->u.str.s = s;
        v->u.str.n = n;
        return v;
    }
    case 't':
        if (s_lit(ps, "true"))
            v = mesh_json_new_bool(true);
        break;
    case 'f':
        if (s_lit(ps, "false"))
            v = mesh_json_new_bool(false);
        break;
    case 'n':
        if (s_lit(ps, "null"))
            v = mesh_json_new_null();
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return s_number(ps);
        if (c >= 0x20 && c < 0x7f)
            s_fail(ps, MESH_EFORMAT, "unexpected character '%c'", c);
        else
            s_fail(ps, MESH_EFORMAT, "unexpected byte 0x%02x", (unsigned char)c);
        return NULL;
    }
    if (!v)
        s_fail(ps, MESH_EFORMAT, "unknown literal (expected true, false or null)");
    return v;
}

int mesh_json_parse_opts(const char *text, size_t len, const mesh_json_parse_opts_t *opts,
                         mesh_json_t **out, char *err, size_t err_len) {
    if (err && err_len)
        err[0] = 0;
    if (!out)
        return MESH_EINVAL;
    *out = NULL;
    s_parser_t ps = {.p = text, .len = len, .err = err, .err_len = err_len};
    ps.max_depth = opts && opts->max_depth > 0 ? opts->max_depth : 128;
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : (size_t)64 << 20;
    if (!text && len)
        return s_fail(&ps, MESH_EINVAL, "no input");
    if (len > max_bytes)
        return s_fail(&ps, MESH_ERANGE, "input of %zu bytes exceeds the limit of %zu", len,
                      max_bytes);
    s_ws(&ps);
    mesh_json_t *v = s_value(&ps);
    if (!v)
        return ps.rc ? ps.rc : MESH_EFORMAT;
    s_ws(&ps);
    if (ps.pos != ps.len) {
        s_free(v);
        return s_fail(&ps, MESH_EFORMAT, "unexpected data after the value");
    }
    *out = v;
    return 0;
}

int mesh_json_parse(const char *text, size_t len, mesh_json_t **out, char *err,
                    size_t err_len) {
    return mesh_json_parse_opts(text, len, NULL, out, err, err_len);
}

// ---------------------------------------------------------------- writer

int mesh_json_format_double(double d, char *buf) {
    if (isnan(d))
        return snprintf(buf, 32, "nan");
    if (isinf(d))
        return snprintf(buf, 32, d < 0 ? "-inf" : "inf");
    if (d == 0)
        return snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
    // Shortest round-tripping digits: try 1..17 significant digits.
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    // tmp = [-]D[.DDD]e[+-]XX ; collect the digits and the exponent.
    char digits[24];
    int nd = 0, exp10 = 0;
    bool neg = false;
    const char *p = tmp;
    if (*p == '-')
        neg = true, p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20)
            digits[nd++] = *p;
    if (*p == 'e')
        exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char *o = buf;
    if (neg)
        *o++ = '-';
    if (exp10 >= -5 + 1 && exp10 < 16) { // Python's repr: fixed for 1e-4 <= |d| < 1e16
        if (exp10 < 0) {
            *o++ = '0', *o++ = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = digits[i];
        } else {
            for (int i = 0; i <= exp10; i++)
                *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > exp10 + 1)
                for (int i = exp10 + 1; i < nd; i++)
                    *o++ = digits[i];
            else
                *o++ = '0';
        }
        *o = 0;
        return (int)(o - buf);
    }
    *o++ = digits[0];
    if (nd > 1) {
        *o++ = '.';
        for (int i = 1; i < nd; i++)
            *o++ = digits[i];
    }
    o += snprintf(o, 12, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    return (int)(o - buf);
}

static void s_write_str(s_buf_t *b, const char *s, size_t n, bool ascii) {
    static const char hex[] = "0123456789abcdef";
    s_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n) {
            unsigned char c = (unsigned char)s[run];
            if (c < 0x20 || c == '"' || c == '\\' || (ascii && c >= 0x80))
                break;
            run++;
        }
        s_put(b, s + i, run - i);
        i = run;
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i];
        char e[12];
        switch (c) {
        case '"': s_put(b, "\\\"", 2); i++; continue;
        case '\\': s_put(b, "\\\\", 2); i++; continue;
        case '\n': s_put(b, "\\n", 2); i++; continue;
        case '\r': s_put(b, "\\r", 2); i++; continue;
        case '\t': s_put(b, "\\t", 2); i++; continue;
        case '\b': s_put(b, "\\b", 2); i++; continue;
        case '\f': s_put(b, "\\f", 2); i++; continue;
        default: break;
        }
        uint32_t cp = c;
        size_t len = 1;
        if (c >= 0x80) {
            len = s_utf8_decode((const unsigned char *)s + i, n - i, &cp);
            if (!len) { // invalid byte in a built string: write U+FFFD
                cp = 0xFFFD;
                len = 1;
            }
        }
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000, hi = 0xD800 + (v >> 10), lo = 0xDC00 + (v & 0x3FF);
            e[0] = '\\', e[1] = 'u', e[2] = hex[hi >> 12], e[3] = hex[(hi >> 8) & 15];
            e[4] = hex[(hi >> 4) & 15], e[5] = hex[hi & 15];
            e[6] = '\\', e[7] = 'u', e[8] = hex[lo >> 12], e[9] = hex[(lo >> 8) & 15];
            e[10] = hex[(lo >> 4) & 15], e[11] = hex[lo & 15];
            s_put(b, e, 12);
        } else {
            e[0] = '\\', e[1] = 'u', e[2] = hex[cp >> 12], e[3] = hex[(cp >> 8) & 15];
            e[4] = hex[(cp >> 4) & 15], e[5] = hex[cp & 15];
            s_put(b, e, 6);
        }
        i += len;
    }
    s_putc(b, '"');
}

static void s_newline(s_buf_t *b, int indent, int level) {
    s_putc(b, '\n');
    for (int i = 0; i < indent * level; i++)
        s_putc(b, ' ');
}

typedef struct {
    const char *k;
    size_t n;
    size_t idx;
} s_sortkey_t;

static int s_sortkey_cmp(const void *a, const void *b) {
    const s_sortkey_t *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->k, y->k, m);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void s_write(s_buf_t *b, const mesh_json_t *v, const mesh_json_write_opts_t *o, int level) {
    char num[40];
    switch (mesh_json_type(v)) {
    case MESH_JSON_NULL: s_put(b, "null", 4); return;
    case MESH_JSON_BOOL: v->u.b ? s_put(b, "true", 4) : s_put(b, "false", 5); return;
    case MESH_JSON_INT: s_put(b, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v->u.i)); return;
    case MESH_JSON_DOUBLE:
        if (isnan(v->u.d))
            s_put(b, "NaN", 3);
        else if (isinf(v->u.d))
            v->u.d < 0 ? s_put(b, "-Infinity", 9) : s_put(b, "Infinity", 8);
        else
            s_put(b, num, (size_t)mesh_json_format_double(v->u.d, num));
        return;
    case MESH_JSON_STRING: s_write_str(b, v->u.str.s, v->u.str.n, o->ensure_ascii); return;
    case MESH_JSON_ARRAY:
    case MESH_JSON_OBJECT: {
        bool obj = v->type == MESH_JSON_OBJECT;
        s_putc(b, obj ? '{' : '[');
        if (!v->u.c.n) {
            s_putc(b, obj ? '}' : ']');
            return;
        }
        s_sortkey_t *order = NULL;
        if (obj && o->sort_keys) {
            order = malloc(v->u.c.n * sizeof *order);
            if (!order) {
                b->oom = true;
                return;
            }
            for (size_t i = 0; i < v->u.c.n; i++)
                order[i] = (s_sortkey_t){v->u.c.keys[i], v->u.c.key_lens[i], i};
            qsort(order, v->u.c.n, sizeof *order, s_sortkey_cmp);
        }
        for (size_t j = 0; j < v->u.c.n && !b->oom; j++) {
            size_t i = order ? order[j].idx : j;
            if (j) {
                if (o->indent >= 0 || !o->python_separators)
                    s_putc(b, ',');
                else
                    s_put(b, ", ", 2);
            }
            if (o->indent >= 0)
                s_newline(b, o->indent, level + 1);
            if (obj) {
                s_write_str(b, v->u.c.keys[i], v->u.c.key_lens[i], o->ensure_ascii);
                if (o->python_separators || o->indent >= 0)
                    s_put(b, ": ", 2);
                else
                    s_putc(b, ':');
            }
            s_write(b, v->u.c.items[i], o, level + 1);
        }
        free(order);
        if (o->indent >= 0)
            s_newline(b, o->indent, level);
        s_putc(b, obj ? '}' : ']');
        return;
    }
    default: return;
    }
}

char *mesh_json_write(const mesh_json_t *v, const mesh_json_write_opts_t *opts, size_t *len) {
    mesh_json_write_opts_t o = {.indent = -1};
    if (opts)
        o = *opts;
    s_buf_t b = {0};
    s_write(&b, v, &o, 0);
    if (!b.oom && !b.b)
        s_put(&b, "", 0);
    if (b.oom) {
        free(b.b);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.b;
}
