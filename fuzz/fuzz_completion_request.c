/*
 * fuzz_completion_request.c: the server's POST /v1/completions body parser on arbitrary bytes; the properties are in
 * server_request_check.h.
 */
#include "server_request_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return bn_fuzz_check_request(false, (const char *)data, size);
}
