// SPDX-License-Identifier: MIT
// Test harness for mesh integration tests: real meshcoord/meshnode processes
// on 127.0.0.1 with ephemeral ports and keys in a temporary directory, a
// tiny HTTP client for the admin API, and cleanup that kills every process
// it started (by pid) even when a check fails.
#ifndef MESH_HARNESS_H
#define MESH_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

struct cJSON;

// A new temporary directory (mode 0700) under TMPDIR or /tmp; path in out.
void mh_tmpdir(char *out, size_t cap);
// Path of a built program: $MESH_BIN_DIR/name (or $MESH_BIN_DIR/../tests/name
// when tests_dir). Fails the test when MESH_BIN_DIR is unset.
void mh_bin(char *out, size_t cap, const char *name, int tests_dir);
// $MESH_TESTDATA/glm-tiny/file; fails the test clearly when it is missing.
void mh_testdata(char *out, size_t cap, const char *file);
// A TCP port free on 127.0.0.1 right now.
int mh_free_port(void);

// Starts argv (NULL-terminated) with stdout+stderr into log_path. The pid is
// remembered for mh_kill_all.
pid_t mh_spawn(const char *log_path, char *const argv[]);
// Runs argv to completion (at most timeout_ms), output (stdout+stderr) into
// out. Returns the exit status, or -1 on timeout/signal.
int mh_run(char *const argv[], char *out, size_t cap, int timeout_ms);
// Sends sig to pid and reaps it (waits up to 5 s, then SIGKILL).
// Returns the wait status.
int mh_stop(pid_t pid, int sig);
// SIGKILLs and reaps every process still running.
void mh_kill_all(void);

// Reads a whole small file into out (NUL-terminated). Returns its length or -1.
long mh_read_file(const char *path, char *out, size_t cap);
// Waits until path exists and is non-empty. Returns 0 or -1 on timeout.
int mh_wait_file(const char *path, int timeout_ms);
// 1 if the file contains needle.
int mh_file_has(const char *path, const char *needle);

// One HTTP request to 127.0.0.1:port. token NULL: no Authorization header.
// Returns the HTTP status (or -1), *reply the body (caller frees).
int mh_http(int port, const char *method, const char *path, const char *token,
            const char *body, char **reply);

// Polls the admin status until nodes_up == n (or timeout). Returns nodes_up.
int mh_wait_up(int port, const char *token, int n, int timeout_ms);
// State of one node from /admin/v1/nodes ("up", "dead", ...), into out.
void mh_node_state(int port, const char *token, const char *name, char *out, size_t cap);

#endif

// A coordinator in a temporary directory, for tests.
typedef struct {
    char dir[256];
    char coord_bin[512], node_bin[512], ctl_bin[512];
    char state[320], key[320], tokfile[320], portfile[320], log[320];
    char pub[64];        // coordinator public key
    char token[128];
    int port;            // admin port
    char httpportfile[320];
    int http_port;       // the OpenAI endpoint's port
    pid_t pid;
} mh_mesh_t;

// Makes the directory, the coordinator key (via --print-key) and starts it.
void mh_mesh_init(mh_mesh_t *m);
// (Re)starts meshcoord on the same state/key/token files; sets m->port and
// m->http_port.
void mh_mesh_coord_start(mh_mesh_t *m);
// Public key of a node key file dir/NAME.key (created on first use).
void mh_mesh_node_key(mh_mesh_t *m, const char *name, char *pub, size_t cap);
// Adds a node through the admin API; returns the HTTP status.
int mh_mesh_add(mh_mesh_t *m, const char *name, int port, const char *pub);
// Admin call with the right token; returns the status, *js the parsed reply
// (caller deletes; may be NULL on bad JSON).
int mh_mesh_call(mh_mesh_t *m, const char *method, const char *path, const char *body,
                 struct cJSON **js);
// Runs meshctl with --url/--token-file set and the given words; output in out.
int mh_mesh_ctl(mh_mesh_t *m, char *out, size_t cap, const char *const *words);

// Removes a test directory tree (kept when MESH_KEEP_TMP is set, for logs).
void mh_rmtree(const char *dir);
