#!/usr/bin/python3
"""hf_reference.py - logits of a Hugging Face BitNet b1.58 checkpoint computed directly from its
safetensors (no GGUF), with the arithmetic of reference/bitnet_ref.py for the output type of a
conversion: the oracle `bitnet convert` is checked against (tests/test_convert.sh).

Design: reads config.json and the safetensors files itself (numpy, no transformers / safetensors
package) and builds reference/bitnet_ref.py's RefModel from the HF tensors instead of a GGUF, so
the forward pass (RMSNorm, RoPE, attention, FFN, head; spec 4.1 and 9) is bitnet_ref's, while
everything a converter decides is done here independently, from spec/HF_CHECKPOINTS.md:
- packed U8 [ceil(out/4), in]: matrix row i*R + r is bits 2i+1:2i of packed row r (a code 3 is an
  error); W = t * s for linear_class autobitlinear, else t / s (scale float32(1 / float64(s)));
- master F32/F16/BF16 weights: m = float32(sum|W| / n) (sum in float64), m = max(m, 1e-5),
  inv = float32(1) / m, t = clip(round_half_even(float32(W * inv)), -1, 1), W = t / inv;
- RoPE in HF's own form: rotate_half (pairs j, j + D/2) on the HF rows for every class (for
  LlamaForCausalLM the converter permutes q/k rows instead and the engine pairs 2j, 2j+1: the
  same rotation in a different element order, so llama logits agree within the spec section 8
  tolerance, not bit for bit); llama3 rope scaling as frequency divisors computed here;
- sub-norms: attn_sub_norm / ffn_sub_norm (BitNetForCausalLM), inner_attn_ln / ffn_layernorm
  (1bitLLM); FFN relu2 or silu from hidden_act; head = lm_head when untied, else the embedding.
What the output type itself does to the numbers is applied too, so that an exact conversion
gives the engine's logits bit for bit where the order of operations allows: the activation
quantization of the projection type (--type: per-token int8 for I2_S, Q8_K blocks and the fp16
block scale for TQ2_0 / TQ1_0), and the embedding / head values rounded to --embd-type /
--head-type: f32, f16 and bf16 rounded, q8_0 encoded as bitnet-c's simple quantizer does
(quant/float_encode.c); q6_k and q4_k are not encoded here (the float values are used), so
those agree only within a looser tolerance.

Usage (the interface of bitnet crossval --reference-cmd, with -m ignored):
  /usr/bin/python3 tests/py/hf_reference.py --hf DIR [--type T] [--embd-type T] [--head-type T]
      logits -m ANY --tokens 1,2,3 --out FILE
writes float32 LE logits, n_tokens x n_vocab.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "reference"))
import bitnet_ref  # noqa: E402
import ggml_arith  # noqa: E402
import ggml_quants  # noqa: E402

F32 = np.float32
NP_DTYPE = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "U8": "u1"}


class Checkpoint:
    """the tensors of model.safetensors or of the shards an index names, as numpy arrays (mmap)"""

    def __init__(self, d):
        index = os.path.join(d, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.tensors = {}
        for name in files:
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                header = json.loads(f.read(n))
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
            for k, v in header.items():
                if k == "__metadata__":
                    continue
                b, e = v["data_offsets"]
                self.tensors[k] = (v["dtype"], v["shape"], data[b:e])

    def has(self, name):
        return name in self.tensors

    def get(self, name):
        """float32 values of a float tensor, or the raw uint8 of a U8 one"""
        dtype, shape, raw = self.tensors[name]
        a = np.frombuffer(raw, dtype=NP_DTYPE[dtype])
        if dtype == "BF16":
            a = (a.astype(np.uint32) << 16).view(F32)
        elif dtype != "U8":
            a = a.astype(F32)
        return a.reshape(shape), dtype


def unpack(packed, out):
    """U8 [R, in] -> ternary int8 [out, in]"""
    codes = np.stack([(packed >> (2 * i)) & 3 for i in range(4)])   # (4, R, in)
    codes = codes.reshape(-1, packed.shape[1])[:out]
    if (codes == 3).any():
        raise ValueError("packed code 3")
    return codes.astype(np.int8) - 1


def ternarize(w):
    """absmean per tensor: (ternary int8, float32 scale = 1 / inv)"""
    m = F32(np.abs(w.astype(np.float64)).sum() / w.size)
    m = max(m, F32(1e-5))
    inv = F32(1.0) / m
    t = np.clip(np.rint((w * inv).astype(F32)), -1, 1).astype(np.int8)
    return t, F32(F32(1.0) / inv)


def round_to(x, type_name):
    """float32 values as the embedding / head type stores them (block types: unchanged)"""
    if type_name == "f16":
        return x.astype(np.float16).astype(F32)
    if type_name == "bf16":
        u = x.astype(F32).view(np.uint32)
        return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(F32)
    return x.astype(F32)


def encode_q8_0(x):
    """float32 (rows, cols) -> Q8_0 blocks as bitnet-c's encoder writes them (quant/float_encode.c):
    d = fp16(max|x| / 127), q = round-half-away(x / d) clamped to [-127, 127] (0 when d is 0)"""
    rows, cols = x.shape
    xb = np.ascontiguousarray(x, F32).reshape(rows, cols // 32, 32)
    d16 = (np.abs(xb).max(-1) / F32(127.0)).astype(F32).astype(np.float16)
    d = d16.astype(F32)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d > 0, (xb / np.where(d > 0, d, F32(1))).astype(F32), F32(0)).astype(np.float64)
    q = np.clip(np.sign(r) * np.floor(np.abs(r) + 0.5), -127, 127).astype(np.int8)
    blk = np.concatenate([d16.astype("<f2")[..., None].view(np.uint8), q.view(np.uint8)], axis=-1)
    return ggml_quants.QuantMatrix(np.ascontiguousarray(blk).tobytes(), ggml_quants.T_Q8_0, rows, cols)


def table(x, type_name):
    """the embedding / head as the output type stores it: f32, f16, bf16 rounded, q8_0 encoded; q6_k
    and q4_k keep the float values (those agree within tolerance only)"""
    if type_name == "q8_0":
        return encode_q8_0(x)
    return FloatTable(round_to(x, type_name))


class FloatTable:
    """token_embd / head: rows looked up and the head matmul as bitnet_ref.Matrix does for float types"""

    def __init__(self, values):
        self.w = torch.from_numpy(np.ascontiguousarray(values, dtype=F32))
        self.shape = tuple(self.w.shape)

    def rows(self, ids):
        return self.w[ids].float()

    def matmul(self, h):
        return ggml_arith.lanes16_matmul(self.w, h)


def llama3_factors(cfg, head_dim):
    r = cfg["rope_scaling"]
    theta = float(cfg["rope_theta"])
    old = float(r.get("original_max_position_embeddings", 8192))
    lo, hi, factor = float(r.get("low_freq_factor", 1.0)), float(r.get("high_freq_factor", 4.0)), float(r["factor"])
    out = []
    for i in range(head_dim // 2):
        wavelen = 2 * np.pi * theta ** (2 * i / head_dim)
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=F32)


def build(d, ptype, embd_type, head_type):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)  # duplicate keys: the last wins, as for transformers
    cls = cfg["architectures"][0]
    if cls not in ("BitNetForCausalLM", "BitnetForCausalLM", "LlamaForCausalLM"):
        raise ValueError("class %s" % cls)
    ck = Checkpoint(d)
    q = cfg.get("quantization_config") or {}
    packed = bool(q) and q.get("quantization_mode", "offline") != "online"
    multiply = q.get("linear_class") == "autobitlinear"
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    hd = cfg.get("head_dim") or hidden // heads
    ttype = {"i2_s": None, "tq2_0": ggml_quants.T_TQ2_0, "tq1_0": ggml_quants.T_TQ1_0}[ptype]

    m = object.__new__(bitnet_ref.RefModel)
    m.kv_f16 = True
    m.k_q8_0 = m.v_q8_0 = False  # the F16 cache of bitnet.cpp (bitnet_ref.RefModel.__init__)
    m.arch = cls
    m.neox = True                      # HF's rotate_half on HF rows (see the module docstring)
    m.sub_norms = cls != "LlamaForCausalLM"
    m.relu2 = cfg["hidden_act"] == "relu2"
    m.dim, m.n_layers, m.n_heads, m.n_kv, m.head_dim = hidden, cfg["num_hidden_layers"], heads, kv, hd
    m.ffn = cfg["intermediate_size"]
    m.eps = float(F32(cfg["rms_norm_eps"]))
    m.rope_dims = hd
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type"))
    factors, freq_scale = None, 1.0
    if kind == "llama3":
        factors = llama3_factors(cfg, hd)
    elif kind == "linear":
        freq_scale = F32(1.0) / F32(rs["factor"])
    m.rope = ggml_arith.RopeTable(hd, float(F32(cfg["rope_theta"])), factors, freq_scale)

    def vec(name):
        return torch.from_numpy(np.ascontiguousarray(ck.get(name)[0], dtype=F32))

    def proj(name, out):
        w, dtype = ck.get(name)
        if packed:
            t = unpack(w, out)
            s = ck.get(name + "_scale")[0].reshape(-1)[0]
            scale = F32(s) if multiply else F32(1.0 / np.float64(s))
        else:
            t, scale = ternarize(w)
        if ttype is None:
            return (torch.from_numpy(t), scale)
        d = np.full((t.shape[0], t.shape[1] // 256), np.float16(scale).astype(F32), F32)
        return ggml_quants.TernaryTQ(t, d, ttype)

    embd = ck.get("model.embed_tokens.weight")[0]
    m.tok_embd = table(embd, embd_type)
    m.vocab = embd.shape[0]
    tied = cfg.get("tie_word_embeddings", False) or not ck.has("lm_head.weight")
    m.head = m.tok_embd if tied or cls != "LlamaForCausalLM" else table(ck.get("lm_head.weight")[0], head_type)
    m.output_norm = vec("model.norm.weight")
    sub = ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm") if cls == "BitNetForCausalLM" else \
          ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")
    qd, kvd = heads * hd, kv * hd
    outs = {"attn_q": ("self_attn.q_proj", qd), "attn_k": ("self_attn.k_proj", kvd), "attn_v": ("self_attn.v_proj", kvd),
            "attn_output": ("self_attn.o_proj", hidden), "ffn_gate": ("mlp.gate_proj", m.ffn),
            "ffn_up": ("mlp.up_proj", m.ffn), "ffn_down": ("mlp.down_proj", hidden)}
    m.layers = []
    for i in range(m.n_layers):
        p = "model.layers.%d." % i
        L = {"attn_norm": vec(p + "input_layernorm.weight"), "ffn_norm": vec(p + "post_attention_layernorm.weight")}
        if m.sub_norms:
            L["attn_sub_norm"], L["ffn_sub_norm"] = vec(p + sub[0] + ".weight"), vec(p + sub[1] + ".weight")
        for g, (module, out) in outs.items():
            L[g] = proj(p + module + ".weight", out)
            L[g + ".scale"] = None
        m.layers.append(L)
    m.tokenizer = None
    return m


def main():
    ap = argparse.ArgumentParser(prog="hf_reference.py")
    ap.add_argument("--hf", required=True, help="the Hugging Face checkpoint folder")
    ap.add_argument("--type", default="i2_s", choices=("i2_s", "tq2_0", "tq1_0"))
    ap.add_argument("--embd-type", default="f16")
    ap.add_argument("--head-type", default="f16")
    ap.add_argument("cmd", choices=("logits",))
    ap.add_argument("-m", "--model", help="ignored (crossval passes the GGUF)")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    try:
        model = build(args.hf, args.type, args.embd_type, args.head_type)
        ids = [int(t) for t in args.tokens.split(",") if t]
        lg = model.logits(ids)
    except (ValueError, KeyError, OSError) as e:
        print("hf_reference: %s" % e, file=sys.stderr)
        return 1
    lg.numpy().astype("<f4").tofile(args.out)
    print("tokens %d vocab %d" % (len(ids), lg.shape[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
