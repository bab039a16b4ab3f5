#!/usr/bin/python3
"""make_hf_checkpoint.py - writes small (or full-size) Hugging Face checkpoints of the BitNet b1.58
flavours `bitnet convert` reads (spec/HF_CHECKPOINTS.md), with seeded random weights, or exports a
bitnet-b1.58 GGUF file back to a packed checkpoint (round trips).

Flavours (--flavour):
  bitnet-packed   microsoft/bitnet-b1.58-2B-4T: BitNetForCausalLM, U8 packed ternary [out/4, in]
                  + BF16 weight_scale [1] (linear_class autobitlinear: W = t * s), BF16 norms and
                  embedding, sub-norms, relu2, tied head
  bitnet-bf16     microsoft/bitnet-b1.58-2B-4T-bf16: the same with BF16 master weights
                  (quantization_mode online, no weight_scale)
  falcon3-packed  tiiuae/Falcon3-*-1.58bit: LlamaForCausalLM, U8 packed + BF16 weight_scale with
                  W = t / s (no linear_class), untied BF16 lm_head, silu, head_dim given
  llama3-packed   HF1BitLLM/Llama3-8B-1.58: LlamaForCausalLM, config.json with two
                  quantization_config keys (the last wins), LLaMA-3 tokenizer, generation_config
                  with two eos ids, llama3 rope scaling (not in the real file; exercises rope_freqs)
  1bitllm         1bitLLM/bitnet_b1_58-*: BitnetForCausalLM, F16 master weights, inner_attn_ln /
                  ffn_layernorm sub-norms, silu, tied, SentencePiece (LLaMA-2 style) tokenizer with
                  <pad> and </line> added
Sizes: --preset tiny (2 layers, hidden 256) or 2b4t (the full 2B-4T shape, LLaMA-3 vocabulary);
--layers/--hidden/... override. --shards N splits the tensors over N files with
model.safetensors.index.json. Tokenizers: a byte-level toy (256 bytes + 3 merges + 3 specials,
LLaMA-3 split) for the bitnet/falcon3 flavours, LLaMA-3's and LLaMA-2's tokenizer.json from
tests/js/node_modules/@lenml when present (--tokenizer byte|llama3|llama2|PATH overrides).
--tokenizer-files model|both writes the SentencePiece tokenizer.json's vocabulary as a
tokenizer.model (a sentencepiece ModelProto, encoded here without the protobuf package: pieces
with their types and the scores SentencePiece's BPE trainer stores, trainer_spec, normalizer_spec),
instead of or beside tokenizer.json, as the 1bitLLM repositories ship it.

Tensors are generated one at a time, in slices of rows, and written straight to disk, so the
2B-4T shape (1.2 GB packed) needs little memory. The same arguments give the same bytes.

--from-gguf FILE exports a bitnet-b1.58 GGUF with I2_S projections and an F16 embedding as a
BitNetForCausalLM checkpoint: the I2_S codes packed in the HF layout with an F32 weight_scale
(autobitlinear: W = t * s, the I2_S scale exactly), F32 norms, the F16 embedding as it is, and a
tokenizer.json rebuilt from the GGUF vocabulary (byte-level BPE, LLaMA-3 split), so converting it
back reproduces the file's tensors byte for byte.

Usage: /usr/bin/python3 scripts/make_hf_checkpoint.py OUT_DIR [--flavour F] [--preset P] [--seed S]
       /usr/bin/python3 scripts/make_hf_checkpoint.py OUT_DIR --from-gguf MODEL.gguf
"""
import argparse
import hashlib
import json
import os
import re
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENML = os.path.join(ROOT, "tests", "js", "node_modules", "@lenml")
LLAMA3_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# the chat template of microsoft/bitnet-b1.58-2B-4T's tokenizer_config.json (HF_CHECKPOINTS.md 3.5)
BITNET_TEMPLATE = ("{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim"
                   " + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

PRESETS = {
    "tiny": dict(layers=2, hidden=256, ffn=768, heads=4, kv_heads=2, vocab=0, ctx=4096),
    "2b4t": dict(layers=30, hidden=2560, ffn=6912, heads=20, kv_heads=5, vocab=128256, ctx=4096),
}
FLAVOURS = ("bitnet-packed", "bitnet-bf16", "falcon3-packed", "llama3-packed", "1bitllm")
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "U8": 1, "I64": 8}


