// SPDX-License-Identifier: MIT
// Chat templates: runtime values and the tree-walking evaluator.
//
// Values are small structs passed by value; strings, lists and dicts live in
// the render's arena and are immutable once built (only namespace() objects
// change, through `set ns.attr`). Scopes follow Jinja2: the top level, one
// fresh scope per loop iteration (so a `set` inside a loop does not leak),
// and one per macro call whose parent is the top level. Dict lookups are
// linear (chat objects have a handful of keys).
#include "chat_template_impl.h"

#include "mesh_err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CALL_DEPTH 64
#define S_MAX_OUTPUT ((size_t)64 << 20) // bytes written by one render, all buffers

typedef mesh_tmpl__val_t val_t;
typedef mesh_tmpl__str_t str_t;
typedef mesh_tmpl__node_t node_t;
typedef mesh_tmpl__rs_t rs_t;
typedef mesh_tmpl__frame_t frame_t;
typedef mesh_tmpl__buf_t buf_t;

static const val_t s_undef = {.kind = TV_UNDEF};

int mesh_tmpl__fail(rs_t *rs, int rc, int line, const char *fmt, ...) {
    if (rs->rc)
        return rs->rc;
    rs->rc = rc;
    if (rs->err && rs->err_len) {
        int k = snprintf(rs->err, rs->err_len, "template line %d: ", line);
        if (k >= 0 && (size_t)k < rs->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(rs->err + k, rs->err_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return rs->rc;
}

static int s_oom(rs_t *rs, int line) {
    if (rs->arena.limit && rs->arena.used > rs->arena.limit)
        return mesh_tmpl__fail(rs, MESH_ERANGE, line, "render used more memory than its limit");
    return mesh_tmpl__fail(rs, MESH_ENOMEM, line, "out of memory");
}

// ------------------------------------------------------------------ values

val_t mesh_tmpl__mkstr(rs_t *rs, const char *p, size_t n) {
    val_t v = {.kind = TV_STR};
    char *c = mesh_tmpl__strdup(&rs->arena, p, n);
    if (!c)
        return s_undef;
    v.u.s = (str_t){c, n};
    return v;
}

val_t mesh_tmpl__mklist(rs_t *rs, size_t n) {
    val_t v = {.kind = TV_LIST};
    v.u.l = mesh_tmpl__alloc(&rs->arena, sizeof *v.u.l);
    if (!v.u.l)
        return s_undef;
    if (n) {
        v.u.l->v = mesh_tmpl__alloc(&rs->arena, n * sizeof(val_t));
        if (!v.u.l->v)
            return s_undef;
    }
    v.u.l->n = n;
    return v;
}

val_t mesh_tmpl__mkdict(rs_t *rs) {
    val_t v = {.kind = TV_DICT};
    v.u.d = mesh_tmpl__alloc(&rs->arena, sizeof *v.u.d);
    return v.u.d ? v : s_undef;
}

const val_t *mesh_tmpl__dict_get(const mesh_tmpl__dict_t *d, str_t k) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].n == k.n && !memcmp(d->k[i].p, k.p, k.n))
            return &d->v[i];
    return NULL;
}

int mesh_tmpl__dict_set(rs_t *rs, mesh_tmpl__dict_t *d, str_t k, val_t v) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].n == k.n && !memcmp(d->k[i].p, k.p, k.n)) {
            d->v[i] = v;
            return 0;
        }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        str_t *nk = mesh_tmpl__alloc(&rs->arena, cap * sizeof *nk);
        val_t *nv = mesh_tmpl__alloc(&rs->arena, cap * sizeof *nv);
        if (!nk || !nv)
            return MESH_ENOMEM;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n++] = v;
    return 0;
}

bool mesh_tmpl__truthy(val_t v) {
    switch (v.kind) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v.u.b;
    case TV_INT: return v.u.i != 0;
    case TV_FLOAT: return v.u.f != 0;
    case TV_STR: return v.u.s.n > 0;
    case TV_LIST: return v.u.l->n > 0;
    case TV_DICT: return v.u.d->is_ns || v.u.d->n > 0;
    default: return true;
    }
}

static bool s_numeric(val_t v) { return v.kind == TV_INT || v.kind == TV_FLOAT || v.kind == TV_BOOL; }
static double s_num(val_t v) {
    return v.kind == TV_FLOAT ? v.u.f : v.kind == TV_BOOL ? (double)v.u.b : (double)v.u.i;
}
static int64_t s_int(val_t v) { return v.kind == TV_BOOL ? v.u.b : v.u.i; }

bool mesh_tmpl__equal(val_t a, val_t b) {
    if (s_numeric(a) && s_numeric(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT)
            return s_int(a) == s_int(b);
        return s_num(a) == s_num(b);
    }
    if (a.kind != b.kind)
        return false;
    switch (a.kind) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case TV_LIST:
        if (a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!mesh_tmpl__equal(a.u.l->v[i], b.u.l->v[i]))
                return false;
        return true;
    case TV_DICT:
        if (a.u.d == b.u.d)
            return true;
        if (a.u.d->is_ns || b.u.d->is_ns || a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            const val_t *o = mesh_tmpl__dict_get(b.u.d, a.u.d->k[i]);
            if (!o || !mesh_tmpl__equal(a.u.d->v[i], *o))
                return false;
        }
        return true;
    case TV_MACRO: return a.u.m->node == b.u.m->node;
    case TV_FUNC: return a.u.i == b.u.i;
    default: return false;
    }
}

const char *mesh_tmpl__kind_name(val_t v) {
    switch (v.kind) {
    case TV_UNDEF: return "undefined";
    case TV_NONE: return "none";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "string";
    case TV_LIST: return "list";
    case TV_DICT: return v.u.d->is_ns ? "namespace" : "dict";
    case TV_MACRO: return "macro";
    case TV_FUNC: return "function";
    default: return "?";
    }
}

