/*
 * cmd_chat.c: `bitnet chat [-m MODEL] [--system TEXT] [options]`: an interactive conversation in
 * the model's chat format. Reads one user message per line (a terminal through libedit with
 * history, or a pipe; a trailing backslash continues a message), streams the answer, Ctrl-C stops
 * the answer, Ctrl-D (end of input) or /exit leaves; /help /clear /system /save /load are
 * commands, not messages.
 *
 * Design: the conversation is kept as token ids, and the KV cache holds them. A turn appends only
 * what is new: the format's text after the previous answer (rendered by bn_chat_render, whose
 * content spans say where the previous answer ended), the user's message and the generation
 * prompt. The answer's own ids are kept as generated, never re-tokenized, so the cache is always a
 * prefix of the next turn's prompt and only the new tokens are prefilled. Per turn, stderr gets
 * the prompt size, how much of it came from the cache and how much was prefilled; with
 * --verbose-prompt also the exact text the turn appended, so the rendering can be checked byte
 * for byte.
 */
#include "cli/cli_options.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "cli/line_input.h"
#include "runtime/session.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_TOKENS 512
#define MAX_SYSTEM_BYTES (1u << 20)
#define MAX_SAVED_BYTES (64u << 20)


/* The options of `chat` beyond the shared groups. */
typedef struct chat_options {
    const char *system_text, *system_file, *format_name;
    bool escape, verbose_prompt;
} chat_options;

enum { CHAT_SYSTEM = 1, CHAT_FILE, CHAT_FORMAT, CHAT_ESCAPE, CHAT_NO_ESCAPE, CHAT_VERBOSE_PROMPT, CHAT_RUN_FLAG };

static const bn_cli_option chat_table[] = {
    {CHAT_SYSTEM, "--system|-sys|--system-prompt|-p|--prompt", "TEXT",
     "system message (-p as llama.cpp's conversation mode uses it)", 0, 0, NULL},
    {CHAT_FILE, "-f|--file", "FILE", "system message from FILE", 0, 0, NULL},
    {CHAT_FORMAT, "--chat-format|--chat-template", "NAME",
     "override the model's chat format (bitnet, llama3,\nchatml, falcon3, plain, none); default: the one its chat\n"
     "template selects, else its Instruct family's, else none\n(plain completion, with a note)",
     0, 0, BN_CLI_CHAT_FORMATS},
    {CHAT_ESCAPE, "-e|--escape", NULL, "turn \\n, \\t, ... in the system message into what they stand for", 0, 0, NULL},
    {CHAT_NO_ESCAPE, "--no-escape", NULL, NULL, BN_OPT_HIDDEN, 0, NULL},
    {CHAT_VERBOSE_PROMPT, "--verbose-prompt", NULL, "print on stderr, per turn, the text the chat format added to\n"
                                                   "the conversation (\"chat: turn N: prompt text, B bytes:\",\n"
                                                   "then the B bytes as they are, then a newline)", 0, 0, NULL},
    /* what `run -cnv` passes on: conversation mode is what chat is */
    {CHAT_RUN_FLAG, "-cnv|--conversation|-i|--interactive|-if|--interactive-first|-no-cnv|--no-conversation|"
                    "--no-display-prompt|--no-echo|--no-bos", NULL, NULL, BN_OPT_HIDDEN, 0, NULL},
    {0},
};

const bn_cli_spec bn_chat_spec = {
    .name = "chat",
    .synopsis = "[-m MODEL] [--system TEXT] [options]",
    .about = "Interactive chat: type a message and press Enter; the answer streams to stdout.\n"
             "On a terminal lines are edited with libedit (arrows, Emacs keys; Up recalls earlier\n"
             "lines, kept in $XDG_STATE_HOME/bitnet/chat_history, BITNET_HISTORY=FILE overrides,\n"
             "empty: none). A line ending in a backslash continues on the next line. Ctrl-C stops\n"
             "the current answer, Ctrl-D (end of input) exits. Reads one message per line when\n"
             "stdin is not a terminal. The conversation stays in the KV cache: each turn prefills\n"
             "only its new tokens (reported on stderr).\n\n"
             "commands (a line starting with //: a message starting with /):\n"
             "  /help                  list these commands\n"
             "  /clear                 forget the conversation (the system message stays) and empty\n"
             "                         the KV cache\n"
             "  /system TEXT           set the system message and start a new conversation\n"
             "  /save FILE             write the conversation as JSON ({\"messages\": [{role, content}]})\n"
             "  /load FILE             continue a conversation written by /save\n"
             "  /exit                  leave (also /quit, Ctrl-D)\n",
    .notes = "-n defaults to 512 here, per answer.\n",
    .options = chat_table,
    .common = BN_COMMON_LOAD,
    .sampling = true,
};

