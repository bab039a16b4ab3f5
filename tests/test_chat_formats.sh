#!/usr/bin/env bash
# test_chat_formats.sh: the chat format each kind of model file gets, in `bitnet chat` and in
# `bitnet serve`, compared byte for byte with the reference rendering (no tokenizer involved):
#   - a Falcon3-Instruct-shaped file (llama, a Falcon3 template carrying llama.cpp's marker):
#     `chat --verbose-prompt` after /load of llama.cpp's test conversation (system, user,
#     assistant, user, assistant) and one more user message prints exactly llama.cpp's built-in
#     falcon3 rendering with the generation prompt; the server's POST /apply-template returns the
#     same bytes, and /props says falcon3;
#   - the official-style Falcon3 template (eos_token, no </s>) with an Instruct name: falcon3 too,
#     with a note; a base model without a template: no template ("none": the messages' text as
#     it is), a note printed once (chat) or logged once (serve), never the 2B-4T format;
#   - a file with the 2B-4T template keeps the bitnet format without a note; --chat-format
#     overrides the choice everywhere.
source "$(dirname "${BASH_SOURCE[0]}")/support/common.sh"
bn_require_python json
bn_make_tmp chat_formats

# llama.cpp's test conversation (tests/test-chat-template.cpp) and its built-in falcon3 rendering
# (src/llama-chat.cpp, LLM_CHAT_TEMPLATE_FALCON_3) with the generation prompt
cat > "$tmp/conv.json" <<'EOF'
{"messages": [{"role": "system", "content": "You are a helpful assistant"},
              {"role": "user", "content": "Hello"},
              {"role": "assistant", "content": "Hi there"},
              {"role": "user", "content": "Who are you"},
              {"role": "assistant", "content": "   I am an assistant   "}]}
EOF
printf '<|system|>\nYou are a helpful assistant\n<|user|>\nHello\n<|assistant|>\nHi there\n<|user|>\nWho are you\n<|assistant|>\n   I am an assistant   \n<|user|>\nAnother question\n<|assistant|>\n' \
    > "$tmp/falcon3.expected"
# the same conversation as plain completion: the texts joined, nothing around them
printf 'You are a helpful assistantHelloHi thereWho are you   I am an assistant   Another question' > "$tmp/none.expected"

bn_synth "$tmp/falcon3.gguf" --arch llama --chat-template falcon3 --name Falcon3-Tiny-Instruct
cat > "$tmp/falcon3-official.jinja" <<'EOF'
{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}
EOF
bn_synth "$tmp/falcon3-official.gguf" --arch llama --chat-template-file "$tmp/falcon3-official.jinja" \
    --name Falcon3-1B-Instruct-1.58bit
bn_synth "$tmp/base.gguf" --arch llama --name Falcon3-1B-Base-1.58bit
bn_synth "$tmp/base-b158.gguf" --chat-template none
bn_synth "$tmp/b2b4t.gguf"

prompt_text() { # prompt_text ERRFILE OUT: the bytes `chat --verbose-prompt` printed for turn 1
    "$py" - "$1" "$2" <<'EOF'
import re, sys
err = open(sys.argv[1], 'rb').read()
m = re.search(rb'chat: turn 1: prompt text, (\d+) bytes:\n', err)
text = err[m.end():m.end() + int(m.group(1))] if m else b'(no prompt text printed)'
open(sys.argv[2], 'wb').write(text)
EOF
}
chat() { # chat MODEL NAME [OPTIONS]: /load the conversation, ask one more question; NAME.err/.text
    local m=$1 name=$2
    shift 2
    printf '/load %s\nAnother question\n' "$tmp/conv.json" |
        "$bin" chat -m "$m" --verbose-prompt -n 2 --temp 0 -t 1 "$@" > "$tmp/$name.out" 2> "$tmp/$name.err"
    local rc=$?
    prompt_text "$tmp/$name.err" "$tmp/$name.text"
    return $rc
}
diff_bytes() { cmp -s "$1" "$2" || { echo "  expected:"; od -c "$1" | head -12; echo "  got:"; od -c "$2" | head -12; return 1; }; }
count() { grep -c -- "$2" "$1"; }

# ---- bitnet chat ----
chat "$tmp/falcon3.gguf" falcon3
check "falcon3 file: chat exits 0" test $? -eq 0
check "falcon3 file: chat format falcon3" grep -q "chat format falcon3" "$tmp/falcon3.err"
check "falcon3 file: the template decided (no note)" test "$(count "$tmp/falcon3.err" note:)" -eq 0
check "falcon3 file: the prompt is llama.cpp's falcon3 rendering, byte for byte" \
    diff_bytes "$tmp/falcon3.expected" "$tmp/falcon3.text"

chat "$tmp/falcon3-official.gguf" official
check "official-style Falcon3 template + Instruct name: falcon3" grep -q "chat format falcon3" "$tmp/official.err"
check "  with a note saying why" grep -q "^bitnet chat: note: the file's chat template is not one bitnet-c knows; the model is an Instruct model" "$tmp/official.err"
check "  the same bytes" diff_bytes "$tmp/falcon3.expected" "$tmp/official.text"

