/*
 * cmd_synth.c: `bitnet synth OUT.gguf [--preset NAME] [dimensions] [--seed S]
 * [--arch llama|bitnet|bitnet-b1.58] [--format i2_s|tq2_0|tq1_0] [--embd-type T] [--head-type T]
 * [--head-dim N] [--activation relu2|silu] [--proj-scales] [--rope-freqs]
 * [--vocab-json tokenizer.json] [--byte-vocab] [--name TEXT] [--chat-template NAME|--chat-template-file
 * FILE]`: writes a synthetic ternary model with seeded random weights in the layout of the files
 * people run (model/synth.h).
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "model/synth.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum { SYNTH_PRESET = 1, SYNTH_LAYERS, SYNTH_DIM, SYNTH_FFN, SYNTH_HEADS, SYNTH_KV_HEADS, SYNTH_HEAD_DIM, SYNTH_VOCAB,
       SYNTH_CTX, SYNTH_SEED, SYNTH_ARCH, SYNTH_FORMAT, SYNTH_EMBD_TYPE, SYNTH_HEAD_TYPE, SYNTH_ACTIVATION,
       SYNTH_PROJ_SCALES, SYNTH_ROPE_FREQS, SYNTH_VOCAB_JSON, SYNTH_BYTE_VOCAB, SYNTH_NAME, SYNTH_CHAT_TEMPLATE,
       SYNTH_CHAT_TEMPLATE_FILE, SYNTH_OMIT, SYNTH_NO_PROGRESS };

#define MAX_TEMPLATE_BYTES (1u << 20)

#define FLOAT_TYPES "f32|f16|bf16|q8_0|q6_k|q4_k"

static const bn_cli_option synth_table[] = {
    {SYNTH_PRESET, "--preset", "NAME", "tiny (default: 2 layers, dim 256), small (4 layers, dim 512),\n"
                                      "2b4t (the full 2B-4T shape, about 1.19 GB); at real shapes, with\n"
                                      "the byte vocabulary padded to the real size: falcon3-1b and\n"
                                      "falcon3-3b (llama, head size 256), llama3-8b (llama), bitnet-large\n"
                                      "(bitnet with SiLU: 1bitLLM bitnet_b1_58-large)", 0, 0,
     "tiny|small|2b4t|falcon3-1b|falcon3-3b|llama3-8b|bitnet-large"},
    {SYNTH_LAYERS, "--layers", "N", "layers (overrides the preset's; so do the options down to --ctx)", 0, 0, NULL},
    {SYNTH_DIM, "--dim", "N", "hidden size", 0, 0, NULL},
    {SYNTH_FFN, "--ffn", "N", "feed-forward size", 0, 0, NULL},
    {SYNTH_HEADS, "--heads", "N", "attention heads", 0, 0, NULL},
    {SYNTH_KV_HEADS, "--kv-heads", "N", "key/value heads", 0, 0, NULL},
    {SYNTH_HEAD_DIM, "--head-dim", "N", "head size (0: dim / heads; falcon3 presets: 256); when it is not\n"
                                       "dim / heads (llama only) the file gets attention.key_length and\n"
                                       "value_length", 0, 0, NULL},
    {SYNTH_VOCAB, "--vocab", "N", "vocabulary size", 0, 0, NULL},
    {SYNTH_CTX, "--ctx", "N", "training context written to the file", 0, 0, NULL},
    {SYNTH_SEED, "--seed|-s", "S", "random seed (default 1)", 0, 0, NULL},
    {SYNTH_ARCH, "--arch", "A", "bitnet-b1.58 (sub-norms, squared ReLU, token_embd is the head),\n"
                               "bitnet (llama.cpp's: sub-norms, hidden_activation key) or llama\n"
                               "(no sub-norms, SiLU); default: the preset's, else bitnet-b1.58\n"
                               "for i2_s and bitnet for tq2_0 / tq1_0", 0, 0, "bitnet-b1.58|bitnet|llama"},
    {SYNTH_FORMAT, "--format", "F", "projections: i2_s (default), tq2_0 or tq1_0 (same weights)", 0, 0,
     "i2_s|tq2_0|tq1_0"},
    {SYNTH_EMBD_TYPE, "--embd-type", "T", "token_embd type: f32, f16 (default), bf16, q8_0 (dim a multiple\n"
                                         "of 32), q6_k or q4_k (of 256)", 0, 0, FLOAT_TYPES},
    {SYNTH_HEAD_TYPE, "--head-type", "T", "write a separate output.weight of type T (same types); default:\n"
                                         "none, the head is tied to token_embd (bitnet-b1.58 ignores it)", 0, 0,
     FLOAT_TYPES},
    {SYNTH_ACTIVATION, "--activation", "NAME", "FFN activation, relu2 or silu: bitnet-b1.58 takes only relu2,\n"
                                              "llama only silu; bitnet writes it as hidden_activation\n"
                                              "(default relu2; bitnet-large preset: silu)", 0, 0, "relu2|silu"},
    {SYNTH_PROJ_SCALES, "--proj-scales", NULL, "bitnet: F32 {1} blk.N.<proj>.scale tensors in [0.5, 2]", 0, 0, NULL},
    {SYNTH_ROPE_FREQS, "--rope-freqs", NULL, "llama: F32 rope_freqs.weight, head size / 2 values in [1, 8]", 0, 0, NULL},
    {SYNTH_VOCAB_JSON, "--vocab-json", "FILE", "tokenizer metadata from a Hugging Face tokenizer.json", 0, 0, NULL},
    {SYNTH_BYTE_VOCAB, "--byte-vocab", NULL, "256 byte tokens + 3 merges + BOS/EOS/EOT (default), padded to\n"
                                            "--vocab with reserved special tokens", 0, 0, NULL},
    {SYNTH_NAME, "--name", "TEXT", "general.name (default synthetic-bitnet, or synthetic-llama for\n"
                                  "llama); a name containing Instruct makes a file without a chat\n"
                                  "template chat in its family's format (docs/CHAT_FORMATS.md)", 0, 0, NULL},
    {SYNTH_CHAT_TEMPLATE, "--chat-template", "NAME", "tokenizer.chat_template in a family's style, carrying the\n"
                                                    "marker its format is detected by: bitnet, llama3, chatml,\n"
                                                    "falcon3 (Falcon3-Instruct's lines, assistant turns closed by\n"
                                                    "</s>), or none (no template); default bitnet for\n"
                                                    "bitnet-b1.58 (as the official file), none otherwise", 0, 0,
     "bitnet|llama3|chatml|falcon3|none"},
    {SYNTH_CHAT_TEMPLATE_FILE, "--chat-template-file", "FILE", "tokenizer.chat_template: the text of FILE as it is", 0,
     0, NULL},
    {SYNTH_OMIT, "--omit-tensor", "NAME", "leave one tensor out (to test loaders)", 0, 0, NULL},
    {SYNTH_NO_PROGRESS, "--no-progress", NULL, "no progress on stderr (see the common options of `bitnet run`)", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_synth_spec = {
    .name = "synth",
    .synopsis = "OUT.gguf [options]",
    .about = "Writes a ternary model with seeded random weights in the layout of the files people run:\n"
             "by default the official bitnet-b1.58-2B-4T one (F16 token_embd tied to the LM head, F32\n"
             "norms, I2_S projections with a per-tensor scale, tokenizer metadata); also llama.cpp's\n"
             "`bitnet` and `llama` architectures, TQ2_0 / TQ1_0 projections, and embeddings and heads\n"
             "in F32, BF16, Q8_0, Q6_K or Q4_K. Invalid combinations exit with status 2.\n",
    .arguments = true,
    .options = synth_table,
};

#define N_DIMENSIONS 8

typedef struct synth_cli {
    const char *path, *preset, *format, *vocab_json, *omit, *name, *chat_template, *chat_template_file;
    bool byte_vocab, seed_given, progress, arch_given, proj_scales, rope_freqs;
    bn_synth_arch arch;
    bn_synth_activation activation;
    uint32_t embd_type;
    int32_t head_type;
    uint64_t seed;
    int dims[N_DIMENSIONS]; /* --layers .. --ctx; -1: the preset's */
} synth_cli;

