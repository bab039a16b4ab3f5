#!/usr/bin/env bash
# gpu-check.sh: the GPU verification of the CUDA backend, in one run of at most about 4 minutes on
# a machine with an NVIDIA GPU (sm_80 or newer), CUDA 13 (nvcc), CMake and a C compiler.
#
# What it does, each step logged under $OUT (at most 8 files come back from the device tool):
#   1. build Release with the CUDA backend ON and the server OFF (no libmicrohttpd there);
#   2. ctest -R cuda: test_cuda_kernels (every kernel against the CPU scalar reference),
#      test_cuda_model (CUDA vs CPU logits on small synthetic models, batch invariance),
#      test_cuda_layout, test_cuda_device_cli (reports skipped where the GPU works);
#   3. synthetic models made there: tiny (`bitnet synth --preset tiny`) and the full 2B-4T shape
#      (`--preset 2b4t`, 1.19 GB); `bitnet eval --device cuda` vs `--device cpu` on both, cosine
#      per position and position-0 max |diff| computed with python3/numpy;
#   4. `bitnet bench --device cuda` on the 2B-4T shape with a receipt, checked with
#      `bitnet verify-receipt --require-gpu-kernels`; bench_decode_batch for decode tokens/s at
#      batch 1 and 16 concurrent sequences;
#   5. `bitnet crossval --backend cuda --against cpu` on both (and on models/*.gguf when present),
#      when the command accepts it;
#   6. when the server is built (libmicrohttpd found, or carried in .gpu-deps): `bitnet serve
#      --device cuda -np 16` and `--device cpu` on the tiny model, 16 concurrent greedy streaming
#      clients each (scripts/serve_compare.py); their texts must be equal (serve.log, serve-*.json).
# Each step has a timeout and the whole run stops starting steps after GPU_CHECK_BUDGET seconds
# (default 230): give the device tool a timeout_s of about 300.
#
# Files: summary.txt (steps, timings, nvidia-smi), build.log, ctest.log, eval.txt, crossval.log,
# bench.log, receipt-cuda.json, decode-batch.jsonl.
#
# What must be carried (device tool `carry`): `.gpu-deps` made here by scripts/gpu-deps.sh (the
# Debian packages of PCRE2, jansson, libssl/libcrypto and pkgconf: the core library needs them and
# the GPU image may lack their headers). They are unpacked into /tmp/bitnet-gpu-deps, never into /,
# and used only when pkg-config does not already find the libraries there. Nothing else: the
# models are generated on the machine, and no tokenizer data is needed (ids are given directly).
#
# Usage there:  bash scripts/gpu-check.sh        (OUT defaults to ./gpu-check-out)
# Here (no GPU), the dependency and build path alone:
#   GPU_CHECK_FORCE_DEPS=1 GPU_CHECK_ONLY_BUILD=1 GPU_CHECK_BUILD=build-gpucheck bash scripts/gpu-check.sh
# and the flow of the later steps (they fail for want of a GPU): GPU_CHECK_SKIP_2B4T=1
# GPU_CHECK_SERVER=ON (with libmicrohttpd installed) GPU_CHECK_BUILD=... bash scripts/gpu-check.sh
set -u
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-230} # seconds for everything
JOBS=$(nproc 2>/dev/null || echo 4)
BUILD=${GPU_CHECK_BUILD:-build-gpu}
TMP=${TMPDIR:-/tmp}/bitnet-gpu-check
mkdir -p "$TMP"
summary="$OUT/summary.txt"
: > "$summary"
log() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$summary"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# step NAME SECONDS LOGFILE COMMAND...: runs with a timeout no longer than what is left.
step() {
    local name=$1 limit=$2 file=$3; shift 3
    local l; l=$(left)
    [ "$limit" -gt "$l" ] && limit=$l
    if [ "$limit" -le 5 ]; then log "SKIP $name: out of time"; return 124; fi
    echo "=== $name ($(date +%T)): $*" >> "$file"
    local t0; t0=$(date +%s)
    timeout "$limit" "$@" >> "$file" 2>&1
    local rc=$?
    log "$name: exit $rc in $(( $(date +%s) - t0 ))s"
    return $rc
}

log "gpu-check on $(hostname), $JOBS cores"
{ nvidia-smi 2>&1 | head -20; nvcc --version 2>&1 | tail -2; cmake --version | head -1; } >> "$summary"