static bn_cli_parse apply_chat(void *state, const bn_cli_option *opt, const char *name, const char *value,
                               bn_error *err) {
    (void)name;
    (void)err;
    chat_options *o = state;
    switch (opt ? opt->id : 0) {
    case CHAT_SYSTEM: o->system_text = value; break;
    case CHAT_FILE: o->system_file = value; break;
    case CHAT_FORMAT: o->format_name = value; break;
    case CHAT_ESCAPE: o->escape = true; break;
    case CHAT_NO_ESCAPE: o->escape = false; break;
    case CHAT_VERBOSE_PROMPT: o->verbose_prompt = true; break;
    case CHAT_RUN_FLAG: break;
    default: return BN_CLI_NOT_MINE;
    }
    return BN_CLI_CONSUMED;
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
 * everything when ids is empty, else the text after the last assistant message's content. With
 * turn > 0 that text is also printed on stderr (--verbose-prompt). */
static bn_status extend_ids(conversation *c, const bn_tokenizer *tok, const bn_chat_format *format, int turn,
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
    if (turn > 0) {
        fprintf(stderr, "chat: turn %d: prompt text, %zu bytes:\n", turn, text.len - from);
        fwrite(text.text + from, 1, text.len - from, stderr);
        fputc('\n', stderr);
    }
    st = bn_chat_tokenize(&c->ids, tok, format, &text, from, c->ids.n == 0, err);
    bn_chat_text_free(&text);
    return st;
}

/* /save FILE: {"format": NAME, "messages": [{"role": ..., "content": ...}, ...]}. */
static bn_status save_conversation(const conversation *c, const char *format_name, const char *path,
                                   bn_error *err) {
    json_t *root = json_object(), *messages = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", c->messages[i].role, "content",
                                                  c->messages[i].content));
    json_object_set_new(root, "format", json_string(format_name));
    json_object_set_new(root, "messages", messages);
    int rc = json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return BN_OK;
}

/* The role names a saved conversation may use (static strings for bn_chat_message.role). */
static const char *known_role(const char *role) {
    static const char *const roles[] = {"system", "user", "assistant"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(role, roles[i])) return roles[i];
    return NULL;
}

/* /load FILE: replaces the conversation with the file's messages (checked before anything
 * changes: an object with "messages", each {role: system|user|assistant, content: string},
 * a system message only first, the last one an assistant's or none). */
static bn_status load_conversation(conversation *c, const char *path, bn_error *err) {
    char *text = NULL;
    size_t len = 0;
    bn_status st = bn_cli_read_file(&text, &len, path, MAX_SAVED_BYTES, err);
    if (st != BN_OK) return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root) return bn_error_set(err, BN_ERR_FORMAT, "%s: not JSON (line %d: %s)", path, jerr.line, jerr.text);
    json_t *messages = json_object_get(root, "messages");
    size_t n = json_array_size(messages);
    st = json_is_array(messages) ? BN_OK : bn_error_set(err, BN_ERR_FORMAT, "%s: no \"messages\" array", path);
    for (size_t i = 0; i < n && st == BN_OK; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content || !known_role(role))
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: message %zu needs a role (system, user or assistant) and a "
                              "string content", path, i + 1);
        else if (!strcmp(role, "system") && i > 0)
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: message %zu: a system message comes first only", path, i + 1);
        else if (i + 1 == n && !strcmp(role, "user"))
            st = bn_error_set(err, BN_ERR_FORMAT, "%s: the last message is a user's without its answer", path);
    }
    if (st == BN_OK) {
        drop_messages_from(c, 0);
        c->ids.n = 0;
        for (size_t i = 0; i < n && st == BN_OK; i++) {
            json_t *m = json_array_get(messages, i);
            const char *content = json_string_value(json_object_get(m, "content"));
            st = add_message(c, known_role(json_string_value(json_object_get(m, "role"))), content,
                             json_string_length(json_object_get(m, "content")), err);
        }
    }
    json_decref(root);
    return st;
}

