/*
 * tune.c: kernel tuning at model load and its cache file (see tune.h).
 *
 * Cache format (JSON, one object per machine and model shape):
 *   {"version": 1, "entries": {"<key>": {"gemv": "avx512.t0.gfni", "gemm_few": "avx512", ...,
 *                                        "mode": "quick", "elapsed_ms": 212.4}}}
 * The key names the CPU (its model name), the thread count, the model's shape and formats and
 * the engine version, so a new CPU, shape or build measures again.
 */
#include "model/tune.h"

#include "backend/cpu/backend_cpu.h"
#include "kernels/cpu_features.h"
#include "model/model_internal.h"
#include "quant/quant_format.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bn_status bn_tune_mode_from_environment(bn_tune_mode *out, bn_error *err) {
    const char *env = getenv("BITNET_TUNE");
    *out = BN_TUNE_QUICK;
    if (!env || !*env) return BN_OK;
    if (bn_tune_mode_parse(out, env, err) == BN_OK) return BN_OK;
    return bn_error_set(err, BN_ERR_INVALID, "BITNET_TUNE: unknown value '%.60s' (expected off, quick or full)", env);
}

const bn_model_tuning *bn_model_get_tuning(const bn_model *model) { return &model->tuning; }

static void cache_key(const bn_model *model, char *buf, size_t size) {
    const bn_model_config *c = &model->config;
    const bn_quant_format *f = bn_quant_format_get(c->projection_type);
    char cpu[160], kv_name[32];
    bn_cpu_model_name(cpu, sizeof cpu);
#if defined(__aarch64__)
    /* qemu-user shows an aarch64 build the host's /proc/cpuinfo: keep its entries apart */
    strncat(cpu, " (aarch64)", sizeof cpu - strlen(cpu) - 1);
#endif
    /* "f16" as before for the default cache, "q8_0/f16" when K and V differ */
    const char *k_name = bn_quant_format_get(model->options.kv_type_k)->name;
    const char *v_name = bn_quant_format_get(model->options.kv_type_v)->name;
    if (model->options.kv_type_k == model->options.kv_type_v) snprintf(kv_name, sizeof kv_name, "%s", k_name);
    else snprintf(kv_name, sizeof kv_name, "%s/%s", k_name, v_name);
    snprintf(buf, size,
             "cpu=%s; threads=%d; shape=%s dim %d ffn %d layers %d heads %d/%d x %d vocab %d %s "
             "head %s kv %s ubatch %d; engine=%s",
             cpu, bn_threadpool_size(model->pool), c->arch_name, c->dim, c->ffn_dim, c->n_layers,
             c->n_heads, c->n_kv_heads, c->head_dim, c->n_vocab, f ? f->name : "?",
             model->options.int8_lm_head ? "int8" : bn_quant_format_get(c->head_type)->name,
             kv_name,
             model->options.ubatch, bn_version());
}

/* $XDG_CACHE_HOME/bitnet/tune.json, else $HOME/.cache/bitnet/tune.json; false when neither
 * variable gives an absolute directory. */
static bool cache_location(char *dir, size_t dir_size, char *path, size_t path_size) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(dir, dir_size, "%s/bitnet", xdg);
    else if (home && home[0] == '/')
        n = snprintf(dir, dir_size, "%s/.cache/bitnet", home);
    else
        return false;
    if (n < 0 || (size_t)n >= dir_size) return false;
    n = snprintf(path, path_size, "%s/tune.json", dir);
    return n > 0 && (size_t)n < path_size;
}

/* The cached choice for key: true when every class it names parses and runs here. */
static bool cache_read(const char *path, const char *key, bn_tune_result *out, char *note, size_t note_size) {
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (access(path, F_OK) == 0) snprintf(note, note_size, "cache %.300s unreadable (%.80s): measured again", path, jerr.text);
        return false;
    }
    bool ok = false;
    json_t *entry = json_object_get(json_object_get(root, "entries"), key);
    if (json_is_object(entry)) {
        ok = true;
        memset(out, 0, sizeof *out);
        for (int c = 0; c < BN_KCLASS_COUNT && ok; c++) {
            json_t *name = json_object_get(entry, bn_kernel_class_name((bn_kernel_class)c));
            if (!name) continue; /* not measured for this model (no head, ...) */
            bn_kernel_variant v;
            ok = json_is_string(name) &&
                 bn_kernel_variant_parse(&v, json_string_value(name), (bn_kernel_class)c, NULL) == BN_OK;
            if (ok) {
                out->classes[c].n_candidates = 1;
                out->classes[c].candidates[0] = v;
                out->classes[c].chosen = v;
            }
        }
        if (!ok) snprintf(note, note_size, "cache %.300s: entry for this machine and model is not valid here: measured again", path);
    }
    json_decref(root);
    return ok;
}

