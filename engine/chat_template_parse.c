// SPDX-License-Identifier: MIT
// Chat templates: lexer and recursive-descent parser (Jinja2 syntax subset).
//
// The lexer turns the source into one token array: text runs (with Jinja's
// whitespace control already applied: `-` markers, trim_blocks,
// lstrip_blocks) and the tokens inside {{ }} and {% %}. The parser builds the
// tree that chat_template_eval.c walks. Operator precedence follows Jinja2:
// cond-expr < or < and < not < comparisons/in < + - < ~ < * / // % < ** <
// unary - < filters and `is` tests < postfix (.attr, [item], (call)).
#include "chat_template_impl.h"

#include "mesh_err.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    K_TEXT,
    K_VAR_BEGIN,
    K_VAR_END,
    K_BLOCK_BEGIN,
    K_BLOCK_END,
    K_NAME,
    K_STR,
    K_INT,
    K_FLOAT,
    K_OP,
    K_EOF,
} s_tkind_t;

typedef struct {
    s_tkind_t kind;
    int line;
    mesh_tmpl__str_t s; // text, name, op, or decoded string literal
    int64_t i;
    double f;
} s_tok_t;

typedef struct {
    mesh_tmpl_t *t;
    mesh_tmpl__arena_t *a;
    s_tok_t *toks;
    size_t n, cap, pos;
    int rc;
    char *err;
    size_t err_len;
    int depth; // expression nesting (limit)
} s_ps_t;

#define S_MAX_DEPTH 200

