// SPDX-License-Identifier: MIT
// Private contract between the chat-template files: the arena, runtime
// values, the syntax tree, and the entry points of the parser
// (chat_template_parse.c), evaluator (chat_template_eval.c) and builtins
// (chat_template_builtins.c). Internal symbols use the mesh_tmpl__ prefix.
#ifndef MESH_CHAT_TEMPLATE_IMPL_H
#define MESH_CHAT_TEMPLATE_IMPL_H

#include "chat_template.h"

#include <stdint.h>

// ------------------------------------------------------------------ arena
// Bump allocator: everything of a compiled template (tree, literals) or of
// one render (values, strings, scopes) lives in one arena freed at once.
// Values are never freed one by one, so a render's memory grows with the
// work it does; `limit` turns a runaway template into an error.
typedef struct mesh_tmpl__chunk mesh_tmpl__chunk_t;
typedef struct {
    mesh_tmpl__chunk_t *head;
    size_t used;  // bytes handed out + chunk overhead
    size_t limit; // 0 = none
    bool oom;     // an allocation failed or passed the limit
} mesh_tmpl__arena_t;

void *mesh_tmpl__alloc(mesh_tmpl__arena_t *a, size_t n); // zeroed; NULL sets oom
char *mesh_tmpl__strdup(mesh_tmpl__arena_t *a, const char *s, size_t n);
void mesh_tmpl__arena_free(mesh_tmpl__arena_t *a);

typedef struct {
    const char *p; // not NUL-terminated in general
    size_t n;      // bytes
} mesh_tmpl__str_t;

// ------------------------------------------------------------------ values
typedef enum {
    TV_UNDEF = 0,
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,
    TV_DICT,  // also namespaces (dict->is_ns) and loop objects
    TV_MACRO,
    TV_FUNC,  // builtin global function (id in u.i)
} mesh_tmpl__kind_t;

typedef struct mesh_tmpl__list mesh_tmpl__list_t;
typedef struct mesh_tmpl__dict mesh_tmpl__dict_t;
struct mesh_tmpl__node;

typedef struct {
    mesh_tmpl__kind_t kind;
    union {
        bool b;
        int64_t i;
        double f;
        mesh_tmpl__str_t s;
        mesh_tmpl__list_t *l;
        mesh_tmpl__dict_t *d;
        const struct mesh_tmpl__macro *m;
    } u;
} mesh_tmpl__val_t;

// A macro value: its definition and the scope it was defined in (macros see
// that scope's variables at call time, as Jinja closures do).
struct mesh_tmpl__frame;
typedef struct mesh_tmpl__macro {
    const struct mesh_tmpl__node *node;
    struct mesh_tmpl__frame *scope;
} mesh_tmpl__macro_t;

struct mesh_tmpl__list {
    mesh_tmpl__val_t *v; // [n]
    size_t n;
    bool tuple; // Python tuple (items() pairs, (a, b) literals): only repr differs
};

struct mesh_tmpl__dict {
    mesh_tmpl__str_t *k; // [n] keys (string keys only)
    mesh_tmpl__val_t *v; // [n] values
    size_t n, cap;
    bool is_ns; // a namespace(): the only mutable object
};

// ------------------------------------------------------------------ tree
typedef enum {
    // statements
    N_TEXT,     // name = text
    N_OUTPUT,   // a = expr
    N_IF,       // a = cond, body, orelse (elif = nested N_IF in orelse)
    N_FOR,      // names[0..n_names) targets, a = iterable, b = inline filter, body, orelse
    N_SET,      // name (= ns attr name2 when set ns.attr), a = value
    N_SETBLOCK, // name, body
    N_MACRO,    // name, params in names with defaults in args (NULL: none), body
    N_BREAK,
    N_CONTINUE,
    N_BLOCK,    // body rendered as is ({% generation %})
    // expressions
    E_LIT,      // lit
    E_NAME,     // name
    E_ATTR,     // a.name
    E_ITEM,     // a[b]
    E_SLICE,    // a[b:c:d] (any of b, c, d may be NULL); d in args[0]
    E_CALL,     // a(args, kwnames=kwargs)
    E_FILTER,   // a | name(args, kwargs)
    E_TEST,     // a is [not] name(args); op = 1 when negated
    E_UNARY,    // op ('-', '+', '!' for not) a
    E_BINARY,   // a op b: + - * / F(//) % P(**) ~ = (==) N(!=) < > L(<=) G(>=) i(in) I(not in)
    E_AND,      // a and b
    E_OR,       // a or b
    E_COND,     // b if a else c (c may be NULL: undefined)
    E_LIST,     // args; op = 1 for a tuple literal
    E_DICT,     // kwnames = keys (string literals), kwargs = values
    E_CHAIN,    // chained comparison a op0 args[0] op1 args[1] ... (ops[n_args])
} mesh_tmpl__nkind_t;

