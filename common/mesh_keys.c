// SPDX-License-Identifier: MIT
// CURVE key files: create/load this process's keypair (mode 0600, Z85) and
// read/write the trusted public keys list. Formats are in mesh_keys.h.
// Needs libzmq (zmq_curve_keypair, zmq_curve_public, zmq_z85_decode).
#include "mesh_keys.h"

#include "mesh_err.h"
#include "mesh_log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

// Key files are tiny; anything bigger is not ours (and is not read whole).
#define S_KEYFILE_MAX 4096
#define S_TRUSTED_MAX (1u << 20)

static _Thread_local char s_last_err[512];

const char *mesh_keys_last_error(void) { return s_last_err; }

// Records and logs one error line; returns code so callers can `return s_fail(...)`.
static int s_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s_last_err, sizeof s_last_err, fmt, ap);
    va_end(ap);
    mesh_log(MESH_LOG_ERROR, "keys: %s", s_last_err);
    return code;
}

static int s_errno_code(int e) {
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return MESH_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS:
        return MESH_EPERM;
    case ENOSPC:
    case EDQUOT:
        return MESH_ENOSPACE;
    default:
        return MESH_EIO;
    }
}

// Z85 alphabet (ZeroMQ RFC 32).
static const char s_z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  ".-:+=^!/*?&<>()[]{}@%$#";

static bool s_z85_char(char c) { return c && strchr(s_z85_chars, c) != NULL; }

bool mesh_keys_z85_valid(const char *s) {
    if (!s || strlen(s) != MESH_KEY_Z85_LEN)
        return false;
    for (size_t i = 0; i < MESH_KEY_Z85_LEN; i++)
        if (!s_z85_char(s[i]))
            return false;
    // Every 5 characters encode a 32-bit word; "%%%%%" style groups can exceed
    // 2^32, which zmq_z85_decode would wrap silently: check the range here.
    for (size_t g = 0; g < MESH_KEY_Z85_LEN; g += 5) {
        uint64_t v = 0;
        for (size_t j = 0; j < 5; j++)
            v = v * 85 + (uint64_t)(strchr(s_z85_chars, s[g + j]) - s_z85_chars);
        if (v > UINT32_MAX)
            return false;
    }
    uint8_t raw[32];
    bool ok = zmq_z85_decode(raw, s) != NULL;
    explicit_bzero(raw, sizeof raw);
    return ok;
}

int mesh_keys_check_pair(const char *public_z85, const char *secret_z85) {
    if (!mesh_keys_z85_valid(public_z85) || !mesh_keys_z85_valid(secret_z85))
        return MESH_EFORMAT;
    char derived[MESH_KEY_Z85_LEN + 1];
    if (zmq_curve_public(derived, secret_z85) != 0)
        return errno == ENOTSUP ? MESH_EUNSUPPORTED : MESH_EFORMAT;
    int rc = strcmp(derived, public_z85) == 0 ? 0 : MESH_EFORMAT;
    explicit_bzero(derived, sizeof derived);
    return rc;
}

// Reads at most max bytes of an open file. Returns bytes read or a negative code
// (MESH_ERANGE if the file is longer than max).
static ssize_t s_read_all(int fd, char *buf, size_t max) {
    size_t n = 0;
    for (;;) {
        if (n == max) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r < 0 && errno == EINTR)
                continue;
            return r > 0 ? MESH_ERANGE : r < 0 ? MESH_EIO : (ssize_t)n;
        }
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return MESH_EIO;
        if (r == 0)
            return (ssize_t)n;
        n += (size_t)r;
    }
}

