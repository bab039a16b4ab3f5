/*
 * testutil.c: assertion counting, scratch files and a seeded RNG for the C tests.
 */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int bn_test_passed;
int bn_test_failed;

void bn_test_report(bool ok, const char *file, int line, const char *expr, const char *fmt, ...) {
    if (ok) {
        bn_test_passed++;
        return;
    }
    bn_test_failed++;
    fprintf(stderr, "FAIL %s:%d: %s", file, line, expr);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputs(" -- ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

int bn_test_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, bn_test_passed, bn_test_failed);
    return bn_test_failed ? 1 : 0;
}

const char *bn_test_source_dir(void) {
    const char *dir = getenv("BITNET_SOURCE_DIR");
    return dir && *dir ? dir : ".";
}

char *bn_test_path(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *path = malloc(n);
    if (path) snprintf(path, n, "%s/%s", dir, file);
    return path;
}

static void make_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

char *bn_test_tmpdir(const char *name) {
    const char *base = getenv("BITNET_TEST_TMP");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s-%ld", base && *base ? base : "/tmp/bitnet-test", name,
             (long)getpid());
    make_dirs(buf);
    return strdup(buf);
}

void *bn_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long len = ftell(f);
    if (len < 0) { fclose(f); return NULL; }
    rewind(f);
    unsigned char *data = malloc((size_t)len + 1);
    if (data && fread(data, 1, (size_t)len, f) != (size_t)len) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) {
        data[len] = 0;
        if (size) *size = (size_t)len;
    }
    return data;
}

bool bn_test_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

void bn_test_rng_seed(bn_test_rng *rng, uint64_t seed) {
    rng->state = seed ? seed * 0x9E3779B97F4A7C15ull : 0x1234567ull;
}

uint64_t bn_test_rng_next(bn_test_rng *rng) {
    uint64_t x = rng->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

float bn_test_rng_float(bn_test_rng *rng) {
    return (float)(bn_test_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

int64_t bn_test_rng_range(bn_test_rng *rng, int64_t lo, int64_t hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(bn_test_rng_next(rng) % span);
}