void mesh_tmpl__buf_put(rs_t *rs, buf_t *b, const char *p, size_t n) {
    if (rs->rc || !n)
        return;
    rs->out_total += n;
    if (rs->out_total > S_MAX_OUTPUT) {
        mesh_tmpl__fail(rs, MESH_ERANGE, 0, "output larger than %zu bytes", S_MAX_OUTPUT);
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *nb = realloc(b->b, cap);
        if (!nb) {
            mesh_tmpl__fail(rs, MESH_ENOMEM, 0, "out of memory");
            return;
        }
        b->b = nb;
        b->cap = cap;
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
    b->b[b->n] = 0;
}

static void s_puts(rs_t *rs, buf_t *b, const char *s) { mesh_tmpl__buf_put(rs, b, s, strlen(s)); }

// Python repr of a string: single quotes unless the text has ' and no ".
static void s_repr_str(rs_t *rs, buf_t *b, str_t s) {
    bool sq = memchr(s.p, '\'', s.n) != NULL, dq = memchr(s.p, '"', s.n) != NULL;
    char q = (sq && !dq) ? '"' : '\'';
    mesh_tmpl__buf_put(rs, b, &q, 1);
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *e = NULL;
        char hex[8];
        if (c == '\\')
            e = "\\\\";
        else if (c == (unsigned char)q)
            e = q == '\'' ? "\\'" : "\\\"";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(hex, sizeof hex, "\\x%02x", c);
            e = hex;
        }
        if (e) {
            mesh_tmpl__buf_put(rs, b, s.p + run, i - run);
            s_puts(rs, b, e);
            run = i + 1;
        }
    }
    mesh_tmpl__buf_put(rs, b, s.p + run, s.n - run);
    mesh_tmpl__buf_put(rs, b, &q, 1);
}

void mesh_tmpl__to_str(rs_t *rs, buf_t *b, val_t v, bool repr) {
    char num[40];
    switch (v.kind) {
    case TV_UNDEF:
        if (repr) // inside a list or dict, Python shows Jinja's Undefined object
            s_puts(rs, b, "Undefined");
        return;
    case TV_NONE: s_puts(rs, b, "None"); return;
    case TV_BOOL: s_puts(rs, b, v.u.b ? "True" : "False"); return;
    case TV_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); s_puts(rs, b, num); return;
    case TV_FLOAT: mesh_json_format_double(v.u.f, num); s_puts(rs, b, num); return;
    case TV_STR:
        if (repr)
            s_repr_str(rs, b, v.u.s);
        else
            mesh_tmpl__buf_put(rs, b, v.u.s.p, v.u.s.n);
        return;
    case TV_LIST:
        s_puts(rs, b, v.u.l->tuple ? "(" : "[");
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                s_puts(rs, b, ", ");
            mesh_tmpl__to_str(rs, b, v.u.l->v[i], true);
        }
        s_puts(rs, b, v.u.l->tuple ? (v.u.l->n == 1 ? ",)" : ")") : "]");
        return;
    case TV_DICT:
        if (v.u.d->is_ns) {
            s_puts(rs, b, "<Namespace>");
            return;
        }
        s_puts(rs, b, "{");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                s_puts(rs, b, ", ");
            s_repr_str(rs, b, v.u.d->k[i]);
            s_puts(rs, b, ": ");
            mesh_tmpl__to_str(rs, b, v.u.d->v[i], true);
        }
        s_puts(rs, b, "}");
        return;
    case TV_MACRO: s_puts(rs, b, "<Macro>"); return;
    case TV_FUNC: s_puts(rs, b, "<function>"); return;
    }
}

val_t mesh_tmpl__str_of(rs_t *rs, val_t v) {
    if (v.kind == TV_STR)
        return v;
    buf_t b = {0};
    mesh_tmpl__to_str(rs, &b, v, false);
    val_t r = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
    free(b.b);
    return r;
}

size_t mesh_tmpl__cp_count(str_t s) {
    size_t c = 0;
    for (size_t i = 0; i < s.n; i++)
        c += ((unsigned char)s.p[i] & 0xC0) != 0x80;
    return c;
}

size_t mesh_tmpl__cp_offset(str_t s, size_t idx) {
    size_t c = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (((unsigned char)s.p[i] & 0xC0) != 0x80) {
            if (c == idx)
                return i;
            c++;
        }
    }
    return s.n;
}

int mesh_tmpl__iter_list(rs_t *rs, int line, val_t v, mesh_tmpl__list_t **out) {
    static mesh_tmpl__list_t empty = {NULL, 0, false};
    switch (v.kind) {
    case TV_UNDEF: *out = &empty; return 0;
    case TV_LIST: *out = v.u.l; return 0;
    case TV_DICT: {
        if (v.u.d->is_ns)
            break;
        val_t l = mesh_tmpl__mklist(rs, v.u.d->n);
        if (l.kind != TV_LIST)
            return s_oom(rs, line);
        for (size_t i = 0; i < v.u.d->n; i++)
            l.u.l->v[i] = (val_t){.kind = TV_STR, .u.s = v.u.d->k[i]};
        *out = l.u.l;
        return 0;
    }
    case TV_STR: {
        size_t n = mesh_tmpl__cp_count(v.u.s);
        val_t l = mesh_tmpl__mklist(rs, n);
        if (l.kind != TV_LIST)
            return s_oom(rs, line);
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            size_t e = pos + 1;
            while (e < v.u.s.n && ((unsigned char)v.u.s.p[e] & 0xC0) == 0x80)
                e++;
            l.u.l->v[i] = (val_t){.kind = TV_STR, .u.s = {v.u.s.p + pos, e - pos}};
            pos = e;
        }
        *out = l.u.l;
        return 0;
    }
    default: break;
    }
    return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "cannot iterate over a value of type %s",
                           mesh_tmpl__kind_name(v));
}

val_t mesh_tmpl__getattr(val_t v, str_t name) {
    if (v.kind == TV_DICT) {
        const val_t *r = mesh_tmpl__dict_get(v.u.d, name);
        return r ? *r : s_undef;
    }
    return s_undef;
}

