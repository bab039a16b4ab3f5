# tests/support/common.sh: the preamble the shell tests share, sourced as
#     source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
#
# Design: each test keeps its own assertions; this file only gives them the same footing:
#   - $bin (the bitnet binary, from BITNET_BIN), $src (the source tree), $py (/usr/bin/python3);
#   - bn_make_tmp NAME: a private folder $tmp, removed at exit (kept when KEEP_TMP is set; a test
#     that needs more cleanup defines bn_on_exit, which runs first);
#   - check DESCRIPTION COMMAND...: runs one assertion, prints "ok: ..." or "FAIL: ...", sets
#     $fail to 1 on a failure and counts $passed / $failed;
#   - bn_synth PATH [SYNTH OPTIONS]: a tiny synthetic model (--preset tiny), or the test fails;
#   - bn_require_python MODULE... / bn_require_reference: skip (exit 77) without them.
# It sets `set -u` and nothing else, so a test may add -e / pipefail itself.
set -u
bin=${BITNET_BIN:?BITNET_BIN not set}
src=${BITNET_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
py=/usr/bin/python3
fail=0
passed=0
failed=0

check() { # check DESCRIPTION COMMAND...: COMMAND must succeed
    local what=$1; shift
    if "$@"; then
        echo "ok: $what"
        passed=$((passed + 1))
    else
        echo "FAIL: $what"
        fail=1
        failed=$((failed + 1))
    fi
}

bn_cleanup() {
    if declare -F bn_on_exit > /dev/null; then bn_on_exit; fi
    [[ -n ${KEEP_TMP:-} ]] || rm -rf "$tmp"
}

bn_make_tmp() { # bn_make_tmp NAME: $tmp = $BITNET_TEST_TMP/NAME.PID, created, removed at exit
    tmp=${BITNET_TEST_TMP:-/tmp}/$1.$$
    mkdir -p "$tmp"
    trap bn_cleanup EXIT
}

bn_synth() { # bn_synth PATH [OPTIONS...]: `bitnet synth PATH --preset tiny OPTIONS`, or exit 1
    local log
    log=$(mktemp "${tmp:-${BITNET_TEST_TMP:-/tmp}}/synth.XXXXXX") || { echo "FAIL: synth: no log file"; exit 1; }
    if ! "$bin" synth "$1" --preset tiny "${@:2}" > "$log" 2>&1; then
        echo "FAIL: synth $*: $(cat "$log")"
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

bn_require_python() { # bn_require_python [MODULE...]: skip unless $py runs and imports them
    [[ -x $py ]] || { echo "skip: needs $py"; exit 77; }
    local m
    for m in "$@"; do
        $py -c "import $m" 2> /dev/null || { echo "skip: needs $py with $*"; exit 77; }
    done
}

bn_require_reference() { # sets $ref to the PyTorch reference; skip without it or torch/numpy
    ref=$src/reference/bitnet_ref.py
    [[ -f $ref ]] || { echo "skip: $ref not found"; exit 77; }
    bn_require_python torch numpy
}
