#!/usr/bin/env bash
# test_tokenizer_cli.sh: `bitnet tokenize` / `bitnet detokenize` on the oracle model's vocabulary
# (tests/data/oracle-a/model.gguf: 759 tokens, BOS 756, <|eot_id|> 758): output formats, BOS and
# special-token flags, `--` before text starting with '-', invalid UTF-8 round trip, errors and
# usage errors (exit 2 with a one-line message and the usage).
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp tokenizer-cli
M="$src/tests/data/oracle-a/model.gguf"
eq() { [ "$1" = "$2" ] || { echo "  got:  $1" >&2; echo "  want: $2" >&2; return 1; }; }

# Ids as the HF-derived expectations give them ("the" with the LLaMA-3 split on this vocab).
out=$("$bin" tokenize -m "$M" "the")
check "bos first" eq "${out%% *}" "756"
nobos=$("$bin" tokenize -m "$M" --no-bos "the")
check "no-bos drops 756" eq "$out" "756 $nobos"
json=$("$bin" tokenize -m "$M" --json "the")
check "json array" eq "$json" "[756, ${nobos// /, }]"

# Special tokens: only with --specials.
sp=$("$bin" tokenize -m "$M" --no-bos --specials "<|eot_id|>")
check "specials parsed" eq "$sp" "758"
plain=$("$bin" tokenize -m "$M" --no-bos "<|eot_id|>")
check "specials not parsed by default" test "$plain" != "758"
check "plain special text is several ids" test "$(wc -w <<<"$plain")" -gt 3

# `--` lets TEXT start with '-'.
dash=$("$bin" tokenize -m "$M" --no-bos -- "-x")
check "dash text" test -n "$dash"
check "dash text round trip" eq "$("$bin" detokenize -m "$M" $dash)" "-x"

# Round trips, including invalid UTF-8 and multi-byte characters (compare bytes via od).
for text in "Hello, world!  12345" $'tab\there\nnewline' "naïve 日本語 😀" $'bad \xff\xfe bytes \xc3' "<|eot_id|>"; do
  ids=$("$bin" tokenize -m "$M" --no-bos -- "$text")
  "$bin" detokenize -m "$M" $ids > "$tmp/out"
  printf '%s\n' "$text" > "$tmp/want"
  check "round trip: $(printf '%q' "$text")" cmp -s "$tmp/out" "$tmp/want"
done

# detokenize: text of specials, --skip-special.
check "detokenize specials" eq "$("$bin" detokenize -m "$M" 756 $nobos 758)" "<|begin_of_text|>the<|eot_id|>"
check "detokenize skip special" eq "$("$bin" detokenize -m "$M" --skip-special 756 $nobos 758)" "the"

# Errors: out-of-range id (exit 1, one line naming it), missing model file.
"$bin" detokenize -m "$M" 5 759 > /dev/null 2> "$tmp/err"; rc=$?
check "range exit 1" eq "$rc" "1"
check "range message" grep -q "759" "$tmp/err"
check "range message one line" eq "$(wc -l < "$tmp/err")" "1"
"$bin" detokenize -m "$M" -1 > /dev/null 2>&1; check "negative id exit 1" eq "$?" "1"
"$bin" tokenize -m "$tmp/missing.gguf" "x" > /dev/null 2>&1; check "missing model exit 1" eq "$?" "1"

# Usage errors: exit 2, a one-line message first, then the usage.
usage_case() { # usage_case NAME ARGS...
  local name="$1"; shift
  "$bin" "$@" > /dev/null 2> "$tmp/err"; local rc=$?
  check "$name: exit 2" eq "$rc" "2"
  check "$name: message" grep -q "^bitnet .*tokenize: " "$tmp/err"
  check "$name: usage follows" grep -q "^usage: bitnet" "$tmp/err"
}
usage_case "unknown option" tokenize -m "$M" --bogus x
usage_case "no text" tokenize -m "$M"
usage_case "two texts" tokenize -m "$M" a b
usage_case "bad pre" tokenize -m "$M" --pre nope x
usage_case "missing -m value" tokenize -m
usage_case "detok bad id" detokenize -m "$M" 12x
usage_case "detok unknown option" detokenize -m "$M" --json 1
# Without -m: BITNET_MODEL (else the shipped model), as in every command that takes a model.
check "no -m: BITNET_MODEL" eq "$(BITNET_MODEL="$M" "$bin" tokenize --no-bos x)" "$("$bin" tokenize -m "$M" --no-bos x)"
check "detok no -m: BITNET_MODEL" eq "$(BITNET_MODEL="$M" "$bin" detokenize 120)" "$("$bin" detokenize -m "$M" 120)"

# --help is accurate: it documents every option the command accepts, and exits 0.
help=$("$bin" tokenize --help); check "tokenize help exit" eq "$?" "0"
for opt in -m --no-bos --specials --json --pre --; do
  check "tokenize help mentions $opt" grep -q -- " $opt" <<<"$help"
done
help=$("$bin" detokenize --help); check "detokenize help exit" eq "$?" "0"
check "detokenize help mentions --skip-special" grep -q -- "--skip-special" <<<"$help"

# --pre llamacpp-default splits punctuation first: "'The" -> ' | The (2 ids on this vocabulary),
# while the LLaMA-3 split takes the contraction "'T" and leaves "he" (3 ids).
check "llamacpp-default split" eq "$("$bin" tokenize -m "$M" --no-bos --pre llamacpp-default "'The" | wc -w)" "2"
check "llama3 split" eq "$("$bin" tokenize -m "$M" --no-bos "'The" | wc -w)" "3"

echo "$passed passed, $failed failed"
[ "$fail" -eq 0 ]
