#!/usr/bin/env bash
# test_cli_run.sh: `bitnet run` as a user calls it, on a synthetic model (byte vocabulary: token
# id 32 is the text "A", 261 is <|eot_id|>).
#   - streams the prompt and the generated text to stdout, speeds (tokens, ms, tokens/s) to stderr;
#   - greedy (--temp 0) is deterministic, also across thread counts; a seeded sampled run repeats;
#   - -n bounds the tokens; a full context ends the text unless --context-shift shifts it;
#     --logit-bias forces or ends the text; --stop cuts the text before the
#     stop string; --chat-format renders the prompt (more prompt tokens);
#   - every sampling option parses, and invalid values / unknown options exit 2 with a one-line
#     error naming the option; --help of every command exits 0;
#   - without -m: the shipped model runs, or, when it is absent, the error says how to get one.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp cli_run

m=$tmp/tiny.gguf
bn_synth "$m" --seed 11

"$bin" run -m "$m" -p "Hello" -n 16 --temp 0 -t 1 > "$tmp/g1.out" 2> "$tmp/g1.err"
check "run exits 0" test $? -eq 0
check "the prompt is echoed first" bash -c "head -c 5 '$tmp/g1.out' | grep -q '^Hello$'"
check "text was generated after the prompt" test "$(stat -c %s "$tmp/g1.out")" -gt 6
check "prompt speed on stderr" grep -Eq '^prompt: 6 tokens in [0-9.]+ ms \([0-9.]+ tokens/s\)$' "$tmp/g1.err"
check "generation speed on stderr (-n 16)" grep -Eq '^generation: 16 tokens in [0-9.]+ ms \([0-9.]+ tokens/s\)$' "$tmp/g1.err"
check "stopped at the token limit" grep -q '^stopped: length' "$tmp/g1.err"
check "nothing but text on stdout" bash -c "! grep -q 'tokens/s' '$tmp/g1.out'"

"$bin" run -m "$m" -p "Hello" -n 16 --temp 0 -t 1 > "$tmp/g2.out" 2> /dev/null
"$bin" run -m "$m" -p "Hello" -n 16 --temp 0 -t 3 > "$tmp/g3.out" 2> /dev/null
check "greedy is deterministic" cmp -s "$tmp/g1.out" "$tmp/g2.out"
check "greedy does not depend on the thread count" cmp -s "$tmp/g1.out" "$tmp/g3.out"

sample_args=(-p "Hello" -n 24 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 -t 1)
"$bin" run -m "$m" "${sample_args[@]}" --seed 7 > "$tmp/s1.out" 2> /dev/null
"$bin" run -m "$m" "${sample_args[@]}" --seed 7 > "$tmp/s2.out" 2> /dev/null
"$bin" run -m "$m" "${sample_args[@]}" --seed 8 > "$tmp/s3.out" 2> /dev/null
check "same seed, same text" cmp -s "$tmp/s1.out" "$tmp/s2.out"
check "another seed, other text" bash -c "! cmp -s '$tmp/s1.out' '$tmp/s3.out'"

out=$("$bin" run -m "$m" -p "Hi" -n 5 --temp 0 --logit-bias 32=inf --no-echo -t 1 2> /dev/null)
check "--logit-bias ID=inf forces the token, -n 5 bounds the text" test "$out" = "AAAAA"
"$bin" run -m "$m" -p "Hi" -n 5 --temp 0 --logit-bias 261=inf --no-echo -t 1 > "$tmp/eog.out" 2> "$tmp/eog.err"
check "an end-of-generation token ends the text" grep -q '^stopped: eog' "$tmp/eog.err"
check "the EOT token is not printed" test "$(cat "$tmp/eog.out")" = ""

# A stop string taken from the middle of a greedy text (restricted to lower-case letters by
# biasing ids 64..89, "a".."z", so the text is printable): the output ends just before it.
letters=()
for id in $(seq 64 89); do letters+=(--logit-bias "$id=30"); done
"$bin" run -m "$m" -p "Hello" -n 16 --temp 0 -t 1 --no-echo "${letters[@]}" > "$tmp/l.out" 2> /dev/null
gen=$(cat "$tmp/l.out")
check "biased greedy text is lower-case letters" bash -c "[[ '$gen' =~ ^[a-z]{16}\$ ]]"
stop=${gen:6:2}
"$bin" run -m "$m" -p "Hello" -n 16 --temp 0 -t 1 --no-echo "${letters[@]}" --stop "$stop" \
    > "$tmp/stop.out" 2> "$tmp/stop.err"
check "--stop reports the stop" grep -q '^stopped: stop' "$tmp/stop.err"
check "--stop cuts the text before the stop string" test "$(cat "$tmp/stop.out")" = "${gen%%"$stop"*}"

"$bin" run -m "$m" -p "Hello" -n 2 --temp 0 -t 1 --chat-format bitnet > /dev/null 2> "$tmp/chatfmt.err"
check "--chat-format wraps the prompt (User: ... Assistant: )" grep -Eq '^prompt: (1[0-9]|[2-9][0-9]) tokens' "$tmp/chatfmt.err"
"$bin" run -m "$m" -p "Hello" -n 2 --temp 0 -t 1 --no-bos 2> "$tmp/nobos.err" > /dev/null
check "--no-bos drops BOS (5 prompt tokens)" grep -q '^prompt: 5 tokens' "$tmp/nobos.err"