static void s_trim(const char **p, const char **e) {
    while (*p < *e && isspace((unsigned char)**p))
        (*p)++;
    while (*e > *p && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

// Parses a keypair file's text. Leaves the keys in pub/sec (41 bytes each).
static int s_parse_keypair(const char *path, const char *text, size_t len, char *pub, char *sec) {
    bool have_pub = false, have_sec = false;
    int line = 1;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = p, *e = le;
        s_trim(&s, &e);
        if (s < e && *s != '#') {
            const char *eq = memchr(s, '=', (size_t)(e - s));
            if (!eq)
                return s_fail(MESH_EFORMAT, "%s:%d: expected 'public = KEY' or 'secret = KEY'",
                              path, line);
            const char *ks = s, *ke = eq, *vs = eq + 1, *ve = e;
            s_trim(&ks, &ke);
            s_trim(&vs, &ve);
            char *dst;
            bool *have;
            if ((size_t)(ke - ks) == 6 && memcmp(ks, "public", 6) == 0) {
                dst = pub;
                have = &have_pub;
            } else if ((size_t)(ke - ks) == 6 && memcmp(ks, "secret", 6) == 0) {
                dst = sec;
                have = &have_sec;
            } else {
                return s_fail(MESH_EFORMAT, "%s:%d: unknown field (expected public or secret)",
                              path, line);
            }
            if (*have)
                return s_fail(MESH_EFORMAT, "%s:%d: %.6s key given twice", path, line, ks);
            if ((size_t)(ve - vs) != MESH_KEY_Z85_LEN)
                return s_fail(MESH_EFORMAT, "%s:%d: %.6s key is not 40 Z85 characters", path,
                              line, ks);
            memcpy(dst, vs, MESH_KEY_Z85_LEN);
            dst[MESH_KEY_Z85_LEN] = '\0';
            if (!mesh_keys_z85_valid(dst))
                return s_fail(MESH_EFORMAT, "%s:%d: %.6s key is not valid Z85", path, line, ks);
            *have = true;
        }
        if (!nl)
            break;
        p = nl + 1;
        line++;
    }
    if (!have_pub || !have_sec)
        return s_fail(MESH_EFORMAT, "%s: lacks the %s key line", path,
                      have_pub ? "secret" : "public");
    int rc = mesh_keys_check_pair(pub, sec);
    if (rc == MESH_EUNSUPPORTED)
        return s_fail(rc, "%s: libzmq was built without CURVE support", path);
    if (rc != 0)
        return s_fail(MESH_EFORMAT,
                      "%s: public key does not match the secret key (file damaged or edited)",
                      path);
    return 0;
}

static int s_load(const char *path, char *pub, char *sec) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return s_fail(s_errno_code(e), "%s: cannot open key file: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(MESH_EFORMAT, "%s: key file is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return s_fail(MESH_EPERM,
                      "%s: key file has mode %03o, others may read the secret key: refusing it "
                      "(fix: chmod 600 %s, and replace the key if others may have copied it)",
                      path, (unsigned)(st.st_mode & 0777), path);
    }
    char buf[S_KEYFILE_MAX];
    ssize_t n = s_read_all(fd, buf, sizeof buf);
    close(fd);
    if (n == MESH_ERANGE)
        return s_fail(MESH_EFORMAT, "%s: too large for a key file (over %d bytes)", path,
                      S_KEYFILE_MAX);
    if (n < 0)
        return s_fail(MESH_EIO, "%s: read failed", path);
    int rc = s_parse_keypair(path, buf, (size_t)n, pub, sec);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

// Writes len bytes to a new temporary file beside path (mode), fsyncs it.
// On success *tmp_out receives the temporary path (caller frees, renames or
// unlinks it).
static int s_write_tmp(const char *path, const char *data, size_t len, mode_t mode,
                       char **tmp_out) {
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp)
        return s_fail(MESH_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0 && errno == EEXIST) { // left over from a crashed run of our pid
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    }
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return s_fail(s_errno_code(e), "%s: cannot create: %s", path, strerror(e));
    }
    // umask may have cleared bits we want (0644 for trusted lists); it never adds.
    (void)fchmod(fd, mode);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return s_fail(s_errno_code(e), "%s: write failed: %s", path, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return s_fail(s_errno_code(e), "%s: fsync failed: %s", path, strerror(e));
    }
    *tmp_out = tmp;
    return 0;
}

// fsync the directory holding path, so a rename/link survives a power cut.
static void s_sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

