#!/usr/bin/env bash
# test_server_int8_head.sh: `bitnet serve --int8-lm-head` (and BITNET_INT8_LM_HEAD=1) serves with
# the int8 LM head: the load log says so, and the logprob the server reports for its greedy first
# token equals the one computed from `bitnet eval --int8-lm-head` logits, not the F16 head's (the
# two heads differ in the low digits); without the option the F16 figure comes back.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
"$bin" serve --help > /dev/null 2>&1 || { echo "bitnet was built without the server: skipped"; exit 77; }
bn_make_tmp server_int8
m=$tmp/tiny.gguf
bn_synth "$m" --seed 21
"$bin" eval -m "$m" --tokens 5,6,7,8 --logits-out "$tmp/f16.bin" > /dev/null
"$bin" eval -m "$m" --tokens 5,6,7,8 --logits-out "$tmp/int8.bin" --int8-lm-head > /dev/null

# serve_logprob MODE ENV_ASSIGNMENT [SERVE OPTION...]: starts the server, asks for 1 greedy token
# with logprobs, prints "TOKEN LOGPROB" on the last line of $tmp/MODE.out; the server log goes to
# $tmp/MODE.log
serve_logprob() {
    local mode=$1 assignment=$2; shift 2
    env "$assignment" "$bin" serve -m "$m" --port 0 -t 1 "$@" > "$tmp/$mode.log" 2>&1 &
    local pid=$!
    "$py" - "$tmp/$mode.log" "$src/tests/support" > "$tmp/$mode.out" 2>&1 <<'PY'
import json, re, sys, time, urllib.error, urllib.request
log = sys.argv[1]
sys.path.insert(0, sys.argv[-1])
from server_wait import wait_ready
port = wait_ready(log)
body = json.dumps({"model": "tiny", "prompt": [5, 6, 7, 8], "max_tokens": 1, "temperature": 0, "logprobs": 1}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
try:
    r = json.load(urllib.request.urlopen(req, timeout=60))
except urllib.error.HTTPError as e:
    print(e.read().decode())
    raise
lp = r["choices"][0]["logprobs"]
print(lp["tokens"][0] if lp.get("tokens") else "", repr(lp["token_logprobs"][0]))
PY
    kill "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
}
serve_logprob int8 "BITNET_UNUSED=1" --int8-lm-head
serve_logprob env BITNET_INT8_LM_HEAD=1
serve_logprob f16 BITNET_UNUSED=1

check "--int8-lm-head: the load log says int8" grep -q "LM head int8" "$tmp/int8.log"
check "BITNET_INT8_LM_HEAD=1: the load log says int8" grep -q "LM head int8" "$tmp/env.log"
check "default: the load log says f16" grep -q "LM head f16" "$tmp/f16.log"
# expected greedy logprob of the last position from each head's logits
want() { "$py" -c '
import sys, numpy as np
x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(4, -1)[3].astype(np.float64)
m = x.max(); print(repr(float(m - (m + np.log(np.exp(x - m).sum()))) ))' "$1"; }
w_int8=$(want "$tmp/int8.bin")
w_f16=$(want "$tmp/f16.bin")
got_int8=$(tail -1 "$tmp/int8.out" | awk '{print $2}')
got_env=$(tail -1 "$tmp/env.out" | awk '{print $2}')
got_f16=$(tail -1 "$tmp/f16.out" | awk '{print $2}')
echo "greedy logprob: int8 head eval $w_int8 server $got_int8 / env $got_env; f16 eval $w_f16 server $got_f16"
close() { "$py" -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-5 * max(1, abs(b)) else 1)' "$1" "$2"; }
differ() { ! close "$1" "$2"; }
check "the two heads give different logprobs (the test can tell them apart)" differ "$w_int8" "$w_f16"
check "--int8-lm-head serves the int8 head's logprob" close "$got_int8" "$w_int8"
check "BITNET_INT8_LM_HEAD=1 serves the int8 head's logprob" close "$got_env" "$w_int8"
check "the default serves the F16 head's logprob" close "$got_f16" "$w_f16"
echo "test_server_int8_head: $passed passed, $failed failed"
exit $fail
