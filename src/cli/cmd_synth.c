/*
 * cmd_synth.c: `bitnet synth OUT.gguf [--preset tiny|small|2b4t] [dimensions] [--seed S]
 * [--format i2_s|tq2_0|tq1_0] [--vocab-json tokenizer.json] [--byte-vocab]`: writes a synthetic
 * BitNet b1.58 model with seeded random weights in the official layout (model/synth.h).
 */
#include "cli/commands.h"
#include "model/synth.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet synth OUT.gguf [options]\n\n"
            "Writes a BitNet b1.58 model with seeded random weights in the layout of the official\n"
            "bitnet-b1.58-2B-4T file (F16 token_embd tied to the LM head, F32 norms, I2_S\n"
            "projections with a per-tensor scale, tokenizer metadata).\n\n"
            "options:\n"
            "  --preset NAME        tiny (default: 2 layers, dim 256), small (4 layers, dim 512),\n"
            "                       2b4t (the full 2B-4T shape, about 1.19 GB)\n"
            "  --layers N --dim N --ffn N --heads N --kv-heads N --vocab N --ctx N\n"
            "                       override the preset's dimensions\n"
            "  --seed S             random seed (default 1)\n"
            "  --format F           i2_s (bitnet-b1.58, default), tq2_0 or tq1_0 (llama.cpp's\n"
            "                       `bitnet` architecture with squared ReLU; same weights)\n"
            "  --vocab-json FILE    tokenizer metadata from a Hugging Face tokenizer.json\n"
            "  --byte-vocab         256 byte tokens + 3 merges + BOS/EOS/EOT (default), padded to\n"
            "                       --vocab with reserved special tokens\n"
            "  --omit-tensor NAME   leave one tensor out (to test loaders)\n"
            "  --help               show this help\n");
}

static bool parse_int(const char *s, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > (1L << 30)) return false;
    *out = (int)v;
    return true;
}

int bn_cmd_synth(int argc, char **argv, bn_error *err) {
    const char *path = NULL, *preset = "tiny";
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
    bn_synth_options o;
    if (bn_synth_preset(&o, preset, err) != BN_OK) return BN_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        int *field = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BN_EXIT_OK;
        } else if (!strcmp(a, "--preset") && has_value) {
            i++;
            continue;
        } else if (!strcmp(a, "--layers")) {
            field = &o.n_layers;
        } else if (!strcmp(a, "--dim")) {
            field = &o.dim;
        } else if (!strcmp(a, "--ffn")) {
            field = &o.ffn_dim;
        } else if (!strcmp(a, "--heads")) {
            field = &o.n_heads;
        } else if (!strcmp(a, "--kv-heads")) {
            field = &o.n_kv_heads;
        } else if (!strcmp(a, "--vocab")) {
            field = &o.n_vocab;
        } else if (!strcmp(a, "--ctx")) {
            field = &o.n_ctx;
        } else if (!strcmp(a, "--seed") && has_value) {
            char *end;
            errno = 0;
            o.seed = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i]) goto bad_value;
            continue;
        } else if (!strcmp(a, "--format") && has_value) {
            const char *f = argv[++i];
            if (!strcmp(f, "i2_s")) o.format = BN_TYPE_I2_S;
            else if (!strcmp(f, "tq2_0")) o.format = BN_TYPE_TQ2_0;
            else if (!strcmp(f, "tq1_0")) o.format = BN_TYPE_TQ1_0;
            else goto bad_value;
            continue;
        } else if (!strcmp(a, "--vocab-json") && has_value) {
            o.vocab_json = argv[++i];
            continue;
        } else if (!strcmp(a, "--byte-vocab")) {
            o.vocab_json = NULL;
            continue;
        } else if (!strcmp(a, "--omit-tensor") && has_value) {
            o.omit_tensor = argv[++i];
            continue;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "bitnet synth: unknown option or missing value '%s'\n", a);
            usage(stderr);
            return BN_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "bitnet synth: more than one output file given\n");
            return BN_EXIT_USAGE;
        } else {
            path = a;
            continue;
        }
        if (!has_value || !parse_int(argv[++i], field)) goto bad_value;
        continue;
    bad_value:
        fprintf(stderr, "bitnet synth: invalid or missing value for %s\n", a);
        return BN_EXIT_USAGE;
    }
    if (!path) {
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    if (bn_synth_validate(&o, err) != BN_OK) return BN_EXIT_USAGE;
    return bn_synth_write(path, &o, err) == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
