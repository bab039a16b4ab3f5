#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets (fuzz/fuzz_*.c) with clang in build-fuzz/ and runs them
# one after another, printing per target the executions, coverage (libFuzzer's `cov:` edges and
# `ft:` features), corpus size and crashes. See docs/FUZZING.md.
#
# usage: scripts/fuzz.sh [--no-build] [--seeds] [--build-dir DIR] [--work-dir DIR] [SECONDS] [TARGET...]
#   SECONDS   fuzzing time per target (default 60); 0 only runs the corpus once
#   TARGET    target names without the fuzz_ prefix (default: every fuzz/fuzz_*.c)
#   --seeds   regenerate fuzz/corpus/<target>/seed-* with the seed generator first
#   --no-build  use the binaries already in the build folder
#   --work-dir DIR  where new inputs, reproducers and logs go (default: the build folder)
# Seeds come from fuzz/corpus/<target>/ (plus tests/data/gguf-malformed for gguf_open,
# tests/data/safetensors-malformed for safetensors_header and tests/data/receipts for
# receipt_verify); new inputs go to WORK/fuzz-corpus/<target>/ (kept
# between runs), crash reproducers to WORK/fuzz-artifacts/<target>/ and libFuzzer's output to
# WORK/fuzz-logs/<target>.log. Exit status: 0 when no target crashed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-fuzz"
WORK=""
DO_BUILD=1
DO_SEEDS=0
SECONDS_PER_TARGET=60
TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) DO_BUILD=0 ;;
        --seeds) DO_SEEDS=1 ;;
        --build-dir) BUILD="$(cd "$2" 2>/dev/null && pwd || echo "$2")"; shift ;;
        --work-dir) WORK="$2"; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        [0-9]*) SECONDS_PER_TARGET="$1" ;;
        *) TARGETS+=("$1") ;;
    esac
    shift
done
WORK="${WORK:-$BUILD}"
if [ ${#TARGETS[@]} -eq 0 ]; then
    for f in "$ROOT"/fuzz/fuzz_*.c; do
        t="$(basename "$f" .c)"
        TARGETS+=("${t#fuzz_}")
    done
fi

# One fuzz.sh at a time per build folder (ctest runs of tests/test_fuzz_smoke.sh from several
# build trees, or a person running it by hand, would otherwise relink binaries under each other).
mkdir -p "$BUILD"
exec 9>"$BUILD/.fuzz.lock"
flock 9

if [ "$DO_BUILD" = 1 ]; then
    CC="${CC:-clang}" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBITNET_FUZZ=ON \
        -DBITNET_CUDA=OFF >/dev/null
    cmake --build "$BUILD" --target bitnet_fuzz_all -j "${FUZZ_BUILD_JOBS:-2}" >/dev/null
fi
if [ "$DO_SEEDS" = 1 ]; then
    "$BUILD/fuzz/bitnet_fuzz_seeds" "$ROOT/fuzz/corpus" "$ROOT"
fi

extra_seeds() {
    case "$1" in
        gguf_open) echo "$ROOT/tests/data/gguf-malformed" ;;
        safetensors_header) echo "$ROOT/tests/data/safetensors-malformed" ;;
        receipt_verify) echo "$ROOT/tests/data/receipts" ;;
        tokenizer) echo "$ROOT/fuzz/corpus/fuzz_tokenizer" ;;
    esac
}

printf '%-24s %7s %10s %8s %6s %7s %7s %8s\n' target seconds execs exec/s cov ft corpus crashes
failed=0
for t in "${TARGETS[@]}"; do
    bin="$BUILD/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "fuzz.sh: $bin is missing (build with make fuzz)" >&2
        failed=1
        continue
    fi
    work="$WORK/fuzz-corpus/$t"
    artifacts="$WORK/fuzz-artifacts/$t"
    log="$WORK/fuzz-logs/$t.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    seeds=()
    [ -d "$ROOT/fuzz/corpus/$t" ] && seeds+=("$ROOT/fuzz/corpus/$t")
    extra="$(extra_seeds "$t")"
    [ -n "$extra" ] && [ -d "$extra" ] && seeds+=("$extra")
    args=(-print_final_stats=1 -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$artifacts/")
    [ -f "$ROOT/fuzz/dict/$t.dict" ] && args+=(-dict="$ROOT/fuzz/dict/$t.dict")
    if [ "$SECONDS_PER_TARGET" = 0 ]; then
        args+=(-runs=0)
    else
        args+=(-max_total_time="$SECONDS_PER_TARGET")
    fi
    before="$(ls "$artifacts" | wc -l)"
    start=$(date +%s)
    rc=0
    BITNET_SOURCE_DIR="$ROOT" "$bin" "${args[@]}" "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
    elapsed=$(( $(date +%s) - start ))
    after="$(ls "$artifacts" | wc -l)"
    crashes=$(( after - before ))
    [ "$rc" != 0 ] && [ "$crashes" = 0 ] && crashes=1
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
    last="$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' | tail -1 || true)"
    cov="$(echo "$last" | awk '{print $2}')"
    ft="$(echo "$last" | awk '{print $4}')"
    corp="$(echo "$last" | awk '{print $6}')"
    printf '%-24s %7s %10s %8s %6s %7s %7s %8s\n' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$crashes"
    if [ "$crashes" != 0 ]; then
        failed=1
        echo "  $t: exit $rc; log $log; reproducers in $artifacts:" >&2
        grep -E 'property violated|ERROR: |runtime error' "$log" | head -3 | sed 's/^/    /' >&2 || true
    fi
done
exit $failed
