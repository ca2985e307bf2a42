// SPDX-License-Identifier: MIT
// Integration test harness (see mesh_harness.h).
#include "mesh_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MH_MAX_PROCS 64
static pid_t s_pids[MH_MAX_PROCS];
static int s_npids;
static int s_atexit;

static long s_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void mh_tmpdir(char *out, size_t cap) {
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/meshtest_XXXXXX", t && *t ? t : "/tmp");
    assert_non_null(mkdtemp(out));
}

void mh_bin(char *out, size_t cap, const char *name, int tests_dir) {
    const char *b = getenv("MESH_BIN_DIR");
    if (!b)
        fail_msg("MESH_BIN_DIR is not set: run this test through ctest");
    snprintf(out, cap, "%s/%s%s", b, tests_dir ? "../tests/" : "", name);
    if (access(out, X_OK) != 0)
        fail_msg("%s is missing: build it first", out);
}

void mh_testdata(char *out, size_t cap, const char *file) {
    const char *d = getenv("MESH_TESTDATA");
    if (!d)
        fail_msg("MESH_TESTDATA is not set: run this test through ctest");
    snprintf(out, cap, "%s/glm-tiny/%s", d, file);
    if (access(out, R_OK) != 0)
        fail_msg("reference data %s is missing (see shared/testdata/README.md)", out);
}

int mh_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static void s_forget(pid_t pid) {
    for (int i = 0; i < s_npids; i++)
        if (s_pids[i] == pid) {
            s_pids[i] = s_pids[--s_npids];
            return;
        }
}

pid_t mh_spawn(const char *log_path, char *const argv[]) {
    if (!s_atexit) {
        atexit(mh_kill_all);
        s_atexit = 1;
    }
    assert_true(s_npids < MH_MAX_PROCS);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    s_pids[s_npids++] = pid;
    return pid;
}

int mh_run(char *const argv[], char *out, size_t cap, int timeout_ms) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    size_t len = 0;
    long end = s_now_ms() + timeout_ms;
    int status = 0, done = 0;
    while (!done) {
        ssize_t n = cap > len + 1 ? read(p[0], out + len, cap - len - 1) : 0;
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            while (cap > len + 1 && (n = read(p[0], out + len, cap - len - 1)) > 0)
                len += (size_t)n;
            done = 1;
        } else if (s_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(p[0]);
            out[len] = 0;
            return -1;
        } else {
            usleep(2000);
        }
    }
    close(p[0]);
    out[len] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int mh_stop(pid_t pid, int sig) {
    int status = 0;
    kill(pid, sig);
    long end = s_now_ms() + 5000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (s_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(5000);
    }
    s_forget(pid);
    return status;
}

void mh_kill_all(void) {
    while (s_npids > 0) {
        pid_t pid = s_pids[s_npids - 1];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s_npids--;
    }
}

long mh_read_file(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    return (long)n;
}

int mh_wait_file(const char *path, int timeout_ms) {
    long end = s_now_ms() + timeout_ms;
    struct stat st;
    while (stat(path, &st) != 0 || st.st_size == 0) {
        if (s_now_ms() > end)
            return -1;
        usleep(10000);
    }
    return 0;
}

int mh_file_has(const char *path, const char *needle) {
    static char buf[1 << 20];
    if (mh_read_file(path, buf, sizeof buf) < 0)
        return 0;
    return strstr(buf, needle) != NULL;
}

int mh_http(int port, const char *method, const char *path, const char *token,
            const char *body, char **reply) {
    *reply = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {60, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    size_t bl = body ? strlen(body) : 0;
    char head[1024];
    char auth[300] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     method, path, auth, bl);
    if (write(fd, head, (size_t)n) != n || (bl && write(fd, body, bl) != (ssize_t)bl)) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    int status = (len > 12 && sep) ? atoi(buf + 9) : -1;
    *reply = strdup(sep ? sep + 4 : "");
    free(buf);
    return status;
}

int mh_wait_up(int port, const char *token, int n, int timeout_ms) {
    long end = s_now_ms() + timeout_ms;
    int up = -1;
    for (;;) {
        char *r = NULL;
        if (mh_http(port, "GET", "/admin/v1/status", token, NULL, &r) == 200) {
            cJSON *o = cJSON_Parse(r);
            cJSON *u = cJSON_GetObjectItem(o, "nodes_up");
            up = cJSON_IsNumber(u) ? (int)u->valuedouble : -1;
            cJSON_Delete(o);
        }
        free(r);
        if (up == n || s_now_ms() > end)
            return up;
        usleep(20000);
    }
}

void mh_node_state(int port, const char *token, const char *name, char *out, size_t cap) {
    char *r = NULL;
    snprintf(out, cap, "absent");
    if (mh_http(port, "GET", "/admin/v1/nodes", token, NULL, &r) == 200) {
        cJSON *o = cJSON_Parse(r), *it;
        cJSON_ArrayForEach(it, o) {
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
            if (nm && strcmp(nm, name) == 0)
                snprintf(out, cap, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(it, "state")));
        }
        cJSON_Delete(o);
    }
    free(r);
}

