/*
 * crossval.c: logits comparison metrics, the model and subprocess logits sources, and lockstep
 * greedy decoding (see crossval.h).
 */
#include "tools/crossval.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- metrics ---- */

/* The five highest logits' ids, highest first (lowest id among equals); NaN counts as -inf. */
static int top5(int32_t ids[5], const float *x, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        float v = isnan(x[i]) ? -INFINITY : x[i];
        int at = k;
        while (at > 0) {
            float u = isnan(x[ids[at - 1]]) ? -INFINITY : x[ids[at - 1]];
            if (u >= v) break;
            at--;
        }
        if (at >= 5) continue;
        int last = k < 5 ? k : 4;
        for (int j = last; j > at; j--) ids[j] = ids[j - 1];
        ids[at] = (int32_t)i;
        if (k < 5) k++;
    }
    return k;
}

/* log-softmax normaliser: max + log(sum exp(x - max)) in double. */
static double log_sum_exp(const float *x, size_t n) {
    double max = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)x[i] - max);
    return max + log(sum);
}

void bn_crossval_compare(bn_crossval_position *out, const float *engine, const float *other,
                         size_t n_vocab) {
    double dot = 0.0, ne = 0.0, no = 0.0, max_diff = 0.0;
    for (size_t i = 0; i < n_vocab; i++) {
        double a = engine[i], b = other[i];
        dot += a * b;
        ne += a * a;
        no += b * b;
        double d = fabs(a - b);
        if (d > max_diff || isnan(d)) max_diff = d;
    }
    out->cosine = ne == 0.0 && no == 0.0 ? 1.0 : ne == 0.0 || no == 0.0 ? 0.0
                                                 : dot / (sqrt(ne) * sqrt(no));
    out->max_abs_diff = max_diff;
    double lse_e = log_sum_exp(engine, n_vocab), lse_o = log_sum_exp(other, n_vocab);
    double kl = 0.0;
    for (size_t i = 0; i < n_vocab; i++) {
        double lp = (double)other[i] - lse_o;
        double lq = (double)engine[i] - lse_e;
        double p = exp(lp);
        if (p > 0.0) kl += p * (lp - lq);
    }
    out->kl = kl < 0.0 ? 0.0 : kl; /* rounding can give -1e-17 */
    if (isnan(kl)) out->kl = NAN;
    int32_t te[5], to[5];
    int ke = top5(te, engine, n_vocab), ko = top5(to, other, n_vocab);
    out->top1_engine = ke ? te[0] : -1;
    out->top1_other = ko ? to[0] : -1;
    out->top5_overlap = 0;
    for (int i = 0; i < ke; i++)
        for (int j = 0; j < ko; j++) out->top5_overlap += te[i] == to[j];
}

void bn_crossval_summarize(bn_crossval_summary *out, const bn_crossval_position *p, size_t n,
                           const float *engine, const float *other, size_t n_vocab) {
    memset(out, 0, sizeof *out);
    out->n_positions = n;
    out->min_cosine = INFINITY;
    double sum_cos = 0.0, sum_kl = 0.0, sum_top5 = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i].cosine >= out->min_cosine)) {
            out->min_cosine = p[i].cosine;
            out->min_cosine_pos = i;
        }
        sum_cos += p[i].cosine;
        sum_kl += p[i].kl;
        sum_top5 += p[i].top5_overlap;
        if (!(p[i].max_abs_diff <= out->max_abs_diff)) out->max_abs_diff = p[i].max_abs_diff;
        if (!(p[i].kl <= out->max_kl)) out->max_kl = p[i].kl;
        out->n_top1_agree += p[i].top1_engine == p[i].top1_other;
    }
    if (n > 0) {
        out->mean_cosine = sum_cos / (double)n;
        out->mean_kl = sum_kl / (double)n;
        out->mean_top5_overlap = sum_top5 / (double)n;
        out->pos0_max_abs_diff = p[0].max_abs_diff;
    }
    for (size_t i = 0; i < n * n_vocab; i++)
        if (!isfinite(engine[i]) || !isfinite(other[i])) {
            out->any_nonfinite = true;
            break;
        }
}

