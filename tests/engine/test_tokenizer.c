// SPDX-License-Identifier: MIT
// Unit tests of the tokenizer: Unicode classes, each pre-tokenizer's pieces
// on tricky strings (expected pieces written from the published regexes'
// semantics), BPE merge order, special tokens, capacity errors, decoding
// and the streaming decoder on split and invalid UTF-8.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <unistd.h>

#include "gguf.h"
#include "mesh_err.h"
#include "tok_test_vocab.h"
#include "tokenizer.h"
#include "unicode.h"

static void test_unicode_classes(void **state) {
    (void)state;
    assert_true(mesh_uni_flags('A') & MESH_UNI_L);
    assert_true(mesh_uni_flags(0x4E2D) & MESH_UNI_L);  // 中
    assert_true(mesh_uni_flags(0x00E9) & MESH_UNI_L);  // é
    assert_true(mesh_uni_flags('7') & MESH_UNI_N);
    assert_true(mesh_uni_flags(0x00BD) & MESH_UNI_N);  // ½
    assert_true(mesh_uni_flags(0x2460) & MESH_UNI_N);  // ①
    assert_true(mesh_uni_flags('!') & MESH_UNI_P);
    assert_true(mesh_uni_flags(0x3002) & MESH_UNI_P);  // 。
    assert_true(mesh_uni_flags('$') & MESH_UNI_S);
    assert_true(mesh_uni_flags(0x1F600) & MESH_UNI_S); // 😀
    assert_true(mesh_uni_flags(0x0301) & MESH_UNI_M);  // combining acute
    assert_true(mesh_uni_flags(' ') & MESH_UNI_WS);
    assert_true(mesh_uni_flags(0x3000) & MESH_UNI_WS);
    assert_true(mesh_uni_flags(0x00A0) & MESH_UNI_WS);
    assert_true(mesh_uni_flags(0x0085) & MESH_UNI_WS);
    assert_false(mesh_uni_flags(0x200B) & MESH_UNI_WS); // zero width space is not White_Space
    assert_false(mesh_uni_flags(0x1C) & MESH_UNI_WS);
    assert_int_equal(mesh_uni_flags(MESH_UNI_INVALID_BASE + 0xFF), 0);
}

