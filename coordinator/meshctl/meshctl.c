// SPDX-License-Identifier: MIT
// meshctl: the admin CLI. Every command is one call to meshcoord's admin
// HTTP API (coordinator/coord_admin.h) with the token from the admin token
// file; output is a table, or the API's JSON with --json. Errors: one line
// on stderr and a non-zero exit.
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char *s_url = "http://127.0.0.1:7700";
static const char *s_token_file = "admin.token";
static int s_json_out;

static int s_fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "meshctl: ");
    fprintf(stderr, fmt, a ? a : "", b ? b : "");
    fputc('\n', stderr);
    return 1;
}

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshctl [--url URL] [--token-file FILE] [--json] COMMAND\n"
            "  node add tcp://HOST:PORT --key NODEKEY [--name NAME]\n"
            "  node list                  name, address, state, devices, memory, models, load\n"
            "  node remove NAME\n"
            "  node drain NAME [--off]\n"
            "  models                     models and quants across the mesh\n"
            "  status\n"
            "  keys                       this coordinator's public key, and how to trust it\n"
            "  route MODEL[:QUANT] --tokens N      where a request would go (dry run)\n"
            "  generate MODEL[:QUANT] --prompt TEXT [--max-tokens N]\n"
            "defaults: --url $MESHCTL_URL or %s, --token-file $MESHCTL_TOKEN_FILE or %s\n"
            "NODEKEY may be the key itself or a file holding it.\n",
            "http://127.0.0.1:7700", "admin.token");
}

static int s_read_token(char *tok, size_t cap) {
    int fd = open(s_token_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail("cannot read admin token file %s: %s", s_token_file, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        return s_fail("admin token file %s is readable by group or others; chmod 600 it%s",
                      s_token_file, "");
    }
    ssize_t n = read(fd, tok, cap - 1);
    close(fd);
    if (n <= 0)
        return s_fail("admin token file %s is empty%s", s_token_file, "");
    tok[n] = 0;
    tok[strcspn(tok, " \t\r\n")] = 0;
    return 0;
}

// One HTTP/1.1 request (Connection: close). On 0, *body is the reply body
// (caller frees) and *status the HTTP status.
static int s_http(const char *method, const char *path, const char *json, int *status,
                  char **body) {
    char host[256], port[16] = "80";
    const char *p = s_url;
    if (strncmp(p, "http://", 7) != 0)
        return s_fail("--url must start with http:// (got '%s')%s", s_url, "");
    p += 7;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof host)
        return s_fail("bad --url '%s'%s", s_url, "");
    memcpy(host, p, hl);
    host[hl] = 0;
    if (p[hl] == ':')
        snprintf(port, sizeof port, "%.*s", (int)strcspn(p + hl + 1, "/"), p + hl + 1);
    char tok[256];
    if (s_read_token(tok, sizeof tok))
        return 1;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return s_fail("cannot resolve %s%s", host, "");
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {130, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        freeaddrinfo(ai);
        if (fd >= 0)
            close(fd);
        return s_fail("cannot reach the coordinator at %s: %s", s_url, strerror(errno));
    }
    freeaddrinfo(ai);
    size_t jl = json ? strlen(json) : 0;
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     method, path, host, tok, jl);
    if (write(fd, head, (size_t)n) != n || (jl && write(fd, json, jl) != (ssize_t)jl)) {
        close(fd);
        return s_fail("cannot send to %s%s", s_url, "");
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (len + 4096 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (!buf)
        return s_fail("out of memory%s%s", "", "");
    buf[len] = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || !sep) {
        free(buf);
        return s_fail("the coordinator at %s sent no HTTP reply%s", s_url, "");
    }
    *status = atoi(buf + 9);
    *body = strdup(sep + 4);
    free(buf);
    return *body ? 0 : 1;
}

