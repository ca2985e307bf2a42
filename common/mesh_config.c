// SPDX-License-Identifier: MIT
// Config file reader: parses "key = value" lines with sections and quoting
// into a flat list of entries, then answers typed lookups. See mesh_config.h
// for the format. libc only, so the engine-only build can use it too.
#include "mesh_config.h"

#include "mesh_err.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char *key;   // "section.key", NUL-terminated, owned
    char *value; // unescaped value, owned
    int line;    // 1-based line in the file
    bool used;   // read by a getter (for mesh_config_unknown with known == NULL)
} s_entry_t;

struct mesh_config {
    char *name;         // file path or caller's name, owned
    s_entry_t *entries; // (n) in file order
    size_t n, cap;      // used and allocated entries
    char err[512];      // last getter error, "" if none
};

// ---------------------------------------------------------------------------
// Parsing

static void s_fmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_fmt(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool s_is_name_char(int c) {
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

static bool s_is_blank(int c) { return c == ' ' || c == '\t'; }

static int s_push(mesh_config_t *cfg, char *key, char *value, int line) {
    if (cfg->n == cfg->cap) {
        size_t cap = cfg->cap ? cfg->cap * 2 : 16;
        s_entry_t *e = realloc(cfg->entries, cap * sizeof *e);
        if (!e)
            return MESH_ENOMEM;
        cfg->entries = e;
        cfg->cap = cap;
    }
    cfg->entries[cfg->n++] = (s_entry_t){.key = key, .value = value, .line = line};
    return 0;
}

// Parses the value part of a line [p, end) after the '='. Returns a new string
// or NULL with *code set and a message in err.
static char *s_parse_value(const char *p, const char *end, const char *name, int line, int *code,
                           char *err, size_t errlen) {
    while (p < end && s_is_blank(*p))
        p++;
    if (p < end && *p == '"') {
        char *out = malloc((size_t)(end - p) + 1);
        if (!out) {
            *code = MESH_ENOMEM;
            s_fmt(err, errlen, "%s:%d: out of memory", name, line);
            return NULL;
        }
        size_t n = 0;
        p++;
        for (;;) {
            if (p >= end) {
                free(out);
                *code = MESH_EFORMAT;
                s_fmt(err, errlen, "%s:%d: unterminated quoted value", name, line);
                return NULL;
            }
            char c = *p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (p >= end) {
                    free(out);
                    *code = MESH_EFORMAT;
                    s_fmt(err, errlen, "%s:%d: unterminated quoted value", name, line);
                    return NULL;
                }
                char e = *p++;
                switch (e) {
                case '"': c = '"'; break;
                case '\\': c = '\\'; break;
                case 'n': c = '\n'; break;
                case 't': c = '\t'; break;
                default:
                    free(out);
                    *code = MESH_EFORMAT;
                    if (isprint((unsigned char)e))
                        s_fmt(err, errlen, "%s:%d: unknown escape '\\%c' in quoted value", name,
                              line, e);
                    else
                        s_fmt(err, errlen, "%s:%d: unknown escape in quoted value", name, line);
                    return NULL;
                }
            }
            out[n++] = c;
        }
        out[n] = '\0';
        while (p < end && s_is_blank(*p))
            p++;
        if (p < end && *p != '#') {
            free(out);
            *code = MESH_EFORMAT;
            s_fmt(err, errlen, "%s:%d: unexpected text after the closing quote", name, line);
            return NULL;
        }
        return out;
    }
    // Unquoted: up to a '#' that follows a blank (or starts the value).
    const char *q = p;
    while (q < end && !(*q == '#' && (q == p || s_is_blank(q[-1]))))
        q++;
    while (q > p && s_is_blank(q[-1]))
        q--;
    char *out = strndup(p, (size_t)(q - p));
    if (!out) {
        *code = MESH_ENOMEM;
        s_fmt(err, errlen, "%s:%d: out of memory", name, line);
    }
    return out;
}

// Parses one line [p, end) (no '\n'; a trailing '\r' already removed).
// section holds the current section name (without the dot), updated by headers.
static int s_parse_line(mesh_config_t *cfg, const char *p, const char *end, char *section,
                        size_t section_cap, int line, char *err, size_t errlen) {
    const char *name = cfg->name;
    while (p < end && s_is_blank(*p))
        p++;
    while (end > p && s_is_blank(end[-1]))
        end--;
    if (p == end || *p == '#')
        return 0;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (!close) {
            s_fmt(err, errlen, "%s:%d: section header lacks ']'", name, line);
            return MESH_EFORMAT;
        }
        const char *after = close + 1;
        while (after < end && s_is_blank(*after))
            after++;
        if (after < end && *after != '#') {
            s_fmt(err, errlen, "%s:%d: unexpected text after the section header", name, line);
            return MESH_EFORMAT;
        }
        const char *s = p + 1, *e = close;
        while (s < e && s_is_blank(*s))
            s++;
        while (e > s && s_is_blank(e[-1]))
            e--;
        for (const char *c = s; c < e; c++) {
            if (!s_is_name_char(*c)) {
                s_fmt(err, errlen, "%s:%d: bad character in section name (use A-Z a-z 0-9 _ . -)",
                      name, line);
                return MESH_EFORMAT;
            }
        }
        if ((size_t)(e - s) >= section_cap) {
            s_fmt(err, errlen, "%s:%d: section name too long", name, line);
            return MESH_EFORMAT;
        }
        memcpy(section, s, (size_t)(e - s));
        section[e - s] = '\0';
        return 0;
    }
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq) {
        s_fmt(err, errlen, "%s:%d: expected 'key = value'", name, line);
        return MESH_EFORMAT;
    }
    const char *ke = eq;
    while (ke > p && s_is_blank(ke[-1]))
        ke--;
    if (ke == p) {
        s_fmt(err, errlen, "%s:%d: missing key before '='", name, line);
        return MESH_EFORMAT;
    }
    for (const char *c = p; c < ke; c++) {
        if (!s_is_name_char(*c)) {
            s_fmt(err, errlen, "%s:%d: bad character in key (use A-Z a-z 0-9 _ . -)", name, line);
            return MESH_EFORMAT;
        }
    }
    size_t slen = strlen(section), klen = (size_t)(ke - p);
    char *key = malloc(slen + 1 + klen + 1);
    if (!key) {
        s_fmt(err, errlen, "%s:%d: out of memory", name, line);
        return MESH_ENOMEM;
    }
    size_t off = 0;
    if (slen) {
        memcpy(key, section, slen);
        key[slen] = '.';
        off = slen + 1;
    }
    memcpy(key + off, p, klen);
    key[off + klen] = '\0';
    int code = 0;
    char *value = s_parse_value(eq + 1, end, name, line, &code, err, errlen);
    if (!value) {
        free(key);
        return code;
    }
    if (s_push(cfg, key, value, line) != 0) {
        free(key);
        free(value);
        s_fmt(err, errlen, "%s:%d: out of memory", name, line);
        return MESH_ENOMEM;
    }
    return 0;
}