val_t mesh_tmpl__from_json(rs_t *rs, const mesh_json_t *j) {
    val_t v = s_undef;
    switch (mesh_json_type(j)) {
    case MESH_JSON_NULL: v.kind = TV_NONE; return v;
    case MESH_JSON_BOOL: v.kind = TV_BOOL; v.u.b = mesh_json_bool(j); return v;
    case MESH_JSON_INT: v.kind = TV_INT; v.u.i = mesh_json_int(j); return v;
    case MESH_JSON_DOUBLE: v.kind = TV_FLOAT; v.u.f = mesh_json_number(j); return v;
    case MESH_JSON_STRING: {
        size_t n;
        const char *s = mesh_json_str(j, &n);
        return mesh_tmpl__mkstr(rs, s, n);
    }
    case MESH_JSON_ARRAY: {
        size_t n = mesh_json_len(j);
        v = mesh_tmpl__mklist(rs, n);
        if (v.kind != TV_LIST)
            return v;
        for (size_t i = 0; i < n; i++)
            v.u.l->v[i] = mesh_tmpl__from_json(rs, mesh_json_at(j, i));
        return v;
    }
    case MESH_JSON_OBJECT: {
        v = mesh_tmpl__mkdict(rs);
        if (v.kind != TV_DICT)
            return v;
        for (size_t i = 0; i < mesh_json_len(j); i++) {
            size_t kn;
            const char *k = mesh_json_key_at(j, i, &kn);
            str_t ks = {mesh_tmpl__strdup(&rs->arena, k, kn), kn};
            if (!ks.p || mesh_tmpl__dict_set(rs, v.u.d, ks, mesh_tmpl__from_json(rs, mesh_json_at(j, i))))
                return s_undef;
        }
        return v;
    }
    default: return v;
    }
}

mesh_json_t *mesh_tmpl__to_json(rs_t *rs, int line, val_t v) {
    mesh_json_t *j = NULL;
    switch (v.kind) {
    case TV_NONE: j = mesh_json_new_null(); break;
    case TV_BOOL: j = mesh_json_new_bool(v.u.b); break;
    case TV_INT: j = mesh_json_new_int(v.u.i); break;
    case TV_FLOAT: j = mesh_json_new_double(v.u.f); break;
    case TV_STR: j = mesh_json_new_string(v.u.s.p, v.u.s.n); break;
    case TV_LIST:
        j = mesh_json_new_array();
        for (size_t i = 0; j && i < v.u.l->n; i++) {
            mesh_json_t *e = mesh_tmpl__to_json(rs, line, v.u.l->v[i]);
            if (!e) {
                mesh_json_destroy(&j);
                return NULL;
            }
            if (mesh_json_append(j, e))
                mesh_json_destroy(&j);
        }
        break;
    case TV_DICT:
        if (v.u.d->is_ns)
            goto bad;
        j = mesh_json_new_object();
        for (size_t i = 0; j && i < v.u.d->n; i++) {
            mesh_json_t *e = mesh_tmpl__to_json(rs, line, v.u.d->v[i]);
            if (!e) {
                mesh_json_destroy(&j);
                return NULL;
            }
            if (mesh_json_set(j, v.u.d->k[i].p, v.u.d->k[i].n, e))
                mesh_json_destroy(&j);
        }
        break;
    default:
        goto bad;
    }
    if (!j)
        s_oom(rs, line);
    return j;
bad:
    mesh_tmpl__fail(rs, MESH_EFORMAT, line, "tojson: a value of type %s is not JSON serializable",
                    mesh_tmpl__kind_name(v));
    return NULL;
}

// ------------------------------------------------------------------ scopes

static frame_t *s_frame(rs_t *rs, frame_t *parent) {
    frame_t *f = mesh_tmpl__alloc(&rs->arena, sizeof *f);
    if (f)
        f->parent = parent;
    return f;
}

static int s_frame_set(rs_t *rs, frame_t *f, str_t name, val_t v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->names[i].n == name.n && !memcmp(f->names[i].p, name.p, name.n)) {
            f->vals[i] = v;
            return 0;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        str_t *nn = mesh_tmpl__alloc(&rs->arena, cap * sizeof *nn);
        val_t *nv = mesh_tmpl__alloc(&rs->arena, cap * sizeof *nv);
        if (!nn || !nv)
            return MESH_ENOMEM;
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
    return 0;
}

// Finds a variable from frame f outwards. A name that an enclosing scope
// owns (assigns directly, see node.decl) but has not assigned yet is
// undefined in nested scopes, as in Jinja; the scope itself still sees the
// outer value until its own assignment runs. O(depth x names).
static val_t s_lookup(frame_t *f, str_t name) {
    for (frame_t *g = f; g; g = g->parent) {
        for (size_t i = g->n; i-- > 0;)
            if (g->names[i].n == name.n && !memcmp(g->names[i].p, name.p, name.n))
                return g->vals[i];
        if (g != f)
            for (size_t i = 0; i < g->n_decl; i++)
                if (g->decl[i].n == name.n && !memcmp(g->decl[i].p, name.p, name.n))
                    return s_undef;
    }
    return s_undef;
}

// ------------------------------------------------------------------ expressions

static int s_eval(rs_t *rs, frame_t *f, const node_t *n, val_t *out);
static int s_exec(rs_t *rs, frame_t *f, node_t *const *body, size_t n, buf_t *out);

static int s_fail_type(rs_t *rs, int line, const char *op, val_t a, val_t b) {
    return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "unsupported operand types for %s: %s and %s", op,
                           mesh_tmpl__kind_name(a), mesh_tmpl__kind_name(b));
}

static int s_concat_str(rs_t *rs, int line, str_t a, str_t b, val_t *out) {
    char *c = mesh_tmpl__alloc(&rs->arena, a.n + b.n + 1);
    if (!c)
        return s_oom(rs, line);
    memcpy(c, a.p, a.n);
    memcpy(c + a.n, b.p, b.n);
    *out = (val_t){.kind = TV_STR, .u.s = {c, a.n + b.n}};
    return 0;
}

static int s_repeat(rs_t *rs, int line, val_t seq, int64_t times, val_t *out) {
    if (times < 0)
        times = 0;
    size_t unit = seq.kind == TV_STR ? seq.u.s.n : seq.u.l->n;
    if (unit == 0) // '' * 10**18 is '' at once, not a long loop
        times = 0;
    if (unit && (uint64_t)times > (uint64_t)(S_MAX_OUTPUT / unit))
        return mesh_tmpl__fail(rs, MESH_ERANGE, line, "repetition result too large");
    size_t total = unit * (size_t)times;
    if (seq.kind == TV_STR) {
        char *c = mesh_tmpl__alloc(&rs->arena, total + 1);
        if (!c)
            return s_oom(rs, line);
        for (int64_t i = 0; i < times; i++)
            memcpy(c + (size_t)i * unit, seq.u.s.p, unit);
        *out = (val_t){.kind = TV_STR, .u.s = {c, total}};
        return 0;
    }
    *out = mesh_tmpl__mklist(rs, total);
    if (out->kind != TV_LIST)
        return s_oom(rs, line);
    for (int64_t i = 0; i < times; i++)
        memcpy(out->u.l->v + (size_t)i * unit, seq.u.l->v, unit * sizeof(val_t));
    return 0;
}