// Calls the API and parses the JSON reply; on an HTTP error prints the
// API's message. Caller deletes *out.
static int s_call(const char *method, const char *path, cJSON *in, cJSON **out) {
    char *js = in ? cJSON_PrintUnformatted(in) : NULL;
    int status = 0;
    char *body = NULL;
    int rc = s_http(method, path, js, &status, &body);
    free(js);
    if (rc)
        return rc;
    cJSON *o = cJSON_Parse(body);
    if (!o) {
        rc = s_fail("the coordinator sent a reply that is not JSON (HTTP %s)%s",
                    status == 200 ? "200" : "error", "");
        free(body);
        return rc;
    }
    free(body);
    if (status != 200) {
        cJSON *e = cJSON_GetObjectItem(o, "error");
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
        char st[16];
        snprintf(st, sizeof st, "%d", status);
        s_fail("%s (HTTP %s)", msg ? msg : "request failed", st);
        cJSON_Delete(o);
        return 1;
    }
    *out = o;
    return 0;
}

static void s_print_json(cJSON *o) {
    char *t = cJSON_Print(o);
    if (t)
        puts(t);
    free(t);
}

static double s_num(cJSON *o, const char *k) {
    cJSON *x = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}
static const char *s_str(cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return s ? s : "";
}

static void s_fmt_bytes(double b, char *out, size_t cap) {
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(out, cap, "%.1fG", b / (1024.0 * 1024 * 1024));
    else
        snprintf(out, cap, "%.0fM", b / (1024.0 * 1024));
}

static int s_node_list(void) {
    cJSON *o = NULL;
    if (s_call("GET", "/admin/v1/nodes", NULL, &o))
        return 1;
    if (s_json_out) {
        s_print_json(o);
        cJSON_Delete(o);
        return 0;
    }
    printf("%-14s %-24s %-10s %-22s %-28s %-26s %s\n", "NAME", "ADDRESS", "STATE", "DEVICES",
           "MEMORY free/total", "MODELS", "LOAD");
    cJSON *nd;
    cJSON_ArrayForEach(nd, o) {
        char devs[64] = "", models[256] = "", mem[64], fr[16], tot[16], bar[11];
        cJSON *d;
        int nd_count = 0;
        cJSON_ArrayForEach(d, cJSON_GetObjectItem(nd, "devices")) {
            if (nd_count++ == 0)
                snprintf(devs, sizeof devs, "%s", s_str(d, "arch"));
        }
        if (nd_count > 1) {
            size_t l = strlen(devs);
            snprintf(devs + l, sizeof devs - l, " x%d", nd_count);
        }
        cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(nd, "models")) {
            size_t l = strlen(models);
            snprintf(models + l, sizeof models - l, "%s%s:%s", l ? "," : "", s_str(m, "name"),
                     s_str(m, "quant"));
        }
        double total = s_num(nd, "mem_total"), free_b = s_num(nd, "mem_free");
        int used = total > 0 ? (int)((total - free_b) / total * 10 + 0.5) : 0;
        for (int i = 0; i < 10; i++)
            bar[i] = i < used ? '#' : '.';
        bar[10] = 0;
        s_fmt_bytes(free_b, fr, sizeof fr);
        s_fmt_bytes(total, tot, sizeof tot);
        snprintf(mem, sizeof mem, "[%s] %s/%s", bar, fr, tot);
        printf("%-14s %-24s %-10s %-22s %-28s %-26s %.0f run, %.0f queued\n", s_str(nd, "name"),
               s_str(nd, "address"), s_str(nd, "state"), devs[0] ? devs : "-", mem,
               models[0] ? models : "-", s_num(nd, "active"), s_num(nd, "queued"));
    }
    cJSON_Delete(o);
    return 0;
}

static int s_models(void) {
    cJSON *o = NULL;
    if (s_call("GET", "/admin/v1/models", NULL, &o))
        return 1;
    if (s_json_out) {
        s_print_json(o);
        cJSON_Delete(o);
        return 0;
    }
    printf("%-24s %-12s %s\n", "MODEL", "ARCH", "QUANT@NODE (ctx, state)");
    cJSON *m;
    cJSON_ArrayForEach(m, o) {
        printf("%-24s %-12s", s_str(m, "name"), s_str(m, "arch"));
        cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(m, "served_by"))
            printf(" %s@%s (%.0f, %s)", s_str(s, "quant"), s_str(s, "node"),
                   s_num(s, "ctx_limit"), s_str(s, "state"));
        printf("\n");
    }
    cJSON_Delete(o);
    return 0;
}

