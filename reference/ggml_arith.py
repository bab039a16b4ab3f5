"""ggml_arith.py - float32 building blocks with exactly the rounding of bitnet.cpp's batch path
(spec section 4.1), for bitnet_ref.py.

Every function here is defined by its sequence of IEEE float32 (or double) roundings, not by its
mathematical value: random-weight BitNet models turn a 1-ulp difference into an int8 rounding flip,
so the reference must round where ggml rounds and nowhere else. torch elementwise float32 ops are
single IEEE operations (add, mul, div, sqrt), which is what the C code does lane by lane; the only
operation torch lacks is a fused multiply-add, emulated in fma32. glibc's cosf/sinf/powf/expf are
called through ctypes (numpy's float32 exp is a different, not correctly rounded implementation).
Contents: fma32, the 16-lane reductions, RMSNorm, the RoPE table (with llama's rope_freqs and
linear scaling) and the NEOX / NORM rotations, SiLU (ggml_v_silu groups of 16 plus a libm tail),
ggml_vec_dot_f16, ggml_v_expf, soft_max_ext and the tinyBLAS 16-lane FMA matmul. Written from spec
sections 4.1 and 9; checked against testdata/bitnetcpp-oracle-full/ggml_sem.py and bitnet.cpp's
logits there. Block formats and quantized dot kernels are in ggml_quants.py.
"""
import concurrent.futures
import ctypes
import ctypes.util

import numpy as np
import torch

F32, F64 = torch.float32, torch.float64
_LOW29 = (1 << 29) - 1          # double mantissa bits below float32 precision
_HALF29 = 1 << 28               # ... holding exactly half a float32 ulp: a float32 midpoint
_EXP_MASK = 0x7FF << 52
_F32_NORMAL_MIN_EXP = (1023 - 126) << 52


# ---------------- fused multiply-add ----------------
# fmaf(a, b, c) = one rounding of a*b + c. The product of two floats (or an F16 and a float) is exact
# in double, so double(a*b) + c rounded to float is right but for double rounding, which can only
# change the result when the double sum lands exactly on a float32 midpoint (or, with fewer float
# bits, below float's normal range). Those few elements are redone exactly. This runs in numpy:
# its in-place ufuncs are faster here than torch's, and worker threads (numpy releases the GIL)
# degrade gracefully on a busy machine where OpenMP barriers per operation do not.