static int s_fail(s_ps_t *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(s_ps_t *ps, int line, const char *fmt, ...) {
    if (ps->rc)
        return ps->rc;
    ps->rc = MESH_EFORMAT;
    if (ps->err && ps->err_len) {
        int k = snprintf(ps->err, ps->err_len, "template line %d: ", line);
        if (k >= 0 && (size_t)k < ps->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + k, ps->err_len - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return ps->rc;
}

static s_tok_t *s_push(s_ps_t *ps, s_tkind_t k, int line) {
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 256;
        s_tok_t *nt = realloc(ps->toks, cap * sizeof *nt);
        if (!nt) {
            ps->rc = MESH_ENOMEM;
            return NULL;
        }
        ps->toks = nt;
        ps->cap = cap;
    }
    s_tok_t *t = &ps->toks[ps->n++];
    memset(t, 0, sizeof *t);
    t->kind = k;
    t->line = line;
    return t;
}

static int s_lines(const char *p, size_t n) {
    int l = 0;
    for (size_t i = 0; i < n; i++)
        l += p[i] == '\n';
    return l;
}

// Appends one UTF-8 encoded code point.
static size_t s_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int s_hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

// Lexes the inside of a {{ }} or {% %} tag starting at *pos; stops after the
// closing marker. Sets *strip_after when the marker had a '-'.
static int s_lex_tag(s_ps_t *ps, const char *src, size_t len, size_t *pos, int *line, bool block,
                     bool *strip_after, bool *keep_newline) {
    size_t i = *pos;
    int nest = 0; // ( [ { depth: a '}}' inside braces is not the end
    int open_line = *line;
    for (;;) {
        while (i < len && isspace((unsigned char)src[i])) {
            if (src[i] == '\n')
                (*line)++;
            i++;
        }
        if (i >= len)
            return s_fail(ps, open_line, "unclosed '%s' tag (missing '%s')", block ? "{%" : "{{",
                          block ? "%}" : "}}");
        const char *q = src + i;
        size_t left = len - i;
        const char *end = block ? "%}" : "}}";
        if (nest == 0) {
            if ((q[0] == '-' || q[0] == '+') && left >= 3 && q[1] == end[0] && q[2] == end[1]) {
                *strip_after = q[0] == '-';
                *keep_newline = q[0] == '+';
                *pos = i + 3;
                return 0;
            }
            if (left >= 2 && q[0] == end[0] && q[1] == end[1]) {
                *pos = i + 2;
                return 0;
            }
        }
        char c = q[0];
        if (isalpha((unsigned char)c) || c == '_') {
            size_t j = i;
            while (j < len && (isalnum((unsigned char)src[j]) || src[j] == '_'))
                j++;
            s_tok_t *t = s_push(ps, K_NAME, *line);
            if (!t)
                return ps->rc;
            t->s = (mesh_tmpl__str_t){src + i, j - i};
            i = j;
            continue;
        }
        if (isdigit((unsigned char)c)) {
            size_t j = i;
            bool is_float = false;
            while (j < len && (isdigit((unsigned char)src[j]) || src[j] == '_'))
                j++;
            if (j + 1 < len && src[j] == '.' && isdigit((unsigned char)src[j + 1])) {
                is_float = true;
                j++;
                while (j < len && isdigit((unsigned char)src[j]))
                    j++;
            }
            if (j < len && (src[j] == 'e' || src[j] == 'E')) {
                size_t k = j + 1;
                if (k < len && (src[k] == '+' || src[k] == '-'))
                    k++;
                if (k < len && isdigit((unsigned char)src[k])) {
                    is_float = true;
                    j = k;
                    while (j < len && isdigit((unsigned char)src[j]))
                        j++;
                }
            }
            char num[64];
            size_t nn = 0;
            for (size_t k = i; k < j && nn + 1 < sizeof num; k++)
                if (src[k] != '_')
                    num[nn++] = src[k];
            num[nn] = 0;
            if (j - i >= sizeof num)
                return s_fail(ps, *line, "number literal too long");
            s_tok_t *t = s_push(ps, is_float ? K_FLOAT : K_INT, *line);
            if (!t)
                return ps->rc;
            if (is_float) {
                t->f = strtod(num, NULL);
            } else {
                char *e;
                unsigned long long v = strtoull(num, &e, 10);
                if (v > (unsigned long long)INT64_MAX || nn > 19)
                    return s_fail(ps, *line, "integer literal does not fit in 64 bits");
                t->i = (int64_t)v;
            }
            i = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            // Python string literal: escapes decoded into an arena copy.
            size_t j = i + 1;
            char *o = mesh_tmpl__alloc(ps->a, (len - i) * 1 + 4);
            if (!o)
                return ps->rc = MESH_ENOMEM;
            size_t on = 0;
            int sline = *line;
            for (;;) {
                if (j >= len)
                    return s_fail(ps, sline, "unterminated string literal");
                char d = src[j];
                if (d == c) {
                    j++;
                    break;
                }
                if (d == '\n')
                    (*line)++;
                if (d != '\\') {
                    o[on++] = d;
                    j++;
                    continue;
                }
                if (j + 1 >= len)
                    return s_fail(ps, sline, "unterminated string literal");
                char e = src[j + 1];
                j += 2;
                switch (e) {
                case 'n': o[on++] = '\n'; break;
                case 't': o[on++] = '\t'; break;
                case 'r': o[on++] = '\r'; break;
                case '0': o[on++] = '\0'; break;
                case 'a': o[on++] = '\a'; break;
                case 'b': o[on++] = '\b'; break;
                case 'f': o[on++] = '\f'; break;
                case 'v': o[on++] = '\v'; break;
                case '\\': o[on++] = '\\'; break;
                case '\'': o[on++] = '\''; break;
                case '"': o[on++] = '"'; break;
                case '\n': (*line)++; break; // line continuation
                case 'x':
                case 'u':
                case 'U': {
                    int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    uint32_t cp = 0;
                    for (int k = 0; k < nd; k++) {
                        int h = j < len ? s_hexval(src[j]) : -1;
                        if (h < 0)
                            return s_fail(ps, *line, "bad \\%c escape in string literal", e);
                        cp = cp * 16 + (uint32_t)h;
                        j++;
                    }
                    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return s_fail(ps, *line, "bad code point in string literal escape");
                    on += s_utf8(o + on, cp);
                    break;
                }
                default: // Python keeps unknown escapes as written
                    o[on++] = '\\';
                    o[on++] = e;
                    break;
                }
            }
            s_tok_t *t = s_push(ps, K_STR, sline);
            if (!t)
                return ps->rc;
            t->s = (mesh_tmpl__str_t){o, on};
            i = j;
            continue;
        }
        static const char *ops2[] = {"**", "//", "==", "!=", "<=", ">="};
        size_t oplen = 0;
        for (size_t k = 0; k < sizeof ops2 / sizeof ops2[0]; k++)
            if (left >= 2 && q[0] == ops2[k][0] && q[1] == ops2[k][1])
                oplen = 2;
        if (!oplen && strchr("+-*/%~<>=()[]{}.,:|", c))
            oplen = 1;
        if (!oplen)
            return s_fail(ps, *line, "unexpected character '%c' in tag", isprint((unsigned char)c) ? c : '?');
        if (c == '(' || c == '[' || c == '{')
            nest++;
        if ((c == ')' || c == ']' || c == '}') && nest > 0)
            nest--;
        s_tok_t *t = s_push(ps, K_OP, *line);
        if (!t)
            return ps->rc;
        t->s = (mesh_tmpl__str_t){q, oplen};
        i += oplen;
    }
}

static int s_lex(s_ps_t *ps, const char *src, size_t len, const mesh_tmpl_opts_t *o) {
    size_t pos = 0;
    int line = 1;
    bool strip_next = false;   // previous tag ended with '-': drop leading whitespace
    bool trim_next = false;    // previous block tag + trim_blocks: drop one newline
    bool line_starting = true; // the previous tag's suffix ended a line (lstrip_blocks)
    while (pos < len) {
        // Find the next tag opener.
        size_t k = pos;
        while (k + 1 < len && !(src[k] == '{' && (src[k + 1] == '{' || src[k + 1] == '%' ||
                                                  src[k + 1] == '#')))
            k++;
        if (k + 1 >= len)
            k = len;
        const char *tp = src + pos;
        size_t tn = k - pos;
        int text_line = line;
        line += s_lines(tp, tn);
        // Leading whitespace control from the previous tag.
        if (strip_next) {
            while (tn && isspace((unsigned char)tp[0])) {
                line_starting = tp[0] == '\n';
                if (tp[0] == '\n')
                    text_line++;
                tp++, tn--;
            }
        } else if (trim_next && tn && tp[0] == '\n') {
            tp++, tn--;
            text_line++;
            line_starting = true;
        }
        strip_next = trim_next = false;
        char kind = k < len ? src[k + 1] : 0;
        char mark = k + 2 < len ? src[k + 2] : 0;
        if (kind && mark == '-') {
            while (tn && isspace((unsigned char)tp[tn - 1]))
                tn--;
        } else if (kind && o->lstrip_blocks && kind != '{' && mark != '+') {
            size_t l = tn;
            while (l && tp[l - 1] != '\n')
                l--;
            bool all_ws = true;
            for (size_t j = l; j < tn && all_ws; j++)
                all_ws = isspace((unsigned char)tp[j]) && tp[j] != '\n';
            if (all_ws && (l > 0 || line_starting))
                tn = l;
        }
        if (tn) {
            s_tok_t *t = s_push(ps, K_TEXT, text_line);
            if (!t)
                return ps->rc;
            t->s = (mesh_tmpl__str_t){tp, tn};
        }
        if (k >= len)
            break;
        line_starting = false;
        size_t i = k + 2 + ((mark == '-' || mark == '+') ? 1 : 0);
        if (kind == '#') {
            size_t j = i;
            while (j + 1 < len && !(src[j] == '#' && src[j + 1] == '}'))
                j++;
            if (j + 1 >= len)
                return s_fail(ps, line, "unclosed comment (missing '#}')");
            line += s_lines(src + i, j + 2 - i);
            strip_next = j > i && src[j - 1] == '-';
            trim_next = o->trim_blocks && !(j > i && src[j - 1] == '+');
            pos = j + 2;
            continue;
        }
        bool block = kind == '%';
        int tag_line = line;
        s_tok_t *t = s_push(ps, block ? K_BLOCK_BEGIN : K_VAR_BEGIN, tag_line);
        if (!t)
            return ps->rc;
        bool strip_after = false, keep_nl = false;
        int rc = s_lex_tag(ps, src, len, &i, &line, block, &strip_after, &keep_nl);
        if (rc)
            return rc;
        t = s_push(ps, block ? K_BLOCK_END : K_VAR_END, line);
        if (!t)
            return ps->rc;
        // {% raw %}: copy verbatim up to {% endraw %}.
        if (block && ps->n >= 3 && ps->toks[ps->n - 2].kind == K_NAME &&
            ps->toks[ps->n - 3].kind == K_BLOCK_BEGIN && mesh_tmpl__str_eq(ps->toks[ps->n - 2].s, "raw"))
            return s_fail(ps, tag_line, "unsupported tag 'raw'");
        strip_next = strip_after;
        trim_next = block && o->trim_blocks && !keep_nl;
        pos = i;
    }
    s_tok_t *t = s_push(ps, K_EOF, line);
    return t ? 0 : ps->rc;
}

// ------------------------------------------------------------------ parser helpers

static s_tok_t *s_peek(s_ps_t *ps) { return &ps->toks[ps->pos]; }
static s_tok_t *s_next(s_ps_t *ps) {
    s_tok_t *t = &ps->toks[ps->pos];
    if (t->kind != K_EOF)
        ps->pos++;
    return t;
}
static bool s_is_op(s_tok_t *t, const char *op) { return t->kind == K_OP && mesh_tmpl__str_eq(t->s, op); }
static bool s_is_name(s_tok_t *t, const char *w) { return t->kind == K_NAME && mesh_tmpl__str_eq(t->s, w); }
static bool s_accept_op(s_ps_t *ps, const char *op) {
    if (s_is_op(s_peek(ps), op)) {
        ps->pos++;
        return true;
    }
    return false;
}
static bool s_accept_name(s_ps_t *ps, const char *w) {
    if (s_is_name(s_peek(ps), w)) {
        ps->pos++;
        return true;
    }
    return false;
}

static const char *s_tok_desc(s_tok_t *t, char *buf, size_t n) {
    switch (t->kind) {
    case K_EOF: return "end of template";
    case K_TEXT: return "text";
    case K_VAR_END: return "'}}'";
    case K_BLOCK_END: return "'%}'";
    case K_VAR_BEGIN: return "'{{'";
    case K_BLOCK_BEGIN: return "'{%'";
    case K_STR: return "a string";
    case K_INT:
    case K_FLOAT: return "a number";
    default: snprintf(buf, n, "'%.*s'", (int)(t->s.n > 40 ? 40 : t->s.n), t->s.p); return buf;
    }
}

static int s_expect_op(s_ps_t *ps, const char *op) {
    if (s_accept_op(ps, op))
        return 0;
    char b[64];
    return s_fail(ps, s_peek(ps)->line, "expected '%s', found %s", op, s_tok_desc(s_peek(ps), b, sizeof b));
}

static mesh_tmpl__node_t *s_node(s_ps_t *ps, mesh_tmpl__nkind_t k, int line) {
    mesh_tmpl__node_t *n = mesh_tmpl__alloc(ps->a, sizeof *n);
    if (!n) {
        ps->rc = ps->rc ? ps->rc : MESH_ENOMEM;
        return NULL;
    }
    n->kind = k;
    n->line = line;
    return n;
}

// A growable array of node pointers (malloc'd while building, then copied to the arena).
typedef struct {
    mesh_tmpl__node_t **v;
    size_t n, cap;
} s_nvec_t;

static int s_nvec_push(s_ps_t *ps, s_nvec_t *v, mesh_tmpl__node_t *n) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        mesh_tmpl__node_t **nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return ps->rc = MESH_ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return 0;
}

static mesh_tmpl__node_t **s_nvec_finish(s_ps_t *ps, s_nvec_t *v, size_t *n) {
    *n = v->n;
    mesh_tmpl__node_t **out = NULL;
    if (v->n) {
        out = mesh_tmpl__alloc(ps->a, v->n * sizeof *out);
        if (out)
            memcpy(out, v->v, v->n * sizeof *out);
        else
            ps->rc = MESH_ENOMEM;
    }
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
    return out;
}

// ------------------------------------------------------------------ expressions

static mesh_tmpl__node_t *s_expr(s_ps_t *ps);
static mesh_tmpl__node_t *s_or(s_ps_t *ps);
static mesh_tmpl__node_t *s_unary(s_ps_t *ps, bool with_filter);

// Parses "(args, kw=val)" after the '(' was consumed, into n's args/kwargs.
static int s_call_args(s_ps_t *ps, mesh_tmpl__node_t *n) {
    s_nvec_t args = {0}, kwv = {0};
    mesh_tmpl__str_t kwn[32];
    size_t nkw = 0;
    while (!s_accept_op(ps, ")")) {
        if (args.n + nkw > 0 && s_expect_op(ps, ","))
            goto fail;
        if (s_accept_op(ps, ")"))
            break;
        s_tok_t *t = s_peek(ps);
        if (t->kind == K_NAME && s_is_op(&ps->toks[ps->pos + 1], "=")) {
            if (nkw == 32) {
                s_fail(ps, t->line, "too many keyword arguments");
                goto fail;
            }
            kwn[nkw++] = t->s;
            ps->pos += 2;
            mesh_tmpl__node_t *e = s_expr(ps);
            if (!e || s_nvec_push(ps, &kwv, e))
                goto fail;
        } else {
            if (nkw) {
                s_fail(ps, t->line, "positional argument after keyword argument");
                goto fail;
            }
            mesh_tmpl__node_t *e = s_expr(ps);
            if (!e || s_nvec_push(ps, &args, e))
                goto fail;
        }
    }
    n->args = s_nvec_finish(ps, &args, &n->n_args);
    n->kwargs = s_nvec_finish(ps, &kwv, &n->n_kw);
    if (nkw) {
        n->kwnames = mesh_tmpl__alloc(ps->a, nkw * sizeof *n->kwnames);
        if (!n->kwnames)
            return ps->rc = MESH_ENOMEM;
        memcpy(n->kwnames, kwn, nkw * sizeof *kwn);
    }
    return ps->rc;
fail:
    free(args.v);
    free(kwv.v);
    return ps->rc ? ps->rc : MESH_EFORMAT;
}

static mesh_tmpl__node_t *s_primary(s_ps_t *ps) {
    s_tok_t *t = s_next(ps);
    mesh_tmpl__node_t *n;
    char b[64];
    switch (t->kind) {
    case K_NAME:
        if (s_is_name(t, "true") || s_is_name(t, "True") || s_is_name(t, "false") ||
            s_is_name(t, "False")) {
            if (!(n = s_node(ps, E_LIT, t->line)))
                return NULL;
            n->lit.kind = TV_BOOL;
            n->lit.u.b = t->s.p[0] == 't' || t->s.p[0] == 'T';
            return n;
        }
        if (s_is_name(t, "none") || s_is_name(t, "None")) {
            if (!(n = s_node(ps, E_LIT, t->line)))
                return NULL;
            n->lit.kind = TV_NONE;
            return n;
        }
        if (!(n = s_node(ps, E_NAME, t->line)))
            return NULL;
        n->name = t->s;
        return n;
    case K_STR: {
        if (!(n = s_node(ps, E_LIT, t->line)))
            return NULL;
        // Adjacent string literals concatenate, as in Python.
        mesh_tmpl__str_t s = t->s;
        while (s_peek(ps)->kind == K_STR) {
            s_tok_t *u = s_next(ps);
            char *c = mesh_tmpl__alloc(ps->a, s.n + u->s.n + 1);
            if (!c) {
                ps->rc = MESH_ENOMEM;
                return NULL;
            }
            memcpy(c, s.p, s.n);
            memcpy(c + s.n, u->s.p, u->s.n);
            s = (mesh_tmpl__str_t){c, s.n + u->s.n};
        }
        n->lit.kind = TV_STR;
        n->lit.u.s = s;
        return n;
    }
    case K_INT:
        if (!(n = s_node(ps, E_LIT, t->line)))
            return NULL;
        n->lit.kind = TV_INT;
        n->lit.u.i = t->i;
        return n;
    case K_FLOAT:
        if (!(n = s_node(ps, E_LIT, t->line)))
            return NULL;
        n->lit.kind = TV_FLOAT;
        n->lit.u.f = t->f;
        return n;
    case K_OP:
        if (s_is_op(t, "(")) {
            // Parenthesised expression or tuple (tuples become lists).
            if (s_accept_op(ps, ")")) {
                n = s_node(ps, E_LIST, t->line);
                if (n)
                    n->op = 1;
                return n;
            }
            mesh_tmpl__node_t *e = s_expr(ps);
            if (!e)
                return NULL;
            if (s_accept_op(ps, ")"))
                return e;
            if (!s_is_op(s_peek(ps), ",")) {
                s_expect_op(ps, ")");
                return NULL;
            }
            s_nvec_t items = {0};
            if (s_nvec_push(ps, &items, e))
                return NULL;
            while (s_accept_op(ps, ",")) {
                if (s_is_op(s_peek(ps), ")"))
                    break;
                mesh_tmpl__node_t *x = s_expr(ps);
                if (!x || s_nvec_push(ps, &items, x)) {
                    free(items.v);
                    return NULL;
                }
            }
            if (s_expect_op(ps, ")")) {
                free(items.v);
                return NULL;
            }
            if (!(n = s_node(ps, E_LIST, t->line))) {
                free(items.v);
                return NULL;
            }
            n->args = s_nvec_finish(ps, &items, &n->n_args);
            n->op = 1;
            return n;
        }
        if (s_is_op(t, "[")) {
            s_nvec_t items = {0};
            while (!s_accept_op(ps, "]")) {
                if (items.n && s_expect_op(ps, ","))
                    goto list_fail;
                if (s_accept_op(ps, "]"))
                    break;
                mesh_tmpl__node_t *x = s_expr(ps);
                if (!x || s_nvec_push(ps, &items, x))
                    goto list_fail;
            }
            if (!(n = s_node(ps, E_LIST, t->line)))
                goto list_fail;
            n->args = s_nvec_finish(ps, &items, &n->n_args);
            return n;
        list_fail:
            free(items.v);
            return NULL;
        }
        if (s_is_op(t, "{")) {
            s_nvec_t vals = {0};
            mesh_tmpl__str_t *keys = NULL;
            size_t nk = 0, capk = 0;
            while (!s_accept_op(ps, "}")) {
                if (nk && s_expect_op(ps, ","))
                    goto dict_fail;
                if (s_accept_op(ps, "}"))
                    break;
                s_tok_t *k = s_next(ps);
                if (k->kind != K_STR) {
                    s_fail(ps, k->line, "dict literal keys must be string literals");
                    goto dict_fail;
                }
                if (s_expect_op(ps, ":"))
                    goto dict_fail;
                mesh_tmpl__node_t *x = s_expr(ps);
                if (!x || s_nvec_push(ps, &vals, x))
                    goto dict_fail;
                if (nk == capk) {
                    capk = capk ? capk * 2 : 8;
                    mesh_tmpl__str_t *nkeys = realloc(keys, capk * sizeof *keys);
                    if (!nkeys) {
                        ps->rc = MESH_ENOMEM;
                        goto dict_fail;
                    }
                    keys = nkeys;
                }
                keys[nk++] = k->s;
            }
            if (!(n = s_node(ps, E_DICT, t->line)))
                goto dict_fail;
            n->kwargs = s_nvec_finish(ps, &vals, &n->n_kw);
            if (nk) {
                n->kwnames = mesh_tmpl__alloc(ps->a, nk * sizeof *keys);
                if (!n->kwnames)
                    goto dict_fail;
                memcpy(n->kwnames, keys, nk * sizeof *keys);
            }
            free(keys);
            return n;
        dict_fail:
            free(vals.v);
            free(keys);
            if (!ps->rc)
                ps->rc = MESH_ENOMEM;
            return NULL;
        }
        break;
    default: break;
    }
    s_fail(ps, t->line, "unexpected %s in expression", s_tok_desc(t, b, sizeof b));
    return NULL;
}

static mesh_tmpl__node_t *s_postfix(s_ps_t *ps, mesh_tmpl__node_t *n) {
    for (;;) {
        s_tok_t *t = s_peek(ps);
        if (s_is_op(t, ".")) {
            ps->pos++;
            s_tok_t *a = s_next(ps);
            mesh_tmpl__node_t *m;
            if (a->kind == K_NAME) {
                if (!(m = s_node(ps, E_ATTR, a->line)))
                    return NULL;
                m->name = a->s;
            } else if (a->kind == K_INT) { // x.0 means x[0]
                if (!(m = s_node(ps, E_ITEM, a->line)) || !(m->b = s_node(ps, E_LIT, a->line)))
                    return NULL;
                m->b->lit.kind = TV_INT;
                m->b->lit.u.i = a->i;
            } else {
                s_fail(ps, a->line, "attribute name expected after '.'");
                return NULL;
            }
            m->a = n;
            n = m;
        } else if (s_is_op(t, "[")) {
            ps->pos++;
            mesh_tmpl__node_t *parts[3] = {NULL, NULL, NULL};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (s_is_op(s_peek(ps), ":")) {
                    ps->pos++;
                    slice = true;
                    if (++np > 2) {
                        s_fail(ps, t->line, "too many ':' in slice");
                        return NULL;
                    }
                    continue;
                }
                if (s_accept_op(ps, "]"))
                    break;
                if (parts[np]) {
                    s_expect_op(ps, "]");
                    return NULL;
                }
                if (!(parts[np] = s_expr(ps)))
                    return NULL;
            }
            if (!slice && !parts[0]) {
                s_fail(ps, t->line, "empty subscript");
                return NULL;
            }
            mesh_tmpl__node_t *m = s_node(ps, slice ? E_SLICE : E_ITEM, t->line);
            if (!m)
                return NULL;
            m->a = n;
            m->b = parts[0];
            m->c = parts[1];
            if (slice && parts[2]) {
                m->args = mesh_tmpl__alloc(ps->a, sizeof *m->args);
                if (!m->args) {
                    ps->rc = MESH_ENOMEM;
                    return NULL;
                }
                m->args[0] = parts[2];
                m->n_args = 1;
            }
            n = m;
        } else if (s_is_op(t, "(")) {
            ps->pos++;
            mesh_tmpl__node_t *m = s_node(ps, E_CALL, t->line);
            if (!m)
                return NULL;
            m->a = n;
            if (s_call_args(ps, m))
                return NULL;
            n = m;
        } else {
            return n;
        }
    }
}

