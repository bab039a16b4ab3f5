#!/usr/bin/env bash
# test_bench.sh: `bitnet bench` end to end on a tiny synthetic model (`bitnet synth`).
# - the llama-bench table: header, one row per test (pp<N>/tg<N>), "MEAN ± STDEV" cells;
#   -p 0 / -n 0 leave their row (and, for tg, the bandwidth lines) out;
# - the bandwidth lines: bytes/token, effective GB/s, stream read, and their ratio; the probes
#   right before and after each tg repetition and the paired ratio;
# - the receipt from --json passes `bitnet verify-receipt`, fails --require-gpu-kernels (cpu
#   backend), hashes the model like sha256sum, and counts ternary matmul calls of the timed
#   repetitions only (warm-ups excluded): repetitions x projections x (tg tokens + 1 pp batch);
# - prompts of the full context (above the 512-token ubatch) work at 1, 2 and 3 threads, one more
#   token is an error naming the context;
# - a receipt path that cannot be created fails before any benchmarking;
# - usage errors exit 2.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp test_bench

model="$tmp/tiny.gguf"
ctx=1024
layers=2
bn_synth "$model" --layers $layers --ctx $ctx --seed 3

# pp16 + tg8, 2 repetitions, receipt.
"$bin" bench -m "$model" -t 2 -p 16 -n 8 -r 2 --bandwidth-mb 16 --json "$tmp/receipt.json" \
    >"$tmp/out.txt" 2>"$tmp/err.txt"
check "bench exit 0 ($(cat "$tmp/err.txt"))" test $? -eq 0
out=$(cat "$tmp/out.txt")
check "table header" grep -qx '| model | size | params | backend | threads | test | t/s |' "$tmp/out.txt"
row='^| bitnet-b1\.58 [0-9.]+ [KMB] I2_S | [0-9.]+ [MG]iB | [0-9.]+ [KMB] | CPU | 2 | %s | [0-9]+\.[0-9]{2} ± [0-9]+\.[0-9]{2} |$'
# shellcheck disable=SC2059
check "pp16 row: $out" grep -Eq "$(printf "$row" pp16 | sed 's/|/\\|/g')" "$tmp/out.txt"
# shellcheck disable=SC2059
check "tg8 row" grep -Eq "$(printf "$row" tg8 | sed 's/|/\\|/g')" "$tmp/out.txt"
check "two result rows" test "$(grep -c '^| bitnet' "$tmp/out.txt")" -eq 2
check "bytes/token line" grep -Eq '^decode bytes/token : [0-9.]+ MB = weights [0-9.]+ MB .* KV cache [0-9.]+ MB \(f16, mean context 4\.5\)$' "$tmp/out.txt"
check "effective line" grep -Eq '^tg8 effective     : [0-9.]+ GB/s = [0-9.]+ t/s x [0-9.]+ MB/token$' "$tmp/out.txt"
check "stream line" grep -Eq '^stream read        : [0-9.]+ GB/s \(2 threads, 16 MiB buffer, (avx2|scalar) loop, best of 7 passes; median [0-9.]+ GB/s\)$' "$tmp/out.txt"
check "ratio line" grep -Eq '^tg8 / stream read : [0-9.]+% \([0-9.]+ of [0-9.]+ GB/s\)$' "$tmp/out.txt"
# probes right before and after each of the 2 tg repetitions: 3 probes, 2 per-repetition ratios
check "stream beside tg line" grep -Eq '^stream beside tg   : [0-9.]+ GB/s mean of 3 probes right before and after each repetition \(min [0-9.]+, max [0-9.]+; best of 3 passes each\)$' "$tmp/out.txt"
check "ratio beside line" grep -Eq '^tg8 / stream beside: [0-9.]+% \(.*: [0-9.]+% [0-9.]+%\)$' "$tmp/out.txt"
check "receipt: probes beside tg" grep -q '"ratio_beside_tg":' "$tmp/receipt.json"

