#!/usr/bin/python3
"""unigram_ppl.py - unigram perplexity of a model's tokenizer on a text (the acceptance baseline).

Design: tokenizes the text with the model's own tokenizer (reference/tokenizer.py built from the
GGUF metadata) and reports two unigram perplexities over the same positions the llama.cpp protocol
scores (second half of each CTX window, BOS excluded):
  - fitted on the training text (add-one smoothing over the vocabulary): a real unigram model;
  - fitted on the evaluated text itself (its empirical token entropy): the lowest perplexity any
    unigram model can reach on this text, the stricter baseline.
Usage: /usr/bin/python3 training/unigram_ppl.py -m MODEL -f HELDOUT --train TRAINTEXT [-c CTX]
"""
import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import bitnet_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("-c", "--ctx", type=int, default=256)
    args = ap.parse_args()
    g = bitnet_ref.gguf_reader.GGUFFile(args.model)
    kv = g.kv
    tok = bitnet_ref.tokmod.Tokenizer(kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.merges"],
                                      kv["tokenizer.ggml.token_type"], kv.get("tokenizer.ggml.pre"),
                                      kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"])
    V = len(kv["tokenizer.ggml.tokens"])
    ids = tok.encode(open(args.file, encoding="utf-8").read(), add_bos=True)
    ctx, first = args.ctx, args.ctx // 2
    scored = []
    for c in range(len(ids) // ctx):
        scored.extend(ids[c * ctx + first + 1:(c + 1) * ctx])
    scored = np.array(scored)
    train = np.array(tok.encode(open(args.train, encoding="utf-8").read(), add_bos=False))
    p_train = (np.bincount(train, minlength=V) + 1.0) / (len(train) + V)
    ppl_train = math.exp(-np.log(p_train[scored]).mean())
    cnt = np.bincount(scored, minlength=V)
    p_self = cnt / cnt.sum()
    ppl_self = math.exp(-np.log(p_self[scored]).mean())
    print("scored %d tokens (ctx %d): unigram perplexity fitted on training text %.2f, "
          "fitted on this text %.2f" % (len(scored), ctx, ppl_train, ppl_self))


if __name__ == "__main__":
    main()
