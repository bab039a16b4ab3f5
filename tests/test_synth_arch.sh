#!/usr/bin/env bash
# test_synth_arch.sh: `bitnet synth` writes every architecture (bitnet-b1.58, bitnet, llama) with
# every projection format (i2_s, tq2_0, tq1_0), and embeddings and heads in every type it offers
# (f32, f16, bf16, q8_0, q6_k, q4_k). Checked from the outside with `bitnet inspect` (architecture
# key, tensor names, types, shapes; sub-norms only outside llama; key_length with --head-dim) and
# with the Python reference reader (reference/gguf_reader.py, which decodes ggml's blocks on its
# own): quantized embeddings and heads decode close to the floats an f32 file holds for the same
# seed, scales and rope_freqs lie in their ranges. The presets at real shapes are checked with one
# layer and a small vocabulary (bitnet-large at its real vocabulary). Invalid combinations exit 2
# with a clear message and write nothing. The files are not run: only their layout is checked.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp test_synth_arch

synth() { "$bin" synth "$@" --no-progress; }
inspect() { "$bin" inspect "$1" > "$1.txt"; }
# has_tensor FILE NAME TYPE SHAPE: the inspect report of FILE lists NAME with TYPE and SHAPE
has_tensor() { grep -Eq "^  ${2//./\\.} +$3 +\[$4\] " "$1.txt"; }
no_tensor() { ! grep -Eq "^  ${2//./\\.} " "$1.txt"; }
has_key() { grep -qxF "  $2" "$1.txt"; } # has_key FILE 'key: type value'
no_key() { ! grep -qF "  $2:" "$1.txt"; }
tensor_count() { grep -qx "tensors: $2" "$1.txt"; }

# ---- every architecture x projection format (tiny with 4 K/V heads: 256-wide K/V rows) ----
for arch in bitnet-b1.58 bitnet llama; do
    for format in i2_s tq2_0 tq1_0; do
        m=$tmp/$arch-$format.gguf
        synth "$m" --arch $arch --format $format --kv-heads 4 --seed 3
        check "$arch $format: written" test $? -eq 0
        inspect "$m"
        check "$arch $format: architecture key" has_key "$m" "general.architecture: string \"$arch\""
        check "$arch $format: $arch.* keys" has_key "$m" "$arch.embedding_length: uint32 256"
        check "$arch $format: F16 token_embd" has_tensor "$m" token_embd.weight f16 "256, 262"
        check "$arch $format: tied head (no output.weight)" no_tensor "$m" output.weight
        check "$arch $format: attn_q in $format" has_tensor "$m" blk.1.attn_q.weight $format "256, 256"
        check "$arch $format: attn_k in $format" has_tensor "$m" blk.0.attn_k.weight $format "256, 256"
        check "$arch $format: ffn_down in $format" has_tensor "$m" blk.1.ffn_down.weight $format "768, 256"
        check "$arch $format: norms" bash -c "grep -Eq '^  blk\.0\.attn_norm\.weight +f32 +\[256\] ' '$m.txt' &&
            grep -Eq '^  output_norm\.weight +f32 +\[256\] ' '$m.txt'"
        if [[ $arch == llama ]]; then
            check "$arch $format: no sub-norms" bash -c "! grep -q sub_norm '$m.txt'"
            check "$arch $format: 20 tensors" tensor_count "$m" 20
            check "$arch $format: no hidden_activation" no_key "$m" llama.hidden_activation
        else
            check "$arch $format: sub-norms" bash -c "grep -Eq '^  blk\.1\.attn_sub_norm\.weight +f32 +\[256\] ' '$m.txt' &&
                grep -Eq '^  blk\.1\.ffn_sub_norm\.weight +f32 +\[768\] ' '$m.txt'"
            check "$arch $format: 24 tensors" tensor_count "$m" 24
        fi
        check "$arch $format: no key_length (head size is dim / heads)" no_key "$m" $arch.attention.key_length
    done
done
check "bitnet: hidden_activation relu2 by default" has_key "$tmp/bitnet-i2_s.gguf" 'bitnet.hidden_activation: string "relu2"'
check "bitnet-b1.58: no hidden_activation" no_key "$tmp/bitnet-b1.58-tq2_0.gguf" bitnet-b1.58.hidden_activation
check "llama: rope.dimension_count is the head size" has_key "$tmp/llama-tq1_0.gguf" "llama.rope.dimension_count: uint32 64"

