#!/usr/bin/env bash
# train_kjv.sh: rebuilds the shipped model models/kjv-bitnet.gguf from scratch (not run in CI).
# Steps: KJV text from Debian's `bible` program -> train / held-out split (every 20th chapter held
# out) -> byte-level BPE (4096 tokens) -> BitNet b1.58 training on 2 CPU threads for 88 minutes of
# training time (checkpoints every 25 steps; run this script again to resume after an interruption)
# -> GGUF export (I2_S) -> held-out perplexity with the reference and the unigram baseline.
# Needs: python3-torch python3-numpy python3-regex bible-kjv (and libopenblas0-pthread for speed).
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
export OPENBLAS_NUM_THREADS=2
[[ -f training/data/kjv-heldout.txt ]] || $py training/prep_data.py
[[ -f training/data/tokenizer.json ]] || \
    $py training/bpe_train.py --text training/data/kjv-train.txt --vocab-size 4096 --out training/data/tokenizer.json
nice -n 10 $py training/train.py --minutes "${MINUTES:-88}" --steps 100000
$py training/export_gguf.py --ckpt training/checkpoints/ckpt.pt --out models/kjv-bitnet.gguf --check
cp training/data/kjv-heldout.txt models/kjv-heldout.txt
$py reference/bitnet_ref.py perplexity -m models/kjv-bitnet.gguf -f models/kjv-heldout.txt -c 256 -q
$py training/unigram_ppl.py -m models/kjv-bitnet.gguf -f models/kjv-heldout.txt --train training/data/kjv-train.txt -c 256
