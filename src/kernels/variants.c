/*
 * variants.c: the variant each kernel class runs (see variants.h). Bindings are packed into one
 * atomic int per class so dispatchers on any thread read them without locks; the environment's
 * forcing is parsed once.
 */
#include "kernels/variants.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_names[BN_KCLASS_COUNT] = {"gemv", "gemm_few", "gemm", "head",
                                                         "attention"};
static const char *const hint_names[BN_PREFETCH_COUNT] = {"t0", "nta", "none"};

const char *bn_kernel_class_name(bn_kernel_class c) {
    return c >= 0 && c < BN_KCLASS_COUNT ? class_names[c] : "unknown";
}

bn_kernel_class bn_kernel_class_of_tokens(int n_tokens) {
    return n_tokens <= 1 ? BN_KCLASS_GEMV
                         : n_tokens <= BN_KCLASS_FEW_TOKENS_MAX ? BN_KCLASS_GEMM_FEW : BN_KCLASS_GEMM;
}

static bool has_prefetch(bn_kernel_class c) { return c == BN_KCLASS_GEMV || c == BN_KCLASS_HEAD; }
static bool has_gfni(bn_kernel_class c) { return c == BN_KCLASS_GEMV; }
static bool has_vnni(bn_kernel_class c) { return c != BN_KCLASS_ATTENTION; }
static bool has_amx(bn_kernel_class c) { return c == BN_KCLASS_GEMM; }

/* Knobs the class or path lacks set to their neutral values. */
static bn_kernel_variant normalize(bn_kernel_class c, bn_kernel_variant v) {
    if (v.isa != BN_ISA_AVX512 || !has_prefetch(c)) v.prefetch = BN_PREFETCH_T0;
    if (v.isa != BN_ISA_AVX512 || !has_gfni(c) || !bn_i2s_gfni_supported()) v.gfni = false;
    if (v.isa != BN_ISA_AVX2 || !has_vnni(c) || !bn_avxvnni_supported()) v.vnni = false;
    if (v.isa != BN_ISA_AVX512 || !has_amx(c) || !bn_amx_supported()) v.amx = false;
    return v;
}

bool bn_kernel_variant_equal(bn_kernel_variant a, bn_kernel_variant b) {
    return a.isa == b.isa && a.prefetch == b.prefetch && a.gfni == b.gfni && a.vnni == b.vnni &&
           a.amx == b.amx;
}

/* Whether v names a variant of class c on some CPU (its knobs are the class's and the path's). */
static bool is_variant_of(bn_kernel_variant v, bn_kernel_class c) {
    const bool hinted = v.isa == BN_ISA_AVX512 && has_prefetch(c);
    return (hinted || v.prefetch == BN_PREFETCH_T0) && (!v.gfni || (hinted && has_gfni(c))) &&
           (!v.vnni || (v.isa == BN_ISA_AVX2 && has_vnni(c))) &&
           (!v.amx || (v.isa == BN_ISA_AVX512 && has_amx(c)));
}

/* "path[.hint][.gfni][.vnni][.amx]" with the knobs v has. */
static void format_name(bn_kernel_variant v, bn_kernel_class c, char *buf, size_t size) {
    const bool hinted = v.isa == BN_ISA_AVX512 && has_prefetch(c);
    snprintf(buf, size, "%s%s%s%s%s%s", bn_isa_name(v.isa), hinted ? "." : "",
             hinted ? hint_names[v.prefetch] : "", v.gfni ? ".gfni" : "", v.vnni ? ".vnni" : "",
             v.amx ? ".amx" : "");
}

void bn_kernel_variant_name(bn_kernel_variant v, bn_kernel_class c, char *buf, size_t size) {
    format_name(normalize(c, v), c, buf, size);
}

int bn_kernel_variants(bn_kernel_class c, bn_kernel_variant *out) {
    int n = 0;
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        if (!bn_isa_supported((bn_isa)isa)) continue;
        if (isa == BN_ISA_AVX2 && has_vnni(c) && bn_avxvnni_supported()) /* the default first */
            out[n++] = (bn_kernel_variant){.isa = (bn_isa)isa, .vnni = true};
        if (isa == BN_ISA_AVX512 && has_amx(c) && bn_amx_supported())
            out[n++] = (bn_kernel_variant){.isa = (bn_isa)isa, .amx = true};
        if (isa != BN_ISA_AVX512 || !has_prefetch(c)) {
            out[n++] = (bn_kernel_variant){.isa = (bn_isa)isa};
            continue;
        }
        const int gfni_options = has_gfni(c) && bn_i2s_gfni_supported() ? 2 : 1;
        for (int hint = 0; hint < BN_PREFETCH_COUNT; hint++)
            for (int g = gfni_options - 1; g >= 0; g--) /* with GFNI first: the default */
                out[n++] = (bn_kernel_variant){.isa = (bn_isa)isa, .prefetch = (bn_prefetch_hint)hint, .gfni = g == 1};
    }
    return n;
}

