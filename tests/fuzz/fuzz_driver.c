// SPDX-License-Identifier: MIT
// A small stand-in for libFuzzer, used when clang is not installed, so the
// `fuzz` label still runs: it replays every seed, then feeds random byte
// mutations of the seeds to LLVMFuzzerTestOneInput until a time or run budget
// is spent. The mutations come from a fixed-seed PRNG (xorshift64*), so a run
// is reproducible with the same -seed and seeds; the time budget only decides
// how many inputs are tried, never whether the test passes.
//
// Understands a subset of libFuzzer's flags: -max_total_time=S, -runs=N,
// -seed=N, -max_len=N, -artifact_prefix=P (others are ignored); the other
// arguments are seed files or directories. On a crash (signal, or a sanitizer
// report when built with one) the input is written to <prefix>crash-<run>.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Provided by the sanitizer runtimes when the build uses one.
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

typedef struct {
    uint8_t *p;
    size_t n;
} s_unit_t;

static s_unit_t *s_seeds;
static size_t s_n_seeds, s_cap_seeds;
static size_t s_max_len = 1 << 20;
static const char *s_prefix = "";
// The input being run, for the crash handler (async-signal-safe use only).
static const uint8_t *volatile s_cur;
static volatile size_t s_cur_n;
static volatile unsigned long long s_cur_run;

static void s_save_crash(void) {
    char path[4096];
    // Building the name with snprintf is not async-signal-safe in theory; the
    // process is dying anyway and glibc's integer formatting does not allocate.
    snprintf(path, sizeof path, "%scrash-%llu", s_prefix, s_cur_run);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        size_t off = 0;
        while (off < s_cur_n) {
            ssize_t k = write(fd, s_cur + off, s_cur_n - off);
            if (k <= 0)
                break;
            off += (size_t)k;
        }
        close(fd);
    }
    static const char msg[] = "fuzz_driver: crash; input saved as crash-<run> (see above)\n";
    (void)!write(2, msg, sizeof msg - 1);
}

static void s_on_signal(int sig) {
    s_save_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_add_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_driver: cannot open seed '%s'\n", path);
        exit(2);
    }
    uint8_t *buf = malloc(s_max_len ? s_max_len : 1);
    size_t n = fread(buf, 1, s_max_len, f); // longer seeds are cut to max_len, as libFuzzer does
    fclose(f);
    if (s_n_seeds == s_cap_seeds) {
        s_cap_seeds = s_cap_seeds ? 2 * s_cap_seeds : 16;
        s_seeds = realloc(s_seeds, s_cap_seeds * sizeof *s_seeds);
    }
    s_seeds[s_n_seeds++] = (s_unit_t){buf, n};
}

static int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_add_path(const char *path) {
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "fuzz_driver: no such seed '%s'\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        s_add_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "fuzz_driver: cannot read '%s'\n", path);
        exit(2);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = realloc(names, cap * sizeof *names);
        }
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp); // directory order is not deterministic
    for (size_t i = 0; i < n; i++) {
        struct stat s2;
        if (!stat(names[i], &s2) && S_ISREG(s2.st_mode))
            s_add_file(names[i]);
        free(names[i]);
    }
    free(names);
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static uint64_t s_rand(void) {
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 2685821657736338717ull;
}
static size_t s_below(size_t n) { return n ? (size_t)(s_rand() % n) : 0; }

