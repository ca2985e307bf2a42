// SPDX-License-Identifier: MIT
// Chat templates: filters, tests, str/dict methods and global functions.
//
// Each builtin mirrors the Jinja2 / Python behaviour that chat templates rely
// on; an argument of the wrong type is a render error naming the builtin.
// Case mapping (upper, lower, title, capitalize) is ASCII-only: non-ASCII
// letters pass through unchanged (Python would map them).
#include "chat_template_impl.h"

#include "mesh_err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef mesh_tmpl__val_t val_t;
typedef mesh_tmpl__str_t str_t;
typedef mesh_tmpl__rs_t rs_t;
typedef mesh_tmpl__buf_t buf_t;

static const val_t s_undef = {.kind = TV_UNDEF};

static const char *const s_filters[] = {
    "tojson", "trim", "length", "count", "join", "default", "d", "upper", "lower", "first",
    "last", "list", "string", "int", "float", "safe", "items", "replace", "selectattr",
    "rejectattr", "select", "reject", "map", "unique", "capitalize", "title", "abs", "reverse",
    "escape", "e", "indent", "wordcount", "sum", "min", "max", "dictsort", NULL};

static const char *const s_tests[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
    "iterable", "sequence", "true", "false", "boolean", "callable", "odd", "even",
    "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "<", "lessthan", "le", "<=", "gt",
    ">", "greaterthan", "ge", ">=", "in", "lower", "upper", "sameas", NULL};

static bool s_in(const char *const *list, str_t name) {
    for (size_t i = 0; list[i]; i++)
        if (mesh_tmpl__str_eq(name, list[i]))
            return true;
    return false;
}

bool mesh_tmpl__is_filter(str_t name) { return s_in(s_filters, name); }
bool mesh_tmpl__is_test(str_t name) { return s_in(s_tests, name); }

// ------------------------------------------------------------------ helpers

// Finds keyword argument `name`, else positional index pos; NULL if neither.
static const val_t *s_arg(val_t *args, size_t n_args, str_t *kwn, val_t *kwv, size_t n_kw,
                          size_t pos, const char *name) {
    for (size_t i = 0; i < n_kw; i++)
        if (mesh_tmpl__str_eq(kwn[i], name))
            return &kwv[i];
    return pos < n_args ? &args[pos] : NULL;
}

static int s_bad(rs_t *rs, int line, const char *what, const char *fmt_kind, val_t v) {
    return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "%s: expected %s, got %s", what, fmt_kind,
                           mesh_tmpl__kind_name(v));
}

static int s_oom(rs_t *rs, int line) { return mesh_tmpl__fail(rs, MESH_ENOMEM, line, "out of memory"); }

// Python's str.isspace() for the code point at s[i]; *len gets its byte length.
static bool s_space_at(const char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = (unsigned char)s[i];
    *len = 1;
    if (c < 0x80)
        return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
    uint32_t cp = 0;
    size_t l = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    if (i + l > n)
        return false;
    cp = l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < l; k++)
        cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
    *len = l;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Length of the whitespace code point ending at s[end-1], or 0.
static size_t s_space_before(const char *s, size_t end) {
    size_t b = end - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80 && end - b < 4)
        b--;
    size_t l;
    if (s_space_at(s, end, b, &l) && b + l == end)
        return l;
    return 0;
}

// Is the code point at s[i] (length *len) one of chars?
static bool s_in_chars(str_t chars, const char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = (unsigned char)s[i];
    size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (i + l > n)
        l = n - i;
    *len = l;
    for (size_t k = 0; k + l <= chars.n;) {
        unsigned char d = (unsigned char)chars.p[k];
        size_t dl = d < 0x80 ? 1 : (d & 0xE0) == 0xC0 ? 2 : (d & 0xF0) == 0xE0 ? 3 : 4;
        if (dl == l && !memcmp(chars.p + k, s + i, l))
            return true;
        k += dl;
    }
    return false;
}

// strip / lstrip / rstrip with Python semantics (chars NULL = whitespace).
static str_t s_strip(str_t s, const str_t *chars, bool left, bool right) {
    size_t b = 0, e = s.n, l;
    if (left)
        while (b < e && (chars ? s_in_chars(*chars, s.p, e, b, &l) : s_space_at(s.p, e, b, &l)))
            b += l;
    if (right) {
        while (e > b) {
            if (chars) {
                size_t k = e - 1;
                while (k > b && ((unsigned char)s.p[k] & 0xC0) == 0x80)
                    k--;
                if (!s_in_chars(*chars, s.p, e, k, &l) || k + l != e)
                    break;
                e = k;
            } else {
                size_t sl = s_space_before(s.p + b, e - b);
                if (!sl)
                    break;
                e -= sl;
            }
        }
    }
    return (str_t){s.p + b, e - b};
}

static val_t s_str(str_t s) { return (val_t){.kind = TV_STR, .u.s = s}; }
static val_t s_bool(bool b) { return (val_t){.kind = TV_BOOL, .u.b = b}; }
static val_t s_intv(int64_t i) { return (val_t){.kind = TV_INT, .u.i = i}; }

static int s_case(rs_t *rs, int line, str_t s, int mode, val_t *out) {
    // mode: 0 upper, 1 lower, 2 title (str.title), 3 capitalize, 4 Jinja's
    // |title filter (a word starts after whitespace or one of "-({[<")
    char *c = mesh_tmpl__alloc(&rs->arena, s.n + 1);
    if (!c)
        return s_oom(rs, line);
    bool prev_alpha = false;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        bool alpha = ch < 0x80 && isalpha(ch);
        switch (mode) {
        case 0: c[i] = (char)(ch < 0x80 ? toupper(ch) : ch); break;
        case 1: c[i] = (char)(ch < 0x80 ? tolower(ch) : ch); break;
        case 2:
            c[i] = (char)(ch < 0x80 ? (prev_alpha ? tolower(ch) : toupper(ch)) : ch);
            break;
        case 3: c[i] = (char)(ch < 0x80 ? (i == 0 ? toupper(ch) : tolower(ch)) : ch); break;
        default: {
            bool start = i == 0 || strchr("-({[<", s.p[i - 1]) || isspace((unsigned char)s.p[i - 1]);
            bool split = strchr("-({[<", ch) || isspace(ch);
            c[i] = (char)(ch < 0x80 && !split ? (start ? toupper(ch) : tolower(ch)) : ch);
            break;
        }
        }
        prev_alpha = alpha || ch >= 0x80;
    }
    *out = s_str((str_t){c, s.n});
    return 0;
}

