// SPDX-License-Identifier: MIT
// Logging: level filter, line formatting, and the default stderr sink.
#include "mesh_log.h"

#include "mesh_err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static mesh_log_sink_fn s_sink; // NULL: default sink
static void *s_sink_user;
static atomic_int s_level = -1; // -1: not read from the environment yet

static const char *const s_names[MESH_LOG_COUNT] = {"debug", "info", "warn", "error"};

const char *mesh_log_level_name(mesh_log_level_t level) {
    return (unsigned)level < MESH_LOG_COUNT ? s_names[level] : "?";
}

int mesh_log_parse_level(const char *s, mesh_log_level_t *out) {
    if (!s)
        return MESH_EINVAL;
    for (int i = 0; i < MESH_LOG_COUNT; i++) {
        if (strcmp(s, s_names[i]) == 0) {
            *out = (mesh_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = MESH_LOG_WARN;
        return 0;
    }
    return MESH_EINVAL;
}

mesh_log_level_t mesh_log_get_level(void) {
    int lv = atomic_load(&s_level);
    if (lv < 0) {
        mesh_log_level_t parsed = MESH_LOG_INFO;
        const char *env = getenv("MESH_LOG_LEVEL");
        if (env && mesh_log_parse_level(env, &parsed) != 0)
            parsed = MESH_LOG_INFO;
        int expected = -1;
        atomic_compare_exchange_strong(&s_level, &expected, (int)parsed);
        lv = atomic_load(&s_level);
    }
    return (mesh_log_level_t)lv;
}

void mesh_log_set_level(mesh_log_level_t level) { atomic_store(&s_level, (int)level); }

void mesh_log_set_sink(mesh_log_sink_fn sink, void *user) {
    pthread_mutex_lock(&s_lock);
    s_sink = sink;
    s_sink_user = user;
    pthread_mutex_unlock(&s_lock);
}

static void s_default_sink(mesh_log_level_t level, const char *line) {
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %-5s %s\n", stamp, ts.tv_nsec / 1000000,
            mesh_log_level_name(level), line);
}

void mesh_vlog(mesh_log_level_t level, const char *fmt, va_list ap) {
    if ((unsigned)level >= MESH_LOG_COUNT || level < mesh_log_get_level())
        return;
    char line[2048];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) // mark a cut line so nobody trusts its end
        memcpy(line + sizeof line - 4, "...", 4);
    pthread_mutex_lock(&s_lock);
    if (s_sink)
        s_sink(level, line, s_sink_user);
    else
        s_default_sink(level, line);
    pthread_mutex_unlock(&s_lock);
}

void mesh_log(mesh_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mesh_vlog(level, fmt, ap);
    va_end(ap);
}
