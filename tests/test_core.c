/*
 * test_core.c: the error type and the fp16/bf16 conversions.
 */
#include "core/fp16.h"
#include "testutil.h"

#include <math.h>

static void test_error(void) {
    bn_error err;
    bn_error_clear(&err);
    CHECK(err.code == BN_OK && err.message[0] == '\0');
    CHECK(bn_error_set(&err, BN_ERR_FORMAT, "field %s at offset %d", "n_kv", 16) == BN_ERR_FORMAT);
    CHECK(!strcmp(err.message, "field n_kv at offset 16"));
    bn_error_prefix(&err, "%s: ", "a.gguf");
    CHECK(!strcmp(err.message, "a.gguf: field n_kv at offset 16"));
    CHECK(err.code == BN_ERR_FORMAT);
    CHECK(bn_error_set(NULL, BN_ERR_IO, "dropped") == BN_ERR_IO);
}

static void test_fp16(void) {
    /* every half value converts to float and back unchanged (NaNs stay NaN) */
    int mismatches = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bn_fp16_to_fp32((uint16_t)h);
        uint16_t back = bn_fp32_to_fp16(f);
        if (isnan(f) ? (back & 0x7c00) != 0x7c00 || (back & 0x3ff) == 0 : back != h) mismatches++;
    }
    CHECKF(mismatches == 0, "%d half values did not round-trip", mismatches);
    CHECK(bn_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(bn_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(bn_fp16_to_fp32(0x0001) == ldexpf(1.0f, -24));
    CHECK(bn_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(bn_fp32_to_fp16(65520.0f) == 0x7c00);           /* rounds up to infinity */
    CHECK(bn_fp32_to_fp16(1.0f + ldexpf(1.0f, -11)) == 0x3c00); /* tie -> even */
    CHECK(bn_fp32_to_fp16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02); /* tie -> even (up) */
    CHECK(bn_fp32_to_fp16(ldexpf(1.0f, -25)) == 0x0000);  /* tie between 0 and min subnormal */
    CHECK(bn_fp32_to_fp16(ldexpf(3.0f, -25)) == 0x0002);
    CHECK(bn_fp32_to_fp16(1e-10f) == 0);
    CHECK(bn_fp32_to_fp16(-INFINITY) == 0xfc00);
}

static void test_bf16(void) {
    CHECK(bn_bf16_to_fp32(0x3f80) == 1.0f);
    CHECK(bn_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(bn_fp32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);      /* tie -> even */
    CHECK(bn_fp32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);
    CHECK(isnan(bn_bf16_to_fp32(bn_fp32_to_bf16(NAN))));
}

int main(void) {
    test_error();
    test_fp16();
    test_bf16();
    return bn_test_finish("test_core");
}