static int s_replace(rs_t *rs, int line, str_t s, str_t old, str_t rep, int64_t count, val_t *out) {
    buf_t b = {0};
    size_t i = 0;
    int64_t done = 0;
    if (old.n == 0) { // Python inserts rep between every code point
        for (size_t k = 0; k <= s.n; k++) {
            bool boundary = k == s.n || ((unsigned char)s.p[k] & 0xC0) != 0x80;
            if (boundary && (count < 0 || done < count)) {
                mesh_tmpl__buf_put(rs, &b, rep.p, rep.n);
                done++;
            }
            if (k < s.n)
                mesh_tmpl__buf_put(rs, &b, s.p + k, 1);
        }
    } else {
        while (i < s.n) {
            const char *hit = (count < 0 || done < count) ? memmem(s.p + i, s.n - i, old.p, old.n) : NULL;
            if (!hit) {
                mesh_tmpl__buf_put(rs, &b, s.p + i, s.n - i);
                break;
            }
            mesh_tmpl__buf_put(rs, &b, s.p + i, (size_t)(hit - (s.p + i)));
            mesh_tmpl__buf_put(rs, &b, rep.p, rep.n);
            i = (size_t)(hit - s.p) + old.n;
            done++;
        }
    }
    *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
    free(b.b);
    return rs->rc ? rs->rc : out->kind == TV_STR ? 0 : s_oom(rs, line);
}

static int s_split(rs_t *rs, int line, str_t s, const val_t *sep, int64_t maxsplit, val_t *out) {
    // Count pieces first, then fill (two passes keep the list one allocation).
    for (int pass = 0; pass < 2; pass++) {
        size_t np = 0, i = 0;
        int64_t splits = 0;
        if (!sep || sep->kind == TV_NONE) {
            size_t l;
            for (;;) {
                while (i < s.n && s_space_at(s.p, s.n, i, &l))
                    i += l;
                if (i >= s.n)
                    break;
                size_t st = i;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    str_t rest = s_strip((str_t){s.p + st, s.n - st}, NULL, false, true);
                    if (pass)
                        out->u.l->v[np] = s_str(rest);
                    np++;
                    break;
                }
                while (i < s.n && !s_space_at(s.p, s.n, i, &l))
                    i += l;
                if (pass)
                    out->u.l->v[np] = s_str((str_t){s.p + st, i - st});
                np++;
                splits++;
            }
        } else {
            if (sep->kind != TV_STR)
                return s_bad(rs, line, "split", "a string separator", *sep);
            if (!sep->u.s.n)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "split: empty separator");
            for (;;) {
                const char *hit = (maxsplit < 0 || splits < maxsplit)
                                      ? memmem(s.p + i, s.n - i, sep->u.s.p, sep->u.s.n)
                                      : NULL;
                size_t e = hit ? (size_t)(hit - s.p) : s.n;
                if (pass)
                    out->u.l->v[np] = s_str((str_t){s.p + i, e - i});
                np++;
                if (!hit)
                    break;
                i = e + sep->u.s.n;
                splits++;
            }
        }
        if (!pass) {
            *out = mesh_tmpl__mklist(rs, np);
            if (out->kind != TV_LIST)
                return s_oom(rs, line);
        }
    }
    return 0;
}

static int s_tojson(rs_t *rs, int line, val_t v, const val_t *ascii, const val_t *indent,
                    const val_t *sort_keys, bool compact, val_t *out) {
    mesh_json_write_opts_t o = {.ensure_ascii = false, .python_separators = !compact, .indent = -1};
    if (ascii)
        o.ensure_ascii = mesh_tmpl__truthy(*ascii);
    if (sort_keys)
        o.sort_keys = mesh_tmpl__truthy(*sort_keys);
    if (indent && indent->kind != TV_NONE && indent->kind != TV_UNDEF) {
        if (indent->kind != TV_INT || indent->u.i < 0 || indent->u.i > 64)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "tojson: indent must be an integer 0..64");
        o.indent = (int)indent->u.i;
    }
    mesh_json_t *j = mesh_tmpl__to_json(rs, line, v);
    if (!j)
        return rs->rc;
    size_t n;
    char *s = mesh_json_write(j, &o, &n);
    mesh_json_destroy(&j);
    if (!s)
        return s_oom(rs, line);
    *out = mesh_tmpl__mkstr(rs, s, n);
    free(s);
    return out->kind == TV_STR ? 0 : s_oom(rs, line);
}

// Attribute path "a.b" of a value (map/selectattr/join attribute=).
static val_t s_attr_path(val_t v, str_t path) {
    size_t i = 0;
    while (i <= path.n) {
        size_t e = i;
        while (e < path.n && path.p[e] != '.')
            e++;
        str_t part = {path.p + i, e - i};
        if (v.kind == TV_LIST) {
            char *end;
            char tmp[24];
            size_t k = part.n < sizeof tmp - 1 ? part.n : sizeof tmp - 1;
            memcpy(tmp, part.p, k);
            tmp[k] = 0;
            long long idx = strtoll(tmp, &end, 10);
            v = (*end == 0 && k && idx >= 0 && (size_t)idx < v.u.l->n) ? v.u.l->v[idx] : s_undef;
        } else {
            v = mesh_tmpl__getattr(v, part);
        }
        i = e + 1;
    }
    return v;
}

