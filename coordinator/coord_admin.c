// SPDX-License-Identifier: MIT
// Admin HTTP API over libmicrohttpd: token check, routing of paths to the
// core's registry calls, JSON in and out. A thread per connection, so the
// blocking /generate call does not hold up the others.
#include "coord_admin.h"

#include "mesh_err.h"
#include "mesh_log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#define S_MAX_BODY (1u << 20) // bytes; admin bodies are tiny
#define S_PREFIX "/admin/v1/"

struct mesh_coord_admin {
    struct MHD_Daemon *d;
    mesh_coord_t *core;
    char token[128];
};

int mesh_coord_admin_token(const char *path, char *tok, size_t cap, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        unsigned char raw[24];
        if (sodium_init() < 0)
            return MESH_EIO;
        randombytes_buf(raw, sizeof raw);
        char hex[sizeof raw * 2 + 1];
        sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, hex, strlen(hex)) != (ssize_t)strlen(hex) ||
            write(fd, "\n", 1) != 1) {
            snprintf(err, err_len, "%s: cannot create admin token file: %s", path,
                     strerror(errno));
            if (fd >= 0)
                close(fd);
            return MESH_EIO;
        }
        close(fd);
        snprintf(tok, cap, "%s", hex);
        return 0;
    }
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot open admin token file: %s", path, strerror(errno));
        return MESH_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        snprintf(err, err_len,
                 "%s: token file is readable by group or others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        return MESH_EPERM;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        snprintf(err, err_len, "%s: admin token file is empty", path);
        return MESH_EFORMAT;
    }
    buf[n] = 0;
    buf[strcspn(buf, " \t\r\n")] = 0;
    if (strlen(buf) < 16 || strlen(buf) >= cap) {
        snprintf(err, err_len, "%s: admin token must be 16 to %zu characters", path, cap - 1);
        return MESH_EFORMAT;
    }
    snprintf(tok, cap, "%s", buf);
    return 0;
}

static int s_http_status(int code) {
    switch (code) {
    case 0: return 200;
    case MESH_EINVAL:
    case MESH_EFORMAT:
    case MESH_ERANGE: return 400;
    case MESH_EAUTH: return 401;
    case MESH_EPERM: return 403;
    case MESH_ENOTFOUND:
    case MESH_ENOENT: return 404;
    case MESH_EEXISTS: return 409;
    case MESH_ENOSPACE:
    case MESH_EBUSY:
    case MESH_EUNSUPPORTED:
    case MESH_ETIMEOUT: return 503;
    default: return 500;
    }
}

static int s_error(int code, const char *msg, char **reply) {
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", mesh_errname(code));
    cJSON_AddStringToObject(e, "message", msg);
    *reply = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s_http_status(code);
}

static int s_json(cJSON *o, char **reply) {
    *reply = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return 200;
}

// Blocking generate: collects the stream until on_done.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
    char node[64], reason[48], detail[512];
    cJSON *ids;
    char *text;
    size_t text_len;
    uint32_t prompt_tokens, completion_tokens;
} s_gen_t;

static void s_gen_route(void *u, const char *node, const char *reason) {
    s_gen_t *g = u;
    snprintf(g->node, sizeof g->node, "%s", node);
    if (!g->reason[0] || strcmp(reason, "failover") == 0)
        snprintf(g->reason, sizeof g->reason, "%s", reason);
}

static void s_gen_chunk(void *u, const int32_t *ids, size_t n, const char *text) {
    s_gen_t *g = u;
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(g->ids, cJSON_CreateNumber(ids[i]));
    size_t tl = text ? strlen(text) : 0;
    char *t = realloc(g->text, g->text_len + tl + 1);
    if (t) {
        memcpy(t + g->text_len, text ? text : "", tl);
        g->text_len += tl;
        t[g->text_len] = 0;
        g->text = t;
    }
}