for m in base base-b158; do
    chat "$tmp/$m.gguf" "$m"
    check "$m: no template and not Instruct: chat format none" grep -q "chat format none" "$tmp/$m.err"
    check "$m: the note, once" test "$(count "$tmp/$m.err" "note: no chat template in the file: plain completion")" -eq 1
    check "$m: plain completion: the texts joined, nothing else" diff_bytes "$tmp/none.expected" "$tmp/$m.text"
    check "$m: not the 2B-4T format" bash -c "! grep -q 'Assistant: ' '$tmp/$m.text'"
done

chat "$tmp/b2b4t.gguf" b2b4t
check "2B-4T template: chat format bitnet, no note" \
    bash -c "grep -q 'chat format bitnet' '$tmp/b2b4t.err' && ! grep -q note: '$tmp/b2b4t.err'"
check "2B-4T template: its rendering" grep -q "System: You are a helpful assistant<|eot_id|>User: Hello<|eot_id|>Assistant: Hi there" "$tmp/b2b4t.text"

chat "$tmp/base.gguf" override --chat-format falcon3
check "--chat-format falcon3 on a base file: that format, no note" \
    bash -c "grep -q 'chat format falcon3' '$tmp/override.err' && ! grep -q note: '$tmp/override.err'"
check "--chat-format falcon3: the same bytes" diff_bytes "$tmp/falcon3.expected" "$tmp/override.text"
chat "$tmp/falcon3.gguf" forced-none --chat-format none
check "--chat-format none on the falcon3 file: plain completion" diff_bytes "$tmp/none.expected" "$tmp/forced-none.text"

"$bin" chat --help > "$tmp/help.txt"
check "chat --help names the formats" grep -q "chatml, falcon3, plain, none" "$tmp/help.txt"
check "chat --help describes --verbose-prompt" grep -q -- "--verbose-prompt" "$tmp/help.txt"

# ---- bitnet serve: POST /apply-template, /props, the log's note ----
"$py" - "$bin" "$tmp" <<'EOF'
import json, re, subprocess, sys, time, urllib.error, urllib.request
bin_, tmp = sys.argv[1], sys.argv[2]
expected = {'falcon3': open(tmp + '/falcon3.expected', 'rb').read(), 'none': open(tmp + '/none.expected', 'rb').read()}
conv = json.load(open(tmp + '/conv.json'))['messages'] + [{'role': 'user', 'content': 'Another question'}]
failed = 0

def check(ok, what, detail=''):
    global failed
    print(('ok: ' if ok else 'FAIL: ') + what + ('' if ok else '  ' + str(detail)[:600]))
    failed += 0 if ok else 1

def post(base, path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {'Content-Type': 'application/json'})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

def serve(model, *args):
    log = open('%s/serve-%s.log' % (tmp, model), 'w+')
    proc = subprocess.Popen([bin_, 'serve', '-m', '%s/%s.gguf' % (tmp, model), '--port', '0', '-t', '1', *args],
                            stdout=log, stderr=subprocess.STDOUT)
    base = None
    for _ in range(600):
        log.seek(0)
        m = re.search(r'ready on (http://\S+)', log.read())
        if m:
            base = m.group(1)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    return proc, base, log

for model, args, fmt, note in [('falcon3', (), 'falcon3', False), ('base', (), 'none', True),
                               ('base', ('--chat-format', 'falcon3'), 'falcon3', False)]:
    what = '%s%s' % (model, ' ' + ' '.join(args) if args else '')
    proc, base, log = serve(model, *args)
    check(base is not None, 'serve %s starts' % what)
    if base is None:
        proc.kill()
        continue
    status, body = post(base, '/apply-template', {'messages': conv})
    got = body.get('prompt', '').encode() if status == 200 else b''
    check(status == 200 and got == expected[fmt], 'serve %s: /apply-template is the %s rendering, byte for byte' % (what, fmt),
          (status, body))
    status, body = post(base, '/apply-template', {'model': 'nosuch', 'messages': conv})
    check(status == 404 and body['error']['param'] == 'model', 'serve %s: /apply-template for another model: 404' % what, body)
    status, body = post(base, '/apply-template', {'messages': [{'role': 'bot', 'content': 'x'}]})
    check(status == 400 and 'messages[0].role' in json.dumps(body), 'serve %s: a bad role: 400 naming it' % what, body)
    with urllib.request.urlopen(base + '/props', timeout=30) as r:
        props = json.loads(r.read())
    check(props['chat_format'] == fmt, 'serve %s: /props chat_format %s' % (what, fmt), props['chat_format'])
    proc.terminate()
    proc.wait(timeout=60)
    log.seek(0)
    text = log.read()
    n = text.count('no chat template in the file: plain completion')
    check(n == (1 if note else 0), 'serve %s: the plain-completion note logged %s' % (what, 'once' if note else 'never'), n)
sys.exit(1 if failed else 0)
EOF
check "serve: /apply-template, /props and the log (above)" test $? -eq 0

exit $fail
