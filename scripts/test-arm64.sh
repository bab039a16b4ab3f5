#!/usr/bin/env bash
# scripts/test-arm64.sh: the ARM64 port's checks (`make test-arm64`; tests/test_arm64.sh runs it
# from ctest). Cross-compiles bitnet-c for aarch64 into build-arm64/ (cmake/toolchain-aarch64.cmake:
# Debian's gcc-aarch64-linux-gnu and the arm64 -dev packages) and runs it under qemu-user:
#   - the C unit tests but test_speculative (ctest in build-arm64/; ctest runs each under CMAKE_CROSSCOMPILING_EMULATOR),
#     among them test_matmul, test_head_kernels and test_ops_simd, which force every path the
#     emulated CPU has (scalar, neon, neondot) and compare it with the scalar reference bit for bit,
#     and test_model_oracle (bitnet.cpp's oracle-a logits);
#   - `bitnet eval` on the shipped model with --isa scalar, neon and neondot: three identical logit
#     files, and identical to the x86 build's (X86_BIN, default build/bin/bitnet) byte for byte;
#   - a CPU without the dot-product instructions (qemu -cpu cortex-a53) picks the neon path and
#     refuses --isa neondot (the HWCAP_ASIMDDP check);
#   - `bitnet bench` receipts name the NEON kernels that ran (cpu.i2s.gemv.neondot / .neon).
# Timings under qemu mean nothing (docs/ARM64.md); the whole run takes 15-20 minutes on 2 cores. Exit 77 (skip) when the cross compiler, qemu or
# the arm64 libraries are missing; JOBS sets the build's parallelism.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
build=${BUILD_ARM64:-$src/build-arm64}
x86_bin=${X86_BIN:-$src/build/bin/bitnet}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

missing=()
command -v aarch64-linux-gnu-gcc > /dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 > /dev/null || missing+=(qemu-user)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
for pc in libpcre2-8 jansson libcrypto libmicrohttpd; do
    [ -e "/usr/lib/aarch64-linux-gnu/pkgconfig/$pc.pc" ] || missing+=("$pc.pc (arm64)")
