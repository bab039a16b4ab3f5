/*
 * cmd_run.c: `bitnet run -m MODEL -p TEXT [options]`: generates text from a prompt and streams it
 * to stdout as it is produced (one flush per token), then prints the prompt and generation speeds
 * to stderr. Without -m it runs the model shipped in models/ (or BITNET_MODEL); the prompt is -p,
 * -f FILE, piped stdin or a default one, so a bare `bitnet run` shows text. --chat-format wraps
 * the prompt as one user message; -cnv (llama.cpp's conversation mode) hands over to `chat`.
 */
#include "cli/cli_options.h"
#include "cli/cli_speculation.h"
#include "cli/commands.h"
#include "kernels/cpu_features.h"
#include "runtime/session.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PROMPT "In the beginning"
#define DEFAULT_MAX_TOKENS 128
#define MAX_PROMPT_BYTES (64u << 20)
#define STDIN_WAIT_MS 500 /* how long a pipe on stdin may stay silent before the default prompt */

/* The options of `run` beyond the shared groups. */
typedef struct run_options {
    const char *prompt, *file, *format_name, *ids_path;
    bool no_bos, echo, escape, conversation;
    bn_cli_speculation spec;
} run_options;

enum { RUN_PROMPT = 1, RUN_FILE, RUN_ESCAPE, RUN_NO_ESCAPE, RUN_FORMAT, RUN_NO_BOS, RUN_NO_ECHO, RUN_CONVERSATION,
       RUN_NO_CONVERSATION, RUN_OUTPUT_IDS };

static const bn_cli_option run_table[] = {
    {RUN_PROMPT, "-p|--prompt", "TEXT", "the prompt (default: piped stdin, else \"" DEFAULT_PROMPT "\")", 0, 0, NULL},
    {RUN_FILE, "-f|--file", "FILE", "read the prompt from FILE; - reads stdin to its end", 0, 0, NULL},
    {RUN_ESCAPE, "-e|--escape", NULL, "turn \\n, \\r, \\t, \\\\, \\', \\\" and \\xNN in the prompt into what\nthey stand for", 0, 0, NULL},
    {RUN_NO_ESCAPE, "--no-escape", NULL, NULL, BN_OPT_HIDDEN, 0, NULL},
    {RUN_FORMAT, "--chat-format|--chat-template", "NAME", "render the prompt as a user message in a chat format\n(bitnet, llama3, chatml, falcon3, plain, none)", 0, 0,
     BN_CLI_CHAT_FORMATS},
    {RUN_NO_BOS, "--no-bos", NULL, "do not add the BOS token", 0, 0, NULL},
    {RUN_NO_ECHO, "--no-echo|--no-display-prompt", NULL, "do not print the prompt before the generated text", 0, 0, NULL},
    {RUN_CONVERSATION, "-cnv|--conversation|-i|--interactive|-if|--interactive-first", NULL,
     "conversation mode, as llama.cpp's -cnv: the same as `bitnet chat`\nwith these options (-p is then the system message)", 0, 0, NULL},
    {RUN_NO_CONVERSATION, "-no-cnv|--no-conversation", NULL, "no conversation mode (what run always does)", 0, 0, NULL},
    {RUN_OUTPUT_IDS, "--output-ids", "FILE", "write the generated token ids to FILE, one per line (what\n--spec-replay reads)", 0, 0, NULL},
    {0},
};

static bn_cli_parse apply_run(void *state, const bn_cli_option *opt, const char *name, const char *value,
                              bn_error *err) {
    run_options *o = state;
    switch (opt ? opt->id : 0) {
    case RUN_PROMPT: o->prompt = value; break;
    case RUN_FILE: o->file = value; break;
    case RUN_ESCAPE: o->escape = true; break;
    case RUN_NO_ESCAPE: o->escape = false; break;
    case RUN_FORMAT: o->format_name = value; break;
    case RUN_NO_BOS: o->no_bos = true; break;
    case RUN_NO_ECHO: o->echo = false; break;
    case RUN_CONVERSATION: o->conversation = true; break;
    case RUN_NO_CONVERSATION: break;
    case RUN_OUTPUT_IDS: o->ids_path = value; break;
    default: return bn_cli_apply_speculation(&o->spec, opt, name, value, err);
    }
    return BN_CLI_CONSUMED;
}

