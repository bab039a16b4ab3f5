/*
 * cmd_eval.c: `bitnet eval -m MODEL --tokens ID,ID,... --logits-out FILE [-t N]`: runs the token
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

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet eval -m MODEL --tokens ID,ID,... --logits-out FILE [options]\n\n"
            "Runs the token ids as one sequence (no BOS is added) and writes the logits of every\n"
            "position as little-endian float32, position-major (n_tokens x n_vocab).\n\n"
            "options:\n"
            "  -m, --model FILE     GGUF model\n"
            "  --tokens LIST        comma-separated token ids\n"
            "  --logits-out FILE    output file\n"
            "  -t, --threads N      threads (default 1)\n"
            "  --isa NAME           kernel path: scalar, avx2, avx512 (default: BITNET_ISA, else the best supported)\n"
            "  --device NAME        cpu (default) or cuda (GPU 0)\n"
            "  --kv-f32             keep the KV cache in float32 (default float16)\n"
            "  --int8-lm-head       int8 LM head with per-row scales\n"
            "  --ubatch N           tokens per internal forward chunk (default 512)\n"
            "  --step N             entries per bn_model_decode call (default: the ubatch, fewer\n"
            "                       when the logits of a step would pass 64 MB)\n"
            "  --ctx N              sequence capacity (default: the number of tokens)\n"
            "  --dump-dir DIR       write every intermediate result of one position to DIR\n"
            "                       (NNNN_<name>.<op>.f32, float32, and index.tsv: seq, file,\n"
            "                       name, op, width; names as in bitnet.cpp's graph); CPU only\n"
            "  --dump-position P    the position --dump-dir writes (default 0)\n"
            "  --help               show this help\n");
}

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

int bn_cmd_eval(int argc, char **argv, bn_error *err) {
    const char *model_path = NULL, *tokens_arg = NULL, *out_path = NULL, *isa = NULL;
    bn_model_options options = bn_model_options_default();
    int step = 0, ctx = 0;
    dump_state dump = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BN_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_value) {
            model_path = argv[++i];
        } else if (!strcmp(a, "--tokens") && has_value) {
            tokens_arg = argv[++i];
        } else if (!strcmp(a, "--logits-out") && has_value) {
            out_path = argv[++i];
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has_value) {
            if (!bn_cli_parse_int(argv[++i], 1, 1024, &options.n_threads)) goto bad_value;
        } else if (!strcmp(a, "--isa") && has_value) {
            isa = argv[++i];
        } else if (!strcmp(a, "--device") && has_value) {
            if (bn_device_parse(&options.device, argv[++i], NULL) != BN_OK) goto bad_value;
        } else if (!strcmp(a, "--kv-f32")) {
            options.kv_f16 = false;
        } else if (!strcmp(a, "--int8-lm-head")) {
            options.int8_lm_head = true;
        } else if (!strcmp(a, "--ubatch") && has_value) {
            if (!bn_cli_parse_int(argv[++i], 1, 1 << 20, &options.ubatch)) goto bad_value;
        } else if (!strcmp(a, "--step") && has_value) {
            if (!bn_cli_parse_int(argv[++i], 1, INT_MAX, &step)) goto bad_value;
        } else if (!strcmp(a, "--dump-dir") && has_value) {
            dump.dir = argv[++i];
        } else if (!strcmp(a, "--dump-position") && has_value) {
            int p;
            if (!bn_cli_parse_int(argv[++i], 0, INT_MAX, &p)) goto bad_value;
            dump.position = p;
        } else if (!strcmp(a, "--ctx") && has_value) {
            if (!bn_cli_parse_int(argv[++i], 1, 1 << 24, &ctx)) goto bad_value;
        } else {
            fprintf(stderr, "bitnet eval: unknown option or missing value '%s'\n", a);
            usage(stderr);
            return BN_EXIT_USAGE;
        }
        continue;
    bad_value:
        fprintf(stderr, "bitnet eval: invalid value '%s' for %s\n", argv[i], a);
        return BN_EXIT_USAGE;
    }
    if (!model_path || !tokens_arg || !out_path) {
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    if (bn_cli_apply_isa_name(isa, err) != BN_OK) return BN_EXIT_ERROR;

    int32_t *ids = NULL;
    int n = 0;
    bn_model *model = NULL;
    bn_sequence *seq = NULL;
    bn_batch_entry *entries = NULL;
    float *logits = NULL;
    FILE *out = NULL;
    int rc = BN_EXIT_ERROR;
    if (bn_cli_parse_token_list(tokens_arg, &ids, &n, err) != BN_OK) goto done;
    if (bn_model_load(model_path, &options, &model, err) != BN_OK) goto done;
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
    free(ids);
    return rc;
}
