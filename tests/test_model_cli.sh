#!/usr/bin/env bash
# test_model_cli.sh: `bitnet synth` and `bitnet eval` as users and tools call them.
#   - synth is deterministic in its seed, writes the official layout (checked with inspect) and
#     imports a Hugging Face tokenizer.json;
#   - eval writes n_tokens x n_vocab float32, identical for 1 and 4 threads, one decode call per
#     token (--step 1) and a small ubatch, on every kernel path the CPU has;
#   - a file missing a tensor, a full context, a bad token id and bad arguments are clear errors;
#   - a file whose context_length is over 2^20 is refused with a message naming the value and the
#     limit and saying to pass -c, and runs (run, serve) once -c asks for at most 2^20 tokens;
#   - synth --name and --chat-template write general.name and tokenizer.chat_template.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp model_cli

bn_synth "$tmp/a.gguf" --seed 5
"$bin" synth "$tmp/b.gguf" --preset tiny --seed 5
"$bin" synth "$tmp/c.gguf" --preset tiny --seed 6
check "synth is deterministic" cmp -s "$tmp/a.gguf" "$tmp/b.gguf"
check "another seed gives other weights" bash -c "! cmp -s '$tmp/a.gguf' '$tmp/c.gguf'"
"$bin" inspect "$tmp/a.gguf" > "$tmp/inspect.txt"
check "official architecture" grep -q "bitnet-b1.58" "$tmp/inspect.txt"
check "24 tensors" grep -q "^tensors: 24$" "$tmp/inspect.txt"
check "14 I2_S projections" grep -Eq "^ +i2_s +14 tensors" "$tmp/inspect.txt"
check "F16 token_embd" grep -Eq "^ +token_embd.weight +f16 +\[256, 262\]" "$tmp/inspect.txt"
check "no output.weight (tied)" bash -c "! grep -Eq '^ +output.weight' '$tmp/inspect.txt'"

ids=259,40,71,72,83,0,17,256,257,258,100,101
n=12; vocab=262
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/t1.f32" -t 1
check "eval exits 0" test $? -eq 0
check "eval writes n_tokens x n_vocab float32" test "$(stat -c %s "$tmp/t1.f32")" -eq $((n * vocab * 4))
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/t4.f32" -t 4
check "4 threads bit-identical" cmp -s "$tmp/t1.f32" "$tmp/t4.f32"
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/s1.f32" --step 1 -t 2
check "one token per decode call bit-identical" cmp -s "$tmp/t1.f32" "$tmp/s1.f32"
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/u3.f32" --ubatch 3
check "ubatch 3 bit-identical" cmp -s "$tmp/t1.f32" "$tmp/u3.f32"
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/f32.f32" --kv-f32
check "F32 KV cache runs" test $? -eq 0
"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/i8.f32" --int8-lm-head
check "int8 LM head runs" test "$(stat -c %s "$tmp/i8.f32")" -eq $((n * vocab * 4))
for isa in scalar avx2 avx512 neon neondot; do
    # every kernel path the CPU has: thread count and chunking never change the logits
    if "$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/i1.f32" --isa $isa -t 1 2> /dev/null; then
        "$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/i3.f32" --isa $isa -t 3 --step 5 --ubatch 2
        check "$isa: 3 threads, steps of 5, ubatch 2 bit-identical" cmp -s "$tmp/i1.f32" "$tmp/i3.f32"
    else
        check "scalar kernels always run" test $isa != scalar
    fi
done

"$bin" synth "$tmp/json.gguf" --vocab-json "$BITNET_SOURCE_DIR/tests/data/oracle-a/tokenizer.json" --layers 1
"$bin" inspect "$tmp/json.gguf" > "$tmp/inspect.txt"
check "--vocab-json imports the tokenizer" grep -Eq "tokenizer.ggml.merges: array\[string\] length 500" "$tmp/inspect.txt"
check "--vocab-json sizes the embedding" grep -Eq "^ +token_embd.weight +f16 +\[256, 759\]" "$tmp/inspect.txt"
"$bin" eval -m "$tmp/json.gguf" --tokens 756,758,10 --logits-out "$tmp/j.f32"
check "a --vocab-json model runs" test "$(stat -c %s "$tmp/j.f32")" -eq $((3 * 759 * 4))

