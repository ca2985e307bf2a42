// SPDX-License-Identifier: MIT
// Routing rules on tables of node reports: named quant, best quant when
// none is named, context limit, memory headroom, queue, speed, exclusions,
// down/draining nodes, and the "what was missing" errors. Also the registry
// file round trip and its refusal of malformed files.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "coord_route.h"
#include "coord_state.h"
#include "mesh_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024)

static const mesh_route_model_t s_a[] = {{"glm", "q8_0", 8192, 1000, 50.0f}};
static const mesh_route_model_t s_b[] = {{"glm", "q4_k_m", 8192, 1000, 80.0f},
                                         {"other", "q4_k_m", 4096, 10, 1.0f}};
static const mesh_route_model_t s_c[] = {{"glm", "bf16", 512, 1000, 20.0f},
                                         {"glm", "q4_k_m", 2048, 1000, 70.0f}};

static void s_nodes(mesh_route_node_t n[3]) {
    memset(n, 0, 3 * sizeof *n);
    n[0] = (mesh_route_node_t){"a", 1, 0, 100 * MiB, 0, 0, 0, s_a, 1};
    n[1] = (mesh_route_node_t){"b", 1, 0, 50 * MiB, 0, 0, 0, s_b, 2};
    n[2] = (mesh_route_node_t){"c", 1, 0, 20 * MiB, 0, 0, 0, s_c, 2};
}

static int s_pick(const mesh_route_node_t *n, const char *model, const char *quant,
                  uint64_t tokens, mesh_route_result_t *r) {
    mesh_route_req_t q = {model, quant, tokens, NULL};
    return mesh_route_pick(&q, n, 3, r);
}

static void test_named_quant(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    assert_int_equal(s_pick(n, "glm", "bf16", 100, &r), 0);
    assert_int_equal(r.node, 2);
    assert_int_equal(r.model, 0);
    assert_string_equal(r.reason, "only fit");
    assert_int_equal(s_pick(n, "glm", "Q4_K_M", 100, &r), 0); // case does not matter
    assert_int_equal(r.node, 1); // b has more headroom than c
    assert_string_equal(r.reason, "most headroom");
    assert_int_equal(s_pick(n, "glm", "q2_k", 100, &r), MESH_ENOTFOUND);
    assert_non_null(strstr(r.missing, "q2_k"));
    assert_non_null(strstr(r.missing, "q8_0"));
    assert_non_null(strstr(r.missing, "bf16"));
}

static void test_best_quant_and_headroom(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    assert_int_equal(s_pick(n, "glm", NULL, 100, &r), 0);
    assert_int_equal(r.node, 0); // most free memory
    assert_string_equal(r.reason, "most headroom");
    assert_true(r.kv_bytes == 100 * 1000);
    assert_true(r.headroom == 100 * MiB - 100 * 1000);
    // Only c: its best quant that fits is bf16 at 100 tokens, q4_k_m at 1000.
    n[0].up = 0;
    n[1].up = 0;
    assert_int_equal(s_pick(n, "glm", "", 100, &r), 0);
    assert_int_equal(r.node, 2);
    assert_int_equal(r.model, 0);
    assert_int_equal(s_pick(n, "glm", "", 1000, &r), 0);
    assert_int_equal(r.model, 1);
}

static void test_context(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    // 4000 tokens: c's limits (512, 2048) are too short; a wins on headroom.
    n[0].mem_free = 20 * MiB;
    n[1].mem_free = 19 * MiB;
    n[2].mem_free = 900 * MiB;
    assert_int_equal(s_pick(n, "glm", NULL, 4000, &r), 0);
    assert_int_not_equal(r.node, 2);
    assert_int_equal(s_pick(n, "glm", "bf16", 600, &r), MESH_ERANGE);
    assert_non_null(strstr(r.missing, "600 tokens"));
    assert_non_null(strstr(r.missing, "512"));
    assert_int_equal(s_pick(n, "glm", NULL, 9000, &r), MESH_ERANGE);
    assert_non_null(strstr(r.missing, "8192"));
}

static void test_memory(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    // 8000 tokens x 1000 B = 8 MB. Leave a 7 MiB, b 9 MiB: only b fits.
    n[0].mem_free = 7 * MiB;
    n[1].mem_free = 9 * MiB;
    assert_int_equal(s_pick(n, "glm", NULL, 8000, &r), 0);
    assert_int_equal(r.node, 1);
    // What is already reserved counts against free memory.
    n[1].reserved = 2 * MiB;
    assert_int_equal(s_pick(n, "glm", NULL, 8000, &r), MESH_ENOSPACE);
    assert_non_null(strstr(r.missing, "memory"));
    assert_non_null(strstr(r.missing, "7.6 MiB"));
}

