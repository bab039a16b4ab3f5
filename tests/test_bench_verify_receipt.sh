#!/usr/bin/env bash
# test_bench_verify_receipt.sh: `bitnet verify-receipt` on every receipt of
# tests/data/receipts/expected.tsv: exit 0 and "receipt OK: ..." for the good ones, exit 1 and the
# specific reason on stderr for each hand-broken one; usage errors exit 2.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp verify-receipt
dir="$src/tests/data/receipts"
errfile=$tmp/stderr
fail_case() { echo "FAIL: $*"; fail=1; failed=$((failed + 1)); }

while IFS=$'\t' read -r file option expected; do
    [[ -z "$file" || "$file" == \#* ]] && continue
    args=("$dir/$file")
    [[ "$option" != "-" ]] && args+=("$option")
    out=$("$bin" verify-receipt "${args[@]}" 2>"$errfile")
    rc=$?
    err=$(cat "$errfile")
    if [[ "$expected" == "OK" ]]; then
        if [[ $rc -eq 0 && "$out" == "receipt OK: "* ]]; then passed=$((passed + 1)); else fail_case "$file $option: rc $rc, out '$out', err '$err'"; fi
    else
        if [[ $rc -eq 1 && "$err" == *"$expected"* && "$err" == *"$file: rejected: "* && -z "$out" ]]; then
            passed=$((passed + 1))
        else
            fail_case "$file $option: rc $rc, expected '$expected', got '$err'"
        fi
    fi
done < "$dir/expected.tsv"

"$bin" verify-receipt >/dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] && passed=$((passed + 1)) || fail_case "no FILE: rc $rc, expected 2"
"$bin" verify-receipt "$dir/good-cpu.json" --bogus >/dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] && passed=$((passed + 1)) || fail_case "unknown option: rc $rc, expected 2"
"$bin" verify-receipt "$dir/no-such-receipt.json" >/dev/null 2>&1; rc=$?
[[ $rc -eq 1 ]] && passed=$((passed + 1)) || fail_case "missing file: rc $rc, expected 1"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
