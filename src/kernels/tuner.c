/*
 * tuner.c: times the variants of each kernel class on a model's own weights (see tuner.h).
 */
#include "kernels/tuner.h"

#include "kernels/cpu/ref_matmul.h"
#include "quant/quant_format.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *bn_tune_mode_name(bn_tune_mode mode) {
    return mode == BN_TUNE_OFF ? "off" : mode == BN_TUNE_FULL ? "full" : "quick";
}

bn_status bn_tune_mode_parse(bn_tune_mode *out, const char *name, bn_error *err) {
    for (int m = BN_TUNE_OFF; m <= BN_TUNE_FULL; m++)
        if (name && !strcmp(name, bn_tune_mode_name((bn_tune_mode)m))) {
            *out = (bn_tune_mode)m;
            return BN_OK;
        }
    return bn_error_set(err, BN_ERR_INVALID, "tune mode '%s' is not off, quick or full", name ? name : "");
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int bn_tune_candidates(bn_kernel_class c, bn_kernel_variant *out) {
    bn_kernel_variant all[BN_KERNEL_VARIANTS_MAX];
    const int n_all = bn_kernel_variants(c, all);
    const bool simd = bn_isa_supported(BN_ISA_AVX2) || bn_isa_supported(BN_ISA_NEON);
    int n = 0;
    for (int i = 0; i < n_all; i++) {
        bn_kernel_variant v = bn_kernel_variant_forced(c, all[i]);
        if (simd && v.isa == BN_ISA_SCALAR && !bn_isa_forced()) continue;
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) seen = bn_kernel_variant_equal(out[j], v);
        if (!seen) out[n++] = v;
    }
    return n;
}

/* ---- units of work ---- */

/* Rows [r0, r0 + n) of m as a matrix of its own (r0 a multiple of the I2_S tile height). */
static bn_ternary_matrix rows_view(const bn_ternary_matrix *m, int r0, int n) {
    bn_ternary_matrix view = *m;
    view.owned = NULL;
    view.owned_bytes = 0;
    view.rows = n;
    size_t row_bytes = (size_t)m->cols / 4;
    if (m->layout != BN_LAYOUT_I2S_TILE8) {
        const bn_quant_format *f = bn_quant_format_get(m->file_type);
        row_bytes = (size_t)m->cols / f->block_elements * f->block_bytes;
    }
    view.data = m->data + (size_t)r0 * row_bytes;
    return view;
}

/* A class's work list: row slices of the matrices (or the head) in order, and a cursor that
 * walks them across candidates and rounds. */
typedef struct slice_list {
    bn_ternary_matrix *slices;
    int n, cursor;
} slice_list;

/* Slices of at most max_weights weights (16-row multiples). */
static bool slice_matrices(slice_list *list, const bn_tune_workload *w, size_t max_weights) {
    int count = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < w->n_matrices; i++) {
            const bn_ternary_matrix *m = w->matrices[i];
            size_t per = max_weights / (size_t)m->cols / 16 * 16;
            const int step = per < 16 ? 16 : per > (size_t)m->rows ? m->rows : (int)per;
            for (int r0 = 0; r0 < m->rows; r0 += step, count++)
                if (pass == 1) list->slices[count] = rows_view(m, r0, m->rows - r0 < step ? m->rows - r0 : step);
        }
        if (pass == 0) {
            list->slices = count ? malloc((size_t)count * sizeof *list->slices) : NULL;
            if (count && !list->slices) return false;
            list->n = count;
            count = 0;
        }
    }
    list->cursor = 0;
    return true;
}

/* Activations for every distinct row length, up to max_tokens tokens. */
#define MAX_WIDTHS 8
typedef struct activations {
    int n_widths, max_tokens;
    int cols[MAX_WIDTHS];
    int8_t *q[MAX_WIDTHS];
    float *scales;
    int32_t *sums;
    float *y;
} activations;

static void activations_free(activations *a) {
    for (int i = 0; i < a->n_widths; i++) free(a->q[i]);
    free(a->scales), free(a->sums), free(a->y);
    memset(a, 0, sizeof *a);
}