# the default architecture follows the format, as before --arch existed
synth "$tmp/d-i2s.gguf" --seed 3 --kv-heads 4; inspect "$tmp/d-i2s.gguf"
synth "$tmp/d-tq2.gguf" --seed 3 --kv-heads 4 --format tq2_0; inspect "$tmp/d-tq2.gguf"
check "default arch for i2_s: bitnet-b1.58 (same file as --arch bitnet-b1.58)" cmp -s "$tmp/d-i2s.gguf" "$tmp/bitnet-b1.58-i2_s.gguf"
check "default arch for tq2_0: bitnet (same file as --arch bitnet)" cmp -s "$tmp/d-tq2.gguf" "$tmp/bitnet-tq2_0.gguf"

# ---- llama: --head-dim, --rope-freqs, an untied head ----
m=$tmp/llama-hd.gguf
synth "$m" --arch llama --head-dim 128 --rope-freqs --head-type q6_k --seed 4
check "llama --head-dim 128: written" test $? -eq 0
inspect "$m"
check "--head-dim: key_length" has_key "$m" "llama.attention.key_length: uint32 128"
check "--head-dim: value_length" has_key "$m" "llama.attention.value_length: uint32 128"
check "--head-dim: rope.dimension_count" has_key "$m" "llama.rope.dimension_count: uint32 128"
check "--head-dim: attn_q {dim, heads x 128}" has_tensor "$m" blk.0.attn_q.weight i2_s "256, 512"
check "--head-dim: attn_k {dim, kv-heads x 128}" has_tensor "$m" blk.0.attn_k.weight i2_s "256, 256"
check "--head-dim: attn_v {dim, kv-heads x 128}" has_tensor "$m" blk.1.attn_v.weight i2_s "256, 256"
check "--head-dim: attn_output {heads x 128, dim}" has_tensor "$m" blk.1.attn_output.weight i2_s "512, 256"
check "--rope-freqs: F32 [head size / 2]" has_tensor "$m" rope_freqs.weight f32 64
check "--head-type q6_k: untied output.weight" has_tensor "$m" output.weight q6_K "256, 262"
check "llama with head and rope_freqs: 22 tensors" tensor_count "$m" 22
synth "$tmp/llama-same.gguf" --arch llama --head-dim 64 --seed 4; inspect "$tmp/llama-same.gguf"
check "--head-dim equal to dim / heads: no key_length" no_key "$tmp/llama-same.gguf" llama.attention.key_length
synth "$tmp/llama-hd2.gguf" --arch llama --head-dim 128 --rope-freqs --head-type q6_k --seed 4
check "llama with every option: deterministic" cmp -s "$m" "$tmp/llama-hd2.gguf"

# ---- bitnet: --proj-scales, --activation silu ----
m=$tmp/bitnet-scales.gguf
synth "$m" --arch bitnet --format tq2_0 --kv-heads 4 --proj-scales --activation silu --seed 5
check "bitnet --proj-scales: written" test $? -eq 0
inspect "$m"
check "--activation silu: hidden_activation silu" has_key "$m" 'bitnet.hidden_activation: string "silu"'
for proj in attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down; do
    check "--proj-scales: blk.1.$proj.scale F32 [1]" has_tensor "$m" blk.1.$proj.scale f32 1
done
check "bitnet with scales: 24 + 14 tensors" tensor_count "$m" 38
# bitnet-b1.58 may carry an output tensor (the engine ignores it)
synth "$tmp/b158-head.gguf" --head-type q8_0 --seed 5; inspect "$tmp/b158-head.gguf"
check "bitnet-b1.58 --head-type q8_0: output.weight written" has_tensor "$tmp/b158-head.gguf" output.weight q8_0 "256, 262"

# ---- every embedding / head type ----
declare -A type_name=([f32]=f32 [f16]=f16 [bf16]=bf16 [q8_0]=q8_0 [q6_k]=q6_K [q4_k]=q4_K)
for t in f32 f16 bf16 q8_0 q6_k q4_k; do
    m=$tmp/types-$t.gguf
    synth "$m" --arch llama --embd-type $t --head-type $t --seed 7
    check "--embd-type $t --head-type $t: written" test $? -eq 0
    inspect "$m"
    check "$t: token_embd type" has_tensor "$m" token_embd.weight ${type_name[$t]} "256, 262"
    check "$t: output.weight type" has_tensor "$m" output.weight ${type_name[$t]} "256, 262"
done