done
if ((${#missing[@]})); then
    echo "skip: the arm64 cross build needs ${missing[*]}: dpkg --add-architecture arm64; apt-get" \
         "update; apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user" \
         "libpcre2-dev:arm64 libjansson-dev:arm64 libssl-dev:arm64 libmicrohttpd-dev:arm64"
    exit 77
fi

fail=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}

echo "== build (build-arm64/)"
cmake -S "$src" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchain-aarch64.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DBITNET_CUDA=OFF > /dev/null || exit 1
cmake --build "$build" -j "$jobs" > "$build/build.log" 2>&1 || { tail -30 "$build/build.log"; exit 1; }
# ELF e_machine (bytes 18-19) 0xb7: EM_AARCH64
[ "$(od -An -tx1 -j18 -N2 "$build/bin/bitnet" | tr -d ' ')" = b700 ] ||
    { echo "FAIL: build-arm64/bin/bitnet is not an aarch64 binary"; exit 1; }

# The loader and libc of the cross toolchain (see cmake/toolchain-aarch64.cmake).
qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib:/usr/lib/aarch64-linux-gnu)
arm() { "${qemu[@]}" "$build/bin/bitnet" "$@"; }

echo "== C unit tests under qemu (ctest in build-arm64/)"
# test_speculative decodes the shipped model with every drafter on every path and many seeds: over
# an hour under qemu, and its kernels are the ones the other tests cover (ARM64_CTEST_ALL=1 runs it).
exclude='^test_speculative$'
[ "${ARM64_CTEST_ALL:-0}" = 1 ] && exclude='^$'
(cd "$build" && ctest --output-on-failure -j "$jobs" -E "$exclude" < /dev/null) > "$build/ctest.log" 2>&1
ctest_rc=$?
grep -E '^[0-9]+% tests passed|tests failed|\*\*\*(Failed|Skipped|Timeout)' "$build/ctest.log"
[ $ctest_rc = 0 ] || grep -A30 'The following tests FAILED' "$build/ctest.log"
check "every C unit test passes under qemu" test $ctest_rc = 0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-arm64.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME=$tmp/cache XDG_STATE_HOME=$tmp/state # the tuner's cache: not the user's
model=$src/models/kjv-bitnet.gguf
# 150 tokens (past position 128, tails of every vector width), as tests/test_isa_logits.sh
ids=""
x=7
for i in $(seq 1 150); do
    x=$(( (x * 1103515245 + 12345) % 2147483648 ))
    ids="$ids${ids:+,}$(( x % 4096 ))"
done

echo "== bitnet eval on the shipped model, every path"
for isa in scalar neon neondot; do
    arm eval -m "$model" --tokens "$ids" --logits-out "$tmp/$isa.bin" --isa "$isa" -t 2 \
        > /dev/null 2> "$tmp/$isa.err"
    check "eval --isa $isa: exit 0" test $? = 0
done
check "neon logits equal the scalar ones byte for byte" cmp "$tmp/neon.bin" "$tmp/scalar.bin"
check "neondot logits equal the scalar ones byte for byte" cmp "$tmp/neondot.bin" "$tmp/scalar.bin"
if [ -x "$x86_bin" ]; then
    "$x86_bin" eval -m "$model" --tokens "$ids" --logits-out "$tmp/x86.bin" -t 2 > /dev/null 2>&1
    check "the x86 build's logits (its best path) exist" test -s "$tmp/x86.bin"
    check "arm64 logits equal the x86 build's byte for byte" cmp "$tmp/neondot.bin" "$tmp/x86.bin"
    echo "   $(sha256sum < "$tmp/x86.bin" | cut -c1-16) x86, $(sha256sum < "$tmp/neondot.bin" | cut -c1-16) arm64 neondot ($(stat -c %s "$tmp/x86.bin") bytes)"
else
    echo "note: no x86 binary at $x86_bin (make build): the cross-architecture comparison is not run"
fi

echo "== run-time selection (HWCAP)"
QEMU_CPU=cortex-a53 "${qemu[@]}" "$build/bin/bitnet" eval -m "$model" --tokens 1,2,3 \
    --logits-out "$tmp/a53.bin" --isa neondot > /dev/null 2> "$tmp/a53.err"
check "without dotprod (cortex-a53) --isa neondot is refused" grep -q "does not support the neondot path" "$tmp/a53.err"
QEMU_CPU=cortex-a53 "${qemu[@]}" "$build/bin/bitnet" bench -m "$model" -p 4 -n 2 -r 1 -t 1 \
    --json "$tmp/a53.json" > /dev/null 2>&1
check "without dotprod the best path is neon" grep -q '"isa": *"neon"' "$tmp/a53.json"

echo "== receipts name the NEON kernels"
for isa in neondot neon; do
    BITNET_ISA=$isa "${qemu[@]}" "$build/bin/bitnet" bench -m "$model" -p 8 -n 4 -r 1 -t 2 \
        --json "$tmp/bench-$isa.json" > /dev/null 2> "$tmp/bench-$isa.err"
    check "BITNET_ISA=$isa: bench exit 0" test $? = 0
    check "BITNET_ISA=$isa: the receipt's isa is $isa" grep -q "\"isa\": *\"$isa\"" "$tmp/bench-$isa.json"
    check "BITNET_ISA=$isa: cpu.i2s.gemv.$isa ran" grep -q "\"cpu.i2s.gemv.$isa\"" "$tmp/bench-$isa.json"
    check "BITNET_ISA=$isa: cpu.quantize_act.neon ran" grep -q '"cpu.quantize_act.neon"' "$tmp/bench-$isa.json"
    check "BITNET_ISA=$isa: cpu.rmsnorm.neon ran" grep -q '"cpu.rmsnorm.neon"' "$tmp/bench-$isa.json"
done
check "the receipt verifies" "${qemu[@]}" "$build/bin/bitnet" verify-receipt "$tmp/bench-neondot.json"

if [ $fail = 0 ]; then echo "test-arm64: all checks passed"; else echo "test-arm64: FAILED"; fi
exit $fail