static void test_utf8_next(void **state) {
    (void)state;
    uint32_t cp;
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xF0\x9F\x98", 3, &cp), 1); // truncated
    assert_int_equal(cp, MESH_UNI_INVALID_BASE + 0xF0);
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xC0\xAF", 2, &cp), 1); // overlong
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xED\xA0\x80", 3, &cp), 1); // surrogate
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xF4\x90\x80\x80", 4, &cp), 1); // > 10FFFF
    assert_int_equal(mesh_utf8_next((const uint8_t *)"\xC3\xA9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
}

typedef struct {
    const char *pre;
    const char *text;
    const char *pieces[16];
} split_case_t;

// Expected pieces follow each pattern's regex semantics (leftmost alternative
// first, greedy, with backtracking for \s*[\r\n]+ and \s+(?!\S)).
static const split_case_t s_split_cases[] = {
    {"glm4", "I'M don't we'll they'RE you've",
     {"I", "'M", " don", "'t", " we", "'ll", " they", "'RE", " you", "'ve"}},
    {"glm4", "1234567 89", {"123", "456", "7", " ", "89"}},
    {"glm4", "x  \n\n  y", {"x", "  \n\n", " ", " y"}},
    {"glm4", "a   b  ", {"a", "  ", " b", "  "}},
    {"glm4", "混合专家 emoji 😀🚀!", {"混合专家", " emoji", " 😀🚀!"}},
    {"glm4", "kebab-case_snake {\"k\": 1}\n",
     {"kebab", "-case", "_snake", " {\"", "k", "\":", " ", "1", "}\n"}},
    {"glm4", "tabs\tand\r\nCRLF", {"tabs", "\tand", "\r\n", "CRLF"}},
    {"chatglm-bpe", "1234567 89", {"123", "456", "7", " ", "89"}},
    {"llama-bpe", "I'M don't", {"I", "'M", " don", "'t"}},
    {"llama3", "a   b  ", {"a", "  ", " b", "  "}},
    {"qwen2", "1234567 89", {"1", "2", "3", "4", "5", "6", "7", " ", "8", "9"}},
    {"qwen2", "I'm 42nd", {"I", "'m", " ", "4", "2", "nd"}},
    {"qwen2", "a\n\n b", {"a", "\n\n", " b"}},
    {"gpt2", "I'M don't we'll", {"I", "'", "M", " don", "'t", " we", "'ll"}},
    {"gpt2", "12345 x1 67", {"12345", " x", "1", " 67"}},
    {"gpt2", "  hello  world\n\nok", {" ", " hello", " ", " world", "\n", "\n", "ok"}},
    {"default", "?!... a", {"?!...", " a"}},
    {"deepseek-v3", "1234567 89", {"123", "456", "7", " ", "89"}},
    {"deepseek-v3", "混合专家モデルabc", {"混合专家モデル", "abc"}},
    {"deepseek-v3", ".Hello -café", {".Hello", " -", "café"}},
    {"deepseek-v3", "naïve 😀 x\n\ny  ", {"naïve", " 😀", " x", "\n\n", "y", "  "}},
};

static void test_pre_split(void **state) {
    (void)state;
    int failures = 0;
    for (size_t c = 0; c < sizeof s_split_cases / sizeof s_split_cases[0]; c++) {
        const split_case_t *sc = &s_split_cases[c];
        size_t ends[64], n = 0, len = strlen(sc->text);
        assert_int_equal(mesh_tok_pre_split(sc->pre, sc->text, len, ends, 64, &n), 0);
        size_t ne = 0, off = 0;
        bool ok = true;
        while (ne < 16 && sc->pieces[ne])
            ne++;
        if (n != ne)
            ok = false;
        for (size_t k = 0; ok && k < n; k++) {
            size_t pl = strlen(sc->pieces[k]);
            if (ends[k] - off != pl || memcmp(sc->text + off, sc->pieces[k], pl))
                ok = false;
            off = ends[k];
        }
        if (!ok) {
            failures++;
            print_error("%s: '%s' split into %zu pieces:", sc->pre, sc->text, n);
            off = 0;
            for (size_t k = 0; k < n; k++) {
                print_error(" [%.*s]", (int)(ends[k] - off), sc->text + off);
                off = ends[k];
            }
            print_error(" (expected %zu)\n", ne);
        }
    }
    assert_int_equal(failures, 0);
    size_t ends[1], n;
    assert_int_equal(mesh_tok_pre_split("glm4", "a b c", 5, ends, 1, &n), MESH_ENOSPACE);
    assert_int_equal(n, 3);
    assert_int_equal(mesh_tok_pre_split("nope", "a", 1, ends, 1, &n), MESH_EUNSUPPORTED);
    // Every name the error message advertises is accepted.
    char names[512];
    snprintf(names, sizeof names, "%s", mesh_tok_supported_pre());
    int n_names = 0;
    for (char *save = NULL, *nm = strtok_r(names, ", ", &save); nm;
         nm = strtok_r(NULL, ", ", &save), n_names++)
        assert_int_equal(mesh_tok_pre_split(nm, "a b", 3, ends, 1, &n), MESH_ENOSPACE);
    assert_true(n_names >= 8);
}

static void test_unknown_pre_and_model(void **state) {
    (void)state;
    tv_vocab_t v;
    tv_init(&v);
    mesh_tok_t *t = NULL;
    char err[256] = "";
    assert_int_equal(tv_build(&v, "klingon-bpe", -1, &t, err, sizeof err), MESH_EUNSUPPORTED);
    assert_null(t);
    assert_non_null(strstr(err, "'klingon-bpe'"));
    assert_non_null(strstr(err, "glm4"));
    mesh_tok_vocab_t d = {.model = "llama", .tokens = (const char *const *)v.tok, .n_tokens = v.n,
                          .bos = -1, .eos = -1, .eot = -1, .eom = -1, .unk = -1, .pad = -1};
    assert_int_equal(mesh_tok_new(&d, &t, err, sizeof err), MESH_EUNSUPPORTED);
    assert_non_null(strstr(err, "'llama'"));
    d.model = "gpt2";
    d.eos = (int32_t)v.n; // outside the vocabulary
    assert_int_equal(mesh_tok_new(&d, &t, err, sizeof err), MESH_ERANGE);
    assert_non_null(strstr(err, "eos"));
    tv_free(&v);
}

static void test_bpe_merge_order(void **state) {
    (void)state;
    tv_vocab_t v;
    tv_init(&v);
    int32_t bc = tv_merge(&v, "b", "c");   // rank 0
    int32_t ab = tv_merge(&v, "a", "b");   // rank 1: loses to "b c" in "abc"
    int32_t aa = tv_merge(&v, "a", "a");   // rank 2: leftmost wins on "aaa"
    int32_t he = tv_merge(&v, "h", "e");
    int32_t ll = tv_merge(&v, "l", "l");
    int32_t hell = tv_merge(&v, "he", "ll");
    int32_t hello = tv_merge(&v, "hell", "o");
    int32_t sp_h = tv_merge(&v, " ", "hello");
    (void)ab;
    (void)he;
    (void)ll;
    (void)hell;
    mesh_tok_t *t = NULL;
    char err[256];
    assert_int_equal(tv_build(&v, "glm4", -1, &t, err, sizeof err), 0);
    int32_t ids[16];
    size_t n;
    assert_int_equal(mesh_tok_encode(t, "abc", 3, true, false, ids, 16, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 'a');
    assert_int_equal(ids[1], bc);
    assert_int_equal(mesh_tok_encode(t, "aaa", 3, true, false, ids, 16, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], aa);
    assert_int_equal(ids[1], 'a');
    assert_int_equal(mesh_tok_encode(t, "hello hello", 11, true, false, ids, 16, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], hello);
    assert_int_equal(ids[1], sp_h);
    // Too small an array: the needed count comes back with MESH_ENOSPACE.
    assert_int_equal(mesh_tok_encode(t, "hello hello", 11, true, false, ids, 1, &n), MESH_ENOSPACE);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], hello);
    // Empty text.
    assert_int_equal(mesh_tok_encode(t, "", 0, true, false, ids, 16, &n), 0);
    assert_int_equal(n, 0);
    mesh_tok_destroy(&t);
    assert_null(t);
    tv_free(&v);
}

static void test_special_tokens(void **state) {
    (void)state;
    tv_vocab_t v;
    tv_init(&v);
    int32_t user = tv_add(&v, "<|user|>", MESH_TOK_TYPE_CONTROL);
    int32_t u_short = tv_add(&v, "<|u", MESH_TOK_TYPE_CONTROL); // a prefix: longest must win
    int32_t think = tv_add(&v, "<think>", MESH_TOK_TYPE_USER_DEFINED);
    int32_t bos = tv_add(&v, "[gMASK]", MESH_TOK_TYPE_CONTROL);
    mesh_tok_t *t = NULL;
    char err[256];
    assert_int_equal(tv_build(&v, "glm4", bos, &t, err, sizeof err), 0);
    const char *txt = "hi<|user|><think>x<|u";
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(mesh_tok_encode_alloc(t, txt, strlen(txt), true, true, &ids, &n), 0);
    int32_t want[] = {bos, 'h', 'i', user, think, 'x', u_short};
    assert_int_equal(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
    // parse_special off: the markers are plain text (bytes here).
    assert_int_equal(mesh_tok_encode_alloc(t, txt, strlen(txt), false, false, &ids, &n), 0);
    assert_int_equal(n, strlen(txt));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], (uint8_t)txt[i]);
    free(ids);
    // Decoding: control tokens as text, or left out with skip_special.
    int32_t d_ids[] = {bos, 'h', user, think};
    char buf[64];
    assert_int_equal(mesh_tok_decode(t, d_ids, 4, false, buf, sizeof buf, &n), 0);
    assert_string_equal(buf, "[gMASK]h<|user|><think>");
    assert_int_equal(mesh_tok_decode(t, d_ids, 4, true, buf, sizeof buf, &n), 0);
    assert_string_equal(buf, "h<think>");
    assert_int_equal(mesh_tok_decode(t, d_ids, 4, false, buf, 3, &n), MESH_ENOSPACE);
    assert_int_equal(n, strlen("[gMASK]h<|user|><think>"));
    int32_t bad_id = (int32_t)v.n;
    assert_int_equal(mesh_tok_decode(t, &bad_id, 1, false, buf, sizeof buf, &n), MESH_ERANGE);
    assert_int_equal(mesh_tok_find(t, "<think>", 7), think);
    assert_int_equal(mesh_tok_find(t, "<thonk>", 7), -1);
    assert_int_equal(mesh_tok_token_type(t, user), MESH_TOK_TYPE_CONTROL);
    assert_null(mesh_tok_token_text(t, -1, NULL));
    mesh_tok_destroy(&t);
    tv_free(&v);
}

