// SPDX-License-Identifier: MIT
// meshcoord: the coordinator daemon. Starts the core (registry, node links,
// routing, failover), the admin HTTP API and the OpenAI endpoint, then waits
// for SIGTERM/SIGINT.
#include "coord_admin.h"
#include "coord_core.h"
#include "http_server.h"
#include "mesh_err.h"
#include "mesh_log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig) {
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: meshcoord [options]\n"
            "  --state FILE          node registry (default meshcoord.state.json)\n"
            "  --key FILE            CURVE key file, created on first start (default "
            "meshcoord.key)\n"
            "  --admin HOST:PORT     admin API address (default 127.0.0.1:7700; port 0: any)\n"
            "  --admin-token-file F  admin token, created on first start (default "
            "admin.token)\n"
            "  --port-file FILE      write the admin port there once listening\n"
            "  --listen HOST:PORT    OpenAI API address (default 127.0.0.1:8080; port 0: any)\n"
            "  --http-port-file FILE write the OpenAI API port there once listening\n"
            "  --api-keys FILE       client API keys, one per line (default: none needed)\n"
            "  --max-body BYTES      largest request body (default 8388608)\n"
            "  --max-queue N         generations in flight before 429 (default 256)\n"
            "  --heartbeat-ms N      node heartbeat interval assumed (default 1000)\n"
            "  --dead-after N        missed heartbeats before a node is dead (default 3)\n"
            "  --name NAME           this coordinator's name (default meshcoord)\n"
            "  --log-level LEVEL     debug, info, warn, error\n"
            "  --print-key           print this coordinator's public key and exit\n"
            "  -h, --help            this text\n");
}

