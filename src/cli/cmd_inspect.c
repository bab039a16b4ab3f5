/*
 * cmd_inspect.c: `bitnet inspect [FILE] [--json]`: validates a GGUF file and prints its header,
 * metadata, tensor table and totals (src/tools/gguf_inspect.c). An invalid file is an error
 * (exit 1) whose one-line message names the file, the field and the byte offset.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tools/gguf_inspect.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { INSPECT_JSON = 1 };

static const bn_cli_option inspect_table[] = {
    {INSPECT_JSON, "--json", NULL, "print the report as one JSON object", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_inspect_spec = {
    .name = "inspect",
    .synopsis = "[FILE | -m FILE] [--json]",
    .about = "Validates a GGUF file (versions 2 and 3) and prints its metadata (long arrays\n"
             "summarised: element type, length, first items), its tensor table (name, type,\n"
             "shape, bytes, file offset) and totals per tensor type. Sizes and offsets are\n"
             "decimal byte counts. Without FILE: the model -m names, else BITNET_MODEL, else the\n"
             "shipped model.\n",
    .notes = "exit status: 0 valid file, 1 invalid or unreadable file, 2 usage error\n",
    .arguments = true,
    .options = inspect_table,
    .common = BN_COMMON_MODEL,
};

typedef struct inspect_options {
    bn_cli_common common;
    const char *path;
    bool json;
} inspect_options;

static bn_cli_parse apply_inspect(void *state, const bn_cli_option *opt, const char *name, const char *value,
                                  bn_error *err) {
    (void)name;
    inspect_options *o = state;
    if (!opt) {
        if (o->path) return bn_error_set(err, BN_ERR_INVALID, "more than one FILE given ('%s')", value), BN_CLI_BAD;
        o->path = value;
        return BN_CLI_CONSUMED;
    }
    if (opt->id != INSPECT_JSON) return BN_CLI_NOT_MINE;
    o->json = true;
    return BN_CLI_CONSUMED;
}

int bn_cmd_inspect(int argc, char **argv, bn_error *err) {
    inspect_options o = {0};
    bn_cli_common_init(&o.common, "inspect");
    int parsed = bn_cli_parse_command(&bn_inspect_spec, apply_inspect, &o, &o.common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (o.path && o.common.model_path) {
        bn_error_set(err, BN_ERR_INVALID, "give FILE or -m, not both");
        return bn_cli_usage_error("inspect", bn_inspect_spec.synopsis, err);
    }
    char *path = NULL;
    if (bn_cli_resolve_model(&path, o.path ? o.path : o.common.model_path, err) != BN_OK) return BN_EXIT_ERROR;
    bn_gguf *gguf;
    bn_status st = bn_gguf_open(path, &gguf, err);
    free(path);
    if (st != BN_OK) return BN_EXIT_ERROR;
    st = o.json ? bn_gguf_inspect_json(stdout, gguf, err) : bn_gguf_inspect_text(stdout, gguf, err);
    bn_gguf_close(gguf);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
