// SPDX-License-Identifier: MIT
// Persistent thread pool: generation counter + spin-then-sleep workers and a
// sense-reversing spin barrier. See threadpool.h for the contract.
#include "threadpool.h"

#include "mesh_err.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define S_PAUSE() _mm_pause()
#else
#define S_PAUSE() ((void)0)
#endif

// Spins before sleeping: long enough to cover the gap between two ops of one
// forward pass (a few us), short enough not to burn a core when idle.
#define S_SPIN_ITERS 20000
// Waits inside an op (end of run, barriers) spin this many pauses, then
// sleep on a condition variable: on a machine with other busy processes a
// preempted peer then costs one wake-up, not a time slice of spinning.
#define S_YIELD_AFTER 4000

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
    pthread_cond_t cv;         // workers waiting for a run
    _Atomic int sleepers;
    pthread_cond_t done_cv;    // caller waiting for pending == 0
    pthread_cond_t bar_cv;     // threads waiting in a barrier
    _Atomic int waiters;       // threads asleep on done_cv or bar_cv
    int late_runs;             // consecutive runs where workers were not running yet
    int solo_left;             // runs still to do on the caller alone (backoff)
    int solo_len;              // length of the next solo stretch (doubles while it keeps recurring)
    int64_t solo_until;        // CLOCK_MONOTONIC ns at which the current stretch ends anyway
    int ontime_runs;           // consecutive runs where the workers kept up
};

// Backoff on an oversubscribed machine: when for S_LATE_RUNS runs in a row
// the caller waited for the workers longer than its own share took (plus
// S_LATE_NS), the workers are not getting CPU time and every op would wait a
// scheduler time slice for them; the next S_SOLO_RUNS runs then use the
// caller alone. Results do not depend on the thread count, only the speed.
// Each time the workers are late again right after a solo stretch, the next
// stretch is twice as long (up to S_SOLO_MAX runs): every probe of a busy
// machine costs S_LATE_RUNS waits of a time slice, which at batch 1 (about
// a hundred runs per token) outweighed the gain from a second thread. After
// S_ONTIME_RESET on-time runs the stretch length starts over. A stretch also
// ends after S_SOLO_MAX_NS, so a load spike that has passed costs at most
// that long on one thread (prompt runs are long: 1024 of them are seconds).
#define S_LATE_NS 20000
#define S_LATE_RUNS 4
#define S_SOLO_RUNS 1024
#define S_SOLO_MAX (1 << 17)
#define S_ONTIME_RESET 4096
#define S_SOLO_MAX_NS 250000000

// Spins, then sleeps until *word != val (seq_cst pairs with s_notify).
static void s_wait_change_u(mesh_tp_t *tp, _Atomic unsigned *word, unsigned val,
                            pthread_cond_t *cv) {
    for (int i = 0; i < S_YIELD_AFTER; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != val)
            return;
        S_PAUSE();
    }
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add(&tp->waiters, 1);
    while (atomic_load(word) == val)
        pthread_cond_wait(cv, &tp->mu);
    atomic_fetch_sub(&tp->waiters, 1);
    pthread_mutex_unlock(&tp->mu);
}

// Wakes sleepers of s_wait_* after the watched word changed.
static void s_notify(mesh_tp_t *tp, pthread_cond_t *cv) {
    if (atomic_load(&tp->waiters) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(cv);
        pthread_mutex_unlock(&tp->mu);
    }
}

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
        if (atomic_fetch_sub(&tp->pending, 1) == 1)
            s_notify(tp, &tp->done_cv);
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
    tp->solo_len = S_SOLO_RUNS;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    pthread_cond_init(&tp->bar_cv, NULL);
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
    pthread_cond_destroy(&tp->done_cv);
    pthread_cond_destroy(&tp->bar_cv);
    free(tp->w);
    free(tp);
    *p = NULL;
}

int mesh_tp_n_threads(const mesh_tp_t *tp) {
    return tp->n;
}

static int64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Caller: until every worker finished the current run.
static void s_wait_done(mesh_tp_t *tp) {
    for (int i = 0; i < S_YIELD_AFTER; i++) {
        if (atomic_load_explicit(&tp->pending, memory_order_acquire) == 0)
            return;
        S_PAUSE();
    }
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add(&tp->waiters, 1);
    while (atomic_load(&tp->pending) > 0)
        pthread_cond_wait(&tp->done_cv, &tp->mu);
    atomic_fetch_sub(&tp->waiters, 1);
    pthread_mutex_unlock(&tp->mu);
}

// backoff: whether a solo stretch may shrink the run to the caller alone.
static void s_run(mesh_tp_t *tp, int nth, mesh_tp_fn fn, void *arg, bool backoff) {
    if (nth > tp->n)
        nth = tp->n;
    if (nth < 1)
        nth = 1;
    if (backoff && tp->solo_left > 0) {
        if (s_now_ns() < tp->solo_until) {
            tp->solo_left--;
            nth = 1;
        } else {
            tp->solo_left = 0;
        }
    }
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
    int64_t t0 = s_now_ns();
    fn(arg, 0, nth);
    int64_t t1 = s_now_ns();
    s_wait_done(tp);
    int64_t t2 = s_now_ns();
    if (t2 - t1 > (t1 - t0) + S_LATE_NS) {
        tp->ontime_runs = 0;
        if (++tp->late_runs >= S_LATE_RUNS) {
            tp->late_runs = 0;
            tp->solo_left = tp->solo_len;
            tp->solo_until = t2 + S_SOLO_MAX_NS;
            tp->solo_len = tp->solo_len < S_SOLO_MAX / 2 ? tp->solo_len * 2 : S_SOLO_MAX;
        }
    } else {
        tp->late_runs = 0;
        if (++tp->ontime_runs >= S_ONTIME_RESET)
            tp->solo_len = S_SOLO_RUNS;
    }
}

void mesh_tp_run_n(mesh_tp_t *tp, int nth, mesh_tp_fn fn, void *arg) {
    s_run(tp, nth, fn, arg, true);
}

void mesh_tp_run(mesh_tp_t *tp, mesh_tp_fn fn, void *arg) {
    s_run(tp, tp->n, fn, arg, false);
}

void mesh_tp_barrier(mesh_tp_t *tp) {
    int nth = tp->nth;
    if (nth <= 1)
        return;
    unsigned sense = atomic_load_explicit(&tp->bar_sense, memory_order_acquire);
    if (atomic_fetch_add_explicit(&tp->bar_count, 1, memory_order_acq_rel) == nth - 1) {
        atomic_store_explicit(&tp->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add(&tp->bar_sense, 1);
        s_notify(tp, &tp->bar_cv);
    } else {
        s_wait_change_u(tp, &tp->bar_sense, sense, &tp->bar_cv);
    }
}