int mesh_config_parse(const char *text, size_t len, const char *name, mesh_config_t **out,
                      char *err, size_t errlen) {
    if (!out)
        return MESH_EINVAL;
    *out = NULL;
    if (!name)
        name = "<config>";
    if (!text && len) {
        s_fmt(err, errlen, "%s: no text", name);
        return MESH_EINVAL;
    }
    if (len > MESH_CONFIG_MAX_BYTES) {
        s_fmt(err, errlen, "%s: larger than %u bytes", name, MESH_CONFIG_MAX_BYTES);
        return MESH_ERANGE;
    }
    mesh_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->name = strdup(name))) {
        free(cfg);
        s_fmt(err, errlen, "%s: out of memory", name);
        return MESH_ENOMEM;
    }
    char section[128] = "";
    int line = 1, rc = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (memchr(p, '\0', (size_t)(le - p))) {
            s_fmt(err, errlen, "%s:%d: NUL byte in text (binary file?)", name, line);
            rc = MESH_EFORMAT;
            break;
        }
        const char *ce = le;
        if (ce > p && ce[-1] == '\r')
            ce--;
        rc = s_parse_line(cfg, p, ce, section, sizeof section, line, err, errlen);
        if (rc != 0)
            break;
        if (!nl)
            break;
        p = nl + 1;
        line++;
    }
    if (rc != 0) {
        mesh_config_destroy(&cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int mesh_config_load(const char *path, mesh_config_t **out, char *err, size_t errlen) {
    if (!out || !path)
        return MESH_EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        s_fmt(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? MESH_ENOENT : e == EACCES ? MESH_EPERM : MESH_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        s_fmt(err, errlen, "%s: not a regular file", path);
        return MESH_EINVAL;
    }
    if (st.st_size > (off_t)MESH_CONFIG_MAX_BYTES) {
        close(fd);
        s_fmt(err, errlen, "%s: larger than %u bytes", path, MESH_CONFIG_MAX_BYTES);
        return MESH_ERANGE;
    }
    // Read to EOF rather than trusting st_size: the file may change under us.
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        s_fmt(err, errlen, "%s: out of memory", path);
        return MESH_ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            if (cap > MESH_CONFIG_MAX_BYTES) {
                free(buf);
                close(fd);
                s_fmt(err, errlen, "%s: larger than %u bytes", path, MESH_CONFIG_MAX_BYTES);
                return MESH_ERANGE;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                s_fmt(err, errlen, "%s: out of memory", path);
                return MESH_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            s_fmt(err, errlen, "%s: read failed: %s", path, strerror(e));
            return MESH_EIO;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    int rc = mesh_config_parse(buf, n, path, out, err, errlen);
    free(buf);
    return rc;
}

void mesh_config_destroy(mesh_config_t **cfg_p) {
    if (!cfg_p || !*cfg_p)
        return;
    mesh_config_t *cfg = *cfg_p;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    free(cfg->entries);
    free(cfg->name);
    free(cfg);
    *cfg_p = NULL;
}

const char *mesh_config_name(const mesh_config_t *cfg) { return cfg ? cfg->name : ""; }

const char *mesh_config_error(const mesh_config_t *cfg) { return cfg ? cfg->err : ""; }

// ---------------------------------------------------------------------------
// Lookups

// The last entry with this key, or NULL. Marks every occurrence as read.
static s_entry_t *s_last(mesh_config_t *cfg, const char *key) {
    s_entry_t *found = NULL;
    for (size_t i = 0; i < cfg->n; i++) {
        if (strcmp(cfg->entries[i].key, key) == 0) {
            cfg->entries[i].used = true;
            found = &cfg->entries[i];
        }
    }
    return found;
}

static int s_bad(mesh_config_t *cfg, const s_entry_t *e, int code, const char *why) {
    snprintf(cfg->err, sizeof cfg->err, "%s:%d: %s: '%.64s'%s %s", cfg->name, e->line, e->key,
             e->value, strlen(e->value) > 64 ? "..." : "", why);
    return code;
}

// Common start of every getter: clears the error, finds the entry.
static int s_find(mesh_config_t *cfg, const char *key, s_entry_t **e) {
    if (!cfg || !key)
        return MESH_EINVAL;
    cfg->err[0] = '\0';
    *e = s_last(cfg, key);
    return *e ? 0 : MESH_ENOENT;
}

int mesh_config_get_str(mesh_config_t *cfg, const char *key, const char **out) {
    s_entry_t *e;
    int rc = s_find(cfg, key, &e);
    if (rc == 0)
        *out = e->value;
    return rc;
}

int mesh_config_get_int(mesh_config_t *cfg, const char *key, int64_t min, int64_t max,
                        int64_t *out) {
    s_entry_t *e;
    int rc = s_find(cfg, key, &e);
    if (rc != 0)
        return rc;
    const char *s = e->value;
    if (!*s || isspace((unsigned char)*s))
        return s_bad(cfg, e, MESH_EFORMAT, "is not an integer");
    errno = 0;
    char *endp;
    long long v = strtoll(s, &endp, 0);
    // strtoll's base 0 reads a leading 0 as octal; config authors mean decimal.
    const char *digits = s + (*s == '-' || *s == '+');
    if (digits[0] == '0' && isdigit((unsigned char)digits[1])) {
        errno = 0;
        v = strtoll(s, &endp, 10);
    }
    if (*endp != '\0' || endp == s)
        return s_bad(cfg, e, MESH_EFORMAT, "is not an integer");
    if (errno == ERANGE || v < min || v > max) {
        char why[96];
        snprintf(why, sizeof why, "is out of range [%" PRId64 ", %" PRId64 "]", min, max);
        return s_bad(cfg, e, MESH_ERANGE, why);
    }
    *out = (int64_t)v;
    return 0;
}

int mesh_config_get_bool(mesh_config_t *cfg, const char *key, bool *out) {
    s_entry_t *e;
    int rc = s_find(cfg, key, &e);
    if (rc != 0)
        return rc;
    static const char *const t[] = {"true", "yes", "on", "1"};
    static const char *const f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(e->value, t[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(e->value, f[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return s_bad(cfg, e, MESH_EFORMAT, "is not a boolean (true/false, yes/no, on/off, 1/0)");
}

// Reads a non-negative decimal with up to 3 fraction digits as value*1000.
// Returns the end pointer, or NULL if no digits or overflow (*ovf set).
static const char *s_milli(const char *s, uint64_t *out, bool *ovf) {
    uint64_t v = 0;
    const char *p = s;
    *ovf = false;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX / 10 - 9) / 1000) {
            *ovf = true;
            return NULL;
        }
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == s)
        return NULL;
    v *= 1000;
    if (*p == '.') {
        p++;
        uint64_t scale = 100;
        const char *f = p;
        while (isdigit((unsigned char)*p)) {
            if (p - f >= 3)
                return NULL; // more precision than a millisecond / a byte
            v += (uint64_t)(*p - '0') * scale;
            scale /= 10;
            p++;
        }
        if (p == f)
            return NULL;
    }
    *out = v;
    return p;
}

int mesh_config_get_size(mesh_config_t *cfg, const char *key, uint64_t max, uint64_t *out_bytes) {
    s_entry_t *e;
    int rc = s_find(cfg, key, &e);
    if (rc != 0)
        return rc;
    const char *s = e->value;
    uint64_t v = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        if (v > (UINT64_MAX - 9) / 10)
            return s_bad(cfg, e, MESH_ERANGE, "is too large");
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == s)
        return s_bad(cfg, e, MESH_EFORMAT, "is not a size (e.g. 512M, 4GiB, 65536)");
    while (s_is_blank(*p))
        p++;
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0},     {"B", 0},    {"K", 10},   {"KB", 10},  {"KiB", 10},
                 {"M", 20},   {"MB", 20},  {"MiB", 20}, {"G", 30},   {"GB", 30},
                 {"GiB", 30}, {"T", 40},   {"TB", 40},  {"TiB", 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(p, units[i].suffix) == 0) {
            unsigned sh = units[i].shift;
            if (sh && v > (UINT64_MAX >> sh))
                return s_bad(cfg, e, MESH_ERANGE, "is too large");
            v <<= sh;
            if (v > max) {
                char why[64];
                snprintf(why, sizeof why, "is larger than %" PRIu64 " bytes", max);
                return s_bad(cfg, e, MESH_ERANGE, why);
            }
            *out_bytes = v;
            return 0;
        }
    }
    return s_bad(cfg, e, MESH_EFORMAT, "has an unknown size unit (use K, M, G, T or KiB, MiB, ...)");
}

int mesh_config_get_duration_ms(mesh_config_t *cfg, const char *key, int64_t max_ms,
                                int64_t *out_ms) {
    s_entry_t *e;
    int rc = s_find(cfg, key, &e);
    if (rc != 0)
        return rc;
    uint64_t milli; // value * 1000
    bool ovf;
    const char *p = s_milli(e->value, &milli, &ovf);
    if (!p)
        return ovf ? s_bad(cfg, e, MESH_ERANGE, "is too large")
                   : s_bad(cfg, e, MESH_EFORMAT, "is not a duration (e.g. 250ms, 1.5s, 2m)");
    while (s_is_blank(*p))
        p++;
    uint64_t mult; // milliseconds per unit
    if (!*p)
        return s_bad(cfg, e, MESH_EFORMAT, "needs a unit (ms, s, m or h)");
    if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "m") == 0 || strcmp(p, "min") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else
        return s_bad(cfg, e, MESH_EFORMAT, "has an unknown duration unit (use ms, s, m or h)");
    if (milli > UINT64_MAX / mult)
        return s_bad(cfg, e, MESH_ERANGE, "is too large");
    uint64_t prod = milli * mult;
    if (prod % 1000 != 0)
        return s_bad(cfg, e, MESH_EFORMAT, "is finer than a millisecond");
    uint64_t ms = prod / 1000;
    if (max_ms < 0 || ms > (uint64_t)max_ms) {
        char why[64];
        snprintf(why, sizeof why, "is longer than %" PRId64 " ms", max_ms);
        return s_bad(cfg, e, MESH_ERANGE, why);
    }
    *out_ms = (int64_t)ms;
    return 0;
}