static int s_status(void) {
    cJSON *o = NULL;
    if (s_call("GET", "/admin/v1/status", NULL, &o))
        return 1;
    if (s_json_out) {
        s_print_json(o);
    } else {
        printf("coordinator %s, protocol %.0f, up %.0f s\n", s_str(o, "name"),
               s_num(o, "protocol_version"), s_num(o, "uptime_s"));
        printf("nodes: %.0f (%.0f up, %.0f dead)\n", s_num(o, "nodes"), s_num(o, "nodes_up"),
               s_num(o, "nodes_dead"));
        printf("requests: %.0f in flight, %.0f total, %.0f failovers, %.0f errors\n",
               s_num(o, "requests_in_flight"), s_num(o, "requests_total"),
               s_num(o, "failovers"), s_num(o, "errors"));
    }
    cJSON_Delete(o);
    return 0;
}

static int s_keys(void) {
    cJSON *o = NULL;
    if (s_call("GET", "/admin/v1/keys", NULL, &o))
        return 1;
    if (s_json_out) {
        s_print_json(o);
    } else {
        const char *k = s_str(o, "public_key");
        printf("coordinator public key: %s\n", k);
        printf("to trust it on a node: meshnode --trust '%s' ...\n", k);
        printf("  or add the line to the node's trusted-keys file (trusted-keys = FILE)\n");
    }
    cJSON_Delete(o);
    return 0;
}

// Reads a node key given literally or as a file ("public = KEY" or bare).
static int s_node_key(const char *v, char *out, size_t cap) {
    if (strlen(v) == 40) {
        snprintf(out, cap, "%s", v);
        return 0;
    }
    FILE *f = fopen(v, "r");
    if (!f)
        return s_fail("--key '%s' is neither a 40-character key nor a readable file%s", v, "");
    char line[256];
    int rc = 1;
    while (rc && fgets(line, sizeof line, f)) {
        char *p = strchr(line, '=');
        p = p ? p + 1 : line;
        while (*p == ' ')
            p++;
        p[strcspn(p, " \r\n")] = 0;
        if (strlen(p) == 40 && (strchr(line, '=') == NULL || strncmp(line, "public", 6) == 0)) {
            snprintf(out, cap, "%s", p);
            rc = 0;
        }
    }
    fclose(f);
    if (rc)
        return s_fail("no public key in %s%s", v, "");
    return 0;
}

