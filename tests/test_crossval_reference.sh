#!/usr/bin/env bash
# test_crossval_reference.sh: `bitnet crossval` against the PyTorch reference (reference/
# bitnet_ref.py, run as a subprocess with /usr/bin/python3).
#   - a random-weight synthetic model gives the reference's logits bit for bit (--max-tol 0: both
#     compute spec section 4.1's arithmetic), from --tokens and from --prompt (the engine's and
#     the reference's token ids agree first); --greedy runs both and they agree at every step;
#   - a copy with one ternary row flipped, and one with a norm weight changed, run by the engine
#     against the reference on the original file (--against-model) fail with exit 1;
#   - a reference that tokenizes differently stops crossval before any logits (exit 1), and one
#     that writes the wrong number of logits is an error;
#   - the shipped model in models/ (when present) gives the reference's logits bit for bit.
# Skipped (77) when the reference or python3-torch is missing.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/support/corrupt.sh"
bn_require_reference
bn_make_tmp crossval_ref
rule=(--pos0-tol 5e-3 --cos-tol 0.99 --mean-cos-tol 0.997)
strict=(--max-tol 0)

m=$tmp/tiny.gguf
bn_synth "$m" --seed 41 --layers 3
ids=259,40,71,72,83,0,17,256,257,258,100,101,33,34,35,36,200,201,5,6

"$bin" crossval -m "$m" --tokens $ids "${rule[@]}" "${strict[@]}" --greedy 4 --json "$tmp/tok.json" -t 1 \
    > "$tmp/tok.out" 2> "$tmp/tok.err"
check "synthetic model vs reference: bit-identical logits" test $? -eq 0
check "the other side is the reference" grep -q "other: reference" "$tmp/tok.out"
check "greedy ran on both sides and agrees" grep -q '^greedy: 4 steps, identical' "$tmp/tok.out"
$py -c "
import json, sys
d = json.load(open('$tmp/tok.json'))
s = d['summary']
sys.exit(0 if d['pass'] and s['max_abs_diff'] == 0 and s['min_cosine'] >= 0.99 and s['mean_cosine'] >= 0.997 else 1)"
check "the JSON report shows max |diff| 0" test $? -eq 0

"$bin" crossval -m "$m" --prompt "In the beginning, 1234 'tis" "${strict[@]}" -t 1 > "$tmp/prompt.out" 2> "$tmp/prompt.err"
check "--prompt: bit-identical logits" test $? -eq 0
check "--prompt: token ids agree before logits" grep -q "^tokens: the engine and the reference agree" "$tmp/prompt.out"

bn_corrupt_tensor "$m" "$tmp/row.gguf" blk.0.ffn_down.weight row
bn_corrupt_tensor "$m" "$tmp/norm.gguf" blk.1.attn_norm.weight norm
for c in row norm; do
    "$bin" crossval -m "$tmp/$c.gguf" --against reference --against-model "$m" --tokens $ids \
        "${rule[@]}" -t 1 > "$tmp/$c.out" 2> "$tmp/$c.err"
    check "corrupted ($c) engine file vs the reference on the original fails (exit 1)" test $? -eq 1
    check "corrupted ($c): FAIL printed" grep -q '^FAIL$' "$tmp/$c.out"
done

# A reference that disagrees on token ids.
cat > "$tmp/badtok.sh" <<EOF
#!/usr/bin/env bash
if [[ \$1 == tokenize ]]; then echo 1,2,3; exit 0; fi
exec $py "$ref" "\$@"
EOF
"$bin" crossval -m "$m" --prompt "hello" --reference-cmd "bash $tmp/badtok.sh" -t 1 > "$tmp/badtok.out" 2> "$tmp/badtok.err"
check "a tokenization mismatch exits 1" test $? -eq 1
check "and is reported before any logits" bash -c "grep -q 'tokenize the prompt differently' '$tmp/badtok.err' && ! grep -q '^summary' '$tmp/badtok.out'"

# A reference that writes too few logits.
cat > "$tmp/short.sh" <<'EOF'
#!/usr/bin/env bash
while [[ $# -gt 0 ]]; do [[ $1 == --out ]] && { printf 'abcd' > "$2"; exit 0; }; shift; done
exit 1
EOF
"$bin" crossval -m "$m" --tokens 1,2,3 --reference-cmd "bash $tmp/short.sh" -t 1 > /dev/null 2> "$tmp/short.err"
check "too few logits from the reference exits 1" test $? -eq 1
check "and says so" grep -q "fewer than 3 x" "$tmp/short.err"

shipped=$(ls "$src"/models/*.gguf 2> /dev/null | head -1)
if [[ -n $shipped ]]; then
    "$bin" crossval -m "$shipped" --prompt "In the beginning God created the heaven and the earth." \
        "${strict[@]}" -t 2 > "$tmp/shipped.out" 2> "$tmp/shipped.err"
    check "the shipped model: bit-identical logits" test $? -eq 0
    grep '^summary' "$tmp/shipped.out"
else
    echo "skip: no shipped model in models/"
fi

exit $fail