// Pushes ids through a stream and concatenates what comes out.
static size_t s_stream_all(mesh_tok_stream_t *s, const int32_t *ids, size_t n, char *out,
                           size_t *per_push) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t l;
        assert_int_equal(mesh_tok_stream_push(s, ids[i], &p, &l), 0);
        if (per_push)
            per_push[i] = l;
        memcpy(out + o, p, l);
        o += l;
    }
    const char *p;
    size_t l;
    assert_int_equal(mesh_tok_stream_flush(s, &p, &l), 0);
    memcpy(out + o, p, l);
    o += l;
    out[o] = 0;
    return o;
}

static void test_stream_decoder(void **state) {
    (void)state;
    tv_vocab_t v;
    tv_init(&v);
    int32_t f0_9f = tv_merge(&v, "\xF0", "\x9F"); // a token holding half an emoji
    int32_t ctl = tv_add(&v, "<eos>", MESH_TOK_TYPE_CONTROL);
    mesh_tok_t *t = NULL;
    char err[256], out[128];
    assert_int_equal(tv_build(&v, "glm4", -1, &t, err, sizeof err), 0);
    mesh_tok_stream_t *s = mesh_tok_stream_new(t, true);
    assert_non_null(s);

    // 😀 = F0 9F 98 80 split over two tokens: nothing until the last byte.
    int32_t emoji[] = {'a', f0_9f, 0x98, 0x80, 'b'};
    size_t per[5];
    s_stream_all(s, emoji, 5, out, per);
    assert_string_equal(out, "a\xF0\x9F\x98\x80" "b");
    assert_int_equal(per[0], 1);
    assert_int_equal(per[1], 0);
    assert_int_equal(per[2], 0);
    assert_int_equal(per[3], 4);

    // Bytes one at a time.
    int32_t bytes4[] = {0xF0, 0x9F, 0x98, 0x80};
    s_stream_all(s, bytes4, 4, out, per);
    assert_string_equal(out, "\xF0\x9F\x98\x80");
    assert_int_equal(per[0] + per[1] + per[2], 0);

    // A byte that can never be UTF-8 comes out at once as U+FFFD.
    int32_t ff[] = {'x', 0xFF, 'y'};
    s_stream_all(s, ff, 3, out, per);
    assert_string_equal(out, "x\xEF\xBF\xBDy");
    assert_int_equal(per[1], 3);

    // A broken sequence: F0 9F then 'A': one U+FFFD for the maximal subpart, then A.
    int32_t broken[] = {0xF0, 0x9F, 'A'};
    s_stream_all(s, broken, 3, out, NULL);
    assert_string_equal(out, "\xEF\xBF\xBD" "A");

    // E0 80: 80 is not a valid second byte after E0, so two replacements.
    int32_t e080[] = {0xE0, 0x80};
    s_stream_all(s, e080, 2, out, NULL);
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD");

    // A truncated character at the end: flush replaces it.
    int32_t trunc[] = {'z', 0xE4, 0xB8};
    s_stream_all(s, trunc, 3, out, NULL);
    assert_string_equal(out, "z\xEF\xBF\xBD");

    // skip_special hides control tokens; an id outside the vocabulary fails.
    int32_t with_ctl[] = {'o', ctl, 'k'};
    s_stream_all(s, with_ctl, 3, out, NULL);
    assert_string_equal(out, "ok");
    const char *p;
    size_t l;
    assert_int_equal(mesh_tok_stream_push(s, (int32_t)v.n, &p, &l), MESH_ERANGE);
    assert_int_equal(l, 0);
    mesh_tok_stream_destroy(&s);
    assert_null(s);

    s = mesh_tok_stream_new(t, false);
    s_stream_all(s, with_ctl, 3, out, NULL);
    assert_string_equal(out, "o<eos>k");
    mesh_tok_stream_destroy(&s);
    mesh_tok_destroy(&t);
    tv_free(&v);
}

