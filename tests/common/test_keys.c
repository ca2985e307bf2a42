// SPDX-License-Identifier: MIT
// Key files: first use creates a 0600 keypair, reload gives the same keys,
// group/other-readable files are refused with the chmod fix named, corrupt
// Z85 and mismatched pairs are refused, and trusted-keys files parse, reject
// bad lines with line numbers, and round-trip through save.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mesh_err.h"
#include "mesh_keys.h"
#include "mesh_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A matching pair and a second public key: the published example keys of
// ZeroMQ's CURVE documentation.
#define PUB_A "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
#define SEC_A "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
#define PUB_B "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

typedef struct {
    char dir[64];
    char path[128];
} s_fx_t;

static void s_quiet(mesh_log_level_t level, const char *line, void *user) {
    (void)level;
    (void)line;
    (void)user;
}

static int s_setup(void **state) {
    s_fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mesh_test_keys_XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/node.key", fx->dir);
    mesh_log_set_sink(s_quiet, NULL); // expected errors would clutter the output
    *state = fx;
    return 0;
}

static int s_teardown(void **state) {
    s_fx_t *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    mesh_log_set_sink(NULL, NULL);
    return 0;
}

static void s_write(const char *path, const char *text, mode_t mode) {
    unlink(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_create_and_reload(void **state) {
    s_fx_t *fx = *state;
    char pub[41], sec[41];
    assert_int_equal(mesh_keys_load_or_create(fx->path, pub, sec), 0);
    assert_int_equal(strlen(pub), 40);
    assert_int_equal(strlen(sec), 40);
    assert_true(mesh_keys_z85_valid(pub));
    assert_true(mesh_keys_z85_valid(sec));
    assert_string_not_equal(pub, sec);
    assert_int_equal(mesh_keys_check_pair(pub, sec), 0);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    // No temporary file is left beside it.
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", fx->path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);

    char pub2[41], sec2[41];
    assert_int_equal(mesh_keys_load_or_create(fx->path, pub2, sec2), 0);
    assert_string_equal(pub, pub2);
    assert_string_equal(sec, sec2);
    assert_int_equal(mesh_keys_load(fx->path, pub2, sec2), 0);
    assert_string_equal(sec, sec2);
    char pub3[41];
    assert_int_equal(mesh_keys_load_public(fx->path, pub3), 0);
    assert_string_equal(pub, pub3);

    // A second file gets a different keypair.
    char other[160];
    snprintf(other, sizeof other, "%s/coord.key", fx->dir);
    assert_int_equal(mesh_keys_load_or_create(other, pub2, sec2), 0);
    assert_string_not_equal(pub, pub2);
    assert_string_not_equal(sec, sec2);
}

static void test_refuse_open_mode(void **state) {
    s_fx_t *fx = *state;
    char pub[41], sec[41];
    assert_int_equal(mesh_keys_load_or_create(fx->path, pub, sec), 0);
    const mode_t bad[] = {0644, 0640, 0604, 0660, 0601, 0610};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(fx->path, bad[i]), 0);
        char p2[41] = "x", s2[41] = "y";
        assert_int_equal(mesh_keys_load_or_create(fx->path, p2, s2), MESH_EPERM);
        assert_string_equal(p2, ""); // nothing half-filled
        const char *msg = mesh_keys_last_error();
        assert_non_null(strstr(msg, fx->path));
        assert_non_null(strstr(msg, "chmod 600"));
        assert_int_equal(mesh_keys_load(fx->path, p2, s2), MESH_EPERM);
    }
    // The file is untouched: fixing the mode gives the same keys back.
    assert_int_equal(chmod(fx->path, 0600), 0);
    char p3[41], s3[41];
    assert_int_equal(mesh_keys_load_or_create(fx->path, p3, s3), 0);
    assert_string_equal(pub, p3);
    assert_string_equal(sec, s3);
}

