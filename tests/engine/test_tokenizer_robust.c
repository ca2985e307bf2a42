// SPDX-License-Identifier: MIT
// Robustness of the tokenizer on random input (a bounded, seeded fuzz run):
// random bytes (invalid UTF-8 included) and random valid UTF-8, through
// every pre-tokenizer, never crash, decode(encode(x)) gives x back byte for
// byte, and the streaming decoder only ever emits valid UTF-8 (equal to x
// when x is valid). Runs in about a second; ASan/UBSan builds check memory.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mesh_err.h"
#include "tok_test_vocab.h"
#include "tokenizer.h"
#include "unicode.h"

static uint64_t s_rng = 0x9E3779B97F4A7C15ull;
static uint32_t s_rand(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (uint32_t)(s_rng >> 16);
}

static bool s_valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = mesh_utf8_check((const uint8_t *)s + i, n - i, NULL, NULL);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

// Pieces of text worth combining: ASCII words, digits, whitespace kinds,
// contractions, CJK, kana, emoji, combining marks, special-token text.
static const char *const s_atoms[] = {
    "a", "Z", "hello", " ", "  ", "\t", "\n", "\r\n", "'s", "'LL", "123", "4", "!", "?..",
    "{\"", "中", "文字", "カナ", "é", "e\xCC\x81", "😀", "👩\xE2\x80\x8D💻", "\xC2\xA0",
    "\xE3\x80\x80", "<|user|>", "<think>", "<|u", "_", "-", "½",
};

static void s_check_one(mesh_tok_t *t, mesh_tok_stream_t *st, const char *x, size_t n,
                        bool valid) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    for (int ps = 0; ps < 2; ps++) {
        assert_int_equal(mesh_tok_encode_alloc(t, x, n, ps, false, &ids, &n_ids), 0);
        assert_true(n_ids <= n); // byte-level BPE never needs more ids than bytes
        char back[512];
        size_t nb = 0;
        assert_int_equal(mesh_tok_decode(t, ids, n_ids, false, back, sizeof back, &nb), 0);
        if (nb != n || memcmp(back, x, n)) {
            print_error("round trip failed for %zu bytes (parse_special=%d)\n", n, ps);
            fail();
        }
        char out[2048];
        size_t o = 0;
        for (size_t i = 0; i < n_ids; i++) {
            const char *p;
            size_t l;
            assert_int_equal(mesh_tok_stream_push(st, ids[i], &p, &l), 0);
            assert_true(o + l < sizeof out);
            memcpy(out + o, p, l);
            o += l;
        }
        const char *p;
        size_t l;
        assert_int_equal(mesh_tok_stream_flush(st, &p, &l), 0);
        memcpy(out + o, p, l);
        o += l;
        assert_true(s_valid_utf8(out, o));
        if (valid) {
            assert_int_equal(o, n);
            assert_memory_equal(out, x, n);
        }
        free(ids);
    }
}

static void test_random_input(void **state) {
    (void)state;
    static const char *const pres[] = {"glm4", "qwen2", "gpt2", "deepseek-v3"};
    for (size_t pi = 0; pi < sizeof pres / sizeof pres[0]; pi++) {
        tv_vocab_t v;
        tv_init(&v);
        // A few merges so BPE has work to do, including ones that glue
        // bytes of different characters together.
        tv_merge(&v, "h", "e");
        tv_merge(&v, "l", "l");
        tv_merge(&v, "he", "ll");
        tv_merge(&v, " ", " ");
        tv_merge(&v, "\xE4", "\xB8");
        tv_merge(&v, "\xF0\x9F", "\x98");
        tv_merge(&v, "\xF0", "\x9F");
        tv_merge(&v, "\x80", "!");
        tv_merge(&v, "1", "2");
        tv_merge(&v, "12", "3");
        tv_add(&v, "<|user|>", MESH_TOK_TYPE_CONTROL);
        tv_add(&v, "<think>", MESH_TOK_TYPE_USER_DEFINED);
        mesh_tok_t *t = NULL;
        char err[256];
        assert_int_equal(tv_build(&v, pres[pi], -1, &t, err, sizeof err), 0);
        mesh_tok_stream_t *st = mesh_tok_stream_new(t, false);
        assert_non_null(st);
        char x[256];
        for (int it = 0; it < 3000; it++) {
            size_t n = s_rand() % 64;
            for (size_t i = 0; i < n; i++)
                x[i] = (char)s_rand();
            s_check_one(t, st, x, n, s_valid_utf8(x, n));
            n = 0;
            size_t k = s_rand() % 12;
            for (size_t i = 0; i < k; i++) {
                const char *a = s_atoms[s_rand() % (sizeof s_atoms / sizeof s_atoms[0])];
                size_t l = strlen(a);
                if (n + l >= sizeof x)
                    break;
                memcpy(x + n, a, l);
                n += l;
            }
            s_check_one(t, st, x, n, true);
        }
        mesh_tok_stream_destroy(&st);
        mesh_tok_destroy(&t);
        tv_free(&v);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
