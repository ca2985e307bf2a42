// SPDX-License-Identifier: MIT
// Golden tokenizer test: the GLM tokenizer read from the tiny GLM GGUF must
// give exactly the reference ids (Hugging Face tokenizers, no BOS, special
// tokens parsed) for every text of glm-tiny/text.golden.json, and for the
// rendered string of every chat-template case; decoding the ids must give
// the text back. Also prints encode throughput (information, not pass/fail).
//
// The JSON is read with a minimal reader written here (strings with every
// escape, numbers, arrays, objects, literals), enough for this file.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "mesh_err.h"
#include "tokenizer.h"

// ---- minimal JSON ----
typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } j_type_t;
typedef struct j_val j_val_t;
struct j_val {
    j_type_t type;
    double num;
    char *str;        // J_STR: bytes (may hold NULs), str_len long
    size_t str_len;
    j_val_t **items;  // J_ARR / J_OBJ values
    char **keys;      // J_OBJ keys
    size_t n;
};

typedef struct {
    const char *p, *end;
    int err;
} j_in_t;

static void j_free(j_val_t *v) {
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        j_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

static void j_ws(j_in_t *in) {
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\n' || *in->p == '\r' || *in->p == '\t'))
        in->p++;
}

static int j_hex4(j_in_t *in, unsigned *out) {
    if (in->end - in->p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *in->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t j_put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Parses a string at in->p (which is at the opening quote).
static char *j_string(j_in_t *in, size_t *len) {
    in->p++;
    size_t cap = (size_t)(in->end - in->p) + 1, o = 0;
    char *s = malloc(cap < 64 ? 64 : cap); // escapes never make a string longer
    if (!s)
        return NULL;
    while (in->p < in->end && *in->p != '"') {
        char c = *in->p++;
        if (c != '\\') {
            s[o++] = c;
            continue;
        }
        if (in->p >= in->end)
            break;
        char e = *in->p++;
        unsigned cp;
        switch (e) {
        case '"': s[o++] = '"'; break;
        case '\\': s[o++] = '\\'; break;
        case '/': s[o++] = '/'; break;
        case 'b': s[o++] = '\b'; break;
        case 'f': s[o++] = '\f'; break;
        case 'n': s[o++] = '\n'; break;
        case 'r': s[o++] = '\r'; break;
        case 't': s[o++] = '\t'; break;
        case 'u':
            if (j_hex4(in, &cp) < 0)
                goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF && in->end - in->p >= 6 && in->p[0] == '\\' &&
                in->p[1] == 'u') {
                unsigned lo;
                in->p += 2;
                if (j_hex4(in, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += j_put_utf8(s + o, cp);
            break;
        default:
            goto bad;
        }
    }
    if (in->p >= in->end)
        goto bad;
    in->p++;
    s[o] = 0;
    *len = o;
    return s;
bad:
    free(s);
    in->err = 1;
    return NULL;
}

static j_val_t *j_parse(j_in_t *in, int depth) {
    j_ws(in);
    if (in->p >= in->end || depth > 64) {
        in->err = 1;
        return NULL;
    }
    j_val_t *v = calloc(1, sizeof *v);
    if (!v) {
        in->err = 1;
        return NULL;
    }
    char c = *in->p;
    if (c == '"') {
        v->type = J_STR;
        if (!(v->str = j_string(in, &v->str_len)))
            goto bad;
    } else if (c == '[' || c == '{') {
        bool obj = c == '{';
        v->type = obj ? J_OBJ : J_ARR;
        in->p++;
        j_ws(in);
        if (in->p < in->end && *in->p == (obj ? '}' : ']')) {
            in->p++;
            return v;
        }
        for (;;) {
            char *key = NULL;
            if (obj) {
                j_ws(in);
                size_t kl;
                if (in->p >= in->end || *in->p != '"' || !(key = j_string(in, &kl)))
                    goto bad;
                j_ws(in);
                if (in->p >= in->end || *in->p != ':') {
                    free(key);
                    goto bad;
                }
                in->p++;
            }
            j_val_t *item = j_parse(in, depth + 1);
            if (!item) {
                free(key);
                goto bad;
            }
            v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
            if (obj)
                v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
            v->items[v->n] = item;
            if (obj)
                v->keys[v->n] = key;
            v->n++;
            j_ws(in);
            if (in->p < in->end && *in->p == ',') {
                in->p++;
                continue;
            }
            if (in->p < in->end && *in->p == (obj ? '}' : ']')) {
                in->p++;
                break;
            }
            goto bad;
        }
    } else if (c == 't' && in->end - in->p >= 4 && !memcmp(in->p, "true", 4)) {
        v->type = J_BOOL, v->num = 1, in->p += 4;
    } else if (c == 'f' && in->end - in->p >= 5 && !memcmp(in->p, "false", 5)) {
        v->type = J_BOOL, in->p += 5;
    } else if (c == 'n' && in->end - in->p >= 4 && !memcmp(in->p, "null", 4)) {
        v->type = J_NULL, in->p += 4;
    } else {
        char *e;
        v->type = J_NUM;
        v->num = strtod(in->p, &e); // the file is NUL-terminated, so strtod stops in it
        if (e == in->p)
            goto bad;
        in->p = e;
    }
    return v;
bad:
    in->err = 1;
    j_free(v);
    return NULL;
}

static const j_val_t *j_get(const j_val_t *o, const char *key) {
    if (!o || o->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return o->items[i];
    return NULL;
}

// ---- the test ----
static char *s_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

static mesh_tok_t *s_tok;
static j_val_t *s_golden;

static int s_setup(void **state) {
    (void)state;
    const char *d = getenv("MESH_TESTDATA");
    if (!d || !*d) {
        fprintf(stderr, "MESH_TESTDATA is not set: the reference data (shared/testdata) is required\n");
        return -1;
    }
    char path[4096], err[256] = "";
    snprintf(path, sizeof path, "%s/glm-tiny/tiny-glm.bf16.gguf", d);
    mesh_gguf_t *g = NULL;
    int rc = mesh_gguf_open(path, &g, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", path, err);
        return -1;
    }
    rc = mesh_tok_new_from_gguf(g, &s_tok, err, sizeof err);
    mesh_gguf_close(&g); // the tokenizer keeps its own copy
    if (rc < 0) {
        fprintf(stderr, "tokenizer from %s: %s\n", path, err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/glm-tiny/text.golden.json", d);
    size_t len = 0;
    char *txt = s_read_file(path, &len);
    if (!txt) {
        fprintf(stderr, "cannot read %s (the reference data is required)\n", path);
        return -1;
    }
    j_in_t in = {txt, txt + len, 0};
    s_golden = j_parse(&in, 0);
    free(txt);
    if (!s_golden || in.err) {
        fprintf(stderr, "%s: malformed JSON\n", path);
        return -1;
    }
    return 0;
}

static int s_teardown(void **state) {
    (void)state;
    mesh_tok_destroy(&s_tok);
    j_free(s_golden);
    s_golden = NULL;
    return 0;
}

static void s_print_ids(const char *what, const int32_t *ids, size_t n) {
    print_error("  %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        print_error(" %d", ids[i]);
    print_error("\n");
}

// Encodes text and compares with the expected id array; then decodes.
static int s_check_case(const char *label, size_t idx, const j_val_t *text, const j_val_t *ids) {
    if (!text || text->type != J_STR || !ids || ids->type != J_ARR) {
        print_error("%s[%zu]: missing text or ids in the golden file\n", label, idx);
        return 1;
    }
    int32_t *want = malloc((ids->n + 1) * sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < ids->n; i++)
        want[i] = (int32_t)ids->items[i]->num;
    int32_t *got = NULL;
    size_t n_got = 0;
    assert_int_equal(mesh_tok_encode_alloc(s_tok, text->str, text->str_len, true, false, &got,
                                           &n_got), 0);
    int bad = 0;
    if (n_got != ids->n || memcmp(got, want, n_got * sizeof *got)) {
        print_error("%s[%zu]: ids differ for text \"%.*s\"\n", label, idx, (int)text->str_len,
                    text->str);
        s_print_ids("expected", want, ids->n);
        s_print_ids("actual  ", got, n_got);
        bad = 1;
    }
    size_t need = 0;
    mesh_tok_decode(s_tok, want, ids->n, false, NULL, 0, &need);
    char *back = malloc(need + 1);
    assert_non_null(back);
    assert_int_equal(mesh_tok_decode(s_tok, want, ids->n, false, back, need + 1, &need), 0);
    if (need != text->str_len || memcmp(back, text->str, need)) {
        print_error("%s[%zu]: decode(ids) gives \"%.*s\", expected \"%.*s\"\n", label, idx,
                    (int)need, back, (int)text->str_len, text->str);
        bad = 1;
    }
    free(back);
    free(got);
    free(want);
    return bad;
}

static void test_tokenizer_cases(void **state) {
    (void)state;
    const j_val_t *cases = j_get(s_golden, "tokenizer_cases");
    assert_non_null(cases);
    assert_int_equal(cases->type, J_ARR);
    assert_true(cases->n > 0);
    int bad = 0;
    for (size_t i = 0; i < cases->n; i++)
        bad += s_check_case("tokenizer_cases", i, j_get(cases->items[i], "text"),
                            j_get(cases->items[i], "ids"));
    print_message("tokenizer_cases: %zu of %zu match\n", cases->n - (size_t)bad, cases->n);
    assert_int_equal(bad, 0);
}

static void test_chat_template_cases(void **state) {
    (void)state;
    const j_val_t *cases = j_get(s_golden, "chat_template_cases");
    assert_non_null(cases);
    assert_int_equal(cases->type, J_ARR);
    assert_true(cases->n > 0);
    int bad = 0;
    for (size_t i = 0; i < cases->n; i++)
        bad += s_check_case("chat_template_cases", i, j_get(cases->items[i], "rendered"),
                            j_get(cases->items[i], "ids"));
    print_message("chat_template_cases: %zu of %zu match\n", cases->n - (size_t)bad, cases->n);
    assert_int_equal(bad, 0);
}

static void test_model_specials(void **state) {
    (void)state;
    // The GGUF's ids, read back through the API (values from the file's metadata).
    int32_t eos = mesh_tok_eos(s_tok), eot = mesh_tok_eot(s_tok), eom = mesh_tok_eom(s_tok);
    assert_true(eos >= 0 && eot >= 0 && eom >= 0);
    assert_true(mesh_tok_is_end_of_generation(s_tok, eos));
    assert_true(mesh_tok_is_end_of_generation(s_tok, eot));
    assert_true(mesh_tok_is_end_of_generation(s_tok, eom));
    assert_false(mesh_tok_is_end_of_generation(s_tok, mesh_tok_bos(s_tok)));
    assert_string_equal(mesh_tok_token_text(s_tok, eos, NULL), "<|endoftext|>");
    assert_string_equal(mesh_tok_token_text(s_tok, eot, NULL), "<|user|>");
    assert_string_equal(mesh_tok_token_text(s_tok, eom, NULL), "<|observation|>");
    assert_string_equal(mesh_tok_pre(s_tok), "glm4");
    assert_false(mesh_tok_add_bos_default(s_tok));
}

// Information only: encode throughput over the case texts repeated to ~2 MB.
static void test_throughput_report(void **state) {
    (void)state;
    const j_val_t *cases = j_get(s_golden, "tokenizer_cases");
    assert_non_null(cases);
    size_t cap = 2u << 20, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while (n < cap - 4096)
        for (size_t i = 0; i < cases->n && n < cap - 4096; i++) {
            const j_val_t *t = j_get(cases->items[i], "text");
            if (t && t->type == J_STR && t->str_len < 4096) {
                memcpy(buf + n, t->str, t->str_len);
                n += t->str_len;
            }
        }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    assert_int_equal(mesh_tok_encode_alloc(s_tok, buf, n, true, false, &ids, &n_ids), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    print_message("encode: %zu bytes -> %zu ids in %.3f s = %.1f MB/s\n", n, n_ids, s,
                  (double)n / 1e6 / (s > 0 ? s : 1e-9));
    size_t need = 0;
    mesh_tok_decode(s_tok, ids, n_ids, false, NULL, 0, &need);
    assert_int_equal(need, n);
    free(ids);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer_cases),
        cmocka_unit_test(test_chat_template_cases),
        cmocka_unit_test(test_model_specials),
        cmocka_unit_test(test_throughput_report),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