typedef struct mesh_tmpl__node mesh_tmpl__node_t;
struct mesh_tmpl__node {
    mesh_tmpl__nkind_t kind;
    int line;            // 1-based source line
    int op;
    mesh_tmpl__node_t *a, *b, *c;
    mesh_tmpl__str_t name, name2;
    mesh_tmpl__val_t lit;
    mesh_tmpl__node_t **args; // [n_args]
    size_t n_args;
    mesh_tmpl__str_t *kwnames; // [n_kw]
    mesh_tmpl__node_t **kwargs; // [n_kw]
    size_t n_kw;
    mesh_tmpl__str_t *names; // [n_names]
    size_t n_names;
    mesh_tmpl__node_t **body; // [n_body]
    size_t n_body;
    mesh_tmpl__node_t **orelse; // [n_orelse]
    size_t n_orelse;
    int *ops; // [n_args] comparison operators of an E_CHAIN
    // N_FOR / N_MACRO: names the body assigns directly (not inside an if).
    // Jinja treats them as the body's own variables: a nested loop or macro
    // that reads one before the body assigns it sees undefined.
    mesh_tmpl__str_t *decl; // [n_decl]
    size_t n_decl;
};

struct mesh_tmpl {
    mesh_tmpl__arena_t arena; // the tree and its literals
    mesh_tmpl__node_t **body; // [n_body] top-level statements
    size_t n_body;
    mesh_tmpl__str_t *decl;   // [n_decl] names the top level assigns directly
    size_t n_decl;
};

// Parses src into t (arena and body). Returns 0 or a negative code with a
// message "template line N: ..." in err.
int mesh_tmpl__parse(mesh_tmpl_t *t, const char *src, size_t len, const mesh_tmpl_opts_t *opts,
                     char *err, size_t err_len);

// Known filter / test / builtin-function names (the parser rejects unknown
// filters and tests at compile time).
bool mesh_tmpl__is_filter(mesh_tmpl__str_t name);
bool mesh_tmpl__is_test(mesh_tmpl__str_t name);

// ------------------------------------------------------------------ render state
typedef struct mesh_tmpl__frame mesh_tmpl__frame_t;
struct mesh_tmpl__frame {
    mesh_tmpl__frame_t *parent;
    mesh_tmpl__str_t *names;
    mesh_tmpl__val_t *vals;
    size_t n, cap;
    const mesh_tmpl__str_t *decl; // [n_decl] the scope's own names (see node.decl)
    size_t n_decl;
};

typedef struct {
    char *b;
    size_t n, cap;
} mesh_tmpl__buf_t;

typedef struct {
    mesh_tmpl__arena_t arena;  // values of this render
    mesh_tmpl__frame_t *ctx;     // render variables and builtins
    mesh_tmpl__frame_t *globals; // the template's top level (parent: ctx)
    int rc;                    // first error
    char *err;
    size_t err_len;
    int depth;                 // macro / expression recursion
    size_t out_total;          // bytes written to all buffers (limit)
} mesh_tmpl__rs_t;

enum { TF_NAMESPACE = 1, TF_RAISE, TF_RANGE, TF_DICT, TF_STRFTIME, TF_COUNT };

