/*
 * cmd_chat.c: `bitnet chat [-m MODEL] [--system TEXT] [options]`: an interactive conversation in
 * the model's chat format. Reads one user message per line (from a terminal or a pipe), streams
 * the answer, Ctrl-C stops the answer, Ctrl-D (end of input) exits.
 *
 * Design: the conversation is kept as token ids, and the KV cache holds them. A turn appends only
 * what is new: the format's text after the previous answer (rendered by bn_chat_render, whose
 * content spans say where the previous answer ended), the user's message and the generation
 * prompt. The answer's own ids are kept as generated, never re-tokenized, so the cache is always a
 * prefix of the next turn's prompt and only the new tokens are prefilled. Per turn, stderr gets
 * the prompt size, how much of it came from the cache and how much was prefilled.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "runtime/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_TOKENS 512
#define SYNOPSIS "[-m MODEL] [--system TEXT] [options]"

static void usage(FILE *out) {
    fprintf(out,
            "usage: bitnet chat " SYNOPSIS "\n\n"
            "Interactive chat: type a message and press Enter; the answer streams to stdout.\n"
            "Ctrl-C stops the current answer, Ctrl-D (end of input) exits. Reads one message\n"
            "per line when stdin is not a terminal. The conversation stays in the KV cache:\n"
            "each turn prefills only its new tokens (reported on stderr).\n\n"
            "options:\n"
            "  --system TEXT          system message\n"
            "  --chat-format NAME     override the model's chat format (bitnet, llama3,\n"
            "                         chatml, plain)\n"
            "%s"
            "  (-n defaults to %d here, per answer)\n"
            "%s"
            "  --help                 show this help\n",
            bn_cli_common_help, DEFAULT_MAX_TOKENS, bn_cli_sampling_help);
}

/* The conversation: messages (contents owned) and the token ids it is made of. */
typedef struct conversation {
    bn_chat_message *messages;
    size_t n, cap;
    bn_tokens ids;
} conversation;

static bn_status add_message(conversation *c, const char *role, const char *content, size_t len,
                             bn_error *err) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        bn_chat_message *grown = realloc(c->messages, cap * sizeof *grown);
        if (!grown) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        c->messages = grown;
        c->cap = cap;
    }
    char *copy = strndup(content, len);
    if (!copy) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    c->messages[c->n++] = (bn_chat_message){role, copy};
    return BN_OK;
}

static void drop_messages_from(conversation *c, size_t first) {
    while (c->n > first) free((char *)c->messages[--c->n].content);
}

/* Appends to c->ids the tokens of the rendered conversation that follow the ids already there:
 * everything when ids is empty, else the text after the last assistant message's content. */
static bn_status extend_ids(conversation *c, const bn_tokenizer *tok, const bn_chat_format *format,
                            bn_error *err) {
    bn_chat_text text;
    bn_status st = bn_chat_render(&text, format, c->messages, c->n, true, err);
    if (st != BN_OK) return st;
    size_t from = 0;
    if (c->ids.n > 0) {
        /* the last assistant message precedes the new user message */
        size_t last = c->n - 2;
        from = text.content[last].offset + text.content[last].len;
    }
    st = bn_chat_tokenize(&c->ids, tok, format, &text, from, c->ids.n == 0, err);
    bn_chat_text_free(&text);
    return st;
}

/* Reads one line into *line (without its newline). Returns 1 for a line, 0 at end of input, -1
 * when a Ctrl-C interrupted the read. */
static int read_line(char **line, size_t *cap) {
    errno = 0;
    ssize_t n = getline(line, cap, stdin);
    if (n < 0) {
        if (errno == EINTR || bn_cli_interrupted) {
            clearerr(stdin);
            return -1;
        }
        return 0;
    }
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r')) (*line)[--n] = '\0';
    return 1;
}

/* The options of `chat` beyond the shared groups. */
typedef struct chat_options {
    const char *system_text, *format_name;
} chat_options;