# ---- presets at real shapes (one layer; the llama ones with a small vocabulary) ----
synth "$tmp/f1.gguf" --preset falcon3-1b --layers 1 --vocab 300; inspect "$tmp/f1.gguf"
check "falcon3-1b: llama" has_key "$tmp/f1.gguf" 'general.architecture: string "llama"'
check "falcon3-1b: shape keys" bash -c "grep -qx '  llama.embedding_length: uint32 2048' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.feed_forward_length: uint32 8192' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.attention.head_count: uint32 8' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.attention.head_count_kv: uint32 4' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.rope.dimension_count: uint32 256' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.context_length: uint32 8192' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.rope.freq_base: float32 1000042' '$tmp/f1.gguf.txt' &&
    grep -qx '  llama.attention.layer_norm_rms_epsilon: float32 9.99999997e-07' '$tmp/f1.gguf.txt'"
check "falcon3-1b: attn_k {2048, 4 x 256}" has_tensor "$tmp/f1.gguf" blk.0.attn_k.weight i2_s "2048, 1024"
synth "$tmp/f3.gguf" --preset falcon3-3b --layers 1 --vocab 300; inspect "$tmp/f3.gguf"
check "falcon3-3b: shape" bash -c "grep -qx '  llama.embedding_length: uint32 3072' '$tmp/f3.gguf.txt' &&
    grep -qx '  llama.attention.head_count: uint32 12' '$tmp/f3.gguf.txt' &&
    grep -qx '  llama.rope.dimension_count: uint32 256' '$tmp/f3.gguf.txt'"
check "falcon3-3b: ffn_down {9216, 3072}" has_tensor "$tmp/f3.gguf" blk.0.ffn_down.weight i2_s "9216, 3072"
synth "$tmp/l8.gguf" --preset llama3-8b --layers 1 --vocab 300; inspect "$tmp/l8.gguf"
check "llama3-8b: shape" bash -c "grep -qx '  llama.embedding_length: uint32 4096' '$tmp/l8.gguf.txt' &&
    grep -qx '  llama.attention.head_count_kv: uint32 8' '$tmp/l8.gguf.txt' &&
    grep -qx '  llama.rope.freq_base: float32 500000' '$tmp/l8.gguf.txt' &&
    grep -qx '  llama.rope.dimension_count: uint32 128' '$tmp/l8.gguf.txt'"
check "llama3-8b: ffn_gate {4096, 14336}" has_tensor "$tmp/l8.gguf" blk.0.ffn_gate.weight i2_s "4096, 14336"
rm -f "$tmp"/f1.gguf "$tmp"/f3.gguf "$tmp"/l8.gguf
synth "$tmp/bl.gguf" --preset bitnet-large --layers 1; inspect "$tmp/bl.gguf"
check "bitnet-large: bitnet with SiLU" bash -c "grep -qx '  general.architecture: string \"bitnet\"' '$tmp/bl.gguf.txt' &&
    grep -qx '  bitnet.hidden_activation: string \"silu\"' '$tmp/bl.gguf.txt' &&
    grep -qx '  bitnet.context_length: uint32 2048' '$tmp/bl.gguf.txt' &&
    grep -qx '  bitnet.rope.freq_base: float32 10000' '$tmp/bl.gguf.txt'"
check "bitnet-large: real vocabulary, byte tokens padded" has_tensor "$tmp/bl.gguf" token_embd.weight f16 "1536, 32002"
check "bitnet-large: 16 K/V heads of 96" has_tensor "$tmp/bl.gguf" blk.0.attn_k.weight i2_s "1536, 1536"
rm -f "$tmp"/bl.gguf

# ---- invalid combinations: exit 2, a clear message, no file ----
invalid() { # invalid DESCRIPTION MESSAGE OPTIONS...
    local what=$1 message=$2; shift 2
    rm -f "$tmp/bad.gguf"
    "$bin" synth "$tmp/bad.gguf" "$@" --no-progress 2> "$tmp/bad.err"
    check "$what: exit 2" test $? -eq 2
    check "$what: says why" grep -qF -- "$message" "$tmp/bad.err"
    check "$what: no file" test ! -e "$tmp/bad.gguf"
}
invalid "q6_k embedding, dim 384" "embedding type q6_K needs dim 384 to be a multiple of 256" \
    --dim 384 --heads 3 --kv-heads 3 --embd-type q6_k
invalid "q4_k head, dim 384" "head type q4_K needs dim 384 to be a multiple of 256" \
    --dim 384 --heads 3 --kv-heads 3 --head-type q4_k
invalid "q6_k embedding, dim 128" "embedding type q6_K needs dim 128 to be a multiple of 256" \
    --dim 128 --heads 2 --kv-heads 2 --ffn 256 --embd-type q6_k
