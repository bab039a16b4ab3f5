#!/usr/bin/env bash
# test_cli_options.sh: the one option layer (src/cli/option_parser.c, cli_options.c) as a user
# coming from llama.cpp meets it:
#   - spellings: --opt=value, -n3, --, multi-letter short options (-ngl 99 -fa -ctk q8_0 -cnv),
#     llama.cpp's aliases (--n-predict, -s, -l ID+BIAS, -r, --chat-template, -np, -a), options with
#     no meaning here accepted with a one-line note; an unknown option names the nearest one;
#   - every command's --help lists the common (and sampling) options in the same words, and the
#     same defaults (-t, -m) hold everywhere: BITNET_MODEL names the model when -m is absent;
#   - run: -f FILE, -f -, piped stdin, -e escapes, --ignore-eos, the -c warning, the -t cap, -cnv;
#   - progress: one line per long stage when stderr is not a terminal, none with --no-progress;
#   - bench: comma lists and llama-bench ranges, -o md|csv|json|jsonl, rows printed as they finish;
#   - `bitnet completion bash|zsh`: the scripts complete commands, options and option values.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_make_tmp cli_options
eq() { [[ "$1" == "$2" ]] || { echo "  got:      $1"; echo "  expected: $2"; return 1; }; }
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in $1:"; head -5 "$1"; return 1; }; }
hasnt() { ! grep -q -- "$2" "$1" || { echo "  '$2' in $1"; return 1; }; }
m=$src/models/kjv-bitnet.gguf
[[ -f $m ]] || { echo "FAIL: $m missing"; exit 1; }
gen() { "$bin" run -m "$m" --temp 0 -t 1 "$@" 2> "$tmp/gen.err"; } # greedy text on stdout

# ---- spellings ----
base=$(gen -p "And God said" -n 6)
check "--n-predict=6 is -n 6" eq "$(gen -p "And God said" --n-predict=6)" "$base"
check "-n6 is -n 6" eq "$(gen -p "And God said" -n6)" "$base"
check "--prompt=TEXT" eq "$(gen --prompt="And God said" -n 6)" "$base"
check "--predict (llama.cpp) is -n" eq "$(gen -p "And God said" --predict 6)" "$base"
ids=$("$bin" tokenize -m "$m" --no-bos -- "-x")
check "-- ends the options (tokenize -- -x)" test -n "$ids"
"$bin" tokenize -m "$m" -x > /dev/null 2> "$tmp/x.err"
check "without --, -x is an unknown option (exit 2)" test $? -eq 2
check "detokenize: a negative id is an argument" bash -c "! \"$bin\" detokenize -m \"$m\" -5 2>&1 | grep -q 'unknown option'"

# A llama-cli command line with options that mean nothing here: each gets a one-line note.
gen -p "And God said" -n 6 -ngl 99 -fa -ctk q4_0 -ctv q4_0 --mlock --no-mmap -tb 1 -b 64 -ub 64 > "$tmp/llama.out"
check "llama.cpp command line: exit 0" test $? -eq 0
check "llama.cpp command line: same text" eq "$(cat "$tmp/llama.out")" "$base"
for o in -ngl -fa -ctk -ctv --mlock --no-mmap -tb; do
    check "$o: a one-line note" has "$tmp/gen.err" "note: $o"
done
gen -p "And God said" -n 6 -fa on > /dev/null
check "-fa on (a value from the set) is taken" has "$tmp/gen.err" "note: -fa"
check "-ctk f32: an f32 KV cache, same greedy text" eq "$(gen -p "And God said" -n 6 -ctk f32)" "$base"
check "-ctk q8_0 -ctv q8_0: a q8_0 KV cache, same greedy text" eq "$(gen -p "And God said" -n 6 -ctk q8_0 -ctv q8_0)" "$base"
check "-ctk q8_0: taken without a note" bash -c "! grep -q 'note: -ctk' \"$tmp/gen.err\""
gen -p "And God said" -n 2 -ctk q9 > /dev/null
check "-ctk q9: a usage error (2)" test $? -eq 2
check "-s is --seed" eq "$("$bin" run -m "$m" -p x -n 4 -s 7 2>/dev/null)" "$("$bin" run -m "$m" -p x -n 4 --seed 7 2>/dev/null)"
first=$("$bin" run -m "$m" -p "And God said" -n 1 --temp 0 --no-echo 2> /dev/null)
first_id=$("$bin" tokenize -m "$m" --no-bos -- "$first" | awk '{print $1}')
banned=$(gen -p "And God said" -n 1 --no-echo -l "${first_id}-inf")
check "-l ID-inf (llama.cpp's form) bans the token" test "$banned" != "$first"
check "-r is a stop string" eq "$(gen -p "And God said" -n 40 -r "," --no-echo | tr -d '\n')" \
    "$(gen -p "And God said" -n 40 --stop "," --no-echo | tr -d '\n')"