void bn_crossval_top2(int32_t *top1, double *gap, const float *logits, size_t n_vocab) {
    int32_t ids[5];
    int k = top5(ids, logits, n_vocab);
    *top1 = k ? ids[0] : -1;
    *gap = k >= 2 ? (double)logits[ids[0]] - (double)logits[ids[1]] : INFINITY;
}

/* ---- model source ---- */

typedef struct model_source {
    bn_logits_source base;
    bn_model *model;
    bn_isa isa;
    bn_sequence *seq;
    bn_tokens cached; /* ids in seq's cache */
    int capacity;
} model_source;

/* Makes seq hold tokens[0..n) and writes the logits of positions from..n-1 to out (rows in
 * order). Reuses the cached prefix when it covers positions before `from`. */
static bn_status model_run(model_source *m, float *out, const int32_t *tokens, size_t n,
                           size_t from, bn_error *err) {
    if (n == 0) return bn_error_set(err, BN_ERR_INVALID, "crossval: no tokens");
    bn_isa_set_active(m->isa);
    if (m->seq && (size_t)m->capacity < n) {
        bn_sequence_free(m->seq);
        m->seq = NULL;
    }
    bn_status st;
    if (!m->seq) {
        int capacity = (int)(n < 256 ? 256 : n);
        const int train = bn_model_get_config(m->model)->n_ctx_train;
        if (capacity > train && (int)n <= train) capacity = train;
        if ((st = bn_sequence_create(m->model, capacity, &m->seq, err)) != BN_OK) return st;
        m->capacity = capacity;
        m->cached.n = 0;
    }
    size_t common = 0;
    while (common < m->cached.n && common < from && m->cached.ids[common] == tokens[common]) common++;
    if (common < m->cached.n) {
        bn_sequence_clear(m->seq);
        m->cached.n = 0;
        common = 0;
    }
    const size_t n_vocab = m->base.n_vocab;
    enum { CHUNK = 64 };
    bn_batch_entry entries[CHUNK];
    size_t row = 0;
    for (size_t begin = common; begin < n; begin += CHUNK) {
        size_t count = n - begin < CHUNK ? n - begin : CHUNK;
        size_t n_want = 0;
        for (size_t i = 0; i < count; i++) {
            bool want = begin + i >= from;
            entries[i] = (bn_batch_entry){m->seq, (int32_t)(begin + i), tokens[begin + i], want};
            n_want += want;
        }
        st = bn_model_decode(m->model, entries, (int)count, n_want ? out + row * n_vocab : NULL,
                             err);
        if (st != BN_OK) return st;
        row += n_want;
        for (size_t i = 0; i < count; i++)
            if ((st = bn_tokens_push(&m->cached, tokens[begin + i], err)) != BN_OK) return st;
    }
    return BN_OK;
}

static bn_status model_all(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                           bn_error *err) {
    return model_run((model_source *)src->impl, out, tokens, n, 0, err);
}

static bn_status model_last(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                            bn_error *err) {
    return model_run((model_source *)src->impl, out, tokens, n, n - 1, err);
}

static void model_destroy(bn_logits_source *src) {
    model_source *m = src->impl;
    bn_sequence_free(m->seq);
    bn_tokens_free(&m->cached);
    free(m);
}

bn_status bn_logits_source_model(bn_logits_source **out, bn_model *model, bn_isa isa,
                                 const char *name, bn_error *err) {
    *out = NULL;
    if (!bn_isa_supported(isa))
        return bn_error_set(err, BN_ERR_UNSUPPORTED, "this CPU does not support the %s kernels",
                            bn_isa_name(isa));
    model_source *m = calloc(1, sizeof *m);
    if (!m) return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    m->model = model;
    m->isa = isa;
    m->base = (bn_logits_source){name, (size_t)bn_model_get_config(model)->n_vocab, model_all,
                                 model_last, NULL, model_destroy, m};
    *out = &m->base;
    return BN_OK;
}