void mh_mesh_init(mh_mesh_t *m) {
    memset(m, 0, sizeof *m);
    mh_tmpdir(m->dir, sizeof m->dir);
    mh_bin(m->coord_bin, sizeof m->coord_bin, "meshcoord", 0);
    mh_bin(m->node_bin, sizeof m->node_bin, "meshnode", 0);
    mh_bin(m->ctl_bin, sizeof m->ctl_bin, "meshctl", 0);
    snprintf(m->state, sizeof m->state, "%s/state.json", m->dir);
    snprintf(m->key, sizeof m->key, "%s/coord.key", m->dir);
    snprintf(m->tokfile, sizeof m->tokfile, "%s/admin.token", m->dir);
    snprintf(m->portfile, sizeof m->portfile, "%s/admin.port", m->dir);
    snprintf(m->httpportfile, sizeof m->httpportfile, "%s/http.port", m->dir);
    snprintf(m->log, sizeof m->log, "%s/coord.log", m->dir);
    char out[512];
    char *argv[] = {m->coord_bin, "--key", m->key, "--state", m->state, "--print-key", NULL};
    assert_int_equal(mh_run(argv, out, sizeof out, 10000), 0);
    out[strcspn(out, "\n")] = 0;
    assert_int_equal(strlen(out), 40);
    memcpy(m->pub, out, 41); // 40 key characters and the NUL (checked above)
    mh_mesh_coord_start(m);
}

void mh_mesh_coord_start(mh_mesh_t *m) {
    unlink(m->portfile);
    unlink(m->httpportfile);
    char *argv[] = {m->coord_bin, "--key", m->key, "--state", m->state, "--admin",
                    "127.0.0.1:0", "--admin-token-file", m->tokfile, "--port-file",
                    m->portfile, "--heartbeat-ms", "100", "--dead-after", "5",
                    // the OpenAI endpoint on any free port: tests run in parallel
                    "--listen", "127.0.0.1:0", "--http-port-file", m->httpportfile, NULL};
    m->pid = mh_spawn(m->log, argv);
    if (mh_wait_file(m->portfile, 10000) != 0 || mh_wait_file(m->httpportfile, 10000) != 0)
        fail_msg("meshcoord did not start (see %s)", m->log);
    char buf[64];
    mh_read_file(m->portfile, buf, sizeof buf);
    m->port = atoi(buf);
    assert_true(m->port > 0);
    mh_read_file(m->httpportfile, buf, sizeof buf);
    m->http_port = atoi(buf);
    assert_true(m->http_port > 0);
    assert_true(mh_read_file(m->tokfile, m->token, sizeof m->token) > 0);
    m->token[strcspn(m->token, "\r\n")] = 0;
}

void mh_mesh_node_key(mh_mesh_t *m, const char *name, char *pub, size_t cap) {
    char key[400], out[512];
    snprintf(key, sizeof key, "%s/%s.key", m->dir, name);
    char *argv[] = {m->node_bin, "--key", key, "--print-key", NULL};
    assert_int_equal(mh_run(argv, out, sizeof out, 10000), 0);
    out[strcspn(out, "\n")] = 0;
    assert_int_equal(strlen(out), 40);
    snprintf(pub, cap, "%s", out);
}

int mh_mesh_add(mh_mesh_t *m, const char *name, int port, const char *pub) {
    cJSON *in = cJSON_CreateObject();
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", port);
    cJSON_AddStringToObject(in, "address", addr);
    cJSON_AddStringToObject(in, "key", pub);
    cJSON_AddStringToObject(in, "name", name);
    char *body = cJSON_PrintUnformatted(in);
    cJSON_Delete(in);
    char *r = NULL;
    int st = mh_http(m->port, "POST", "/admin/v1/nodes", m->token, body, &r);
    free(body);
    free(r);
    return st;
}

int mh_mesh_call(mh_mesh_t *m, const char *method, const char *path, const char *body,
                 cJSON **js) {
    char *r = NULL;
    int st = mh_http(m->port, method, path, m->token, body, &r);
    if (js)
        *js = r ? cJSON_Parse(r) : NULL;
    free(r);
    return st;
}

int mh_mesh_ctl(mh_mesh_t *m, char *out, size_t cap, const char *const *words) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", m->port);
    char *argv[32] = {m->ctl_bin, "--url", url, "--token-file", m->tokfile};
    int n = 5;
    for (int i = 0; words[i] && n < 31; i++)
        argv[n++] = (char *)words[i];
    argv[n] = NULL;
    return mh_run(argv, out, cap, 30000);
}

#include <ftw.h>
static int s_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void mh_rmtree(const char *dir) {
    if (getenv("MESH_KEEP_TMP") || !dir[0])
        return;
    nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}
