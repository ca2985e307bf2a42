// SPDX-License-Identifier: MIT
// Logging through one function with a replaceable sink.
//
// mesh_log(level, fmt, ...) formats one line and hands it to the current
// sink (default: stderr with a timestamp and level). Messages start with the
// component or function ("gguf: ...", "node: ..."). Never log secrets or
// whole prompts at INFO. Thread-safe: the default sink writes each line with
// one fputs under a mutex; a custom sink must be thread-safe itself.
#ifndef MESH_LOG_H
#define MESH_LOG_H

#include <stdarg.h>

typedef enum {
    MESH_LOG_DEBUG = 0,
    MESH_LOG_INFO,
    MESH_LOG_WARN,
    MESH_LOG_ERROR,
    MESH_LOG_COUNT
} mesh_log_level_t;

// A sink receives the level and one formatted line without a trailing newline.
typedef void (*mesh_log_sink_fn)(mesh_log_level_t level, const char *line, void *user);

// Replaces the sink; NULL restores the default stderr sink.
void mesh_log_set_sink(mesh_log_sink_fn sink, void *user);

// Messages below this level are dropped before formatting (default INFO, or
// the MESH_LOG_LEVEL environment variable: debug, info, warn, error).
void mesh_log_set_level(mesh_log_level_t level);
mesh_log_level_t mesh_log_get_level(void);

// Parses "debug", "info", "warn", "error". Returns 0 or MESH_EINVAL.
int mesh_log_parse_level(const char *s, mesh_log_level_t *out);

const char *mesh_log_level_name(mesh_log_level_t level);

void mesh_log(mesh_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mesh_vlog(mesh_log_level_t level, const char *fmt, va_list ap);

#define MESH_DEBUG(...) mesh_log(MESH_LOG_DEBUG, __VA_ARGS__)
#define MESH_INFO(...) mesh_log(MESH_LOG_INFO, __VA_ARGS__)
#define MESH_WARN(...) mesh_log(MESH_LOG_WARN, __VA_ARGS__)
#define MESH_ERROR(...) mesh_log(MESH_LOG_ERROR, __VA_ARGS__)

#endif