bn_status bn_kernel_variant_parse(bn_kernel_variant *out, const char *name, bn_kernel_class c,
                                  bn_error *err) {
    /* every name the class can have on any CPU, then whether this one runs it */
    for (int isa = 0; isa < BN_ISA_COUNT; isa++)
        for (int hint = 0; hint < BN_PREFETCH_COUNT; hint++)
            for (int knobs = 0; knobs < 8; knobs++) { /* gfni, vnni, amx */
                bn_kernel_variant v = {.isa = (bn_isa)isa, .prefetch = (bn_prefetch_hint)hint,
                                       .gfni = knobs & 1, .vnni = knobs & 2, .amx = knobs & 4};
                if (!is_variant_of(v, c)) continue;
                char text[BN_KERNEL_VARIANT_NAME_MAX];
                format_name(v, c, text, sizeof text);
                if (strcmp(text, name) != 0) continue;
                if (!bn_isa_supported(v.isa) || (v.gfni && !bn_i2s_gfni_supported()) ||
                    (v.vnni && !bn_avxvnni_supported()) || (v.amx && !bn_amx_supported()))
                    return bn_error_set(err, BN_ERR_UNSUPPORTED, "%s variant '%s': this CPU cannot run it",
                                        bn_kernel_class_name(c), name);
                *out = v;
                return BN_OK;
            }
    return bn_error_set(err, BN_ERR_INVALID, "unknown %s variant '%s' (expected %s)",
                        bn_kernel_class_name(c), name,
                        has_gfni(c) ? "scalar, avx2[.vnni], avx512.t0|nta|none[.gfni], neon or neondot"
                        : has_prefetch(c) ? "scalar, avx2[.vnni], avx512.t0|nta|none, neon or neondot"
                        : has_amx(c)      ? "scalar, avx2[.vnni], avx512[.amx], neon or neondot"
                        : has_vnni(c)     ? "scalar, avx2[.vnni], avx512, neon or neondot"
                                          : "scalar, avx2, avx512, neon or neondot");
}

/* ---- forcing from the environment (parsed once) ---- */

typedef struct forcing {
    bool ok;                                /* every variable parsed */
    char message[160];                      /* the first problem when not ok */
    bool variant_set[BN_KCLASS_COUNT];
    bn_kernel_variant variant[BN_KCLASS_COUNT];
    int prefetch;                           /* -1: not forced */
    bool no_gfni, no_vnni, no_amx;
} forcing;

static void parse_variant_list(forcing *f, const char *list) {
    char copy[512];
    if (strlen(list) >= sizeof copy) {
        snprintf(f->message, sizeof f->message, "BITNET_VARIANT: value too long");
        f->ok = false;
        return;
    }
    strcpy(copy, list);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        int c = 0;
        if (eq) {
            *eq = '\0';
            while (c < BN_KCLASS_COUNT && strcmp(class_names[c], item)) c++;
        }
        if (!eq || c == BN_KCLASS_COUNT) {
            snprintf(f->message, sizeof f->message,
                     "BITNET_VARIANT: '%s' is not CLASS=VARIANT with CLASS one of gemv, gemm_few, "
                     "gemm, head, attention", item);
            f->ok = false;
            return;
        }
        bn_error e = {0};
        if (bn_kernel_variant_parse(&f->variant[c], eq + 1, (bn_kernel_class)c, &e) != BN_OK) {
            snprintf(f->message, sizeof f->message, "BITNET_VARIANT: %.140s", e.message);
            f->ok = false;
            return;
        }
        f->variant_set[c] = true;
    }
}