static int s_create(const char *path, char *pub, char *sec) {
    if (zmq_curve_keypair(pub, sec) != 0)
        return s_fail(MESH_EUNSUPPORTED, "%s: cannot create a CURVE keypair: %s", path,
                      errno == ENOTSUP ? "libzmq was built without CURVE support"
                                       : strerror(errno));
    char text[256];
    int len = snprintf(text, sizeof text,
                       "# meshinfer CURVE keypair. Keep it secret: mode 0600.\n"
                       "public = %s\nsecret = %s\n",
                       pub, sec);
    char *tmp = NULL;
    int rc = s_write_tmp(path, text, (size_t)len, 0600, &tmp);
    explicit_bzero(text, sizeof text);
    if (rc != 0)
        return rc;
    // link() refuses to replace an existing file, unlike rename(): when two
    // processes create the key at once, one wins and the other loads its key.
    if (link(tmp, path) == 0) {
        unlink(tmp);
        free(tmp);
        s_sync_dir(path);
        mesh_log(MESH_LOG_INFO, "keys: created a new CURVE keypair in %s (public %s)", path, pub);
        return 0;
    }
    int e = errno;
    if (e == EEXIST) {
        unlink(tmp);
        free(tmp);
        explicit_bzero(sec, MESH_KEY_Z85_LEN + 1);
        return s_load(path, pub, sec);
    }
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EMLINK) {
        // A file system without hard links: rename, accepting the tiny race.
        if (rename(tmp, path) == 0) {
            free(tmp);
            s_sync_dir(path);
            mesh_log(MESH_LOG_INFO, "keys: created a new CURVE keypair in %s (public %s)", path,
                     pub);
            return 0;
        }
        e = errno;
    }
    unlink(tmp);
    free(tmp);
    explicit_bzero(sec, MESH_KEY_Z85_LEN + 1);
    return s_fail(s_errno_code(e), "%s: cannot move the new key file into place: %s", path,
                  strerror(e));
}

int mesh_keys_load(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1],
                   char secret_z85[MESH_KEY_Z85_LEN + 1]) {
    s_last_err[0] = '\0';
    if (!path || !*path || !public_z85 || !secret_z85)
        return s_fail(MESH_EINVAL, "no key file path given");
    int rc = s_load(path, public_z85, secret_z85);
    if (rc != 0) {
        public_z85[0] = '\0';
        explicit_bzero(secret_z85, MESH_KEY_Z85_LEN + 1);
    }
    return rc;
}

int mesh_keys_load_or_create(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1],
                             char secret_z85[MESH_KEY_Z85_LEN + 1]) {
    s_last_err[0] = '\0';
    if (!path || !*path || !public_z85 || !secret_z85)
        return s_fail(MESH_EINVAL, "no key file path given");
    struct stat st;
    int rc;
    if (stat(path, &st) != 0 && errno == ENOENT)
        rc = s_create(path, public_z85, secret_z85);
    else
        rc = s_load(path, public_z85, secret_z85);
    if (rc != 0) {
        public_z85[0] = '\0';
        explicit_bzero(secret_z85, MESH_KEY_Z85_LEN + 1);
    }
    return rc;
}

int mesh_keys_load_public(const char *path, char public_z85[MESH_KEY_Z85_LEN + 1]) {
    char sec[MESH_KEY_Z85_LEN + 1];
    int rc = mesh_keys_load(path, public_z85, sec);
    explicit_bzero(sec, sizeof sec);
    return rc;
}

// ---------------------------------------------------------------------------
// Trusted keys

struct mesh_trusted {
    mesh_trusted_key_t *keys; // (n) in file order
    size_t n, cap;            // used and allocated entries
};

mesh_trusted_t *mesh_trusted_new(void) { return calloc(1, sizeof(mesh_trusted_t)); }

void mesh_trusted_destroy(mesh_trusted_t **list_p) {
    if (!list_p || !*list_p)
        return;
    free((*list_p)->keys);
    free(*list_p);
    *list_p = NULL;
}

size_t mesh_trusted_count(const mesh_trusted_t *list) { return list ? list->n : 0; }

const mesh_trusted_key_t *mesh_trusted_at(const mesh_trusted_t *list, size_t i) {
    return list && i < list->n ? &list->keys[i] : NULL;
}