static int s_select(rs_t *rs, const mesh_tmpl__node_t *n, val_t v, val_t *args, size_t n_args,
                    bool by_attr, bool reject, val_t *out) {
    mesh_tmpl__list_t *items;
    if (!mesh_tmpl__truthy(v)) // Jinja: a falsy input selects nothing
        v = s_undef;
    if (mesh_tmpl__iter_list(rs, n->line, v, &items))
        return rs->rc;
    size_t a0 = 0;
    str_t attr = {0};
    if (by_attr) {
        if (n_args < 1 || args[0].kind != TV_STR)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "%.*s: attribute name (a string) expected",
                                   (int)n->name.n, n->name.p);
        attr = args[0].u.s;
        a0 = 1;
    }
    str_t test = {0};
    if (n_args > a0) {
        if (args[a0].kind != TV_STR || !mesh_tmpl__is_test(args[a0].u.s))
            return mesh_tmpl__fail(rs, MESH_EFORMAT, n->line, "%.*s: unknown test", (int)n->name.n, n->name.p);
        test = args[a0].u.s;
    }
    *out = mesh_tmpl__mklist(rs, items->n);
    if (out->kind != TV_LIST)
        return s_oom(rs, n->line);
    size_t k = 0;
    for (size_t i = 0; i < items->n; i++) {
        val_t x = by_attr ? s_attr_path(items->v[i], attr) : items->v[i];
        bool r;
        if (test.n) {
            if (mesh_tmpl__test(rs, n->line, test, x, args + a0 + 1, n_args - a0 - 1, &r))
                return rs->rc;
        } else {
            r = mesh_tmpl__truthy(x);
        }
        if (r != reject)
            out->u.l->v[k++] = items->v[i];
    }
    out->u.l->n = k;
    return 0;
}

// ------------------------------------------------------------------ filters