static int s_compare_order(rs_t *rs, int line, val_t a, val_t b, int *cmp) {
    if (s_numeric(a) && s_numeric(b)) {
        if (a.kind != TV_FLOAT && b.kind != TV_FLOAT)
            *cmp = (s_int(a) > s_int(b)) - (s_int(a) < s_int(b));
        else
            *cmp = (s_num(a) > s_num(b)) - (s_num(a) < s_num(b));
        return 0;
    }
    if (a.kind == TV_STR && b.kind == TV_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = memcmp(a.u.s.p, b.u.s.p, m);
        *cmp = c ? (c > 0) - (c < 0) : (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
        return 0;
    }
    if (a.kind == TV_LIST && b.kind == TV_LIST) {
        size_t m = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < m; i++) {
            if (mesh_tmpl__equal(a.u.l->v[i], b.u.l->v[i]))
                continue;
            return s_compare_order(rs, line, a.u.l->v[i], b.u.l->v[i], cmp);
        }
        *cmp = (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
        return 0;
    }
    return s_fail_type(rs, line, "ordering", a, b);
}

static int s_contains(rs_t *rs, int line, val_t item, val_t c, bool *out) {
    switch (c.kind) {
    case TV_UNDEF: *out = false; return 0;
    case TV_STR:
        if (item.kind != TV_STR)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "'in <string>' needs a string on the left, not %s",
                                   mesh_tmpl__kind_name(item));
        *out = item.u.s.n == 0 || memmem(c.u.s.p, c.u.s.n, item.u.s.p, item.u.s.n) != NULL;
        return 0;
    case TV_LIST:
        *out = false;
        for (size_t i = 0; i < c.u.l->n && !*out; i++)
            *out = mesh_tmpl__equal(item, c.u.l->v[i]);
        return 0;
    case TV_DICT:
        *out = item.kind == TV_STR && mesh_tmpl__dict_get(c.u.d, item.u.s) != NULL;
        return 0;
    default:
        return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "'in' needs a container on the right, not %s",
                               mesh_tmpl__kind_name(c));
    }
}

static int s_binary(rs_t *rs, const node_t *n, val_t a, val_t b, val_t *out) {
    int line = n->line;
    int op = n->op;
    switch (op) {
    case '~': {
        val_t sa = mesh_tmpl__str_of(rs, a), sb = mesh_tmpl__str_of(rs, b);
        if (sa.kind != TV_STR || sb.kind != TV_STR)
            return s_oom(rs, line);
        return s_concat_str(rs, line, sa.u.s, sb.u.s, out);
    }
    case '=': *out = (val_t){.kind = TV_BOOL, .u.b = mesh_tmpl__equal(a, b)}; return 0;
    case 'N': *out = (val_t){.kind = TV_BOOL, .u.b = !mesh_tmpl__equal(a, b)}; return 0;
    case '<':
    case '>':
    case 'L':
    case 'G': {
        int c = 0;
        if (s_compare_order(rs, line, a, b, &c))
            return rs->rc;
        bool r = op == '<' ? c < 0 : op == '>' ? c > 0 : op == 'L' ? c <= 0 : c >= 0;
        *out = (val_t){.kind = TV_BOOL, .u.b = r};
        return 0;
    }
    case 'i':
    case 'I': {
        bool r = false;
        if (s_contains(rs, line, a, b, &r))
            return rs->rc;
        *out = (val_t){.kind = TV_BOOL, .u.b = op == 'i' ? r : !r};
        return 0;
    }
    case '+':
        if (a.kind == TV_STR && b.kind == TV_STR)
            return s_concat_str(rs, line, a.u.s, b.u.s, out);
        if (a.kind == TV_LIST && b.kind == TV_LIST) {
            *out = mesh_tmpl__mklist(rs, a.u.l->n + b.u.l->n);
            if (out->kind != TV_LIST)
                return s_oom(rs, line);
            if (a.u.l->n)
                memcpy(out->u.l->v, a.u.l->v, a.u.l->n * sizeof(val_t));
            if (b.u.l->n)
                memcpy(out->u.l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(val_t));
            return 0;
        }
        break;
    case '*':
        if ((a.kind == TV_STR || a.kind == TV_LIST) && (b.kind == TV_INT || b.kind == TV_BOOL))
            return s_repeat(rs, line, a, s_int(b), out);
        if ((b.kind == TV_STR || b.kind == TV_LIST) && (a.kind == TV_INT || a.kind == TV_BOOL))
            return s_repeat(rs, line, b, s_int(a), out);
        break;
    default: break;
    }
    char opname[3] = {(char)op, 0, 0};
    if (op == 'F')
        opname[0] = opname[1] = '/';
    if (op == 'P')
        opname[0] = opname[1] = '*';
    if (!s_numeric(a) || !s_numeric(b))
        return s_fail_type(rs, line, opname, a, b);
    bool ints = a.kind != TV_FLOAT && b.kind != TV_FLOAT;
    if (ints && op != '/') {
        int64_t x = s_int(a), y = s_int(b), r = 0;
        bool ovf = false;
        switch (op) {
        case '+': ovf = __builtin_add_overflow(x, y, &r); break;
        case '-': ovf = __builtin_sub_overflow(x, y, &r); break;
        case '*': ovf = __builtin_mul_overflow(x, y, &r); break;
        case 'F':
        case '%':
            if (y == 0)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                ovf = op == 'F';
                r = 0;
                break;
            }
            r = op == 'F' ? x / y : x % y;
            if (op == 'F' && (x % y != 0) && ((x < 0) != (y < 0)))
                r -= 1; // floor division
            if (op == '%' && r != 0 && ((r < 0) != (y < 0)))
                r += y; // Python's modulo takes the divisor's sign
            break;
        case 'P': {
            if (y < 0) {
                *out = (val_t){.kind = TV_FLOAT, .u.f = pow((double)x, (double)y)};
                return 0;
            }
            // Square-and-multiply: O(log y) even for 1 ** 10**18.
            int64_t base = x, e = y;
            r = 1;
            while (e > 0 && !ovf) {
                if (e & 1)
                    ovf = __builtin_mul_overflow(r, base, &r);
                e >>= 1;
                if (e > 0 && !ovf)
                    ovf = __builtin_mul_overflow(base, base, &base);
            }
            break;
        }
        }
        if (ovf)
            return mesh_tmpl__fail(rs, MESH_ERANGE, line, "integer overflow in '%s'", opname);
        *out = (val_t){.kind = TV_INT, .u.i = r};
        return 0;
    }
    double x = s_num(a), y = s_num(b), r = 0;
    switch (op) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/':
    case 'F':
    case '%':
        if (y == 0)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "division by zero");
        if (op == '/')
            r = x / y;
        else if (op == 'F')
            r = floor(x / y);
        else {
            r = fmod(x, y);
            if (r != 0 && ((r < 0) != (y < 0)))
                r += y;
        }
        break;
    case 'P': r = pow(x, y); break;
    }
    *out = (val_t){.kind = TV_FLOAT, .u.f = r};
    return 0;
}

