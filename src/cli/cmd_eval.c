/*
 * cmd_eval.c: `bitnet eval [-m MODEL] --tokens ID,ID,... --logits-out FILE [-t N]`: runs the token
 * ids as one sequence (no BOS added, no tokenizer) and writes the logits of every position as
 * little-endian float32, position-major (n_tokens x n_vocab). Other tools and the tests compare
 * these files against references, so the interface stays exactly this.
 *
 * The prompt goes through bn_model_decode() in steps of --step entries (default: all at once), so
 * one run can also show that the chunking of a prefill does not change the logits.
 *
 * --dump-dir DIR writes every intermediate result of one position (--dump-position, default 0)
 * as float32, one file per op in evaluation order, named as bitnet.cpp's graph names it, with an
 * index.tsv, so a comparison with bitnet.cpp's own dumps names the first op that differs.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "model/model.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* --dump-dir: the observer's state. */
typedef struct dump_state {
    const char *dir;
    int32_t position;
    int count;
    FILE *index;
    bool failed;
    char failure[4200];
} dump_state;

/* bn_tensor_observer: writes the row of the dumped position, if this chunk has it. */
static void dump_row(void *context, const char *name, const char *op, const float *rows,
                     const int32_t *pos, int n, int width) {
    dump_state *d = context;
    for (int i = 0; i < n && !d->failed; i++) {
        if (pos[i] != d->position) continue;
        char file[128], path[4096];
        snprintf(file, sizeof file, "%04d_%s.%s.f32", d->count, name, op);
        snprintf(path, sizeof path, "%s/%s", d->dir, file);
        FILE *f = fopen(path, "wb");
        bool ok = f && fwrite(rows + (size_t)i * (size_t)width, sizeof(float), (size_t)width, f) ==
                           (size_t)width;
        if (f && fclose(f) != 0) ok = false;
        if (!ok || fprintf(d->index, "%d\t%s\t%s\t%s\t%d\n", d->count, file, name, op, width) < 0) {
            snprintf(d->failure, sizeof d->failure, "%s: write failed: %s", path, strerror(errno));
            d->failed = true;
        }
        d->count++;
    }
}

enum { EVAL_TOKENS = 1, EVAL_OUT, EVAL_KV_F32, EVAL_INT8_HEAD, EVAL_UBATCH, EVAL_STEP, EVAL_DUMP_DIR,
       EVAL_DUMP_POSITION, EVAL_CTX };

static const bn_cli_option eval_table[] = {
    {EVAL_TOKENS, "--tokens", "LIST", "comma-separated token ids", 0, 0, NULL},
    {EVAL_OUT, "--logits-out", "FILE", "output file", 0, 0, NULL},
    {EVAL_KV_F32, "--kv-f32", NULL, "keep the KV cache in float32 (default float16; -ctk f32 too)", 0, 0, NULL},
    {EVAL_INT8_HEAD, "--int8-lm-head", NULL, "int8 LM head with per-row scales", 0, 0, NULL},
    {EVAL_UBATCH, "--ubatch", "N", NULL, BN_OPT_HIDDEN, 0, NULL}, /* the old spelling of -b */
    {EVAL_STEP, "--step", "N", "entries per bn_model_decode call (default: the batch size, fewer\n"
                              "when the logits of a step would pass 64 MB)", 0, 0, NULL},
    {EVAL_DUMP_DIR, "--dump-dir", "DIR", "write every intermediate result of one position to DIR\n"
                                        "(NNNN_<name>.<op>.f32, float32, and index.tsv: seq, file,\n"
                                        "name, op, width; names as in bitnet.cpp's graph); CPU only", 0, 0, NULL},
    {EVAL_DUMP_POSITION, "--dump-position", "P", "the position --dump-dir writes (default 0)", 0, 0, NULL},
    {EVAL_CTX, "--ctx", "N", NULL, BN_OPT_HIDDEN, 0, NULL}, /* the old spelling of -c */
    {0},
};

const bn_cli_spec bn_eval_spec = {
    .name = "eval",
    .synopsis = "[-m MODEL] --tokens ID,ID,... --logits-out FILE [options]",
    .about = "Runs the token ids as one sequence (no BOS is added) and writes the logits of every\n"
             "position as little-endian float32, position-major (n_tokens x n_vocab).\n",
    .notes = "-c defaults to the number of tokens here.\n",
    .options = eval_table,
    .common = BN_COMMON_LOAD,
};

typedef struct eval_options {
    bn_cli_common common;
    const char *tokens, *out_path;
    int step;
    dump_state dump;
} eval_options;

