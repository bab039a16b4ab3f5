#!/usr/bin/env bash
# test_fuzz_smoke.sh: the fuzzing smoke stage. Builds every libFuzzer target (fuzz/fuzz_*.c) with
# clang in build-fuzz/ (reusing what is already built there), then runs each on its seed corpus
# plus 10 seconds of fuzzing (FUZZ_SMOKE_SECONDS overrides) through scripts/fuzz.sh, and fails
# when any target crashes, leaks, times out or reports a violated property. The targets assert
# properties (round trips, reference equality, error codes), so a pass means more than "no
# crash"; see docs/FUZZING.md.
#
# Skipped (77) when clang or its libFuzzer runtime (Debian: clang, libclang-rt-14-dev) is
# missing (the bootstrap installs both, so in CI it runs), or when BITNET_FUZZ_SMOKE=0 (for a
# second ctest pass, e.g. the ASan build, that need not repeat it).
set -u
if [ "${BITNET_FUZZ_SMOKE:-1}" = 0 ]; then
    echo "skip: BITNET_FUZZ_SMOKE=0"
    exit 77
fi
SRC="${BITNET_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
TMP="${BITNET_TEST_TMP:-/tmp}/fuzz-smoke"
SECONDS_PER_TARGET="${FUZZ_SMOKE_SECONDS:-10}"

CC_FUZZ="${CC_FUZZ:-clang}"
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
    echo "skip: $CC_FUZZ not found (install clang and libclang-rt-14-dev)"
    exit 77
fi
rm -rf "$TMP"
mkdir -p "$TMP"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    >"$TMP/probe.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$TMP/probe.c" -o "$TMP/probe" >"$TMP/probe.log" 2>&1; then
    echo "skip: $CC_FUZZ cannot link libFuzzer (install libclang-rt-14-dev):"
    cat "$TMP/probe.log"
    exit 77
fi

# Every target must exist and build.
targets=()
for f in "$SRC"/fuzz/fuzz_*.c; do
    t="$(basename "$f" .c)"
    targets+=("${t#fuzz_}")
done
if [ ${#targets[@]} -lt 15 ]; then
    echo "FAIL: only ${#targets[@]} fuzz targets in $SRC/fuzz"
    exit 1
fi

# Builds (CC=clang in build-fuzz/) and runs; new inputs and reproducers go to the test's temp dir.
CC="$CC_FUZZ" "$SRC/scripts/fuzz.sh" --work-dir "$TMP" "$SECONDS_PER_TARGET" "${targets[@]}" | tee "$TMP/summary.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
    echo "FAIL: fuzz smoke stage (exit $rc); logs in $TMP/fuzz-logs, reproducers in $TMP/fuzz-artifacts"
    for log in "$TMP"/fuzz-logs/*.log; do
        if grep -qE 'property violated|ERROR: |runtime error' "$log"; then
            echo "--- $log"
            grep -E -A3 'property violated|ERROR: |runtime error' "$log" | head -12
        fi
    done
    exit 1
fi

# Every target ran: one summary row each, with a positive execution count and no crash.
for t in "${targets[@]}"; do
    row="$(awk -v t="$t" '$1 == t' "$TMP/summary.txt")"
    execs="$(echo "$row" | awk '{print $3}')"
    crashes="$(echo "$row" | awk '{print $8}')"
    if [ -z "$row" ] || ! [ "${execs:-0}" -gt 0 ] 2>/dev/null || [ "$crashes" != 0 ]; then
        echo "FAIL: target $t did not run cleanly: '$row'"
        exit 1
    fi
done
echo "fuzz smoke: ${#targets[@]} targets, ${SECONDS_PER_TARGET} s each, no crash"
exit 0