// Python index normalisation for item access: -1 is the last element.
static bool s_index(int64_t i, size_t n, size_t *out) {
    if (i < 0)
        i += (int64_t)n;
    if (i < 0 || (uint64_t)i >= n)
        return false;
    *out = (size_t)i;
    return true;
}

static int s_item(rs_t *rs, int line, val_t obj, val_t key, val_t *out) {
    *out = s_undef;
    if (obj.kind == TV_DICT) {
        if (key.kind == TV_STR) {
            const val_t *r = mesh_tmpl__dict_get(obj.u.d, key.u.s);
            if (r)
                *out = *r;
        }
        return 0;
    }
    if ((obj.kind == TV_LIST || obj.kind == TV_STR) && (key.kind == TV_INT || key.kind == TV_BOOL)) {
        size_t idx;
        if (obj.kind == TV_LIST) {
            if (s_index(s_int(key), obj.u.l->n, &idx))
                *out = obj.u.l->v[idx];
        } else {
            size_t n = mesh_tmpl__cp_count(obj.u.s);
            if (s_index(s_int(key), n, &idx)) {
                size_t b = mesh_tmpl__cp_offset(obj.u.s, idx), e = mesh_tmpl__cp_offset(obj.u.s, idx + 1);
                *out = (val_t){.kind = TV_STR, .u.s = {obj.u.s.p + b, e - b}};
            }
        }
        return 0;
    }
    if (obj.kind == TV_UNDEF || obj.kind == TV_LIST || obj.kind == TV_STR)
        return 0; // undefined (e.g. a string key on a list)
    return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "a value of type %s cannot be subscripted",
                           mesh_tmpl__kind_name(obj));
}

static int s_slice_eval(rs_t *rs, frame_t *f, const node_t *n, val_t obj, val_t *out) {
    int64_t v[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    const node_t *parts[3] = {n->b, n->c, n->n_args ? n->args[0] : NULL};
    for (int k = 0; k < 3; k++) {
        if (!parts[k])
            continue;
        val_t x;
        if (s_eval(rs, f, parts[k], &x))
            return rs->rc;
        if (x.kind == TV_NONE || x.kind == TV_UNDEF)
            continue;
        if (x.kind != TV_INT && x.kind != TV_BOOL)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "slice indices must be integers, not %s",
                                   mesh_tmpl__kind_name(x));
        v[k] = s_int(x);
        given[k] = true;
    }
    if (v[2] == 0)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "slice step cannot be zero");
    if (obj.kind == TV_UNDEF) {
        *out = s_undef;
        return 0;
    }
    if (obj.kind != TV_LIST && obj.kind != TV_STR)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "a value of type %s cannot be sliced",
                               mesh_tmpl__kind_name(obj));
    int64_t len = obj.kind == TV_LIST ? (int64_t)obj.u.l->n : (int64_t)mesh_tmpl__cp_count(obj.u.s);
    int64_t step = v[2], start, stop;
    // Python's slice.indices().
    if (step > 0) {
        start = given[0] ? v[0] : 0;
        stop = given[1] ? v[1] : len;
        if (start < 0)
            start = start + len < 0 ? 0 : start + len;
        if (start > len)
            start = len;
        if (stop < 0)
            stop = stop + len < 0 ? 0 : stop + len;
        if (stop > len)
            stop = len;
    } else {
        start = given[0] ? v[0] : len - 1;
        stop = given[1] ? v[1] : -1 - len; // sentinel: before the first element
        if (start < 0)
            start = start + len < 0 ? -1 : start + len;
        if (start >= len)
            start = len - 1;
        if (given[1]) {
            if (stop < 0)
                stop = stop + len < 0 ? -1 : stop + len;
            if (stop >= len)
                stop = len - 1;
        } else {
            stop = -1;
        }
    }
    size_t count = 0;
    if (step > 0 && stop > start)
        count = (size_t)((stop - start + step - 1) / step);
    else if (step < 0 && start > stop)
        count = (size_t)((start - stop + (-step) - 1) / (-step));
    if (obj.kind == TV_LIST) {
        *out = mesh_tmpl__mklist(rs, count);
        if (out->kind != TV_LIST)
            return s_oom(rs, n->line);
        for (size_t i = 0; i < count; i++)
            out->u.l->v[i] = obj.u.l->v[start + (int64_t)i * step];
        return 0;
    }
    // Strings: by code point.
    if (step == 1) {
        size_t b = mesh_tmpl__cp_offset(obj.u.s, (size_t)start);
        size_t e = mesh_tmpl__cp_offset(obj.u.s, (size_t)(start + (int64_t)count));
        *out = (val_t){.kind = TV_STR, .u.s = {obj.u.s.p + b, e - b}};
        return 0;
    }
    mesh_tmpl__list_t *chars;
    if (mesh_tmpl__iter_list(rs, n->line, obj, &chars))
        return rs->rc;
    buf_t b = {0};
    for (size_t i = 0; i < count; i++) {
        val_t c = chars->v[start + (int64_t)i * step];
        mesh_tmpl__buf_put(rs, &b, c.u.s.p, c.u.s.n);
    }
    *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
    free(b.b);
    return rs->rc;
}