invalid "--head-dim outside llama" "only llama has a separate head size" --arch bitnet --head-dim 128
invalid "silu with bitnet-b1.58" "bitnet-b1.58 always uses squared ReLU" --activation silu
invalid "relu2 with llama" "llama always uses SiLU" --arch llama --activation relu2
invalid "--proj-scales outside bitnet" "belong to the bitnet architecture, not llama" --arch llama --proj-scales
invalid "--rope-freqs outside llama" "rope_freqs belongs to the llama architecture, not bitnet" --arch bitnet --rope-freqs
invalid "odd --head-dim" "head-dim 63 must be even" --arch llama --head-dim 63
invalid "unknown --embd-type" "expected f32, f16, bf16, q8_0, q6_k or q4_k" --embd-type q5_k
invalid "unknown --head-type" "expected f32, f16, bf16, q8_0, q6_k or q4_k" --head-type f64
invalid "unknown --arch" "expected bitnet-b1.58, bitnet or llama" --arch gpt2
invalid "unknown preset" "falcon3-1b, falcon3-3b, llama3-8b, bitnet-large" --preset falcon3-7b
synth "$tmp/q8-384.gguf" --dim 384 --heads 3 --kv-heads 3 --embd-type q8_0 --head-type q8_0
check "q8_0 needs only multiples of 32: dim 384 is fine" test $? -eq 0

# ---- --help tells about every option ----
"$bin" synth --help > "$tmp/help.txt"
for opt in --preset --layers --dim --ffn --heads --kv-heads --head-dim --vocab --ctx --seed --arch --format \
    --embd-type --head-type --activation --proj-scales --rope-freqs --vocab-json --byte-vocab --omit-tensor; do
    check "--help: $opt" grep -q -- "^  $opt" "$tmp/help.txt"
done
for word in falcon3-1b falcon3-3b llama3-8b bitnet-large q6_k q4_k bf16 q8_0 tq1_0 llama; do
    check "--help mentions $word" grep -q -- "$word" "$tmp/help.txt"
done

# ---- values, decoded by the Python reference reader ----
if $py -c "import numpy" 2> /dev/null; then
    $py - "$src/reference" "$tmp" << 'EOF' > "$tmp/values.txt" 2>&1
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import gguf_reader

tmp = sys.argv[2]
def load(name):
    return gguf_reader.GGUFFile("%s/%s" % (tmp, name))

ok = True
def claim(what, cond):
    global ok
    print("%s: %s" % ("ok" if cond else "FAIL", what))
    ok = ok and bool(cond)

ref = load("types-f32.gguf")
for tensor in ("token_embd.weight", "output.weight"):
    x = ref.tensor(tensor)[0]
    claim("%s f32: N(0, 0.02)" % tensor, abs(x.std() - 0.02) < 0.001 and abs(x.mean()) < 0.001)
    f16 = load("types-f16.gguf").tensor(tensor)[0]
    claim("%s f16: the f32 values rounded" % tensor, np.array_equal(f16, x.astype(np.float16).astype(np.float32)))
    # relative RMS error bounds: about 3x what each type's rounding gives
    for t, bound in (("bf16", 0.005), ("q8_0", 0.015), ("q6_k", 0.05), ("q4_k", 0.15)):
        y = load("types-%s.gguf" % t).tensor(tensor)[0]
        err = np.sqrt(((y - x) ** 2).mean()) / np.sqrt((x ** 2).mean())
        claim("%s %s decodes to the f32 values (relative RMS error %.4f < %g)" % (tensor, t, err, bound), err < bound)
e, h = ref.tensor("token_embd.weight")[0], ref.tensor("output.weight")[0]
claim("output.weight is not token_embd", abs(np.corrcoef(e.ravel(), h.ravel())[0, 1]) < 0.05)

m = load("llama-hd.gguf")
freqs = m.tensor("rope_freqs.weight")[0]
claim("rope_freqs: 64 values in [1, 8]", freqs.shape == (64,) and freqs.min() >= 1 and freqs.max() <= 8 and freqs.std() > 0.5)
m = load("bitnet-scales.gguf")
scales = [float(m.tensor("blk.%d.%s.scale" % (l, p))[0][0]) for l in range(2)
          for p in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")]
claim("projection scales in [0.5, 2], not all equal", min(scales) >= 0.5 and max(scales) <= 2 and len(set(scales)) > 10)
w, scale = load("llama-i2_s.gguf").tensor("blk.0.attn_q.weight")
claim("llama i2_s projection: ternary values, positive scale", set(np.unique(w)) <= {-1.0, 0.0, 1.0} and scale > 0)
sys.exit(0 if ok else 1)
EOF
    rc=$?
    cat "$tmp/values.txt"
    check "values decoded by the reference reader" test $rc -eq 0
else
    echo "note: no numpy for $py; the decoded values were not checked"
fi

echo "test_synth_arch: $passed passed, $failed failed"
exit $fail
