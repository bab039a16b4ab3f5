#!/usr/bin/env bash
# test_perplexity.sh: `bitnet perplexity` follows llama.cpp's protocol, checked by a hand
# computation from `bitnet eval` logits on a tiny case (synthetic model, windows of 16 tokens):
#   - the file is tokenized with BOS (`bitnet tokenize`, as llama.cpp does), cut into 16-token windows
#     (the tail is dropped), each window's first token replaced by BOS and run as its own
#     sequence; positions 8..14 predict tokens 9..15; PPL = exp(mean NLL), error =
#     PPL * sqrt((mean(NLL^2) - mean(NLL)^2) / (count - 1)): numpy recomputes both;
#   - the result is finite, identical for another batch size and thread count (batch invariance);
#   - progress per window on stderr; a text shorter than one window and a missing -f are errors.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_require_python numpy
bn_make_tmp perplexity

m=$tmp/tiny.gguf
bn_synth "$m" --seed 21
# No trailing newline, so "$(cat)" below is the file's exact text.
printf 'In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void; and darkness was upon the face of the deep.' > "$tmp/text.txt"
ctx=16

"$bin" perplexity -m "$m" -f "$tmp/text.txt" -c $ctx -t 1 --json > "$tmp/ppl.json" 2> "$tmp/ppl.err"
check "perplexity exits 0" test $? -eq 0
check "progress per window on stderr" grep -Eq '^\[1/[0-9]+\] ppl [0-9.]+' "$tmp/ppl.err"
"$bin" perplexity -m "$m" -f "$tmp/text.txt" -c $ctx -t 2 -b 5 --json > "$tmp/ppl_b5.json" 2> /dev/null
check "batch 5 and 2 threads give the same result" cmp -s "$tmp/ppl.json" "$tmp/ppl_b5.json"
"$bin" perplexity -m "$m" -f "$tmp/text.txt" -c $ctx -t 1 > "$tmp/ppl.txt" 2> /dev/null
check "plain output has the estimate and its error" grep -Eq '^Final estimate: PPL = [0-9.]+ \+/- [0-9.]+' "$tmp/ppl.txt"

"$bin" tokenize -m "$m" --json -- "$(cat "$tmp/text.txt")" > "$tmp/ids.json"
bos=$("$bin" tokenize -m "$m" --specials --no-bos "<|begin_of_text|>")
nwin=$($py -c "import json; print(len(json.load(open('$tmp/ids.json'))) // $ctx)")
check "the text makes at least 3 windows" test "$nwin" -ge 3
for ((w = 0; w < nwin; w++)); do
    ids=$($py -c "
import json
ids = json.load(open('$tmp/ids.json'))[$w * $ctx:($w + 1) * $ctx]
ids[0] = $bos
print(','.join(map(str, ids)))")
    "$bin" eval -m "$m" --tokens "$ids" --logits-out "$tmp/win$w.f32" -t 1 || fail=1
done

$py - "$tmp" "$ctx" "$nwin" "$bos" <<'EOF' || fail=1
import json, math, sys
import numpy as np
tmp, ctx, nwin, bos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ids = json.load(open(f"{tmp}/ids.json"))
got = json.load(open(f"{tmp}/ppl.json"))
nll = []
for w in range(nwin):
    window = ids[w * ctx:(w + 1) * ctx]
    logits = np.fromfile(f"{tmp}/win{w}.f32", dtype="<f4").reshape(ctx, -1).astype(np.float64)
    for pos in range(ctx // 2, ctx - 1):
        row = logits[pos]
        m = row.max()
        lse = m + math.log(np.exp(row - m).sum())
        nll.append(lse - row[window[pos + 1]])
nll = np.array(nll)
ppl = math.exp(nll.mean())
var = (nll ** 2).mean() - nll.mean() ** 2
err = math.sqrt(var / (len(nll) - 1)) * ppl
ok = True
def check(what, cond):
    global ok
    print(("ok: " if cond else "FAIL: ") + what)
    ok &= bool(cond)
check(f"{len(nll)} tokens scored ({nwin} windows x {ctx - 1 - ctx // 2})", got["n_scored"] == len(nll))
check("windows counted", got["n_windows"] == nwin)
check(f"ppl finite and > 1 ({got['ppl']})", math.isfinite(got["ppl"]) and got["ppl"] > 1)
check(f"ppl {got['ppl']} matches the hand computation {ppl}", abs(got["ppl"] - ppl) <= 1e-6 * ppl)
check(f"error {got['ppl_error']} matches {err}", abs(got["ppl_error"] - err) <= 1e-5 * err)
check("mean NLL matches", abs(got["mean_nll"] - nll.mean()) <= 1e-7)
sys.exit(0 if ok else 1)
EOF

printf 'short' > "$tmp/short.txt"
"$bin" perplexity -m "$m" -f "$tmp/short.txt" -c $ctx > /dev/null 2> "$tmp/short.err"
check "a text shorter than one window exits 1" test $? -eq 1
check "and says so" grep -q "fewer than one window of $ctx" "$tmp/short.err"
"$bin" perplexity -m "$m" > /dev/null 2> "$tmp/usage.err"
check "missing -f exits 2" test $? -eq 2
"$bin" perplexity -m "$m" -f "$tmp/text.txt" -b 0 > /dev/null 2> "$tmp/usage.err"
check "-b 0 exits 2" test $? -eq 2
"$bin" perplexity -m "$m" -f "$tmp/nonexistent.txt" > /dev/null 2> "$tmp/nofile.err"
check "a missing text file exits 1" test $? -eq 1

exit $fail