static bool activations_make(activations *a, const bn_tune_workload *w, int max_tokens, size_t max_rows) {
    memset(a, 0, sizeof *a);
    a->max_tokens = max_tokens;
    /* scales and sums per token (I2_S) or per token, block (and lane) for the TQ formats' Q8_K:
     * sized for the widest matrix; their values only time the float step */
    size_t blocks = 1;
    for (int i = 0; i < w->n_matrices; i++)
        if ((size_t)w->matrices[i]->cols / 256 + 1 > blocks) blocks = (size_t)w->matrices[i]->cols / 256 + 1;
    a->scales = calloc((size_t)max_tokens * blocks, sizeof *a->scales);
    a->sums = calloc((size_t)max_tokens * blocks * 8, sizeof *a->sums);
    a->y = malloc((size_t)max_tokens * max_rows * sizeof *a->y);
    bool ok = a->scales && a->sums && a->y;
    uint32_t seed = 12345;
    for (int i = 0; ok && i < w->n_matrices; i++) {
        const int cols = w->matrices[i]->cols;
        bool known = false;
        for (int j = 0; j < a->n_widths; j++) known |= a->cols[j] == cols;
        if (known || a->n_widths == MAX_WIDTHS) continue;
        float *x = malloc((size_t)max_tokens * (size_t)cols * sizeof *x);
        int8_t *q = malloc((size_t)max_tokens * (size_t)cols);
        ok = x && q;
        for (size_t k = 0; ok && k < (size_t)max_tokens * (size_t)cols; k++) {
            seed = seed * 1664525u + 1013904223u;
            x[k] = (float)(seed >> 8) / 16777216.0f - 0.5f;
        }
        if (ok) bn_ref_quantize_activations(q, a->scales, a->sums, x, max_tokens, cols);
        free(x);
        if (!ok) {
            free(q);
            break;
        }
        a->cols[a->n_widths] = cols;
        a->q[a->n_widths++] = q;
    }
    if (!ok) activations_free(a);
    return ok;
}

static const int8_t *activations_for(const activations *a, int cols) {
    for (int j = 0; j < a->n_widths; j++)
        if (a->cols[j] == cols) return a->q[j];
    return NULL;
}

/* One timed pass: slices from the cursor until at least min_weights weights and min_ns
 * nanoseconds (at most one walk over the list per min_weights); ns per 1000 weights. */
static double ternary_pass(slice_list *list, const activations *a, const bn_tune_workload *w,
                           int n_tokens, size_t min_weights, double min_ns) {
    size_t weights = 0;
    const double t0 = now_ns();
    double elapsed = 0;
    while (weights < min_weights || elapsed < min_ns) {
        const bn_ternary_matrix *m = &list->slices[list->cursor];
        list->cursor = (list->cursor + 1) % list->n;
        const int8_t *q = activations_for(a, m->cols);
        if (!q) continue; /* a width beyond MAX_WIDTHS: not part of the sample */
        bn_ternary_matmul(w->pool, a->y, m, q, a->scales, a->sums, n_tokens);
        weights += (size_t)m->rows * (size_t)m->cols;
        elapsed = now_ns() - t0;
    }
    return elapsed / ((double)weights / 1000.0);
}

typedef struct head_work {
    int n_slices, cursor, slice_rows;
    const float *x;
    float *y;
} head_work;

static double head_pass(head_work *h, const bn_tune_workload *w, size_t min_weights, double min_ns) {
    size_t weights = 0;
    const double t0 = now_ns();
    double elapsed = 0;
    while (weights < min_weights || elapsed < min_ns) {
        const int r0 = h->cursor * h->slice_rows;
        const int rows = w->head_rows - r0 < h->slice_rows ? w->head_rows - r0 : h->slice_rows;
        h->cursor = (h->cursor + 1) % h->n_slices;
        bn_f16_matmul(w->pool, h->y, w->head + (size_t)r0 * (size_t)w->head_cols, h->x, rows,
                      w->head_cols, 1);
        weights += (size_t)rows * (size_t)w->head_cols;
        elapsed = now_ns() - t0;
    }
    return elapsed / ((double)weights / 1000.0);
}

#define ATTENTION_POSITIONS 256

typedef struct attention_work {
    void *k, *v;
    float *q, *out, *scratch;
} attention_work;

static double attention_pass(const attention_work *a, const bn_tune_workload *w, double min_ns) {
    int calls = 0;
    const double t0 = now_ns();
    double elapsed = 0;
    while (elapsed < min_ns) {
        bn_attention(a->out, a->q, a->k, a->v, w->kv_type_k, w->kv_type_v, w->n_heads, w->n_kv_heads,
                     w->head_dim, ATTENTION_POSITIONS - 1, a->scratch);
        calls++;
        elapsed = now_ns() - t0;
    }
    return elapsed / calls;
}

