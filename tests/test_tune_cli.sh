#!/usr/bin/env bash
# test_tune_cli.sh: kernel tuning at model load (model/tune.h) seen from the command line, on the
# shipped model.
#   - --tune and BITNET_TUNE take off|quick|full; anything else is an error naming the value;
#   - quick measures on the first load (--verbose prints each class's choice and timings) and
#     writes $XDG_CACHE_HOME/bitnet/tune.json; the next load takes the cached choice; full always
#     measures; off binds nothing;
#   - a corrupt cache is a note, measured again and rewritten as valid JSON;
#   - a forced path (--isa) or variant (BITNET_VARIANT) measures among fewer candidates, so its
#     result is not cached; a bad BITNET_VARIANT is an error naming it;
#   - the logits are the same bits with tuning off, quick, full and with each whole-path GEMV
#     variant forced (BITNET_VARIANT);
#   - the bench receipt names the variants and the tuning; --compare-variants prints its table;
#   - serve --tune reaches the server's load (its log line names the variants and the tuning).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp tune_cli

model=$src/models/kjv-bitnet.gguf
export XDG_CACHE_HOME=$tmp/cache
cache=$XDG_CACHE_HOME/bitnet/tune.json

"$bin" run -m "$model" -n 2 --tune fast > /dev/null 2> "$tmp/badflag.err"
check "--tune fast: exit 2 (usage)" test $? -eq 2
check "--tune fast: the error names the value" grep -q "fast" "$tmp/badflag.err"
BITNET_TUNE=fast "$bin" run -m "$model" -n 2 > /dev/null 2> "$tmp/badenv.err"
check "BITNET_TUNE=fast: exit non-zero" test $? -ne 0
check "BITNET_TUNE=fast: the error names the variable" grep -q "BITNET_TUNE: unknown value 'fast'" "$tmp/badenv.err"

"$bin" run -m "$model" -n 2 -t 2 --temp 0 --verbose > /dev/null 2> "$tmp/first.err"
check "first load: exit 0" test $? -eq 0
check "first load: quick, measured" grep -q "^kernel tuning: quick (measured in [0-9]* ms)" "$tmp/first.err"
check "first load: the gemv choice and its timings" grep -Eq "^  gemv +[a-z0-9.]+ \([0-9]+ rounds; ns per 1000 weights:" "$tmp/first.err"
check "first load: the cache file exists" test -s "$cache"
check "the cache is JSON with an entry naming this CPU and the gemv variant" \
    /usr/bin/python3 -c "import json,sys; d=json.load(open('$cache')); e=list(d['entries'].items()); sys.exit(0 if len(e)==1 and 'cpu=' in e[0][0] and 'gemv' in e[0][1] else 1)"
"$bin" run -m "$model" -n 2 -t 2 --temp 0 --verbose > /dev/null 2> "$tmp/second.err"
check "second load: the cached choice" grep -q "^kernel tuning: quick (cache)" "$tmp/second.err"
"$bin" run -m "$model" -n 2 -t 2 --temp 0 --verbose --tune full > /dev/null 2> "$tmp/full.err"
check "--tune full: measured again" grep -q "^kernel tuning: full (measured in" "$tmp/full.err"
"$bin" run -m "$model" -n 2 -t 2 --temp 0 --verbose --tune off > /dev/null 2> "$tmp/off.err"
check "--tune off: nothing measured" grep -q "^kernel tuning: off (off)" "$tmp/off.err"
BITNET_TUNE=off "$bin" run -m "$model" -n 2 -t 2 --verbose > /dev/null 2> "$tmp/offenv.err"
check "BITNET_TUNE=off: nothing measured" grep -q "^kernel tuning: off (off)" "$tmp/offenv.err"

printf '{not json' > "$cache"
"$bin" run -m "$model" -n 2 -t 2 --verbose > /dev/null 2> "$tmp/corrupt.err"
check "corrupt cache: exit 0" test $? -eq 0
check "corrupt cache: a note, measured again" grep -q "unreadable .*measured again" "$tmp/corrupt.err"
check "corrupt cache: rewritten as valid JSON" /usr/bin/python3 -c "import json; json.load(open('$cache'))"