// Writes a GGUF holding only tokenizer keys; variant selects a defect.
typedef enum { G_OK, G_BAD_PRE, G_MODEL_LLAMA, G_NO_TOKENS, G_SHORT_TYPES, G_BAD_EOS } g_variant_t;

static void s_write_gguf(const char *path, g_variant_t var) {
    tv_vocab_t v;
    tv_init(&v);
    int32_t hi = tv_merge(&v, "h", "i");
    (void)hi;
    tv_add(&v, "<|user|>", MESH_TOK_TYPE_CONTROL);
    mesh_gguf_writer_t *w = mesh_gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(mesh_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(mesh_gguf_writer_set_str(w, "tokenizer.ggml.model",
                                              var == G_MODEL_LLAMA ? "llama" : "gpt2"), 0);
    assert_int_equal(mesh_gguf_writer_set_str(w, "tokenizer.ggml.pre",
                                              var == G_BAD_PRE ? "martian" : "glm4"), 0);
    if (var != G_NO_TOKENS)
        assert_int_equal(mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                                      (const char *const *)v.tok, v.n), 0);
    assert_int_equal(mesh_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", MESH_GGUF_INT32,
                                              v.type, var == G_SHORT_TYPES ? v.n - 1 : v.n), 0);
    assert_int_equal(mesh_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                                  (const char *const *)v.merge, v.n_merges), 0);
    assert_int_equal(mesh_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id",
                                              var == G_BAD_EOS ? 100000u : (uint32_t)v.n - 1), 0);
    assert_int_equal(mesh_gguf_writer_begin(w, path), 0);
    assert_int_equal(mesh_gguf_writer_finish(w), 0);
    mesh_gguf_writer_destroy(&w);
    tv_free(&v);
}

