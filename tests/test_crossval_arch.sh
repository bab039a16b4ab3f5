#!/usr/bin/env bash
# test_crossval_arch.sh: `bitnet crossval --max-tol 0` against the PyTorch reference on synthetic
# files of every architecture x projection type x head / embedding type (issue 17, spec 9):
#   - bitnet-b1.58, bitnet (SiLU, per-projection .scale tensors) and llama (NORM RoPE, no
#     sub-norms, rope_freqs, a head size that is not dim / heads) with I2_S, TQ2_0 and TQ1_0
#     projections (TQ: llama.cpp's Q8_K activations and AVX2 lane order);
#   - a llama file with every head type (f32, f16, bf16, q8_0, q6_k, q4_k) over f16, q6_k and q8_0
#     embeddings, and bitnet-b1.58 files with other embedding types and an output.weight it must
#     ignore (its head is token_embd);
#   - every one bit-identical to the reference (both follow the same ggml arithmetic, written
#     independently); forcing the scalar path gives the same bits as the default one;
#   - an engine file with one projection row changed fails against the reference on the original.
# The reference is run from the CLI on -t 2 (every path and thread count are memcmp-tested in
# test_matmul / test_head_kernels). Skipped (77) without python3-torch.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/support/corrupt.sh"
bn_require_reference
bn_make_tmp crossval_arch
ids=259,40,71,72,83,0,17,256,257,258,100,101

exact() { # exact LABEL FILE [crossval options]: bit-identical to the reference
    local label=$1 file=$2
    "$bin" crossval -m "$file" --tokens $ids --max-tol 0 -t 2 "${@:3}" > "$tmp/out" 2> "$tmp/err"
    check "$label: bit-identical to the reference" \
        bash -c "grep -q 'pos-0 max|diff| 0.000e+00, max|diff| 0.000e+00' '$tmp/out' && grep -q '^PASS$' '$tmp/out'"
}

for arch in bitnet-b1.58 bitnet llama; do
    for fmt in i2_s tq2_0 tq1_0; do
        extra=()
        [[ $arch == llama ]] && extra=(--rope-freqs --head-dim 128)
        [[ $arch == bitnet ]] && extra=(--proj-scales --activation silu)
        bn_synth "$tmp/$arch-$fmt.gguf" --layers 2 --seed 3 --kv-heads 4 --arch "$arch" --format "$fmt" "${extra[@]}"
        exact "$arch $fmt" "$tmp/$arch-$fmt.gguf"
    done
done
BITNET_ISA=scalar exact "llama tq1_0 on the scalar path" "$tmp/llama-tq1_0.gguf"

for head in f32 f16 bf16 q8_0 q6_k q4_k; do
    for embd in f16 q6_k q8_0; do
        bn_synth "$tmp/h.gguf" --layers 2 --seed 5 --kv-heads 4 --arch llama --format tq2_0 --embd-type "$embd" --head-type "$head"
        exact "llama head $head, embedding $embd" "$tmp/h.gguf"
    done
done
for embd in f32 bf16 q4_k; do
    bn_synth "$tmp/b.gguf" --layers 2 --seed 6 --arch bitnet-b1.58 --embd-type "$embd" --head-type q6_k
    exact "bitnet-b1.58 embedding $embd (output.weight ignored)" "$tmp/b.gguf"
done

bn_corrupt_tensor "$tmp/llama-i2_s.gguf" "$tmp/row.gguf" blk.0.ffn_down.weight row
"$bin" crossval -m "$tmp/row.gguf" --against reference --against-model "$tmp/llama-i2_s.gguf" --tokens $ids \
    --pos0-tol 5e-3 --cos-tol 0.99 --mean-cos-tol 0.997 -t 1 > "$tmp/row.out" 2> "$tmp/row.err"
check "a changed I2_S row in a llama file fails against the reference (exit 1)" test $? -eq 1
exit $fail