static const forcing *environment(void) {
    static forcing cached;
    static atomic_int ready;
    static atomic_flag busy = ATOMIC_FLAG_INIT;
    if (atomic_load_explicit(&ready, memory_order_acquire)) return &cached;
    while (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) {
    }
    if (!atomic_load_explicit(&ready, memory_order_relaxed)) {
        forcing f = {.ok = true, .prefetch = -1};
        const char *hint = getenv("BITNET_PREFETCH");
        if (hint && *hint) {
            for (int h = 0; h < BN_PREFETCH_COUNT; h++)
                if (!strcmp(hint, hint_names[h])) f.prefetch = h;
            if (f.prefetch < 0) {
                snprintf(f.message, sizeof f.message,
                         "BITNET_PREFETCH: unknown value '%.60s' (expected t0, nta or none)", hint);
                f.ok = false;
            }
        }
        const char *gfni = getenv("BITNET_GFNI");
        f.no_gfni = gfni && !strcmp(gfni, "0");
        if (gfni && *gfni && strcmp(gfni, "0") && strcmp(gfni, "1") && f.ok) {
            snprintf(f.message, sizeof f.message, "BITNET_GFNI: unknown value '%.60s' (expected 0 or 1)", gfni);
            f.ok = false;
        }
        const char *const switches[] = {"BITNET_AVXVNNI", "BITNET_AMX"};
        bool *const off[] = {&f.no_vnni, &f.no_amx};
        for (int i = 0; i < 2; i++) {
            const char *value = getenv(switches[i]);
            *off[i] = value && !strcmp(value, "0");
            if (value && *value && strcmp(value, "0") && strcmp(value, "1") && f.ok) {
                snprintf(f.message, sizeof f.message, "%s: unknown value '%.60s' (expected 0 or 1)",
                         switches[i], value);
                f.ok = false;
            }
        }
        const char *list = getenv("BITNET_VARIANT");
        if (list && *list && f.ok) parse_variant_list(&f, list);
        cached = f;
        atomic_store_explicit(&ready, 1, memory_order_release);
    }
    atomic_flag_clear_explicit(&busy, memory_order_release);
    return &cached;
}

bn_status bn_kernel_variant_check_environment(bn_error *err) {
    const forcing *f = environment();
    return f->ok ? BN_OK : bn_error_set(err, BN_ERR_INVALID, "%s", f->message);
}

bn_kernel_variant bn_kernel_variant_forced(bn_kernel_class c, bn_kernel_variant v) {
    const forcing *f = environment();
    if (f->ok && f->variant_set[c]) return normalize(c, f->variant[c]);
    if (bn_isa_forced()) v.isa = bn_isa_active();
    if (f->ok && f->prefetch >= 0) v.prefetch = (bn_prefetch_hint)f->prefetch;
    if (f->no_gfni) v.gfni = false;
    if (f->no_vnni) v.vnni = false;
    if (f->no_amx) v.amx = false;
    return normalize(c, v);
}

/* ---- bindings ---- */

/* -1: unbound; else isa | prefetch << 4 | gfni << 8 | vnni << 9 | amx << 10. */
static atomic_int bindings[BN_KCLASS_COUNT] = {-1, -1, -1, -1, -1};

static int pack(bn_kernel_variant v) {
    return (int)v.isa | (int)v.prefetch << 4 | (v.gfni ? 1 : 0) << 8 | (v.vnni ? 1 : 0) << 9 |
           (v.amx ? 1 : 0) << 10;
}
static bn_kernel_variant unpack(int packed) {
    return (bn_kernel_variant){.isa = (bn_isa)(packed & 15), .prefetch = (bn_prefetch_hint)(packed >> 4 & 15),
                               .gfni = packed >> 8 & 1, .vnni = packed >> 9 & 1, .amx = packed >> 10 & 1};
}

bn_kernel_variant bn_kernel_variant_of(bn_kernel_class c) {
    int packed = atomic_load_explicit(&bindings[c], memory_order_relaxed);
    bn_kernel_variant v = packed >= 0 ? unpack(packed)
                                      : (bn_kernel_variant){.isa = bn_isa_active(), .gfni = true,
                                                            .vnni = true, .amx = true};
    return bn_kernel_variant_forced(c, v);
}

void bn_kernel_bind(bn_kernel_class c, bn_kernel_variant v) {
    atomic_store_explicit(&bindings[c], pack(normalize(c, v)), memory_order_relaxed);
}

void bn_kernel_unbind(bn_kernel_class c) { atomic_store_explicit(&bindings[c], -1, memory_order_relaxed); }

bool bn_kernel_bound(bn_kernel_class c, bn_kernel_variant *out) {
    const int packed = atomic_load_explicit(&bindings[c], memory_order_relaxed);
    if (packed >= 0) *out = unpack(packed);
    return packed >= 0;
}

void bn_kernel_unbind_all(void) {
    for (int c = 0; c < BN_KCLASS_COUNT; c++) atomic_store_explicit(&bindings[c], -1, memory_order_relaxed);
}
