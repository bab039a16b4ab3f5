#!/usr/bin/python3
"""export_gguf.py - writes a training checkpoint as a GGUF file in the official BitNet b1.58 layout.

Design: spec sections 1-2. Metadata: general.architecture = bitnet-b1.58 with the ARCH.* keys,
the byte-level BPE tokenizer (tokenizer.ggml.model gpt2, pre llama3, tokens / token_type / merges,
bos / eos / eot ids, add_bos_token) and a chat template carrying the BITNET marker. Tensors: F16
token_embd (tied LM head), F32 norms, I2_S projections: codes = clamp(round(W / s), -1, 1) with
s = mean|W| computed exactly as training's fake quantisation does, packed in 128-weight blocks of
32 bytes (byte j = weights j, 32+j, 64+j, 96+j in bits 7:6, 5:4, 3:2, 1:0; 0/1/2 = -1/0/+1), the
float32 scale at byte ne/4, 28 zero bytes of padding. Works from any checkpoint (mid-training too).
With --check it reloads the file with the reference implementation and compares its logits with
the training model's on a held-out snippet (cosine per position).

Usage: /usr/bin/python3 training/export_gguf.py --ckpt training/checkpoints/ckpt.pt
         --out models/kjv-bitnet.gguf [--check]
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import gguf_reader  # noqa: E402
import model as M  # noqa: E402

ARCH = "bitnet-b1.58"
ALIGN = 32
CHAT_TEMPLATE = (
    "{#- BITNET chat format (as Microsoft's BitNet b1.58 reference code renders it) -#}"
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '<|eot_id|>' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '<|eot_id|>' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + '<|eot_id|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")

# GGUF value types
U32, I32, F32V, BOOL, STR, ARR = 4, 5, 6, 7, 8, 9


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv_bytes(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == U32:
        return out + struct.pack("<I", value)
    if vtype == I32:
        return out + struct.pack("<i", value)
    if vtype == F32V:
        return out + struct.pack("<f", value)
    if vtype == BOOL:
        return out + struct.pack("<B", 1 if value else 0)
    if vtype == STR:
        return out + gstr(value)
    raise ValueError(vtype)


def kv_array(key, etype, values):
    out = gstr(key) + struct.pack("<IIQ", ARR, etype, len(values))
    if etype == STR:
        return out + b"".join(gstr(v) for v in values)
    if etype == I32:
        return out + np.asarray(values, dtype="<i4").tobytes()
    if etype == F32V:
        return out + np.asarray(values, dtype="<f4").tobytes()
    raise ValueError(etype)


def ternarise(w):
    """Same arithmetic as model.weight_quant: returns (int8 codes, float32 scale)."""
    w = w.detach().float()
    s = w.abs().mean().clamp(min=1e-5)
    q = (w / s).round().clamp(-1, 1)
    return q.to(torch.int8).numpy(), float(s)


def export(ck, out_path, name):
    cfg = M.Config.from_dict(ck["config"])
    tok = ck["tokenizer"]
    sd = ck["model"]
    if cfg.dim % 128 or cfg.ffn % 128 or (cfg.n_kv_heads * cfg.head_dim) % 128:
        raise SystemExit("export: dimensions must be multiples of 128 for I2_S rows")
    kvs = [
        kv_bytes("general.architecture", STR, ARCH),
        kv_bytes("general.name", STR, name),
        kv_bytes("general.file_type", U32, 40),
        kv_bytes("general.quantization_version", U32, 2),
        kv_bytes("general.license", STR, "model: same terms as this repository; training data (King James Bible) public domain"),
        kv_bytes(ARCH + ".vocab_size", U32, cfg.vocab),
        kv_bytes(ARCH + ".context_length", U32, cfg.ctx),
        kv_bytes(ARCH + ".embedding_length", U32, cfg.dim),
        kv_bytes(ARCH + ".block_count", U32, cfg.n_layers),
        kv_bytes(ARCH + ".feed_forward_length", U32, cfg.ffn),
        kv_bytes(ARCH + ".rope.dimension_count", U32, cfg.head_dim),
        kv_bytes(ARCH + ".attention.head_count", U32, cfg.n_heads),
        kv_bytes(ARCH + ".attention.head_count_kv", U32, cfg.n_kv_heads),
        kv_bytes(ARCH + ".attention.layer_norm_rms_epsilon", F32V, cfg.eps),
        kv_bytes(ARCH + ".rope.freq_base", F32V, cfg.rope_base),
        kv_bytes("tokenizer.ggml.model", STR, "gpt2"),
        kv_bytes("tokenizer.ggml.pre", STR, tok["pre"]),
        kv_array("tokenizer.ggml.tokens", STR, tok["tokens"]),
        kv_array("tokenizer.ggml.token_type", I32, tok["token_types"]),
        kv_array("tokenizer.ggml.merges", STR, tok["merges"]),
        kv_bytes("tokenizer.ggml.bos_token_id", U32, tok["bos"]),
        kv_bytes("tokenizer.ggml.eos_token_id", U32, tok["eos"]),
        kv_bytes("tokenizer.ggml.eot_token_id", U32, tok["eot"]),
        kv_bytes("tokenizer.ggml.add_bos_token", BOOL, True),
        kv_bytes("tokenizer.chat_template", STR, CHAT_TEMPLATE),
    ]
    tensors = []  # (name, ne list, type, bytes)

    def f32(name, t):
        tensors.append((name, [t.numel()], gguf_reader.T_F32, t.detach().float().numpy().astype("<f4").tobytes()))

    def i2s(name, w):
        codes, s = ternarise(w)
        tensors.append((name, [w.shape[1], w.shape[0]], gguf_reader.T_I2_S, gguf_reader.encode_i2s(codes, s)))

    emb = sd["token_embd.weight"]
    tensors.append(("token_embd.weight", [emb.shape[1], emb.shape[0]], gguf_reader.T_F16,
                    emb.float().numpy().astype("<f2").tobytes()))
    for i in range(cfg.n_layers):
        p = "blocks.%d." % i
        f32("blk.%d.attn_norm.weight" % i, sd[p + "attn_norm.weight"])
        for n in ("attn_q", "attn_k", "attn_v"):
            i2s("blk.%d.%s.weight" % (i, n), sd[p + n + ".weight"])
        f32("blk.%d.attn_sub_norm.weight" % i, sd[p + "attn_sub_norm.weight"])
        i2s("blk.%d.attn_output.weight" % i, sd[p + "attn_output.weight"])
        f32("blk.%d.ffn_norm.weight" % i, sd[p + "ffn_norm.weight"])
        i2s("blk.%d.ffn_gate.weight" % i, sd[p + "ffn_gate.weight"])
        i2s("blk.%d.ffn_up.weight" % i, sd[p + "ffn_up.weight"])
        f32("blk.%d.ffn_sub_norm.weight" % i, sd[p + "ffn_sub_norm.weight"])
        i2s("blk.%d.ffn_down.weight" % i, sd[p + "ffn_down.weight"])
    f32("output_norm.weight", sd["output_norm.weight"])

    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, offset = [], 0
    for name, ne, ttype, data in tensors:
        infos.append(gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
                     + struct.pack("<IQ", ttype, offset))
        offset += (len(data) + ALIGN - 1) // ALIGN * ALIGN
    head = header + b"".join(infos)
    head += bytes((ALIGN - len(head) % ALIGN) % ALIGN)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(head)
        for _, _, _, data in tensors:
            f.write(data)
            f.write(bytes((ALIGN - len(data) % ALIGN) % ALIGN))
    os.replace(tmp, out_path)
    return cfg


def check(ck, path, text_path):
    import bitnet_ref
    ref = bitnet_ref.RefModel(path)
    cfg = M.Config.from_dict(ck["config"])
    model = M.BitNet(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    with open(text_path, encoding="utf-8") as f:
        text = f.read()[:2000]
    ids = ref.tokenizer.encode(text)[:64]
    with torch.no_grad():
        a = model(torch.tensor([ids]))[0].double()
    b = ref.logits(ids).double()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    agree = (a.argmax(-1) == b.argmax(-1)).double().mean().item()
    print("check: %d tokens, cosine training model vs reference on the GGUF: min %.6f mean %.6f, top-1 agreement %.3f"
          % (len(ids), cos.min().item(), cos.mean().item(), agree))
    return cos.min().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoints", "ckpt.pt"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="kjv-bitnet-b1.58-4m")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--check-text", default=os.path.join(HERE, "data", "kjv-heldout.txt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    ck = torch.load(args.ckpt)
    cfg = export(ck, args.out, args.name)
    print("export: step %d -> %s (%d bytes), config %s" % (ck["step"], args.out, os.path.getsize(args.out), cfg.to_dict()))
    if args.check:
        check(ck, args.out, args.check_text)


if __name__ == "__main__":
    main()