static void cache_write(const char *dir, const char *path, const char *key, const bn_tune_result *r,
                        bn_tune_mode mode, char *note, size_t note_size) {
    char parent[600];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
            snprintf(note, note_size, "cache not written: cannot create %.300s: %s", parent, strerror(errno));
            return;
        }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(note, note_size, "cache not written: cannot create %.300s: %s", dir, strerror(errno));
        return;
    }
    json_t *root = json_load_file(path, 0, NULL);
    if (!json_is_object(root) || !json_is_object(json_object_get(root, "entries"))) {
        json_decref(root);
        root = json_pack("{s:i, s:{}}", "version", 1, "entries");
    }
    json_t *entry = json_object();
    for (int c = 0; c < BN_KCLASS_COUNT && entry; c++) {
        if (r->classes[c].n_candidates == 0) continue;
        char name[BN_KERNEL_VARIANT_NAME_MAX];
        bn_kernel_variant_name(r->classes[c].chosen, (bn_kernel_class)c, name, sizeof name);
        json_object_set_new(entry, bn_kernel_class_name((bn_kernel_class)c), json_string(name));
    }
    if (root && entry) {
        json_object_set_new(entry, "mode", json_string(bn_tune_mode_name(mode)));
        json_object_set_new(entry, "elapsed_ms", json_real(r->elapsed_ms));
        json_object_set_new(json_object_get(root, "entries"), key, entry);
        entry = NULL;
    }
    char tmp[620];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (!root || json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) != 0 || rename(tmp, path) != 0) {
        snprintf(note, note_size, "cache not written: cannot write %.300s", path);
        unlink(tmp);
    }
    json_decref(entry);
    json_decref(root);
}

/* The CPU backend's ternary projections in the order a decode step reads them. */
static const bn_ternary_matrix **model_matrices(const bn_model *model, int *count) {
    const int n = model->config.n_layers * BN_LINEAR_KINDS;
    const bn_ternary_matrix **list = malloc((size_t)(n > 0 ? n : 1) * sizeof *list);
    if (!list) return NULL;
    *count = bn_backend_cpu_matrices(model->backend, list, n);
    return list;
}

static bool any_forcing(void) {
    static const char *const names[] = {"BITNET_VARIANT", "BITNET_PREFETCH", "BITNET_GFNI",
                                        "BITNET_AVXVNNI", "BITNET_AMX"};
    if (bn_isa_forced()) return true;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return true;
    }
    return false;
}