# Every sampling option parses.
"$bin" run -m "$m" -p "Hello" -n 8 -t 1 --temp 0.7 --top-k 20 --top-p 0.9 --min-p 0.1 \
    --repeat-penalty 1.1 --repeat-last-n 32 --presence-penalty 0.5 --frequency-penalty -0.5 \
    --logit-bias 40=-inf --logit-bias 41=2.5 --seed 3 --stop "zz" --stop "yy" -c 64 --isa scalar \
    --typical 0.9 --ignore-eos --context-shift --keep 2 > /dev/null 2>&1
check "all sampling options together run" test $? -eq 0

# A full context: the answer ends ("context") unless --context-shift drops the oldest half.
"$bin" run -m "$m" -p "Hello" -n 60 --temp 0 -t 1 -c 32 --ignore-eos > /dev/null 2> "$tmp/ctx.err"
check "a full context ends the generation (stopped: context)" grep -q '^stopped: context' "$tmp/ctx.err"
check "... after 32 - 6 + 1 tokens" grep -q '^generation: 27 tokens' "$tmp/ctx.err"
"$bin" run -m "$m" -p "Hello" -n 60 --temp 0 -t 1 -c 32 --ignore-eos --context-shift --keep 1 \
    > "$tmp/shift.out" 2> "$tmp/shift.err"
check "--context-shift generates all 60 tokens" grep -q '^generation: 60 tokens' "$tmp/shift.err"
check "... through context shifts" grep -Eq '^context shifts: [2-9] \([0-9]+ tokens dropped\)' "$tmp/shift.err"
check "... and stops at the token limit" grep -q '^stopped: length' "$tmp/shift.err"

bad() { # description, then arguments that must exit 2 with a one-line error
    local what=$1; shift
    "$bin" run -m "$m" "$@" > /dev/null 2> "$tmp/bad.err"
    local rc=$?
    check "$what exits 2" test $rc -eq 2
    check "$what: one error line naming the problem" grep -q "^bitnet run: .*$1" "$tmp/bad.err"
}
bad "negative temperature" --temp -1
bad "top-p above 1" --top-p 1.5
bad "min-p below 0" --min-p -0.1
bad "zero repetition penalty" --repeat-penalty 0
bad "presence penalty out of range" --presence-penalty 3
bad "frequency penalty out of range" --frequency-penalty -2.5
bad "negative top-k" --top-k -3
bad "typical-p of 0" --typical 0
bad "keep below -1" --keep -2
bad "non-numeric seed" --seed abc
bad "logit bias without =" --logit-bias 12
bad "logit bias NaN" --logit-bias 12=nan
bad "non-numeric -n" -n lots
bad "zero threads" -t 0
bad "unknown ISA" --isa sse9
bad "unknown option" --frobnicate
bad "missing value" --temp
"$bin" run -m "$m" --logit-bias 999=1 > /dev/null 2> "$tmp/bias.err"
check "a bias token outside the vocabulary is an error (exit 1)" test $? -eq 1
"$bin" run -m "$tmp/missing.gguf" > /dev/null 2> "$tmp/missing.err"
check "a missing model file exits 1" test $? -eq 1
"$bin" run -m "$m" --chat-format nosuch > /dev/null 2> "$tmp/fmt.err"
check "an unknown chat format is an error" test $? -ne 0

for cmd in run chat perplexity crossval; do
    "$bin" $cmd --help > "$tmp/help.txt"
    check "$cmd --help exits 0" test $? -eq 0
    check "$cmd --help shows its usage" grep -q "^usage: bitnet $cmd" "$tmp/help.txt"
done

# Without -m: the model shipped in models/ (looked up from the working directory, then from the
# binary's source tree).
shipped=$BITNET_SOURCE_DIR/models/kjv-bitnet.gguf # BN_CLI_DEFAULT_MODEL (src/cli/cli_options.h)
(cd "$tmp" && "$bin" run -n 8 --temp 0 -t 1 > "$tmp/default.out" 2> "$tmp/default.err")
rc=$?
if [[ -f "$shipped" && "$(readlink -f "$(dirname "$bin")/../..")" == "$(readlink -f "$BITNET_SOURCE_DIR")" ]]; then
    check "run without -m uses the shipped model" test $rc -eq 0
    check "the default prompt is shown" grep -q "^In the beginning" "$tmp/default.out"
elif [[ ! -f "$shipped" ]]; then
    check "run without a model exits 1" test $rc -eq 1
    check "the error says how to get a model" grep -q "bitnet synth" "$tmp/default.err"
fi

# The default model is also found from the binary's own tree (<tree>/<build>/bin/bitnet ->
# <tree>/models/...), whatever the working directory: a copy of the binary in a fake tree.
mkdir -p "$tmp/tree/build/bin" "$tmp/tree/models" "$tmp/elsewhere"
cp "$bin" "$tmp/tree/build/bin/bitnet"
cp "$m" "$tmp/tree/models/kjv-bitnet.gguf"
(cd "$tmp/elsewhere" && "$tmp/tree/build/bin/bitnet" run -n 3 --temp 0 -t 1 > "$tmp/tree.out" 2> "$tmp/tree.err")
check "the default model is found next to the binary's tree" test $? -eq 0
check "and named on stderr" grep -q "^model: .*/tree/models/kjv-bitnet.gguf " "$tmp/tree.err"
check "the default prompt starts the text" grep -q "^In the beginning" "$tmp/tree.out"

exit $fail