int main(int argc, char **argv) {
    if (getenv("MESHCTL_URL"))
        s_url = getenv("MESHCTL_URL");
    if (getenv("MESHCTL_TOKEN_FILE"))
        s_token_file = getenv("MESHCTL_TOKEN_FILE");
    // Options anywhere; positional words in order.
    const char *pos[8];
    int npos = 0;
    const char *key = NULL, *name = NULL, *prompt = NULL;
    long tokens = 0, max_tokens = 16;
    int off = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            s_json_out = 1;
        } else if (strcmp(a, "--off") == 0) {
            off = 1;
        } else if (!strcmp(a, "--url") || !strcmp(a, "--token-file") || !strcmp(a, "--key") ||
                   !strcmp(a, "--name") || !strcmp(a, "--prompt") || !strcmp(a, "--tokens") ||
                   !strcmp(a, "--max-tokens")) {
            if (!has_val)
                return s_fail("%s needs a value%s", a, "");
            const char *v = argv[++i];
            if (!strcmp(a, "--url"))
                s_url = v;
            else if (!strcmp(a, "--token-file"))
                s_token_file = v;
            else if (!strcmp(a, "--key"))
                key = v;
            else if (!strcmp(a, "--name"))
                name = v;
            else if (!strcmp(a, "--prompt"))
                prompt = v;
            else {
                char *end;
                long n = strtol(v, &end, 10);
                if (!*v || *end || n < 1 || n > 100000000)
                    return s_fail("%s needs a positive number, got '%s'", a, v);
                if (!strcmp(a, "--tokens"))
                    tokens = n;
                else
                    max_tokens = n;
            }
        } else if (a[0] == '-') {
            return s_fail("unknown option '%s' (see --help)%s", a, "");
        } else if (npos < 8) {
            pos[npos++] = a;
        } else {
            return s_fail("too many arguments%s%s", "", "");
        }
    }
    if (npos == 0) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = pos[0];
    if (!strcmp(cmd, "node")) {
        const char *sub = npos > 1 ? pos[1] : "";
        if (!strcmp(sub, "list") && npos == 2)
            return s_node_list();
        if (!strcmp(sub, "add") && npos == 3) {
            char k[64];
            if (!key)
                return s_fail("node add needs --key NODEKEY (the node prints it with "
                              "meshnode --print-key)%s%s", "", "");
            if (s_node_key(key, k, sizeof k))
                return 1;
            cJSON *in = cJSON_CreateObject(), *out = NULL;
            cJSON_AddStringToObject(in, "address", pos[2]);
            cJSON_AddStringToObject(in, "key", k);
            if (name)
                cJSON_AddStringToObject(in, "name", name);
            int rc = s_call("POST", "/admin/v1/nodes", in, &out);
            cJSON_Delete(in);
            if (rc)
                return rc;
            if (s_json_out)
                s_print_json(out);
            else
                printf("added node %s\n", s_str(out, "added"));
            cJSON_Delete(out);
            return 0;
        }
        if ((!strcmp(sub, "remove") || !strcmp(sub, "drain")) && npos == 3) {
            char path[512];
            int drain = !strcmp(sub, "drain");
            snprintf(path, sizeof path, "/admin/v1/nodes/%s%s", pos[2], drain ? "/drain" : "");
            if (strpbrk(pos[2], "/ ?#%"))
                return s_fail("bad node name '%s'%s", pos[2], "");
            cJSON *in = cJSON_CreateObject(), *out = NULL;
            if (drain)
                cJSON_AddBoolToObject(in, "on", !off);
            int rc = s_call(drain ? "POST" : "DELETE", path, in, &out);
            cJSON_Delete(in);
            if (rc)
                return rc;
            if (s_json_out)
                s_print_json(out);
            else
                printf("%s %s\n", drain ? (off ? "drain lifted on" : "draining") : "removed",
                       pos[2]);
            cJSON_Delete(out);
            return 0;
        }
        return s_fail("usage: meshctl node add|list|remove|drain ... (see --help)%s%s", "", "");
    }
    if (npos != 1 && strcmp(cmd, "route") && strcmp(cmd, "generate"))
        return s_fail("'%s' takes no arguments%s", cmd, "");
    if (!strcmp(cmd, "models"))
        return s_models();
    if (!strcmp(cmd, "status"))
        return s_status();
    if (!strcmp(cmd, "keys"))
        return s_keys();
    if ((!strcmp(cmd, "route") || !strcmp(cmd, "generate")) && npos == 2) {
        int gen = !strcmp(cmd, "generate");
        if (!gen && !tokens)
            return s_fail("route needs --tokens N%s%s", "", "");
        if (gen && !prompt)
            return s_fail("generate needs --prompt TEXT%s%s", "", "");
        cJSON *in = cJSON_CreateObject(), *out = NULL;
        cJSON_AddStringToObject(in, "model", pos[1]);
        if (gen) {
            cJSON_AddStringToObject(in, "prompt", prompt);
            cJSON_AddNumberToObject(in, "max_tokens", (double)max_tokens);
        } else {
            cJSON_AddNumberToObject(in, "tokens", (double)tokens);
        }
        int rc = s_call("POST", gen ? "/admin/v1/generate" : "/admin/v1/route", in, &out);
        cJSON_Delete(in);
        if (rc)
            return rc;
        if (s_json_out)
            s_print_json(out);
        else if (gen)
            printf("%s\n[node %s, %s, %s]\n", s_str(out, "text"), s_str(out, "node"),
                   s_str(out, "route_reason"), s_str(out, "finish_reason"));
        else
            printf("%s (%s)\n", s_str(out, "node"), s_str(out, "reason"));
        cJSON_Delete(out);
        return 0;
    }
    return s_fail("unknown command '%s' (see --help)%s", cmd, "");
}