int mesh_tmpl__filter(rs_t *rs, const mesh_tmpl__node_t *n, val_t v, val_t *args, size_t n_args,
                      str_t *kwn, val_t *kwv, size_t n_kw, val_t *out) {
    int line = n->line;
    str_t name = n->name;
#define IS(s) mesh_tmpl__str_eq(name, s)
#define ARG(pos, nm) s_arg(args, n_args, kwn, kwv, n_kw, pos, nm)
    *out = s_undef;
    if (IS("safe")) {
        *out = v;
        return 0;
    }
    if (IS("tojson")) {
        // transformers' signature: tojson(x, ensure_ascii=False, indent=None,
        // separators=None, sort_keys=False).
        const val_t *sep = ARG(2, "separators");
        bool compact = false;
        if (sep && sep->kind != TV_NONE) {
            bool ok = sep->kind == TV_LIST && sep->u.l->n == 2 && sep->u.l->v[0].kind == TV_STR &&
                      sep->u.l->v[1].kind == TV_STR;
            if (ok && mesh_tmpl__str_eq(sep->u.l->v[0].u.s, ",") && mesh_tmpl__str_eq(sep->u.l->v[1].u.s, ":"))
                compact = true;
            else if (!(ok && mesh_tmpl__str_eq(sep->u.l->v[0].u.s, ", ") &&
                       mesh_tmpl__str_eq(sep->u.l->v[1].u.s, ": ")))
                return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line,
                                       "tojson: only separators (', ', ': ') and (',', ':') are supported");
        }
        return s_tojson(rs, line, v, ARG(0, "ensure_ascii"), ARG(1, "indent"), ARG(3, "sort_keys"),
                        compact, out);
    }
    if (IS("default") || IS("d")) {
        const val_t *dv = ARG(0, "default_value"), *bl = ARG(1, "boolean");
        bool use = v.kind == TV_UNDEF || (bl && mesh_tmpl__truthy(*bl) && !mesh_tmpl__truthy(v));
        *out = use ? (dv ? *dv : s_str((str_t){"", 0})) : v;
        return 0;
    }
    if (IS("length") || IS("count")) {
        switch (v.kind) {
        case TV_UNDEF: *out = s_intv(0); return 0;
        case TV_STR: *out = s_intv((int64_t)mesh_tmpl__cp_count(v.u.s)); return 0;
        case TV_LIST: *out = s_intv((int64_t)v.u.l->n); return 0;
        case TV_DICT: *out = s_intv((int64_t)v.u.d->n); return 0;
        default: return s_bad(rs, line, "length", "a string, list or dict", v);
        }
    }
    if (IS("string")) {
        *out = mesh_tmpl__str_of(rs, v);
        return rs->rc;
    }
    if (IS("list")) {
        mesh_tmpl__list_t *items;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        *out = mesh_tmpl__mklist(rs, items->n);
        if (out->kind != TV_LIST)
            return s_oom(rs, line);
        if (items->n)
            memcpy(out->u.l->v, items->v, items->n * sizeof(val_t));
        return 0;
    }
    if (IS("items")) {
        if (v.kind == TV_UNDEF) {
            *out = mesh_tmpl__mklist(rs, 0);
            return out->kind == TV_LIST ? 0 : s_oom(rs, line);
        }
        if (v.kind != TV_DICT)
            return s_bad(rs, line, "items", "a dict", v);
        return mesh_tmpl__method(rs, line, v, (str_t){"items", 5}, NULL, 0, NULL, NULL, 0, out) ? rs->rc : 0;
    }
    if (IS("first") || IS("last")) {
        mesh_tmpl__list_t *items;
        if (v.kind == TV_STR || v.kind == TV_LIST || v.kind == TV_UNDEF || v.kind == TV_DICT) {
            if (mesh_tmpl__iter_list(rs, line, v, &items))
                return rs->rc;
            if (items->n)
                *out = IS("first") ? items->v[0] : items->v[items->n - 1];
            return 0;
        }
        return s_bad(rs, line, "first/last", "a sequence", v);
    }
    if (IS("join")) {
        const val_t *sep = ARG(0, "d"), *attr = ARG(1, "attribute");
        if (sep && sep->kind != TV_STR)
            return s_bad(rs, line, "join", "a string separator", *sep);
        mesh_tmpl__list_t *items;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        buf_t b = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (i && sep)
                mesh_tmpl__buf_put(rs, &b, sep->u.s.p, sep->u.s.n);
            val_t x = attr && attr->kind == TV_STR ? s_attr_path(items->v[i], attr->u.s) : items->v[i];
            mesh_tmpl__to_str(rs, &b, x, false);
        }
        *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
        free(b.b);
        return rs->rc;
    }
    if (IS("selectattr") || IS("rejectattr"))
        return s_select(rs, n, v, args, n_args, true, IS("rejectattr"), out);
    if (IS("select") || IS("reject"))
        return s_select(rs, n, v, args, n_args, false, IS("reject"), out);
    if (IS("map")) {
        mesh_tmpl__list_t *items;
        if (!mesh_tmpl__truthy(v)) // Jinja: a falsy input maps to nothing
            v = s_undef;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        const val_t *attr = ARG(99, "attribute"), *dflt = ARG(99, "default");
        if (!attr && (n_args < 1 || args[0].kind != TV_STR || !mesh_tmpl__is_filter(args[0].u.s)))
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "map: needs attribute='name' or a filter name");
        if (attr && attr->kind != TV_STR)
            return s_bad(rs, line, "map", "a string attribute", *attr);
        *out = mesh_tmpl__mklist(rs, items->n);
        if (out->kind != TV_LIST)
            return s_oom(rs, line);
        mesh_tmpl__node_t fn = *n;
        if (!attr)
            fn.name = args[0].u.s;
        for (size_t i = 0; i < items->n; i++) {
            if (attr) {
                val_t x = s_attr_path(items->v[i], attr->u.s);
                out->u.l->v[i] = x.kind == TV_UNDEF && dflt ? *dflt : x;
            } else if (mesh_tmpl__filter(rs, &fn, items->v[i], args + 1, n_args - 1, NULL, NULL, 0,
                                         &out->u.l->v[i])) {
                return rs->rc;
            }
        }
        return 0;
    }
    if (IS("unique")) {
        mesh_tmpl__list_t *items;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        *out = mesh_tmpl__mklist(rs, items->n);
        if (out->kind != TV_LIST)
            return s_oom(rs, line);
        // Jinja compares strings case-insensitively unless case_sensitive=true.
        const val_t *cs = ARG(0, "case_sensitive");
        bool fold = !(cs && mesh_tmpl__truthy(*cs));
        size_t k = 0; // O(n^2): fine for the short lists templates hold
        for (size_t i = 0; i < items->n; i++) {
            bool seen = false;
            for (size_t j = 0; j < k && !seen; j++) {
                val_t a = out->u.l->v[j], b = items->v[i];
                if (fold && a.kind == TV_STR && b.kind == TV_STR) {
                    seen = a.u.s.n == b.u.s.n;
                    for (size_t c = 0; seen && c < a.u.s.n; c++)
                        seen = tolower((unsigned char)a.u.s.p[c]) == tolower((unsigned char)b.u.s.p[c]);
                } else
                    seen = mesh_tmpl__equal(a, b);
            }
            if (!seen)
                out->u.l->v[k++] = items->v[i];
        }
        out->u.l->n = k;
        return 0;
    }
    if (IS("reverse")) {
        if (v.kind == TV_STR) {
            mesh_tmpl__list_t *chars;
            if (mesh_tmpl__iter_list(rs, line, v, &chars))
                return rs->rc;
            char *c = mesh_tmpl__alloc(&rs->arena, v.u.s.n + 1);
            if (!c)
                return s_oom(rs, line);
            size_t o = 0;
            for (size_t i = chars->n; i-- > 0;) {
                memcpy(c + o, chars->v[i].u.s.p, chars->v[i].u.s.n);
                o += chars->v[i].u.s.n;
            }
            *out = s_str((str_t){c, o});
            return 0;
        }
        mesh_tmpl__list_t *items;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        *out = mesh_tmpl__mklist(rs, items->n);
        if (out->kind != TV_LIST)
            return s_oom(rs, line);
        for (size_t i = 0; i < items->n; i++)
            out->u.l->v[i] = items->v[items->n - 1 - i];
        return 0;
    }
    if (IS("int")) {
        const val_t *dv = ARG(0, "default");
        val_t d = dv ? *dv : s_intv(0);
        if (v.kind == TV_INT) {
            *out = v;
        } else if (v.kind == TV_BOOL) {
            *out = s_intv(v.u.b);
        } else if (v.kind == TV_FLOAT) {
            *out = (v.u.f > -9.2e18 && v.u.f < 9.2e18) ? s_intv((int64_t)v.u.f) : d;
        } else if (v.kind == TV_STR) {
            char tmp[64];
            str_t t = s_strip(v.u.s, NULL, true, true);
            if (!t.n || t.n >= sizeof tmp) {
                *out = d;
                return 0;
            }
            memcpy(tmp, t.p, t.n);
            tmp[t.n] = 0;
            char *end;
            long long x = strtoll(tmp, &end, 10);
            if (*end == 0) {
                *out = s_intv(x);
            } else {
                double f = strtod(tmp, &end);
                *out = (*end == 0 && f > -9.2e18 && f < 9.2e18) ? s_intv((int64_t)f) : d;
            }
        } else {
            *out = d;
        }
        return 0;
    }
    if (IS("float")) {
        const val_t *dv = ARG(0, "default");
        val_t d = dv ? *dv : (val_t){.kind = TV_FLOAT, .u.f = 0};
        if (v.kind == TV_FLOAT)
            *out = v;
        else if (v.kind == TV_INT || v.kind == TV_BOOL)
            *out = (val_t){.kind = TV_FLOAT, .u.f = v.kind == TV_INT ? (double)v.u.i : v.u.b};
        else if (v.kind == TV_STR) {
            char tmp[64];
            str_t t = s_strip(v.u.s, NULL, true, true);
            char *end = tmp;
            if (t.n && t.n < sizeof tmp) {
                memcpy(tmp, t.p, t.n);
                tmp[t.n] = 0;
                double f = strtod(tmp, &end);
                *out = *end == 0 ? (val_t){.kind = TV_FLOAT, .u.f = f} : d;
            } else {
                *out = d;
            }
        } else
            *out = d;
        return 0;
    }
    if (IS("abs")) {
        if (v.kind == TV_INT && v.u.i != INT64_MIN)
            *out = s_intv(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.kind == TV_FLOAT)
            *out = (val_t){.kind = TV_FLOAT, .u.f = v.u.f < 0 ? -v.u.f : v.u.f};
        else
            return s_bad(rs, line, "abs", "a number", v);
        return 0;
    }
    if (IS("sum") || IS("min") || IS("max")) {
        mesh_tmpl__list_t *items;
        if (mesh_tmpl__iter_list(rs, line, v, &items))
            return rs->rc;
        if (IS("sum")) {
            int64_t si = 0;
            double sf = 0;
            bool fl = false;
            for (size_t i = 0; i < items->n; i++) {
                val_t x = items->v[i];
                if (x.kind == TV_FLOAT)
                    fl = true, sf += x.u.f;
                else if (x.kind == TV_INT || x.kind == TV_BOOL) {
                    int64_t xi = x.kind == TV_INT ? x.u.i : x.u.b;
                    if (__builtin_add_overflow(si, xi, &si))
                        return mesh_tmpl__fail(rs, MESH_ERANGE, line, "sum: integer overflow");
                } else
                    return s_bad(rs, line, "sum", "numbers", x);
            }
            *out = fl ? (val_t){.kind = TV_FLOAT, .u.f = sf + (double)si} : s_intv(si);
            return 0;
        }
        bool is_min = IS("min");
        for (size_t i = 0; i < items->n; i++) {
            val_t x = items->v[i];
            bool num = x.kind == TV_INT || x.kind == TV_FLOAT;
            if (!num && x.kind != TV_STR)
                return s_bad(rs, line, "min/max", "numbers or strings", x);
            if (i == 0) {
                *out = x;
                continue;
            }
            int cmp;
            if (num && (out->kind == TV_INT || out->kind == TV_FLOAT)) {
                double a = x.kind == TV_INT ? (double)x.u.i : x.u.f;
                double b = out->kind == TV_INT ? (double)out->u.i : out->u.f;
                cmp = (a > b) - (a < b);
            } else if (x.kind == TV_STR && out->kind == TV_STR) {
                size_t m = x.u.s.n < out->u.s.n ? x.u.s.n : out->u.s.n;
                cmp = memcmp(x.u.s.p, out->u.s.p, m);
                if (!cmp)
                    cmp = (x.u.s.n > out->u.s.n) - (x.u.s.n < out->u.s.n);
            } else {
                return s_bad(rs, line, "min/max", "values of one kind", x);
            }
            if (is_min ? cmp < 0 : cmp > 0)
                *out = x;
        }
        return 0;
    }
    // The rest operate on strings.
    if (v.kind == TV_UNDEF)
        v = s_str((str_t){"", 0});
    if (IS("wordcount")) {
        val_t parts;
        if (v.kind != TV_STR)
            return s_bad(rs, line, "wordcount", "a string", v);
        if (s_split(rs, line, v.u.s, NULL, -1, &parts))
            return rs->rc;
        *out = s_intv((int64_t)parts.u.l->n);
        return 0;
    }
    if (IS("dictsort"))
        return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line, "unsupported filter 'dictsort'");
    if (v.kind != TV_STR) {
        if (IS("upper") || IS("lower") || IS("trim") || IS("replace") || IS("capitalize") ||
            IS("title") || IS("indent") || IS("escape") || IS("e")) {
            v = mesh_tmpl__str_of(rs, v);
            if (rs->rc)
                return rs->rc;
        }
    }
    if (IS("upper"))
        return s_case(rs, line, v.u.s, 0, out);
    if (IS("lower"))
        return s_case(rs, line, v.u.s, 1, out);
    if (IS("title"))
        return s_case(rs, line, v.u.s, 4, out);
    if (IS("capitalize"))
        return s_case(rs, line, v.u.s, 3, out);
    if (IS("trim")) {
        const val_t *chars = ARG(0, "chars");
        if (chars && chars->kind != TV_STR && chars->kind != TV_NONE)
            return s_bad(rs, line, "trim", "a string of characters", *chars);
        *out = s_str(s_strip(v.u.s, chars && chars->kind == TV_STR ? &chars->u.s : NULL, true, true));
        return 0;
    }
    if (IS("replace")) {
        const val_t *o = ARG(0, "old"), *r = ARG(1, "new"), *c = ARG(2, "count");
        if (!o || !r || o->kind != TV_STR || r->kind != TV_STR)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "replace: needs two strings");
        return s_replace(rs, line, v.u.s, o->u.s, r->u.s, c && c->kind == TV_INT ? c->u.i : -1, out);
    }
    if (IS("escape") || IS("e")) {
        buf_t b = {0};
        for (size_t i = 0; i < v.u.s.n; i++) {
            char c = v.u.s.p[i];
            const char *e = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;"
                          : c == '"' ? "&#34;" : c == '\'' ? "&#39;" : NULL;
            if (e)
                mesh_tmpl__buf_put(rs, &b, e, strlen(e));
            else
                mesh_tmpl__buf_put(rs, &b, &c, 1);
        }
        *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
        free(b.b);
        return rs->rc;
    }
    if (IS("indent")) {
        const val_t *w = ARG(0, "width"), *first = ARG(1, "first"), *blank = ARG(2, "blank");
        buf_t pad = {0};
        if (w && w->kind == TV_STR)
            mesh_tmpl__buf_put(rs, &pad, w->u.s.p, w->u.s.n);
        else
            for (int64_t i = 0; i < (w && w->kind == TV_INT ? w->u.i : 4) && i < 256; i++)
                mesh_tmpl__buf_put(rs, &pad, " ", 1);
        buf_t b = {0};
        size_t i = 0;
        bool first_line = true;
        while (i <= v.u.s.n && !rs->rc) {
            const char *nl = memchr(v.u.s.p + i, '\n', v.u.s.n - i);
            size_t e = nl ? (size_t)(nl - v.u.s.p) : v.u.s.n;
            bool is_blank = true;
            for (size_t k = i; k < e; k++)
                is_blank &= isspace((unsigned char)v.u.s.p[k]) != 0;
            bool do_pad = first_line ? (first && mesh_tmpl__truthy(*first))
                                     : (!is_blank || (blank && mesh_tmpl__truthy(*blank)));
            if (do_pad)
                mesh_tmpl__buf_put(rs, &b, pad.b, pad.n);
            mesh_tmpl__buf_put(rs, &b, v.u.s.p + i, e - i);
            if (!nl)
                break;
            mesh_tmpl__buf_put(rs, &b, "\n", 1);
            i = e + 1;
            first_line = false;
        }
        *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
        free(b.b);
        free(pad.b);
        return rs->rc;
    }
