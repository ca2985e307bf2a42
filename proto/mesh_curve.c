// SPDX-License-Identifier: MIT
// CURVE key files (create 0600 on first use, refuse readable ones) and lists.
#include "mesh_curve.h"

#include "mesh_err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int mesh_curve_is_key(const char *s) {
    if (!s || strlen(s) != MESH_Z85_KEY_LEN)
        return 0;
    uint8_t raw[32];
    return zmq_z85_decode(raw, s) != NULL;
}

// Trims spaces at both ends in place; returns the start.
static char *s_trim(char *s) {
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static int s_parse_keyfile(FILE *f, mesh_curve_keypair_t *kp) {
    char line[256];
    int have = 0;
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = 0;
        char *k = s_trim(line), *v = s_trim(eq + 1);
        if (!mesh_curve_is_key(v))
            continue;
        if (strcmp(k, "public") == 0) {
            memcpy(kp->pub, v, MESH_Z85_KEY_LEN + 1);
            have |= 1;
        } else if (strcmp(k, "secret") == 0) {
            memcpy(kp->sec, v, MESH_Z85_KEY_LEN + 1);
            have |= 2;
        }
    }
    return have == 3 ? 0 : MESH_EFORMAT;
}

int mesh_curve_load_or_create(const char *path, mesh_curve_keypair_t *kp, char *err,
                              size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (zmq_curve_keypair(kp->pub, kp->sec) != 0) {
            snprintf(err, err_len, "%s: cannot make a CURVE keypair (libzmq without CURVE?)",
                     path);
            return MESH_EUNSUPPORTED;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            snprintf(err, err_len, "%s: cannot create key file: %s", path, strerror(errno));
            return MESH_EIO;
        }
        char buf[160];
        int n = snprintf(buf, sizeof buf, "public = %s\nsecret = %s\n", kp->pub, kp->sec);
        if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
            close(fd);
            unlink(path);
            snprintf(err, err_len, "%s: cannot write key file", path);
            return MESH_EIO;
        }
        close(fd);
        return 0;
    }
    if (fd < 0) {
        snprintf(err, err_len, "%s: cannot open key file: %s", path, strerror(errno));
        return MESH_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        close(fd);
        snprintf(err, err_len,
                 "%s: key file is readable by group or others (mode %03o); chmod 600 it",
                 path, (unsigned)(st.st_mode & 0777));
        return MESH_EPERM;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return MESH_ENOMEM;
    }
    int rc = s_parse_keyfile(f, kp);
    fclose(f);
    if (rc)
        snprintf(err, err_len, "%s: not a key file (needs 'public = ' and 'secret = ' lines)",
                 path);
    return rc;
}

int mesh_curve_read_public(const char *key_or_path, char *out, char *err, size_t err_len) {
    if (mesh_curve_is_key(key_or_path)) {
        memcpy(out, key_or_path, MESH_Z85_KEY_LEN + 1);
        return 0;
    }
    FILE *f = fopen(key_or_path, "r");
    if (!f) {
        snprintf(err, err_len, "'%s' is neither a 40-character Z85 key nor a readable file",
                 key_or_path);
        return MESH_EINVAL;
    }
    char line[256];
    int rc = MESH_EFORMAT;
    while (rc && fgets(line, sizeof line, f)) {
        char *v = line, *eq = strchr(line, '=');
        if (eq) {
            *eq = 0;
            if (strcmp(s_trim(line), "public") != 0)
                continue;
            v = eq + 1;
        }
        v = s_trim(v);
        if (mesh_curve_is_key(v)) {
            memcpy(out, v, MESH_Z85_KEY_LEN + 1);
            rc = 0;
        }
    }
    fclose(f);
    if (rc)
        snprintf(err, err_len, "%s: no public key in it", key_or_path);
    return rc;
}

int mesh_curve_trusted_add(mesh_curve_trusted_t *t, const char *key) {
    if (!mesh_curve_is_key(key))
        return MESH_EINVAL;
    if (mesh_curve_trusted_has(t, key))
        return 0;
    if (t->n >= MESH_CURVE_MAX_TRUSTED)
        return MESH_ENOSPACE;
    memcpy(t->keys[t->n++], key, MESH_Z85_KEY_LEN + 1);
    return 0;
}

int mesh_curve_trusted_has(const mesh_curve_trusted_t *t, const char *key) {
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i], key) == 0)
            return 1;
    return 0;
}

int mesh_curve_trusted_load(const char *path, mesh_curve_trusted_t *t, char *err,
                            size_t err_len) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open trusted keys: %s", path, strerror(errno));
        return errno == ENOENT ? MESH_ENOENT : MESH_EIO;
    }
    char line[256];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *v = s_trim(line);
        if (!*v)
            continue;
        rc = mesh_curve_trusted_add(t, v);
        if (rc)
            snprintf(err, err_len, "%s:%d: %s", path, lineno,
                     rc == MESH_EINVAL ? "not a 40-character Z85 public key"
                                       : "too many trusted keys");
    }
    fclose(f);
    return rc;
}
