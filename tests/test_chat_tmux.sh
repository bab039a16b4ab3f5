#!/usr/bin/env bash
# test_chat_tmux.sh: `bitnet chat` in a real terminal (a detached tmux session) driven by a script,
# as a person uses it:
#   - the "> " prompt appears; three typed turns are answered;
#   - Ctrl-C during an answer stops it (the turn reports "stopped: cancelled") and the chat goes
#     on; Ctrl-C at the prompt only prints a hint;
#   - turns 2 and 3 prefill only their new tokens: the number chat prints on stderr equals the
#     tokens of "<|eot_id|>User: ...<|eot_id|>Assistant: " (counted with `bitnet tokenize`), and
#     the rest of the prompt comes from the cache;
#   - Ctrl-D at the prompt exits with status 0.
# Answers are unlimited and the model has a 32768-token context, so each answer is still running
# when Ctrl-C arrives. Skipped (77) when tmux is missing.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
command -v tmux > /dev/null || { echo "skip: tmux not installed"; exit 77; }
source "$(dirname "${BASH_SOURCE[0]}")/support/tmux.sh"
bn_tmux_session bitnet_chat_test
bn_make_tmp chat_tmux
turns_reported() { [[ $(grep -c '^chat: turn ' "$tmp/err" 2> /dev/null) -ge $1 ]]; }
stat_field() { # stat_field TURN N
    sed -nE "s/^chat: turn $1: prompt ([0-9]+) tokens \(([0-9]+) cached, ([0-9]+) prefilled.*stopped: ([a-z]+)$/\\$2/p" "$tmp/err"
}

m=$tmp/long.gguf
bn_synth "$m" --seed 9 --ctx 32768
letters=""
for id in $(seq 64 89); do letters+=" --logit-bias $id=30"; done
answering() { [[ $(last_line) =~ ^[a-z]+$ ]]; }

# Answers are unlimited (-n -1; greedy letters, no stop string can occur): each one runs until
# Ctrl-C. The scalar kernels keep generation slow enough that the context cannot fill first.
cat > "$tmp/run.sh" <<END_OF_SCRIPT
#!/usr/bin/env bash
"$bin" chat -m "$m" -c 32768 -n -1 --temp 0 -t 1 --isa scalar $letters 2> "$tmp/err"
echo "exit status \$?" > "$tmp/status"
END_OF_SCRIPT
chmod +x "$tmp/run.sh"

tm -f /dev/null new-session -d -s "$session" -x 160 -y 40 "$tmp/run.sh"
wait_for "the first prompt" at_prompt

messages=("hello there" "second message" "third")
for t in 1 2 3; do
    if [[ $t == 3 ]]; then
        # Ctrl-C at the prompt only interrupts the read.
        tm send-keys -t "$session" C-c
        wait_for "the Ctrl-D hint" pane_has 'Ctrl-D exits'
        wait_for "the prompt after the hint" at_prompt
    fi
    tm send-keys -t "$session" -l "${messages[t - 1]}"
    tm send-keys -t "$session" Enter
    wait_for "answer $t to start" answering
    tm send-keys -t "$session" C-c
    wait_for "turn $t stats" turns_reported $t
    wait_for "the prompt after turn $t" at_prompt
done
for t in 1 2 3; do
    check "turn $t was stopped by Ctrl-C" test "$(stat_field $t 4)" = cancelled
done
ntail() { # tokens a turn appends after the previous answer
    echo $(( $("$bin" tokenize -m "$m" --no-bos --specials "<|eot_id|>User: " | wc -w) \
           + $("$bin" tokenize -m "$m" --no-bos -- "$1" | wc -w) \
           + $("$bin" tokenize -m "$m" --no-bos --specials "<|eot_id|>Assistant: " | wc -w) ))
}
# A cancelled answer's ids have all been run, so the cache holds the whole conversation so far.
for t in 2 3; do
    expect=$(ntail "${messages[t - 1]}")
    check "turn $t prefills only its $expect new tokens" test "$(stat_field $t 3)" = "$expect"
    check "turn $t reuses the rest from the cache" \
        test "$(stat_field $t 2)" = $(( $(stat_field $t 1) - expect ))
    check "turn $t's cache holds more than turn $((t - 1))'s prompt" \
        test "$(stat_field $t 2)" -gt "$(stat_field $((t - 1)) 1)"
done

tm send-keys -t "$session" C-d
wait_for "chat to exit" test -f "$tmp/status"
check "Ctrl-D exits with status 0" grep -q '^exit status 0$' "$tmp/status"
exit $fail
