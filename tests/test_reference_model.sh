#!/usr/bin/env bash
# test_reference_model.sh: the shipped model models/kjv-bitnet.gguf, read by the PyTorch reference:
#   - official layout: architecture bitnet-b1.58, F16 token_embd, F32 norms, I2_S projections whose
#     codes are ternary, file at most 16 MB; gpt2 tokenizer with pre llama3, BOS/EOS/EOT control
#     tokens, add_bos_token, a chat template with the BITNET marker;
#   - the tokenizer round-trips held-out text (models/kjv-heldout.txt);
#   - held-out perplexity on the first 4 windows of 256 tokens (llama.cpp protocol) is at most one
#     third of the unigram perplexity of the same tokens (unigram fitted on the whole held-out
#     text, the best any unigram model can do there: the model learnt more than word counts);
#   - greedy generation after "And God said" continues with English words.
# Skipped (77) when python3-torch / numpy / regex are missing or the model is not there.
set -u
src=${BITNET_SOURCE_DIR:?BITNET_SOURCE_DIR not set}
py=/usr/bin/python3
model=$src/models/kjv-bitnet.gguf
text=$src/models/kjv-heldout.txt
$py -c "import torch, numpy, regex" 2> /dev/null || { echo "skip: needs python3-torch, python3-numpy, python3-regex"; exit 77; }
[[ -f $model && -f $text ]] || { echo "skip: $model or $text not found"; exit 77; }
$py - "$src/reference" "$model" "$text" <<'PY'
import math, os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import bitnet_ref as R, gguf_reader as G
fail = 0
def check(what, ok):
    global fail
    print(("ok: " if ok else "FAIL: ") + what)
    fail |= not ok
path, text_path = sys.argv[2], sys.argv[3]
m = R.RefModel(path)
g = m.gguf
kv = g.kv
check("file at most 16 MB (%d bytes)" % os.path.getsize(path), os.path.getsize(path) <= 16 * 2**20)
check("architecture bitnet-b1.58", kv["general.architecture"] == "bitnet-b1.58")
types = {n: t.type for n, t in g.tensors.items()}
check("token_embd F16, no output.weight", types.get("token_embd.weight") == G.T_F16 and "output.weight" not in types)
check("norms F32", all(t == G.T_F32 for n, t in types.items() if "norm" in n))
proj = [n for n in types if n.split(".")[-2] in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]
check("%d projections, all I2_S" % len(proj), len(proj) == 7 * m.n_layers and all(types[n] == G.T_I2_S for n in proj))
w, s = g.tensor("blk.0.ffn_down.weight")
check("I2_S codes ternary with a positive scale", set(np.unique(w)) <= {-1.0, 0.0, 1.0} and s > 0)
tok = m.tokenizer
check("gpt2 tokenizer, pre llama3", kv["tokenizer.ggml.model"] == "gpt2" and kv.get("tokenizer.ggml.pre") == "llama3")
specials = {kv["tokenizer.ggml.tokens"][kv[k]] for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")}
check("BOS/EOS/EOT are the LLaMA-3 control texts", specials == {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"}
      and all(kv["tokenizer.ggml.token_type"][kv[k]] == 3 for k in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eot_token_id")))
check("add_bos_token and a BITNET chat template", kv["tokenizer.ggml.add_bos_token"] is True and "BITNET" in kv["tokenizer.chat_template"])
text = open(text_path, encoding="utf-8").read()
ids = tok.encode(text)
check("tokenizer round trip on held-out text (%d tokens)" % len(ids), tok.decode(ids[1:]) == text and ids[0] == tok.bos_id)
ctx = 256
ppl, nll, cnt, nch = m.perplexity(ids, ctx, max_chunks=4)
scored = np.array([t for c in range(nch) for t in ids[c * ctx + ctx // 2 + 1:(c + 1) * ctx]])
cnt_v = np.bincount(np.array(ids[1:]))  # unigram fitted on the whole held-out text (its best case)
uni = math.exp(-np.log(cnt_v[scored] / cnt_v.sum()).mean())
check("held-out perplexity %.2f <= unigram %.2f / 3 (4 windows)" % (ppl, uni), ppl <= uni / 3)
p = tok.encode("And God said")
out = list(p)
for _ in range(12):
    out.append(int(m.logits(out)[-1].argmax()))
cont = tok.decode(out[len(p):])
print("  greedy: And God said%s" % cont.replace("\n", "\\n"))
words = [w for w in cont.replace(",", " ").replace(".", " ").replace(":", " ").replace(";", " ").split() if w.isalpha()]
check("greedy continuation has English words", len(words) >= 3)
sys.exit(fail)
PY
