/*
 * progress.h: progress of long work on stderr (model load, synth, perplexity, bench). On a
 * terminal one line is redrawn in place ("bitnet run: loading model: 12/30 layers, 40%") once the
 * stage has run for half a second; when stderr is not a terminal nothing is drawn while it runs
 * and a stage that took a second or more ends with one line ("bitnet synth: writing: done in
 * 3.1 s"), so logs get one line per stage. --no-progress turns both off. Work that finishes
 * within a second prints nothing either way.
 */
#ifndef BN_CLI_PROGRESS_H
#define BN_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct bn_progress {
    const char *command; /* "run" */
    bool enabled;        /* false: --no-progress */
    bool live;           /* stderr is a terminal: redraw in place */
    const char *stage;   /* the running stage, NULL between stages */
    const char *unit;    /* "layers" */
    double started_ms, drawn_ms;
    bool drawn;          /* something is on the current line */
    uint64_t done, total;
} bn_progress;

void bn_progress_init(bn_progress *p, const char *command, bool enabled);
/* Starts `stage` (ending the previous one); `unit` names what done/total count. */
void bn_progress_begin(bn_progress *p, const char *stage, const char *unit);
/* done of total units of the running stage (total 0: unknown). Cheap enough to call often. */
void bn_progress_update(bn_progress *p, uint64_t done, uint64_t total);
/* Ends the running stage (see the header for what it prints). */
void bn_progress_end(bn_progress *p);

/* A bn_model_options progress callback (user: bn_progress): stage name and done/total. */
void bn_progress_model_load(void *user, const char *stage, uint64_t done, uint64_t total);

#endif