/* ---- rounds ---- */

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct tune_context {
    const bn_tune_workload *w;
    slice_list gemv_slices, gemm_slices;
    activations act;
    head_work head;
    attention_work attention;
} tune_context;

/* One timed pass of class c (its variant already bound). */
static double class_pass(tune_context *t, bn_kernel_class c) {
    switch (c) {
    case BN_KCLASS_GEMV: return ternary_pass(&t->gemv_slices, &t->act, t->w, 1, (size_t)16 << 20, 2e5);
    case BN_KCLASS_GEMM_FEW: return ternary_pass(&t->gemv_slices, &t->act, t->w, 4, (size_t)16 << 20, 2e5);
    case BN_KCLASS_GEMM:
        return ternary_pass(&t->gemm_slices, &t->act, t->w, t->act.max_tokens, (size_t)4 << 20, 5e5);
    case BN_KCLASS_HEAD: return head_pass(&t->head, t->w, (size_t)8 << 20, 2e5);
    case BN_KCLASS_ATTENTION: return attention_pass(&t->attention, t->w, 1e5);
    case BN_KCLASS_COUNT: break;
    }
    return 0;
}

static bool class_has_work(const tune_context *t, bn_kernel_class c) {
    switch (c) {
    case BN_KCLASS_GEMV:
    case BN_KCLASS_GEMM_FEW: return t->gemv_slices.n > 0;
    case BN_KCLASS_GEMM: return t->gemm_slices.n > 0 && t->act.max_tokens > BN_KCLASS_FEW_TOKENS_MAX;
    case BN_KCLASS_HEAD: return t->head.n_slices > 0;
    case BN_KCLASS_ATTENTION: return t->attention.k != NULL;
    case BN_KCLASS_COUNT: break;
    }
    return false;
}

/* Milliseconds of the quick budget per class (about 300 in all); full takes ten times as long. */
static const double class_budget_ms[BN_KCLASS_COUNT] = {90, 40, 60, 80, 30};

static void tune_class(tune_context *t, bn_kernel_class c, bn_tune_mode mode, bn_tune_class_result *r) {
    memset(r, 0, sizeof *r);
    bn_kernel_variant candidates[BN_KERNEL_VARIANTS_MAX];
    const int n = bn_tune_candidates(c, candidates);
    if (n == 0) return;
    r->n_candidates = n;
    memcpy(r->candidates, candidates, (size_t)n * sizeof *candidates);
    r->chosen = candidates[0];
    if (n == 1 || !class_has_work(t, c)) {
        if (!class_has_work(t, c)) r->n_candidates = 0;
        return;
    }
    const int min_rounds = mode == BN_TUNE_FULL ? 5 : 3, max_rounds = mode == BN_TUNE_FULL ? 41 : 9;
    const double deadline = now_ns() + class_budget_ms[c] * (mode == BN_TUNE_FULL ? 10 : 1) * 1e6;
    double samples[BN_KERNEL_VARIANTS_MAX][41];
    int rounds = 0;
    /* round -1 is a warm-up (code, page tables, the predictors): not kept */
    for (int round = -1; round < max_rounds && (round < min_rounds || now_ns() < deadline); round++) {
        for (int k = 0; k < n; k++) {
            const int i = (k + (round < 0 ? 0 : round)) % n; /* who goes first rotates */
            bn_kernel_bind(c, candidates[i]);
            const double score = class_pass(t, c);
            if (round >= 0) samples[i][round] = score;
        }
        if (round >= 0) rounds = round + 1;
    }
    r->rounds = rounds;
    int best = 0;
    for (int i = 0; i < n; i++) {
        qsort(samples[i], (size_t)rounds, sizeof **samples, compare_doubles);
        r->ns_per_kweight[i] = rounds % 2 ? samples[i][rounds / 2]
                                          : (samples[i][rounds / 2 - 1] + samples[i][rounds / 2]) / 2;
        if (r->ns_per_kweight[i] < r->ns_per_kweight[best]) best = i;
    }
    r->chosen = candidates[best];
}

static void context_free(tune_context *t) {
    free(t->gemv_slices.slices);
    free(t->gemm_slices.slices);
    activations_free(&t->act);
    free((void *)t->head.x);
    free(t->head.y);
    free(t->attention.k), free(t->attention.v), free(t->attention.q), free(t->attention.out);
    free(t->attention.scratch);
}

