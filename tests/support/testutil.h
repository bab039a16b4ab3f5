/*
 * testutil.h: the small assertion kit every C test uses. A failed CHECK prints file:line and the
 * expression, counts the failure and carries on, so one run shows every broken assertion; the
 * test's main() ends with `return bn_test_finish("name");`, which prints
 * "N passed, M failed" and returns non-zero on any failure.
 */
#ifndef BN_TESTUTIL_H
#define BN_TESTUTIL_H

#include "bitnet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

extern int bn_test_passed;
extern int bn_test_failed;

void bn_test_report(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define CHECK(cond) bn_test_report((cond), __FILE__, __LINE__, #cond, NULL)
#define CHECKF(cond, ...) bn_test_report((cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
/* Status check that shows the error message on failure. */
#define CHECK_OK(status, err) \
    bn_test_report((status) == BN_OK, __FILE__, __LINE__, #status, "error: %s", (err)->message)
#define CHECK_STR_CONTAINS(haystack, needle)                                                   \
    bn_test_report(strstr((haystack), (needle)) != NULL, __FILE__, __LINE__, #haystack,         \
                   "expected to contain \"%s\", got \"%s\"", (needle), (haystack))

int bn_test_finish(const char *name);

/* A fresh scratch directory for this test (under $BITNET_TEST_TMP or /tmp); caller frees. */
char *bn_test_tmpdir(const char *name);
/* path = dir + "/" + file; caller frees. */
char *bn_test_path(const char *dir, const char *file);
/* Reads a whole file; *size gets its length; caller frees; NULL on error. */
void *bn_test_read_file(const char *path, size_t *size);
/* Writes a whole file; returns false on error. */
bool bn_test_write_file(const char *path, const void *data, size_t size);
/* Root of the source tree ($BITNET_SOURCE_DIR or "."). */
const char *bn_test_source_dir(void);
/* Deterministic random numbers for tests (xorshift64*). */
typedef struct bn_test_rng { uint64_t state; } bn_test_rng;
void bn_test_rng_seed(bn_test_rng *rng, uint64_t seed);
uint64_t bn_test_rng_next(bn_test_rng *rng);
/* Uniform in [0, 1). */
float bn_test_rng_float(bn_test_rng *rng);
/* Uniform integer in [lo, hi]. */
int64_t bn_test_rng_range(bn_test_rng *rng, int64_t lo, int64_t hi);

#endif
