/*
 * cmd_convert.c: `bitnet convert HF_DIR OUT.gguf [--type i2_s|tq2_0|tq1_0] [--embd-type T]
 * [--head-type T] [--pre NAME] [--name TEXT] [--no-progress]`: a Hugging Face BitNet b1.58
 * checkpoint (safetensors) to one GGUF file (convert/convert.h).
 *
 * Output: what was found (class, GGUF architecture, weight flavour, tokenizer) on stdout before
 * the work starts, progress on stderr (tensor n of N, megabytes, rate: redrawn on a terminal, a
 * line per tenth of the bytes otherwise, nothing in the first second), and a table per tensor
 * type at the end. An interrupt
 * (SIGINT, SIGTERM, SIGHUP) removes the temporary file; OUT.gguf appears only when complete.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "convert/convert.h"
#include "model/synth.h"
#include "quant/quant_format.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { CONVERT_TYPE = 1, CONVERT_EMBD_TYPE, CONVERT_HEAD_TYPE, CONVERT_PRE, CONVERT_NAME, CONVERT_NO_PROGRESS };

#define FLOAT_TYPES "f32|f16|bf16|q8_0|q6_k|q4_k"

static const bn_cli_option convert_table[] = {
    {CONVERT_TYPE, "--type", "T", "the ternary projections: i2_s (default: bitnet.cpp's, one scale per\n"
                                 "tensor, rows a multiple of 128), tq2_0 or tq1_0 (llama.cpp's, fp16\n"
                                 "scale per 256-weight block, rows a multiple of 256)", 0, 0, "i2_s|tq2_0|tq1_0"},
    {CONVERT_EMBD_TYPE, "--embd-type", "T", "token_embd: f16 (default), f32, bf16, q8_0, q6_k or q4_k; also\n"
                                           "the LM head of a tied model (the two BitNet classes)", 0, 0, FLOAT_TYPES},
    {CONVERT_HEAD_TYPE, "--head-type", "T", "output.weight of an untied model (llama: Falcon3, Llama3-8B-1.58):\n"
                                           "the same types, default f16", 0, 0, FLOAT_TYPES},
    {CONVERT_PRE, "--pre", "NAME", "tokenizer.ggml.pre to write (byte-level BPE only): llama-bpe,\n"
                                  "llama3, falcon3, gpt2, ... without looking at tokenizer.json's\n"
                                  "pre_tokenizer (default: from it: llama-bpe for the LLaMA-3\n"
                                  "split, gpt2 for GPT-2's, any other refused)", 0, 0, NULL},
    {CONVERT_NAME, "--name", "TEXT", "general.name (default: the checkpoint folder's name)", 0, 0, NULL},
    {CONVERT_NO_PROGRESS, "--no-progress", NULL, "no progress lines on stderr", 0, 0, NULL},
    {0},
};

const bn_cli_spec bn_convert_spec = {
    .name = "convert",
    .synopsis = "HF_DIR OUT.gguf [options]",
    .about =
        "Converts a Hugging Face BitNet b1.58 checkpoint folder (config.json, model.safetensors or\n"
        "shards with model.safetensors.index.json, tokenizer.json or else a SentencePiece\n"
        "tokenizer.model; tokenizer_config.json and generation_config.json when present) into one\n"
        "GGUF file for run, chat and serve.\n"
        "\n"
        "Classes: BitNetForCausalLM (microsoft/bitnet-b1.58-2B-4T, -bf16) -> bitnet-b1.58;\n"
        "BitnetForCausalLM (1bitLLM bitnet_b1_58-*) -> bitnet; LlamaForCausalLM with a bitnet\n"
        "quantization_config (Falcon3-*-1.58bit, Falcon-E, Llama3-8B-1.58) -> llama, q/k rows\n"
        "permuted for its RoPE. Weights: packed U8 ternary with a per-tensor weight_scale (W = t *\n"
        "scale for linear_class autobitlinear, t / scale otherwise), or full-precision masters\n"
        "ternarized per tensor with absmean (quantization_mode online, 1bitLLM).\n"
        "\n"
        "The conversion streams one tensor at a time (memory stays far below the model), writes\n"
        "OUT.gguf.tmp-XXXXXX and renames it when complete, and gives byte-identical output for the\n"
        "same input. Exit status 1 on any problem with the input (one line naming the file or\n"
        "tensor), 2 on bad options.\n",
    .notes = "Example: bitnet convert ~/models/bitnet-b1.58-2B-4T bitnet-2b.gguf && bitnet chat -m bitnet-2b.gguf\n",
    .arguments = true,
    .options = convert_table,
};

typedef struct convert_cli {
    const char *dir, *out, *pre, *name;
    uint32_t type, embd_type, head_type;
    bool head_type_given, progress;
    int n_args;
} convert_cli;

static bn_cli_parse apply_convert(void *state, const bn_cli_option *opt, const char *a, const char *v, bn_error *err) {
    convert_cli *o = state;
    if (!opt) {
        if (o->n_args == 2) return bn_error_set(err, BN_ERR_INVALID, "unexpected argument '%s'", v), BN_CLI_BAD;
        *(o->n_args++ == 0 ? &o->dir : &o->out) = v;
        return BN_CLI_CONSUMED;
    }
    switch (opt->id) {
    case CONVERT_TYPE:
        if (!strcmp(v, "i2_s")) o->type = BN_TYPE_I2_S;
        else if (!strcmp(v, "tq2_0")) o->type = BN_TYPE_TQ2_0;
        else if (!strcmp(v, "tq1_0")) o->type = BN_TYPE_TQ1_0;
        else return bn_cli_bad_value(a, v, "i2_s, tq2_0 or tq1_0", err);
        break;
    case CONVERT_EMBD_TYPE:
    case CONVERT_HEAD_TYPE: {
        uint32_t t;
        if (!bn_synth_float_type_from_name(v, &t)) return bn_cli_bad_value(a, v, "f32, f16, bf16, q8_0, q6_k or q4_k", err);
        if (opt->id == CONVERT_EMBD_TYPE) o->embd_type = t;
        else o->head_type = t, o->head_type_given = true;
        break;
    }
    case CONVERT_PRE: o->pre = v; break;
    case CONVERT_NAME: o->name = v; break;
    case CONVERT_NO_PROGRESS: o->progress = false; break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- progress ---- */

