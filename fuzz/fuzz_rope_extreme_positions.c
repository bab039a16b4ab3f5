/*
 * fuzz_rope_extreme_positions.c: NEOX RoPE (kernels/ops.h bn_rope_neox) at positions anywhere
 * in int32 (0, 1, INT32_MAX, INT32_MIN, powers of two, random), with any freq_base the model
 * config can hold (the usual 10000 / 500000 or fuzz values), odd or oversized rope_dim, and
 * inputs from denormals to 1e30.
 *
 * Properties, on every path: finite inputs give finite outputs (pairs of norm up to 1e38); each rotated pair (i,
 * i + rope_dim/2) keeps its Euclidean norm within 1e-5 relative (plus a denormal-sized absolute
 * slack); the rotation is spec section 4.1's bit for bit (angles iterated in float from
 * (float)pos by powf(base, -2/rope_dim), glibc cosf/sinf, one product fused), written out again
 * here; position 0 leaves every value unchanged (-0 may become +0); dimensions >= rope_dim are
 * never touched; all paths give identical bits.
 */
#include "bitnet.h"
#include "fuzz_kernels_common.h"

#include <limits.h>

#define MAX_HEAD 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bn_isa isas[BN_ISA_COUNT];
    static int n_isas;
    if (!n_isas) n_isas = bn_fuzz_isas(isas);
    bn_fuzz_input in = bn_fuzz_input_make(data, size);
    static const int32_t edge_pos[] = {0, 1, -1, INT32_MAX, INT32_MIN, INT32_MAX - 1, 1 << 30, 4095, 131072, 65536};
    uint8_t sel = bn_fuzz_u8(&in);
    int32_t pos = sel < 96 ? edge_pos[sel % (sizeof edge_pos / sizeof edge_pos[0])] : (int32_t)bn_fuzz_u32(&in);
    if (sel >= 224 && pos < 0) pos = -(pos + 1); /* mostly non-negative, as the model uses */
    int n_heads = (int)bn_fuzz_range(&in, 1, 3), head_dim = (int)bn_fuzz_range(&in, 1, MAX_HEAD / 2) * 2;
    int rope_dim = bn_fuzz_u8(&in) < 200 ? head_dim : (int)bn_fuzz_range(&in, 0, head_dim + 3);
    uint8_t b = bn_fuzz_u8(&in);
    float base = b < 100 ? 10000.0f : b < 200 ? 500000.0f : 1.0f + fabsf(bn_fuzz_finite_float(&in)) * 1e4f;
    float scale = bn_fuzz_u8(&in) < 128 ? 1.0f : bn_fuzz_bool(&in) ? 1e30f : 1e-38f;
    size_t n = (size_t)n_heads * head_dim;
    static float x[3 * MAX_HEAD], y[3 * MAX_HEAD], first[3 * MAX_HEAD];
    for (size_t i = 0; i < n; i++) x[i] = bn_fuzz_finite_float(&in) * scale;
    for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) x[i] = 0;

    /* the dims that rotate: rope_dim clamped to head_dim and rounded down to even */
    int rd = rope_dim < head_dim ? rope_dim : head_dim;
    rd -= rd % 2;
    int half = rd / 2;
    for (int k = 0; k < n_isas; k++) {
        bn_isa_set_active(isas[k]);
        const char *isa = bn_isa_name(isas[k]);
        memcpy(y, x, n * sizeof(float));
        bn_rope_neox(y, n_heads, head_dim, rope_dim, pos, base);
        for (int h = 0; h < n_heads; h++) {
            const float *xh = x + (size_t)h * head_dim, *yh = y + (size_t)h * head_dim;
            for (int d = rd; d < head_dim; d++)
                BN_FUZZ_CHECK(bn_fuzz_same_float(xh[d], yh[d]), "%s: dim %d >= rope_dim %d changed", isa, d, rd);
            for (int i = 0; i < half; i++) {
                float a = xh[i], c = xh[i + half], ya = yh[i], yc = yh[i + half];
                if (hypot(a, c) > 1e38) continue; /* a rotated component may exceed FLT_MAX */
                BN_FUZZ_CHECK(isfinite(ya) && isfinite(yc), "%s: pos %d pair %d gave %a, %a from %a, %a", isa, (int)pos, i,
                              (double)ya, (double)yc, (double)a, (double)c);
                double norm_in = hypot(a, c), norm_out = hypot(ya, yc);
                BN_FUZZ_CHECK(fabs(norm_out - norm_in) <= 1e-5 * norm_in + 1e-37,
                              "%s: pos %d pair %d norm %.9g became %.9g", isa, (int)pos, i, norm_in, norm_out);
                if (pos == 0)
                    BN_FUZZ_CHECK(a == ya && c == yc, "%s: pos 0 changed pair %d", isa, i);
                /* spec 4.1, written out again: the angle of pair i is (float)pos times
                 * powf(base, -2.0f / rd) i times, in float; cosf, sinf; one product fused */
                float theta = (float)pos;
                const float theta_scale = powf(base, -2.0f / (float)rd);
                for (int j = 0; j < i; j++) theta *= theta_scale;
                const float cs = cosf(theta), sn = sinf(theta), c_sin = c * sn, c_cos = c * cs;
                const float ea = fmaf(a, cs, -c_sin), ec = fmaf(a, sn, c_cos);
                BN_FUZZ_CHECK(bn_fuzz_same_float(ea, ya) && bn_fuzz_same_float(ec, yc),
                              "%s: pos %d pair %d (theta %.9g) gave %a, %a; spec 4.1 gives %a, %a", isa, (int)pos, i,
                              (double)theta, (double)ya, (double)yc, (double)ea, (double)ec);
            }
        }
        if (k == 0) {
            memcpy(first, y, n * sizeof(float));
        } else {
            for (size_t i = 0; i < n; i++)
                BN_FUZZ_CHECK(bn_fuzz_same_float(first[i], y[i]), "%s: element %zu is %a, scalar %a", isa, i, (double)y[i],
                              (double)first[i]);
        }
    }
    bn_fuzz_isa_restore();
    return 0;
}
