/*
 * sha256.h: SHA-256 digests as lower-case hex, for the model hash in receipts. The hashing itself
 * is OpenSSL's libcrypto (EVP interface, Debian package libssl-dev); this file only streams a
 * file through it in fixed-size chunks, so hashing a 1.2 GB model never holds it in memory.
 */
#ifndef BN_CORE_SHA256_H
#define BN_CORE_SHA256_H

#include "bitnet.h"

#include <stddef.h>

#define BN_SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */

/* Digest of size bytes at data, written to hex (64 digits and a NUL). */
bn_status bn_sha256_hex(char hex[BN_SHA256_HEX_SIZE], const void *data, size_t size, bn_error *err);
/* Digest of the whole file at path. Errors name the path (open/read) or the library call. */
bn_status bn_sha256_file_hex(char hex[BN_SHA256_HEX_SIZE], const char *path, bn_error *err);

#endif