static bool context_make(tune_context *t, const bn_tune_workload *w) {
    memset(t, 0, sizeof *t);
    t->w = w;
    size_t max_rows = 1;
    for (int i = 0; i < w->n_matrices; i++)
        if ((size_t)w->matrices[i]->rows > max_rows) max_rows = (size_t)w->matrices[i]->rows;
    const int prompt = w->prompt_tokens < 1 ? 1 : w->prompt_tokens > 64 ? 64 : w->prompt_tokens;
    /* gemm slices of at most 256 rows keep the activations' y small and a pass short */
    if (!slice_matrices(&t->gemv_slices, w, (size_t)8 << 20) || !slice_matrices(&t->gemm_slices, w, (size_t)1 << 20) ||
        !activations_make(&t->act, w, prompt > 4 ? prompt : 4, max_rows))
        return false;
    if (w->head && w->head_rows > 0 && w->head_cols > 0) {
        const size_t rows = ((size_t)4 << 20) / (size_t)w->head_cols;
        t->head.slice_rows = rows < 16 ? 16 : (int)(rows / 16 * 16);
        if (t->head.slice_rows > w->head_rows) t->head.slice_rows = w->head_rows;
        t->head.n_slices = (w->head_rows + t->head.slice_rows - 1) / t->head.slice_rows;
        float *x = malloc((size_t)w->head_cols * sizeof *x);
        t->head.y = malloc((size_t)t->head.slice_rows * sizeof *t->head.y);
        if (!x || !t->head.y) {
            free(x);
            return false;
        }
        for (int i = 0; i < w->head_cols; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
        t->head.x = x;
    }
    if (w->n_heads > 0 && w->n_kv_heads > 0 && w->head_dim > 0) {
        const size_t values = (size_t)ATTENTION_POSITIONS * (size_t)w->n_kv_heads * (size_t)w->head_dim;
        const size_t k_bytes = bn_kv_type_bytes(w->kv_type_k, values);
        const size_t v_bytes = bn_kv_type_bytes(w->kv_type_v, values);
        attention_work *a = &t->attention;
        a->k = malloc(k_bytes);
        a->v = malloc(v_bytes);
        a->q = malloc((size_t)w->n_heads * (size_t)w->head_dim * sizeof *a->q);
        a->out = malloc((size_t)w->n_heads * (size_t)w->head_dim * sizeof *a->out);
        a->scratch = malloc(ATTENTION_POSITIONS * sizeof *a->scratch);
        if (!a->k || !a->v || !a->q || !a->out || !a->scratch) return false;
        /* small values (0x2000 as F16 is about 0.0078; as two F16 halves of an F32 a tiny one; as
         * q8_0 blocks scales of 0.0078 and q of 0 or 32) */
        for (size_t i = 0; i < k_bytes / 2; i++) ((uint16_t *)a->k)[i] = 0x2000;
        for (size_t i = 0; i < v_bytes / 2; i++) ((uint16_t *)a->v)[i] = 0x2000;
        for (int i = 0; i < w->n_heads * w->head_dim; i++) a->q[i] = (float)(i % 7) * 0.1f;
    }
    return true;
}

bn_status bn_tune_run(const bn_tune_workload *workload, bn_tune_mode mode, bn_tune_result *out,
                      bn_error *err) {
    memset(out, 0, sizeof *out);
    if (mode == BN_TUNE_OFF) return BN_OK;
    const double start = now_ns();
    tune_context t;
    if (!context_make(&t, workload)) {
        context_free(&t);
        return bn_error_set(err, BN_ERR_NOMEM, "kernel tuner: out of memory for its activations");
    }
    /* restore afterwards what was bound before */
    bn_kernel_variant before[BN_KCLASS_COUNT];
    bool was_bound[BN_KCLASS_COUNT];
    for (int c = 0; c < BN_KCLASS_COUNT; c++) was_bound[c] = bn_kernel_bound((bn_kernel_class)c, &before[c]);
    for (int c = 0; c < BN_KCLASS_COUNT; c++) tune_class(&t, (bn_kernel_class)c, mode, &out->classes[c]);
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        if (was_bound[c]) bn_kernel_bind((bn_kernel_class)c, before[c]);
        else bn_kernel_unbind((bn_kernel_class)c);
    }
    context_free(&t);
    out->elapsed_ms = (now_ns() - start) / 1e6;
    return BN_OK;
}

void bn_tune_apply(const bn_tune_result *result) {
    for (int c = 0; c < BN_KCLASS_COUNT; c++)
        if (result->classes[c].n_candidates > 0) bn_kernel_bind((bn_kernel_class)c, result->classes[c].chosen);
}