static mesh_tmpl__node_t *s_filters(s_ps_t *ps, mesh_tmpl__node_t *n) {
    for (;;) {
        s_tok_t *t = s_peek(ps);
        if (s_is_op(t, "|")) {
            ps->pos++;
            s_tok_t *f = s_next(ps);
            if (f->kind != K_NAME) {
                s_fail(ps, f->line, "filter name expected after '|'");
                return NULL;
            }
            if (!mesh_tmpl__is_filter(f->s)) {
                s_fail(ps, f->line, "unknown filter '%.*s'", (int)f->s.n, f->s.p);
                return NULL;
            }
            mesh_tmpl__node_t *m = s_node(ps, E_FILTER, f->line);
            if (!m)
                return NULL;
            m->a = n;
            m->name = f->s;
            if (s_accept_op(ps, "(") && s_call_args(ps, m))
                return NULL;
            n = m;
        } else if (s_is_name(t, "is")) {
            ps->pos++;
            bool neg = s_accept_name(ps, "not");
            s_tok_t *f = s_next(ps);
            // `is none` / `is true` / `is false` arrive as names too.
            if (f->kind != K_NAME && !(f->kind == K_OP && (s_is_op(f, "==") || s_is_op(f, "!=") ||
                                                            s_is_op(f, "<") || s_is_op(f, ">") ||
                                                            s_is_op(f, "<=") || s_is_op(f, ">=")))) {
                s_fail(ps, f->line, "test name expected after 'is'");
                return NULL;
            }
            if (!mesh_tmpl__is_test(f->s)) {
                s_fail(ps, f->line, "unknown test '%.*s'", (int)f->s.n, f->s.p);
                return NULL;
            }
            mesh_tmpl__node_t *m = s_node(ps, E_TEST, f->line);
            if (!m)
                return NULL;
            m->a = n;
            m->name = f->s;
            m->op = neg;
            if (s_accept_op(ps, "(")) {
                if (s_call_args(ps, m))
                    return NULL;
            } else {
                // One bare argument (`is divisibleby 3`, `is sameas none`) when a
                // primary follows directly.
                s_tok_t *x = s_peek(ps);
                if (x->kind == K_STR || x->kind == K_INT || x->kind == K_FLOAT ||
                    (x->kind == K_NAME && !s_is_name(x, "and") && !s_is_name(x, "or") &&
                     !s_is_name(x, "if") && !s_is_name(x, "else") && !s_is_name(x, "is") &&
                     !s_is_name(x, "in") && !s_is_name(x, "not") && !s_is_name(x, "recursive"))) {
                    mesh_tmpl__node_t *arg = s_postfix(ps, s_primary(ps));
                    if (!arg)
                        return NULL;
                    m->args = mesh_tmpl__alloc(ps->a, sizeof *m->args);
                    if (!m->args) {
                        ps->rc = MESH_ENOMEM;
                        return NULL;
                    }
                    m->args[0] = arg;
                    m->n_args = 1;
                }
            }
            n = m;
        } else {
            return n;
        }
    }
}