def _round_odd_to_f32(p, c):
    """fl32(p + c) for float64 arrays p, c with one rounding: TwoSum gives the exact error of the
    double sum; rounding the double to odd (a sticky last bit) and then to float is one correct
    rounding because double has more than 24 + 2 bits."""
    s = p + c
    cc = s - p
    err = (p - (s - cc)) + (c - cc)
    even = (s.view(np.int64) & 1) == 0
    step = (err != 0) & even
    s = np.where(step, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def _suspects(s, tiny_possible, scratch=None):
    """flat indices where s.astype(float32) may not be one correct rounding: s exactly on a float32
    midpoint (a tie the double rounding may have broken) or, unless ruled out, below float32's
    normal range (zero included, harmlessly)"""
    bits = s.view(np.int64)
    low = np.bitwise_and(bits, _LOW29, out=scratch)
    bad = low == _HALF29
    if tiny_possible:
        bad |= np.bitwise_and(bits, _EXP_MASK) < _F32_NORMAL_MIN_EXP
    return np.flatnonzero(bad)


def _grid_exponent(x):
    """g such that every element of x (numpy) is a multiple of 2^g: -24 for F16 (its smallest
    subnormal); for float32, floor(log2(min nonzero |x|)) - 23 (0 when x is all zeros)"""
    if x.dtype == np.float16:
        return -24
    nz = np.abs(x[x != 0])
    return 0 if nz.size == 0 else int(np.frexp(nz.min())[1]) - 1 - 23


def _tiny_possible(a, b):
    """whether a chain of fmaf(a_i, b_i, acc) can produce a float32 result below 2^-126 other than 0.
    Every product, hence every partial value, is a multiple of 2^(ga + gb), and a float rounding of
    such a multiple is again one; when that grid is >= 2^-126 a nonzero value never falls below
    float's normal range, and only ties need checking."""
    return _grid_exponent(a) + _grid_exponent(b) < -126


def fma32(a, b, c):
    """correctly rounded float32 fmaf(a, b, c), elementwise with broadcasting (torch in, torch out)"""
    a, b, c = np.broadcast_arrays(*(np.asarray(t.numpy() if torch.is_tensor(t) else t, np.float32)
                                    for t in (a, b, c)))
    with np.errstate(invalid="ignore", over="ignore"):     # inf operands are legal (v_expf's range)
        p = a.astype(np.float64) * b
        s = p + c
        r = s.astype(np.float32)
    idx = _suspects(s, True)
    if idx.size:
        r.flat[idx] = _round_odd_to_f32(p.flat[idx], c.flat[idx].astype(np.float64))
    return torch.from_numpy(r)


# ---------------- reductions ----------------
def hsum16(v):
    """_mm512_reduce_add_ps as clang lowers it: halving tree over the last axis of 16 lanes
    (lane l + lane l+8, then +4, +2, +1), each add in float (torch or numpy float32)."""
    w = 16
    while w > 1:
        w //= 2
        v = v[..., :w] + v[..., w:2 * w]
    return v[..., 0]


def seq_sum_f64(v):
    """sum over the last axis in double, strictly left to right (np.add.accumulate is sequential)"""
    a = np.add.accumulate(v.to(F64).numpy(), axis=-1)
    return torch.from_numpy(np.ascontiguousarray(a[..., -1]))


def pad16(x, dim=-1):
    """zero-pad an axis to a multiple of 16: zeros change neither a lane sum nor an FMA chain
    (bitnet.cpp's KV length is padded to 32 with masked, zero-probability cells)"""
    n = x.shape[dim]
    extra = (-n) % 16
    if not extra:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


# ---------------- RMSNorm ----------------
def rmsnorm(x, g, eps):
    """ggml rms_norm then mul: float squares summed in double in order, mean = (float)(sum/n),
    scale = 1.0f/sqrtf(mean + eps) in float, y = x*scale, out = y*g (float)."""
    n = x.shape[-1]
    mean = (seq_sum_f64(x * x) / n).to(F32)
    scale = 1.0 / torch.sqrt(mean + torch.tensor(eps, dtype=F32))
    return (x * scale[..., None]) * g


# ---------------- RoPE ----------------
class RopeTable:
    """cos/sin per position and pair as ggml_rope_cache_init computes them: theta_scale =
    powf(base, -2.0f/n_rot); theta = (float)pos, then theta *= theta_scale after each pair, all in
    float; glibc cosf/sinf (not a double cos rounded: those differ in the last bit now and then).
    With freq_factors (llama's rope_freqs tensor, one per pair) the angle of pair i is theta / ff[i]
    (float division; the running theta itself is not divided), and with a linear scaling
    freq_scale != 1 it is then multiplied by freq_scale in float (rope_yarn with ext_factor 0;
    mscale 1 leaves cos/sin as they are). Rows are computed once and kept, since perplexity asks
    for the same positions again."""

    def __init__(self, n_rot, base, freq_factors=None, freq_scale=1.0):
        self.n_pairs = n_rot // 2
        lib = _libm()
        self.lib = lib
        self.theta_scale = np.float32(lib.powf(np.float32(base), np.float32(-2.0) / np.float32(n_rot)))
        self.ff = None if freq_factors is None else np.asarray(freq_factors, np.float32).reshape(-1)
        if self.ff is not None and self.ff.size != self.n_pairs:
            raise ValueError("rope_freqs has %d entries, expected n_rot/2 = %d" % (self.ff.size, self.n_pairs))
        self.freq_scale = np.float32(freq_scale)
        self.cos = torch.empty(0, self.n_pairs, dtype=F32)
        self.sin = torch.empty(0, self.n_pairs, dtype=F32)

    def rows(self, n_pos):
        have = self.cos.shape[0]
        if n_pos > have:
            c = np.empty((n_pos - have, self.n_pairs), np.float32)
            s = np.empty_like(c)
            for p in range(have, n_pos):
                theta = np.float32(p)
                for i in range(self.n_pairs):
                    t = theta if self.ff is None else np.float32(theta / self.ff[i])
                    if self.freq_scale != 1:
                        t = np.float32(self.freq_scale * t)
                    c[p - have, i] = self.lib.cosf(t)
                    s[p - have, i] = self.lib.sinf(t)
                    theta = np.float32(theta * self.theta_scale)
            self.cos = torch.cat([self.cos, torch.from_numpy(c)])
            self.sin = torch.cat([self.sin, torch.from_numpy(s)])
        return self.cos[:n_pos], self.sin[:n_pos]


_LIBM = None


def _libm():
    """glibc's libm with float signatures for cosf, sinf, powf, expf"""
    global _LIBM
    if _LIBM is None:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        for fn in ("cosf", "sinf", "powf", "expf"):
            getattr(lib, fn).restype = ctypes.c_float
        lib.cosf.argtypes = lib.sinf.argtypes = lib.expf.argtypes = [ctypes.c_float]
        lib.powf.argtypes = [ctypes.c_float, ctypes.c_float]
        _LIBM = lib
    return _LIBM


def expf(x):
    """glibc expf elementwise (numpy float32 in and out; numpy's own float32 exp is a different
    implementation and may differ in the last bit)"""
    lib = _libm()
    x = np.asarray(x, np.float32)
    out = np.empty_like(x)
    for i, v in enumerate(x.reshape(-1)):
        out.reshape(-1)[i] = lib.expf(float(v))
    return out


def rope_neox(x, cos, sin):
    """x (..., T, n_rot) with pairs (i, i + n_rot/2); cos/sin (T, n_rot/2). As compiled (fp-contract):
    d0 = fmaf(x0, c, -(x1*s)), d1 = fmaf(x0, s, x1*c), the non-fused product rounded first."""
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    d0 = fma32(x0, cos, -(x1 * sin))
    d1 = fma32(x0, sin, x1 * cos)
    return torch.cat([d0, d1], dim=-1)


def rope_norm(x, cos, sin):
    """x (..., T, n_rot) with pairs (2i, 2i+1) (llama's NORM mode); same arithmetic as rope_neox"""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    d0 = fma32(x0, cos, -(x1 * sin))
    d1 = fma32(x0, sin, x1 * cos)
    return torch.stack([d0, d1], dim=-1).flatten(-2)


# ---------------- activations ----------------
def silu(x):
    """ggml's SiLU over the last axis (rows), as the AVX-512 build computes it: each full group of 16
    elements y = x / (1.0f + ggml_v_expf(-x)) (ggml_v_silu: 0 - x, the polynomial exp, a float add
    and a float divide); the elements after the last full group y = x / (1.0f + expf(-x)) with
    glibc's expf (ggml_silu_f32)."""
    n = x.shape[-1]
    full = n - n % 16
    one = torch.tensor(1.0, dtype=F32)
    out = torch.empty_like(x)
    if full:
        a = x[..., :full]
        out[..., :full] = a / (one + v_expf(torch.zeros((), dtype=F32) - a))
    if full < n:
        b = x[..., full:]
        e = torch.from_numpy(expf((-b).numpy()))
        out[..., full:] = b / (one + e)
    return out


# ---------------- attention ----------------
def dot_qk(q, k, exact_products=True):
    """scores[..., i, j] = ggml_vec_dot_f16(q[..., i, :], k[..., j, :]) (AVX-512): 4 accumulators of 16
    float lanes over steps of 64 dims; acc0 += acc2, acc1 += acc3, acc0 += acc1; the 16-lane tree;
    to double; dims past the last multiple of 64 added one by one in double; rounded to float.
    With F16 q and k every product is exact in float, so each FMA is a float add of the product;
    exact_products=False (float32 q and k, --kv-f32) fuses them with fma32 instead, and rounds the
    leftover products to float as ggml_vec_dot_f32 does."""
    q, k = q[..., :, None, :], k[..., None, :, :]
    n = q.shape[-1]
    n64 = n - n % 64
    shape = torch.broadcast_shapes(q.shape[:-1], k.shape[:-1])
    acc = torch.zeros(shape + (4, 16), dtype=F32)
    for i in range(0, n64, 64):
        qs = q[..., i:i + 64].unflatten(-1, (4, 16))
        ks = k[..., i:i + 64].unflatten(-1, (4, 16))
        acc = acc + qs * ks if exact_products else fma32(qs, ks, acc)
    a0 = acc[..., 0, :] + acc[..., 2, :]
    a1 = acc[..., 1, :] + acc[..., 3, :]
    s = hsum16(a0 + a1).to(F64)
    for i in range(n64, n):
        s = s + (q[..., i] * k[..., i]).to(F64)
    return s.to(F32)


def v_expf(x):
    """ggml_v_expf (AVX-512): exp by range reduction n = round(x/ln2), a degree-5 polynomial with
    FMAs, then j * 2^n (scalef, one rounding); |n| > 192 gives 0 or inf."""
    def c(h):
        return torch.tensor(float.fromhex(h), dtype=F32)
    r = c("0x1.8p23")
    z = fma32(x, c("0x1.715476p+0"), r)
    n = z - r
    b = fma32(-n, c("0x1.7f7d1cp-20"), fma32(-n, c("0x1.62e4p-1"), x))
    u = b * b
    j = fma32(fma32(fma32(c("0x1.0e4020p-7"), b, c("0x1.573e2ep-5")), u,
                    fma32(c("0x1.555e66p-3"), b, c("0x1.fffdb6p-2"))),
              u, fma32(c("0x1.ffffecp-1"), b, torch.tensor(1.0, dtype=F32)))
    big = ~(n.abs() <= 192)                       # also NaN (x = -inf): the blend takes alt
    nn = torch.where(big, torch.zeros_like(n), n).to(torch.int64)
    pow2 = ((nn + 1023) << 52).view(F64)          # 2^n built from its bits (exp2 need not be exact)
    res = (j.to(F64) * pow2).to(F32)              # j * 2^n exact in double: one rounding, as scalef
    alt = torch.where(n <= 0, torch.zeros_like(n), torch.full_like(n, float("inf")))
    return torch.where(big, alt, res)


def softmax_causal(scores, scale):
    """ggml soft_max_ext over rows (..., Tq, Tk) with a causal mask (query i sees keys <= i):
    w = (float)(score*scale); m = max; e = ggml_v_expf(w - m) (masked: 0); each 16-element chunk of e
    summed by the 16-lane tree in float, chunk sums added in double; p = e * (float)(1.0/sum)."""
    tq, tk = scores.shape[-2:]
    allowed = torch.arange(tk)[None, :] <= torch.arange(tq)[:, None]
    w = scores * torch.tensor(scale, dtype=F32)
    w = torch.where(allowed, w, torch.tensor(float("-inf")))
    m = w.amax(dim=-1, keepdim=True)
    e = torch.where(allowed, v_expf(torch.where(allowed, w - m, torch.zeros(()))), torch.zeros(()))
    chunks = hsum16(pad16(e).unflatten(-1, (-1, 16)))   # (..., Tq, ceil(Tk/16)) float
    total = torch.zeros(chunks.shape[:-1], dtype=F64)
    for ci in range(chunks.shape[-1]):
        total = total + chunks[..., ci].to(F64)
    inv = (1.0 / total).to(F32)
    return e * inv[..., None]


# ---------------- tinyBLAS F16 x F32 ----------------
def _lanes16_block(a, b, tiny):
    """the FMA chains of one block: a (..., rows, steps, 16) and b (..., n, steps, 16) numpy (F16 or
    float32 values); returns the lane accumulators (..., n, rows, 16) float32"""
    steps = a.shape[-2]
    ad = np.ascontiguousarray(np.moveaxis(a, -2, 0), np.float64)    # (steps, ..., rows, 16)
    bd = np.ascontiguousarray(np.moveaxis(b, -2, 0), np.float64)    # (steps, ..., n, 16)
    shape = np.broadcast_shapes(ad.shape[1:-2], bd.shape[1:-2]) + (bd.shape[-2], ad.shape[-2], 16)
    acc = np.zeros(shape, np.float32)
    acc64 = np.zeros(shape)                                          # acc widened to double
    p, s, scratch = np.empty(shape), np.empty(shape), np.empty(shape, np.int64)
    for k in range(steps):
        bk, ak = bd[k][..., :, None, :], ad[k][..., None, :, :]
        np.multiply(bk, ak, out=p)                                   # exact: 11 (or 24) + 24 bits
        np.add(p, acc64, out=s)                                      # the one double rounding
        idx = _suspects(s, tiny, scratch)
        np.copyto(acc, s, casting="same_kind")                       # fl32: the fmaf rounding
        if idx.size:
            acc.flat[idx] = _round_odd_to_f32(p.flat[idx], acc64.flat[idx])
        np.copyto(acc64, acc)
    return acc


def lanes16_matmul(a, b, block_elems=1 << 18, workers=None):
    """out[..., n, m] = tinyBLAS<16, __m512> dot of a[..., m, :] (F16 values) and b[..., n, :]
    (float32): lane j accumulates fmaf(a, b, acc) over k = j, j+16, ... in order, then the 16-lane
    tree. Used for P.V (k = key positions) and the F16 LM head (k = hidden dims). Rows of a are cut
    into blocks whose (n, rows, 16) double buffers stay cache sized, run by `workers` threads
    (default: torch's thread count).
    k is zero-padded to a multiple of 16 (bitnet.cpp's shapes are multiples of 16 already)."""
    a, b = pad16(a).numpy(), pad16(b).numpy()
    steps = a.shape[-1] // 16
    a = a.reshape(a.shape[:-1] + (steps, 16))
    b = b.reshape(b.shape[:-1] + (steps, 16))
    lead = np.broadcast_shapes(a.shape[:-3], b.shape[:-3])
    n, m = b.shape[-3], a.shape[-3]
    rows = max(1, block_elems // (16 * n * max(1, int(np.prod(lead, dtype=np.int64)))))
    tiny = _tiny_possible(a, b)
    out = np.empty(lead + (n, m), np.float32)

    def run(m0):
        out[..., m0:m0 + rows] = hsum16(_lanes16_block(a[..., m0:m0 + rows, :, :], b, tiny))
    starts = range(0, m, rows)
    workers = workers or torch.get_num_threads()
    if workers > 1 and len(starts) > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            list(ex.map(run, starts))
    else:
        for m0 in starts:
            run(m0)
    return torch.from_numpy(out)