# ---------------- safetensors ----------------
class Tensor:
    """one tensor to write: name, dtype, shape and a producer yielding its bytes in pieces"""

    def __init__(self, name, dtype, shape, produce):
        self.name, self.dtype, self.shape, self.produce = name, dtype, list(shape), produce

    @property
    def nbytes(self):
        n = DTYPE_SIZE[self.dtype]
        for d in self.shape:
            n *= d
        return n


def write_safetensors(path, tensors):
    """the Rust writer's layout: header keys sorted, data in name order, header padded with spaces to 8"""
    tensors = sorted(tensors, key=lambda t: t.name)
    header, offset = {}, 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for t in tensors:
            written = 0
            for piece in t.produce():
                f.write(piece)
                written += len(piece)
            if written != t.nbytes:
                raise SystemExit("make_hf_checkpoint: %s produced %d bytes, expected %d" % (t.name, written, t.nbytes))


def write_checkpoint(out, tensors, shards):
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
        return
    tensors = sorted(tensors, key=lambda t: t.name)
    groups = [tensors[i::shards] for i in range(shards)]
    weight_map, total = {}, 0
    for i, group in enumerate(groups):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write_safetensors(os.path.join(out, name), group)
        for t in group:
            weight_map[t.name] = name
            total += t.nbytes
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)


# ---------------- values ----------------
def to_bf16(x):
    """float32 -> bfloat16 bits, round to nearest even"""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def encode(x, dtype):
    if dtype == "BF16":
        return to_bf16(x).tobytes()
    if dtype == "F16":
        return np.asarray(x, np.float32).astype("<f2").tobytes()
    return np.asarray(x, np.float32).astype("<f4").tobytes()


def rng_for(seed, name):
    return np.random.default_rng(int.from_bytes(hashlib.sha256(("%d:%s" % (seed, name)).encode()).digest()[:8], "little"))


def rows_producer(rows, cols, dtype, make_rows, step_elems=1 << 22):
    """yields rows [r0, r0 + k) of make_rows(r0, k) (float32) encoded, a slice at a time"""
    step = max(1, step_elems // cols)

    def produce():
        for r0 in range(0, rows, step):
            yield encode(make_rows(r0, min(step, rows - r0)), dtype)
    return produce


def gaussian_tensor(name, shape, dtype, seed, std, mean=0.0):
    rows, cols = (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])

    def make(r0, k):  # one generator per slice, seeded by the slice: independent of the slicing caller
        return (mean + std * rng_for(seed, "%s/%d" % (name, r0)).standard_normal((k, cols))).astype(np.float32)
    return Tensor(name, dtype, shape, rows_producer(rows, cols, dtype, make))


def pack_ternary(t):
    """ternary int8 (out, in), out % 4 == 0 -> U8 (out/4, in): row i*R + r in bits 2i+1:2i of row r"""
    out = t.shape[0]
    r = (out + 3) // 4
    codes = np.zeros((4 * r, t.shape[1]), np.uint8)
    codes[:out] = (t + 1).astype(np.uint8)
    codes = codes.reshape(4, r, t.shape[1])
    return (codes[0] | codes[1] << 2 | codes[2] << 4 | codes[3] << 6).astype(np.uint8)


def packed_projection(name, out, inp, seed, multiply):
    """U8 packed codes (uniform over -1, 0, +1) and a BF16 weight_scale [1]"""
    def produce():
        t = rng_for(seed, name).integers(-1, 2, size=(out, inp), dtype=np.int8)
        yield pack_ternary(t).tobytes()
    scale = 0.8 / np.sqrt(inp) * (0.9 + 0.2 * rng_for(seed, name + ".scale").random())  # ~ mean|W|
    value = scale if multiply else 1.0 / scale
    base = name[:-len(".weight")]
    return [Tensor(name, "U8", [(out + 3) // 4, inp], produce),
            Tensor(base + ".weight_scale", "BF16", [1], lambda: iter([encode(np.array([value]), "BF16")]))]


# ---------------- tokenizers ----------------
def byte_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def llama3_pre_tokenizer():
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


def bpe_tokenizer_json(tokens, merges, specials):
    """tokenizer.json of a byte-level BPE with the LLaMA-3 split; tokens: list of texts (id = index),
    specials: {id: text} (added, special)"""
    vocab = {t: i for i, t in enumerate(tokens) if i not in specials}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in sorted(specials.items())]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": llama3_pre_tokenizer(),
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                      "vocab": vocab, "merges": merges}}