#undef IS
#undef ARG
    return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line, "filter '%.*s' not supported on a %s",
                           (int)name.n, name.p, mesh_tmpl__kind_name(v));
}

// ------------------------------------------------------------------ tests

int mesh_tmpl__test(rs_t *rs, int line, str_t name, val_t v, val_t *args, size_t n_args, bool *out) {
#define IS(s) mesh_tmpl__str_eq(name, s)
    mesh_tmpl__kind_t k = v.kind;
    if (IS("defined"))
        *out = k != TV_UNDEF;
    else if (IS("undefined"))
        *out = k == TV_UNDEF;
    else if (IS("none"))
        *out = k == TV_NONE;
    else if (IS("string"))
        *out = k == TV_STR;
    else if (IS("number"))
        *out = k == TV_INT || k == TV_FLOAT || k == TV_BOOL;
    else if (IS("integer"))
        *out = k == TV_INT;
    else if (IS("float"))
        *out = k == TV_FLOAT;
    else if (IS("boolean"))
        *out = k == TV_BOOL;
    else if (IS("true"))
        *out = k == TV_BOOL && v.u.b;
    else if (IS("false"))
        *out = k == TV_BOOL && !v.u.b;
    else if (IS("mapping"))
        *out = k == TV_DICT && !v.u.d->is_ns;
    else if (IS("iterable"))
        *out = k == TV_STR || k == TV_LIST || (k == TV_DICT && !v.u.d->is_ns) || k == TV_UNDEF;
    else if (IS("sequence"))
        *out = k == TV_STR || k == TV_LIST || (k == TV_DICT && !v.u.d->is_ns) || k == TV_UNDEF;
    else if (IS("callable"))
        *out = k == TV_MACRO || k == TV_FUNC;
    else if (IS("lower") || IS("upper")) {
        if (k != TV_STR) {
            *out = false;
        } else {
            bool any = false, ok = true;
            for (size_t i = 0; i < v.u.s.n; i++) {
                unsigned char c = (unsigned char)v.u.s.p[i];
                if (c < 0x80 && isalpha(c)) {
                    any = true;
                    ok &= IS("lower") ? islower(c) != 0 : isupper(c) != 0;
                }
            }
            *out = any && ok;
        }
    } else if (IS("odd") || IS("even") || IS("divisibleby")) {
        if (k != TV_INT)
            return s_bad(rs, line, "odd/even/divisibleby test", "an integer", v);
        if (IS("divisibleby")) {
            if (n_args < 1 || args[0].kind != TV_INT || args[0].u.i == 0)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "divisibleby: needs a non-zero integer");
            *out = args[0].u.i == -1 || v.u.i % args[0].u.i == 0;
        } else {
            *out = (v.u.i % 2 != 0) == IS("odd");
        }
    } else {
        if (n_args < 1)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "test '%.*s' needs an argument", (int)name.n, name.p);
        val_t b = args[0];
        if (IS("eq") || IS("equalto") || IS("==") || IS("sameas"))
            *out = mesh_tmpl__equal(v, b) && (!IS("sameas") || v.kind == b.kind);
        else if (IS("ne") || IS("!="))
            *out = !mesh_tmpl__equal(v, b);
        else if (IS("in")) {
            bool found = false;
            if (b.kind == TV_LIST) {
                for (size_t i = 0; i < b.u.l->n && !found; i++)
                    found = mesh_tmpl__equal(v, b.u.l->v[i]);
            } else if (b.kind == TV_STR && v.kind == TV_STR) {
                found = !v.u.s.n || memmem(b.u.s.p, b.u.s.n, v.u.s.p, v.u.s.n);
            } else if (b.kind == TV_DICT && v.kind == TV_STR) {
                found = mesh_tmpl__dict_get(b.u.d, v.u.s) != NULL;
            } else if (b.kind != TV_UNDEF) {
                return s_bad(rs, line, "in test", "a container", b);
            }
            *out = found;
        } else {
            // Orderings.
            bool num = (k == TV_INT || k == TV_FLOAT) && (b.kind == TV_INT || b.kind == TV_FLOAT);
            int cmp;
            if (num) {
                double x = k == TV_INT ? (double)v.u.i : v.u.f, y = b.kind == TV_INT ? (double)b.u.i : b.u.f;
                cmp = (x > y) - (x < y);
            } else if (k == TV_STR && b.kind == TV_STR) {
                size_t m = v.u.s.n < b.u.s.n ? v.u.s.n : b.u.s.n;
                cmp = memcmp(v.u.s.p, b.u.s.p, m);
                if (!cmp)
                    cmp = (v.u.s.n > b.u.s.n) - (v.u.s.n < b.u.s.n);
            } else {
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "test '%.*s': cannot compare %s and %s",
                                       (int)name.n, name.p, mesh_tmpl__kind_name(v), mesh_tmpl__kind_name(b));
            }
            if (IS("lt") || IS("<") || IS("lessthan"))
                *out = cmp < 0;
            else if (IS("le") || IS("<="))
                *out = cmp <= 0;
            else if (IS("gt") || IS(">") || IS("greaterthan"))
                *out = cmp > 0;
            else
                *out = cmp >= 0;
        }
    }