"$bin" run --n-predcit 3 > /dev/null 2> "$tmp/typo.err"
check "a typo: exit 2" test $? -eq 2
check "a typo: the nearest name" has "$tmp/typo.err" "unknown option '--n-predcit' (did you mean --n-predict?)"
"$bin" run -temp 0 > /dev/null 2> "$tmp/typo.err"
check "-temp is not -t with 'emp': the nearest name" has "$tmp/typo.err" "did you mean --temp?"
"$bin" run --ignore-eos=yes > /dev/null 2> "$tmp/flag.err"
check "a flag with =value: exit 2" test $? -eq 2
check "a flag with =value: says so" has "$tmp/flag.err" "takes no value"
"$bin" run -n > /dev/null 2> "$tmp/missing.err"
check "a missing value: names the option" has "$tmp/missing.err" "option -n needs a value"
"$bin" serve -m "$tmp/none.gguf" --port=0 > /dev/null 2> "$tmp/serve.err"
check "serve --port=0 parses (the error is the missing model: exit 1)" test $? -eq 1
check "serve: names the missing file" has "$tmp/serve.err" "none.gguf"
"$bin" serve -m "$tmp/none.gguf" -np 2 -a name -cb --metrics -to 30 > /dev/null 2> "$tmp/serve2.err"
check "llama-server spellings parse (-np -a -cb --metrics -to)" test $? -eq 1
check "llama-server -cb: a note" has "$tmp/serve2.err" "note: -cb"

# ---- the same common options, in the same words, in every --help ----
"$bin" run --help > "$tmp/run.help"
section() { awk -v h="$2:" '$0 == h {on = 1; next} /^[a-z].*:$/ || /^$/ {on = 0} on' "$1"; }
section "$tmp/run.help" "common options" > "$tmp/common.ref"
section "$tmp/run.help" "sampling options" > "$tmp/sampling.ref"
check "run --help has the common options" test "$(wc -l < "$tmp/common.ref")" -gt 20
for cmd in chat perplexity crossval serve eval bench tokenize detokenize inspect; do
    "$bin" $cmd --help > "$tmp/$cmd.help"
    check "$cmd --help exits 0" test $? -eq 0
    section "$tmp/$cmd.help" "common options" > "$tmp/$cmd.common"
    check "$cmd --help lists common options" test -s "$tmp/$cmd.common"
    # every line of its common section is a line of run's, in run's order
    check "$cmd: the common options in the same words" bash -c "diff <(grep -Fxf '$tmp/$cmd.common' '$tmp/common.ref') '$tmp/$cmd.common'"
    check "$cmd: -m in the same words" grep -qF -- "-m, --model FILE       GGUF model (default: BITNET_MODEL" "$tmp/$cmd.common"
done
section "$tmp/chat.help" "sampling options" > "$tmp/chat.sampling"
check "chat: the sampling options in run's words" diff "$tmp/chat.sampling" "$tmp/sampling.ref"
for cmd in run chat perplexity crossval serve eval; do
    check "$cmd: -t, -c in the same words" bash -c "grep -qF -- '-t, --threads N        threads (default: online CPUs, at most 8' '$tmp/$cmd.help' && grep -qF -- '-c, --ctx-size N' '$tmp/$cmd.help'"
done

