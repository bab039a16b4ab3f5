/*
 * fuzz_embedding_table_lookup.c: looking up rows of an F16 embedding table (kernels/ops.h
 * bn_embedding_lookup_f16) with fuzz-chosen ids (negative, INT32_MIN/MAX, one past the end,
 * in range), table shapes and F16 contents (NaN, infinities, denormals).
 *
 * Properties: an id outside [0, n_rows) fails with BN_ERR_RANGE naming the id and leaves the
 * output untouched; negative cols fail with BN_ERR_INVALID; an id in range gives, on every path,
 * exactly the F16 row widened to float (bn_fp16_to_fp32 bit for bit, NaN as NaN) and writes
 * nothing past cols floats.
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"

#include <limits.h>

#define CANARY 4242.0f

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bn_isa isas[BN_ISA_COUNT];
    static int n_isas;
    if (!n_isas) n_isas = bn_fuzz_isas(isas);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    int n_rows = (int)bn_fuzz_range(&in, 1, 64), cols = (int)bn_fuzz_range(&in, 0, 96);
    static const int32_t edges[] = {-1, INT32_MIN, INT32_MAX, 0};
    uint8_t sel = bn_fuzz_u8(&in);
    int32_t id = sel < 32   ? edges[sel % 4]
                 : sel < 64 ? n_rows + (int32_t)(sel % 4)
                 : sel < 96 ? (int32_t)bn_fuzz_u32(&in)
                            : (int32_t)bn_fuzz_range(&in, 0, n_rows - 1);
    if (bn_fuzz_u8(&in) == 0xff) cols = -cols - 1;
    size_t n = (size_t)n_rows * (size_t)(cols > 0 ? cols : 0);
    uint16_t *table = malloc((n ? n : 1) * sizeof(uint16_t));
    size_t out_n = (size_t)(cols > 0 ? cols : 0) + 1;
    float *out = malloc(out_n * sizeof(float));
    if (!table || !out) abort();
    for (size_t i = 0; i < n; i++) table[i] = bn_fuzz_f16(&in);

    bn_error err;
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        for (size_t i = 0; i < out_n; i++) out[i] = CANARY;
        bn_status st = bn_embedding_lookup_f16(out, table, n_rows, cols, id, &err);
        if (id < 0 || id >= n_rows) {
            char want[24];
            snprintf(want, sizeof want, "%d", (int)id);
            BN_FUZZ_CHECK(st == BN_ERR_RANGE && strstr(err.message, want), "id %d of %d rows: status %d \"%s\"", (int)id,
                          n_rows, (int)st, err.message);
            for (size_t i = 0; i < out_n; i++) BN_FUZZ_CHECK(out[i] == CANARY, "failed lookup wrote output %zu", i);
            continue;
        }
        if (cols < 0) {
            BN_FUZZ_CHECK(st == BN_ERR_INVALID, "cols %d: status %d", cols, (int)st);
            continue;
        }
        BN_FUZZ_CHECK(st == BN_OK, "lookup of %d failed: %s", (int)id, err.message);
        for (int c = 0; c < cols; c++) {
            float want = bn_fp16_to_fp32(table[(size_t)id * cols + c]);
            BN_FUZZ_CHECK(bn_fuzz_same_float(out[c], want), "%s: row %d col %d is %a, F16 gives %a",
                          bn_isa_name(isas[k]), (int)id, c, (double)out[c], (double)want);
        }
        BN_FUZZ_CHECK(out[cols] == CANARY, "lookup wrote past cols");
    }
    bn_fuzz_isa_restore();
    free(table);
    free(out);
    return 0;
}