/* Replaces (or adds, first) the system message; text NULL removes it. */
static bn_status set_system(conversation *c, const char *text, bn_error *err) {
    drop_messages_from(c, 0);
    c->ids.n = 0;
    return text ? add_message(c, "system", text, strlen(text), err) : BN_OK;
}

/* What a line starting with '/' asks for. */
typedef enum chat_command { CMD_NONE, CMD_HANDLED, CMD_EXIT, CMD_FAILED } chat_command;

static chat_command run_command(const char *line, conversation *c, size_t *n_fixed, bn_session *session,
                                const bn_chat_format *format, bn_error *err) {
    const char *arg = line + strcspn(line, " \t");
    size_t name_len = (size_t)(arg - line);
    while (*arg == ' ' || *arg == '\t') arg++;
#define IS(word) (name_len == strlen(word) && !strncmp(line, word, name_len))
    if (IS("/exit") || IS("/quit")) return CMD_EXIT;
    if (IS("/help")) {
        fputs("/help  /clear  /system TEXT  /save FILE  /load FILE  /exit\n"
              "(`bitnet chat --help` describes them; a line starting with // sends a message starting with /)\n", stdout);
    } else if (IS("/clear")) {
        drop_messages_from(c, *n_fixed);
        c->ids.n = 0;
        bn_session_clear(session);
        fprintf(stdout, "(conversation cleared%s; KV cache emptied)\n", *n_fixed ? ", system message kept" : "");
    } else if (IS("/system")) {
        if (set_system(c, *arg ? arg : NULL, err) != BN_OK) return CMD_FAILED;
        *n_fixed = c->n;
        bn_session_clear(session);
        fprintf(stdout, "(%s; new conversation)\n", *arg ? "system message set" : "system message removed");
    } else if (IS("/save")) {
        if (!*arg) {
            fputs("(/save needs a file name)\n", stdout);
        } else if (save_conversation(c, format->name, arg, err) != BN_OK) {
            fprintf(stdout, "(%s)\n", err->message);
            bn_error_clear(err);
        } else {
            fprintf(stdout, "(saved %zu messages to %s)\n", c->n, arg);
        }
    } else if (IS("/load")) {
        if (!*arg) {
            fputs("(/load needs a file name)\n", stdout);
        } else if (load_conversation(c, arg, err) != BN_OK) {
            fprintf(stdout, "(%s; the conversation is unchanged)\n", err->message);
            bn_error_clear(err);
        } else {
            *n_fixed = c->n && !strcmp(c->messages[0].role, "system") ? 1 : 0;
            bn_session_clear(session);
            fprintf(stdout, "(loaded %zu messages from %s)\n", c->n, arg);
        }
    } else {
        fprintf(stdout, "(unknown command %.*s; /help lists the commands)\n", (int)name_len, line);
    }
#undef IS
    fflush(stdout);
    return CMD_HANDLED;
}

/* Reads one message: lines ending in a backslash continue on the next line ("... " prompt).
 * Returns 1 with *text (owned by `buf`), 0 at end of input, -1 on Ctrl-C. */
