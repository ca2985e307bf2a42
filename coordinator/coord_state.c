// SPDX-License-Identifier: MIT
// Registry file load/save (JSON through cJSON, atomic replace).
#include "coord_state.h"

#include "mesh_keys.h"
#include "mesh_err.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_FILE (1u << 20) // a registry of 64 nodes is a few KiB

int mesh_coord_state_load(const char *path, mesh_coord_state_t *st, char *err,
                          size_t err_len) {
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return MESH_ENOENT;
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return MESH_EIO;
    }
    char *buf = malloc(S_MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, S_MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!buf)
        return MESH_ENOMEM;
    if (n > S_MAX_FILE) {
        free(buf);
        snprintf(err, err_len, "%s: state file is over 1 MiB", path);
        return MESH_EFORMAT;
    }
    buf[n] = 0;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    cJSON *nodes = root ? cJSON_GetObjectItem(root, "nodes") : NULL;
    if (!cJSON_IsArray(nodes)) {
        cJSON_Delete(root);
        snprintf(err, err_len, "%s: not a meshcoord state file (no \"nodes\" array)", path);
        return MESH_EFORMAT;
    }
    cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, nodes) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(it, "name"));
        const char *addr = cJSON_GetStringValue(cJSON_GetObjectItem(it, "address"));
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItem(it, "key"));
        if (!name || !addr || !key || strlen(name) >= 64 || strlen(addr) >= 256 ||
            !mesh_keys_z85_valid(key) || st->n >= MESH_COORD_STATE_MAX_NODES) {
            snprintf(err, err_len, "%s: node entry %zu is malformed", path, st->n);
            rc = MESH_EFORMAT;
            break;
        }
        mesh_coord_state_node_t *o = &st->nodes[st->n++];
        snprintf(o->name, sizeof o->name, "%s", name);
        snprintf(o->address, sizeof o->address, "%s", addr);
        snprintf(o->key, sizeof o->key, "%s", key);
        o->draining = cJSON_IsTrue(cJSON_GetObjectItem(it, "draining"));
    }
    cJSON_Delete(root);
    return rc;
}

int mesh_coord_state_save(const char *path, const mesh_coord_state_t *st, char *err,
                          size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON *arr = cJSON_AddArrayToObject(root, "nodes");
    for (size_t i = 0; i < st->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", st->nodes[i].name);
        cJSON_AddStringToObject(o, "address", st->nodes[i].address);
        cJSON_AddStringToObject(o, "key", st->nodes[i].key);
        cJSON_AddBoolToObject(o, "draining", st->nodes[i].draining);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return MESH_ENOMEM;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int rc = MESH_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t len = strlen(text);
        if (write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0)
            rc = 0;
        close(fd);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = MESH_EIO;
        if (rc == 0) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd); // makes the rename itself durable
                close(dfd);
            }
        } else {
            unlink(tmp);
        }
    }
    if (rc)
        snprintf(err, err_len, "%s: cannot write state file: %s", path, strerror(errno));
    free(text);
    return rc;
}