const char *mesh_config_next(mesh_config_t *cfg, const char *key, size_t *iter) {
    if (!cfg || !key || !iter)
        return NULL;
    for (size_t i = *iter; i < cfg->n; i++) {
        if (strcmp(cfg->entries[i].key, key) == 0) {
            cfg->entries[i].used = true;
            *iter = i + 1;
            return cfg->entries[i].value;
        }
    }
    *iter = cfg->n;
    return NULL;
}

size_t mesh_config_count(const mesh_config_t *cfg, const char *key) {
    size_t c = 0;
    if (!cfg || !key)
        return 0;
    for (size_t i = 0; i < cfg->n; i++)
        c += strcmp(cfg->entries[i].key, key) == 0;
    return c;
}

size_t mesh_config_size(const mesh_config_t *cfg) { return cfg ? cfg->n : 0; }

int mesh_config_entry(const mesh_config_t *cfg, size_t i, const char **key, const char **value,
                      int *line) {
    if (!cfg || i >= cfg->n)
        return MESH_ERANGE;
    if (key)
        *key = cfg->entries[i].key;
    if (value)
        *value = cfg->entries[i].value;
    if (line)
        *line = cfg->entries[i].line;
    return 0;
}

static bool s_known(const char *key, const char *const *known) {
    for (; *known; known++) {
        const char *k = *known;
        size_t n = strlen(k);
        if (n >= 2 && k[n - 1] == '*' && k[n - 2] == '.') {
            if (strncmp(key, k, n - 1) == 0)
                return true;
        } else if (strcmp(key, k) == 0) {
            return true;
        }
    }
    return false;
}

size_t mesh_config_unknown(const mesh_config_t *cfg, const char *const *known,
                           mesh_config_unknown_fn fn, void *user) {
    size_t c = 0;
    if (!cfg)
        return 0;
    for (size_t i = 0; i < cfg->n; i++) {
        const s_entry_t *e = &cfg->entries[i];
        bool ok = known ? s_known(e->key, known) : e->used;
        if (!ok) {
            c++;
            if (fn)
                fn(cfg->name, e->line, e->key, user);
        }
    }
    return c;
}