// Evaluates positional and keyword arguments of a call/filter/test node.
static int s_args(rs_t *rs, frame_t *f, const node_t *n, val_t **args, val_t **kwv) {
    *args = NULL;
    *kwv = NULL;
    if (n->n_args) {
        *args = mesh_tmpl__alloc(&rs->arena, n->n_args * sizeof(val_t));
        if (!*args)
            return s_oom(rs, n->line);
        for (size_t i = 0; i < n->n_args; i++)
            if (s_eval(rs, f, n->args[i], &(*args)[i]))
                return rs->rc;
    }
    if (n->n_kw) {
        *kwv = mesh_tmpl__alloc(&rs->arena, n->n_kw * sizeof(val_t));
        if (!*kwv)
            return s_oom(rs, n->line);
        for (size_t i = 0; i < n->n_kw; i++)
            if (s_eval(rs, f, n->kwargs[i], &(*kwv)[i]))
                return rs->rc;
    }
    return 0;
}

static int s_call_macro(rs_t *rs, int line, const mesh_tmpl__macro_t *mc, val_t *args, size_t n_args,
                        str_t *kwn, val_t *kwv, size_t n_kw, val_t *out) {
    const node_t *m = mc->node;
    if (rs->depth >= S_MAX_CALL_DEPTH)
        return mesh_tmpl__fail(rs, MESH_ERANGE, line, "macro calls nested deeper than %d",
                               S_MAX_CALL_DEPTH);
    if (n_args > m->n_names)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "macro '%.*s' takes %zu arguments, %zu given",
                               (int)m->name.n, m->name.p, m->n_names, n_args);
    frame_t *f = s_frame(rs, mc->scope);
    if (!f)
        return s_oom(rs, line);
    f->decl = m->decl;
    f->n_decl = m->n_decl;
    for (size_t i = 0; i < m->n_names; i++) {
        val_t v = s_undef;
        if (i < n_args) {
            v = args[i];
        } else {
            bool found = false;
            for (size_t k = 0; k < n_kw; k++)
                if (kwn[k].n == m->names[i].n && !memcmp(kwn[k].p, m->names[i].p, kwn[k].n)) {
                    v = kwv[k];
                    found = true;
                }
            if (!found && m->args[i] && s_eval(rs, f, m->args[i], &v))
                return rs->rc;
        }
        if (s_frame_set(rs, f, m->names[i], v))
            return s_oom(rs, line);
    }
    for (size_t k = 0; k < n_kw; k++) {
        bool known = false;
        for (size_t i = 0; i < m->n_names; i++)
            known |= kwn[k].n == m->names[i].n && !memcmp(kwn[k].p, m->names[i].p, kwn[k].n);
        if (!known)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "macro '%.*s' has no parameter '%.*s'",
                                   (int)m->name.n, m->name.p, (int)kwn[k].n, kwn[k].p);
    }
    buf_t b = {0};
    rs->depth++;
    int rc = s_exec(rs, f, m->body, m->n_body, &b);
    rs->depth--;
    if (rc < 0) {
        free(b.b);
        return rs->rc ? rs->rc : rc;
    }
    *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
    free(b.b);
    if (out->kind != TV_STR)
        return s_oom(rs, line);
    return 0;
}

static int s_call(rs_t *rs, frame_t *f, const node_t *n, val_t *out) {
    val_t *args, *kwv;
    const node_t *callee = n->a;
    if (callee->kind == E_ATTR) {
        val_t obj;
        if (s_eval(rs, f, callee->a, &obj) || s_args(rs, f, n, &args, &kwv))
            return rs->rc;
        int rc = mesh_tmpl__method(rs, n->line, obj, callee->name, args, n->n_args, n->kwnames, kwv,
                                   n->n_kw, out);
        if (rc <= 0)
            return rc;
        val_t fn = mesh_tmpl__getattr(obj, callee->name);
        if (fn.kind == TV_MACRO)
            return s_call_macro(rs, n->line, fn.u.m, args, n->n_args, n->kwnames, kwv, n->n_kw, out);
        if (fn.kind == TV_FUNC)
            return mesh_tmpl__call_func(rs, n->line, (int)fn.u.i, args, n->n_args, n->kwnames, kwv,
                                        n->n_kw, out);
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "%s has no method '%.*s'",
                               mesh_tmpl__kind_name(obj), (int)callee->name.n, callee->name.p);
    }
    val_t fn;
    if (s_eval(rs, f, callee, &fn) || s_args(rs, f, n, &args, &kwv))
        return rs->rc;
    if (fn.kind == TV_MACRO)
        return s_call_macro(rs, n->line, fn.u.m, args, n->n_args, n->kwnames, kwv, n->n_kw, out);
    if (fn.kind == TV_FUNC)
        return mesh_tmpl__call_func(rs, n->line, (int)fn.u.i, args, n->n_args, n->kwnames, kwv, n->n_kw,
                                    out);
    if (callee->kind == E_NAME)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "'%.*s' is %s, not a function or macro",
                               (int)callee->name.n, callee->name.p,
                               fn.kind == TV_UNDEF ? "undefined" : mesh_tmpl__kind_name(fn));
    return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "a value of type %s is not callable",
                           mesh_tmpl__kind_name(fn));
}

