// SPDX-License-Identifier: MIT
// Persistent thread pool: generation counter + spin-then-sleep workers and a
// sense-reversing spin barrier. See threadpool.h for the contract.
#include "threadpool.h"

#include "mesh_err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define S_PAUSE() _mm_pause()
#else
#define S_PAUSE() ((void)0)
#endif

// Spins before sleeping: long enough to cover the gap between two ops of one
// forward pass (a few us), short enough not to burn a core when idle.
#define S_SPIN_ITERS 20000
// Busy-waits inside an op yield the core after this many pauses, so a pool
// on a machine with other busy processes degrades gracefully instead of
// spinning against a preempted peer.
#define S_YIELD_AFTER 2000

static inline void s_wait_step(int *spins) {
    if (++*spins < S_YIELD_AFTER)
        S_PAUSE();
    else
        sched_yield();
}

typedef struct {
    mesh_tp_t *tp;
    int ith;
    pthread_t th;
} s_worker_t;

struct mesh_tp {
    int n;
    s_worker_t *w;
    _Atomic unsigned gen;      // bumped per run
    _Atomic int pending;       // workers still running the current task
    _Atomic int stop;
    mesh_tp_fn fn;
    void *arg;
    int nth;                   // threads taking part in the current run
    // barrier
    _Atomic int bar_count;
    _Atomic unsigned bar_sense;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int sleepers;
};

static void *s_main(void *p) {
    s_worker_t *w = p;
    mesh_tp_t *tp = w->tp;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen) {
            if (atomic_load(&tp->stop))
                return NULL;
            if (++spins < S_SPIN_ITERS) {
                if (spins < S_YIELD_AFTER)
                    S_PAUSE();
                else
                    sched_yield();
                continue;
            }
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->cv, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&tp->stop))
            return NULL;
        if (w->ith < tp->nth)
            tp->fn(tp->arg, w->ith, tp->nth);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_release);
    }
}

int mesh_tp_new(int n_threads, mesh_tp_t **out) {
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    mesh_tp_t *tp = calloc(1, sizeof *tp);
    if (!tp)
        return MESH_ENOMEM;
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    tp->w = calloc((size_t)n_threads, sizeof *tp->w);
    if (!tp->w) {
        free(tp);
        return MESH_ENOMEM;
    }
    for (int i = 1; i < n_threads; i++) {
        tp->w[i].tp = tp;
        tp->w[i].ith = i;
        if (pthread_create(&tp->w[i].th, NULL, s_main, &tp->w[i])) {
            tp->n = i; // destroy joins the ones that started
            mesh_tp_destroy(&tp);
            return MESH_ENOMEM;
        }
    }
    *out = tp;
    return 0;
}

void mesh_tp_destroy(mesh_tp_t **p) {
    mesh_tp_t *tp = *p;
    if (!tp)
        return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++)
        pthread_join(tp->w[i].th, NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    free(tp->w);
    free(tp);
    *p = NULL;
}

int mesh_tp_n_threads(const mesh_tp_t *tp) {
    return tp->n;
}

void mesh_tp_run_n(mesh_tp_t *tp, int nth, mesh_tp_fn fn, void *arg) {
    if (nth > tp->n)
        nth = tp->n;
    if (nth < 1)
        nth = 1;
    if (tp->n == 1 || nth == 1) {
        int save = tp->nth;
        tp->nth = 1;
        fn(arg, 0, 1);
        tp->nth = save;
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    tp->nth = nth;
    atomic_store(&tp->bar_count, 0);
    atomic_store_explicit(&tp->pending, tp->n - 1, memory_order_relaxed);
    atomic_fetch_add(&tp->gen, 1); // seq_cst: pairs with the sleepers check below
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->cv);
        pthread_mutex_unlock(&tp->mu);
    }
    fn(arg, 0, nth);
    int spins = 0;
    while (atomic_load_explicit(&tp->pending, memory_order_acquire) > 0)
        s_wait_step(&spins);
}

void mesh_tp_run(mesh_tp_t *tp, mesh_tp_fn fn, void *arg) {
    mesh_tp_run_n(tp, tp->n, fn, arg);
}

void mesh_tp_barrier(mesh_tp_t *tp) {
    int nth = tp->nth;
    if (nth <= 1)
        return;
    unsigned sense = atomic_load_explicit(&tp->bar_sense, memory_order_acquire);
    if (atomic_fetch_add_explicit(&tp->bar_count, 1, memory_order_acq_rel) == nth - 1) {
        atomic_store_explicit(&tp->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&tp->bar_sense, 1, memory_order_release);
    } else {
        int spins = 0;
        while (atomic_load_explicit(&tp->bar_sense, memory_order_acquire) == sense)
            s_wait_step(&spins);
    }
}
