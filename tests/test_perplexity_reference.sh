#!/usr/bin/env bash
# test_perplexity_reference.sh: `bitnet perplexity` and the PyTorch reference's `perplexity`
# (reference/bitnet_ref.py, an independent implementation of the same llama.cpp protocol) agree on
# a synthetic model: same number of windows and scored tokens, mean NLL within 1e-3 nats.
# Skipped (77) when the reference or python3-torch is missing.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_require_reference
bn_make_tmp perplexity_ref

m=$tmp/tiny.gguf
bn_synth "$m" --seed 51
printf 'In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.\n' > "$tmp/text.txt"

for ctx in 16 40; do
    "$bin" perplexity -m "$m" -f "$tmp/text.txt" -c $ctx -t 1 --json > "$tmp/c.json" 2> /dev/null
    check "engine perplexity -c $ctx runs" test $? -eq 0
    $py "$ref" perplexity -m "$m" -f "$tmp/text.txt" -c $ctx -q > "$tmp/r.txt"
    check "reference perplexity -c $ctx runs" test $? -eq 0
    $py - "$tmp/c.json" "$tmp/r.txt" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
r = open(sys.argv[2]).read().split()
r = dict(zip(r[0::2], r[1::2]))
print(f"engine: {c['n_windows']} windows, {c['n_scored']} scored, mean NLL {c['mean_nll']:.6f}, PPL {c['ppl']:.4f}")
print(f"reference: {r['chunks']} windows, {r['scored']} scored, mean NLL {r['mean_nll']}, PPL {r['perplexity']}")
ok = (c["n_windows"] == int(r["chunks"]) and c["n_scored"] == int(r["scored"])
      and c["n_tokens"] == int(r["tokens"]) and abs(c["mean_nll"] - float(r["mean_nll"])) <= 1e-3)
sys.exit(0 if ok else 1)
EOF
    check "engine and reference agree (-c $ctx)" test $? -eq 0
done

exit $fail
