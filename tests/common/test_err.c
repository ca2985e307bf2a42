// SPDX-License-Identifier: MIT
// Error table: every code has a distinct name and message, and codes map
// back through mesh_strerror/mesh_errname, so a code on the wire always
// prints as something meaningful.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_err.h"

#include <string.h>

static const int s_codes[] = {
#define X_(name, num, msg) MESH_E##name,
    MESH_ERRNO_MAP(X_)
#undef X_
};
static const int s_nums[] = {
#define X_(name, num, msg) num,
    MESH_ERRNO_MAP(X_)
#undef X_
};
#define N_CODES (sizeof s_codes / sizeof s_codes[0])

static void test_codes_negative_and_distinct(void **state) {
    (void)state;
    assert_true(N_CODES >= 20);
    for (size_t i = 0; i < N_CODES; i++) {
        assert_true(s_codes[i] < 0);
        assert_int_equal(s_codes[i], -s_nums[i]);
        for (size_t j = i + 1; j < N_CODES; j++)
            assert_int_not_equal(s_codes[i], s_codes[j]);
    }
}

static void test_names_and_messages_distinct(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        const char *n = mesh_errname(s_codes[i]);
        const char *m = mesh_strerror(s_codes[i]);
        assert_non_null(n);
        assert_non_null(m);
        assert_true(strncmp(n, "MESH_E", 6) == 0);
        assert_string_not_equal(n, "MESH_E?");
        assert_string_not_equal(m, "unknown error");
        assert_true(strlen(m) > 2);
        for (size_t j = i + 1; j < N_CODES; j++) {
            assert_string_not_equal(n, mesh_errname(s_codes[j]));
            assert_string_not_equal(m, mesh_strerror(s_codes[j]));
        }
    }
}

static void test_known_values(void **state) {
    (void)state;
    assert_string_equal(mesh_errname(MESH_EINVAL), "MESH_EINVAL");
    assert_string_equal(mesh_strerror(MESH_EINVAL), "invalid argument");
    assert_string_equal(mesh_errname(MESH_EPERM), "MESH_EPERM");
    assert_string_equal(mesh_errname(0), "MESH_OK");
    assert_string_equal(mesh_strerror(0), "success");
}

static void test_unknown_codes(void **state) {
    (void)state;
    const int bad[] = {1, 12345, -12345, -1000000, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_string_equal(mesh_strerror(bad[i]), "unknown error");
        assert_string_equal(mesh_errname(bad[i]), "MESH_E?");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_negative_and_distinct),
        cmocka_unit_test(test_names_and_messages_distinct),
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_unknown_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