static void s_gen_done(void *u, int status, const char *detail, uint32_t pt, uint32_t ct) {
    s_gen_t *g = u;
    pthread_mutex_lock(&g->mu);
    g->status = status;
    snprintf(g->detail, sizeof g->detail, "%s", detail ? detail : "");
    g->prompt_tokens = pt;
    g->completion_tokens = ct;
    g->done = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int s_generate(mesh_coord_t *core, cJSON *in, char **reply) {
    mesh_coord_request_t rq = {0};
    rq.model = cJSON_GetStringValue(cJSON_GetObjectItem(in, "model"));
    rq.quant = cJSON_GetStringValue(cJSON_GetObjectItem(in, "quant"));
    rq.prompt = cJSON_GetStringValue(cJSON_GetObjectItem(in, "prompt"));
    cJSON *toks = cJSON_GetObjectItem(in, "tokens");
    cJSON *mt = cJSON_GetObjectItem(in, "max_tokens");
    cJSON *temp = cJSON_GetObjectItem(in, "temperature");
    if (!rq.model || !cJSON_IsNumber(mt) || mt->valuedouble < 1)
        return s_error(MESH_EINVAL, "generate needs \"model\" and \"max_tokens\" >= 1", reply);
    rq.max_tokens = (uint32_t)mt->valuedouble;
    rq.temperature = cJSON_IsNumber(temp) ? (float)temp->valuedouble : 0.0f;
    // Chat messages (OpenAI's array): rendered by the node with the model's
    // template, with the assistant's turn opened.
    cJSON *msgs = cJSON_GetObjectItem(in, "messages");
    char *msgs_json = cJSON_IsArray(msgs) ? cJSON_PrintUnformatted(msgs) : NULL;
    if (msgs_json) {
        rq.messages_json = msgs_json;
        rq.add_generation_prompt = 1;
        rq.enable_thinking = cJSON_IsTrue(cJSON_GetObjectItem(in, "enable_thinking"));
    }
    int32_t *ids = NULL;
    if (cJSON_IsArray(toks)) {
        int n = cJSON_GetArraySize(toks);
        ids = calloc((size_t)n + 1, sizeof *ids);
        if (!ids) {
            free(msgs_json);
            return s_error(MESH_ENOMEM, "out of memory", reply);
        }
        for (int i = 0; i < n; i++) {
            cJSON *t = cJSON_GetArrayItem(toks, i);
            if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 1e9) {
                free(ids);
                free(msgs_json);
                return s_error(MESH_EINVAL, "\"tokens\" must be non-negative integers", reply);
            }
            ids[i] = (int32_t)t->valuedouble;
        }
        rq.prompt_ids = ids;
        rq.n_prompt_ids = (size_t)n;
    }
    s_gen_t g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    g.ids = cJSON_CreateArray();
    mesh_coord_stream_t cb = {s_gen_route, s_gen_chunk, s_gen_done};
    char err[256];
    uint64_t id;
    int rc = mesh_coord_submit(core, &rq, &cb, &g, &id, err, sizeof err);
    free(ids);
    free(msgs_json);
    if (rc) {
        cJSON_Delete(g.ids);
        return s_error(rc, err, reply);
    }
    pthread_mutex_lock(&g.mu);
    while (!g.done)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    int status;
    if (g.status) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", g.detail);
        cJSON_Delete(g.ids);
        status = s_error(g.status, msg, reply);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)id);
        cJSON_AddStringToObject(o, "node", g.node);
        cJSON_AddStringToObject(o, "route_reason", g.reason);
        cJSON_AddItemToObject(o, "tokens", g.ids);
        cJSON_AddStringToObject(o, "text", g.text ? g.text : "");
        cJSON_AddStringToObject(o, "finish_reason", g.detail);
        cJSON_AddNumberToObject(o, "prompt_tokens", g.prompt_tokens);
        cJSON_AddNumberToObject(o, "completion_tokens", g.completion_tokens);
        status = s_json(o, reply);
    }
    free(g.text);
    return status;
}