static void test_refuse_corrupt(void **state) {
    s_fx_t *fx = *state;
    char pub[41], sec[41];
    // The known pair loads.
    s_write(fx->path, "# comment\n\npublic = " PUB_A "\n  secret=" SEC_A "  \n", 0600);
    assert_int_equal(mesh_keys_load(fx->path, pub, sec), 0);
    assert_string_equal(pub, PUB_A);
    assert_string_equal(sec, SEC_A);

    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        // One character outside the Z85 alphabet (a blank inside).
        {"public = rq:rM>}U?@Lns47E1%kR.o@n%Fcmm L/@{H8]yf7\nsecret = " SEC_A "\n",
         ":1: public key is not valid Z85"},
        // 39 characters.
        {"public = " PUB_A "\nsecret = JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh\n",
         ":2: secret key is not 40 Z85 characters"},
        // A group that overflows 32 bits.
        {"public = " PUB_A "\nsecret = %%%%%B%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n",
         ":2: secret key is not valid Z85"},
        // Public key of another pair.
        {"public = " PUB_B "\nsecret = " SEC_A "\n", "does not match the secret key"},
        {"public = " PUB_A "\n", "lacks the secret key line"},
        {"secret = " SEC_A "\n", "lacks the public key line"},
        {"public = " PUB_A "\npublic = " PUB_A "\nsecret = " SEC_A "\n", ":2: public key given twice"},
        {"public " PUB_A "\n", ":1: expected 'public = KEY'"},
        {"private = " SEC_A "\n", ":1: unknown field"},
        {"", "lacks the public key line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_write(fx->path, cases[i].text, 0600);
        int rc = mesh_keys_load_or_create(fx->path, pub, sec);
        const char *msg = mesh_keys_last_error();
        if (rc != MESH_EFORMAT || !strstr(msg, cases[i].msg) || !strstr(msg, fx->path))
            fail_msg("case %zu: rc %d msg '%s', want '%s'", i, rc, msg, cases[i].msg);
    }
    // An oversized file is not read whole.
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, '#', 9999);
    big[9999] = '\0';
    s_write(fx->path, big, 0600);
    free(big);
    assert_int_equal(mesh_keys_load(fx->path, pub, sec), MESH_EFORMAT);
    assert_non_null(strstr(mesh_keys_last_error(), "too large"));
    // A directory, and a missing file without create.
    assert_int_equal(mesh_keys_load(fx->dir, pub, sec), MESH_EFORMAT);
    char missing[200];
    snprintf(missing, sizeof missing, "%s/missing.key", fx->dir);
    assert_int_equal(mesh_keys_load(missing, pub, sec), MESH_ENOENT);
    // A directory that does not exist cannot hold a new key.
    snprintf(missing, sizeof missing, "%s/no/such/dir.key", fx->dir);
    assert_int_equal(mesh_keys_load_or_create(missing, pub, sec), MESH_ENOENT);
    assert_int_equal(mesh_keys_load_or_create(NULL, pub, sec), MESH_EINVAL);
}

static void test_validators(void **state) {
    (void)state;
    assert_true(mesh_keys_z85_valid(PUB_A));
    assert_true(mesh_keys_z85_valid(PUB_B));
    assert_false(mesh_keys_z85_valid(NULL));
    assert_false(mesh_keys_z85_valid(""));
    assert_false(mesh_keys_z85_valid(PUB_A "x"));
    assert_false(mesh_keys_z85_valid("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf\""));
    assert_int_equal(mesh_keys_check_pair(PUB_A, SEC_A), 0);
    assert_int_equal(mesh_keys_check_pair(PUB_B, SEC_A), MESH_EFORMAT);
    assert_int_equal(mesh_keys_check_pair("short", SEC_A), MESH_EFORMAT);
}