static bn_cli_parse parse_own(void *state, int argc, char **argv, int *i, bn_error *err) {
    (void)err;
    chat_options *o = state;
    const char *a = argv[*i];
    bool has_value = *i + 1 < argc;
    if (!strcmp(a, "--system") && has_value) {
        o->system_text = argv[++*i];
    } else if (!strcmp(a, "--chat-format") && has_value) {
        o->format_name = argv[++*i];
    } else {
        return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
}

int bn_cmd_chat(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common);
    bn_cli_sampling sampling;
    bn_cli_sampling_init(&sampling, DEFAULT_MAX_TOKENS);
    chat_options o = {0};
    const bn_cli_command cmd = {"chat", SYNOPSIS, usage, parse_own, &o};
    int parsed = bn_cli_parse_args(&cmd, &common, &sampling, argc, argv, err);
    if (parsed >= 0) return parsed;

    int rc = BN_EXIT_ERROR;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    char *path = NULL, *line = NULL;
    size_t line_cap = 0;
    const char **stops = NULL;
    bn_session session = {0};
    bn_gen *gen = NULL;
    conversation conv = {0};
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_chat_format *format;
    if (bn_cli_chat_format(&format, model, o.format_name, err) != BN_OK) goto done;
    const bn_model_config *cfg = bn_model_get_config(model);
    /* validates the sampling options before the first turn */
    if (bn_gen_create(&gen, tok, (size_t)cfg->n_vocab, &(bn_gen_config){.sampling = sampling.params}, err) !=
        BN_OK)
        goto done;
    const bn_session_options session_options = bn_cli_session_options(&common, &sampling);
    if (bn_session_init(&session, model, &session_options, err) != BN_OK) goto done;
    const int capacity = bn_session_capacity(&session);
    fprintf(stderr, "model: %s (%s, %d layers, dim %d), chat format %s, context %d, isa %s\n", path,
            cfg->arch_name, cfg->n_layers, cfg->dim, format->name, capacity,
            bn_isa_name(bn_isa_active()));

    /* stop strings: the format's end-of-turn texts and the user's --stop */
    size_t n_stops = 0;
    while (format->stop_strings && format->stop_strings[n_stops]) n_stops++;
    stops = malloc((n_stops + sampling.n_stops + 1) * sizeof *stops);
    if (!stops) {
        bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_stops; i++) stops[i] = format->stop_strings[i];
    for (size_t i = 0; i < sampling.n_stops; i++) stops[n_stops + i] = sampling.stops[i];
    n_stops += sampling.n_stops;

    if (o.system_text &&
        add_message(&conv, "system", o.system_text, strlen(o.system_text), err) != BN_OK)
        goto done;
    const size_t n_fixed = conv.n; /* messages kept when the context is full */

    bn_cli_catch_sigint(); /* a Ctrl-C at the prompt interrupts the read */

    const bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "(Enter sends a message, Ctrl-C stops an answer, Ctrl-D exits)\n");
    for (int turn = 1;; ) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        bn_cli_interrupted = 0;
        int got = read_line(&line, &line_cap);
        if (got == 0) break;
        if (got < 0) {
            fputs("\n(Ctrl-D exits)\n", stdout);
            continue;
        }
        if (!line[0]) continue;
        if (add_message(&conv, "user", line, strlen(line), err) != BN_OK) goto done;
        if (extend_ids(&conv, tok, format, err) != BN_OK) goto done;
        if (conv.ids.n >= (size_t)capacity) {
            /* Start over with the system message and this message only. */
            fprintf(stderr, "chat: the context (%d tokens) is full; earlier turns are dropped\n",
                    capacity);
            char *keep = strdup(line);
            if (!keep) {
                bn_error_set(err, BN_ERR_NOMEM, "out of memory");
                goto done;
            }
            drop_messages_from(&conv, n_fixed);
            conv.ids.n = 0;
            bn_status st = add_message(&conv, "user", keep, strlen(keep), err);
            free(keep);
            if (st != BN_OK || extend_ids(&conv, tok, format, err) != BN_OK) goto done;
            if (conv.ids.n >= (size_t)capacity) {
                fprintf(stderr, "chat: this message does not fit the context of %d tokens\n",
                        capacity);
                drop_messages_from(&conv, n_fixed);
                conv.ids.n = 0;
                continue;
            }
        }

        /* A fresh generation per turn: its penalty window is then exactly the conversation's
         * last tokens (the session accepts the whole prompt). A given seed S gives turn k seed
         * S + k - 1, so a replayed conversation is answered the same way. */
        bn_gen_config config = bn_cli_gen_config(&sampling, stops, n_stops);
        if (config.sampling.seed != BN_SAMPLER_SEED_RANDOM) {
            config.sampling.seed += (uint64_t)(turn - 1);
            if (config.sampling.seed == BN_SAMPLER_SEED_RANDOM) config.sampling.seed = 0; /* wrapped */
        }
        bn_gen_free(gen);
        gen = NULL;
        if (bn_gen_create(&gen, tok, (size_t)cfg->n_vocab, &config, err) != BN_OK) goto done;
        const bn_session_io io = {.on_text = bn_cli_write_stdout, .cancel = &bn_cli_interrupted};
        bn_session_stats stats;
        if (bn_session_generate(&session, gen, conv.ids.ids, conv.ids.n, &io, &stats, err) != BN_OK)
            goto done;
        fputc('\n', stdout);
        fflush(stdout);
        fprintf(stderr,
                "chat: turn %d: prompt %d tokens (%d cached, %d prefilled, %.2f ms); generated %d "
                "tokens in %.2f ms (%.2f tokens/s); stopped: %s\n",
                turn, stats.n_prompt, stats.n_reused, stats.n_prefilled, stats.prefill_ms,
                stats.n_generated, stats.generate_ms,
                stats.generate_ms > 0 ? stats.n_generated * 1000.0 / stats.generate_ms : 0.0,
                bn_finish_reason_name(stats.finish));
        if (stats.n_shifts)
            fprintf(stderr, "chat: %d context shift(s) dropped %d tokens\n", stats.n_shifts, stats.n_dropped);
        /* The answer joins the conversation: its ids as generated, then the text a stop string
         * or an unfinished character left without ids. After a context shift the conversation's
         * ids are what the cache kept (the answer's ids still in it are replaced the same way). */
        size_t n_text_ids, text_prefix_len, text_len, n_out;
        bn_gen_ids_in_text(gen, &n_text_ids, &text_prefix_len);
        const char *text = bn_gen_text(gen, &text_len);
        const int32_t *out_ids = bn_gen_ids(gen, &n_out);
        bn_status st = BN_OK;
        if (stats.n_shifts) {
            conv.ids.n = 0;
            size_t base = session.cached.n - (size_t)stats.n_gen_cached;
            for (size_t i = 0; i < base && st == BN_OK; i++) st = bn_tokens_push(&conv.ids, session.cached.ids[i], err);
        }
        for (size_t i = 0; i < n_text_ids && st == BN_OK; i++) st = bn_tokens_push(&conv.ids, out_ids[i], err);
        if (st == BN_OK && text_len > text_prefix_len)
            st = bn_tokenizer_encode(tok, text + text_prefix_len, text_len - text_prefix_len, false, false,
                                     &conv.ids, err);
        if (st == BN_OK) st = add_message(&conv, "assistant", text, text_len, err);
        if (st != BN_OK) goto done;
        turn++;
    }
    rc = BN_EXIT_OK;
done:
    free(line);
    drop_messages_from(&conv, 0);
    free(conv.messages);
    bn_tokens_free(&conv.ids);
    free(stops);
    bn_gen_free(gen);
    if (session.seq) bn_session_free(&session);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(path);
    bn_cli_sampling_free(&sampling);
    return rc;
}