int mesh_coord_admin_handle(mesh_coord_t *core, const char *method, const char *path,
                            const char *body, char **reply) {
    *reply = NULL;
    if (strncmp(path, S_PREFIX, strlen(S_PREFIX)) != 0)
        return s_error(MESH_ENOTFOUND, "no such admin call (paths start with /admin/v1/)",
                       reply);
    const char *p = path + strlen(S_PREFIX);
    int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0,
        del = strcmp(method, "DELETE") == 0;
    cJSON *in = NULL;
    if (post && body && *body) {
        in = cJSON_Parse(body);
        if (!cJSON_IsObject(in)) {
            cJSON_Delete(in);
            return s_error(MESH_EFORMAT, "request body is not a JSON object", reply);
        }
    }
    if (!in)
        in = cJSON_CreateObject();
    int status;
    char err[256] = "";
    if (get && strcmp(p, "nodes") == 0) {
        status = s_json(mesh_coord_nodes_json(core), reply);
    } else if (get && strcmp(p, "models") == 0) {
        status = s_json(mesh_coord_models_json(core), reply);
    } else if (get && strcmp(p, "status") == 0) {
        status = s_json(mesh_coord_status_json(core), reply);
    } else if (get && strcmp(p, "keys") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "public_key", mesh_coord_public_key(core));
        status = s_json(o, reply);
    } else if (post && strcmp(p, "nodes") == 0) {
        const char *addr = cJSON_GetStringValue(cJSON_GetObjectItem(in, "address"));
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(in, "key"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(in, "name"));
        int rc = mesh_coord_node_add(core, addr, key, name, err, sizeof err);
        if (rc) {
            status = s_error(rc, err, reply);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "added", name && *name ? name : addr + 6);
            status = s_json(o, reply);
        }
    } else if ((del || post) && strncmp(p, "nodes/", 6) == 0) {
        char name[128];
        snprintf(name, sizeof name, "%s", p + 6);
        char *slash = strchr(name, '/');
        int drain = slash && strcmp(slash, "/drain") == 0;
        if (slash)
            *slash = 0;
        int rc;
        if (del && !slash) {
            rc = mesh_coord_node_remove(core, name);
        } else if (post && drain) {
            cJSON *on = cJSON_GetObjectItem(in, "on");
            rc = mesh_coord_node_drain(core, name, on ? cJSON_IsTrue(on) : 1);
        } else {
            rc = MESH_EINVAL;
        }
        if (rc == MESH_ENOTFOUND) {
            snprintf(err, sizeof err, "no node named '%s'", name);
            status = s_error(rc, err, reply);
        } else if (rc) {
            status = s_error(rc, "bad node call", reply);
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, del ? "removed" : "draining", name);
            status = s_json(o, reply);
        }
    } else if (post && strcmp(p, "route") == 0) {
        const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(in, "model"));
        const char *quant = cJSON_GetStringValue(cJSON_GetObjectItem(in, "quant"));
        cJSON *tk = cJSON_GetObjectItem(in, "tokens");
        char node[64], reason[48];
        if (!model || !cJSON_IsNumber(tk) || tk->valuedouble < 1 || tk->valuedouble > 1e12) {
            status = s_error(MESH_EINVAL, "route needs \"model\" and \"tokens\" >= 1", reply);
        } else {
            int rc = mesh_coord_route_dry(core, model, quant, (uint64_t)tk->valuedouble, node,
                                          sizeof node, reason, sizeof reason, err, sizeof err);
            if (rc) {
                status = s_error(rc, err, reply);
            } else {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "node", node);
                cJSON_AddStringToObject(o, "reason", reason);
                status = s_json(o, reply);
            }
        }
    } else if (post && strcmp(p, "generate") == 0) {
        status = s_generate(core, in, reply);
    } else {
        status = s_error(MESH_ENOTFOUND, "no such admin call", reply);
    }
    cJSON_Delete(in);
    if (!*reply)
        return s_error(MESH_ENOMEM, "out of memory", reply);
    return status;
}

typedef struct {
    char *body;
    size_t len;
    int too_big;
} s_conn_t;

static enum MHD_Result s_reply(struct MHD_Connection *conn, int status, char *text) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    mesh_coord_admin_t *a = cls;
    s_conn_t *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->len + *upload_size > S_MAX_BODY) {
            cs->too_big = 1;
        } else {
            char *b = realloc(cs->body, cs->len + *upload_size + 1);
            if (!b)
                return MHD_NO;
            memcpy(b + cs->len, upload, *upload_size);
            cs->len += *upload_size;
            b[cs->len] = 0;
            cs->body = b;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    char *reply = NULL;
    int status;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t tl = strlen(a->token);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != tl ||
        sodium_memcmp(auth + 7, a->token, tl) != 0) {
        MESH_WARN("admin: refused %s %s: missing or wrong token", method, url);
        status = s_error(MESH_EAUTH, "admin token missing or wrong", &reply);
    } else if (cs->too_big) {
        status = s_error(MESH_ERANGE, "request body over 1 MiB", &reply);
        status = 413;
    } else {
        status = mesh_coord_admin_handle(a->core, method, url, cs->body, &reply);
    }
    return s_reply(conn, status, reply);
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    s_conn_t *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

int mesh_coord_admin_start(mesh_coord_t *core, const char *host, uint16_t port,
                           const char *token, mesh_coord_admin_t **out, uint16_t *bound_port,
                           char *err, size_t err_len) {
    *out = NULL;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, err_len, "admin address '%s' is not an IPv4 address", host);
        return MESH_EINVAL;
    }
    if (sodium_init() < 0)
        return MESH_EIO;
    mesh_coord_admin_t *a = calloc(1, sizeof *a);
    if (!a)
        return MESH_ENOMEM;
    a->core = core;
    snprintf(a->token, sizeof a->token, "%s", token);
    a->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_ERROR_LOG,
                            port, NULL, NULL, s_access, a, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, s_completed, a,
                            MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (!a->d) {
        snprintf(err, err_len, "cannot listen on %s:%u for the admin API", host, port);
        free(a);
        return MESH_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    if (bound_port)
        *bound_port = di ? di->port : port;
    *out = a;
    return 0;
}

void mesh_coord_admin_stop(mesh_coord_admin_t **ap) {
    if (!ap || !*ap)
        return;
    MHD_stop_daemon((*ap)->d);
    free(*ap);
    *ap = NULL;
}