static mesh_tmpl__node_t *s_unary(s_ps_t *ps, bool with_filter) {
    s_tok_t *t = s_peek(ps);
    mesh_tmpl__node_t *n;
    if (++ps->depth > S_MAX_DEPTH) {
        s_fail(ps, t->line, "expression nested too deeply");
        return NULL;
    }
    if (s_is_op(t, "-") || s_is_op(t, "+")) {
        ps->pos++;
        mesh_tmpl__node_t *x = s_unary(ps, false);
        if (!x || !(n = s_node(ps, E_UNARY, t->line)))
            return NULL;
        n->op = t->s.p[0];
        n->a = x;
    } else {
        n = s_primary(ps);
        if (n)
            n = s_postfix(ps, n);
    }
    if (n && with_filter)
        n = s_filters(ps, n);
    ps->depth--;
    return n;
}

static mesh_tmpl__node_t *s_binary(s_ps_t *ps, int op, mesh_tmpl__node_t *a, mesh_tmpl__node_t *b, int line) {
    if (!a || !b)
        return NULL;
    mesh_tmpl__node_t *n = s_node(ps, E_BINARY, line);
    if (!n)
        return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static mesh_tmpl__node_t *s_pow(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_unary(ps, true);
    while (n && s_is_op(s_peek(ps), "**")) {
        int line = s_next(ps)->line;
        n = s_binary(ps, 'P', n, s_unary(ps, true), line);
    }
    return n;
}

static mesh_tmpl__node_t *s_math2(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_pow(ps);
    for (;;) {
        s_tok_t *t = s_peek(ps);
        int op = s_is_op(t, "*") ? '*' : s_is_op(t, "/") ? '/' : s_is_op(t, "//") ? 'F' : s_is_op(t, "%") ? '%' : 0;
        if (!n || !op)
            return n;
        ps->pos++;
        n = s_binary(ps, op, n, s_pow(ps), t->line);
    }
}

static mesh_tmpl__node_t *s_concat(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_math2(ps);
    while (n && s_is_op(s_peek(ps), "~")) {
        int line = s_next(ps)->line;
        n = s_binary(ps, '~', n, s_math2(ps), line);
    }
    return n;
}

static mesh_tmpl__node_t *s_math1(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_concat(ps);
    for (;;) {
        s_tok_t *t = s_peek(ps);
        int op = s_is_op(t, "+") ? '+' : s_is_op(t, "-") ? '-' : 0;
        if (!n || !op)
            return n;
        ps->pos++;
        n = s_binary(ps, op, n, s_concat(ps), t->line);
    }
}

static mesh_tmpl__node_t *s_compare(s_ps_t *ps) {
    mesh_tmpl__node_t *first = s_math1(ps);
    mesh_tmpl__node_t *rhs[64];
    int ops[64], line = first ? first->line : 0;
    size_t n = 0;
    while (first) {
        s_tok_t *t = s_peek(ps);
        int op = 0;
        if (s_is_op(t, "=="))
            op = '=';
        else if (s_is_op(t, "!="))
            op = 'N';
        else if (s_is_op(t, "<"))
            op = '<';
        else if (s_is_op(t, ">"))
            op = '>';
        else if (s_is_op(t, "<="))
            op = 'L';
        else if (s_is_op(t, ">="))
            op = 'G';
        else if (s_is_name(t, "in"))
            op = 'i';
        else if (s_is_name(t, "not") && s_is_name(&ps->toks[ps->pos + 1], "in"))
            op = 'I';
        if (!op)
            break;
        if (n == 64) {
            s_fail(ps, t->line, "comparison chain too long");
            return NULL;
        }
        if (!n)
            line = t->line;
        ps->pos += op == 'I' ? 2 : 1;
        if (!(rhs[n] = s_math1(ps)))
            return NULL;
        ops[n++] = op;
    }
    if (!first || n == 0)
        return first;
    if (n == 1)
        return s_binary(ps, ops[0], first, rhs[0], line);
    // a < b < c means (a < b) and (b < c) with b evaluated once, as in Python.
    mesh_tmpl__node_t *ch = s_node(ps, E_CHAIN, line);
    if (!ch)
        return NULL;
    ch->a = first;
    ch->n_args = n;
    ch->args = mesh_tmpl__alloc(ps->a, n * sizeof *ch->args);
    ch->ops = mesh_tmpl__alloc(ps->a, n * sizeof *ch->ops);
    if (!ch->args || !ch->ops) {
        ps->rc = MESH_ENOMEM;
        return NULL;
    }
    memcpy(ch->args, rhs, n * sizeof *rhs);
    memcpy(ch->ops, ops, n * sizeof *ops);
    return ch;
}

static mesh_tmpl__node_t *s_not(s_ps_t *ps) {
    s_tok_t *t = s_peek(ps);
    if (s_is_name(t, "not")) {
        ps->pos++;
        if (++ps->depth > S_MAX_DEPTH) {
            s_fail(ps, t->line, "expression nested too deeply");
            return NULL;
        }
        mesh_tmpl__node_t *x = s_not(ps), *n;
        ps->depth--;
        if (!x || !(n = s_node(ps, E_UNARY, t->line)))
            return NULL;
        n->op = '!';
        n->a = x;
        return n;
    }
    return s_compare(ps);
}

static mesh_tmpl__node_t *s_and(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_not(ps);
    while (n && s_is_name(s_peek(ps), "and")) {
        int line = s_next(ps)->line;
        mesh_tmpl__node_t *b = s_not(ps), *m;
        if (!b || !(m = s_node(ps, E_AND, line)))
            return NULL;
        m->a = n;
        m->b = b;
        n = m;
    }
    return n;
}

static mesh_tmpl__node_t *s_or(s_ps_t *ps) {
    mesh_tmpl__node_t *n = s_and(ps);
    while (n && s_is_name(s_peek(ps), "or")) {
        int line = s_next(ps)->line;
        mesh_tmpl__node_t *b = s_and(ps), *m;
        if (!b || !(m = s_node(ps, E_OR, line)))
            return NULL;
        m->a = n;
        m->b = b;
        n = m;
    }
    return n;
}

static mesh_tmpl__node_t *s_expr(s_ps_t *ps) {
    if (++ps->depth > S_MAX_DEPTH) {
        s_fail(ps, s_peek(ps)->line, "expression nested too deeply");
        return NULL;
    }
    mesh_tmpl__node_t *n = s_or(ps);
    while (n && s_is_name(s_peek(ps), "if")) {
        int line = s_next(ps)->line;
        mesh_tmpl__node_t *m = s_node(ps, E_COND, line);
        if (!m)
            return NULL;
        m->b = n;
        if (!(m->a = s_or(ps)))
            return NULL;
        if (s_accept_name(ps, "else") && !(m->c = s_expr(ps)))
            return NULL;
        n = m;
    }
    ps->depth--;
    return n;
}

// ------------------------------------------------------------------ statements

static int s_body(s_ps_t *ps, const char *const *stops, s_nvec_t *out, const char **stop_found);

static int s_end_block(s_ps_t *ps) {
    s_tok_t *t = s_next(ps);
    if (t->kind == K_BLOCK_END)
        return 0;
    char b[64];
    return s_fail(ps, t->line, "expected '%%}', found %s", s_tok_desc(t, b, sizeof b));
}

// Parses the body up to one of stops; the stop keyword is consumed, its tag
// end is not. *found gets the stop (static string).
static int s_until(s_ps_t *ps, const char *const *stops, mesh_tmpl__node_t ***body, size_t *n,
                   const char **found, int open_line, const char *what) {
    s_nvec_t v = {0};
    int rc = s_body(ps, stops, &v, found);
    *body = s_nvec_finish(ps, &v, n);
    if (rc)
        return rc;
    if (!*found)
        return s_fail(ps, open_line, "unclosed '%s' (missing '%s')", what, stops[0]);
    return ps->rc;
}

// Jinja's scoping, approximated: a name whose first reference at a scope's
// own level (in evaluation order; if-branches belong to the level, nested
// loop and macro bodies do not) is an assignment belongs to that scope, and
// nested loops or macros that read it before the assignment runs see
// undefined. A name first read (or assigned only inside an if) resolves
// through the enclosing scopes instead.
typedef struct {
    mesh_tmpl__str_t *v;
    size_t n, cap;
} s_names_t;

static bool s_names_has(const s_names_t *s, mesh_tmpl__str_t x) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].n == x.n && !memcmp(s->v[i].p, x.p, x.n))
            return true;
    return false;
}