const mesh_trusted_key_t *mesh_trusted_find(const mesh_trusted_t *list, const char *public_z85) {
    if (!list || !public_z85)
        return NULL;
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->keys[i].key, public_z85) == 0)
            return &list->keys[i];
    return NULL;
}

// Why a name is not acceptable, or NULL if it is.
static const char *s_bad_name(const char *name, size_t len) {
    if (len >= MESH_KEY_NAME_MAX)
        return "name longer than 63 bytes";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == 0x7f)
            return "name contains a blank or control character";
    }
    return NULL;
}

static int s_add(mesh_trusted_t *list, const char *key, const char *name, size_t name_len) {
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 8;
        mesh_trusted_key_t *k = realloc(list->keys, cap * sizeof *k);
        if (!k)
            return MESH_ENOMEM;
        list->keys = k;
        list->cap = cap;
    }
    mesh_trusted_key_t *k = &list->keys[list->n++];
    memcpy(k->key, key, MESH_KEY_Z85_LEN + 1);
    memcpy(k->name, name, name_len);
    k->name[name_len] = '\0';
    return 0;
}

int mesh_trusted_add(mesh_trusted_t *list, const char *public_z85, const char *name) {
    s_last_err[0] = '\0';
    if (!list)
        return MESH_EINVAL;
    if (!mesh_keys_z85_valid(public_z85))
        return s_fail(MESH_EFORMAT, "not a CURVE public key (40 Z85 characters)");
    if (!name)
        name = "";
    const char *why = s_bad_name(name, strlen(name));
    if (why)
        return s_fail(MESH_EFORMAT, "trusted key %s: %s", public_z85, why);
    if (mesh_trusted_find(list, public_z85))
        return s_fail(MESH_EEXISTS, "key %s is already trusted", public_z85);
    if (s_add(list, public_z85, name, strlen(name)) != 0)
        return s_fail(MESH_ENOMEM, "out of memory");
    return 0;
}

int mesh_trusted_remove(mesh_trusted_t *list, const char *key_or_name) {
    s_last_err[0] = '\0';
    if (!list || !key_or_name || !*key_or_name)
        return MESH_EINVAL;
    size_t w = 0, removed = 0;
    for (size_t i = 0; i < list->n; i++) {
        const mesh_trusted_key_t *k = &list->keys[i];
        if (strcmp(k->key, key_or_name) == 0 || strcmp(k->name, key_or_name) == 0) {
            removed++;
            continue;
        }
        list->keys[w++] = list->keys[i];
    }
    list->n = w;
    if (!removed)
        return s_fail(MESH_ENOTFOUND, "no trusted key or name '%.64s'", key_or_name);
    return 0;
}

int mesh_trusted_parse(const char *text, size_t len, const char *name, mesh_trusted_t **out) {
    s_last_err[0] = '\0';
    if (!out || (!text && len))
        return MESH_EINVAL;
    *out = NULL;
    if (!name)
        name = "<trusted keys>";
    mesh_trusted_t *list = mesh_trusted_new();
    if (!list)
        return s_fail(MESH_ENOMEM, "%s: out of memory", name);
    int line = 1, rc = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *s = p, *e = le;
        s_trim(&s, &e);
        if (memchr(p, '\0', (size_t)(le - p))) {
            rc = s_fail(MESH_EFORMAT, "%s:%d: NUL byte in text", name, line);
            break;
        }
        // First word.
        const char *we = s;
        while (we < e && !isspace((unsigned char)*we))
            we++;
        bool comment = s < e && *s == '#'; // no valid Z85 key starts with '#'
        if (s < e && !comment) {
            char key[MESH_KEY_Z85_LEN + 1];
            if ((size_t)(we - s) != MESH_KEY_Z85_LEN) {
                rc = s_fail(MESH_EFORMAT, "%s:%d: expected a 40-character Z85 public key", name,
                            line);
                break;
            }
            memcpy(key, s, MESH_KEY_Z85_LEN);
            key[MESH_KEY_Z85_LEN] = '\0';
            if (!mesh_keys_z85_valid(key)) {
                rc = s_fail(MESH_EFORMAT, "%s:%d: not a valid Z85 key", name, line);
                break;
            }
            // Optional name, then optional comment.
            const char *ns = we;
            while (ns < e && isspace((unsigned char)*ns))
                ns++;
            const char *ne = ns;
            if (ns < e && *ns != '#')
                while (ne < e && !isspace((unsigned char)*ne))
                    ne++;
            const char *rest = ne;
            while (rest < e && isspace((unsigned char)*rest))
                rest++;
            if (rest < e && *rest != '#') {
                rc = s_fail(MESH_EFORMAT, "%s:%d: unexpected text after the name (names have no "
                            "blanks)", name, line);
                break;
            }
            const char *why = s_bad_name(ns, (size_t)(ne - ns));
            if (why) {
                rc = s_fail(MESH_EFORMAT, "%s:%d: %s", name, line, why);
                break;
            }
            if (mesh_trusted_find(list, key)) {
                rc = s_fail(MESH_EEXISTS, "%s:%d: key listed twice", name, line);
                break;
            }
            if (s_add(list, key, ns, (size_t)(ne - ns)) != 0) {
                rc = s_fail(MESH_ENOMEM, "%s: out of memory", name);
                break;
            }
        }
        if (!nl)
            break;
        p = nl + 1;
        line++;
    }
    if (rc != 0) {
        mesh_trusted_destroy(&list);
        return rc;
    }
    *out = list;
    return 0;
}

