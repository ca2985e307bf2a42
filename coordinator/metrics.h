// SPDX-License-Identifier: MIT
// A small Prometheus registry: counters, gauges and histograms with labels,
// rendered in the text exposition format (version 0.0.4) for GET /metrics.
// Thread-safe (one mutex); each update is O(series of that family), which
// stays small here (models x statuses, nodes).
#ifndef MESH_METRICS_H
#define MESH_METRICS_H

#include <stddef.h>

typedef struct mesh_metrics mesh_metrics_t;

typedef enum {
    MESH_METRIC_COUNTER = 0,
    MESH_METRIC_GAUGE,
    MESH_METRIC_HISTOGRAM,
    MESH_METRIC_KIND_COUNT
} mesh_metric_kind_t;

mesh_metrics_t *mesh_metrics_new(void);     // NULL on no memory
void mesh_metrics_destroy(mesh_metrics_t **m);

// Declares a family (name, help text, kind; histograms get their bucket
// upper bounds, ascending, +Inf implied). Strings are copied. Declaring a
// name twice is a no-op. Returns 0 or a negative MESH_E*.
int mesh_metrics_declare(mesh_metrics_t *m, const char *name, const char *help,
                         mesh_metric_kind_t kind, const double *buckets, size_t n_buckets);

// labels: NULL-terminated key, value, key, value, ... list (values are
// escaped here). Unknown family names are ignored (a programmer error that
// must not take a daemon down).
void mesh_metrics_add(mesh_metrics_t *m, const char *name, const char *const *labels, double v);
void mesh_metrics_set(mesh_metrics_t *m, const char *name, const char *const *labels, double v);
void mesh_metrics_observe(mesh_metrics_t *m, const char *name, const char *const *labels,
                          double v);
// Drops every series of a family (gauges rebuilt per scrape, e.g. per node).
void mesh_metrics_reset(mesh_metrics_t *m, const char *name);

// The whole registry as exposition text. Caller frees.
char *mesh_metrics_render(mesh_metrics_t *m);

#endif