#undef IS
    return 0;
}

// ------------------------------------------------------------------ methods

static int s_argc(rs_t *rs, int line, const char *m, size_t n_args, size_t lo, size_t hi) {
    if (n_args < lo || n_args > hi)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "%s() takes %zu to %zu arguments, %zu given", m,
                               lo, hi, n_args);
    return 0;
}

// Python str.format with {} / {N} / {name} fields (no format specs).
static int s_format(rs_t *rs, int line, str_t f, val_t *args, size_t n_args, str_t *kwn,
                    val_t *kwv, size_t n_kw, val_t *out) {
    buf_t b = {0};
    size_t auto_idx = 0;
    for (size_t i = 0; i < f.n && !rs->rc; i++) {
        char c = f.p[i];
        if ((c == '{' || c == '}') && i + 1 < f.n && f.p[i + 1] == c) {
            mesh_tmpl__buf_put(rs, &b, &c, 1);
            i++;
            continue;
        }
        if (c != '{') {
            mesh_tmpl__buf_put(rs, &b, &c, 1);
            continue;
        }
        const char *close = memchr(f.p + i, '}', f.n - i);
        if (!close) {
            free(b.b);
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "format: unmatched '{'");
        }
        str_t field = {f.p + i + 1, (size_t)(close - (f.p + i + 1))};
        const val_t *v = NULL;
        if (!field.n) {
            v = auto_idx < n_args ? &args[auto_idx] : NULL;
            auto_idx++;
        } else if (isdigit((unsigned char)field.p[0])) {
            size_t idx = 0;
            for (size_t k = 0; k < field.n && isdigit((unsigned char)field.p[k]); k++)
                idx = idx * 10 + (size_t)(field.p[k] - '0');
            v = idx < n_args ? &args[idx] : NULL;
        } else {
            for (size_t k = 0; k < n_kw; k++)
                if (kwn[k].n == field.n && !memcmp(kwn[k].p, field.p, field.n))
                    v = &kwv[k];
        }
        if (!v || memchr(field.p, ':', field.n) || memchr(field.p, '!', field.n)) {
            free(b.b);
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "format: unsupported or missing field '{%.*s}'",
                                   (int)field.n, field.p);
        }
        mesh_tmpl__to_str(rs, &b, *v, false);
        i = (size_t)(close - f.p);
    }
    *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
    free(b.b);
    return rs->rc;
}