// One random edit of buf (length *n, capacity cap).
static void s_mutate(uint8_t *buf, size_t *n, size_t cap) {
    static const uint64_t interesting[] = {0,          1,          0x7f,       0x80,
                                           0xff,       0xffff,     0x7fffffff, 0x80000000u,
                                           0xffffffffu, 1ull << 32, 1ull << 62, UINT64_MAX,
                                           3,          5,          13,         64};
    switch (s_rand() % 8) {
    case 0: // flip a bit
        if (*n)
            buf[s_below(*n)] ^= (uint8_t)(1u << (s_rand() % 8));
        break;
    case 1: // random byte
        if (*n)
            buf[s_below(*n)] = (uint8_t)s_rand();
        break;
    case 2: // interesting 4- or 8-byte little-endian value (counts, lengths, types)
    case 3: {
        size_t w = s_rand() & 1 ? 8 : 4;
        if (*n >= w) {
            uint64_t v = interesting[s_rand() % (sizeof interesting / sizeof interesting[0])];
            if (s_rand() & 1)
                v += s_rand() % 3 - 1;
            memcpy(buf + s_below(*n - w + 1), &v, w);
        }
        break;
    }
    case 4: // truncate
        *n = s_below(*n + 1);
        break;
    case 5: { // delete a chunk
        if (!*n)
            break;
        size_t at = s_below(*n), len = 1 + s_below(*n - at < 64 ? *n - at : 64);
        memmove(buf + at, buf + at + len, *n - at - len);
        *n -= len;
        break;
    }
    case 6: { // duplicate a chunk in place (grows)
        if (!*n || *n >= cap)
            break;
        size_t at = s_below(*n), len = 1 + s_below(*n - at < 64 ? *n - at : 64);
        if (len > cap - *n)
            len = cap - *n;
        memmove(buf + at + len, buf + at, *n - at);
        *n += len;
        break;
    }
    default: // add a small signed delta to a byte (off-by-one counts)
        if (*n)
            buf[s_below(*n)] += (uint8_t)(s_rand() % 5 - 2);
        break;
    }
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    double max_time = 10;
    unsigned long long max_runs = 0, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-help=1")) {
            printf("usage: %s [-max_total_time=S] [-runs=N] [-seed=N] [-max_len=N]\n"
                   "       [-artifact_prefix=P] SEED_FILE_OR_DIR...\n"
                   "Replays every seed, then random mutations of them (libFuzzer stand-in).\n",
                   argv[0]);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "-max_total_time=", 16))
            max_time = atof(a + 16);
        else if (!strncmp(a, "-runs=", 6))
            max_runs = strtoull(a + 6, NULL, 10);
        else if (!strncmp(a, "-seed=", 6))
            seed = strtoull(a + 6, NULL, 10);
        else if (!strncmp(a, "-max_len=", 9))
            s_max_len = strtoull(a + 9, NULL, 10);
        else if (!strncmp(a, "-artifact_prefix=", 17))
            s_prefix = a + 17;
        else if (a[0] == '-')
            ; // other libFuzzer flags: not ours
        else
            s_add_path(a);
    }
    if (!s_max_len)
        s_max_len = 1 << 20;
    s_rng ^= seed * 0x2545f4914f6cdd1dull;
    if (!s_rng)
        s_rng = 1;
    signal(SIGSEGV, s_on_signal);
    signal(SIGBUS, s_on_signal);
    signal(SIGABRT, s_on_signal);
    signal(SIGFPE, s_on_signal);
    signal(SIGILL, s_on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(s_save_crash);

    unsigned long long runs = 0;
    for (size_t i = 0; i < s_n_seeds; i++) {
        s_cur = s_seeds[i].p;
        s_cur_n = s_seeds[i].n;
        s_cur_run = runs++;
        LLVMFuzzerTestOneInput(s_seeds[i].p, s_seeds[i].n);
    }
    fprintf(stderr, "fuzz_driver: replayed %zu seeds; mutating (seed %llu, %.0f s)\n", s_n_seeds,
            seed, max_time);
    if (!s_n_seeds) {
        fprintf(stderr, "fuzz_driver: no seeds\n");
        return 2;
    }
    uint8_t *buf = malloc(s_max_len);
    double t0 = s_now();
    for (;;) {
        if (max_runs && runs >= max_runs)
            break;
        if ((runs & 63) == 0 && s_now() - t0 >= max_time)
            break;
        const s_unit_t *u = &s_seeds[s_below(s_n_seeds)];
        size_t n = u->n;
        memcpy(buf, u->p, n);
        int k = 1 + (int)(s_rand() % 8);
        for (int j = 0; j < k; j++)
            s_mutate(buf, &n, s_max_len);
        // Exact-size copy so a sanitizer sees reads past the end.
        uint8_t *in = malloc(n ? n : 1);
        memcpy(in, buf, n);
        s_cur = in;
        s_cur_n = n;
        s_cur_run = runs++;
        LLVMFuzzerTestOneInput(in, n);
        free(in);
    }
    fprintf(stderr, "fuzz_driver: %llu runs in %.1f s, no crash\n", runs, s_now() - t0);
    free(buf);
    for (size_t i = 0; i < s_n_seeds; i++)
        free(s_seeds[i].p);
    free(s_seeds);
    return 0;
}