static int s_eval(rs_t *rs, frame_t *f, const node_t *n, val_t *out) {
    if (rs->rc)
        return rs->rc;
    *out = s_undef;
    switch (n->kind) {
    case E_LIT:
        *out = n->lit;
        return 0;
    case E_NAME:
        *out = s_lookup(f, n->name);
        return 0;
    case E_ATTR: {
        val_t o;
        if (s_eval(rs, f, n->a, &o))
            return rs->rc;
        *out = mesh_tmpl__getattr(o, n->name);
        return 0;
    }
    case E_ITEM: {
        val_t o, k;
        if (s_eval(rs, f, n->a, &o) || s_eval(rs, f, n->b, &k))
            return rs->rc;
        return s_item(rs, n->line, o, k, out);
    }
    case E_SLICE: {
        val_t o;
        if (s_eval(rs, f, n->a, &o))
            return rs->rc;
        return s_slice_eval(rs, f, n, o, out);
    }
    case E_CALL: return s_call(rs, f, n, out);
    case E_FILTER: {
        val_t v, *args, *kwv;
        if (s_eval(rs, f, n->a, &v) || s_args(rs, f, n, &args, &kwv))
            return rs->rc;
        return mesh_tmpl__filter(rs, n, v, args, n->n_args, n->kwnames, kwv, n->n_kw, out);
    }
    case E_TEST: {
        val_t v, *args, *kwv;
        if (s_eval(rs, f, n->a, &v) || s_args(rs, f, n, &args, &kwv))
            return rs->rc;
        bool r;
        if (mesh_tmpl__test(rs, n->line, n->name, v, args, n->n_args, &r))
            return rs->rc;
        *out = (val_t){.kind = TV_BOOL, .u.b = n->op ? !r : r};
        return 0;
    }
    case E_UNARY: {
        val_t v;
        if (s_eval(rs, f, n->a, &v))
            return rs->rc;
        if (n->op == '!') {
            *out = (val_t){.kind = TV_BOOL, .u.b = !mesh_tmpl__truthy(v)};
            return 0;
        }
        if (!s_numeric(v))
            return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "bad operand type for unary %c: %s",
                                   n->op, mesh_tmpl__kind_name(v));
        if (n->op == '+') {
            *out = v.kind == TV_BOOL ? (val_t){.kind = TV_INT, .u.i = v.u.b} : v;
        } else if (v.kind == TV_FLOAT) {
            *out = (val_t){.kind = TV_FLOAT, .u.f = -v.u.f};
        } else {
            int64_t x = s_int(v);
            if (x == INT64_MIN)
                return mesh_tmpl__fail(rs, MESH_ERANGE, n->line, "integer overflow in unary -");
            *out = (val_t){.kind = TV_INT, .u.i = -x};
        }
        return 0;
    }
    case E_BINARY: {
        val_t a, b;
        if (s_eval(rs, f, n->a, &a) || s_eval(rs, f, n->b, &b))
            return rs->rc;
        return s_binary(rs, n, a, b, out);
    }
    case E_CHAIN: {
        val_t left, right;
        if (s_eval(rs, f, n->a, &left))
            return rs->rc;
        for (size_t i = 0; i < n->n_args; i++) {
            if (s_eval(rs, f, n->args[i], &right))
                return rs->rc;
            mesh_tmpl__node_t op = {.kind = E_BINARY, .line = n->line, .op = n->ops[i]};
            if (s_binary(rs, &op, left, right, out))
                return rs->rc;
            if (!out->u.b)
                return 0;
            left = right;
        }
        return 0;
    }
    case E_AND:
    case E_OR: {
        val_t a;
        if (s_eval(rs, f, n->a, &a))
            return rs->rc;
        bool t = mesh_tmpl__truthy(a);
        if ((n->kind == E_AND && !t) || (n->kind == E_OR && t)) {
            *out = a;
            return 0;
        }
        return s_eval(rs, f, n->b, out);
    }
    case E_COND: {
        val_t c;
        if (s_eval(rs, f, n->a, &c))
            return rs->rc;
        if (mesh_tmpl__truthy(c))
            return s_eval(rs, f, n->b, out);
        if (n->c)
            return s_eval(rs, f, n->c, out);
        *out = s_undef;
        return 0;
    }
    case E_LIST: {
        *out = mesh_tmpl__mklist(rs, n->n_args);
        if (out->kind != TV_LIST)
            return s_oom(rs, n->line);
        out->u.l->tuple = n->op == 1;
        for (size_t i = 0; i < n->n_args; i++)
            if (s_eval(rs, f, n->args[i], &out->u.l->v[i]))
                return rs->rc;
        return 0;
    }
    case E_DICT: {
        *out = mesh_tmpl__mkdict(rs);
        if (out->kind != TV_DICT)
            return s_oom(rs, n->line);
        for (size_t i = 0; i < n->n_kw; i++) {
            val_t v;
            if (s_eval(rs, f, n->kwargs[i], &v))
                return rs->rc;
            if (mesh_tmpl__dict_set(rs, out->u.d, n->kwnames[i], v))
                return s_oom(rs, n->line);
        }
        return 0;
    }
    default:
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "internal: not an expression");
    }
}

// ------------------------------------------------------------------ statements

enum { S_NORMAL = 0, S_BREAK = 1, S_CONTINUE = 2 };

static int s_exec_for(rs_t *rs, frame_t *f, const node_t *n, buf_t *out) {
    val_t it;
    if (s_eval(rs, f, n->a, &it))
        return rs->rc;
    if (it.kind == TV_NONE)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "cannot iterate over none");
    mesh_tmpl__list_t *items;
    if (mesh_tmpl__iter_list(rs, n->line, it, &items))
        return rs->rc;
    // Inline filter ({% for x in xs if cond %}): applied first, so loop.length
    // and loop.last see only the kept items, as in Jinja.
    if (n->b) {
        val_t kept = mesh_tmpl__mklist(rs, items->n);
        if (kept.kind != TV_LIST)
            return s_oom(rs, n->line);
        size_t k = 0;
        for (size_t i = 0; i < items->n; i++) {
            frame_t *tf = s_frame(rs, f);
            if (!tf)
                return s_oom(rs, n->line);
            if (n->n_names == 1) {
                if (s_frame_set(rs, tf, n->names[0], items->v[i]))
                    return s_oom(rs, n->line);
            } else if (items->v[i].kind == TV_LIST && items->v[i].u.l->n == n->n_names) {
                for (size_t j = 0; j < n->n_names; j++)
                    if (s_frame_set(rs, tf, n->names[j], items->v[i].u.l->v[j]))
                        return s_oom(rs, n->line);
            }
            val_t c;
            if (s_eval(rs, tf, n->b, &c))
                return rs->rc;
            if (mesh_tmpl__truthy(c))
                kept.u.l->v[k++] = items->v[i];
        }
        kept.u.l->n = k;
        items = kept.u.l;
    }
    if (items->n == 0)
        return s_exec(rs, f, n->orelse, n->n_orelse, out) < 0 ? rs->rc : 0;
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first",
                                       "last",  "length", "previtem", "nextitem"};
    for (size_t i = 0; i < items->n; i++) {
        frame_t *it_f = s_frame(rs, f);
        val_t loop = mesh_tmpl__mkdict(rs);
        if (!it_f || loop.kind != TV_DICT)
            return s_oom(rs, n->line);
        it_f->decl = n->decl;
        it_f->n_decl = n->n_decl;
        int64_t len = (int64_t)items->n, ii = (int64_t)i;
        val_t vals[9] = {
            {.kind = TV_INT, .u.i = ii + 1},
            {.kind = TV_INT, .u.i = ii},
            {.kind = TV_INT, .u.i = len - ii},
            {.kind = TV_INT, .u.i = len - ii - 1},
            {.kind = TV_BOOL, .u.b = i == 0},
            {.kind = TV_BOOL, .u.b = i + 1 == items->n},
            {.kind = TV_INT, .u.i = len},
            i > 0 ? items->v[i - 1] : s_undef,
            i + 1 < items->n ? items->v[i + 1] : s_undef,
        };
        for (int k = 0; k < 9; k++) {
            str_t key = {keys[k], strlen(keys[k])};
            if (mesh_tmpl__dict_set(rs, loop.u.d, key, vals[k]))
                return s_oom(rs, n->line);
        }
        if (s_frame_set(rs, it_f, (str_t){"loop", 4}, loop))
            return s_oom(rs, n->line);
        val_t item = items->v[i];
        if (n->n_names == 1) {
            if (s_frame_set(rs, it_f, n->names[0], item))
                return s_oom(rs, n->line);
        } else {
            if (item.kind != TV_LIST || item.u.l->n != n->n_names)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line,
                                       "cannot unpack a %s into %zu loop variables",
                                       mesh_tmpl__kind_name(item), n->n_names);
            for (size_t j = 0; j < n->n_names; j++)
                if (s_frame_set(rs, it_f, n->names[j], item.u.l->v[j]))
                    return s_oom(rs, n->line);
        }
        int st = s_exec(rs, it_f, n->body, n->n_body, out);
        if (st < 0)
            return rs->rc ? rs->rc : st;
        if (st == S_BREAK)
            break;
    }
    return 0;
}