static void test_from_gguf(void **state) {
    (void)state;
    char path[] = "mesh_tok_test_XXXXXX.gguf"; // in the working dir (the build tree under ctest)
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    static const struct {
        g_variant_t var;
        int rc;
        const char *msg;
    } cases[] = {
        {G_OK, 0, NULL},
        {G_BAD_PRE, MESH_EUNSUPPORTED, "'martian'"},
        {G_MODEL_LLAMA, MESH_EUNSUPPORTED, "'llama'"},
        {G_NO_TOKENS, MESH_ENOENT, "tokenizer.ggml.tokens"},
        {G_SHORT_TYPES, MESH_EFORMAT, "tokenizer.ggml.token_type"},
        {G_BAD_EOS, 0, NULL}, // an id outside the vocabulary is ignored with a warning
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write_gguf(path, cases[i].var);
        mesh_gguf_t *g = NULL;
        char err[256] = "";
        assert_int_equal(mesh_gguf_open(path, &g, err, sizeof err), 0);
        mesh_tok_t *t = NULL;
        int rc = mesh_tok_new_from_gguf(g, &t, err, sizeof err);
        mesh_gguf_close(&g);
        if (rc != cases[i].rc)
            print_error("case %zu: rc %d (%s)\n", i, rc, err);
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].msg)
            assert_non_null(strstr(err, cases[i].msg));
        if (rc == 0) {
            int32_t ids[8];
            size_t n;
            assert_int_equal(mesh_tok_encode(t, "hi<|user|>", 10, true, false, ids, 8, &n), 0);
            assert_int_equal(n, 2);
            assert_int_equal(ids[1], (int32_t)mesh_tok_n_vocab(t) - 1);
            assert_string_equal(mesh_tok_token_text(t, ids[0], NULL), "hi");
            assert_int_equal(mesh_tok_eos(t), cases[i].var == G_BAD_EOS ? -1 : ids[1]);
            assert_int_equal(mesh_tok_bos(t), -1);
            assert_false(mesh_tok_add_bos_default(t));
            mesh_tok_destroy(&t);
        } else {
            assert_null(t);
        }
    }
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_classes),
        cmocka_unit_test(test_utf8_next),
        cmocka_unit_test(test_pre_split),
        cmocka_unit_test(test_unknown_pre_and_model),
        cmocka_unit_test(test_bpe_merge_order),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_stream_decoder),
        cmocka_unit_test(test_from_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