# -m defaults to BITNET_MODEL everywhere.
other=$tmp/other.gguf
bn_synth "$other" --seed 5
BITNET_MODEL=$other "$bin" run -p x -n 1 > /dev/null 2> "$tmp/env.err"
check "run: BITNET_MODEL names the model" has "$tmp/env.err" "model: $other"
BITNET_MODEL=$other "$bin" eval --tokens 1,2 --logits-out "$tmp/l.f32" 2> /dev/null
check "eval: BITNET_MODEL (no -m needed)" test -s "$tmp/l.f32"
check "eval: -t defaults to all CPUs, the logits are the same as with -t 1" bash -c \
    "\"$bin\" eval -m '$other' --tokens 1,2 --logits-out '$tmp/l1.f32' -t 1 && cmp '$tmp/l.f32' '$tmp/l1.f32'"
"$bin" eval -m "$other" --tokens 1,2 --logits-out "$tmp/l2.f32" -c 8 --ctx 8 2> /dev/null
check "eval: -c (and the old --ctx)" test -s "$tmp/l2.f32"
"$bin" crossval -m "$other" -p x --against cpu --help > /dev/null
check "crossval takes -p" test $? -eq 0

check "tokenize -p (llama-tokenize's spelling)" eq "$("$bin" tokenize -m "$m" -p "In the beginning" --ids)" "$("$bin" tokenize -m "$m" "In the beginning")"
head -c 20000 "$src/training/data/kjv.txt" > "$tmp/ppl.txt" 2> /dev/null || $py -c "print('In the beginning God created the heaven and the earth. ' * 400)" > "$tmp/ppl.txt"
"$bin" perplexity -m "$m" -f "$tmp/ppl.txt" -c 64 --chunks 2 --json > "$tmp/ppl.json" 2> /dev/null
check "perplexity --chunks 2: two windows" bash -c "$py -c 'import json; r = json.load(open(\"$tmp/ppl.json\")); assert r[\"n_windows\"] == 2, r'"

# ---- run ----
printf 'And God said\n' > "$tmp/prompt.txt"
check "-f FILE (one trailing newline dropped)" eq "$(gen -f "$tmp/prompt.txt" -n 6)" "$base"
check "-f - reads stdin" eq "$(gen -f - -n 6 < "$tmp/prompt.txt")" "$base"
check "piped stdin is the prompt" eq "$(echo "And God said" | gen -n 6)" "$base"
check "stdin from /dev/null: the default prompt" bash -c "\"$bin\" run -m '$m' -n 1 < /dev/null 2>/dev/null | grep -q '^In the beginning'"
check "-p wins over piped stdin" eq "$(echo "nothing" | gen -p "And God said" -n 6)" "$base"
gen -p "a" -f "$tmp/prompt.txt" > /dev/null
check "-p and -f together: an error" test $? -ne 0
check "-e: \\n in the prompt is a newline" eq "$(gen -p 'And\nGod' -e -n 0 | head -2 | tail -1)" "God"
check "without -e: \\n stays" eq "$(gen -p 'And\nGod' -n 0 | head -1)" 'And\nGod'
check "-e: \\x41 is A" eq "$(gen -p '\x41nd' -e -n 0 | head -1)" "And"
# --ignore-eos: bias the end-of-text token up so greedy decoding picks it at once.
eos=$("$bin" inspect "$m" | sed -n 's/.*tokenizer.ggml.eos_token_id: uint32 //p')
if [[ -n $eos ]]; then
    gen -p "And God said" -n 5 --logit-bias "$eos=100" > /dev/null
    check "eos forced: stops at once" has "$tmp/gen.err" "stopped: eog"
    gen -p "And God said" -n 5 --logit-bias "$eos=100" --ignore-eos > /dev/null
    check "--ignore-eos: goes on to -n" bash -c "grep -q 'generation: 5 tokens' '$tmp/gen.err' && grep -q 'stopped: length' '$tmp/gen.err'"
else
    echo "FAIL: no eos id from inspect --json"; fail=1