static bool s_affix(str_t s, str_t a, bool start) {
    if (a.n > s.n)
        return false;
    return !memcmp(start ? s.p : s.p + s.n - a.n, a.p, a.n);
}

int mesh_tmpl__method(rs_t *rs, int line, val_t obj, str_t name, val_t *args, size_t n_args,
                      str_t *kwn, val_t *kwv, size_t n_kw, val_t *out) {
#define IS(s) mesh_tmpl__str_eq(name, s)
#define ARG(pos, nm) s_arg(args, n_args, kwn, kwv, n_kw, pos, nm)
    *out = s_undef;
    if (obj.kind == TV_STR) {
        str_t s = obj.u.s;
        if (IS("strip") || IS("lstrip") || IS("rstrip")) {
            if (s_argc(rs, line, "strip", n_args, 0, 1))
                return rs->rc;
            const val_t *chars = n_args ? &args[0] : NULL;
            if (chars && chars->kind != TV_STR && chars->kind != TV_NONE)
                return s_bad(rs, line, "strip", "a string of characters", *chars);
            const str_t *cs = chars && chars->kind == TV_STR ? &chars->u.s : NULL;
            *out = s_str(s_strip(s, cs, !IS("rstrip"), !IS("lstrip")));
            return 0;
        }
        if (IS("split")) {
            const val_t *sep = ARG(0, "sep"), *mx = ARG(1, "maxsplit");
            return s_split(rs, line, s, sep, mx && mx->kind == TV_INT ? mx->u.i : -1, out);
        }
        if (IS("startswith") || IS("endswith")) {
            if (s_argc(rs, line, "startswith/endswith", n_args, 1, 1))
                return rs->rc;
            bool r = false;
            if (args[0].kind == TV_STR) {
                r = s_affix(s, args[0].u.s, IS("startswith"));
            } else if (args[0].kind == TV_LIST) {
                for (size_t i = 0; i < args[0].u.l->n && !r; i++) {
                    if (args[0].u.l->v[i].kind != TV_STR)
                        return s_bad(rs, line, "startswith/endswith", "strings", args[0].u.l->v[i]);
                    r = s_affix(s, args[0].u.l->v[i].u.s, IS("startswith"));
                }
            } else {
                return s_bad(rs, line, "startswith/endswith", "a string or tuple", args[0]);
            }
            *out = s_bool(r);
            return 0;
        }
        if (IS("replace")) {
            if (s_argc(rs, line, "replace", n_args, 2, 3))
                return rs->rc;
            if (args[0].kind != TV_STR || args[1].kind != TV_STR)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "replace: needs two strings");
            return s_replace(rs, line, s, args[0].u.s, args[1].u.s,
                             n_args > 2 && args[2].kind == TV_INT ? args[2].u.i : -1, out);
        }
        if (IS("upper") || IS("lower") || IS("title") || IS("capitalize"))
            return s_case(rs, line, s, IS("upper") ? 0 : IS("lower") ? 1 : IS("title") ? 2 : 3, out);
        if (IS("format"))
            return s_format(rs, line, s, args, n_args, kwn, kwv, n_kw, out);
        if (IS("find") || IS("count")) {
            if (s_argc(rs, line, "find/count", n_args, 1, 1))
                return rs->rc;
            if (args[0].kind != TV_STR)
                return s_bad(rs, line, "find/count", "a string", args[0]);
            str_t sub = args[0].u.s;
            if (IS("find")) {
                const char *hit = sub.n ? memmem(s.p, s.n, sub.p, sub.n) : s.p;
                *out = s_intv(hit ? (int64_t)mesh_tmpl__cp_count((str_t){s.p, (size_t)(hit - s.p)}) : -1);
            } else {
                int64_t c = 0;
                if (!sub.n) {
                    c = (int64_t)mesh_tmpl__cp_count(s) + 1;
                } else {
                    for (const char *p = s.p; (p = memmem(p, s.n - (size_t)(p - s.p), sub.p, sub.n)); p += sub.n)
                        c++;
                }
                *out = s_intv(c);
            }
            return 0;
        }
        if (IS("join")) {
            if (s_argc(rs, line, "join", n_args, 1, 1))
                return rs->rc;
            mesh_tmpl__list_t *items;
            if (mesh_tmpl__iter_list(rs, line, args[0], &items))
                return rs->rc;
            buf_t b = {0};
            for (size_t i = 0; i < items->n; i++) {
                if (items->v[i].kind != TV_STR) {
                    free(b.b);
                    return s_bad(rs, line, "join", "strings", items->v[i]);
                }
                if (i)
                    mesh_tmpl__buf_put(rs, &b, s.p, s.n);
                mesh_tmpl__buf_put(rs, &b, items->v[i].u.s.p, items->v[i].u.s.n);
            }
            *out = mesh_tmpl__mkstr(rs, b.b ? b.b : "", b.n);
            free(b.b);
            return rs->rc;
        }
        return 1;
    }
    if (obj.kind == TV_DICT && !obj.u.d->is_ns) {
        mesh_tmpl__dict_t *d = obj.u.d;
        if (IS("items") || IS("keys") || IS("values")) {
            if (s_argc(rs, line, "items/keys/values", n_args, 0, 0))
                return rs->rc;
            *out = mesh_tmpl__mklist(rs, d->n);
            if (out->kind != TV_LIST)
                return s_oom(rs, line);
            for (size_t i = 0; i < d->n; i++) {
                if (IS("keys")) {
                    out->u.l->v[i] = s_str(d->k[i]);
                } else if (IS("values")) {
                    out->u.l->v[i] = d->v[i];
                } else {
                    val_t pair = mesh_tmpl__mklist(rs, 2);
                    if (pair.kind != TV_LIST)
                        return s_oom(rs, line);
                    pair.u.l->tuple = true;
                    pair.u.l->v[0] = s_str(d->k[i]);
                    pair.u.l->v[1] = d->v[i];
                    out->u.l->v[i] = pair;
                }
            }
            return 0;
        }
        if (IS("get")) {
            if (s_argc(rs, line, "get", n_args, 1, 2))
                return rs->rc;
            const val_t *r = args[0].kind == TV_STR ? mesh_tmpl__dict_get(d, args[0].u.s) : NULL;
            *out = r ? *r : n_args > 1 ? args[1] : (val_t){.kind = TV_NONE};
            return 0;
        }
        if (mesh_tmpl__dict_get(d, name))
            return 1; // a member holding a macro, say
        return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line, "unsupported dict method '%.*s'",
                               (int)name.n, name.p);
    }
    if (obj.kind == TV_LIST) {
        if (IS("append") || IS("pop") || IS("insert") || IS("extend") || IS("remove") || IS("clear") ||
            IS("sort") || IS("reverse") || IS("update"))
            return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line,
                                   "list.%.*s() would modify a list (not allowed in chat templates)",
                                   (int)name.n, name.p);
        if (IS("index") || IS("count")) {
            if (s_argc(rs, line, "index/count", n_args, 1, 1))
                return rs->rc;
            int64_t c = 0, first = -1;
            for (size_t i = 0; i < obj.u.l->n; i++)
                if (mesh_tmpl__equal(obj.u.l->v[i], args[0])) {
                    if (first < 0)
                        first = (int64_t)i;
                    c++;
                }
            if (IS("index") && first < 0)
                return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "list.index(): value not in list");
            *out = s_intv(IS("index") ? first : c);
            return 0;
        }
        return mesh_tmpl__fail(rs, MESH_EUNSUPPORTED, line, "unsupported list method '%.*s'",
                               (int)name.n, name.p);
    }
    if (obj.kind == TV_UNDEF)
        return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "cannot call method '%.*s' of an undefined value",
                               (int)name.n, name.p);
    return 1;