static bn_cli_parse apply_synth(void *state, const bn_cli_option *opt, const char *a, const char *v, bn_error *err) {
    synth_cli *o = state;
    if (!opt) {
        if (o->path) return bn_error_set(err, BN_ERR_INVALID, "more than one output file given ('%s')", v), BN_CLI_BAD;
        o->path = v;
        return BN_CLI_CONSUMED;
    }
    if (opt->id >= SYNTH_LAYERS && opt->id <= SYNTH_CTX) {
        if (!bn_cli_parse_int(v, 0, 1 << 30, &o->dims[opt->id - SYNTH_LAYERS]))
            return bn_cli_bad_value(a, v, "an integer in 0..1073741824", err);
        return BN_CLI_CONSUMED;
    }
    switch (opt->id) {
    case SYNTH_PRESET: o->preset = v; break;
    case SYNTH_SEED: {
        char *end;
        errno = 0;
        o->seed = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-') return bn_cli_bad_value(a, v, "an integer >= 0", err);
        o->seed_given = true;
        break;
    }
    case SYNTH_ARCH:
        if (!bn_synth_arch_from_name(v, &o->arch)) return bn_cli_bad_value(a, v, "bitnet-b1.58, bitnet or llama", err);
        o->arch_given = true;
        break;
    case SYNTH_FORMAT:
        if (strcmp(v, "i2_s") && strcmp(v, "tq2_0") && strcmp(v, "tq1_0")) return bn_cli_bad_value(a, v, "i2_s, tq2_0 or tq1_0", err);
        o->format = v;
        break;
    case SYNTH_EMBD_TYPE:
        if (!bn_synth_float_type_from_name(v, &o->embd_type))
            return bn_cli_bad_value(a, v, "f32, f16, bf16, q8_0, q6_k or q4_k", err);
        break;
    case SYNTH_HEAD_TYPE: {
        uint32_t type;
        if (!bn_synth_float_type_from_name(v, &type)) return bn_cli_bad_value(a, v, "f32, f16, bf16, q8_0, q6_k or q4_k", err);
        o->head_type = (int32_t)type;
        break;
    }
    case SYNTH_ACTIVATION:
        if (!strcmp(v, "relu2")) o->activation = BN_SYNTH_ACT_RELU2;
        else if (!strcmp(v, "silu")) o->activation = BN_SYNTH_ACT_SILU;
        else return bn_cli_bad_value(a, v, "relu2 or silu", err);
        break;
    case SYNTH_PROJ_SCALES: o->proj_scales = true; break;
    case SYNTH_ROPE_FREQS: o->rope_freqs = true; break;
    case SYNTH_VOCAB_JSON: o->vocab_json = v, o->byte_vocab = false; break;
    case SYNTH_BYTE_VOCAB: o->vocab_json = NULL, o->byte_vocab = true; break;
    case SYNTH_NAME: o->name = v; break;
    case SYNTH_CHAT_TEMPLATE:
        if (strcmp(v, "none") && !bn_synth_chat_template(v))
            return bn_cli_bad_value(a, v, "bitnet, llama3, chatml, falcon3 or none", err);
        o->chat_template = v, o->chat_template_file = NULL;
        break;
    case SYNTH_CHAT_TEMPLATE_FILE: o->chat_template_file = v, o->chat_template = NULL; break;
    case SYNTH_OMIT: o->omit = v; break;
    case SYNTH_NO_PROGRESS: o->progress = false; break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

static void on_tensor(void *user, uint64_t done, uint64_t total) { bn_progress_update(user, done, total); }

int bn_cmd_synth(int argc, char **argv, bn_error *err) {
    synth_cli c = {.preset = "tiny", .progress = true, .embd_type = UINT32_MAX, .head_type = BN_SYNTH_TIED};
    for (int i = 0; i < N_DIMENSIONS; i++) c.dims[i] = -1;
    int parsed = bn_cli_parse_command(&bn_synth_spec, apply_synth, &c, NULL, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!c.path) {
        bn_error_set(err, BN_ERR_INVALID, "OUT.gguf is required");
        return bn_cli_usage_error("synth", bn_synth_spec.synopsis, err);
    }
    bn_synth_options o;
    if (bn_synth_preset(&o, c.preset, err) != BN_OK) return bn_cli_usage_error("synth", bn_synth_spec.synopsis, err);
    int *fields[N_DIMENSIONS] = {&o.n_layers, &o.dim, &o.ffn_dim, &o.n_heads, &o.n_kv_heads, &o.head_dim, &o.n_vocab, &o.n_ctx};
    for (int i = 0; i < N_DIMENSIONS; i++)
        if (c.dims[i] >= 0) *fields[i] = c.dims[i];
    if (c.seed_given) o.seed = c.seed;
    if (c.arch_given) o.arch = c.arch;
    if (c.format) o.format = !strcmp(c.format, "tq2_0") ? BN_TYPE_TQ2_0 : !strcmp(c.format, "tq1_0") ? BN_TYPE_TQ1_0 : BN_TYPE_I2_S;
    if (c.embd_type != UINT32_MAX) o.embd_type = c.embd_type;
    if (c.head_type != BN_SYNTH_TIED) o.head_type = c.head_type;
    if (c.activation != BN_SYNTH_ACT_DEFAULT) o.activation = c.activation;
    o.proj_scales = c.proj_scales;
    o.rope_freqs = c.rope_freqs;
    if (c.vocab_json || c.byte_vocab) o.vocab_json = c.vocab_json;
    o.omit_tensor = c.omit;
    o.name = c.name;
    if (c.chat_template)
        o.chat_template = strcmp(c.chat_template, "none") ? bn_synth_chat_template(c.chat_template) : "";
    char *template_text = NULL;
    if (c.chat_template_file) {
        size_t len = 0;
        if (bn_cli_read_file(&template_text, &len, c.chat_template_file, MAX_TEMPLATE_BYTES, err) != BN_OK)
            return BN_EXIT_ERROR;
        if (len == 0 || strlen(template_text) != len) {
            free(template_text);
            bn_error_set(err, BN_ERR_INVALID, "%s: a chat template must be non-empty text without NUL bytes",
                         c.chat_template_file);
            return BN_EXIT_USAGE;
        }
        o.chat_template = template_text;
    }
    if (bn_synth_validate(&o, err) != BN_OK) {
        free(template_text);
        return BN_EXIT_USAGE;
    }
    bn_progress progress;
    bn_progress_init(&progress, "synth", c.progress);
    bn_progress_begin(&progress, "writing", "tensors");
    o.progress = on_tensor;
    o.progress_user = &progress;
    bn_status st = bn_synth_write(c.path, &o, err);
    bn_progress_end(&progress);
    free(template_text);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
