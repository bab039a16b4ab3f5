/*
 * sha256.c: SHA-256 through OpenSSL's EVP digest interface (see sha256.h). Files are read with
 * plain read() in 1 MiB chunks into one heap buffer.
 */
#include "core/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BN_SHA256_CHUNK (1u << 20)

static void to_hex(char hex[BN_SHA256_HEX_SIZE], const unsigned char *digest, unsigned size) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < size && i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

/* Finishes ctx into hex and frees ctx. */
static bn_status finish(char hex[BN_SHA256_HEX_SIZE], EVP_MD_CTX *ctx, bn_error *err) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    int ok = EVP_DigestFinal_ex(ctx, digest, &size);
    EVP_MD_CTX_free(ctx);
    if (!ok || size != 32) return bn_error_set(err, BN_ERR_STATE, "sha256: EVP_DigestFinal_ex failed");
    to_hex(hex, digest, size);
    return BN_OK;
}

static EVP_MD_CTX *start(bn_error *err) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) {
        bn_error_set(err, BN_ERR_NOMEM, "sha256: EVP_MD_CTX_new failed");
        return NULL;
    }
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        bn_error_set(err, BN_ERR_STATE, "sha256: EVP_DigestInit_ex failed");
        return NULL;
    }
    return ctx;
}

bn_status bn_sha256_hex(char hex[BN_SHA256_HEX_SIZE], const void *data, size_t size, bn_error *err) {
    EVP_MD_CTX *ctx = start(err);
    if (!ctx) return err ? err->code : BN_ERR_STATE;
    if (size && !EVP_DigestUpdate(ctx, data, size)) {
        EVP_MD_CTX_free(ctx);
        return bn_error_set(err, BN_ERR_STATE, "sha256: EVP_DigestUpdate failed");
    }
    return finish(hex, ctx, err);
}

bn_status bn_sha256_file_hex(char hex[BN_SHA256_HEX_SIZE], const char *path, bn_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buffer = malloc(BN_SHA256_CHUNK);
    if (!buffer) {
        close(fd);
        return bn_error_set(err, BN_ERR_NOMEM, "%s: no memory for the hash buffer", path);
    }
    EVP_MD_CTX *ctx = start(err);
    if (!ctx) {
        free(buffer);
        close(fd);
        return err ? err->code : BN_ERR_STATE;
    }
    bn_status status = BN_OK;
    for (;;) {
        ssize_t got = read(fd, buffer, BN_SHA256_CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            status = bn_error_set(err, BN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (got == 0) break;
        if (!EVP_DigestUpdate(ctx, buffer, (size_t)got)) {
            status = bn_error_set(err, BN_ERR_STATE, "sha256: EVP_DigestUpdate failed");
            break;
        }
    }
    free(buffer);
    close(fd);
    if (status != BN_OK) {
        EVP_MD_CTX_free(ctx);
        return status;
    }
    return finish(hex, ctx, err);
}