const bn_cli_spec bn_run_spec = {
    .name = "run",
    .synopsis = "[-m MODEL] [-p TEXT | -f FILE] [options]",
    .about = "Generates text from a prompt and streams it to stdout; prompt and generation speed\n"
             "(tokens, ms, tokens/s) go to stderr. Ctrl-C stops the generation. The prompt is -p,\n"
             "else -f FILE, else stdin when it is a pipe or a file (`echo text | bitnet run`),\n"
             "else \"" DEFAULT_PROMPT "\".\n",
    .notes = "-n defaults to 128 here.\n",
    .options = run_table,
    .more_options = bn_cli_speculation_options,
    .more_title = "speculative decoding",
    .common = BN_COMMON_LOAD,
    .sampling = true,
};

static void print_speed(const char *what, int tokens, double ms) {
    fprintf(stderr, "%s: %d tokens in %.2f ms (%.2f tokens/s)\n", what, tokens, ms,
            ms > 0 ? tokens * 1000.0 / ms : 0.0);
}

/* Reads stdin to its end into *out (NUL-terminated, caller frees). */
static bn_status read_stdin(char **out, size_t *len, bn_error *err) {
    return bn_cli_read_file(out, len, "/dev/stdin", MAX_PROMPT_BYTES, err);
}

/* True when stdin is a pipe or a file that has (or may soon have) a prompt: a regular file, or
 * a pipe with data or at its end within STDIN_WAIT_MS (a silent pipe that stays open, as an ssh
 * session's, is not waited for). A terminal, /dev/null or a socket is never read. */
static bool stdin_has_prompt(void) {
    struct stat st;
    if (fstat(STDIN_FILENO, &st) != 0) return false;
    if (S_ISREG(st.st_mode)) return true;
    if (!S_ISFIFO(st.st_mode)) return false;
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&p, 1, STDIN_WAIT_MS) > 0;
}

/* The prompt text by -p, -f, stdin or the default; *owned is what to free. */
static bn_status prompt_text(const char **text, size_t *len, char **owned, const run_options *o, bn_error *err) {
    *owned = NULL;
    if (o->prompt && o->file) return bn_error_set(err, BN_ERR_INVALID, "give -p or -f, not both");
    bn_status st = BN_OK;
    if (o->file && !strcmp(o->file, "-")) {
        st = read_stdin(owned, len, err);
    } else if (o->file) {
        st = bn_cli_read_file(owned, len, o->file, MAX_PROMPT_BYTES, err);
    } else if (!o->prompt && stdin_has_prompt()) {
        st = read_stdin(owned, len, err);
        if (st == BN_OK && *len == 0) {
            fprintf(stderr, "bitnet run: note: stdin is empty; using the default prompt\n");
            free(*owned);
            *owned = NULL;
        }
    }
    if (st != BN_OK) return st;
    if (*owned) {
        /* as llama.cpp's -f: one trailing newline (echo's) is not part of the prompt */
        if (*len > 0 && (*owned)[*len - 1] == '\n') (*owned)[--*len] = '\0';
        *text = *owned;
        return BN_OK;
    }
    *text = o->prompt ? o->prompt : DEFAULT_PROMPT;
    *len = strlen(*text);
    return BN_OK;
}

