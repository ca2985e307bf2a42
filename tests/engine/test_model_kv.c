// SPDX-License-Identifier: MIT
// Unit tests for the engine's plumbing below the model: the paged KV cache
// bookkeeping (capacity, growth, refusal, free/reuse, truncate) and the CPU
// thread pool (every thread runs, barriers order phases, repeated runs).
#include "backend.h"
#include "kv_cache.h"
#include "mesh_err.h"
#include "quant.h"
#include "threadpool.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_kv_paging(void **state) {
    (void)state;
    mesh_backend_t *be = NULL;
    mesh_backend_params_t bp = {0, 1};
    assert_int_equal(mesh_backend_new("cpu", &bp, &be), 0);
    mesh_kv_t *kv = NULL;
    // 100 tokens -> 3 blocks of 32; 2 sequences; a sequence may hold 64 tokens.
    assert_int_equal(mesh_kv_new(be, MESH_QT_F16, 3, 40, 100, 2, 64, &kv), 0);
    assert_int_equal((int)mesh_kv_capacity_tokens(kv), 96);
    assert_int_equal((int)mesh_kv_bytes_per_token(kv), 3 * 40 * 2);
    int32_t a, b, c;
    assert_int_equal(mesh_kv_seq_new(kv, &a), 0);
    assert_int_equal(mesh_kv_seq_new(kv, &b), 0);
    assert_int_equal(mesh_kv_seq_new(kv, &c), MESH_ENOSPACE); // max_seqs
    assert_int_equal(mesh_kv_grow(kv, a, 33), 0);             // 2 blocks
    assert_int_equal((int)mesh_kv_free_tokens(kv), 32);
    assert_int_equal(mesh_kv_grow(kv, a, 65), MESH_ENOSPACE); // per-sequence limit
    assert_int_equal(mesh_kv_grow(kv, b, 40), MESH_ENOSPACE); // pool: needs 2, 1 free
    assert_int_equal((int)mesh_kv_free_tokens(kv), 32);       // nothing taken
    assert_int_equal(mesh_kv_grow(kv, b, 32), 0);
    assert_int_equal((int)mesh_kv_free_tokens(kv), 0);
    assert_int_equal(mesh_kv_seq_free(kv, a), 0);
    assert_int_equal(mesh_kv_seq_free(kv, a), MESH_ENOENT);
    assert_int_equal((int)mesh_kv_free_tokens(kv), 64);
    assert_int_equal(mesh_kv_seq_len(kv, a), MESH_ENOENT);
    assert_int_equal(mesh_kv_seq_new(kv, &c), 0);
    assert_int_equal(mesh_kv_seq_len(kv, c), 0);
    assert_int_equal(mesh_kv_grow(kv, b, 64), 0); // reuses a freed block
    assert_int_equal(mesh_kv_seq_truncate(kv, b, -1), MESH_EINVAL);
    assert_int_equal(mesh_kv_seq_truncate(kv, 7, 0), MESH_ENOENT);
    mesh_kv_destroy(&kv);
    assert_null(kv);
    mesh_backend_destroy(&be);
    assert_null(be);
}

typedef struct {
    int n;
    int hits[64];
    int phase_ok;
    int shared[64];
    mesh_tp_t *tp;
} s_tp_arg_t;

static void s_task(void *p, int ith, int nth) {
    s_tp_arg_t *a = p;
    a->n = nth;
    a->hits[ith]++;
    a->shared[ith] = ith + 1;
    mesh_tp_barrier(a->tp);
    int sum = 0; // after the barrier every thread sees every write
    for (int i = 0; i < nth; i++)
        sum += a->shared[i];
    mesh_tp_barrier(a->tp);
    a->shared[ith] = 0;
    if (sum == nth * (nth + 1) / 2)
        __atomic_fetch_add(&a->phase_ok, 1, __ATOMIC_RELAXED);
}

static void test_threadpool(void **state) {
    (void)state;
    for (int nt = 1; nt <= 4; nt++) {
        mesh_tp_t *tp = NULL;
        assert_int_equal(mesh_tp_new(nt, &tp), 0);
        s_tp_arg_t a;
        memset(&a, 0, sizeof a);
        a.tp = tp;
        for (int r = 0; r < 200; r++)
            mesh_tp_run(tp, s_task, &a);
        assert_int_equal(a.n, nt);
        for (int i = 0; i < nt; i++)
            assert_int_equal(a.hits[i], 200);
        assert_int_equal(a.phase_ok, 200 * nt);
        mesh_tp_run_n(tp, 1, s_task, &a); // caller only
        assert_int_equal(a.hits[0], 201);
        mesh_tp_destroy(&tp);
        assert_null(tp);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_paging),
        cmocka_unit_test(test_threadpool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
