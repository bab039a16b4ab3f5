/*
 * cmd_inspect.c: `bitnet inspect FILE [--json]`: validates a GGUF file and prints its header,
 * metadata, tensor table and totals (src/tools/gguf_inspect.c). An invalid file is an error
 * (exit 1) whose one-line message names the file, the field and the byte offset.
 */
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tools/gguf_inspect.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet inspect FILE [--json]\n\n"
            "Validates a GGUF file (versions 2 and 3) and prints its metadata (long arrays\n"
            "summarised: element type, length, first items), its tensor table (name, type,\n"
            "shape, bytes, file offset) and totals per tensor type. Sizes and offsets are\n"
            "decimal byte counts.\n\n"
            "options:\n"
            "  --json     print the report as one JSON object\n"
            "  --help     show this help\n\n"
            "exit status: 0 valid file, 1 invalid or unreadable file, 2 usage error\n");
}

int bn_cmd_inspect(int argc, char **argv, bn_error *err) {
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "bitnet inspect: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return BN_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "bitnet inspect: more than one FILE given\n");
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
    bn_gguf *gguf;
    if (bn_gguf_open(path, &gguf, err) != BN_OK) return BN_EXIT_ERROR;
    bn_status st = json ? bn_gguf_inspect_json(stdout, gguf, err) : bn_gguf_inspect_text(stdout, gguf, err);
    bn_gguf_close(gguf);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