/* --output-ids: the generated ids (the output's, no end-of-generation token), one per line. */
static bn_status write_ids(const char *path, const bn_gen *gen, bn_error *err) {
    FILE *f = fopen(path, "w");
    if (!f) return bn_error_set(err, BN_ERR_IO, "--output-ids %s: cannot write", path);
    size_t n = 0;
    const int32_t *out = bn_gen_ids(gen, &n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%d\n", (int)out[i]);
    bool failed = ferror(f);
    if (fclose(f) != 0 || failed) return bn_error_set(err, BN_ERR_IO, "--output-ids %s: write error", path);
    return BN_OK;
}

int bn_cmd_run(int argc, char **argv, bn_error *err) {
    bn_cli_common common;
    bn_cli_common_init(&common, "run");
    bn_cli_sampling sampling;
    bn_cli_sampling_init(&sampling, DEFAULT_MAX_TOKENS);
    run_options o = {.echo = true};
    bn_cli_speculation_init(&o.spec);
    int parsed = bn_cli_parse_command(&bn_run_spec, apply_run, &o, &common, &sampling, argc, argv, err);
    if (parsed >= 0 || o.conversation) bn_cli_sampling_free(&sampling);
    if (parsed >= 0) return parsed;
    if (o.conversation && (o.spec.config.mode != BN_SPEC_NONE || o.ids_path)) {
        bn_error_set(err, BN_ERR_INVALID, "conversation mode (-cnv) takes no --spec and no --output-ids");
        return BN_EXIT_USAGE;
    }
    if (o.conversation) return bn_cmd_chat(argc, argv, err); /* llama.cpp's -cnv */

    int rc = BN_EXIT_ERROR;
    bn_model *model = NULL;
    bn_tokenizer *tok = NULL;
    char *path = NULL;
    bn_session session = {0};
    bn_gen *gen = NULL;
    bn_spec *spec = NULL;
    bn_tokens ids = {0};
    bn_chat_text chat = {0};
    char *owned_prompt = NULL;
    const char *prompt = NULL;
    size_t prompt_len = 0;
    if (prompt_text(&prompt, &prompt_len, &owned_prompt, &o, err) != BN_OK) goto done;
    if (o.escape) {
        if (!owned_prompt && !(owned_prompt = strdup(prompt))) {
            bn_error_set(err, BN_ERR_NOMEM, "out of memory");
            goto done;
        }
        prompt_len = bn_cli_unescape(owned_prompt, prompt_len);
        prompt = owned_prompt;
    }
    if (bn_cli_load_model(&model, &tok, &path, &common, err) != BN_OK) goto done;
    const bn_model_config *cfg = bn_model_get_config(model);
    fprintf(stderr, "model: %s (%s, %d layers, dim %d, vocab %d), isa %s, %d threads\n", path,
            cfg->arch_name, cfg->n_layers, cfg->dim, cfg->n_vocab, bn_isa_name(bn_isa_active()),
            common.n_threads);

    if (o.format_name) {
        const bn_chat_format *format;
        if (bn_cli_chat_format(&format, model, o.format_name, "run", err) != BN_OK) goto done;
        bn_chat_message message = {"user", prompt};
        if (bn_chat_render(&chat, format, &message, 1, true, err) != BN_OK) goto done;
        if (bn_chat_tokenize(&ids, tok, format, &chat, 0, !o.no_bos, err) != BN_OK) goto done;
        o.echo = false;
    } else if (bn_tokenizer_encode(tok, prompt, prompt_len, !o.no_bos, false, &ids, err) != BN_OK) {
        goto done;
    }
    if (ids.n == 0) {
        bn_error_set(err, BN_ERR_INVALID, "the prompt is empty (no tokens)");
        goto done;
    }
    const bn_gen_config gen_config = bn_cli_gen_config(&sampling, sampling.stops, sampling.n_stops);
    if (bn_gen_create(&gen, tok, (size_t)cfg->n_vocab, &gen_config, err) != BN_OK) goto done;
    const bn_session_options session_options = bn_cli_session_options(&common, &sampling);
    if (bn_session_init(&session, model, &session_options, err) != BN_OK) goto done;
    if (o.spec.config.mode != BN_SPEC_NONE || o.spec.draft_path || o.spec.replay_path) {
        if (bn_cli_speculation_prepare(&o.spec, model, tok, &common, err) != BN_OK) goto done;
        if (bn_spec_create(&spec, &o.spec.config, bn_session_capacity(&session), err) != BN_OK) goto done;
        bn_session_set_spec(&session, spec);
    }

    bn_cli_catch_sigint();

    if (o.echo) bn_cli_write_stdout(NULL, prompt, prompt_len);
    const bn_session_io io = {.on_text = bn_cli_write_stdout, .cancel = &bn_cli_interrupted};
    bn_session_stats stats;
    if (bn_session_generate(&session, gen, ids.ids, ids.n, &io, &stats, err) != BN_OK) {
        fputc('\n', stdout);
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    print_speed("prompt", stats.n_prefilled, stats.prefill_ms);
    print_speed("generation", stats.n_generated, stats.generate_ms);
    bn_cli_speculation_report("run", &o.spec.config, stats.n_steps, stats.n_drafted, stats.n_accepted,
                              stats.n_generated - (stats.n_generated > 0));
    if (o.ids_path && write_ids(o.ids_path, gen, err) != BN_OK) goto done;
    if (stats.n_shifts)
        fprintf(stderr, "context shifts: %d (%d tokens dropped)\n", stats.n_shifts, stats.n_dropped);
    fprintf(stderr, "stopped: %s, seed %llu\n", bn_finish_reason_name(stats.finish),
            (unsigned long long)bn_gen_seed(gen));
    rc = BN_EXIT_OK;
done:
    bn_chat_text_free(&chat);
    free(owned_prompt);
    bn_tokens_free(&ids);
    bn_gen_free(gen);
    if (session.seq) bn_session_free(&session);
    bn_spec_free(spec);
    bn_cli_speculation_free(&o.spec);
    bn_tokenizer_free(tok);
    bn_model_free(model);
    free(path);
    bn_cli_sampling_free(&sampling);
    return rc;
}