/* ---- subprocess source ---- */

typedef struct command_source {
    bn_logits_source base;
    char *command;
    char *model_quoted;
} command_source;

/* 'text' with every ' written as '\'' (caller frees). */
static char *shell_quote(const char *text) {
    size_t n = 3;
    for (const char *p = text; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *w = q;
    if (!q) return NULL;
    *w++ = '\'';
    for (const char *p = text; *p; p++) {
        if (*p == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\'';
    *w = '\0';
    return q;
}

/* "1,2,3" (caller frees). */
static char *join_ids(const int32_t *ids, size_t n) {
    char *s = malloc(n * 12 + 1);
    if (!s) return NULL;
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) len += (size_t)sprintf(s + len, i ? ",%d" : "%d", (int)ids[i]);
    return s;
}

static bn_status run_shell(const char *cmd, bn_error *err) {
    fflush(NULL);
    int status = system(cmd);
    if (status == -1) return bn_error_set(err, BN_ERR_IO, "cannot run `%s`: %s", cmd, strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return bn_error_set(err, BN_ERR_IO, "`%.300s` failed (exit status %d)", cmd,
                            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return BN_OK;
}

static bn_status command_all(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                             bn_error *err) {
    command_source *c = src->impl;
    const char *tmpdir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/bitnet-crossval-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return bn_error_set(err, BN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    close(fd);
    bn_status st = BN_OK;
    char *ids = join_ids(tokens, n), *cmd = NULL;
    size_t cmd_len = strlen(c->command) + strlen(c->model_quoted) + (ids ? strlen(ids) : 0) +
                     strlen(path) + 64;
    if (!ids || !(cmd = malloc(cmd_len))) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    snprintf(cmd, cmd_len, "%s logits -m %s --tokens %s --out '%s' > /dev/null", c->command,
             c->model_quoted, ids, path);
    if ((st = run_shell(cmd, err)) != BN_OK) goto done;
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = bn_error_set(err, BN_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    size_t want = n * src->n_vocab;
    size_t got = fread(out, sizeof *out, want, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != want || extra != EOF)
        st = bn_error_set(err, BN_ERR_FORMAT,
                          "%s: the reference wrote %s than %zu x %zu float32 logits", path,
                          got != want ? "fewer" : "more", n, src->n_vocab);
done:
    unlink(path);
    free(cmd);
    free(ids);
    return st;
}

static bn_status command_last(bn_logits_source *src, float *out, const int32_t *tokens, size_t n,
                              bn_error *err) {
    float *all = malloc(n * src->n_vocab * sizeof *all);
    if (!all) return bn_error_set(err, BN_ERR_NOMEM, "out of memory for %zu logits", n * src->n_vocab);
    bn_status st = command_all(src, all, tokens, n, err);
    if (st == BN_OK) memcpy(out, all + (n - 1) * src->n_vocab, src->n_vocab * sizeof *out);
    free(all);
    return st;
}

/* Runs cmd and appends every run of digits it prints to *ids. */
static bn_status run_for_ids(bn_tokens *ids, const char *cmd, bn_error *err) {
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    if (!p) return bn_error_set(err, BN_ERR_IO, "cannot run `%.300s`: %s", cmd, strerror(errno));
    bn_status st = BN_OK;
    int c;
    long value = -1;
    while ((c = fgetc(p)) != EOF) {
        if (st != BN_OK) continue; /* drain the pipe */
        if (isdigit(c)) {
            value = (value < 0 ? 0 : value * 10) + (c - '0');
            if (value > INT32_MAX) value = INT32_MAX;
        } else if (value >= 0) {
            st = bn_tokens_push(ids, (int32_t)value, err);
            value = -1;
        }
    }
    if (st == BN_OK && value >= 0) st = bn_tokens_push(ids, (int32_t)value, err);
    int status = pclose(p);
    if (st == BN_OK && (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0))
        st = bn_error_set(err, BN_ERR_IO, "`%.300s` failed (exit status %d)", cmd,
                          status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return st;
}

static bn_status command_greedy(bn_logits_source *src, int32_t *out, const int32_t *tokens,
                                size_t n, int n_steps, bn_error *err) {
    command_source *c = src->impl;
    char *ids = join_ids(tokens, n), *cmd = NULL;
    bn_tokens got = {0};
    bn_status st = BN_OK;
    size_t len = strlen(c->command) + strlen(c->model_quoted) + (ids ? strlen(ids) : 0) + 64;
    if (!ids || !(cmd = malloc(len))) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the first line holds the ids; the decoded text after it is not read */
    snprintf(cmd, len, "%s generate -m %s --tokens %s -n %d | head -n 1", c->command,
             c->model_quoted, ids, n_steps);
    if ((st = run_for_ids(&got, cmd, err)) != BN_OK) goto done;
    if (got.n != (size_t)n_steps) {
        st = bn_error_set(err, BN_ERR_FORMAT, "`%.300s` printed %zu ids, expected %d", cmd, got.n,
                          n_steps);
        goto done;
    }
    memcpy(out, got.ids, (size_t)n_steps * sizeof *out);
done:
    bn_tokens_free(&got);
    free(cmd);
    free(ids);
    return st;
}

static void command_destroy(bn_logits_source *src) {
    command_source *c = src->impl;
    free(c->command);
    free(c->model_quoted);
    free(c);
}

bn_status bn_logits_source_command(bn_logits_source **out, const char *command, const char *model,
                                   size_t n_vocab, bn_error *err) {
    *out = NULL;
    command_source *c = calloc(1, sizeof *c);
    if (c) {
        c->command = strdup(command);
        c->model_quoted = shell_quote(model);
    }
    if (!c || !c->command || !c->model_quoted) {
        if (c) command_destroy(&c->base);
        return bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    }
    c->base = (bn_logits_source){"reference", n_vocab,      command_all, command_last,
                                 command_greedy, command_destroy, c};
    *out = &c->base;
    return BN_OK;
}

bn_status bn_crossval_command_tokenize(bn_tokens *ids, const char *command, const char *model,
                                       const char *text, bn_error *err) {
    char *qm = shell_quote(model), *qt = shell_quote(text), *cmd = NULL;
    bn_status st = BN_OK;
    size_t len = strlen(command) + (qm ? strlen(qm) : 0) + (qt ? strlen(qt) : 0) + 64;
    if (!qm || !qt || !(cmd = malloc(len)))
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    else {
        snprintf(cmd, len, "%s tokenize -m %s --prompt %s", command, qm, qt);
        st = run_for_ids(ids, cmd, err);
    }
    free(cmd);
    free(qm);
    free(qt);
    return st;
}

/* ---- greedy ---- */

void bn_crossval_greedy_free(bn_crossval_greedy *g) {
    free(g->engine_ids);
    free(g->other_ids);
    free(g->other_gaps);
    memset(g, 0, sizeof *g);
}

/* n_steps greedy ids (and each step's top-2 gap when gaps is non-NULL) stepping src->last. */
static bn_status greedy_stepped(bn_logits_source *src, int32_t *ids, double *gaps,
                                const int32_t *tokens, size_t n, int n_steps, bn_error *err) {
    int32_t *seq = malloc((n + (size_t)n_steps) * sizeof *seq);
    float *logits = malloc(src->n_vocab * sizeof *logits);
    bn_status st = BN_OK;
    if (!seq || !logits) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(seq, tokens, n * sizeof *seq);
    for (int step = 0; step < n_steps; step++) {
        if ((st = src->last(src, logits, seq, n + (size_t)step, err)) != BN_OK) goto done;
        double gap;
        bn_crossval_top2(&ids[step], &gap, logits, src->n_vocab);
        if (gaps) gaps[step] = gap;
        seq[n + (size_t)step] = ids[step];
    }
done:
    free(seq);
    free(logits);
    return st;
}

/* The top-2 gap of src after tokens[0..n) followed by extra[0..n_extra). */
static bn_status gap_after(double *gap, bn_logits_source *src, const int32_t *tokens, size_t n,
                           const int32_t *extra, size_t n_extra, bn_error *err) {
    int32_t *seq = malloc((n + n_extra) * sizeof *seq);
    float *logits = malloc(src->n_vocab * sizeof *logits);
    bn_status st = BN_OK;
    if (!seq || !logits) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
    } else {
        memcpy(seq, tokens, n * sizeof *seq);
        memcpy(seq + n, extra, n_extra * sizeof *seq);
        int32_t top1;
        if ((st = src->last(src, logits, seq, n + n_extra, err)) == BN_OK)
            bn_crossval_top2(&top1, gap, logits, src->n_vocab);
    }
    free(seq);
    free(logits);
    return st;
}

bn_status bn_crossval_run_greedy(bn_crossval_greedy *out, bn_logits_source *engine,
                                 bn_logits_source *other, const int32_t *tokens, size_t n,
                                 int n_steps, bn_error *err) {
    memset(out, 0, sizeof *out);
    out->first_diff = -1;
    if (other->n_vocab != engine->n_vocab)
        return bn_error_set(err, BN_ERR_MISMATCH, "vocabulary sizes differ: %zu and %zu",
                            engine->n_vocab, other->n_vocab);
    size_t steps = n_steps > 0 ? (size_t)n_steps : 1;
    out->engine_ids = malloc(steps * sizeof *out->engine_ids);
    out->other_ids = malloc(steps * sizeof *out->other_ids);
    double *engine_gaps = malloc(steps * sizeof *engine_gaps);
    double *other_gaps = out->other_gaps = malloc(steps * sizeof *other_gaps);
    bn_status st = BN_OK;
    if (!out->engine_ids || !out->other_ids || !engine_gaps || !other_gaps) {
        st = bn_error_set(err, BN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = greedy_stepped(engine, out->engine_ids, engine_gaps, tokens, n, n_steps, err)) != BN_OK)
        goto done;
    st = other->greedy ? other->greedy(other, out->other_ids, tokens, n, n_steps, err)
                       : greedy_stepped(other, out->other_ids, other_gaps, tokens, n, n_steps, err);
    if (st != BN_OK) goto done;
    out->n_steps = n_steps;
    if (other->greedy)
        for (size_t i = 0; i < steps; i++) other_gaps[i] = NAN;
    for (int i = 0; i < n_steps; i++) {
        if (out->engine_ids[i] == out->other_ids[i]) continue;
        out->first_diff = i;
        out->engine_gap = engine_gaps[i];
        /* up to step i both sides saw the same text */
        if (other->greedy)
            st = gap_after(&out->other_gap, other, tokens, n, out->engine_ids, (size_t)i, err);
        else
            out->other_gap = other_gaps[i];
        other_gaps[i] = out->other_gap;
        break;
    }
done:
    free(engine_gaps);
    if (st != BN_OK) bn_crossval_greedy_free(out);
    return st;
}

bool bn_crossval_greedy_rule(const bn_crossval_greedy *g, double tie, int *tie_step) {
    int last = g->first_diff < 0 ? g->n_steps - 1 : g->first_diff;
    *tie_step = -1;
    for (int i = 0; i <= last; i++)
        if (g->other_gaps && g->other_gaps[i] < tie) { /* NAN (unknown) never counts */
            *tie_step = i;
            break;
        }
    return g->first_diff < 0 || *tie_step >= 0;
}
