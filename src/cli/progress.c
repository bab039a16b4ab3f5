/*
 * progress.c: the stderr progress line of long work (see progress.h).
 */
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHOW_AFTER_MS 500.0   /* a live line appears once a stage has run this long */
#define REDRAW_MS 100.0       /* at most ten redraws a second */
#define SUMMARY_AFTER_MS 1000.0 /* a stage this long ends with a line (not on a terminal) */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bn_progress_init(bn_progress *p, const char *command, bool enabled) {
    memset(p, 0, sizeof *p);
    p->command = command;
    p->enabled = enabled;
    p->live = enabled && isatty(STDERR_FILENO);
}

void bn_progress_begin(bn_progress *p, const char *stage, const char *unit) {
    if (p->stage) bn_progress_end(p);
    p->stage = stage;
    p->unit = unit;
    p->started_ms = now_ms();
    p->drawn_ms = 0;
    p->done = p->total = 0;
}

static void draw(bn_progress *p, double now) {
    fprintf(stderr, "\r\033[Kbitnet %s: %s: ", p->command, p->stage);
    if (p->total)
        fprintf(stderr, "%llu/%llu %s, %.0f%%", (unsigned long long)p->done, (unsigned long long)p->total,
                p->unit ? p->unit : "", 100.0 * (double)p->done / (double)p->total);
    else if (p->done)
        fprintf(stderr, "%llu %s", (unsigned long long)p->done, p->unit ? p->unit : "");
    fprintf(stderr, " (%.1f s)", (now - p->started_ms) / 1e3);
    fflush(stderr);
    p->drawn = true;
    p->drawn_ms = now;
}

void bn_progress_update(bn_progress *p, uint64_t done, uint64_t total) {
    if (!p->stage) return;
    p->done = done;
    p->total = total;
    if (!p->live) return;
    double now = now_ms();
    if (now - p->started_ms < SHOW_AFTER_MS || now - p->drawn_ms < REDRAW_MS) return;
    draw(p, now);
}

void bn_progress_end(bn_progress *p) {
    if (!p->stage) return;
    double elapsed = now_ms() - p->started_ms;
    if (p->enabled && (p->drawn || elapsed >= SUMMARY_AFTER_MS)) {
        if (p->drawn) fputs("\r\033[K", stderr);
        fprintf(stderr, "bitnet %s: %s: done in %.1f s", p->command, p->stage, elapsed / 1e3);
        if (p->total) fprintf(stderr, " (%llu %s)", (unsigned long long)p->total, p->unit ? p->unit : "");
        fputc('\n', stderr);
    }
    p->drawn = false;
    p->stage = NULL;
}

void bn_progress_model_load(void *user, const char *stage, uint64_t done, uint64_t total) {
    bn_progress *p = user;
    if (!p->stage || strcmp(p->stage, stage) != 0) bn_progress_begin(p, stage, !strcmp(stage, "loading model") ? "layers" : NULL);
    bn_progress_update(p, done, total);
}