// Runs statements; returns S_NORMAL, S_BREAK, S_CONTINUE or a negative error.
static int s_exec(rs_t *rs, frame_t *f, node_t *const *body, size_t nb, buf_t *out) {
    for (size_t i = 0; i < nb; i++) {
        const node_t *n = body[i];
        if (rs->rc)
            return rs->rc;
        switch (n->kind) {
        case N_TEXT: mesh_tmpl__buf_put(rs, out, n->name.p, n->name.n); break;
        case N_OUTPUT: {
            val_t v;
            if (s_eval(rs, f, n->a, &v))
                return rs->rc;
            mesh_tmpl__to_str(rs, out, v, false);
            break;
        }
        case N_IF: {
            val_t c;
            if (s_eval(rs, f, n->a, &c))
                return rs->rc;
            int st = mesh_tmpl__truthy(c) ? s_exec(rs, f, n->body, n->n_body, out)
                                          : s_exec(rs, f, n->orelse, n->n_orelse, out);
            if (st != S_NORMAL)
                return st;
            break;
        }
        case N_FOR:
            if (s_exec_for(rs, f, n, out))
                return rs->rc;
            break;
        case N_SET: {
            val_t v;
            if (s_eval(rs, f, n->a, &v))
                return rs->rc;
            if (n->name2.n) {
                val_t ns = s_lookup(f, n->name);
                if (ns.kind != TV_DICT || !ns.u.d->is_ns)
                    return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line,
                                           "cannot assign attribute on '%.*s' (a %s, not a namespace)",
                                           (int)n->name.n, n->name.p, mesh_tmpl__kind_name(ns));
                if (mesh_tmpl__dict_set(rs, ns.u.d, n->name2, v))
                    return s_oom(rs, n->line);
            } else if (s_frame_set(rs, f, n->name, v)) {
                return s_oom(rs, n->line);
            }
            break;
        }
        case N_SETBLOCK: {
            buf_t b = {0};
            int st = s_exec(rs, f, n->body, n->n_body, &b);
            val_t v = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
            free(b.b);
            if (st < 0)
                return rs->rc;
            if (v.kind != TV_STR || s_frame_set(rs, f, n->name, v))
                return s_oom(rs, n->line);
            break;
        }
        case N_MACRO: {
            mesh_tmpl__macro_t *mc = mesh_tmpl__alloc(&rs->arena, sizeof *mc);
            if (!mc)
                return s_oom(rs, n->line);
            mc->node = n;
            mc->scope = f;
            val_t m = {.kind = TV_MACRO, .u.m = mc};
            if (s_frame_set(rs, f, n->name, m))
                return s_oom(rs, n->line);
            break;
        }
        case N_BREAK: return S_BREAK;
        case N_CONTINUE: return S_CONTINUE;
        case N_BLOCK: {
            int st = s_exec(rs, f, n->body, n->n_body, out);
            if (st != S_NORMAL)
                return st;
            break;
        }
        default: return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "internal: not a statement");
        }
    }
    return rs->rc ? rs->rc : S_NORMAL;
}

// Entry point used by chat_template.c: renders t with globals already set in rs.
int mesh_tmpl__run(rs_t *rs, const mesh_tmpl_t *t, buf_t *out);
int mesh_tmpl__run(rs_t *rs, const mesh_tmpl_t *t, buf_t *out) {
    if (!rs->ctx && !(rs->ctx = s_frame(rs, NULL)))
        return s_oom(rs, 0);
    if (!(rs->globals = s_frame(rs, rs->ctx)))
        return s_oom(rs, 0);
    rs->globals->decl = t->decl;
    rs->globals->n_decl = t->n_decl;
    int st = s_exec(rs, rs->globals, t->body, t->n_body, out);
    if (rs->rc)
        return rs->rc;
    if (st < 0)
        return st;
    if (st != S_NORMAL)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, 0, "'break' or 'continue' outside a loop");
    return 0;
}

// Sets a render variable (chat_template.c).
int mesh_tmpl__set_global(rs_t *rs, const char *name, val_t v);
int mesh_tmpl__set_global(rs_t *rs, const char *name, val_t v) {
    if (!rs->ctx && !(rs->ctx = s_frame(rs, NULL)))
        return MESH_ENOMEM;
    size_t n = strlen(name);
    char *c = mesh_tmpl__strdup(&rs->arena, name, n);
    if (!c)
        return MESH_ENOMEM;
    return s_frame_set(rs, rs->ctx, (str_t){c, n}, v);
}