static bn_cli_parse apply_eval(void *state, const bn_cli_option *opt, const char *a, const char *v, bn_error *err) {
    eval_options *o = state;
    int p;
    switch (opt ? opt->id : 0) {
    case EVAL_TOKENS: o->tokens = v; break;
    case EVAL_OUT: o->out_path = v; break;
    case EVAL_KV_F32: o->common.kv_type_k = o->common.kv_type_v = BN_TYPE_F32; break;
    case EVAL_INT8_HEAD: o->common.int8_lm_head = true; break;
    case EVAL_UBATCH:
        if (!bn_cli_parse_int(v, 1, 1 << 20, &o->common.n_batch)) return bn_cli_bad_value(a, v, "an integer in 1..1048576", err);
        break;
    case EVAL_STEP:
        if (!bn_cli_parse_int(v, 1, INT_MAX, &o->step)) return bn_cli_bad_value(a, v, "an integer >= 1", err);
        break;
    case EVAL_DUMP_DIR: o->dump.dir = v; break;
    case EVAL_DUMP_POSITION:
        if (!bn_cli_parse_int(v, 0, INT_MAX, &p)) return bn_cli_bad_value(a, v, "an integer >= 0", err);
        o->dump.position = p;
        break;
    case EVAL_CTX:
        if (!bn_cli_parse_int(v, 1, 1 << 24, &o->common.n_ctx)) return bn_cli_bad_value(a, v, "an integer in 1..16777216", err);
        break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

int bn_cmd_eval(int argc, char **argv, bn_error *err) {
    eval_options o = {0};
    bn_cli_common_init(&o.common, "eval");
    int parsed = bn_cli_parse_command(&bn_eval_spec, apply_eval, &o, &o.common, NULL, argc, argv, err);
    if (parsed >= 0) return parsed;
    if (!o.tokens || !o.out_path) {
        bn_error_set(err, BN_ERR_INVALID, "--tokens and --logits-out are required");
        return bn_cli_usage_error("eval", bn_eval_spec.synopsis, err);
    }
    const char *out_path = o.out_path, *tokens_arg = o.tokens;
    const int ctx = o.common.n_ctx;
    int step = o.step;
    dump_state dump = o.dump;
    char *model_path = NULL;
    int32_t *ids = NULL;
    int n = 0;
    bn_model *model = NULL;
    bn_sequence *seq = NULL;
    bn_batch_entry *entries = NULL;
    float *logits = NULL;
    FILE *out = NULL;
    int rc = BN_EXIT_ERROR;
    if (bn_cli_parse_token_list(tokens_arg, &ids, &n, err) != BN_OK) goto done;
    if (bn_cli_load_model(&model, NULL, &model_path, &o.common, err) != BN_OK) goto done;
    if (bn_sequence_create(model, ctx ? ctx : n, &seq, err) != BN_OK) goto done;
    if (dump.dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/index.tsv", dump.dir);
        dump.index = fopen(path, "w");
        if (!dump.index) {
            bn_error_set(err, BN_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
            goto done;
        }
        fprintf(dump.index, "seq\tfile\tname\top\twidth\n");
        if (bn_model_set_observer(model, dump_row, &dump, err) != BN_OK) goto done;
    }
    const int n_vocab = bn_model_get_config(model)->n_vocab;
    /* Logits go out one decode call at a time, so memory stays at step x n_vocab floats. */
    if (step == 0) { /* one ubatch per call, but at most 64 MB of logits at a time */
        step = bn_model_get_options(model)->ubatch;
        int cap = (16 << 20) / n_vocab;
        if (step > cap) step = cap > 0 ? cap : 1;
    }
    if (step > n) step = n;
    entries = malloc((size_t)step * sizeof *entries);
    logits = malloc((size_t)step * (size_t)n_vocab * sizeof *logits);
    if (!entries || !logits) {
        bn_error_set(err, BN_ERR_NOMEM, "out of memory for %d x %d logits", step, n_vocab);
        goto done;
    }
    out = fopen(out_path, "wb");
    if (!out) {
        bn_error_set(err, BN_ERR_IO, "%s: cannot open for writing: %s", out_path, strerror(errno));
        goto done;
    }
    for (int begin = 0; begin < n; begin += step) {
        int count = n - begin < step ? n - begin : step;
        for (int i = 0; i < count; i++)
            entries[i] = (bn_batch_entry){seq, begin + i, ids[begin + i], true};
        if (bn_model_decode(model, entries, count, logits, err) != BN_OK) goto done;
        if (dump.failed) {
            bn_error_set(err, BN_ERR_IO, "%s", dump.failure);
            goto done;
        }
        /* float32 little-endian: the host order on every platform this builds for */
        if (fwrite(logits, sizeof *logits, (size_t)count * (size_t)n_vocab, out) !=
            (size_t)count * (size_t)n_vocab) {
            bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", out_path, strerror(errno));
            goto done;
        }
    }
    if (fclose(out) != 0) {
        out = NULL;
        bn_error_set(err, BN_ERR_IO, "%s: write failed: %s", out_path, strerror(errno));
        goto done;
    }
    out = NULL;
    if (dump.index) {
        int close_rc = fclose(dump.index);
        dump.index = NULL;
        if (close_rc != 0) {
            bn_error_set(err, BN_ERR_IO, "%s/index.tsv: write failed: %s", dump.dir, strerror(errno));
            goto done;
        }
    }
    rc = BN_EXIT_OK;
done:
    if (out) fclose(out);
    if (dump.index) fclose(dump.index);
    free(logits);
    free(entries);
    bn_sequence_free(seq);
    bn_model_free(model);
    free(model_path);
    free(ids);
    return rc;
}