def byte_tokenizer(vocab_size):
    """256 byte tokens (GPT-2's order), 3 merges, <|begin_of_text|>, <|end_of_text|>, <|eot_id|>, then
    reserved specials up to vocab_size"""
    m = byte_unicode()
    order = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    order += [b for b in range(256) if b not in order]
    tokens = [m[b] for b in order] + ["\u0120t", "he", "\u0120the"]
    specials = {}
    for text in ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]:
        specials[len(tokens)] = text
        tokens.append(text)
    while len(tokens) < vocab_size:
        specials[len(tokens)] = "<|reserved_special_token_%d|>" % (len(tokens) - 262)
        tokens.append(specials[len(tokens)])
    doc = bpe_tokenizer_json(tokens, ["\u0120 t", "h e", "\u0120t he"], specials)
    return doc, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}, len(tokens)


def load_tokenizer(kind, flavour):
    """(tokenizer.json document, tokenizer_config.json additions, token count)"""
    if kind == "byte":
        return byte_tokenizer(0)
    path = kind
    if kind in ("llama3", "llama2"):
        path = os.path.join(LENML, "tokenizer-" + kind, "models", "tokenizer.json")
    if not os.path.exists(path):
        raise SystemExit("make_hf_checkpoint: %s not found (run scripts/setup-js.sh, or choose --tokenizer byte)" % path)
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    config = {}
    if kind == "llama2" or flavour == "1bitllm":  # 1bitLLM adds <pad> and </line> after the 32000 pieces
        n = max(max(doc["model"]["vocab"].values()), max((a["id"] for a in doc.get("added_tokens", [])), default=0)) + 1
        for text in ("<pad>", "</line>"):
            doc.setdefault("added_tokens", []).append({"id": n, "content": text, "single_word": False, "lstrip": False,
                                                       "rstrip": False, "normalized": False, "special": text == "<pad>"})
            n += 1
        config = {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "add_eos_token": False}
    else:
        config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
    n = max(max(doc["model"]["vocab"].values()), max((a["id"] for a in doc.get("added_tokens", [])), default=0)) + 1
    return doc, config, n


# ---------------- SentencePiece tokenizer.model ----------------
def pb_varint(v):
    v &= (1 << 64) - 1  # negative int32 values are sign-extended to 64 bits
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_key(field, wire):
    return pb_varint(field << 3 | wire)


def pb_bytes(field, payload):
    return pb_key(field, 2) + pb_varint(len(payload)) + payload


def pb_int(field, v):
    return pb_key(field, 0) + pb_varint(v)


def pb_float(field, x):
    return pb_key(field, 5) + struct.pack("<f", x)