static long s_num(const char *opt, const char *v, long lo, long hi) {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        fprintf(stderr, "meshcoord: %s needs a number from %ld to %ld, got '%s'\n", opt, lo, hi,
                v);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"state", 1, 0, 's'},       {"key", 1, 0, 'k'},       {"admin", 1, 0, 'a'},
        {"admin-token-file", 1, 0, 't'}, {"port-file", 1, 0, 'p'},
        {"heartbeat-ms", 1, 0, 'H'}, {"dead-after", 1, 0, 'D'}, {"name", 1, 0, 'n'},
        {"log-level", 1, 0, 'l'},   {"print-key", 0, 0, 'P'}, {"help", 0, 0, 'h'},
        {"listen", 1, 0, 'L'},      {"http-port-file", 1, 0, 'F'}, {"api-keys", 1, 0, 'K'},
        {"max-body", 1, 0, 'B'},    {"max-queue", 1, 0, 'Q'},
        {0, 0, 0, 0}};
    const char *listen_addr = "127.0.0.1:8080", *http_port_file = NULL;
    mesh_http_opts_t ho = {0};
    mesh_coord_opts_t co = {.state_path = "meshcoord.state.json", .key_path = "meshcoord.key"};
    const char *admin = "127.0.0.1:7700", *token_file = "admin.token", *port_file = NULL;
    int print_key = 0, ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': co.state_path = optarg; break;
        case 'k': co.key_path = optarg; break;
        case 'a': admin = optarg; break;
        case 't': token_file = optarg; break;
        case 'p': port_file = optarg; break;
        case 'H': co.heartbeat_ms = (uint32_t)s_num("--heartbeat-ms", optarg, 10, 600000); break;
        case 'D': co.dead_after = (uint32_t)s_num("--dead-after", optarg, 1, 1000); break;
        case 'n': co.name = optarg; break;
        case 'l': {
            mesh_log_level_t lv;
            if (mesh_log_parse_level(optarg, &lv)) {
                fprintf(stderr, "meshcoord: --log-level must be debug, info, warn or error\n");
                return 2;
            }
            mesh_log_set_level(lv);
            break;
        }
        case 'P': print_key = 1; break;
        case 'L': listen_addr = optarg; break;
        case 'F': http_port_file = optarg; break;
        case 'K': ho.api_keys_path = optarg; break;
        case 'B': ho.max_body = (size_t)s_num("--max-body", optarg, 1024, 1L << 30); break;
        case 'Q': ho.max_queue = (uint32_t)s_num("--max-queue", optarg, 1, 100000); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meshcoord: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    char host[64];
    const char *colon = strrchr(admin, ':');
    if (!colon || (size_t)(colon - admin) >= sizeof host) {
        fprintf(stderr, "meshcoord: --admin must be HOST:PORT, got '%s'\n", admin);
        return 2;
    }
    memcpy(host, admin, (size_t)(colon - admin));
    host[colon - admin] = 0;
    uint16_t port = (uint16_t)s_num("--admin port", colon + 1, 0, 65535);
    char http_host[64];
    const char *hc = strrchr(listen_addr, ':');
    if (!hc || (size_t)(hc - listen_addr) >= sizeof http_host) {
        fprintf(stderr, "meshcoord: --listen must be HOST:PORT, got '%s'\n", listen_addr);
        return 2;
    }
    memcpy(http_host, listen_addr, (size_t)(hc - listen_addr));
    http_host[hc - listen_addr] = 0;
    ho.host = http_host;
    ho.port = (uint16_t)s_num("--listen port", hc + 1, 0, 65535);

    signal(SIGPIPE, SIG_IGN);
    char err[512];
    mesh_coord_t *core = NULL;
    if (print_key) // stdout is the key alone; "created a keypair" is not news here
        mesh_log_set_level(MESH_LOG_WARN);
    int rc = mesh_coord_new(&co, &core, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshcoord: %s\n", err);
        return 1;
    }
    if (print_key) {
        printf("%s\n", mesh_coord_public_key(core));
        mesh_coord_destroy(&core);
        return 0;
    }
    char token[128];
    rc = mesh_coord_admin_token(token_file, token, sizeof token, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshcoord: %s\n", err);
        mesh_coord_destroy(&core);
        return 1;
    }
    mesh_coord_admin_t *api = NULL;
    uint16_t bound = 0;
    rc = mesh_coord_admin_start(core, host, port, token, &api, &bound, err, sizeof err);
    if (rc) {
        fprintf(stderr, "meshcoord: %s\n", err);
        mesh_coord_destroy(&core);
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", bound) < 0 || fclose(f) != 0 || rename(tmp, port_file)) {
            fprintf(stderr, "meshcoord: cannot write --port-file %s\n", port_file);
            mesh_coord_admin_stop(&api);
            mesh_coord_destroy(&core);
            return 1;
        }
    }
    MESH_INFO("meshcoord: admin API on http://%s:%u, public key %s", host, bound,
              mesh_coord_public_key(core));
    mesh_http_t *http = NULL;
    uint16_t http_bound = 0;
    rc = mesh_http_start(core, &ho, &http, &http_bound, err, sizeof err);
    if (!rc && http_port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", http_port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", http_bound) < 0 || fclose(f) != 0 ||
            rename(tmp, http_port_file)) {
            snprintf(err, sizeof err, "cannot write --http-port-file %s", http_port_file);
            rc = MESH_EIO;
        }
    }
    if (rc) {
        fprintf(stderr, "meshcoord: %s\n", err);
        mesh_http_stop(&http);
        mesh_coord_admin_stop(&api);
        mesh_coord_destroy(&core);
        return 1;
    }
    MESH_INFO("meshcoord: OpenAI API on http://%s:%u/v1%s", http_host, http_bound,
              ho.api_keys_path ? " (API keys required)" : "");
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    // Poll, not pause(): the signal may land on another thread (libzmq,
    // libmicrohttpd, the core), and then pause() here would never return.
    while (!s_stop)
        usleep(50000);
    MESH_INFO("meshcoord: stopping");
    mesh_http_stop(&http);
    mesh_coord_admin_stop(&api);
    mesh_coord_destroy(&core);
    return 0;
}
