#!/usr/bin/env bash
# test_spec.sh: speculative decoding from the command line and in the server.
#   - `bitnet run --spec ngram|replay|draft` prints exactly what plain `bitnet run` prints (greedy
#     on the shipped model, and seeded sampling), and reports its steps and acceptance on stderr;
#     `--output-ids` writes the ids `--spec replay` reads, which then accepts every draft;
#   - bad combinations fail with a clear message: draft without a model, a draft model with
#     another vocabulary, replay without ids, a malformed ids file, a draft option without its mode;
#   - `bitnet serve --spec ngram` (and `--spec draft`) with 4 slots answers 8 concurrent greedy
#     requests exactly as the plain server does, and /metrics counts drafted and accepted tokens;
#     so does `--spec ngram` on llama.cpp's bitnet architecture (TQ2_0, scalar path, 1 thread) and on
#     llama (TQ1_0, AVX2 where the CPU has it, 2 threads).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp spec
m=$src/models/kjv-bitnet.gguf
prompt="And God said, Let there be light: and there was light. And God saw the light, that it was good: and God"
run() { "$bin" run -m "$m" -t 1 -p "$prompt" -n 64 --no-echo --no-progress "$@"; }

run --temp 0 --output-ids "$tmp/ids.txt" > "$tmp/plain.txt" 2> "$tmp/plain.err"
check "plain run" test -s "$tmp/plain.txt"
check "--output-ids wrote 64 ids" test "$(wc -l < "$tmp/ids.txt")" = 64
for mode in "ngram" "ngram --draft-fixed --draft-max 16" "replay --spec-replay $tmp/ids.txt" \
            "draft --model-draft $m --draft-max 4"; do
    # shellcheck disable=SC2086
    run --temp 0 --spec $mode > "$tmp/spec.txt" 2> "$tmp/spec.err"
    check "greedy --spec $mode prints what plain decoding prints" cmp "$tmp/plain.txt" "$tmp/spec.txt"
    check "--spec $mode reports its steps" grep -q "speculation (${mode%% *}): [0-9]* steps" "$tmp/spec.err"
done
# shellcheck disable=SC2086
run --temp 0 --spec replay --spec-replay "$tmp/ids.txt" 2> "$tmp/replay.err" > /dev/null
check "--spec replay of the run's own ids accepts every draft" grep -q "accepted (100.0%)" "$tmp/replay.err"
grep "speculation" "$tmp/replay.err"
run --temp 0.8 --seed 7 > "$tmp/sampled.txt" 2> /dev/null
run --temp 0.8 --seed 7 --spec ngram --draft-fixed > "$tmp/sampled-spec.txt" 2> /dev/null
check "seeded sampling with --spec ngram prints what plain sampling prints" cmp "$tmp/sampled.txt" "$tmp/sampled-spec.txt"

fails_with() { # fails_with TEXT COMMAND...: the command fails and its stderr says TEXT
    local text=$1; shift
    ! "$@" > /dev/null 2> "$tmp/err.txt" && grep -q -- "$text" "$tmp/err.txt"
}
bn_synth "$tmp/tiny.gguf"
printf '12 x 7\n' > "$tmp/bad-ids.txt"
check "--spec draft without --model-draft" fails_with "needs a draft model" run --spec draft
check "a draft model with another vocabulary" fails_with "vocabulary" run --spec draft --model-draft "$tmp/tiny.gguf"
check "--spec replay without ids" fails_with "spec-replay" run --spec replay
check "a malformed ids file" fails_with "not part of a token id" run --spec replay --spec-replay "$tmp/bad-ids.txt"
check "--model-draft without --spec draft" fails_with "is for --spec draft" run --model-draft "$m"
check "an unknown mode" fails_with "ngram, draft, replay or none" run --spec lookahead
check "--draft-max out of range" fails_with "1..16" run --spec ngram --draft-max 40