receipt="$tmp/receipt.json"
check "receipt verifies" bash -c "'$bin' verify-receipt '$receipt' | grep -q '^receipt OK: cpu, bitnet-b1.58, 2 threads'"
"$bin" verify-receipt "$receipt" --require-gpu-kernels >/dev/null 2>"$tmp/gpu.txt"
check "--require-gpu-kernels rejects a cpu receipt" test $? -eq 1
check "--require-gpu-kernels reason" grep -q 'backend is "cpu", no GPU kernel ran' "$tmp/gpu.txt"
sha=$(sha256sum "$model" | cut -d' ' -f1)
check "model sha256 = sha256sum" grep -q "\"sha256\": \"$sha\"" "$receipt"
check "compute_path real" grep -q '"compute_path": "real"' "$receipt"
check "threads 2" grep -q '"threads": 2,' "$receipt"
check "i2_s tensor count" grep -q "\"i2_s\": $((7 * layers))" "$receipt"
check "every kernel id is cpu." bash -c "! grep '\"id\":' '$receipt' | grep -v '\"id\": \"cpu\\.'"
# Ternary matmul calls over the timed repetitions: 2 reps x 7 projections x layers x (8 tg steps +
# 1 pp batch of 16 tokens, one ubatch).
i2s_calls=0
while read -r calls; do i2s_calls=$((i2s_calls + calls)); done < <(
    grep -A1 '"id": "cpu\.i2s\.' "$receipt" | grep -o '"calls": [0-9]*' | grep -o '[0-9]*$')
check "i2s calls $i2s_calls = $((2 * 7 * layers * 9))" test "$i2s_calls" -eq $((2 * 7 * layers * 9))
check "pp n_tokens" grep -q '"n_tokens": 16,' "$receipt"
check "tg n_tokens" grep -q '"n_tokens": 8,' "$receipt"
check "bandwidth block" grep -q '"stream_read_gb_per_s":' "$receipt"

# -n 0: no tg row, no bandwidth lines, receipt without results.tg.
"$bin" bench -m "$model" -t 1 -p 8 -n 0 -r 1 --json "$tmp/pp-only.json" >"$tmp/pp.txt" 2>&1
check "pp-only exit 0" test $? -eq 0
check "pp-only rows" test "$(grep -c '^| bitnet' "$tmp/pp.txt")" -eq 1
check "pp-only has no bandwidth lines" bash -c "! grep -q 'stream read' '$tmp/pp.txt'"
check "pp-only receipt has no tg" bash -c "! grep -q '\"tg\"' '$tmp/pp-only.json'"
check "pp-only receipt verifies" bash -c "'$bin' verify-receipt '$tmp/pp-only.json' >/dev/null"
# -p 0: only tg.
"$bin" bench -m "$model" -t 1 -p 0 -n 4 -r 1 --no-bandwidth >"$tmp/tg.txt" 2>&1
check "tg-only exit 0" test $? -eq 0
check "tg-only row" bash -c "grep '^| bitnet' '$tmp/tg.txt' | grep -q '| tg4 |' && test \$(grep -c '^| bitnet' '$tmp/tg.txt') -eq 1"
check "--no-bandwidth skips the stream read" bash -c "! grep -q 'stream read' '$tmp/tg.txt'"
check "--no-bandwidth skips the probes" bash -c "! grep -q 'stream beside' '$tmp/tg.txt'"

# The full context in one prompt at 1, 2 and 3 threads; one token more is refused.
for t in 1 2 3; do
    "$bin" bench -m "$model" -t $t -p $ctx -n 0 -r 1 >"$tmp/full-$t.txt" 2>&1
    check "pp$ctx at $t threads: $(tail -1 "$tmp/full-$t.txt")" grep -q "| $t | pp$ctx |" "$tmp/full-$t.txt"
done
"$bin" bench -m "$model" -t 1 -p $((ctx + 1)) -n 0 -r 1 >/dev/null 2>"$tmp/over.txt"
check "pp$((ctx + 1)) fails" test $? -eq 1
check "context error message" grep -q "pp$((ctx + 1)) needs $((ctx + 1)) positions but the model's context is $ctx" "$tmp/over.txt"

# An uncreatable receipt path fails before any benchmarking (no "loaded" line).
"$bin" bench -m "$model" -p 4 -n 0 -r 1 --json "$tmp/no-such-dir/r.json" >/dev/null 2>"$tmp/nojson.txt"
check "uncreatable receipt: exit 1" test $? -eq 1
check "uncreatable receipt: early" bash -c "grep -q 'cannot create' '$tmp/nojson.txt' && ! grep -q loaded '$tmp/nojson.txt'"

# Usage errors.
# Without -m: BITNET_MODEL, as in every command that takes a model.
BITNET_MODEL="$model" "$bin" bench -p 4 -n 0 -r 1 --no-progress > "$tmp/env.txt" 2>&1
check "no -m: BITNET_MODEL runs" grep -q "pp4" "$tmp/env.txt"
"$bin" bench -m "$model" -p 0 -n 0 >/dev/null 2>&1
check "nothing to run: exit 2" test $? -eq 2
"$bin" bench -m "$model" -r 0 >/dev/null 2>&1
check "-r 0: exit 2" test $? -eq 2
"$bin" bench -m "$model" --isa nosuch -p 4 -n 0 >/dev/null 2>&1
check "unknown isa: a usage error (2), as in run" test $? -eq 2

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
