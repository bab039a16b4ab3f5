/*
 * cmd_verify_receipt.c: `bitnet verify-receipt FILE [--require-gpu-kernels]`. Reads a receipt
 * written by `bitnet bench --json` and checks it with the same verifier the tests and the fuzz
 * target use (tools/receipt.h). Prints "receipt OK: <summary>" and exits 0, or exits 1 with the
 * reason.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "tools/receipt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_RECEIPT_MAX_BYTES ((size_t)16 << 20) /* receipts are a few KB; refuse anything huge */

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet verify-receipt FILE [--require-gpu-kernels]\n"
            "  Checks a receipt from `bitnet bench --json`: schema 1.0.0, every required field with\n"
            "  its type, compute_path \"real\", a non-empty kernel list consistent with the backend,\n"
            "  positive finite figures, a 64-hex model sha256.\n"
            "  --require-gpu-kernels  also require cuda kernels for the ternary matmul, attention\n"
            "                         and RMSNorm (the receipt must come from --device cuda)\n");
}

int bn_cmd_verify_receipt(int argc, char **argv, bn_error *err) {
    const char *path = NULL;
    bool require_gpu = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(argv[i], "--require-gpu-kernels")) {
            require_gpu = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "bitnet verify-receipt: unknown option %s\n", argv[i]);
            usage(stderr);
            return BN_EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "bitnet verify-receipt: one FILE only\n");
            usage(stderr);
            return BN_EXIT_USAGE;
        }
    }
    if (!path) {
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    char *data = NULL;
    size_t size = 0;
    bn_status st = bn_cli_read_file(&data, &size, path, BN_RECEIPT_MAX_BYTES, err);
    if (st == BN_ERR_RANGE)
        bn_error_set(err, st, "%s: larger than %zu bytes, not a receipt", path, BN_RECEIPT_MAX_BYTES);
    if (st != BN_OK) return BN_EXIT_ERROR;
    char summary[512];
    bn_status status = bn_receipt_verify_json_summary(summary, sizeof summary, data, size, require_gpu, err);
    free(data);
    if (status != BN_OK) {
        bn_error_prefix(err, "%s: rejected: ", path);
        return BN_EXIT_ERROR;
    }
    printf("receipt OK: %s\n", summary);
    return BN_EXIT_OK;
}
