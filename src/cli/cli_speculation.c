/*
 * cli_speculation.c: the speculative-decoding options of `run` and `serve` (see
 * cli_speculation.h).
 */
#include "cli/cli_speculation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SPEC_MODE = 900, SPEC_DRAFT_MODEL, SPEC_REPLAY, SPEC_DRAFT_MAX, SPEC_DRAFT_MIN, SPEC_FIXED };

#define STR_(x) #x
#define STR(x) STR_(x)

const bn_cli_option bn_cli_speculation_options[] = {
    {SPEC_MODE, "--spec", "MODE",
     "speculative decoding, output unchanged: ngram (prompt lookup),\n"
     "draft (--model-draft), replay (--spec-replay) or none (default)", 0, 0, "ngram|draft|replay|none"},
    {SPEC_DRAFT_MODEL, "--model-draft|-md", "FILE", "the draft model of --spec draft (same vocabulary)", 0, 0, NULL},
    {SPEC_REPLAY, "--spec-replay", "FILE",
     "ids of a previous run's output (run --output-ids) that --spec replay\nproposes", 0, 0, NULL},
    {SPEC_DRAFT_MAX, "--draft-max|--draft|--draft-n", "N", "most drafted tokens per step, 1.." STR(BN_SPEC_DRAFT_LIMIT) " (default 8)", 0, 0, NULL},
    {SPEC_DRAFT_MIN, "--draft-min", "N", "fewest drafted tokens per step when there are drafts (default 0)", 0, 0, NULL},
    {SPEC_FIXED, "--draft-fixed", NULL, "always draft --draft-max tokens (no adaptive draft length)", 0, 0, NULL},
    {0},
};

void bn_cli_speculation_init(bn_cli_speculation *o) {
    memset(o, 0, sizeof *o);
    o->config = bn_spec_config_default();
}

bn_cli_parse bn_cli_apply_speculation(void *state, const bn_cli_option *opt, const char *name,
                                      const char *value, bn_error *err) {
    bn_cli_speculation *o = state;
    switch (opt ? opt->id : 0) {
    case SPEC_MODE:
        if (bn_spec_mode_parse(&o->config.mode, value, NULL) != BN_OK)
            return bn_cli_bad_value(name, value, "ngram, draft, replay or none", err);
        break;
    case SPEC_DRAFT_MODEL: o->draft_path = value; break;
    case SPEC_REPLAY: o->replay_path = value; break;
    case SPEC_DRAFT_MAX:
        if (!bn_cli_parse_int(value, 1, BN_SPEC_DRAFT_LIMIT, &o->config.draft_max))
            return bn_cli_bad_value(name, value, "1.." STR(BN_SPEC_DRAFT_LIMIT), err);
        break;
    case SPEC_DRAFT_MIN:
        if (!bn_cli_parse_int(value, 0, BN_SPEC_DRAFT_LIMIT, &o->config.draft_min))
            return bn_cli_bad_value(name, value, "0.." STR(BN_SPEC_DRAFT_LIMIT), err);
        break;
    case SPEC_FIXED: o->config.fixed = true; break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

bn_status bn_cli_speculation_prepare(bn_cli_speculation *o, const bn_model *model, const bn_tokenizer *tok,
                                     bn_cli_common *common, bn_error *err) {
    bn_spec_config *c = &o->config;
    if (o->draft_path && c->mode != BN_SPEC_DRAFT)
        return bn_error_set(err, BN_ERR_INVALID, "--model-draft is for --spec draft (the mode is %s)",
                            bn_spec_mode_name(c->mode));
    if (o->replay_path && c->mode != BN_SPEC_REPLAY)
        return bn_error_set(err, BN_ERR_INVALID, "--spec-replay is for --spec replay (the mode is %s)",
                            bn_spec_mode_name(c->mode));
    if (c->draft_min > c->draft_max)
        return bn_error_set(err, BN_ERR_INVALID, "--draft-min %d is above --draft-max %d", c->draft_min,
                            c->draft_max);
    const int n_vocab = bn_model_get_config(model)->n_vocab;
    bn_status st = BN_OK;
    if (c->mode == BN_SPEC_DRAFT) {
        if (!o->draft_path)
            return bn_error_set(err, BN_ERR_INVALID, "--spec draft needs a draft model (--model-draft FILE)");
        bn_model_options mo;
        bn_cli_model_options(&mo, common);
        mo.device = BN_DEVICE_CPU; /* the draft model runs beside the model, on the CPU */
        bn_tokenizer *draft_tok = NULL;
        st = bn_cli_load_with(&o->draft_model, o->draft_path, &mo, common, err);
        if (st == BN_OK) st = bn_tokenizer_from_gguf(&draft_tok, bn_model_get_gguf(o->draft_model), NULL, err);
        if (st == BN_OK)
            st = bn_spec_check_vocab(tok, n_vocab, draft_tok, bn_model_get_config(o->draft_model)->n_vocab, err);
        bn_tokenizer_free(draft_tok);
        if (st != BN_OK) {
            bn_model_free(o->draft_model);
            o->draft_model = NULL;
            return st;
        }
        c->draft_model = o->draft_model;
    } else if (c->mode == BN_SPEC_REPLAY) {
        if (!o->replay_path)
            return bn_error_set(err, BN_ERR_INVALID, "--spec replay needs the ids of a previous run (--spec-replay FILE)");
        if ((st = bn_spec_read_ids(&o->replay_ids, o->replay_path, n_vocab, err)) != BN_OK) return st;
        c->replay = o->replay_ids.ids;
        c->n_replay = o->replay_ids.n;
    }
    return bn_spec_config_check(c, err);
}

void bn_cli_speculation_free(bn_cli_speculation *o) {
    bn_model_free(o->draft_model);
    o->draft_model = NULL;
    bn_tokens_free(&o->replay_ids);
}

void bn_cli_speculation_report(const char *command, const bn_spec_config *config, int steps, int drafted,
                               int accepted, int tokens) {
    if (config->mode == BN_SPEC_NONE) return;
    fprintf(stderr, "bitnet %s: speculation (%s): %d steps, %d drafted, %d accepted (%.1f%%), %.2f tokens per step\n",
            command, bn_spec_mode_name(config->mode), steps, drafted, accepted,
            drafted ? 100.0 * accepted / drafted : 0.0, steps ? (double)tokens / steps : 0.0);
}
