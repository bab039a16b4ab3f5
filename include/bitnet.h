/*
 * bitnet.h: the public API of bitnet-c, a C11 inference engine for BitNet b1.58 models.
 *
 * Error convention (the same everywhere in the project): a function that can fail returns a
 * bn_status and fills a caller-owned bn_error with the code and a message that names the file,
 * the field and the byte offset where relevant. Nothing below main() prints or exits on bad input.
 * A NULL bn_error pointer is allowed; the message is then dropped.
 */
#ifndef BITNET_H
#define BITNET_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_IO,          /* open/read/write/mmap failed */
    BN_ERR_FORMAT,      /* a file or message is malformed */
    BN_ERR_UNSUPPORTED, /* well-formed but not something we implement (unknown type id, ...) */
    BN_ERR_NOMEM,       /* an allocation failed */
    BN_ERR_INVALID,     /* an argument or option is invalid */
    BN_ERR_RANGE,       /* a value is out of range (token id, position, context full) */
    BN_ERR_STATE,       /* the call is not valid in the object's current state */
    BN_ERR_DEVICE,      /* an accelerator call failed or no accelerator exists */
    BN_ERR_MISMATCH     /* a comparison or verification failed */
} bn_status;

#define BN_ERROR_MESSAGE_MAX 512

typedef struct bn_error {
    bn_status code;
    char message[BN_ERROR_MESSAGE_MAX];
} bn_error;

/* Sets err (when non-NULL) and returns code, so callers can write `return bn_error_set(...)`. */
bn_status bn_error_set(bn_error *err, bn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("loading model.gguf: ") to an error already set; returns its code. */
bn_status bn_error_prefix(bn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bn_error_clear(bn_error *err);
/* A short stable name for a status ("format error", ...). */
const char *bn_status_name(bn_status code);

/* Version string ("0.1.0") and git commit the binary was built from. */
const char *bn_version(void);
const char *bn_git_commit(void);

#ifdef __cplusplus
}
#endif
#endif /* BITNET_H */
