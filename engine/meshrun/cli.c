// SPDX-License-Identifier: MIT
// meshrun's shared command-line helpers (see cli.h).
#include "cli.h"

#include "mesh_err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int meshrun_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    if (len)
        *len = 0;
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return MESH_EIO;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    int rc = b ? 0 : MESH_ENOMEM;
    while (!rc) {
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                rc = MESH_ENOMEM;
                break;
            }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (max_bytes && n > max_bytes)
            rc = MESH_ERANGE;
        else if (r == 0)
            break;
    }
    if (!rc && ferror(f))
        rc = MESH_EIO;
    if (f != stdin)
        fclose(f);
    if (rc) {
        free(b);
        return rc;
    }
    b[n] = 0;
    *out = b;
    if (len)
        *len = n;
    return 0;
}

static int s_is_sep(char c) {
    return c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r' || c == '[' || c == ']';
}

int meshrun_parse_ids(const char *s, size_t len, int32_t **ids, size_t *n, char *bad,
                      size_t bad_len) {
    *ids = NULL;
    *n = 0;
    size_t cap = 0, k = 0, i = 0;
    int32_t *v = NULL;
    while (i < len) {
        while (i < len && s_is_sep(s[i]))
            i++;
        if (i >= len)
            break;
        size_t j = i;
        long long x = 0;
        while (j < len && s[j] >= '0' && s[j] <= '9' && x <= INT32_MAX)
            x = x * 10 + (s[j++] - '0');
        if (j == i || x > INT32_MAX || (j < len && !s_is_sep(s[j]))) {
            size_t e = j;
            while (e < len && e - i < 20 && !s_is_sep(s[e]))
                e++;
            snprintf(bad, bad_len, "%.*s", (int)(e - i + (e == i)), s + i);
            free(v);
            return MESH_EINVAL;
        }
        if (k == cap) {
            size_t nc = cap ? cap * 2 : 64;
            int32_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                free(v);
                return MESH_ENOMEM;
            }
            v = nv;
            cap = nc;
        }
        v[k++] = (int32_t)x;
        i = j;
    }
    *ids = v;
    *n = k;
    return 0;
}

bool meshrun_parse_double(const char *s, double lo, double hi, double *out) {
    if (!s)
        return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(x) || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

bool meshrun_parse_long(const char *s, long lo, long hi, long *out) {
    if (!s)
        return false;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end || errno || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

double meshrun_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t meshrun_clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec;
}

void meshrun_sampling_init(meshrun_sampling_t *s) {
    s->params = mesh_sampler_params_default();
    s->params.temperature = 0.8f;
    s->params.top_k = 40;
    s->params.top_p = 0.95f;
    s->params.min_p = 0.05f;
    s->have_seed = false;
}

int meshrun_sampling_opt(meshrun_sampling_t *s, const char *cmd, int argc, char **argv,
                         int *i) {
    const char *a = argv[*i];
    mesh_sampler_params_t *sp = &s->params;
    if (!strcmp(a, "--greedy")) {
        sp->temperature = 0.0f;
        return 1;
    }
    static const char *const with_value[] = {"--temp", "--top-k", "--top-p", "--min-p",
                                             "--repeat-penalty", "--seed"};
    int k = -1;
    for (int j = 0; j < (int)(sizeof with_value / sizeof with_value[0]); j++)
        if (!strcmp(a, with_value[j]))
            k = j;
    if (k < 0)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "meshrun %s: %s needs a value (see --help)\n", cmd, a);
        return -1;
    }
    const char *v = argv[++*i];
    double x = 0;
    bool ok;
    switch (k) {
    case 0:
        ok = meshrun_parse_double(v, 0, 100, &x);
        sp->temperature = (float)x;
        break;
    case 1:
        ok = meshrun_parse_double(v, 0, INT32_MAX, &x) && x == floor(x);
        sp->top_k = (int32_t)x;
        break;
    case 2:
        ok = meshrun_parse_double(v, 1e-6, 1, &x);
        sp->top_p = (float)x;
        break;
    case 3:
        ok = meshrun_parse_double(v, 0, 1, &x);
        sp->min_p = (float)x;
        break;
    case 4:
        ok = meshrun_parse_double(v, 1e-3, 100, &x);
        sp->repetition_penalty = (float)x;
        break;
    default: { // --seed: all 64 bits, so not through a double
        char *end;
        errno = 0;
        unsigned long long seed = strtoull(v, &end, 10);
        ok = end != v && !*end && !errno && v[0] != '-';
        sp->seed = seed;
        s->have_seed = ok;
        break;
    }
    }
    if (!ok) {
        fprintf(stderr, "meshrun %s: bad value '%s' for %s (see --help)\n", cmd, v, a);
        return -1;
    }
    return 1;
}

void meshrun_sampling_finish(meshrun_sampling_t *s) {
    if (!s->have_seed)
        s->params.seed = meshrun_clock_seed();
}