static void test_trusted_parse(void **state) {
    (void)state;
    const char text[] = "# coordinator and peers\n"
                        "\n" PUB_A " coordinator\n"
                        "  " PUB_B "\tgpu-box-2   # the second box\n"
                        "#another comment\n";
    mesh_trusted_t *list = NULL;
    assert_int_equal(mesh_trusted_parse(text, sizeof text - 1, "trusted", &list), 0);
    assert_int_equal(mesh_trusted_count(list), 2);
    const mesh_trusted_key_t *k = mesh_trusted_at(list, 0);
    assert_string_equal(k->key, PUB_A);
    assert_string_equal(k->name, "coordinator");
    k = mesh_trusted_at(list, 1);
    assert_string_equal(k->key, PUB_B);
    assert_string_equal(k->name, "gpu-box-2");
    assert_null(mesh_trusted_at(list, 2));
    assert_non_null(mesh_trusted_find(list, PUB_B));
    assert_null(mesh_trusted_find(list, "nope"));
    mesh_trusted_destroy(&list);
    assert_null(list);

    // No valid key starts with '#' (its first 5-char group would exceed 32
    // bits), which is why a leading '#' always means a comment.
    assert_false(mesh_keys_z85_valid("#bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"));
    const char hash_line[] = "#bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN\n" PUB_A "\n";
    assert_int_equal(mesh_trusted_parse(hash_line, sizeof hash_line - 1, "t", &list), 0);
    assert_int_equal(mesh_trusted_count(list), 1);
    mesh_trusted_destroy(&list);

    static const struct {
        const char *text;
        int code;
        const char *msg;
    } bad[] = {
        {"# x\nnot-a-key\n", MESH_EFORMAT, "t:2: expected a 40-character Z85 public key"},
        {PUB_A "\n\n" PUB_A " again\n", MESH_EEXISTS, "t:3: key listed twice"},
        {PUB_A " two words\n", MESH_EFORMAT, "t:1: unexpected text after the name"},
        {"rq:rM>}U?@Lns47E1%kR.o@n%Fcmm\"L/@{H8]yf7\n", MESH_EFORMAT, "t:1: not a valid Z85 key"},
        {PUB_A " aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
         MESH_EFORMAT, "t:1: name longer than 63 bytes"},
        {PUB_A " bell\a\n", MESH_EFORMAT, "t:1: name contains"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        list = (mesh_trusted_t *)0x1;
        int rc = mesh_trusted_parse(bad[i].text, strlen(bad[i].text), "t", &list);
        const char *msg = mesh_keys_last_error();
        if (rc != bad[i].code || !strstr(msg, bad[i].msg))
            fail_msg("case %zu: rc %d msg '%s', want '%s'", i, rc, msg, bad[i].msg);
        assert_null(list);
    }
}

static void test_trusted_file(void **state) {
    s_fx_t *fx = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/trusted.keys", fx->dir);
    mesh_trusted_t *list = NULL;
    assert_int_equal(mesh_trusted_load(path, &list), MESH_ENOENT);
    assert_null(list);

    list = mesh_trusted_new();
    assert_non_null(list);
    assert_int_equal(mesh_trusted_add(list, PUB_A, "coordinator"), 0);
    assert_int_equal(mesh_trusted_add(list, PUB_B, NULL), 0);
    assert_int_equal(mesh_trusted_add(list, PUB_B, "again"), MESH_EEXISTS);
    assert_int_equal(mesh_trusted_add(list, "bogus", "x"), MESH_EFORMAT);
    assert_int_equal(mesh_trusted_add(list, SEC_A, "has space"), MESH_EFORMAT);
    assert_int_equal(mesh_trusted_count(list), 2);
    assert_int_equal(mesh_trusted_save(list, path), 0);
    mesh_trusted_destroy(&list);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(mesh_trusted_load(path, &list), 0);
    assert_int_equal(mesh_trusted_count(list), 2);
    assert_string_equal(mesh_trusted_at(list, 0)->name, "coordinator");
    assert_string_equal(mesh_trusted_at(list, 1)->key, PUB_B);
    assert_string_equal(mesh_trusted_at(list, 1)->name, "");

    // Remove by name and by key.
    assert_int_equal(mesh_trusted_remove(list, "coordinator"), 0);
    assert_int_equal(mesh_trusted_count(list), 1);
    assert_int_equal(mesh_trusted_remove(list, "coordinator"), MESH_ENOTFOUND);
    assert_int_equal(mesh_trusted_remove(list, PUB_B), 0);
    assert_int_equal(mesh_trusted_count(list), 0);
    assert_int_equal(mesh_trusted_save(list, path), 0);
    mesh_trusted_destroy(&list);
    assert_int_equal(mesh_trusted_load(path, &list), 0);
    assert_int_equal(mesh_trusted_count(list), 0);
    mesh_trusted_destroy(&list);

    // Writable by others: refused, with the fix named.
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(mesh_trusted_load(path, &list), MESH_EPERM);
    assert_non_null(strstr(mesh_keys_last_error(), "chmod 644"));
    assert_null(list);
    // A bad line in a file names the file and line.
    s_write(path, "# ok\n" PUB_A "\ngarbage\n", 0644);
    assert_int_equal(mesh_trusted_load(path, &list), MESH_EFORMAT);
    char want[200];
    snprintf(want, sizeof want, "%s:3:", path);
    assert_non_null(strstr(mesh_keys_last_error(), want));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_reload, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_open_mode, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_corrupt, s_setup, s_teardown),
        cmocka_unit_test(test_validators),
        cmocka_unit_test_setup_teardown(test_trusted_parse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_trusted_file, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
