/*
 * tune.h: kernel tuning of a loaded model (the CPU backend). At load, bn_model_load runs the
 * kernel tuner (kernels/tuner.h) on the model's own matrices, or takes its earlier result for
 * this CPU, thread count and shape from the cache file $XDG_CACHE_HOME/bitnet/tune.json
 * (~/.cache/bitnet/tune.json without XDG_CACHE_HOME), and binds the fastest variant of each
 * kernel class (kernels/variants.h). The mode comes from bn_model_options.tune: off, quick (the
 * default: about 300 ms when nothing is cached, nothing when it is) or full (about 3 s, always
 * measured, the cache updated); BN_TUNE_FROM_ENV reads BITNET_TUNE. A result measured under
 * forcing (--isa, BITNET_ISA, BITNET_VARIANT, BITNET_PREFETCH, BITNET_GFNI,
 * BITNET_AVXVNNI, BITNET_AMX) is not cached: it
 * chose among fewer candidates. A cache that cannot be read or written is a note, not an error.
 * Bindings are process-wide: the model loaded last sets them.
 */
#ifndef BN_MODEL_TUNE_H
#define BN_MODEL_TUNE_H

#include "kernels/tuner.h"
#include "model/model.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct bn_model_tuning {
    bn_tune_mode mode;
    const char *source;           /* "off", "measured", "cache", "not-cpu" */
    bn_tune_result result;        /* chosen variants (and timings when measured) */
    char cache_path[512];         /* "" when there is no cache location */
    char note[512];               /* why the cache was not read or written, else "" */
} bn_model_tuning;

/* The mode BITNET_TUNE asks for (quick when unset); BN_ERR_INVALID names a bad value. */
bn_status bn_tune_mode_from_environment(bn_tune_mode *out, bn_error *err);
/* The tuning the model's load did. */
const bn_model_tuning *bn_model_get_tuning(const bn_model *model);
/* One line per kernel class: "gemv avx512.t0.gfni (measured; ns per 1000 weights: avx512.t0.gfni
 * 41.2, avx2 47.0, ...)", plus the cache line. */
void bn_model_tuning_describe(const bn_model *model, char *buf, size_t size);
/* The chosen variant names as "gemv=avx512.t0.gfni,gemm_few=avx512,..." (receipts, bench). */
void bn_model_tuning_summary(const bn_model *model, char *buf, size_t size);

#endif