typedef struct progress_state {
    bool live;      /* stderr is a terminal: one line redrawn */
    double started;
    int tenths;     /* tenths of the bytes reported so far (log mode) */
} progress_state;

static void on_tensor(void *user, size_t done, size_t total, const char *name, uint64_t bytes_done,
                      uint64_t bytes_total) {
    progress_state *p = user;
    const double elapsed = now_seconds() - p->started;
    const double mb = (double)bytes_done / 1e6, rate = elapsed > 0 ? mb / elapsed : 0.0;
    if (p->live) {
        fprintf(stderr, "\r\033[Kbitnet convert: tensor %zu/%zu %s  %.1f/%.1f MB  %.1f MB/s", done, total, name, mb,
                (double)bytes_total / 1e6, rate);
        if (done == total) fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    const int tenths = bytes_total ? (int)(10 * bytes_done / bytes_total) : 10;
    if ((tenths == p->tenths && done != total) || elapsed < 1.0) return; /* quick work prints nothing */
    p->tenths = tenths;
    fprintf(stderr, "bitnet convert: tensor %zu/%zu (%s), %.1f/%.1f MB, %.1f MB/s\n", done, total, name, mb,
            (double)bytes_total / 1e6, rate);
}

/* ---- removing the temporary file on a signal ---- */

static const bn_convert *volatile interrupted_conversion;

static void on_signal(int sig) {
    const bn_convert *c = interrupted_conversion;
    if (c) {
        const char *tmp = bn_convert_temp_path(c);
        if (tmp[0]) {
            char writer_tmp[4200]; /* the GGUF writer's own temporary file beside it */
            size_t n = strlen(tmp);
            if (n + 5 < sizeof writer_tmp) {
                memcpy(writer_tmp, tmp, n);
                memcpy(writer_tmp + n, ".tmp", 5);
                unlink(writer_tmp);
            }
            unlink(tmp);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- output ---- */

static void print_plan(const char *dir, const char *out, const bn_convert_info *info) {
    printf("bitnet convert: %s -> %s\n", dir, out);
    printf("  class        %s -> GGUF architecture %s%s\n", info->hf_class, info->arch,
           info->permuted ? " (q/k rows permuted for NORM RoPE)" : "");
    printf("  weights      %s\n", info->flavour);
    printf("  head         %s\n", info->tied ? "tied to token_embd" : "output.weight (untied)");
    printf("  tokenizer    %s (%s), %u tokens%s%s",
           !strcmp(info->tokenizer, "llama") ? "SentencePiece" : "byte-level BPE", info->vocab_file, info->n_tokens,
           info->pre ? ", pre " : "", info->pre ? info->pre : "");
    if (info->n_vocab > info->n_tokens) printf(" (padded to %u)", info->n_vocab);
    printf(", bos %d, eos %d, eot %d, chat template %s\n", info->bos, info->eos, info->eot,
           info->chat_template ? "yes" : "no");
    printf("  input        %zu safetensors file(s), %.1f MB of tensors\n", info->n_files,
           (double)info->input_bytes / 1e6);
    fflush(stdout);
}

static void print_summary(const bn_convert *c, double seconds) {
    const bn_convert_info *info = bn_convert_get_info(c);
    enum { MAX_TYPES = 16 };
    typedef struct type_row {
        uint32_t type;
        size_t tensors;
        uint64_t elements, bytes;
    } type_row;
    type_row rows[MAX_TYPES];
    int n_rows = 0;
    for (size_t i = 0; i < info->n_tensors; i++) {
        const bn_convert_tensor t = bn_convert_tensor_at(c, i);
        int r = 0;
        while (r < n_rows && rows[r].type != t.type) r++;
        if (r == n_rows) {
            if (n_rows == MAX_TYPES) continue;
            rows[n_rows++] = (type_row){t.type, 0, 0, 0};
        }
        rows[r].tensors++;
        rows[r].elements += t.ne[0] * t.ne[1];
        rows[r].bytes += t.bytes;
    }
    printf("\n  %-8s %8s %16s %14s\n", "type", "tensors", "elements", "MB");
    for (int r = 0; r < n_rows; r++) {
        const bn_quant_format *f = bn_quant_format_get(rows[r].type);
        printf("  %-8s %8zu %16llu %14.2f\n", f ? f->name : "?", rows[r].tensors, (unsigned long long)rows[r].elements,
               (double)rows[r].bytes / 1e6);
    }
    printf("  %-8s %8zu %16s %14.2f\n", "total", info->n_tensors, "", (double)info->output_bytes / 1e6);
    printf("\nwrote %zu tensors in %.1f s (%.1f MB/s)\n", info->n_tensors, seconds,
           seconds > 0 ? (double)info->output_bytes / 1e6 / seconds : 0.0);
}

int bn_cmd_convert(int argc, char **argv, bn_error *err) {
    convert_cli o = {.type = BN_TYPE_I2_S, .embd_type = BN_TYPE_F16, .head_type = BN_TYPE_F16, .progress = true};
    int parsed = bn_cli_parse_command(&bn_convert_spec, apply_convert, &o, NULL, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (o.n_args != 2) {
        bn_error_set(err, BN_ERR_INVALID, "HF_DIR and OUT.gguf are required");
        return bn_cli_usage_error("convert", bn_convert_spec.synopsis, err);
    }
    bn_convert_options options;
    bn_convert_options_init(&options);
    options.type = o.type, options.embd_type = o.embd_type, options.head_type = o.head_type;
    options.pre = o.pre, options.name = o.name;
    progress_state progress = {.live = isatty(STDERR_FILENO) != 0, .tenths = -1};
    if (o.progress) options.progress = on_tensor, options.progress_user = &progress;

    bn_convert *c = NULL;
    if (bn_convert_open(&c, o.dir, &options, err) != BN_OK)
        return err->code == BN_ERR_INVALID ? BN_EXIT_USAGE : BN_EXIT_ERROR;
    const bn_convert_info *info = bn_convert_get_info(c);
    print_plan(o.dir, o.out, info);
    if (o.head_type_given && info->tied)
        fprintf(stderr, "bitnet convert: note: the model is tied (token_embd is the head): --head-type is not used, "
                        "--embd-type sets the head's type\n");

    interrupted_conversion = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    progress.started = now_seconds();
    bn_status st = bn_convert_write(c, o.out, err);
    const double seconds = now_seconds() - progress.started;
    interrupted_conversion = NULL;
    if (progress.live && st != BN_OK) fputc('\n', stderr);
    if (st == BN_OK) print_summary(c, seconds);
    bn_convert_close(c);
    return st == BN_OK ? BN_EXIT_OK : BN_EXIT_ERROR;
}
