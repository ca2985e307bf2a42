// SPDX-License-Identifier: MIT
// Prometheus text exposition. Families hold series keyed by their rendered
// label string ({k="v",...}), so a lookup is a string compare per series.
#include "metrics.h"

#include "mesh_err.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_series {
    struct s_series *next;
    char *labels;        // "" or k="v",k2="v2" (no braces)
    double value;        // counter/gauge; histogram: sum
    double count;        // histogram: observations
    double *bucket;      // histogram: cumulative counts per bound
} s_series_t;

typedef struct s_family {
    struct s_family *next;
    char *name, *help;
    mesh_metric_kind_t kind;
    double *bounds;
    size_t n_bounds;
    s_series_t *series;
} s_family_t;

struct mesh_metrics {
    pthread_mutex_t lock;
    s_family_t *families, **tail;
};

mesh_metrics_t *mesh_metrics_new(void) {
    mesh_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void s_free_series(s_series_t *s) {
    while (s) {
        s_series_t *n = s->next;
        free(s->labels);
        free(s->bucket);
        free(s);
        s = n;
    }
}

void mesh_metrics_destroy(mesh_metrics_t **mp) {
    if (!mp || !*mp)
        return;
    mesh_metrics_t *m = *mp;
    for (s_family_t *f = m->families, *n; f; f = n) {
        n = f->next;
        s_free_series(f->series);
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
    *mp = NULL;
}

static s_family_t *s_find(mesh_metrics_t *m, const char *name) {
    for (s_family_t *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

int mesh_metrics_declare(mesh_metrics_t *m, const char *name, const char *help,
                         mesh_metric_kind_t kind, const double *buckets, size_t n_buckets) {
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    if (!s_find(m, name)) {
        s_family_t *f = calloc(1, sizeof *f);
        if (f) {
            f->name = strdup(name);
            f->help = strdup(help);
            f->kind = kind;
            if (kind == MESH_METRIC_HISTOGRAM && n_buckets) {
                f->bounds = malloc(n_buckets * sizeof *f->bounds);
                if (f->bounds)
                    memcpy(f->bounds, buckets, n_buckets * sizeof *f->bounds);
                f->n_bounds = n_buckets;
            }
        }
        if (!f || !f->name || !f->help || (f->n_bounds && !f->bounds)) {
            if (f)
                free(f->name), free(f->help), free(f->bounds), free(f);
            rc = MESH_ENOMEM;
        } else {
            *m->tail = f;
            m->tail = &f->next;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

// k="v" pairs with \\, \" and \n escaped, as the format asks.
static char *s_labels(const char *const *kv) {
    size_t cap = 1;
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
        cap += strlen(kv[i]) + 2 * strlen(kv[i + 1]) + 5;
    char *s = malloc(cap), *w = s;
    if (!s)
        return NULL;
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
        if (w != s)
            *w++ = ',';
        w += sprintf(w, "%s=\"", kv[i]);
        for (const char *v = kv[i + 1]; *v; v++) {
            if (*v == '\\' || *v == '"')
                *w++ = '\\', *w++ = *v;
            else if (*v == '\n')
                *w++ = '\\', *w++ = 'n';
            else
                *w++ = *v;
        }
        *w++ = '"';
    }
    *w = 0;
    return s;
}

static s_series_t *s_series(s_family_t *f, const char *const *kv) {
    char *l = s_labels(kv);
    if (!l)
        return NULL;
    for (s_series_t *s = f->series; s; s = s->next)
        if (strcmp(s->labels, l) == 0) {
            free(l);
            return s;
        }
    s_series_t *s = calloc(1, sizeof *s);
    if (s && f->n_bounds)
        s->bucket = calloc(f->n_bounds, sizeof *s->bucket);
    if (!s || (f->n_bounds && !s->bucket)) {
        free(s);
        free(l);
        return NULL;
    }
    s->labels = l;
    // Appended so the output keeps a stable order.
    s_series_t **t = &f->series;
    while (*t)
        t = &(*t)->next;
    *t = s;
    return s;
}

static void s_update(mesh_metrics_t *m, const char *name, const char *const *kv, double v,
                     int op) {
    pthread_mutex_lock(&m->lock);
    s_family_t *f = s_find(m, name);
    s_series_t *s = f ? s_series(f, kv) : NULL;
    if (s) {
        if (op == 0) {
            s->value += v;
        } else if (op == 1) {
            s->value = v;
        } else {
            s->value += v;
            s->count += 1;
            for (size_t i = 0; i < f->n_bounds; i++)
                if (v <= f->bounds[i])
                    s->bucket[i] += 1;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

void mesh_metrics_add(mesh_metrics_t *m, const char *name, const char *const *labels,
                      double v) {
    s_update(m, name, labels, v, 0);
}
void mesh_metrics_set(mesh_metrics_t *m, const char *name, const char *const *labels,
                      double v) {
    s_update(m, name, labels, v, 1);
}
void mesh_metrics_observe(mesh_metrics_t *m, const char *name, const char *const *labels,
                          double v) {
    s_update(m, name, labels, v, 2);
}

void mesh_metrics_reset(mesh_metrics_t *m, const char *name) {
    pthread_mutex_lock(&m->lock);
    s_family_t *f = s_find(m, name);
    if (f) {
        s_free_series(f->series);
        f->series = NULL;
    }
    pthread_mutex_unlock(&m->lock);
}

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} s_buf_t;

__attribute__((format(printf, 2, 3))) static void s_put(s_buf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static void s_num(char *out, size_t cap, double v) {
    if (isinf(v))
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        snprintf(out, cap, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%.9g", v);
}

char *mesh_metrics_render(mesh_metrics_t *m) {
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    s_buf_t b = {0};
    char num[64], le[64];
    pthread_mutex_lock(&m->lock);
    for (s_family_t *f = m->families; f; f = f->next) {
        s_put(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, kinds[f->kind]);
        for (s_series_t *s = f->series; s; s = s->next) {
            const char *sep = *s->labels ? "," : "";
            if (f->kind != MESH_METRIC_HISTOGRAM) {
                s_num(num, sizeof num, s->value);
                if (*s->labels)
                    s_put(&b, "%s{%s} %s\n", f->name, s->labels, num);
                else
                    s_put(&b, "%s %s\n", f->name, num);
                continue;
            }
            for (size_t i = 0; i < f->n_bounds; i++) {
                s_num(le, sizeof le, f->bounds[i]);
                s_num(num, sizeof num, s->bucket[i]);
                s_put(&b, "%s_bucket{%s%sle=\"%s\"} %s\n", f->name, s->labels, sep, le, num);
            }
            s_num(num, sizeof num, s->count);
            s_put(&b, "%s_bucket{%s%sle=\"+Inf\"} %s\n", f->name, s->labels, sep, num);
            s_num(le, sizeof le, s->value);
            s_put(&b, "%s_sum%s%s%s %s\n", f->name, *s->labels ? "{" : "", s->labels,
                  *s->labels ? "}" : "", le);
            s_put(&b, "%s_count%s%s%s %s\n", f->name, *s->labels ? "{" : "", s->labels,
                  *s->labels ? "}" : "", num);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (b.oom || !b.s) {
        free(b.s);
        return b.oom ? NULL : strdup("");
    }
    return b.s;
}