bn_status bn_model_tune(bn_model *model, bn_error *err) {
    bn_model_tuning *t = &model->tuning;
    memset(t, 0, sizeof *t);
    bn_tune_mode mode = (bn_tune_mode)model->options.tune;
    if (model->options.tune == BN_TUNE_FROM_ENV && bn_tune_mode_from_environment(&mode, err) != BN_OK)
        return BN_ERR_INVALID;
    if (mode != BN_TUNE_OFF && mode != BN_TUNE_QUICK && mode != BN_TUNE_FULL)
        return bn_error_set(err, BN_ERR_INVALID, "tune mode %d is not off, quick or full", model->options.tune);
    t->mode = mode;
    t->source = "off";
    if (model->options.device != BN_DEVICE_CPU) {
        t->source = "not-cpu";
        return BN_OK;
    }
    if (mode == BN_TUNE_OFF) {
        bn_kernel_unbind_all();
        return BN_OK;
    }
    char key[768], dir[512];
    const bool have_cache = cache_location(dir, sizeof dir, t->cache_path, sizeof t->cache_path);
    if (!have_cache) t->cache_path[0] = '\0';
    cache_key(model, key, sizeof key);
    if (have_cache && mode == BN_TUNE_QUICK && cache_read(t->cache_path, key, &t->result, t->note, sizeof t->note)) {
        t->source = "cache";
        bn_tune_apply(&t->result);
        return BN_OK;
    }
    int n_matrices = 0;
    const bn_ternary_matrix **matrices = model_matrices(model, &n_matrices);
    if (!matrices) return bn_error_set(err, BN_ERR_NOMEM, "kernel tuner: out of memory");
    const bn_model_config *c = &model->config;
    bn_tune_workload w = {
        .pool = model->pool,
        .matrices = matrices,
        .n_matrices = n_matrices,
        .head = bn_backend_cpu_f16_head(model->backend),
        .head_rows = c->n_vocab,
        .head_cols = c->dim,
        .n_heads = c->n_heads,
        .n_kv_heads = c->n_kv_heads,
        .head_dim = c->head_dim,
        .kv_type_k = model->options.kv_type_k,
        .kv_type_v = model->options.kv_type_v,
        .prompt_tokens = model->options.ubatch,
    };
    bn_kernel_unbind_all();
    bn_status st = bn_tune_run(&w, mode, &t->result, err);
    free(matrices);
    if (st != BN_OK) return st;
    bn_tune_apply(&t->result);
    t->source = "measured";
    if (!have_cache)
        snprintf(t->note, sizeof t->note, "cache not written: neither XDG_CACHE_HOME nor HOME is an absolute path");
    else if (any_forcing())
        snprintf(t->note, sizeof t->note, "cache not written: a kernel path or variant is forced");
    else
        cache_write(dir, t->cache_path, key, &t->result, mode, t->note, sizeof t->note);
    return BN_OK;
}

void bn_model_tuning_summary(const bn_model *model, char *buf, size_t size) {
    (void)model; /* the bindings are process-wide: what dispatch runs now */
    size_t used = 0;
    buf[0] = '\0';
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        const bn_kernel_class class = (bn_kernel_class)c;
        char name[BN_KERNEL_VARIANT_NAME_MAX];
        bn_kernel_variant_name(bn_kernel_variant_of(class), class, name, sizeof name);
        int n = snprintf(buf + used, size - used, "%s%s=%s", used ? "," : "", bn_kernel_class_name(class), name);
        if (n < 0 || (size_t)n >= size - used) break;
        used += (size_t)n;
    }
}

void bn_model_tuning_describe(const bn_model *model, char *buf, size_t size) {
    const bn_model_tuning *t = &model->tuning;
    size_t used = 0;
#define APPEND(...)                                                                \
    do {                                                                           \
        int n_ = snprintf(buf + used, size - used, __VA_ARGS__);                   \
        if (n_ > 0) used += (size_t)n_ < size - used ? (size_t)n_ : size - used - 1; \
    } while (0)
    buf[0] = '\0';
    APPEND("kernel tuning: %s (%s", bn_tune_mode_name(t->mode), t->source);
    if (!strcmp(t->source, "measured")) APPEND(" in %.0f ms", t->result.elapsed_ms);
    APPEND(")\n");
    for (int c = 0; c < BN_KCLASS_COUNT; c++) {
        const bn_kernel_class class = (bn_kernel_class)c;
        const bn_tune_class_result *r = &t->result.classes[c];
        char name[BN_KERNEL_VARIANT_NAME_MAX];
        bn_kernel_variant_name(bn_kernel_variant_of(class), class, name, sizeof name);
        APPEND("  %-9s %s", bn_kernel_class_name(class), name);
        if (r->rounds > 0) {
            APPEND(" (%d rounds; %s:", r->rounds, c == BN_KCLASS_ATTENTION ? "us per call" : "ns per 1000 weights");
            for (int i = 0; i < r->n_candidates; i++) {
                char other[BN_KERNEL_VARIANT_NAME_MAX];
                bn_kernel_variant_name(r->candidates[i], class, other, sizeof other);
                APPEND(" %s %.1f", other, c == BN_KCLASS_ATTENTION ? r->ns_per_kweight[i] / 1000 : r->ns_per_kweight[i]);
            }
            APPEND(")");
        } else if (!strcmp(t->source, "measured")) {
            APPEND(r->n_candidates == 1 ? " (the only candidate)" : " (not measured: nothing of the model runs it)");
        }
        APPEND("\n");
    }
    if (t->cache_path[0]) APPEND("  cache %s\n", t->cache_path);
    if (t->note[0]) APPEND("  %s\n", t->note);
#undef APPEND
}
