#!/usr/bin/env bash
# test_chat_editing.sh: `bitnet chat`'s line editing and commands in a real terminal (a detached
# tmux session), as a person types:
#   - libedit: the Up arrow recalls the previous line, which Enter sends again; the history is
#     saved to $XDG_STATE_HOME/bitnet/chat_history and a new chat session recalls it;
#   - /help lists the commands and is not sent to the model (no turn);
#   - /clear empties the KV cache: the next turn reports 0 cached tokens;
#   - a line ending in a backslash continues on the next line ("... " prompt): one message;
#   - /save FILE writes the conversation as JSON, /load FILE continues it; /system TEXT;
#   - /exit leaves with status 0.
# Skipped (77) when tmux is missing or the build has no libedit.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
command -v tmux > /dev/null || { echo "skip: tmux not installed"; exit 77; }
if [[ -f ${BITNET_BUILD_DIR:-/nonexistent}/CMakeCache.txt ]] &&
    ! grep -q '^EDIT_FOUND:INTERNAL=1' "$BITNET_BUILD_DIR/CMakeCache.txt"; then
    echo "skip: this build has no libedit (install libedit-dev)"; exit 77
fi
source "$(dirname "${BASH_SOURCE[0]}")/support/tmux.sh"
bn_tmux_session bitnet_chat_edit
bn_make_tmp chat_editing
wait_seconds=60
m=$src/models/kjv-bitnet.gguf
export XDG_STATE_HOME=$tmp/state

turns() { grep -c '^chat: turn ' "$tmp/err" 2> /dev/null || true; }
turns_are() { [[ $(turns) -eq $1 ]]; }
type_line() { tm send-keys -t "$session" -l "$1"; tm send-keys -t "$session" Enter; }

start_chat() { # start_chat STDERR_FILE
    cat > "$tmp/run.sh" << END_OF_SCRIPT
#!/usr/bin/env bash
export XDG_STATE_HOME='$XDG_STATE_HOME'
"$bin" chat -m "$m" -n 4 --temp 0 -t 1 2> "$1"
echo "exit status \$?" > "$tmp/status"
END_OF_SCRIPT
    chmod +x "$tmp/run.sh"
    rm -f "$tmp/status"
    tm -f /dev/null new-session -d -s "$session" -x 160 -y 50 "$tmp/run.sh"
    wait_for "the first prompt" at_prompt
}

start_chat "$tmp/err"
type_line "hello there"
wait_for "turn 1" turns_are 1
wait_for "the prompt after turn 1" at_prompt

# Up recalls "hello there"; Enter sends it again.
tm send-keys -t "$session" Up
wait_for "the recalled line" bash -c "tmux -L '$session' capture-pane -p -t '$session' | grep -v '^[[:space:]]*\$' | tail -1 | grep -qx '> hello there'"
tm send-keys -t "$session" Enter
wait_for "turn 2 (the recalled line)" turns_are 2
wait_for "the prompt after turn 2" at_prompt
t1=$(sed -n 's/^chat: turn 1: prompt \([0-9]*\) tokens.*/\1/p' "$tmp/err")
t2=$(sed -n 's/^chat: turn 2: prompt \([0-9]*\) tokens (\([0-9]*\) cached.*/\2/p' "$tmp/err")
check "turn 2 reused turn 1 from the cache" test "${t2:-0}" -ge "${t1:-1}"

type_line "/help"
wait_for "the /help text" pane_has "/clear  /system TEXT"
wait_for "the prompt after /help" at_prompt
check "/help is not sent to the model" test "$(turns)" -eq 2

type_line "/clear"
wait_for "the /clear answer" pane_has "KV cache emptied"
type_line "after clear"
wait_for "turn 3" turns_are 3
check "/clear: the next turn starts from an empty KV cache" grep -q '^chat: turn 3: prompt [0-9]* tokens (0 cached' "$tmp/err"
wait_for "the prompt after turn 3" at_prompt

# A trailing backslash continues the message on the next line.
tm send-keys -t "$session" -l 'first line\'
tm send-keys -t "$session" Enter
wait_for "the continuation prompt" bash -c "tmux -L '$session' capture-pane -p -t '$session' | grep -v '^[[:space:]]*\$' | tail -1 | grep -q '^\.\.\.'"
check "no turn for the first line alone" test "$(turns)" -eq 3
type_line "second line"
wait_for "turn 4 (two lines, one message)" turns_are 4
wait_for "the prompt after turn 4" at_prompt
type_line "/save $tmp/conv.json"
wait_for "the /save answer" pane_has "saved 4 messages"
check "/save: the two-line message is one message" $py -c "
import json; m = json.load(open('$tmp/conv.json'))['messages']
assert [x['role'] for x in m] == ['user', 'assistant', 'user', 'assistant'], m
assert m[2]['content'] == 'first line\nsecond line', m[2]"
type_line "/system You are terse."
wait_for "the /system answer" pane_has "system message set"
type_line "/load $tmp/conv.json"
wait_for "the /load answer" pane_has "loaded 4 messages"
type_line "/load $tmp/none.json"
wait_for "a /load error" pane_has "the conversation is unchanged"
type_line "/bogus"
wait_for "an unknown command" pane_has "unknown command /bogus"
check "commands are never sent to the model" test "$(turns)" -eq 4
type_line "/exit"
wait_for "the exit status" test -s "$tmp/status"
check "/exit exits 0" grep -qx "exit status 0" "$tmp/status"
hist=$XDG_STATE_HOME/bitnet/chat_history
check "history saved under \$XDG_STATE_HOME/bitnet" grep -q "hello" "$hist"

# A new session recalls the saved history with Up.
tm kill-server 2> /dev/null
start_chat "$tmp/err2"
tm send-keys -t "$session" Up
wait_for "history from the last session" bash -c "tmux -L '$session' capture-pane -p -t '$session' | grep -v '^[[:space:]]*\$' | tail -1 | grep -q '^> /exit'"
check "Up recalls the last session's last line" true
tm send-keys -t "$session" C-u
tm send-keys -t "$session" C-d
wait_for "the exit status (Ctrl-D)" test -s "$tmp/status"
check "Ctrl-D exits 0" grep -qx "exit status 0" "$tmp/status"

echo "$passed passed, $failed failed"
exit $fail