def spm_model_proto(doc):
    """tokenizer.model bytes for a SentencePiece-style tokenizer.json: one piece per id (model.vocab
    and added_tokens; specials CONTROL, the unk token UNKNOWN, <0xNN> BYTE, other added tokens
    USER_DEFINED), with the scores SentencePiece's BPE trainer stores (0 for non-NORMAL pieces,
    -1e9 for pieces of spaces only, else minus the rank among learned pieces)"""
    model = doc["model"]
    if not model.get("byte_fallback"):
        raise SystemExit("make_hf_checkpoint: tokenizer.model needs a SentencePiece tokenizer.json (byte_fallback)")
    texts = {i: t for t, i in model["vocab"].items()}
    types = {i: 6 if re.fullmatch("<0x[0-9A-F]{2}>", t) else 1 for i, t in texts.items()}
    for a in doc.get("added_tokens", []):
        texts[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4
    n = max(texts) + 1
    if len(texts) != n:
        raise SystemExit("make_hf_checkpoint: tokenizer.model cannot have unused ids")
    ids = {t: i for i, t in texts.items()}
    unk = ids.get(model.get("unk_token") or "<unk>", 0)
    types[unk] = 2
    first_learned = next((i for i in range(n) if types[i] == 1), n)
    pieces = b""
    for i in range(n):
        t = texts[i]
        score = 0.0 if types[i] != 1 else -1e9 if t and t == "▁" * len(t) else -float(i - first_learned)
        fields = pb_bytes(1, t.encode("utf-8")) + pb_float(2, score)
        if types[i] != 1:
            fields += pb_int(3, types[i])  # NORMAL is the default, not written (as SentencePiece does)
        pieces += pb_bytes(1, fields)
    norm = doc.get("normalizer") or {}
    prepend = any(m.get("type") == "Prepend" for m in norm.get("normalizers", []))
    pt = doc.get("pre_tokenizer") or {}
    if pt.get("type") == "Metaspace":
        prepend = pt.get("prepend_scheme", "always") != "never"
    trainer = (pb_bytes(2, b"tokenizer") + pb_int(3, 2) + pb_int(4, n) + pb_float(10, 0.99995) + pb_int(35, 1) +
               pb_int(40, unk) + pb_int(41, ids.get("<s>", -1)) + pb_int(42, ids.get("</s>", -1)) + pb_int(43, -1) +
               pb_key(1000, 1) + struct.pack("<d", 1.0))  # an unknown 64-bit field, which readers skip
    normalizer = pb_bytes(1, b"identity") + pb_int(3, int(prepend)) + pb_int(4, 0)
    return pieces + pb_bytes(2, trainer) + pb_bytes(3, normalizer)


# ---------------- random checkpoints ----------------
def make_random(args):
    p = dict(PRESETS[args.preset])
    for k in ("layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "ctx"):
        if getattr(args, k) is not None:
            p[k] = getattr(args, k)
    fl = args.flavour
    tok_kind = args.tokenizer or {"llama3-packed": "llama3", "1bitllm": "llama2"}.get(fl, "llama3" if args.preset == "2b4t" else "byte")
    if tok_kind == "byte" and p["vocab"]:
        doc, tok_config, n_tokens = byte_tokenizer(p["vocab"])  # reserved specials up to the size
    else:
        doc, tok_config, n_tokens = load_tokenizer(tok_kind, fl)
    vocab = p["vocab"] or n_tokens
    if vocab < n_tokens:
        raise SystemExit("make_hf_checkpoint: vocab %d is smaller than the tokenizer's %d tokens" % (vocab, n_tokens))
    hidden, ffn, heads, kv = p["hidden"], p["ffn"], p["heads"], p["kv_heads"]
    head_dim = args.head_dim or hidden // heads
    qd, kvd = heads * head_dim, kv * head_dim
    seed = args.seed
    llama = fl in ("falcon3-packed", "llama3-packed")
    packed = fl.endswith("-packed")
    multiply = fl == "bitnet-packed"
    fdt = "F16" if fl == "1bitllm" else "BF16"
    tensors = [gaussian_tensor("model.embed_tokens.weight", [vocab, hidden], fdt, seed, 0.02),
               gaussian_tensor("model.norm.weight", [hidden], fdt, seed, 0.05, 1.0)]
    if llama:
        tensors.append(gaussian_tensor("lm_head.weight", [vocab, hidden], fdt, seed, 0.02))
    sub = {"bitnet-packed": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
           "bitnet-bf16": ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
           "1bitllm": ("self_attn.inner_attn_ln", "mlp.ffn_layernorm")}.get(fl)
    projs = [("self_attn.q_proj", qd, hidden), ("self_attn.k_proj", kvd, hidden), ("self_attn.v_proj", kvd, hidden),
             ("self_attn.o_proj", hidden, qd), ("mlp.gate_proj", ffn, hidden), ("mlp.up_proj", ffn, hidden),
             ("mlp.down_proj", hidden, ffn)]
    for l in range(p["layers"]):
        pre = "model.layers.%d." % l
        tensors.append(gaussian_tensor(pre + "input_layernorm.weight", [hidden], fdt, seed, 0.05, 1.0))
        tensors.append(gaussian_tensor(pre + "post_attention_layernorm.weight", [hidden], fdt, seed, 0.05, 1.0))
        if sub:
            tensors.append(gaussian_tensor(pre + sub[0] + ".weight", [qd], fdt, seed, 0.05, 1.0))
            tensors.append(gaussian_tensor(pre + sub[1] + ".weight", [ffn], fdt, seed, 0.05, 1.0))
        for module, out, inp in projs:
            name = pre + module + ".weight"
            if packed:
                tensors += packed_projection(name, out, inp, seed, multiply)
            else:
                tensors.append(gaussian_tensor(name, [out, inp], fdt, seed, 1.0 / np.sqrt(inp)))
    os.makedirs(args.out, exist_ok=True)
    write_checkpoint(args.out, tensors, args.shards)

    specials = {a["content"]: a["id"] for a in doc.get("added_tokens", [])}
    bos, eos = specials.get(tok_config.get("bos_token")), specials.get(tok_config.get("eos_token"))
    config = {"architectures": [{"bitnet-packed": "BitNetForCausalLM", "bitnet-bf16": "BitNetForCausalLM",
                                 "1bitllm": "BitnetForCausalLM"}.get(fl, "LlamaForCausalLM")],
              "model_type": "bitnet" if fl.startswith("bitnet") else "llama",
              "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": p["layers"],
              "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
              "max_position_embeddings": p["ctx"], "hidden_act": "relu2" if fl.startswith("bitnet") else "silu",
              "rms_norm_eps": 1e-6 if fl == "falcon3-packed" else 1e-5,
              "rope_theta": {"falcon3-packed": 1000042.0, "1bitllm": 10000.0}.get(fl, 500000.0),
              "tie_word_embeddings": not llama, "torch_dtype": "float16" if fl == "1bitllm" else "bfloat16",
              "bos_token_id": bos, "eos_token_id": eos}
    if fl == "falcon3-packed":
        config.update(head_dim=head_dim, is_bitnet_config=True,
                      quantization_config={"modules_to_not_convert": ["lm_head"], "quant_method": "bitnet"})
    elif head_dim != hidden // heads:
        config["head_dim"] = head_dim
    if fl == "bitnet-packed":
        config["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                         "quantization_mode": "offline"}
    if fl == "bitnet-bf16":
        config["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                         "quantization_mode": "online"}
    if fl == "1bitllm":
        config.update(weight_bits=1, input_bits=8, pad_token_id=specials.get("<pad>"))
    text = json.dumps(config, indent=2)
    if fl == "llama3-packed":  # HF1BitLLM's config.json: two quantization_config keys, the last wins
        config.update(rope_interleaved=False, is_bitnet_config=True,
                      rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192, "rope_type": "llama3"})
        text = json.dumps(config, indent=2)[:-2] + (',\n  "quantization_config": {"modules_to_not_convert": null, '
                                                    '"quant_method": "bitnet"},\n  "quantization_config": '
                                                    '{"quant_method": "bitnet"}\n}')
    with open(os.path.join(args.out, "config.json"), "w") as f:
        f.write(text + "\n")
    if fl == "llama3-packed":
        with open(os.path.join(args.out, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": bos, "eos_token_id": [eos, specials.get("<|eot_id|>")]}, f, indent=2)
    template = {"bitnet-packed": BITNET_TEMPLATE, "bitnet-bf16": BITNET_TEMPLATE, "llama3-packed": LLAMA3_TEMPLATE}.get(fl)
    write_tokenizer(args.out, doc, tok_config, template, args.tokenizer_files)


def write_tokenizer(out, doc, tok_config, template, files="json"):
    if files in ("json", "both"):
        with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
    if files in ("model", "both"):
        with open(os.path.join(out, "tokenizer.model"), "wb") as f:
            f.write(spm_model_proto(doc))
    tc = dict(tok_config)
    if template:
        tc["chat_template"] = template
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)


# ---------------- a GGUF file exported ----------------
def export_gguf(args):
    sys.path.insert(0, os.path.join(ROOT, "reference"))
    import gguf_reader
    g = gguf_reader.GGUFFile(args.from_gguf)
    arch = g.kv.get("general.architecture")
    if arch not in ("bitnet-b1.58", "bitnet-25"):
        raise SystemExit("make_hf_checkpoint: --from-gguf takes a bitnet-b1.58 file, not %r" % arch)
    key = lambda k, d=None: g.kv.get(arch + "." + k, d)
    hidden, layers, ffn = int(key("embedding_length")), int(key("block_count")), int(key("feed_forward_length"))
    heads = int(key("attention.head_count"))
    kv = int(key("attention.head_count_kv", heads))
    embd = g.tensors["token_embd.weight"]
    if embd.type != gguf_reader.T_F16:
        raise SystemExit("make_hf_checkpoint: --from-gguf needs an F16 token_embd")
    vocab = embd.ne[1]
    tensors = [Tensor("model.embed_tokens.weight", "F16", [vocab, hidden], lambda: iter([g.raw("token_embd.weight")]))]

    def f32(name, hf):
        t = g.tensors[name]
        if t.type != gguf_reader.T_F32:
            raise SystemExit("make_hf_checkpoint: %s is not F32" % name)
        tensors.append(Tensor(hf, "F32", [t.ne[0]], lambda: iter([g.raw(name)])))

    def ternary(name, hf):
        t = g.tensors[name]
        if t.type != gguf_reader.T_I2_S:
            raise SystemExit("make_hf_checkpoint: %s is not I2_S" % name)
        values, scale = g.tensor(name)  # (out, in) ternary, float32 scale
        packed = pack_ternary(values.astype(np.int8))
        tensors.append(Tensor(hf + ".weight", "U8", list(packed.shape), lambda: iter([packed.tobytes()])))
        s = np.array([scale], "<f4").tobytes()
        tensors.append(Tensor(hf + ".weight_scale", "F32", [1], lambda: iter([s])))

    f32("output_norm.weight", "model.norm.weight")
    parts = [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
             ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
             ("ffn_down", "mlp.down_proj")]
    for l in range(layers):
        b, pre = "blk.%d." % l, "model.layers.%d." % l
        f32(b + "attn_norm.weight", pre + "input_layernorm.weight")
        f32(b + "ffn_norm.weight", pre + "post_attention_layernorm.weight")
        f32(b + "attn_sub_norm.weight", pre + "self_attn.attn_sub_norm.weight")
        f32(b + "ffn_sub_norm.weight", pre + "mlp.ffn_sub_norm.weight")
        for gg, hf in parts:
            ternary(b + gg + ".weight", pre + hf)
    os.makedirs(args.out, exist_ok=True)
    write_checkpoint(args.out, tensors, args.shards)

    if g.kv.get("tokenizer.ggml.model") != "gpt2":
        raise SystemExit("make_hf_checkpoint: --from-gguf needs a byte-level BPE (gpt2) vocabulary")
    tokens, types = g.kv["tokenizer.ggml.tokens"], g.kv.get("tokenizer.ggml.token_type", [1] * vocab)
    specials = {i: t for i, t in enumerate(tokens) if types[i] == 3}
    doc = bpe_tokenizer_json(tokens, g.kv.get("tokenizer.ggml.merges", []), specials)
    bos, eos = g.kv.get("tokenizer.ggml.bos_token_id"), g.kv.get("tokenizer.ggml.eos_token_id")
    config = {"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_size": hidden,
              "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": int(key("context_length")),
              "hidden_act": "relu2", "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon")),
              "rope_theta": float(key("rope.freq_base", 10000.0)), "tie_word_embeddings": True,
              "torch_dtype": "float16", "bos_token_id": bos, "eos_token_id": eos,
              "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                      "quantization_mode": "offline"}}
    if hidden // heads != int(key("rope.dimension_count", hidden // heads)):
        raise SystemExit("make_hf_checkpoint: partial RoPE cannot be exported")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tc = {"add_bos_token": bool(g.kv.get("tokenizer.ggml.add_bos_token", True))}
    if bos is not None:
        tc["bos_token"] = tokens[bos]
    if eos is not None:
        tc["eos_token"] = tokens[eos]
    write_tokenizer(args.out, doc, tc, g.kv.get("tokenizer.chat_template"))


def main():
    ap = argparse.ArgumentParser(description="write a small Hugging Face BitNet b1.58 checkpoint")
    ap.add_argument("out")
    ap.add_argument("--flavour", choices=FLAVOURS, default="bitnet-packed")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    for k in ("layers", "hidden", "ffn", "heads", "kv-heads", "head-dim", "vocab", "ctx"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--tokenizer", help="byte, llama3, llama2 or a tokenizer.json path (default: by flavour)")
    ap.add_argument("--tokenizer-files", choices=("json", "model", "both"), default="json",
                    help="tokenizer.json, a SentencePiece tokenizer.model, or both (default json)")
    ap.add_argument("--from-gguf", help="export this bitnet-b1.58 GGUF instead of random weights")
    args = ap.parse_args()
    if args.from_gguf:
        export_gguf(args)
    else:
        make_random(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
