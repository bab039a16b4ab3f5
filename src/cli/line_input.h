/*
 * line_input.h: reading the lines a person types into `bitnet chat`. On a terminal it uses
 * libedit (BSD licence): cursor keys, Emacs editing keys, and a history that the Up arrow walks,
 * kept between sessions in $XDG_STATE_HOME/bitnet/chat_history (default
 * ~/.local/state/bitnet/chat_history; BITNET_HISTORY=FILE overrides it, empty: none). When stdin
 * is not a terminal (a script, a pipe), or in a build without libedit, it reads plain lines with
 * getline and keeps no history.
 */
#ifndef BN_CLI_LINE_INPUT_H
#define BN_CLI_LINE_INPUT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bn_line_input {
    bool tty;            /* stdin and stdout are terminals: libedit */
    void *editline;      /* EditLine * */
    void *history;       /* History * */
    char *history_path;  /* owned; NULL: no history file */
    const char *prompt;  /* shown before the next line */
    char *line;          /* the last line read (owned) */
    size_t cap;
} bn_line_input;

/* Opens the input (libedit on a terminal, with the saved history loaded). Never fails: without
 * libedit's terminal setup it falls back to plain lines. */
void bn_line_input_open(bn_line_input *in);
/* Reads one line, without its newline, into *line (valid until the next call). Returns 1 for a
 * line, 0 at end of input (Ctrl-D), -1 when Ctrl-C interrupted the read. */
int bn_line_input_read(bn_line_input *in, const char *prompt, const char **line);
/* Adds a line to the history (terminal only; empty lines are not kept) and saves the file. */
void bn_line_input_remember(bn_line_input *in, const char *line);
void bn_line_input_close(bn_line_input *in);

#endif
