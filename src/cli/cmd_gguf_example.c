/*
 * cmd_gguf_example.c: `bitnet gguf-example [--2b4t] OUT.gguf`: writes one of the project's own
 * example GGUF files (src/gguf/gguf_example.c): by default a small file with metadata of every
 * type and one tensor of every format; with --2b4t the exact tensor table of
 * microsoft/bitnet-b1.58-2B-4T, zero-filled and sparse (about 1.18 GB long, almost no disk).
 */
#include "cli/commands.h"
#include "cli/cli_options.h"
#include "gguf/gguf_example.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>


enum { EXAMPLE_2B4T = 1 };

static const bn_cli_option gguf_example_table[] = {
    {EXAMPLE_2B4T, "--2b4t", NULL, "write the 332-tensor table of bitnet-b1.58-2B-4T instead, with zero\ndata written as holes (a sparse file)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_gguf_example_spec = {
    .name = "gguf-example",
    .synopsis = "[--2b4t] OUT.gguf",
    .about = "Writes an example GGUF file: by default a small one with metadata of every type\n"
             "(including arrays of strings and nested arrays) and one tensor of each format\n"
             "(f32, f16, bf16, q8_0, tq1_0, tq2_0, i2_s).\n",
    .arguments = true,
    .options = gguf_example_table,
};

typedef struct example_options {
    const char *path;
    bool full;
} example_options;

static bn_cli_parse apply_example(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                  bn_error *err) {
    (void)name;
    example_options *o = state;
    if (!opt) {
        if (o->path) return bn_error_set(err, BN_ERR_INVALID, "unexpected argument '%s'", value), BN_CLI_BAD;
        o->path = value;
        return BN_CLI_CONSUMED;
    }
    if (opt->id != EXAMPLE_2B4T) return BN_CLI_NOT_MINE;
    o->full = true;
    return BN_CLI_CONSUMED;
}

int bn_cmd_gguf_example(int argc, char **argv, bn_error *err) {
    example_options o = {0};
    int parsed = bn_cli_parse_command(&bn_gguf_example_spec, apply_example, &o, NULL, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.path) {
        bn_error_set(err, BN_ERR_INVALID, "OUT.gguf is required");
        return bn_cli_usage_error("gguf-example", bn_gguf_example_spec.synopsis, err);
    }
    bn_status st = o.full ? bn_gguf_example_write_2b4t(o.path, err) : bn_gguf_example_write_small(o.path, err);
    if (st != BN_OK) return BN_EXIT_ERROR;
    printf("wrote %s\n", o.path);
    return BN_EXIT_OK;
}