fi
gen -p x -n 1 -c 100000 > /dev/null
check "-c above the training context: a warning" has "$tmp/gen.err" "warning: -c 100000 is more than the model's training context (256)"
"$bin" run -m "$m" -p x -n 1 -t 100000 > /dev/null 2> "$tmp/t.err"
check "-t past 1024: exit 2" test $? -eq 2
"$bin" run -m "$m" -p x -n 1 -t 1000 > /dev/null 2> "$tmp/t.err"
check "-t 1000: capped at the CPUs with a note" has "$tmp/t.err" "note: -t 1000 is more than the $(nproc) online CPUs; using $(nproc) threads"
printf 'hello\n' | "$bin" run -m "$m" -cnv -p "You answer" -n 3 --temp 0 > "$tmp/cnv.out" 2> "$tmp/cnv.err"
check "run -cnv is chat (-p the system message)" has "$tmp/cnv.err" "chat: turn 1"

# ---- progress ----
big=$tmp/big.gguf
"$bin" synth "$big" --preset small --layers 24 --dim 1536 --ffn 4096 --heads 8 --kv-heads 8 2> "$tmp/synth.err"
if grep -q "synth: writing: done in" "$tmp/synth.err"; then
    check "synth: one line for the stage (stderr not a terminal)" test "$(grep -c 'bitnet synth' "$tmp/synth.err")" -eq 1
else
    echo "note: this synth took under a second here; no stage line expected"
fi
check "synth: no carriage returns without a terminal" bash -c "! grep -q $'\r' '$tmp/synth.err'"
"$bin" synth "$tmp/big2.gguf" --preset small --layers 24 --dim 1536 --ffn 4096 --heads 8 --kv-heads 8 --no-progress 2> "$tmp/synth2.err"
check "synth --no-progress: nothing on stderr" test ! -s "$tmp/synth2.err"
if command -v script > /dev/null; then
    # a terminal on stderr: the line is redrawn in place (carriage returns), then ends with "done"
    script -qfec "\"$bin\" synth '$tmp/big3.gguf' --preset small --layers 24 --dim 1024 --ffn 4096 --heads 8 --kv-heads 8" /dev/null > "$tmp/tty.out" 2>&1
    if grep -q "done in" "$tmp/tty.out"; then
        check "synth on a terminal: a live line" bash -c "grep -q $'\r' '$tmp/tty.out' && grep -q 'writing: .*tensors' '$tmp/tty.out'"
    else
        echo "note: the terminal synth took under half a second; no live line expected"
    fi
fi

