#!/usr/bin/env bash
# test_cli_chat.sh: `bitnet chat` reading messages from a pipe (stdin not a terminal), on a
# synthetic model in the bitnet chat format. Answers are greedy and biased to lower-case letters
# (ids 64..89 of the byte vocabulary), so no stop string can occur and each answer is exactly -n
# tokens long. Checks the token counts chat prints to stderr per turn:
#   - turn 1 prefills the whole rendered conversation, counted independently with
#     `bitnet tokenize` (format text with specials, the user's text without: a typed
#     "<|eot_id|>" stays plain text);
#   - turn 2 reuses the cache: cached = turn-1 prompt + the answer's ids but the last (sampled,
#     never run), prefilled = that last id + the tokens of "<|eot_id|>User: ...<|eot_id|>Assistant: ";
#   - end of input exits 0; the answers are printed to stdout; a seeded sampled chat repeats.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp cli_chat
ntok() { # ntok specials|plain TEXT: number of tokens, no BOS
    if [[ $1 == specials ]]; then "$bin" tokenize -m "$m" --no-bos --specials -- "$2" | wc -w
    else "$bin" tokenize -m "$m" --no-bos -- "$2" | wc -w; fi
}

m=$tmp/tiny.gguf
bn_synth "$m" --seed 4
letters=()
for id in $(seq 64 89); do letters+=(--logit-bias "$id=30"); done

n=6
printf 'hi <|eot_id|> there\nsecond message\n' |
    "$bin" chat -m "$m" --system "Be brief." -n $n --temp 0 -t 1 "${letters[@]}" > "$tmp/out" 2> "$tmp/err"
check "chat exits 0 at end of input" test $? -eq 0
cat "$tmp/err"
turn() { # turn N FIELD: a number from the stats line of turn N
    sed -nE "s/^chat: turn $1: prompt ([0-9]+) tokens \(([0-9]+) cached, ([0-9]+) prefilled.*stopped: ([a-z]+)$/\\$2/p" "$tmp/err"
}
p1=$(turn 1 1); c1=$(turn 1 2); f1=$(turn 1 3); s1=$(turn 1 4)
p2=$(turn 2 1); c2=$(turn 2 2); f2=$(turn 2 3); s2=$(turn 2 4)
check "two turns reported" test -n "$p1" -a -n "$p2"
check "two answers of $n letters on stdout" bash -c "[[ \$(grep -cE '^[a-z]{$n}\$' '$tmp/out') == 2 ]]"
check "answers end at the token limit" test "$s1" = length -a "$s2" = length

expect1=$(( $(ntok specials "<|begin_of_text|>System: ") + $(ntok plain "Be brief.") \
          + $(ntok specials "<|eot_id|>User: ") + $(ntok plain "hi <|eot_id|> there") \
          + $(ntok specials "<|eot_id|>Assistant: ") ))
check "turn 1 prefills the rendered conversation ($expect1 tokens)" test "$p1" = "$expect1" -a "$f1" = "$expect1" -a "$c1" = 0

tail2=$(( $(ntok specials "<|eot_id|>User: ") + $(ntok plain "second message") \
        + $(ntok specials "<|eot_id|>Assistant: ") ))
check "turn 2 keeps turn 1 and its answer in the cache ($((p1 + n - 1)) tokens)" test "$c2" = $((p1 + n - 1))
check "turn 2 prefills only the new tokens ($((tail2 + 1)))" test "$f2" = $((tail2 + 1))
check "turn 2's prompt is the conversation so far" test "$p2" = $((p1 + n + tail2))

# The same answers come back when the conversation is replayed in one process per turn: the
# second answer does not depend on having reused the cache.
printf 'hi <|eot_id|> there\n' |
    "$bin" chat -m "$m" --system "Be brief." -n $n --temp 0 -t 1 "${letters[@]}" > "$tmp/one" 2> /dev/null
check "the first answer is reproducible" test "$(head -1 "$tmp/out")" = "$(head -1 "$tmp/one")"

# Sampled answers repeat with the same seed (each turn has its own seed derived from it).
for r in 1 2; do
    printf 'one\ntwo\n' | "$bin" chat -m "$m" -n 12 --temp 1.5 --top-k 0 --top-p 1 --min-p 0 \
        --seed 99 -t 1 > "$tmp/seeded$r" 2> /dev/null
done
check "a seeded sampled chat repeats" cmp -s "$tmp/seeded1" "$tmp/seeded2"

"$bin" chat -m "$m" --bogus < /dev/null > /dev/null 2> "$tmp/bad"
check "unknown option exits 2" test $? -eq 2
check "one-line error" grep -q "^bitnet chat: unknown option '--bogus'" "$tmp/bad"

exit $fail
