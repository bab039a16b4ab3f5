/*
 * error.c: the project's one error type (see include/bitnet.h). Messages are formatted into a
 * fixed buffer inside bn_error, so reporting an error never allocates.
 */
#include "bitnet.h"

#include <stdio.h>
#include <string.h>

bn_status bn_error_set(bn_error *err, bn_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

bn_status bn_error_prefix(bn_error *err, const char *fmt, ...) {
    if (!err) return BN_ERR_INVALID;
    char prefix[BN_ERROR_MESSAGE_MAX];
    char old[BN_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t prefix_len = strnlen(prefix, sizeof err->message - 1);
    memcpy(err->message, prefix, prefix_len);
    size_t room = sizeof err->message - 1 - prefix_len;
    size_t old_len = strnlen(old, room);
    memcpy(err->message + prefix_len, old, old_len);
    err->message[prefix_len + old_len] = '\0';
    return err->code;
}

void bn_error_clear(bn_error *err) {
    if (err) {
        err->code = BN_OK;
        err->message[0] = '\0';
    }
}

const char *bn_status_name(bn_status code) {
    switch (code) {
    case BN_OK: return "ok";
    case BN_ERR_IO: return "i/o error";
    case BN_ERR_FORMAT: return "format error";
    case BN_ERR_UNSUPPORTED: return "unsupported";
    case BN_ERR_NOMEM: return "out of memory";
    case BN_ERR_INVALID: return "invalid argument";
    case BN_ERR_RANGE: return "out of range";
    case BN_ERR_STATE: return "invalid state";
    case BN_ERR_DEVICE: return "device error";
    case BN_ERR_MISMATCH: return "mismatch";
    }
    return "unknown error";
}

const char *bn_version(void) { return BITNET_VERSION; }
const char *bn_git_commit(void) { return BITNET_GIT_COMMIT; }
