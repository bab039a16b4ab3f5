/*
 * cmd_gguf_example.c: `bitnet gguf-example [--2b4t] OUT.gguf`: writes one of the project's own
 * example GGUF files (src/gguf/gguf_example.c): by default a small file with metadata of every
 * type and one tensor of every format; with --2b4t the exact tensor table of
 * microsoft/bitnet-b1.58-2B-4T, zero-filled and sparse (about 1.18 GB long, almost no disk).
 */
#include "cli/commands.h"
#include "gguf/gguf_example.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet gguf-example [--2b4t] OUT.gguf\n\n"
            "Writes an example GGUF file: by default a small one with metadata of every type\n"
            "(including arrays of strings and nested arrays) and one tensor of each format\n"
            "(f32, f16, bf16, q8_0, tq1_0, tq2_0, i2_s).\n\n"
            "options:\n"
            "  --2b4t     write the 332-tensor table of bitnet-b1.58-2B-4T instead, with zero\n"
            "             data written as holes (a sparse file)\n"
            "  --help     show this help\n");
}

int bn_cmd_gguf_example(int argc, char **argv, bn_error *err) {
    const char *path = NULL;
    bool full = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(argv[i], "--2b4t")) {
            full = true;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "bitnet gguf-example: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return BN_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    bn_status st = full ? bn_gguf_example_write_2b4t(path, err) : bn_gguf_example_write_small(path, err);
    if (st != BN_OK) return BN_EXIT_ERROR;
    printf("wrote %s\n", path);
    return BN_EXIT_OK;
}
