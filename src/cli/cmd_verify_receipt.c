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


enum { VERIFY_GPU = 1 };

static const bn_cli_option verify_table[] = {
    {VERIFY_GPU, "--require-gpu-kernels", NULL, "also require cuda kernels for the ternary matmul, attention\n"
                                               "and RMSNorm (the receipt must come from --device cuda)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_verify_spec = {
    .name = "verify-receipt",
    .synopsis = "FILE [--require-gpu-kernels]",
    .about = "Checks a receipt from `bitnet bench --json`: schema 1.0.0, every required field with\n"
             "its type, compute_path \"real\", a non-empty kernel list consistent with the backend,\n"
             "positive finite figures, a 64-hex model sha256.\n",
    .arguments = true,
    .options = verify_table,
};

typedef struct verify_options {
    const char *path;
    bool require_gpu;
} verify_options;

static bn_cli_parse apply_verify(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                 bn_error *err) {
    (void)name;
    verify_options *o = state;
    if (!opt) {
        if (o->path) return bn_error_set(err, BN_ERR_INVALID, "one FILE only ('%s')", value), BN_CLI_BAD;
        o->path = value;
        return BN_CLI_CONSUMED;
    }
    if (opt->id != VERIFY_GPU) return BN_CLI_NOT_MINE;
    o->require_gpu = true;
    return BN_CLI_CONSUMED;
}

int bn_cmd_verify_receipt(int argc, char **argv, bn_error *err) {
    verify_options o = {0};
    int parsed = bn_cli_parse_command(&bn_verify_spec, apply_verify, &o, NULL, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.path) {
        bn_error_set(err, BN_ERR_INVALID, "FILE is required");
        return bn_cli_usage_error("verify-receipt", bn_verify_spec.synopsis, err);
    }
    const char *path = o.path;
    const bool require_gpu = o.require_gpu;
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
