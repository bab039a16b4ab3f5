#!/usr/bin/python3
"""hf_corrupt.py - breaks a Hugging Face checkpoint folder (written by scripts/make_hf_checkpoint.py)
in one way, in place, for tests/test_convert.sh's malformed-checkpoint cases.

Kinds:
  truncated-shard   the last shard loses its last 100 bytes (needs --shards >= 2)
  missing-shard     model.safetensors.index.json maps one tensor to a file that does not exist
  wrong-dtype       layer 0's k_proj.weight is declared I8 instead of U8 (same bytes)
  shape-mismatch    layer 0's k_proj.weight is declared [rows*2, in/2] (same bytes)
  scale-dtype       layer 0's q_proj.weight_scale is declared I16 instead of BF16 (same bytes)
  scale-shape       layer 0's q_proj.weight_scale holds two values, shape [2]
  scale-zero        layer 0's q_proj.weight_scale is 0
  code3             layer 1's up_proj.weight gets the 2-bit code 3 at packed [2, 5], bits 5:4
  nan               layer 1's gate_proj.weight (master weights) gets a NaN at [3, 7]
  missing-tensor    layer 1's post_attention_layernorm.weight is removed
  extra-tensor      a tensor model.layers.0.mlp.extra.weight is added
  class             config.json says MistralForCausalLM
  no-tokenizer      tokenizer.json is removed
  odd-pre           tokenizer.json's pre_tokenizer becomes {"type": "Whitespace"}
  spm-truncated-varint   tokenizer.model ends inside a varint (a tag, then a length's first byte)
  spm-length-past-end    tokenizer.model ends with a field whose length runs past the end
  spm-no-pieces          tokenizer.model loses every piece (ModelProto field 1)
  spm-score-wire-type    the first piece's score is a varint (wire type 0), not a float
Usage: hf_corrupt.py DIR KIND
"""
import json
import os
import struct
import sys


def files_of(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        tensors[k] = [v["dtype"], v["shape"], data[b:e]]
    return tensors, meta


def write(path, tensors, meta):
    header, off, blobs = {}, 0, []
    for k in sorted(tensors):
        dtype, shape, blob = tensors[k]
        header[k] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    if meta is not None:
        header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def edit(d, name, change):
    """applies change(tensors, name) to the file holding name"""
    for fn in files_of(d):
        path = os.path.join(d, fn)
        tensors, meta = read(path)
        if name in tensors:
            change(tensors, name)
            write(path, tensors, meta)
            return
    raise SystemExit("hf_corrupt: %s not found" % name)


def pb_varint(b, at):
    """(value, next offset) of the varint at b[at]"""
    v, shift = 0, 0
    while True:
        v |= (b[at] & 0x7F) << shift
        shift += 7
        at += 1
        if not b[at - 1] & 0x80:
            return v, at


def pb_fields(b):
    """[(field, wire, raw bytes of the whole field, value bytes or None)] of a well-formed message"""
    out, at = [], 0
    while at < len(b):
        start = at
        tag, at = pb_varint(b, at)
        wire, value = tag & 7, None
        if wire == 0:
            _, at = pb_varint(b, at)
        elif wire == 1 or wire == 5:
            at += 8 if wire == 1 else 4
        elif wire == 2:
            n, at = pb_varint(b, at)
            value, at = b[at:at + n], at + n
        out.append((tag >> 3, wire, b[start:at], value))
    return out


def edit_spm(d, change):
    path = os.path.join(d, "tokenizer.model")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(change(data))


def score_as_varint(data):
    fields = pb_fields(data)
    first = next(i for i, f in enumerate(fields) if f[0] == 1)
    piece = b"".join(raw if (n, w) != (2, 5) else b"\x10\x01" for n, w, raw, _ in pb_fields(fields[first][3]))
    head = b"\x0a" + bytes([len(piece)]) if len(piece) < 128 else None
    return b"".join(raw if i != first else head + piece for i, (_, _, raw, _) in enumerate(fields))


def main():
    d, kind = sys.argv[1], sys.argv[2]
    if kind == "truncated-shard":
        path = os.path.join(d, files_of(d)[-1])
        os.truncate(path, os.path.getsize(path) - 100)
    elif kind == "missing-shard":
        index = os.path.join(d, "model.safetensors.index.json")
        with open(index) as f:
            doc = json.load(f)
        doc["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors"
        with open(index, "w") as f:
            json.dump(doc, f)
    elif kind == "wrong-dtype":
        edit(d, "model.layers.0.self_attn.k_proj.weight", lambda t, n: t[n].__setitem__(0, "I8"))
    elif kind == "shape-mismatch":
        edit(d, "model.layers.0.self_attn.k_proj.weight",
             lambda t, n: t[n].__setitem__(1, [t[n][1][0] * 2, t[n][1][1] // 2]))
    elif kind == "scale-dtype":
        edit(d, "model.layers.0.self_attn.q_proj.weight_scale", lambda t, n: t[n].__setitem__(0, "I16"))
    elif kind == "scale-shape":
        edit(d, "model.layers.0.self_attn.q_proj.weight_scale", lambda t, n: t.__setitem__(n, ["BF16", [2], t[n][2] * 2]))
    elif kind == "scale-zero":
        edit(d, "model.layers.0.self_attn.q_proj.weight_scale", lambda t, n: t[n].__setitem__(2, bytes(len(t[n][2]))))
    elif kind == "no-tokenizer":
        os.remove(os.path.join(d, "tokenizer.json"))
    elif kind == "odd-pre":
        path = os.path.join(d, "tokenizer.json")
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        doc["pre_tokenizer"] = {"type": "Whitespace"}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
    elif kind == "spm-truncated-varint":
        edit_spm(d, lambda b: b + b"\x1a\x80")
    elif kind == "spm-length-past-end":
        edit_spm(d, lambda b: b + b"\x1a\x05\x18")
    elif kind == "spm-no-pieces":
        edit_spm(d, lambda b: b"".join(raw for n, _, raw, _ in pb_fields(b) if n != 1))
    elif kind == "spm-score-wire-type":
        edit_spm(d, score_as_varint)
    elif kind == "code3":
        def code3(t, n):
            cols = t[n][1][1]
            b = bytearray(t[n][2])
            b[2 * cols + 5] |= 0x30
            t[n][2] = bytes(b)
        edit(d, "model.layers.1.mlp.up_proj.weight", code3)
    elif kind == "nan":
        def nan(t, n):
            dtype, shape, blob = t[n]
            size = {"BF16": 2, "F16": 2, "F32": 4}[dtype]
            bits = {"BF16": b"\xc0\x7f", "F16": b"\x00\x7e", "F32": b"\x00\x00\xc0\x7f"}[dtype]
            at = (3 * shape[1] + 7) * size
            t[n][2] = blob[:at] + bits + blob[at + size:]
        edit(d, "model.layers.1.mlp.gate_proj.weight", nan)
    elif kind == "missing-tensor":
        edit(d, "model.layers.1.post_attention_layernorm.weight", lambda t, n: t.pop(n))
    elif kind == "extra-tensor":
        edit(d, "model.norm.weight", lambda t, n: t.__setitem__("model.layers.0.mlp.extra.weight", t[n]))
    elif kind == "class":
        path = os.path.join(d, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        cfg["architectures"] = ["MistralForCausalLM"]
        with open(path, "w") as f:
            json.dump(cfg, f)
    else:
        raise SystemExit("hf_corrupt: unknown kind %s" % kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
