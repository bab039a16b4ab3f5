/*
 * cli_speculation.h: the speculative-decoding options `run` and `serve` share (--spec,
 * --model-draft, --spec-replay, --draft-max, --draft-min, --draft-fixed) and what they need after
 * the model is loaded: the draft model with its vocabulary checked against the model's, or the
 * replay ids, as a bn_spec_config (runtime/speculative.h).
 */
#ifndef BN_CLI_SPECULATION_H
#define BN_CLI_SPECULATION_H

#include "cli/cli_options.h"
#include "runtime/speculative.h"

typedef struct bn_cli_speculation {
    bn_spec_config config;   /* mode and sizes from the options; models/ids from prepare */
    const char *draft_path;  /* --model-draft */
    const char *replay_path; /* --spec-replay */
    /* owned, filled by bn_cli_speculation_prepare */
    bn_model *draft_model;
    bn_tokens replay_ids;
} bn_cli_speculation;

/* The option table (ids from 900; a command puts it in its spec's more_options, or hands its ids to
 * bn_cli_apply_speculation from its own apply function). */
extern const bn_cli_option bn_cli_speculation_options[];

void bn_cli_speculation_init(bn_cli_speculation *o);
/* A bn_cli_apply_fn for bn_cli_speculation_options (state: bn_cli_speculation). */
bn_cli_parse bn_cli_apply_speculation(void *state, const bn_cli_option *opt, const char *name,
                                      const char *value, bn_error *err);
/* After the model loaded: loads the draft model with the common options (threads, context, ISA)
 * and checks its vocabulary against the model's, or reads the replay ids; then checks the whole
 * configuration (a draft model without --spec draft is an error, as is --spec draft without one). */
bn_status bn_cli_speculation_prepare(bn_cli_speculation *o, const bn_model *model, const bn_tokenizer *tok,
                                     bn_cli_common *common, bn_error *err);
void bn_cli_speculation_free(bn_cli_speculation *o);
/* One line on stderr: "speculation (ngram): 40 steps, 120 drafted, 96 accepted (80.0%), 3.40
 * tokens per step". Nothing when speculation is off. */
void bn_cli_speculation_report(const char *command, const bn_spec_config *config, int steps, int drafted,
                               int accepted, int tokens);

#endif