int mesh_trusted_load(const char *path, mesh_trusted_t **out) {
    s_last_err[0] = '\0';
    if (!path || !out)
        return MESH_EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int code = s_errno_code(e);
        // A missing list is normal on first start: record, do not log it.
        snprintf(s_last_err, sizeof s_last_err, "%s: cannot open: %s", path, strerror(e));
        if (code != MESH_ENOENT)
            mesh_log(MESH_LOG_ERROR, "keys: %s", s_last_err);
        return code;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s_fail(MESH_EFORMAT, "%s: trusted-keys file is not a regular file", path);
    }
    if (st.st_mode & 022) {
        close(fd);
        return s_fail(MESH_EPERM,
                      "%s: trusted-keys file has mode %03o, others could add keys to it: refusing "
                      "it (fix: chmod 644 %s)",
                      path, (unsigned)(st.st_mode & 0777), path);
    }
    char *buf = malloc(S_TRUSTED_MAX);
    if (!buf) {
        close(fd);
        return s_fail(MESH_ENOMEM, "%s: out of memory", path);
    }
    ssize_t n = s_read_all(fd, buf, S_TRUSTED_MAX);
    close(fd);
    int rc;
    if (n == MESH_ERANGE)
        rc = s_fail(MESH_ERANGE, "%s: larger than %u bytes", path, S_TRUSTED_MAX);
    else if (n < 0)
        rc = s_fail(MESH_EIO, "%s: read failed", path);
    else
        rc = mesh_trusted_parse(buf, (size_t)n, path, out);
    free(buf);
    return rc;
}

int mesh_trusted_save(const mesh_trusted_t *list, const char *path) {
    s_last_err[0] = '\0';
    if (!list || !path)
        return MESH_EINVAL;
    // Each line: key (40) + blank + name (63) + newline.
    size_t cap = 128 + list->n * (MESH_KEY_Z85_LEN + MESH_KEY_NAME_MAX + 2);
    char *text = malloc(cap);
    if (!text)
        return s_fail(MESH_ENOMEM, "%s: out of memory", path);
    size_t off = (size_t)snprintf(text, cap,
                                  "# meshinfer trusted CURVE public keys: KEY [NAME]\n");
    for (size_t i = 0; i < list->n; i++) {
        const mesh_trusted_key_t *k = &list->keys[i];
        off += (size_t)snprintf(text + off, cap - off, "%s%s%s\n", k->key, k->name[0] ? " " : "",
                                k->name);
    }
    char *tmp = NULL;
    int rc = s_write_tmp(path, text, off, 0644, &tmp);
    free(text);
    if (rc != 0)
        return rc;
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return s_fail(s_errno_code(e), "%s: cannot move the new file into place: %s", path,
                      strerror(e));
    }
    free(tmp);
    s_sync_dir(path);
    return 0;
}
