// SPDX-License-Identifier: MIT
// Shared test helpers (see mesh_test.h).
#include "mesh_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int mesh_test_data_path(char *out, size_t cap, const char *rel) {
    const char *d = getenv("MESH_TESTDATA");
    if (!d || !*d) {
        fprintf(stderr, "MESH_TESTDATA is not set: the reference data (../shared/testdata) "
                        "is required; run the tests through ctest\n");
        return -1;
    }
    if ((size_t)snprintf(out, cap, "%s/%s", d, rel) >= cap) {
        fprintf(stderr, "test data path too long: %s/%s\n", d, rel);
        return -1;
    }
    if (access(out, R_OK) != 0) {
        fprintf(stderr, "reference file missing: %s (see shared/testdata/README.md)\n", out);
        return -1;
    }
    return 0;
}

char *mesh_test_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return b;
}

mesh_json_t *mesh_test_load_json(const char *rel) {
    char path[4096], err[256] = "";
    if (mesh_test_data_path(path, sizeof path, rel))
        return NULL;
    size_t len = 0;
    char *text = mesh_test_slurp(path, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    mesh_json_t *j = NULL;
    if (mesh_json_parse(text, len, &j, err, sizeof err))
        fprintf(stderr, "%s: %s\n", path, err);
    free(text);
    return j;
}

long mesh_test_json_ids(const mesh_json_t *v, int32_t **ids) {
    *ids = NULL;
    if (mesh_json_type(v) != MESH_JSON_ARRAY)
        return -1;
    size_t n = mesh_json_len(v);
    int32_t *out = malloc((n ? n : 1) * sizeof *out);
    if (!out)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const mesh_json_t *e = mesh_json_at(v, i);
        int64_t x = mesh_json_int(e);
        if (mesh_json_type(e) != MESH_JSON_INT || x < 0 || x > INT32_MAX) {
            free(out);
            return -1;
        }
        out[i] = (int32_t)x;
    }
    *ids = out;
    return (long)n;
}