// Sets the render error once ("template line N: ..."); returns rs->rc.
int mesh_tmpl__fail(mesh_tmpl__rs_t *rs, int rc, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Value helpers (chat_template_eval.c).
mesh_tmpl__val_t mesh_tmpl__mkstr(mesh_tmpl__rs_t *rs, const char *p, size_t n); // copies
mesh_tmpl__val_t mesh_tmpl__mklist(mesh_tmpl__rs_t *rs, size_t n);             // n undef items
mesh_tmpl__val_t mesh_tmpl__mkdict(mesh_tmpl__rs_t *rs);
int mesh_tmpl__dict_set(mesh_tmpl__rs_t *rs, mesh_tmpl__dict_t *d, mesh_tmpl__str_t k,
                        mesh_tmpl__val_t v);
const mesh_tmpl__val_t *mesh_tmpl__dict_get(const mesh_tmpl__dict_t *d, mesh_tmpl__str_t k);
bool mesh_tmpl__truthy(mesh_tmpl__val_t v);
bool mesh_tmpl__equal(mesh_tmpl__val_t a, mesh_tmpl__val_t b);
const char *mesh_tmpl__kind_name(mesh_tmpl__val_t v);
// Python str(v) appended to buf (repr for items inside lists and dicts).
void mesh_tmpl__to_str(mesh_tmpl__rs_t *rs, mesh_tmpl__buf_t *buf, mesh_tmpl__val_t v, bool repr);
mesh_tmpl__val_t mesh_tmpl__str_of(mesh_tmpl__rs_t *rs, mesh_tmpl__val_t v);
void mesh_tmpl__buf_put(mesh_tmpl__rs_t *rs, mesh_tmpl__buf_t *b, const char *p, size_t n);
// Iterates: lists as is, dicts as their keys, strings as characters, undefined
// as empty. Other kinds are an error (returns < 0).
int mesh_tmpl__iter_list(mesh_tmpl__rs_t *rs, int line, mesh_tmpl__val_t v,
                         mesh_tmpl__list_t **out);
// Attribute (or key) of a value; undefined when missing.
mesh_tmpl__val_t mesh_tmpl__getattr(mesh_tmpl__val_t v, mesh_tmpl__str_t name);
// JSON value <-> template value.
mesh_tmpl__val_t mesh_tmpl__from_json(mesh_tmpl__rs_t *rs, const mesh_json_t *j);
// New JSON tree (caller destroys) or NULL with the render error set.
mesh_json_t *mesh_tmpl__to_json(mesh_tmpl__rs_t *rs, int line, mesh_tmpl__val_t v);
// Code points of a UTF-8 string.
size_t mesh_tmpl__cp_count(mesh_tmpl__str_t s);
// Byte offset of code point index i (clamped to [0, n]).
size_t mesh_tmpl__cp_offset(mesh_tmpl__str_t s, size_t i);

// Builtins (chat_template_builtins.c). Each returns 0 and sets *out, or an error.
int mesh_tmpl__filter(mesh_tmpl__rs_t *rs, const mesh_tmpl__node_t *n, mesh_tmpl__val_t v,
                      mesh_tmpl__val_t *args, size_t n_args, mesh_tmpl__str_t *kwn,
                      mesh_tmpl__val_t *kwv, size_t n_kw, mesh_tmpl__val_t *out);
int mesh_tmpl__test(mesh_tmpl__rs_t *rs, int line, mesh_tmpl__str_t name, mesh_tmpl__val_t v,
                    mesh_tmpl__val_t *args, size_t n_args, bool *out);
// Method call obj.name(...); returns 1 when obj has no such method (caller
// then tries an attribute holding a callable), 0 on success, < 0 on error.
int mesh_tmpl__method(mesh_tmpl__rs_t *rs, int line, mesh_tmpl__val_t obj, mesh_tmpl__str_t name,
                      mesh_tmpl__val_t *args, size_t n_args, mesh_tmpl__str_t *kwn,
                      mesh_tmpl__val_t *kwv, size_t n_kw, mesh_tmpl__val_t *out);
int mesh_tmpl__call_func(mesh_tmpl__rs_t *rs, int line, int id, mesh_tmpl__val_t *args,
                         size_t n_args, mesh_tmpl__str_t *kwn, mesh_tmpl__val_t *kwv,
                         size_t n_kw, mesh_tmpl__val_t *out);

static inline bool mesh_tmpl__str_eq(mesh_tmpl__str_t s, const char *c) {
    size_t n = 0;
    while (c[n])
        n++;
    if (n != s.n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s.p[i] != c[i])
            return false;
    return true;
}

#endif