"$bin" synth "$tmp/missing.gguf" --preset tiny --omit-tensor blk.1.ffn_sub_norm.weight
"$bin" eval -m "$tmp/missing.gguf" --tokens 1,2 --logits-out "$tmp/x.f32" 2> "$tmp/err.txt"
check "missing tensor exits 1" test $? -eq 1
check "missing tensor is named" grep -q "blk.1.ffn_sub_norm.weight: missing" "$tmp/err.txt"

"$bin" eval -m "$tmp/a.gguf" --tokens $ids --logits-out "$tmp/x.f32" --ctx 5 2> "$tmp/err.txt"
check "context full exits 1" test $? -eq 1
check "context full is reported" grep -q "context full: position 5 >= sequence capacity 5" "$tmp/err.txt"
"$bin" eval -m "$tmp/a.gguf" --tokens 1,262 --logits-out "$tmp/x.f32" 2> "$tmp/err.txt"
check "token outside the vocabulary exits 1" test $? -eq 1
check "token outside the vocabulary is reported" grep -q "token id 262" "$tmp/err.txt"
"$bin" eval -m "$tmp/a.gguf" --logits-out "$tmp/x.f32" 2> /dev/null
check "missing --tokens is a usage error" test $? -eq 2
"$bin" eval -m "$tmp/a.gguf" --tokens 1,x --logits-out "$tmp/x.f32" 2> /dev/null
check "bad token list exits 1" test $? -eq 1
"$bin" synth "$tmp/bigctx.gguf" --preset tiny --ctx 2000000
"$bin" run -m "$tmp/bigctx.gguf" -p hi -n 2 -t 1 > /dev/null 2> "$tmp/err.txt"
check "context_length 2000000 without -c exits 1" test $? -eq 1
check "the message names the value and the limit and says -c" \
    grep -q "context_length 2000000 is over the limit of 1048576 tokens (2^20); pass -c N" "$tmp/err.txt"
"$bin" run -m "$tmp/bigctx.gguf" -p hi -n 2 -t 1 -c 1048577 > /dev/null 2> "$tmp/err.txt"
check "-c over the limit is refused too" grep -q "context_length 2000000 is over the limit" "$tmp/err.txt"
"$bin" run -m "$tmp/bigctx.gguf" -p hi -n 2 -t 1 -c 256 --temp 0 > /dev/null 2> "$tmp/err.txt"
check "-c 256 loads and runs the big-context file" test $? -eq 0
timeout 60 "$bin" serve -m "$tmp/bigctx.gguf" --port 0 -t 1 > "$tmp/serve.txt" 2>&1
check "serve without -c exits 1 with the same message" grep -q "context_length 2000000 is over the limit" "$tmp/serve.txt"
"$bin" serve -m "$tmp/bigctx.gguf" --port 0 -t 1 -c 512 > "$tmp/serve.txt" 2>&1 &
serve_pid=$!
for _ in $(seq 200); do grep -q "ready on" "$tmp/serve.txt" && break; sleep 0.05; done
check "serve -c 512 loads it" grep -q "slots of 512 tokens" "$tmp/serve.txt"
kill "$serve_pid" 2> /dev/null
wait "$serve_pid" 2> /dev/null

"$bin" synth "$tmp/named.gguf" --preset tiny --arch llama --name "Falcon3-Tiny-Instruct" --chat-template chatml
"$bin" inspect "$tmp/named.gguf" > "$tmp/inspect.txt"
check "--name writes general.name" grep -q "general.name: .*Falcon3-Tiny-Instruct" "$tmp/inspect.txt"
check "--chat-template writes tokenizer.chat_template" grep -q "tokenizer.chat_template: .*<|im_start|>" "$tmp/inspect.txt"
"$bin" inspect "$tmp/a.gguf" > "$tmp/inspect.txt"
check "bitnet-b1.58 gets the BITNET-marked 2B-4T template by default" grep -q "tokenizer.chat_template: .*BITNET" "$tmp/inspect.txt"
"$bin" synth "$tmp/bad.gguf" --chat-template vicuna 2> "$tmp/err.txt"
check "an unknown --chat-template is a usage error" test $? -eq 2

"$bin" synth "$tmp/bad.gguf" --dim 384 --format tq2_0 2> "$tmp/err.txt"
check "tq2_0 needs widths in multiples of 256" test $? -eq 2
check "the reason is given" grep -q "multiple of 256" "$tmp/err.txt"

exit $fail