static int read_message(bn_line_input *in, char **buf, size_t *cap, bool tty, bn_error *err) {
    size_t len = 0;
    for (bool first = true;; first = false) {
        const char *line;
        int got = bn_line_input_read(in, tty ? (first ? "> " : "... ") : "", &line);
        if (got <= 0) return got;
        bn_line_input_remember(in, line);
        size_t n = strlen(line);
        bool more = n > 0 && line[n - 1] == '\\';
        if (more) n--;
        if (len + n + 2 > *cap) {
            size_t grown_cap = (len + n + 2) * 2;
            char *grown = realloc(*buf, grown_cap);
            if (!grown) {
                bn_error_set(err, BN_ERR_NOMEM, "out of memory");
                return 0;
            }
            *buf = grown;
            *cap = grown_cap;
        }
        memcpy(*buf + len, line, n);
        len += n;
        if (more) (*buf)[len++] = '\n';
        (*buf)[len] = '\0';
        if (!more) return 1;
    }
}

int bn_cmd_chat(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common, "chat");
    bn_cli_sampling sampling;
    bn_cli_sampling_init(&sampling, DEFAULT_MAX_TOKENS);
    chat_options o = {0};
    int parsed = bn_cli_parse_command(&bn_chat_spec, apply_chat, &o, &common, &sampling, argc, argv, err);
    if (parsed >= 0) {
        bn_cli_sampling_free(&sampling);
        return parsed;
    }
    if (o.system_text && o.system_file) {
        bn_cli_sampling_free(&sampling);
        bn_error_set(err, BN_ERR_INVALID, "give --system or -f, not both");
        return bn_cli_usage_error("chat", bn_chat_spec.synopsis, err);
    }

    int rc = BN_EXIT_ERROR;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    char *path = NULL, *message = NULL, *system_owned = NULL;
    size_t message_cap = 0;
    const char **stops = NULL;
    bn_session session = {0};
    bn_gen *gen = NULL;
    conversation conv = {0};
    bn_line_input input;
    bn_line_input_open(&input);
    const char *system_text = o.system_text;
    if (o.system_file) {
        size_t len;
        if (bn_cli_read_file(&system_owned, &len, o.system_file, MAX_SYSTEM_BYTES, err) != BN_OK) goto done;
        system_text = system_owned;
    }
    if (system_text && o.escape) {
        if (!system_owned && !(system_owned = strdup(system_text))) {
            bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            goto done;
        }
        bn_cli_unescape(system_owned, strlen(system_owned));
        system_text = system_owned;
    }
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_chat_format *format;
    if (bn_cli_chat_format(&format, model, o.format_name, "chat", err) != BN_OK) goto done;
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

    if (system_text && add_message(&conv, "system", system_text, strlen(system_text), err) != BN_OK)
        goto done;
    size_t n_fixed = conv.n; /* messages kept when the context is full (and by /clear) */

    bn_cli_catch_sigint(); /* a Ctrl-C at the prompt interrupts the read */

    const bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "(Enter sends a message, a trailing \\ continues it, /help lists commands, Ctrl-C "
                             "stops an answer, Ctrl-D exits)\n");
    for (int turn = 1;; ) {
        if (tty && !input.tty) { /* libedit draws its own prompt */
            fputs("> ", stdout);
            fflush(stdout);
        }
        bn_cli_interrupted = 0;
        int got = read_message(&input, &message, &message_cap, tty, err);
        if (got == 0 && err->code != BN_OK) goto done;
        if (got == 0) break;
        if (got < 0) {
            fputs("\n(Ctrl-D exits)\n", stdout);
            continue;
        }
        const char *line = message;
        if (!line[0]) continue;
        if (line[0] == '/' && line[1] == '/') {
            line++; /* "//x" sends "/x" */
        } else if (line[0] == '/') {
            chat_command cmd = run_command(line, &conv, &n_fixed, &session, format, err);
            if (cmd == CMD_EXIT) break;
            if (cmd == CMD_FAILED) goto done;
            continue;
        }
        if (add_message(&conv, "user", line, strlen(line), err) != BN_OK) goto done;
        const int shown = o.verbose_prompt ? turn : 0;
        if (extend_ids(&conv, tok, format, shown, err) != BN_OK) goto done;
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
            if (st != BN_OK || extend_ids(&conv, tok, format, shown, err) != BN_OK) goto done;
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
    bn_line_input_close(&input);
    free(message);
    free(system_owned);
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