static void test_queue_then_speed(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    // a and b within 5% of headroom: queue decides, then speed.
    n[0].mem_free = 100 * MiB;
    n[1].mem_free = 98 * MiB;
    n[2].up = 0;
    n[0].active = 2;
    n[1].queued = 1;
    assert_int_equal(s_pick(n, "glm", NULL, 10, &r), 0);
    assert_int_equal(r.node, 1);
    assert_string_equal(r.reason, "shortest queue");
    n[0].active = 1;
    assert_int_equal(s_pick(n, "glm", NULL, 10, &r), 0);
    assert_int_equal(r.node, 1); // 80 tok/s beats 50
    assert_string_equal(r.reason, "fastest");
    // Headroom clearly larger still wins over a shorter queue.
    n[0].mem_free = 200 * MiB;
    n[0].active = 5;
    assert_int_equal(s_pick(n, "glm", NULL, 10, &r), 0);
    assert_int_equal(r.node, 0);
    assert_string_equal(r.reason, "most headroom");
}

static void test_down_draining_excluded(void **st) {
    (void)st;
    mesh_route_node_t n[3];
    s_nodes(n);
    mesh_route_result_t r;
    uint8_t ex[3] = {1, 0, 0};
    mesh_route_req_t q = {"glm", NULL, 10, ex};
    assert_int_equal(mesh_route_pick(&q, n, 3, &r), 0);
    assert_int_equal(r.node, 1);
    n[1].draining = 1;
    assert_int_equal(mesh_route_pick(&q, n, 3, &r), 0);
    assert_int_equal(r.node, 2);
    n[2].up = 0;
    assert_int_equal(mesh_route_pick(&q, n, 3, &r), MESH_EBUSY);
    assert_non_null(strstr(r.missing, "tried"));
    ex[0] = 0;
    n[0].up = 0;
    assert_int_equal(mesh_route_pick(&q, n, 3, &r), MESH_EBUSY);
    assert_non_null(strstr(r.missing, "down or draining"));
    assert_int_equal(s_pick(n, "nope", NULL, 10, &r), MESH_ENOTFOUND);
    assert_non_null(strstr(r.missing, "no node serves model 'nope'"));
    // Empty mesh.
    mesh_route_req_t q2 = {"glm", NULL, 10, NULL};
    assert_int_equal(mesh_route_pick(&q2, n, 0, &r), MESH_ENOTFOUND);
}

static void test_quant_rank(void **st) {
    (void)st;
    assert_true(mesh_route_quant_rank("bf16") > mesh_route_quant_rank("q8_0"));
    assert_true(mesh_route_quant_rank("q8_0") > mesh_route_quant_rank("q4_k_m"));
    assert_true(mesh_route_quant_rank("Q4_K_M") > mesh_route_quant_rank("q3_k_m"));
    assert_true(mesh_route_quant_rank("weird") > 0);
}

static void test_state_roundtrip(void **st) {
    (void)st;
    char dir[] = "/tmp/mesh_state_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/state.json", dir);
    mesh_coord_state_t s = {0}, t;
    char err[256];
    assert_int_equal(mesh_coord_state_load(path, &t, err, sizeof err), MESH_ENOENT);
    s.n = 2;
    snprintf(s.nodes[0].name, 64, "n1");
    snprintf(s.nodes[0].address, 256, "tcp://127.0.0.1:1");
    snprintf(s.nodes[0].key, 41, "rq:rM>}U?@Lns47E1%%kR.o@n%%FcmmsL/@{H8]yf7");
    s.nodes[1] = s.nodes[0];
    snprintf(s.nodes[1].name, 64, "n2");
    s.nodes[1].draining = 1;
    assert_int_equal(mesh_coord_state_save(path, &s, err, sizeof err), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    assert_int_equal(mesh_coord_state_load(path, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.nodes[1].name, "n2");
    assert_string_equal(t.nodes[1].key, s.nodes[0].key);
    assert_true(t.nodes[1].draining);
    assert_false(t.nodes[0].draining);
    // Malformed files are refused with a reason.
    const char *bad[] = {"not json", "{\"nodes\": 3}",
                         "{\"nodes\":[{\"name\":\"x\",\"address\":\"tcp://a:1\",\"key\":\"short\"}]}"};
    for (size_t i = 0; i < 3; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        err[0] = 0;
        assert_int_equal(mesh_coord_state_load(path, &t, err, sizeof err), MESH_EFORMAT);
        assert_true(strlen(err) > 0);
    }
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_quant),     cmocka_unit_test(test_best_quant_and_headroom),
        cmocka_unit_test(test_context),         cmocka_unit_test(test_memory),
        cmocka_unit_test(test_queue_then_speed), cmocka_unit_test(test_down_draining_excluded),
        cmocka_unit_test(test_quant_rank),      cmocka_unit_test(test_state_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