# ---- dependencies: carried Debian packages when the machine lacks them ----
deps=/tmp/bitnet-gpu-deps
missing=0
for m in libpcre2-8 jansson libcrypto libmicrohttpd; do pkg-config --exists "$m" 2>/dev/null || missing=1; done
if [ "$missing" = 1 ] || [ "${GPU_CHECK_FORCE_DEPS:-0}" = 1 ]; then
    if ! ls .gpu-deps/*.deb > /dev/null 2>&1; then
        log "FAIL: PCRE2/jansson/libcrypto not found and no .gpu-deps/ carried (run scripts/gpu-deps.sh here)"
        exit 1
    fi
    mkdir -p "$deps"
    for f in .gpu-deps/*.deb; do
        if command -v dpkg-deb > /dev/null; then
            dpkg-deb -x "$f" "$deps"
        else # a .deb is an ar archive holding data.tar.*
            python3 - "$f" "$deps" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/"); size = int(data[pos + 48:pos + 58])
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
        fi
    done
    lib=$deps/usr/lib/x86_64-linux-gnu
    export PKG_CONFIG_SYSROOT_DIR=$deps
    export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$deps/usr/share/pkgconfig
    export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export CPATH=$deps/usr/include/x86_64-linux-gnu:$deps/usr/include${CPATH:+:$CPATH}
    export LIBRARY_PATH=$lib${LIBRARY_PATH:+:$LIBRARY_PATH}
    command -v pkg-config > /dev/null || export PATH=$deps/usr/bin:$PATH
    log "using carried packages from .gpu-deps ($(ls .gpu-deps/*.deb | wc -l) .deb files)"
fi

# ---- 1. build ----
# the server when libmicrohttpd is there (installed or carried): step 6 needs it
server=${GPU_CHECK_SERVER:-OFF}
[ -z "${GPU_CHECK_SERVER:-}" ] && pkg-config --exists libmicrohttpd 2>/dev/null && server=ON
log "server: $server"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
step configure 60 "$OUT/build.log" cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBITNET_SERVER="$server" -DBITNET_CUDA=ON || { log "FAIL: configure (see build.log)"; exit 1; }
# the GPU tests and the batch benchmark first: they need only the library, so a CLI that fails to
# build (another part of the tree mid-change) still leaves the kernel and model checks to run
step build 150 "$OUT/build.log" cmake --build "$BUILD" -j "$JOBS" --target test_cuda_kernels \
    test_cuda_model test_cuda_layout bench_decode_batch || { log "FAIL: build (see build.log)"; exit 1; }
step build-cli 60 "$OUT/build.log" cmake --build "$BUILD" -j "$JOBS" --target bitnet_cli ||
    log "FAIL: the bitnet binary did not build (see build.log); eval, crossval and bench steps will fail"
grep -iE "warning|error:|undefined reference" "$OUT/build.log" | head -20 >> "$summary"
bin=$BUILD/bin/bitnet
if [ "${GPU_CHECK_ONLY_BUILD:-0}" = 1 ]; then log "done (build only)"; exit 0; fi

# ---- 2. GPU tests ----
export BITNET_BIN=$PWD/$bin BITNET_SOURCE_DIR=$PWD BITNET_BUILD_DIR=$PWD/$BUILD BITNET_TEST_TMP=$TMP
step ctest 90 "$OUT/ctest.log" ctest --test-dir "$BUILD" -R cuda --output-on-failure --timeout 80
grep -E "tests passed|Passed|Failed|Skipped|min cosine|identical|device:" "$OUT/ctest.log" >> "$summary"

# ---- 3. models and CUDA vs CPU logits ----
step synth-tiny 20 "$OUT/eval.txt" "$bin" synth "$TMP/tiny.gguf" --preset tiny --seed 11
[ "${GPU_CHECK_SKIP_2B4T:-0}" = 1 ] ||
    step synth-2b4t 90 "$OUT/eval.txt" "$bin" synth "$TMP/2b4t.gguf" --preset 2b4t --seed 11
tokens=$(python3 -c "import random; random.seed(3); print(','.join(str(random.randrange(256)) for _ in range(24)))")
compare() { # model label
    local m=$1 label=$2
    [ -s "$m" ] || return 0
    step "eval-cpu-$label" 60 "$OUT/eval.txt" "$bin" eval -m "$m" --tokens "$tokens" --logits-out "$TMP/$label-cpu.bin" \
        --device cpu -t "$JOBS" || return 0
    step "eval-cuda-$label" 60 "$OUT/eval.txt" "$bin" eval -m "$m" --tokens "$tokens" --logits-out "$TMP/$label-cuda.bin" \
        --device cuda || return 0
    python3 - "$TMP/$label-cpu.bin" "$TMP/$label-cuda.bin" 24 "$label" >> "$OUT/eval.txt" 2>&1 <<'PY'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype=np.float32); b = np.fromfile(sys.argv[2], dtype=np.float32)
n = int(sys.argv[3]); a = a.reshape(n, -1).astype(np.float64); b = b.reshape(n, -1).astype(np.float64)
cos = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
print(f"{sys.argv[4]}: cuda vs cpu: min cosine {cos.min():.6f}, mean {cos.mean():.6f}, "
      f"pos0 max|diff| {np.abs(a[0] - b[0]).max():.3g}, identical positions {(a == b).all(1).sum()}/{n}, "
      f"argmax agree {(a.argmax(1) == b.argmax(1)).sum()}/{n}")
PY
    tail -1 "$OUT/eval.txt" >> "$summary"
}
compare "$TMP/tiny.gguf" tiny
compare "$TMP/2b4t.gguf" 2b4t

# ---- 4. benchmarks on the 2B-4T shape ----
if [ -s "$TMP/2b4t.gguf" ]; then
    step bench-cuda 60 "$OUT/bench.log" "$bin" bench -m "$TMP/2b4t.gguf" --device cuda -p 128 -n 64 -r 2 \
        --no-bandwidth --json "$OUT/receipt-cuda.json"
    [ -s "$OUT/receipt-cuda.json" ] && step verify-receipt 10 "$OUT/bench.log" "$bin" verify-receipt \
        "$OUT/receipt-cuda.json" --require-gpu-kernels
    step decode-batch 60 "$OUT/decode-batch.jsonl" "$BUILD/bin/bench_decode_batch" -m "$TMP/2b4t.gguf" \
        --device cuda --batch 16 --prompt 64 --steps 64
    grep -E "tokens|t/s|tg|pp" "$OUT/bench.log" | tail -6 >> "$summary"
    grep -o '"batch": [0-9]*, "prompt": [0-9]*, "steps": [0-9]*, "decode_tokens_per_second": [0-9.]*' \
        "$OUT/decode-batch.jsonl" >> "$summary"
fi
# ---- 5. crossval (last: it belongs to another command that may not take --backend cuda yet) ----
if "$bin" crossval --help 2>&1 | grep -q -- "--backend"; then
    step crossval-tiny 40 "$OUT/crossval.log" "$bin" crossval -m "$TMP/tiny.gguf" --tokens "$tokens" \
        --backend cuda --against cpu --greedy 64 --quiet
    [ -s "$TMP/2b4t.gguf" ] && step crossval-2b4t 60 "$OUT/crossval.log" "$bin" crossval \
        -m "$TMP/2b4t.gguf" --tokens "$tokens" \
        --backend cuda --against cpu --greedy 16 --cos-tol 0.99 --mean-cos-tol 0.997 --pos0-tol 5e-3 --quiet
    for m in models/*.gguf; do
        [ -s "$m" ] && step "crossval-$(basename "$m")" 40 "$OUT/crossval.log" "$bin" crossval -m "$m" \
            --tokens "$tokens" --backend cuda --against cpu --greedy 64 --greedy-tie 1e-3 --quiet
    done
    grep -E "^summary|^greedy:|near-tie|PASS|FAIL" "$OUT/crossval.log" >> "$summary"
else
    log "crossval: this build's bitnet has no --backend option"
fi

# ---- 6. the server on the GPU: 16 concurrent streaming clients, the same texts as the CPU's ----
if [ "$server" = ON ] && [ -s "$TMP/tiny.gguf" ]; then
    for dev in cpu cuda; do
        "$bin" serve -m "$TMP/tiny.gguf" --device "$dev" -np 16 -c 2048 --port 0 -t "$JOBS" > "$OUT/serve-$dev.log" 2>&1 &
        pid=$!
        step "serve-$dev" 60 "$OUT/serve.log" python3 scripts/serve_compare.py "$OUT/serve-$dev.log" \
            "$OUT/serve-$dev.json" --clients 16 --tokens 32
        kill "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
    if [ -s "$OUT/serve-cpu.json" ] && [ -s "$OUT/serve-cuda.json" ] &&
        python3 -c 'import json, sys; a, b = (json.load(open(f))["texts"] for f in sys.argv[1:]); sys.exit(a != b)' \
            "$OUT/serve-cpu.json" "$OUT/serve-cuda.json"; then
        log "serve --device cuda: 16 greedy streams equal the CPU server's"
    else
        log "FAIL: serve --device cuda: the streams differ from the CPU server's, or a server failed (serve*.log)"
    fi
    grep -h "loaded on" "$OUT"/serve-*.log >> "$summary" 2> /dev/null
fi

log "done"
rm -rf "$TMP"
