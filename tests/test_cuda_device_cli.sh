#!/usr/bin/env bash
# test_cuda_device_cli.sh: `--device` on the command line where no GPU can run the model.
#   - `bitnet eval --device cuda` fails with exit code 1 and a one-line message that says why:
#     no CUDA backend in this build, or no usable CUDA device (no driver, no GPU); no logits file
#     content is produced;
#   - `--device cpu` is the default and gives the same logits as no --device at all;
#   - an unknown device name is a usage error (exit 2) naming the value;
#   - run, chat, perplexity, eval, bench, crossval and serve all take --device cuda and cuda:N
#     (and BITNET_DEVICE, which --device overrides) and fail the same way without a GPU.
# On a machine where the CUDA device works (eval --device cuda succeeds) the failure path cannot
# be exercised: the test reports skipped (77); test_cuda_model covers that machine.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp cuda_device_cli

bn_synth "$tmp/m.gguf" --seed 3

"$bin" eval -m "$tmp/m.gguf" --tokens 1,2,3 --logits-out "$tmp/default.bin" || { echo "FAIL: eval"; exit 1; }
"$bin" eval -m "$tmp/m.gguf" --tokens 1,2,3 --logits-out "$tmp/cpu.bin" --device cpu
check "--device cpu is the default" cmp -s "$tmp/default.bin" "$tmp/cpu.bin"

"$bin" eval -m "$tmp/m.gguf" --tokens 1,2,3 --logits-out "$tmp/bad.bin" --device tpu 2> "$tmp/bad.err"
rc=$?
check "unknown device: exit 2 (got $rc)" test "$rc" -eq 2
check "unknown device: names the value" grep -q "invalid value 'tpu' for --device" "$tmp/bad.err"

"$bin" eval -m "$tmp/m.gguf" --tokens 1,2,3 --logits-out "$tmp/cuda.bin" --device cuda 2> "$tmp/cuda.err"
rc=$?
if [ "$rc" -eq 0 ]; then
    echo "SKIPPED: a CUDA device works here; the no-device failure cannot be tested (see test_cuda_model)"
    exit 77
fi
cat "$tmp/cuda.err"
check "--device cuda without a GPU: exit 1 (got $rc)" test "$rc" -eq 1
check "--device cuda: one line" test "$(wc -l < "$tmp/cuda.err")" -eq 1
check "--device cuda: says why" grep -Eq "this build has no CUDA backend|no CUDA device available" "$tmp/cuda.err"
check "--device cuda: suggests --device cpu" grep -q -- "--device cpu" "$tmp/cuda.err"
check "--device cuda: no logits written" test ! -s "$tmp/cuda.bin"

# Every command that loads a model takes --device (and cuda:N, and BITNET_DEVICE) and fails the
# same way: exit 1, the reason, no output file.
printf 'In the beginning God created the heaven and the earth.\n' > "$tmp/text.txt"
no_gpu() { # no_gpu LABEL COMMAND...: exit 1 and the one reason on the last stderr line
    local label=$1; shift
    "$@" > "$tmp/out.txt" 2> "$tmp/err.txt" < /dev/null
    local rc=$?
    check "$label: exit 1 (got $rc)" test "$rc" -eq 1
    check "$label: says there is no usable GPU" grep -Eq "this build has no CUDA backend|no CUDA device available" "$tmp/err.txt"
}
for dev in cuda cuda:1; do
    no_gpu "run --device $dev" "$bin" run -m "$tmp/m.gguf" -p hi -n 2 --device "$dev"
    no_gpu "chat --device $dev" "$bin" chat -m "$tmp/m.gguf" --device "$dev"
    no_gpu "perplexity --device $dev" "$bin" perplexity -m "$tmp/m.gguf" -f "$tmp/text.txt" -c 16 --device "$dev"
    no_gpu "eval --device $dev" "$bin" eval -m "$tmp/m.gguf" --tokens 1,2 --logits-out "$tmp/l.bin" --device "$dev"
    no_gpu "bench --device $dev" "$bin" bench -m "$tmp/m.gguf" -p 8 -n 4 -r 1 --no-bandwidth --device "$dev"
    no_gpu "crossval --device $dev" "$bin" crossval -m "$tmp/m.gguf" --tokens 1,2 --against-isa scalar --device "$dev"
    if "$bin" serve --help > /dev/null 2>&1; then
        no_gpu "serve --device $dev" timeout 60 "$bin" serve -m "$tmp/m.gguf" --port 0 --device "$dev"
    fi
done
no_gpu "BITNET_DEVICE=cuda run" env BITNET_DEVICE=cuda "$bin" run -m "$tmp/m.gguf" -p hi -n 2
check "--device overrides BITNET_DEVICE" env BITNET_DEVICE=cuda "$bin" run -m "$tmp/m.gguf" -p hi -n 2 --device cpu
"$bin" run -m "$tmp/m.gguf" -p hi -n 2 --device cuda:x 2> "$tmp/bad.err"
check "cuda:x is a usage error naming the value" grep -q "invalid value 'cuda:x' for --device" "$tmp/bad.err"
BITNET_DEVICE=gpu "$bin" eval -m "$tmp/m.gguf" --tokens 1,2 --logits-out "$tmp/l.bin" 2> "$tmp/bad.err"
rc=$?
check "a bad BITNET_DEVICE: exit 2 (got $rc)" test "$rc" -eq 2
check "a bad BITNET_DEVICE: names it" grep -q "BITNET_DEVICE" "$tmp/bad.err"
echo "test_cuda_device_cli: $passed passed, $failed failed"
exit $fail