XDG_CACHE_HOME=$tmp/cache-forced "$bin" run -m "$model" -n 2 -t 2 --isa scalar --verbose > /dev/null 2> "$tmp/forced.err"
check "--isa scalar: not cached" grep -q "cache not written: a kernel path or variant is forced" "$tmp/forced.err"
check "--isa scalar: no cache file" test ! -e "$tmp/cache-forced/bitnet/tune.json"
check "--isa scalar: every class runs scalar" test "$(grep -cE '^  [a-z_]+ +scalar' "$tmp/forced.err")" -eq 5

BITNET_VARIANT=gemv=avx9 "$bin" run -m "$model" -n 2 > /dev/null 2> "$tmp/badvariant.err"
check "BITNET_VARIANT=gemv=avx9: exit non-zero" test $? -ne 0
check "BITNET_VARIANT=gemv=avx9: the error names it" grep -q "BITNET_VARIANT: unknown gemv variant 'avx9'" "$tmp/badvariant.err"
BITNET_VARIANT=decode=avx2 "$bin" run -m "$model" -n 2 > /dev/null 2> "$tmp/badclass.err"
check "BITNET_VARIANT=decode=avx2: the error names the classes" grep -q "CLASS one of gemv, gemm_few, gemm, head, attention" "$tmp/badclass.err"

# the same bits whatever the tuning and the variant
ids=5,17,99,3,250,1024,7,7,300,41,88,2,19,600,12,4
for mode in off quick full; do
    BITNET_TUNE=$mode "$bin" eval -m "$model" --tokens "$ids" --logits-out "$tmp/tune-$mode.bin" -t 2 > /dev/null 2>&1
    check "eval with tuning $mode: exit 0" test $? -eq 0
done
check "tuning quick: the logits of tuning off" cmp "$tmp/tune-quick.bin" "$tmp/tune-off.bin"
check "tuning full: the logits of tuning off" cmp "$tmp/tune-full.bin" "$tmp/tune-off.bin"
for variant in avx2 avx512.t0 avx512.nta avx512.none avx512.t0.gfni avx512.nta.gfni avx512.none.gfni; do
    BITNET_VARIANT="gemv=$variant,head=${variant%.gfni}" "$bin" eval -m "$model" --tokens "$ids" \
        --logits-out "$tmp/v-$variant.bin" -t 2 > /dev/null 2> "$tmp/v-$variant.err"
    if [ $? -ne 0 ]; then
        check "variant $variant: this CPU cannot run it (said so)" grep -q "cannot run it" "$tmp/v-$variant.err"
        continue
    fi
    check "variant $variant: the logits of tuning off" cmp "$tmp/v-$variant.bin" "$tmp/tune-off.bin"
done

"$bin" bench -m "$model" -p 8 -n 4 -r 1 -t 2 --json "$tmp/receipt.json" > "$tmp/bench.out" 2> /dev/null
check "bench: exit 0" test $? -eq 0
check "bench: prints the kernel variants" grep -q "^kernel variants gemv=" "$tmp/bench.out"
check "bench receipt: cpu.variants and cpu.tuning" /usr/bin/python3 -c "
import json; c=json.load(open('$tmp/receipt.json'))['cpu']; assert c['variants'].startswith('gemv='), c; assert c['tuning'].startswith('quick'), c"
check "bench receipt: still verifies" "$bin" verify-receipt "$tmp/receipt.json"
"$bin" bench -m "$model" -p 8 -n 4 -r 2 -t 2 --compare-variants --no-bandwidth > "$tmp/compare.out" 2> /dev/null
check "--compare-variants: exit 0" test $? -eq 0
check "--compare-variants: a default row" grep -q "^| default | " "$tmp/compare.out"
check "--compare-variants: the verdict lines" grep -q "^default tg4: .* of the best forced variant" "$tmp/compare.out"
"$bin" bench -m "$model" -p 8 -n 4 --compare-variants --json "$tmp/x.json" > /dev/null 2> "$tmp/cmpjson.err"
check "--compare-variants with --json: usage error" test $? -eq 2
# serve: --tune reaches the server's load, whose log line names the variants and the tuning
"$bin" serve -m "$model" --port 0 -t 2 --tune full > "$tmp/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 300); do
    grep -q "loaded:" "$tmp/serve.log" && break
    sleep 0.1
done
kill "$serve_pid" 2> /dev/null
wait "$serve_pid" 2> /dev/null
check "serve --tune full: the load log names the variants and the tuning" \
    grep -q "kernels gemv=.* (tuning full, measured)" "$tmp/serve.log"

echo "test_tune_cli: $passed passed, $failed failed"
exit $fail