"$bin" serve --help > /dev/null 2>&1 || { echo "bitnet was built without the server: server part skipped"; echo "test_spec: $passed passed, $failed failed"; exit $fail; }
check "serve --spec replay is refused" fails_with "no previous run to replay" "$bin" serve -m "$m" --port 0 --spec replay
# serve_outputs NAME [SERVE OPTION...]: 8 concurrent greedy completions on 4 slots of the model
# $model (default: the shipped one), their texts in $tmp/NAME.json, and /metrics in $tmp/NAME.metrics
serve_outputs() {
    local name=$1; shift
    local model=${model:-$m}
    "$bin" serve -m "$model" --port 0 -t "${threads:-1}" -np 4 "$@" > "$tmp/$name.log" 2>&1 &
    local pid=$!
    "$py" - "$tmp/$name.log" "$tmp/$name.json" "$tmp/$name.metrics" "$(basename "$model" .gguf)" "$src/tests/support" <<'PY'
import concurrent.futures, json, re, sys, time, urllib.request
log, out, metrics, model_id = sys.argv[1:5]
sys.path.insert(0, sys.argv[-1])
from server_wait import wait_ready
port = wait_ready(log)
prompts = ["In the beginning God created the heaven and the earth. And the earth was without form",
           "And God said, Let there be light: and there was light. And God said, Let there be",
           "The LORD is my shepherd; I shall not want. He maketh me to lie down",
           "And it came to pass, when men began to multiply on the face of the earth, and",
           "Blessed are the poor in spirit: for theirs is the kingdom of heaven. Blessed are",
           "And the LORD said unto Moses, Speak unto the children of Israel, and say unto them,",
           "For God so loved the world, that he gave his only begotten Son, that whosoever",
           "Now the serpent was more subtil than any beast of the field which the LORD God had"]
def ask(p):
    body = json.dumps({"model": model_id, "prompt": p, "max_tokens": 48, "temperature": 0, "stream": True}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body, {"Content-Type": "application/json"})
    text = ""
    for line in urllib.request.urlopen(req, timeout=300):
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            text += json.loads(line[6:])["choices"][0]["text"]
    return text
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    texts = list(pool.map(ask, prompts))
json.dump(texts, open(out, "w"), indent=1)
open(metrics, "w").write(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode())
PY
    kill "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
}
serve_outputs plain
serve_outputs ngram --spec ngram
serve_outputs draft --spec draft --model-draft "$m" --draft-max 3
check "the plain server answered" test -s "$tmp/plain.json"
check "serve --spec ngram: the same 8 greedy streams as the plain server" cmp "$tmp/plain.json" "$tmp/ngram.json"
check "serve --spec draft: the same 8 greedy streams as the plain server" cmp "$tmp/plain.json" "$tmp/draft.json"
metric() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
for name in ngram draft; do
    drafted=$(metric bitnet_spec_drafted_tokens_total "$tmp/$name.metrics")
    accepted=$(metric bitnet_spec_accepted_tokens_total "$tmp/$name.metrics")
    steps=$(metric bitnet_spec_steps_total "$tmp/$name.metrics")
    tokens=$(metric bitnet_spec_generated_tokens_total "$tmp/$name.metrics")
    echo "serve --spec $name: $steps steps, $drafted drafted, $accepted accepted, $tokens tokens"
    check "serve --spec $name: /metrics counts drafts and accepted ones" test "${accepted:-0}" -gt 0 -a "${drafted:-0}" -ge "${accepted:-0}"
    check "serve --spec $name: more than one token per step" test "${tokens:-0}" -gt "${steps:-0}"
    check "serve --spec $name: the load log names the mode" grep -q "speculation $name" "$tmp/$name.log"
done
check "the plain server reports no drafts" test "$(metric bitnet_spec_drafted_tokens_total "$tmp/plain.metrics")" = 0

# other model families, kernel paths and thread counts: llama.cpp's bitnet (TQ2_0) on the scalar
# path, llama (TQ1_0) on AVX2 with 2 threads (where the CPU has it), b1.58 with a q8_0 KV cache
bn_synth "$tmp/bitnet.gguf" --arch bitnet --format tq2_0 --kv-heads 4 --seed 5
bn_synth "$tmp/llama.gguf" --arch llama --format tq1_0 --kv-heads 4 --seed 6
isa2=avx2; "$bin" run -m "$tmp/llama.gguf" -p x -n 1 --isa avx2 > /dev/null 2>&1 || isa2=scalar
for setup in "bitnet.gguf scalar 1" "llama.gguf $isa2 2"; do
    read -r file isa n_threads <<< "$setup"
    BITNET_ISA=$isa threads=$n_threads model=$tmp/$file serve_outputs "$file-plain"
    BITNET_ISA=$isa threads=$n_threads model=$tmp/$file serve_outputs "$file-ngram" --spec ngram --draft-fixed \
        --draft-max 6 --draft-min 1
    check "$file ($isa, $n_threads threads): serve --spec ngram equals the plain server" cmp "$tmp/$file-plain.json" "$tmp/$file-ngram.json"
    check "$file: drafts were verified" test "$(metric bitnet_spec_drafted_tokens_total "$tmp/$file-ngram.metrics")" -gt 0
done
echo "test_spec: $passed passed, $failed failed"
exit $fail
