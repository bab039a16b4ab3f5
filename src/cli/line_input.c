/*
 * line_input.c: chat input lines through libedit on a terminal, getline otherwise (see
 * line_input.h). libedit gets no signal handling of its own (EL_SIGNAL off): the chat's SIGINT
 * handler, installed without SA_RESTART, makes the blocked read return EINTR, and el_gets then
 * returns with the terminal restored.
 */
#include "cli/line_input.h"

#include "cli/cli_options.h"

#include <errno.h>
#ifdef BITNET_HAVE_LIBEDIT
#include <histedit.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HISTORY_SIZE 1000

#ifdef BITNET_HAVE_LIBEDIT
static char *prompt_of(EditLine *el) {
    void *data = NULL;
    el_get(el, EL_CLIENTDATA, &data);
    bn_line_input *in = data;
    return (char *)(in && in->prompt ? in->prompt : "");
}

/* mkdir -p of the folder of path (errors show up when the file is written). */
static void make_parent_dirs(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(copy, 0700);
        *p = '/';
    }
    free(copy);
}

/* BITNET_HISTORY, else $XDG_STATE_HOME/bitnet/chat_history, else ~/.local/state/bitnet/chat_history. */
static char *history_file(void) {
    const char *forced = getenv("BITNET_HISTORY");
    if (forced) return *forced ? strdup(forced) : NULL;
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char path[4096];
    if (state && *state == '/') snprintf(path, sizeof path, "%s/bitnet/chat_history", state);
    else if (home && *home) snprintf(path, sizeof path, "%s/.local/state/bitnet/chat_history", home);
    else return NULL;
    return strdup(path);
}

#endif /* BITNET_HAVE_LIBEDIT */

void bn_line_input_open(bn_line_input *in) {
    memset(in, 0, sizeof *in);
#ifndef BITNET_HAVE_LIBEDIT
    in->tty = false; /* built without libedit: plain lines */
#else
    in->tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (!in->tty) return;
    EditLine *el = el_init("bitnet", stdin, stdout, stderr);
    History *h = history_init();
    if (!el || !h) {
        if (el) el_end(el);
        if (h) history_end(h);
        in->tty = false;
        return;
    }
    HistEvent ev;
    history(h, &ev, H_SETSIZE, HISTORY_SIZE);
    history(h, &ev, H_SETUNIQUE, 1);
    in->history_path = history_file();
    if (in->history_path) history(h, &ev, H_LOAD, in->history_path); /* a missing file is fine */
    el_set(el, EL_EDITOR, "emacs");
    el_set(el, EL_SIGNAL, 0);
    el_set(el, EL_CLIENTDATA, in);
    el_set(el, EL_PROMPT, prompt_of);
    el_set(el, EL_HIST, history, h);
    el_source(el, NULL); /* the user's ~/.editrc, as other libedit programs */
    in->editline = el;
    in->history = h;
#endif
}

int bn_line_input_read(bn_line_input *in, const char *prompt, const char **line) {
    *line = NULL;
#ifndef BITNET_HAVE_LIBEDIT
    (void)prompt; /* the caller prints it when in->tty is false */
#else
    if (in->tty) {
        in->prompt = prompt;
        int count = 0;
        errno = 0;
        const char *text = el_gets(in->editline, &count);
        if (!text || count <= 0) {
            if (bn_cli_interrupted || errno == EINTR) return -1;
            return 0;
        }
        size_t n = (size_t)count;
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) n--;
        if (n + 1 > in->cap) {
            char *grown = realloc(in->line, n + 1);
            if (!grown) return 0;
            in->line = grown;
            in->cap = n + 1;
        }
        memcpy(in->line, text, n);
        in->line[n] = '\0';
        *line = in->line;
        return 1;
    }
#endif
    errno = 0;
    ssize_t n = getline(&in->line, &in->cap, stdin);
    if (n < 0) {
        if (errno == EINTR || bn_cli_interrupted) {
            clearerr(stdin);
            return -1;
        }
        return 0;
    }
    while (n > 0 && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r')) in->line[--n] = '\0';
    *line = in->line;
    return 1;
}

void bn_line_input_remember(bn_line_input *in, const char *line) {
#ifndef BITNET_HAVE_LIBEDIT
    (void)in;
    (void)line;
#else
    if (!in->tty || !line[0]) return;
    HistEvent ev;
    history(in->history, &ev, H_ENTER, line);
    if (in->history_path) {
        make_parent_dirs(in->history_path);
        history(in->history, &ev, H_SAVE, in->history_path);
    }
#endif
}

void bn_line_input_close(bn_line_input *in) {
#ifdef BITNET_HAVE_LIBEDIT
    if (in->editline) el_end(in->editline);
    if (in->history) history_end(in->history);
#endif
    free(in->history_path);
    free(in->line);
    memset(in, 0, sizeof *in);
}
