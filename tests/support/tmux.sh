# tests/support/tmux.sh: what the terminal tests share (a detached tmux session on a private tmux
# server drives `bitnet chat` as a person would), sourced after common.sh:
#   - bn_tmux_session NAME: $session, tm (tmux on the private server), its cleanup at exit;
#   - wait_for DESCRIPTION COMMAND...: polls until COMMAND succeeds, at most $wait_seconds
#     (default 120); on timeout prints the pane and $tmp/err and fails the test;
#   - pane_has TEXT, last_line (the last non-empty line of the pane), at_prompt ("> ").
bn_tmux_session() {
    session=$1_$$
    bn_on_exit() { tm kill-server 2> /dev/null; }
}
tm() { tmux -L "$session" "$@"; }
wait_for() {
    local what=$1; shift
    for _ in $(seq 1 $(( ${wait_seconds:-120} * 10 ))); do
        "$@" && return 0
        sleep 0.1
    done
    echo "FAIL: timed out waiting for $what"
    echo "--- pane:"; tm capture-pane -p -t "$session" 2> /dev/null
    echo "--- stderr:"; cat "$tmp/err" 2> /dev/null
    exit 1
}
pane_has() { tm capture-pane -p -t "$session" | grep -qF -- "$1"; }
last_line() { tm capture-pane -p -t "$session" | grep -v '^[[:space:]]*$' | tail -1; }
at_prompt() { [[ $(last_line) =~ ^\>[[:space:]]*$ ]]; }