#undef IS
#undef ARG
}

// ------------------------------------------------------------------ global functions

int mesh_tmpl__call_func(rs_t *rs, int line, int id, val_t *args, size_t n_args, str_t *kwn,
                         val_t *kwv, size_t n_kw, val_t *out) {
    *out = s_undef;
    switch (id) {
    case TF_NAMESPACE:
    case TF_DICT: {
        if (n_args > (id == TF_DICT ? 1u : 0u) || (n_args && args[0].kind != TV_DICT))
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "%s() takes keyword arguments only",
                                   id == TF_DICT ? "dict" : "namespace");
        *out = mesh_tmpl__mkdict(rs);
        if (out->kind != TV_DICT)
            return s_oom(rs, line);
        out->u.d->is_ns = id == TF_NAMESPACE;
        if (n_args)
            for (size_t i = 0; i < args[0].u.d->n; i++)
                if (mesh_tmpl__dict_set(rs, out->u.d, args[0].u.d->k[i], args[0].u.d->v[i]))
                    return s_oom(rs, line);
        for (size_t i = 0; i < n_kw; i++)
            if (mesh_tmpl__dict_set(rs, out->u.d, kwn[i], kwv[i]))
                return s_oom(rs, line);
        return 0;
    }
    case TF_RAISE: {
        val_t m = n_args ? mesh_tmpl__str_of(rs, args[0]) : s_str((str_t){"", 0});
        if (m.kind != TV_STR)
            return s_oom(rs, line);
        return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "raise_exception: %.*s", (int)m.u.s.n, m.u.s.p);
    }
    case TF_RANGE: {
        int64_t a = 0, b = 0, st = 1;
        for (size_t i = 0; i < n_args; i++) {
            if (args[i].kind == TV_BOOL) // Python's bool is an int
                args[i] = s_intv(args[i].u.b);
            if (args[i].kind != TV_INT)
                return s_bad(rs, line, "range", "integers", args[i]);
        }
        if (n_args == 1)
            b = args[0].u.i;
        else if (n_args == 2 || n_args == 3)
            a = args[0].u.i, b = args[1].u.i, st = n_args == 3 ? args[2].u.i : 1;
        else
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "range() takes 1 to 3 arguments");
        if (st == 0)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "range() step must not be zero");
        int64_t count = 0;
        if (st > 0 && b > a)
            count = (b - a + st - 1) / st;
        else if (st < 0 && a > b)
            count = (a - b - st - 1) / -st;
        if (count > 1000000)
            return mesh_tmpl__fail(rs, MESH_ERANGE, line, "range() of more than 1000000 items");
        *out = mesh_tmpl__mklist(rs, (size_t)count);
        if (out->kind != TV_LIST)
            return s_oom(rs, line);
        for (int64_t i = 0; i < count; i++)
            out->u.l->v[i] = s_intv(a + i * st);
        return 0;
    }
    case TF_STRFTIME: {
        if (n_args != 1 || args[0].kind != TV_STR || args[0].u.s.n > 200)
            return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "strftime_now() takes one format string");
        char fmt[256], res[512];
        memcpy(fmt, args[0].u.s.p, args[0].u.s.n);
        fmt[args[0].u.s.n] = 0;
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        size_t n = strftime(res, sizeof res, fmt, &tmv);
        *out = mesh_tmpl__mkstr(rs, res, n);
        return out->kind == TV_STR ? 0 : s_oom(rs, line);
    }
    default: return mesh_tmpl__fail(rs, MESH_EFORMAT, line, "internal: unknown function");
    }
}