# ---- bench: lists, ranges, formats ----
tiny=$tmp/tiny.gguf
bn_synth "$tiny"
b() { "$bin" bench -m "$tiny" -r 1 --no-bandwidth --no-progress "$@"; }
b -p 8,16 -n 0 -t 1 -o csv > "$tmp/b.csv" 2> "$tmp/b.err"
check "bench -o csv: exit 0" test $? -eq 0
check "bench -o csv: header + 2 rows" test "$(wc -l < "$tmp/b.csv")" -eq 3
check "bench -o csv: llama-bench's columns" has "$tmp/b.csv" "n_prompt,n_gen,test_time"
b -p 8-32*2 -n 4 -t 1 -o jsonl > "$tmp/b.jsonl" 2> /dev/null
check "bench: a range 8-32*2 and -n: 4 rows of JSON lines" bash -c "$py -c '
import json,sys
rows=[json.loads(l) for l in open(\"$tmp/b.jsonl\")]
assert [(r[\"n_prompt\"], r[\"n_gen\"]) for r in rows] == [(8,0),(16,0),(32,0),(0,4)], rows
assert all(r[\"avg_ts\"] > 0 and len(r[\"samples_ts\"]) == 1 for r in rows)
'"
b -p 8 -n 0 -t 1,2 -b 4,8 -o json > "$tmp/b.json" 2> /dev/null
check "bench -o json: one array, 4 rows (-t 1,2 x -b 4,8)" bash -c "$py -c '
import json
rows=json.load(open(\"$tmp/b.json\"))
assert [(r[\"n_threads\"], r[\"n_batch\"]) for r in rows] == [(1,4),(1,8),(2,4),(2,8)], rows
'"
b -p 8 -n 0 -t 1 -b 4,8 > "$tmp/b.md" 2> /dev/null
check "bench md with -b: an n_batch column" has "$tmp/b.md" "| threads | n_batch | test |"
b -p 8 -n 4 -t 1 > "$tmp/b1.md" 2> /dev/null
check "bench md without -b: the usual columns" has "$tmp/b1.md" "| model | size | params | backend | threads | test | t/s |"
b -p 8,16 --json "$tmp/r.json" > /dev/null 2> "$tmp/bj.err"
check "bench --json with a list: exit 2" test $? -eq 2
check "bench --json with a list: says why" has "$tmp/bj.err" "needs one value for each of"
b -p 8 -n 0 -t 1 -fa 0,1 -mmp 0 --progress -ngl 99 -o csv > "$tmp/bl.csv" 2> "$tmp/bl.err"
check "a llama-bench command line (-fa 0,1 -mmp 0 --progress -ngl 99): exit 0" test $? -eq 0
check "llama-bench options: notes" bash -c "grep -q 'note: -fa' '$tmp/bl.err' && grep -q 'note: -mmp' '$tmp/bl.err'"
b -p 1-4+0 > /dev/null 2> "$tmp/bad.err"
check "bench: a bad range is a usage error" test $? -eq 2
# rows come out as their tests finish: the first row is there while a slow test still runs
$py - "$bin" "$tiny" <<'EOF'
import subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "bench", "-m", sys.argv[2], "-r", "1", "--no-bandwidth", "--no-progress", "-t", "1",
                      "--isa", "scalar", "-o", "jsonl", "-p", "4", "-n", "2000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
line = p.stdout.readline()
running = p.poll() is None
rest = p.stdout.read()
p.wait()
ok = b'"n_prompt":4' in line and running and b'"n_gen":2000' in rest
print("ok: bench streams rows (pp4 row read while tg2000 still ran)" if ok else "FAIL: bench streams rows: %r %r" % (line, running))
sys.exit(0 if ok else 1)
EOF
[[ $? -eq 0 ]] && passed=$((passed + 1)) || { fail=1; failed=$((failed + 1)); }

# ---- shell completion ----
"$bin" completion bash > "$tmp/c.bash"
check "completion bash: valid bash" bash -n "$tmp/c.bash"
complete_words() { bash -c "source '$tmp/c.bash'; COMP_WORDS=($1); COMP_CWORD=$2; _bitnet; echo \"\${COMPREPLY[*]}\""; }
check "bash: commands" eq "$(complete_words 'bitnet be' 1)" "bench"
check "bash: a run option" eq "$(complete_words 'bitnet run --n-pr' 2)" "--n-predict"
check "bash: a multi-letter short option" eq "$(complete_words 'bitnet run -ng' 2)" "-ngl"
check "bash: values of --isa" eq "$(complete_words 'bitnet run --isa ""' 3)" "scalar avx2 avx512 neon neondot"
check "bash: bench -o values" eq "$(complete_words 'bitnet bench -o ""' 3)" "md csv json jsonl"
check "bash: serve's own option" eq "$(complete_words 'bitnet serve --max-cl' 2)" "--max-client-connections"
"$bin" completion zsh > "$tmp/c.zsh"
if command -v zsh > /dev/null; then
    check "completion zsh: valid zsh" zsh -n "$tmp/c.zsh"
    mkdir -p "$tmp/zfunc" && cp "$tmp/c.zsh" "$tmp/zfunc/_bitnet"
    check "zsh: compinit loads _bitnet for bitnet" bash -c "zsh -fc 'fpath=($tmp/zfunc \$fpath); autoload -U compinit; compinit -u -d $tmp/zcompdump; [[ \${_comps[bitnet]} == _bitnet ]]'"
else
    echo "FAIL: zsh is not installed (bitnet.sh installs it)"; fail=1
fi
check "zsh: every option of run listed" bash -c "for o in --n-predict -ngl --ctx-size --ignore-eos --escape; do grep -q \"'\$o\" '$tmp/c.zsh' || exit 1; done"
"$bin" completion fish > /dev/null 2>&1
check "completion fish: a usage error" test $? -eq 2

echo "$passed passed, $failed failed"
exit $fail