static int s_names_add(s_ps_t *ps, s_names_t *s, mesh_tmpl__str_t x) {
    if (s_names_has(s, x))
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        mesh_tmpl__str_t *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return ps->rc = MESH_ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

// Marks every name an expression reads as seen.
static void s_scan_expr(s_ps_t *ps, const mesh_tmpl__node_t *e, s_names_t *seen) {
    if (!e || ps->rc)
        return;
    if (e->kind == E_NAME)
        s_names_add(ps, seen, e->name);
    s_scan_expr(ps, e->a, seen);
    s_scan_expr(ps, e->b, seen);
    s_scan_expr(ps, e->c, seen);
    for (size_t i = 0; i < e->n_args; i++)
        s_scan_expr(ps, e->args[i], seen);
    for (size_t i = 0; i < e->n_kw; i++)
        s_scan_expr(ps, e->kwargs[i], seen);
}

static void s_scan_body(s_ps_t *ps, mesh_tmpl__node_t *const *body, size_t n, s_names_t *seen,
                        s_names_t *decl, bool in_branch) {
    for (size_t i = 0; i < n && !ps->rc; i++) {
        const mesh_tmpl__node_t *st = body[i];
        switch (st->kind) {
        case N_OUTPUT: s_scan_expr(ps, st->a, seen); break;
        case N_SET:
            s_scan_expr(ps, st->a, seen);
            if (st->name2.n || in_branch || s_names_has(seen, st->name)) {
                s_names_add(ps, seen, st->name);
            } else {
                s_names_add(ps, seen, st->name);
                s_names_add(ps, decl, st->name);
            }
            break;
        case N_SETBLOCK:
            s_scan_body(ps, st->body, st->n_body, seen, decl, in_branch);
            /* fall through */
        case N_MACRO:
            if (!in_branch && !s_names_has(seen, st->name))
                s_names_add(ps, decl, st->name);
            s_names_add(ps, seen, st->name);
            break;
        case N_IF:
            s_scan_expr(ps, st->a, seen);
            s_scan_body(ps, st->body, st->n_body, seen, decl, true);
            s_scan_body(ps, st->orelse, st->n_orelse, seen, decl, true);
            break;
        case N_FOR:
            s_scan_expr(ps, st->a, seen);
            s_scan_body(ps, st->orelse, st->n_orelse, seen, decl, true);
            break;
        case N_BLOCK: s_scan_body(ps, st->body, st->n_body, seen, decl, in_branch); break;
        default: break;
        }
    }
}

// Computes a scope's own names (see above) into *decl (arena).
static int s_decl(s_ps_t *ps, mesh_tmpl__node_t *const *body, size_t n, mesh_tmpl__str_t **decl,
                  size_t *n_decl) {
    s_names_t seen = {0}, d = {0};
    s_scan_body(ps, body, n, &seen, &d, false);
    *decl = NULL;
    *n_decl = 0;
    if (!ps->rc && d.n) {
        *decl = mesh_tmpl__alloc(ps->a, d.n * sizeof **decl);
        if (*decl) {
            memcpy(*decl, d.v, d.n * sizeof *d.v);
            *n_decl = d.n;
        } else {
            ps->rc = MESH_ENOMEM;
        }
    }
    free(seen.v);
    free(d.v);
    return ps->rc;
}

static mesh_tmpl__node_t *s_if(s_ps_t *ps, int line) {
    static const char *const stops[] = {"endif", "elif", "else", NULL};
    mesh_tmpl__node_t *n = s_node(ps, N_IF, line);
    if (!n || !(n->a = s_expr(ps)) || s_end_block(ps))
        return NULL;
    const char *found = NULL;
    if (s_until(ps, stops, &n->body, &n->n_body, &found, line, "if"))
        return NULL;
    if (!strcmp(found, "elif")) {
        mesh_tmpl__node_t *e = s_if(ps, s_peek(ps)->line);
        if (!e)
            return NULL;
        n->orelse = mesh_tmpl__alloc(ps->a, sizeof *n->orelse);
        if (!n->orelse) {
            ps->rc = MESH_ENOMEM;
            return NULL;
        }
        n->orelse[0] = e;
        n->n_orelse = 1;
        return n; // the nested if consumed the endif
    }
    if (!strcmp(found, "else")) {
        static const char *const stops2[] = {"endif", NULL};
        if (s_end_block(ps) || s_until(ps, stops2, &n->orelse, &n->n_orelse, &found, line, "if"))
            return NULL;
    }
    if (s_end_block(ps))
        return NULL;
    return n;
}

static mesh_tmpl__node_t *s_for(s_ps_t *ps, int line) {
    mesh_tmpl__node_t *n = s_node(ps, N_FOR, line);
    if (!n)
        return NULL;
    mesh_tmpl__str_t names[8];
    size_t nn = 0;
    bool paren = s_accept_op(ps, "(");
    do {
        s_tok_t *t = s_next(ps);
        if (t->kind != K_NAME || nn == 8) {
            s_fail(ps, t->line, "loop variable name expected in 'for'");
            return NULL;
        }
        names[nn++] = t->s;
    } while (s_accept_op(ps, ","));
    if (paren && s_expect_op(ps, ")"))
        return NULL;
    if (!s_accept_name(ps, "in")) {
        s_fail(ps, s_peek(ps)->line, "expected 'in' in 'for'");
        return NULL;
    }
    n->names = mesh_tmpl__alloc(ps->a, nn * sizeof *names);
    if (!n->names) {
        ps->rc = MESH_ENOMEM;
        return NULL;
    }
    memcpy(n->names, names, nn * sizeof *names);
    n->n_names = nn;
    // The iterable: no conditional expression here ('if' starts the loop filter).
    if (!(n->a = s_or(ps)))
        return NULL;
    if (s_accept_name(ps, "if") && !(n->b = s_or(ps)))
        return NULL;
    if (s_is_name(s_peek(ps), "recursive")) {
        s_fail(ps, s_peek(ps)->line, "unsupported: recursive for loops");
        return NULL;
    }
    if (s_end_block(ps))
        return NULL;
    static const char *const stops[] = {"endfor", "else", NULL};
    const char *found = NULL;
    if (s_until(ps, stops, &n->body, &n->n_body, &found, line, "for") ||
        s_decl(ps, n->body, n->n_body, &n->decl, &n->n_decl))
        return NULL;
    if (!strcmp(found, "else")) {
        static const char *const stops2[] = {"endfor", NULL};
        if (s_end_block(ps) || s_until(ps, stops2, &n->orelse, &n->n_orelse, &found, line, "for"))
            return NULL;
    }
    if (s_end_block(ps))
        return NULL;
    return n;
}

static mesh_tmpl__node_t *s_set(s_ps_t *ps, int line) {
    s_tok_t *t = s_next(ps);
    if (t->kind != K_NAME) {
        s_fail(ps, t->line, "variable name expected after 'set'");
        return NULL;
    }
    mesh_tmpl__node_t *n = s_node(ps, N_SET, line);
    if (!n)
        return NULL;
    n->name = t->s;
    if (s_accept_op(ps, ".")) {
        s_tok_t *a = s_next(ps);
        if (a->kind != K_NAME) {
            s_fail(ps, a->line, "attribute name expected in 'set'");
            return NULL;
        }
        n->name2 = a->s;
    } else if (s_is_op(s_peek(ps), ",")) {
        s_fail(ps, line, "unsupported: tuple assignment in 'set'");
        return NULL;
    }
    if (s_accept_op(ps, "=")) {
        if (!(n->a = s_expr(ps)) || s_end_block(ps))
            return NULL;
        return n;
    }
    if (n->name2.n) {
        s_fail(ps, line, "expected '=' in 'set'");
        return NULL;
    }
    if (s_is_op(s_peek(ps), "|")) {
        s_fail(ps, line, "unsupported: filtered block 'set'");
        return NULL;
    }
    // Block set: {% set x %}...{% endset %}
    n->kind = N_SETBLOCK;
    if (s_end_block(ps))
        return NULL;
    static const char *const stops[] = {"endset", NULL};
    const char *found = NULL;
    if (s_until(ps, stops, &n->body, &n->n_body, &found, line, "set") || s_end_block(ps))
        return NULL;
    return n;
}

static mesh_tmpl__node_t *s_macro(s_ps_t *ps, int line) {
    s_tok_t *t = s_next(ps);
    if (t->kind != K_NAME) {
        s_fail(ps, t->line, "macro name expected");
        return NULL;
    }
    mesh_tmpl__node_t *n = s_node(ps, N_MACRO, line);
    if (!n)
        return NULL;
    n->name = t->s;
    if (s_expect_op(ps, "("))
        return NULL;
    mesh_tmpl__str_t names[32];
    mesh_tmpl__node_t *defs[32];
    size_t nn = 0;
    while (!s_accept_op(ps, ")")) {
        if (nn && s_expect_op(ps, ","))
            return NULL;
        s_tok_t *p = s_next(ps);
        if (p->kind != K_NAME || nn == 32) {
            s_fail(ps, p->line, "parameter name expected in macro '%.*s'", (int)n->name.n, n->name.p);
            return NULL;
        }
        names[nn] = p->s;
        defs[nn] = NULL;
        if (s_accept_op(ps, "=") && !(defs[nn] = s_expr(ps)))
            return NULL;
        nn++;
    }
    if (nn) {
        n->names = mesh_tmpl__alloc(ps->a, nn * sizeof *names);
        n->args = mesh_tmpl__alloc(ps->a, nn * sizeof *defs);
        if (!n->names || !n->args) {
            ps->rc = MESH_ENOMEM;
            return NULL;
        }
        memcpy(n->names, names, nn * sizeof *names);
        memcpy(n->args, defs, nn * sizeof *defs);
    }
    n->n_names = n->n_args = nn;
    if (s_end_block(ps))
        return NULL;
    static const char *const stops[] = {"endmacro", NULL};
    const char *found = NULL;
    if (s_until(ps, stops, &n->body, &n->n_body, &found, line, "macro") ||
        s_decl(ps, n->body, n->n_body, &n->decl, &n->n_decl))
        return NULL;
    if (s_peek(ps)->kind == K_NAME) // {% endmacro name %}
        ps->pos++;
    if (s_end_block(ps))
        return NULL;
    return n;
}

static int s_body(s_ps_t *ps, const char *const *stops, s_nvec_t *out, const char **stop_found) {
    *stop_found = NULL;
    for (;;) {
        s_tok_t *t = s_next(ps);
        mesh_tmpl__node_t *n = NULL;
        switch (t->kind) {
        case K_EOF: return 0;
        case K_TEXT:
            if (!(n = s_node(ps, N_TEXT, t->line)))
                return ps->rc;
            n->name = t->s;
            break;
        case K_VAR_BEGIN: {
            if (!(n = s_node(ps, N_OUTPUT, t->line)) || !(n->a = s_expr(ps)))
                return ps->rc ? ps->rc : MESH_EFORMAT;
            s_tok_t *e = s_next(ps);
            if (e->kind != K_VAR_END) {
                char b[64];
                return s_fail(ps, e->line, "expected '}}', found %s", s_tok_desc(e, b, sizeof b));
            }
            break;
        }
        case K_BLOCK_BEGIN: {
            s_tok_t *k = s_next(ps);
            if (k->kind != K_NAME)
                return s_fail(ps, k->line, "tag name expected after '{%%'");
            if (stops)
                for (size_t i = 0; stops[i]; i++)
                    if (mesh_tmpl__str_eq(k->s, stops[i])) {
                        *stop_found = stops[i];
                        return 0;
                    }
            if (s_is_name(k, "if"))
                n = s_if(ps, k->line);
            else if (s_is_name(k, "for"))
                n = s_for(ps, k->line);
            else if (s_is_name(k, "set"))
                n = s_set(ps, k->line);
            else if (s_is_name(k, "macro"))
                n = s_macro(ps, k->line);
            else if (s_is_name(k, "break") || s_is_name(k, "continue")) {
                n = s_node(ps, s_is_name(k, "break") ? N_BREAK : N_CONTINUE, k->line);
                if (n && s_end_block(ps))
                    return ps->rc;
            } else if (s_is_name(k, "generation")) {
                static const char *const st[] = {"endgeneration", NULL};
                const char *found;
                n = s_node(ps, N_BLOCK, k->line);
                if (!n || s_end_block(ps) ||
                    s_until(ps, st, &n->body, &n->n_body, &found, k->line, "generation") ||
                    s_end_block(ps))
                    return ps->rc ? ps->rc : MESH_EFORMAT;
            } else if (s_is_name(k, "endif") || s_is_name(k, "endfor") || s_is_name(k, "else") ||
                       s_is_name(k, "elif") || s_is_name(k, "endmacro") ||
                       s_is_name(k, "endset") || s_is_name(k, "endgeneration")) {
                return s_fail(ps, k->line, "unexpected '%.*s' (no open block it could close)",
                              (int)k->s.n, k->s.p);
            } else {
                return s_fail(ps, k->line, "unsupported tag '%.*s'", (int)k->s.n, k->s.p);
            }
            if (!n)
                return ps->rc ? ps->rc : MESH_EFORMAT;
            break;
        }
        default: {
            char b[64];
            return s_fail(ps, t->line, "unexpected %s", s_tok_desc(t, b, sizeof b));
        }
        }
        if (s_nvec_push(ps, out, n))
            return ps->rc;
    }
}

int mesh_tmpl__parse(mesh_tmpl_t *t, const char *src, size_t len, const mesh_tmpl_opts_t *opts,
                     char *err, size_t err_len) {
    mesh_tmpl_opts_t o = {false, false};
    if (opts)
        o = *opts;
    s_ps_t ps = {.t = t, .a = &t->arena, .err = err, .err_len = err_len};
    // Jinja's keep_trailing_newline=False (transformers keeps the default):
    // one newline at the very end of the source is dropped.
    if (len && src[len - 1] == '\n')
        len -= (len >= 2 && src[len - 2] == '\r') ? 2 : 1;
    else if (len && src[len - 1] == '\r')
        len--;
    int rc = s_lex(&ps, src, len, &o);
    if (!rc) {
        s_nvec_t v = {0};
        const char *found = NULL;
        rc = s_body(&ps, NULL, &v, &found);
        t->body = s_nvec_finish(&ps, &v, &t->n_body);
        if (!rc)
            rc = s_decl(&ps, t->body, t->n_body, &t->decl, &t->n_decl);
        if (!rc)
            rc = ps.rc;
        if (!rc && t->arena.oom)
            rc = MESH_ENOMEM;
    }
    if (rc == MESH_ENOMEM && err && err_len)
        snprintf(err, err_len, "template: out of memory");
    free(ps.toks);
    return rc;
}
