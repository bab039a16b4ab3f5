#!/usr/bin/env bash
# scale-test.sh: three `bitnet serve` replicas behind HAProxy (deploy/haproxy/haproxy.cfg) on
# loopback, under a bounded load, while one replica drains on SIGTERM and comes back and another is
# killed with SIGKILL; then aggregate tokens/s with 1, 2 and 3 replicas. The work is done by
# scripts/scale_test.py (its docstring says what is checked); this wrapper finds the tools, makes
# the model and keeps the report.
#
# usage: scripts/scale-test.sh [BITNET_BINARY] [-- scale_test.py options]
#   BITNET_BINARY   default: build/bin/bitnet
#   environment: SCALE_MODEL=FILE (default: a synthetic 88M-parameter model, 8 layers of dim 1024,
#   written to the work folder), SCALE_TMP=DIR (work folder; default a temporary one, removed
#   unless KEEP_TMP is set), SCALE_REPORT=FILE (a copy of the report).
# Needs: haproxy (Debian package haproxy), taskset (util-linux), /usr/bin/python3.
# Exit status: 0 when the chaos run met its goal (see scale_test.py), 1 otherwise, 77 when a tool
# is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$root/build/bin/bitnet}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == "--" ]] && shift
for tool in haproxy taskset /usr/bin/python3; do
    command -v "$tool" > /dev/null || { echo "scale-test: $tool not found (Debian: haproxy, util-linux, python3): skipped"; exit 77; }
done
[[ -x $bin ]] || { echo "scale-test: $bin is not an executable (build first: make build)"; exit 1; }
tmp=${SCALE_TMP:-$(mktemp -d /tmp/bitnet-scale.XXXXXX)}
mkdir -p "$tmp"
cleanup() { [[ -n ${KEEP_TMP:-} || -n ${SCALE_TMP:-} ]] || rm -rf "$tmp"; }
trap cleanup EXIT
model=${SCALE_MODEL:-}
if [[ -z $model ]]; then
    model=$tmp/scale-88m.gguf
    echo "scale-test: writing a synthetic model (8 layers, dim 1024, random ternary weights) to $model"
    "$bin" synth "$model" --preset small --layers 8 --dim 1024 --ffn 2816 --heads 16 > "$tmp/synth.log" 2>&1 \
        || { cat "$tmp/synth.log"; exit 1; }
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
echo "scale-test: $(nproc) CPUs ($cpu), $(haproxy -v | head -1)"
set +e
/usr/bin/python3 "$root/scripts/scale_test.py" --bin "$bin" --model "$model" --haproxy-cfg "$root/deploy/haproxy/haproxy.cfg" \
    --tmp "$tmp" "$@" 2>&1 | tee "$tmp/report.txt"
rc=${PIPESTATUS[0]}
set -e
[[ -n ${SCALE_REPORT:-} ]] && cp "$tmp/report.txt" "$SCALE_REPORT"
if [[ $rc != 0 ]]; then
    echo "scale-test: FAILED; logs of each replica and of HAProxy:"
    for f in "$tmp"/*.log; do echo "---- $f"; tail -n 15 "$f"; done
fi
exit "$rc"
