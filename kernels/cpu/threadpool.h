// SPDX-License-Identifier: MIT
// A persistent thread pool for the CPU backend: threads are created once;
// between ops they spin briefly, then sleep on a condition variable. One op
// is one mesh_tp_run call: every thread (the caller is thread 0) runs the
// same function with its index, and the call returns when all are done.
// Inside a task, mesh_tp_barrier synchronises all threads (phases of one op).
// Cost: a run with a warm pool is two cache-line round trips per thread;
// a cold one (threads asleep) is a futex wake-up (~10-50 us).
#ifndef MESH_THREADPOOL_H
#define MESH_THREADPOOL_H

typedef struct mesh_tp mesh_tp_t;
typedef void (*mesh_tp_fn)(void *arg, int ith, int nth);

// n_threads >= 1 (1: everything runs on the caller). Caller destroys.
int mesh_tp_new(int n_threads, mesh_tp_t **out);
void mesh_tp_destroy(mesh_tp_t **tp);
int mesh_tp_n_threads(const mesh_tp_t *tp);
// Runs fn(arg, ith, nth) on nth = all threads; returns when all returned.
void mesh_tp_run(mesh_tp_t *tp, mesh_tp_fn fn, void *arg);
// Runs fn on threads [0, nth) only (nth clamped to [1, n_threads]); others
// idle. On an oversubscribed machine (workers keep finishing far behind the
// caller) the pool backs off and runs these on the caller alone (nth = 1)
// for a while, so fn must give the same results for any nth; mesh_tp_run
// never backs off.
void mesh_tp_run_n(mesh_tp_t *tp, int nth, mesh_tp_fn fn, void *arg);
// Waits until all nth threads of the current run reached it. Only inside a task.
void mesh_tp_barrier(mesh_tp_t *tp);

#endif
