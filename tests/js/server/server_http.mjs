// server_http.mjs: end-to-end tests of `bitnet serve` over real HTTP on 127.0.0.1 (driven by
// tests/test_server_http.sh). Env: BITNET_BIN, MODEL (a synthetic tiny model), OPENAPI_JSON
// (docs/openapi.yaml converted to JSON, optional), TMP (scratch dir).
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { check, finish, metricValue, parseSSE, rawRequest, request, sleep, startServer } from './lib.mjs';

const BIN = process.env.BITNET_BIN;
const MODEL = process.env.MODEL;
const TMP = process.env.TMP || '/tmp';
const ID = MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');
const POST = (s, path, body, headers) => request(s.base, 'POST', path, { body, headers });

function isError(r, status, param) {
  const e = r.json && r.json.error;
  return r.status === status && e && typeof e.message === 'string' && typeof e.type === 'string' &&
    'param' in e && 'code' in e && (param === undefined || e.param === param);
}
const collapse = (s) => s.replace(/\uFFFD+/g, '\uFFFD');

async function streamText(s, path, body) {
  const r = await POST(s, path, { ...body, stream: true });
  return { r, events: parseSSE(r.text) };
}

let stage = 'start';
async function main() {
  const A = await startServer(BIN, ['-m', MODEL, '-t', '1', '-c', '1024', '--parallel', '8']);
  let r;

  // ---- health, models
  stage = 'health, models';
  r = await request(A.base, 'GET', '/health');
  check(r.status === 200 && r.json.status === 'ok', 'GET /health', r.text);
  r = await request(A.base, 'GET', '/v1/models');
  check(r.status === 200 && r.json.object === 'list' && r.json.data.length === 1 && r.json.data[0].id === ID &&
    r.json.data[0].object === 'model' && Number.isInteger(r.json.data[0].created) && r.json.data[0].owned_by &&
    r.json.data[0].device === 'cpu', 'GET /v1/models (with the device serving it)', r.text);
  r = await request(A.base, 'GET', `/v1/models/${ID}`);
  check(r.status === 200 && r.json.id === ID, 'GET /v1/models/{id}', r.text);
  r = await request(A.base, 'GET', '/v1/models/nope');
  check(isError(r, 404) && r.json.error.code === 'model_not_found', 'unknown model id: 404', r.text);

  // ---- the chat page (tests/test_webui_browser.sh runs it in a browser; C below has --no-webui)
  stage = 'chat page';
  r = await request(A.base, 'GET', '/');
  const inline = (tag) => { const m = r.text.match(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`)); return m ? m[1] : ''; };
  const hash = (tag) => `'sha256-${crypto.createHash('sha256').update(inline(tag)).digest('base64')}'`;
  const csp = r.headers['content-security-policy'] || '';
  check(r.status === 200 && r.headers['content-type'] === 'text/html; charset=utf-8' && r.text.includes('<title>bitnet-c chat</title>') &&
    r.text.includes('/v1/chat/completions') && !/<script[^>]+src|<link[^>]+stylesheet|https?:\/\//.test(r.text.replace(/<!--[\s\S]*?-->/g, '')),
    'GET /: the chat page, self-contained', { status: r.status, type: r.headers['content-type'] });
  check(csp.includes("default-src 'none'") && csp.includes("connect-src 'self'") && csp.includes("frame-ancestors 'none'") &&
    csp.includes(`script-src ${hash('script')};`) && csp.includes(`style-src ${hash('style')};`) &&
    r.headers['cache-control'] === 'no-cache' && r.headers['x-content-type-options'] === 'nosniff',
    'GET /: a Content-Security-Policy allowing only the page\'s own script and style', r.headers);
  r = await request(A.base, 'HEAD', '/');
  check(r.status === 200 && r.text === '' && r.headers['content-type'] === 'text/html; charset=utf-8', 'HEAD /', r.status);

  // ---- llama-server's utility routes: /tokenize, /detokenize, /props
  stage = 'tokenize, detokenize, props';
  {
    const text = 'The quick brown fox \u00e9\u4e2d';
    r = await POST(A, '/tokenize', { content: text });
    const ids = r.json && r.json.tokens;
    check(r.status === 200 && Array.isArray(ids) && ids.length > 3 && ids.every(Number.isInteger), 'POST /tokenize', r.text);
    const cliIds = (args) => JSON.parse(execFileSync(BIN, ['tokenize', '-m', MODEL, '--specials', '--json', ...args],
      { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
    const runIds = cliIds(['--no-bos', '--', text]);
    check(JSON.stringify(ids) === JSON.stringify(runIds), '/tokenize equals `bitnet tokenize --no-bos`', { ids, runIds });
    r = await POST(A, '/detokenize', { tokens: ids });
    check(r.status === 200 && r.json.content === text, 'POST /detokenize inverts /tokenize', r.text);
    r = await POST(A, '/tokenize', { content: text, with_pieces: true });
    const pieces = r.json && r.json.tokens;
    const joined = Buffer.concat((pieces || []).map((t) => (typeof t.piece === 'string' ? Buffer.from(t.piece) : Buffer.from(t.piece))));
    check(r.status === 200 && pieces.length === ids.length && pieces.every((t, i) => t.id === ids[i]) && joined.toString() === text,
      '/tokenize with_pieces: ids as without, pieces (strings or byte arrays) joining to the text', r.text);
    r = await POST(A, '/tokenize', { content: 'x', add_special: true });
    const withBos = cliIds(['--', 'x']);
    const plain = (await POST(A, '/tokenize', { content: 'x' })).json.tokens;
    check(r.status === 200 && JSON.stringify(r.json.tokens) === JSON.stringify(withBos) && withBos.length === plain.length + 1,
      '/tokenize add_special adds BOS as `bitnet tokenize` does', { special: r.json.tokens, withBos, plain });
    r = await POST(A, '/tokenize', { content: 5 });
    check(isError(r, 400, 'content'), '/tokenize content not a string: 400 naming it', r.text);
    r = await POST(A, '/tokenize', { content: 'x', with_pieces: 'yes' });
    check(isError(r, 400, 'with_pieces'), '/tokenize with_pieces not a boolean: 400 naming it', r.text);
    r = await POST(A, '/detokenize', { tokens: [1, 1e9] });
    check(isError(r, 400, 'tokens[1]'), '/detokenize out-of-range id: 400 naming it', r.text);
    r = await POST(A, '/detokenize', { tokens: [1, 'a'] });
    check(isError(r, 400, 'tokens[1]'), '/detokenize non-integer id: 400 naming it', r.text);
    r = await POST(A, '/detokenize', [1, 2]);
    check(isError(r, 400), '/detokenize body not an object: 400', r.text);
    r = await request(A.base, 'GET', '/props');
    check(r.status === 200 && r.json.model === ID && r.json.total_slots === 8 && r.json.n_ctx === 1024 &&
      r.json.default_generation_settings.n_ctx === 1024 && r.json.device === 'cpu' && Number.isInteger(r.json.n_vocab),
      'GET /props: model, slots, context, device', r.text);
  }

  // ---- embeddings over HTTP (the SDK's view is in openai_sdk.mjs): the shape, and every malformed input a 400
  stage = 'embeddings';
  {
    const n_embd = (await request(A.base, 'GET', '/props')).json.n_embd;
    r = await POST(A, '/v1/embeddings', { model: ID, input: ['a b c', 'd'] });
    const norm = (v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    check(r.status === 200 && r.json.object === 'list' && r.json.model === ID && r.json.data.length === 2 &&
      r.json.data.every((d, i) => d.object === 'embedding' && d.index === i && d.embedding.length === n_embd &&
        Math.abs(norm(d.embedding) - 1) < 1e-5) && r.json.usage.prompt_tokens === r.json.usage.total_tokens &&
      r.json.usage.prompt_tokens > 2, 'POST /v1/embeddings: one unit vector of n_embd floats per input', r.text.slice(0, 300));
    const bad = [
      [{ model: ID }, 400, 'input'], [{ model: ID, input: null }, 400, 'input'], [{ model: ID, input: 7 }, 400, 'input'],
      [{ model: ID, input: '' }, 400, 'input'], [{ model: ID, input: [] }, 400, 'input'], [{ model: ID, input: ['a', ''] }, 400, 'input[1]'],
      [{ model: ID, input: ['a', 3] }, 400, 'input[1]'], [{ model: ID, input: ['a', null] }, 400, 'input[1]'],
      [{ model: ID, input: ['a', { t: 1 }] }, 400, 'input[1]'], [{ model: ID, input: [[1], []] }, 400, 'input[1]'],
      [{ model: ID, input: [1, 1e9] }, 400, 'input[1]'], [{ model: ID, input: [1, -1] }, 400, 'input[1]'],
      [{ model: ID, input: [1, 2.5] }, 400, 'input[1]'], [{ model: ID, input: [1, true] }, 400, 'input[1]'],
      [{ model: ID, input: [[1, 2], [3, 'x']] }, 400, 'input[1][1]'], [{ model: ID, input: [[[1]]] }, 400, 'input[0][0]'],
      [{ model: ID, input: Array(2049).fill('a') }, 400, 'input'], [{ model: ID, input: 'a', encoding_format: 'hex' }, 400, 'encoding_format'],
      [{ model: ID, input: 'a', dimensions: 3 }, 400, 'dimensions'], [{ model: ID, input: 'a', dimensions: -1 }, 400, 'dimensions'],
      [{ model: ID, input: 'a', user: 5 }, 400, 'user'], [{ input: 'a' }, 400, 'model'], [{ model: 1, input: 'a' }, 400, 'model'],
      [{ model: 'gpt-4', input: 'a' }, 404, 'model'], [['a'], 400, undefined]];
    for (const [body, status, param] of bad) {
      r = await POST(A, '/v1/embeddings', body);
      check(isError(r, status, param === undefined ? null : param), `embeddings refuses ${JSON.stringify(body).slice(0, 80)}: ${status} naming ${param}`, r.text);
    }
    r = await POST(A, '/v1/embeddings', { model: ID, input: ['a', 'x'.repeat(1100)] });
    check(isError(r, 400, 'input[1]') && r.json.error.code === 'context_length_exceeded' && /1024/.test(r.json.error.message) &&
      /1101/.test(r.json.error.message), 'embeddings input longer than the context: 400 with both numbers', r.text);
    r = await request(A.base, 'GET', '/v1/embeddings');
    check(isError(r, 405) && r.headers.allow === 'POST, OPTIONS', 'GET /v1/embeddings: 405', r.text);
    // a client that goes away mid-request: the job is cancelled, the server goes on
    const big = Buffer.from(JSON.stringify({ model: ID, input: Array(64).fill('y'.repeat(1000)) }));
    await new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: A.port, method: 'POST', path: '/v1/embeddings', agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': big.length } }, (res) => { res.resume(); res.on('end', resolve); });
      req.on('error', resolve);
      req.end(big);
      setTimeout(() => { req.destroy(); resolve(); }, 100);
    });
    r = await POST(A, '/v1/embeddings', { model: ID, input: 'd' });
    check(r.status === 200 && r.json.data[0].embedding.length === n_embd, 'embeddings answer after a client went away', r.text.slice(0, 200));
  }

  // ---- completions: greedy equals `bitnet run`
  stage = 'completions: greedy equals `bitnet run`';
  const prompt = 'The quick brown fox';
  r = await POST(A, '/v1/completions', { model: ID, prompt, max_tokens: 12, temperature: 0 });
  const c0 = r.json;
  check(r.status === 200 && c0.object === 'text_completion' && c0.id.startsWith('cmpl-') && c0.model === ID &&
    Number.isInteger(c0.created) && c0.choices.length === 1 && c0.choices[0].index === 0 &&
    c0.choices[0].logprobs === null && ['stop', 'length'].includes(c0.choices[0].finish_reason) &&
    c0.usage.prompt_tokens > 0 && c0.usage.total_tokens === c0.usage.prompt_tokens + c0.usage.completion_tokens,
    'completion shape', r.text);
  let runOut = null;
  try {
    runOut = execFileSync(BIN, ['run', '-m', MODEL, '-t', '1', '-c', '1024', '-p', prompt, '-n', '12', '--temp', '0',
      '--no-echo'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8');
  } catch (e) { runOut = null; }
  if (runOut !== null) {
    check(collapse(runOut.replace(/\n$/, '')) === collapse(c0.choices[0].text), 'greedy completion equals `bitnet run`',
      { run: runOut, http: c0.choices[0].text });
  } else {
    check(false, '`bitnet run` ran');
  }
  // streaming: the same text, event by event
  let { r: sr, events } = await streamText(A, '/v1/completions', { model: ID, prompt, max_tokens: 12, temperature: 0,
    stream_options: { include_usage: true } });
  check(sr.status === 200 && /text\/event-stream/.test(sr.headers['content-type']), 'stream content type');
  check(events[events.length - 1] === '[DONE]' && events.every((e) => !e.malformed), 'stream ends with [DONE]', sr.text);
  const usageEv = events[events.length - 2];
  check(usageEv && usageEv.usage && usageEv.choices.length === 0 &&
    usageEv.usage.completion_tokens === c0.usage.completion_tokens, 'usage chunk when include_usage', usageEv);
  const textEvents = events.filter((e) => e.choices && e.choices.length);
  const finishEv = textEvents[textEvents.length - 1];
  check(finishEv.choices[0].finish_reason === c0.choices[0].finish_reason && finishEv.choices[0].text === '',
    'stream finish_reason chunk', finishEv);
  const streamed = textEvents.map((e) => e.choices[0].text).join('');
  check(streamed === c0.choices[0].text, 'streamed text equals the non-streamed text', { streamed, c0: c0.choices[0].text });
  check(textEvents.slice(0, -1).every((e) => e.choices[0].finish_reason === null && e.object === 'text_completion' &&
    e.id === textEvents[0].id), 'chunks carry id/object and null finish_reason');
  ({ events } = await streamText(A, '/v1/completions', { model: ID, prompt, max_tokens: 3, temperature: 0 }));
  check(!events.some((e) => e.usage), 'no usage chunk unless asked');

  // prompt forms, n, echo, logprobs, stop, seed, logit_bias, token prompts
  r = await POST(A, '/v1/completions', { model: ID, prompt: ['ab', 'cd'], n: 2, max_tokens: 4, temperature: 0 });
  check(r.status === 200 && r.json.choices.length === 4 && r.json.choices.map((c) => c.index).join() === '0,1,2,3' &&
    r.json.choices[0].text === r.json.choices[1].text, 'array of prompts with n=2', r.text);
  const tok = execFileSync(BIN, ['tokenize', '-m', MODEL, '--', 'Hello']).toString().trim();
  const ids = tok.split(/[\s,\[\]]+/).filter(Boolean).map(Number).filter((x) => Number.isInteger(x));
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 6, temperature: 0 });
  const helloText = r.json.choices[0].text;
  if (ids.length) {
    const r2 = await POST(A, '/v1/completions', { model: ID, prompt: ids, max_tokens: 6, temperature: 0 });
    check(r2.status === 200 && r2.json.choices[0].text === helloText, 'token-id prompt equals the text prompt', { ids, a: r2.text, b: helloText });
    const r3 = await POST(A, '/v1/completions', { model: ID, prompt: [ids, ids], max_tokens: 6, temperature: 0 });
    check(r3.status === 200 && r3.json.choices.length === 2 && r3.json.choices[1].text === helloText, 'array of token arrays');
  }
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 6, temperature: 0, echo: true, logprobs: 2 });
  const lp = r.json.choices[0].logprobs;
  check(r.json.choices[0].text === 'Hello' + helloText, 'echo prepends the prompt', r.text);
  check(lp && lp.tokens.length === r.json.usage.completion_tokens && lp.token_logprobs.every((x) => x <= 0) &&
    lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 2) &&
    lp.text_offset[0] === 5, 'completion logprobs', lp);
  ({ events } = await streamText(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 6, temperature: 0, echo: true, logprobs: 1 }));
  const echoed = events.filter((e) => e.choices && e.choices.length);
  check(echoed.map((e) => e.choices[0].text).join('') === 'Hello' + helloText &&
    echoed.filter((e) => e.choices[0].logprobs).map((e) => e.choices[0].logprobs.tokens.length).reduce((a, b) => a + b, 0) === 6,
  'streamed echo and logprobs', events);
  if (helloText.length >= 3) {
    const stop = helloText.slice(1, 3);
    r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 6, temperature: 0, stop });
    check(r.json.choices[0].finish_reason === 'stop' && !r.json.choices[0].text.includes(stop) &&
      helloText.startsWith(r.json.choices[0].text), 'stop string cuts the text', { stop, text: r.json.choices[0].text });
  }
  const sampled = [];
  for (let i = 0; i < 2; i++) {
    r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 8, temperature: 1.2, top_p: 0.9, seed: 42 });
    sampled.push(r.json.choices[0].text);
  }
  check(sampled[0] === sampled[1], 'same seed, same sample', sampled);
  const idA = Number(execFileSync(BIN, ['tokenize', '-m', MODEL, '--no-bos', '--', 'A']).toString().trim());
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 3, temperature: 0, logit_bias: { [idA]: 100 } });
  check(r.json.choices[0].text === 'AAA', 'logit_bias +100 forces the token', r.text);
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 1, temperature: 0, logprobs: 1 });
  const firstTok = r.json.choices[0].logprobs.tokens[0];
  const firstId = Number(execFileSync(BIN, ['tokenize', '-m', MODEL, '--no-bos', '--', firstTok]).toString().trim().split(' ')[0]);
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 1, temperature: 0, logprobs: 1, logit_bias: { [firstId]: -100 } });
  check(r.json.choices[0].logprobs.tokens[0] !== firstTok, 'logit_bias -100 bans the greedy token', { firstTok, r: r.text });
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 6, temperature: 0.7,
    presence_penalty: 1.5, frequency_penalty: 1, user: 'tester', seed: 1 });
  check(r.status === 200, 'penalties and user accepted', r.text);
  // llama.cpp / vLLM extension fields: top_k 1 is greedy whatever the seed (they used to be ignored)
  const greedy8 = (await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 8, temperature: 0 })).json.choices[0].text;
  const topk1 = [];
  for (const seed of [1, 2, 3]) {
    r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 8, temperature: 1, top_k: 1, seed });
    topk1.push(r.json.choices[0].text);
  }
  check(topk1.every((t) => t === greedy8), 'top_k 1 at temperature 1 is greedy for seeds 1, 2, 3', { topk1, greedy8 });
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', max_tokens: 4, min_p: 0.2, typical_p: 0.9,
    repetition_penalty: 1.2, repeat_last_n: 16, ignore_eos: true, some_unknown_field: { x: 1 } });
  check(r.status === 200 && r.json.usage.completion_tokens === 4, 'extension fields accepted, unknown ones ignored', r.text);
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'Hello', min_p: 3 });
  check(isError(r, 400, 'min_p'), 'a known extension field with a bad value: 400 naming it', r.text);
  // the prompt cache: the same prompt again reuses all but its last token, with the same output
  const cachePrompt = 'The prompt cache keeps what a slot has seen: '.repeat(3);
  const cold = (await POST(A, '/v1/completions', { model: ID, prompt: cachePrompt, max_tokens: 8, temperature: 0 })).json;
  const warm = (await POST(A, '/v1/completions', { model: ID, prompt: cachePrompt, max_tokens: 8, temperature: 0 })).json;
  check(warm.usage.prompt_tokens_details.cached_tokens === warm.usage.prompt_tokens - 1 &&
    warm.choices[0].text === cold.choices[0].text, 'a repeated prompt is served from the cache with the same text',
  { cold: cold.usage, warm: warm.usage });
  const cacheMetrics = (await request(A.base, 'GET', '/metrics')).text;
  check(/^bitnet_device_info\{device="cpu",gpu=""\} 1$/m.test(cacheMetrics), '/metrics names the device (bitnet_device_info)',
    cacheMetrics.slice(0, 300));
  check(metricValue(cacheMetrics, 'bitnet_prompt_cache_hits_total') >= 1 &&
    metricValue(cacheMetrics, 'bitnet_prompt_cache_reused_tokens_total') >= warm.usage.prompt_tokens - 1,
  '/metrics counts prompt cache hits and reused tokens', cacheMetrics);

  // ---- chat
  stage = 'chat';
  const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }] }];
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: msgs, max_completion_tokens: 10, temperature: 0 });
  const ch = r.json;
  check(r.status === 200 && ch.object === 'chat.completion' && ch.id.startsWith('chatcmpl-') &&
    ch.choices[0].message.role === 'assistant' && typeof ch.choices[0].message.content === 'string' &&
    ['stop', 'length'].includes(ch.choices[0].finish_reason), 'chat completion shape', r.text);
  ({ events } = await streamText(A, '/v1/chat/completions', { model: ID, messages: msgs, max_completion_tokens: 10,
    temperature: 0, stream_options: { include_usage: true } }));
  check(events[0].choices[0].delta.role === 'assistant' && events[0].object === 'chat.completion.chunk', 'chat stream: role first', events[0]);
  const deltas = events.filter((e) => e.choices && e.choices.length && e.choices[0].delta.content !== undefined).slice(1);
  check(deltas.map((e) => e.choices[0].delta.content).join('') === ch.choices[0].message.content,
    'chat stream content equals non-stream', { events, ch });
  const fin = events.filter((e) => e.choices && e.choices.length && e.choices[0].finish_reason);
  check(fin.length === 1 && fin[0].choices[0].finish_reason === ch.choices[0].finish_reason, 'chat finish chunk');
  check(events[events.length - 2].usage && events[events.length - 1] === '[DONE]', 'chat usage chunk then [DONE]');
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: msgs, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3 });
  const clp = r.json.choices[0].logprobs;
  check(clp && clp.content.length === r.json.usage.completion_tokens && clp.content[0].top_logprobs.length === 3 &&
    Array.isArray(clp.content[0].bytes), 'chat logprobs', r.text);

  // ---- tools and constrained decoding (random weights: the grammar alone makes the output valid)
  stage = 'tools and constrained decoding (random weights: the grammar alone makes the output valid)';
  const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] },
      days: { type: 'integer' } }, required: ['city', 'unit'] } } };
  const add = { type: 'function', function: { name: 'add', parameters: { type: 'object',
    properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] } } };
  for (const [choice, name] of [['required', null], [{ type: 'function', function: { name: 'add' } }, 'add']]) {
    for (const seed of [1, 2, 3]) {
      r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'go' }],
        tools: [weather, add], tool_choice: choice, max_tokens: 80, temperature: 1, seed });
      const c = r.json.choices && r.json.choices[0];
      const call = c && c.message.tool_calls && c.message.tool_calls[0];
      let args = null;
      try { args = JSON.parse(call.function.arguments); } catch { args = null; }
      const okArgs = call && (call.function.name === 'add' ? args && typeof args.a === 'number' && typeof args.b === 'number'
        : args && typeof args.city === 'string' && ['c', 'f'].includes(args.unit));
      check(r.status === 200 && c.finish_reason === 'tool_calls' && c.message.content === null && call.type === 'function' &&
        typeof call.id === 'string' && (!name || call.function.name === name) && okArgs,
        `tool_choice ${JSON.stringify(choice)} seed ${seed}: valid tool call`, r.text);
    }
  }
  ({ events } = await streamText(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'go' }],
    tools: [weather], tool_choice: 'required', max_tokens: 80, seed: 5 }));
  const tcEv = events.find((e) => e.choices && e.choices[0] && e.choices[0].delta.tool_calls);
  const finEv = events.find((e) => e.choices && e.choices[0] && e.choices[0].finish_reason);
  check(tcEv && tcEv.choices[0].delta.tool_calls[0].function.name === 'get_weather' &&
    JSON.parse(tcEv.choices[0].delta.tool_calls[0].function.arguments).unit && finEv.choices[0].finish_reason === 'tool_calls' &&
    events[events.length - 1] === '[DONE]', 'streamed tool call', events);
  // round trip: the tool result goes back as a tool message
  r = await POST(A, '/v1/chat/completions', { model: ID, tools: [weather], max_tokens: 8, temperature: 0, messages: [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' }] });
  check(r.status === 200 && r.json.choices[0].message.role === 'assistant', 'tool message round trip accepted', r.text);
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'go' }], tools: [weather],
    tool_choice: 'auto', max_tokens: 6, temperature: 0 });
  check(r.status === 200 && (r.json.choices[0].message.tool_calls || typeof r.json.choices[0].message.content === 'string'),
    'tool_choice auto: tool call or plain content', r.text);
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'go' }], tools: [weather],
    tool_choice: 'none', max_tokens: 4, temperature: 0 });
  check(r.status === 200 && !r.json.choices[0].message.tool_calls && r.json.choices[0].finish_reason !== 'tool_calls', 'tool_choice none');
  for (const seed of [1, 2]) {
    r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'json' }], max_tokens: 40,
      temperature: 1, seed, response_format: { type: 'json_object' } });
    let v; try { v = JSON.parse(r.json.choices[0].message.content); } catch { v = undefined; }
    check(v && typeof v === 'object' && !Array.isArray(v) && r.json.choices[0].finish_reason === 'stop', 'json_object output parses', r.text);
    const schema = { type: 'object', properties: { name: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } },
      ok: { type: 'boolean' }, n: { type: ['integer', 'null'] } }, required: ['name', 'ok', 'n'] };
    r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'json' }], max_tokens: 60,
      temperature: 1, seed, response_format: { type: 'json_schema', json_schema: { name: 'thing', schema } } });
    try { v = JSON.parse(r.json.choices[0].message.content); } catch { v = undefined; }
    check(v && typeof v.name === 'string' && typeof v.ok === 'boolean' && (v.n === null || Number.isInteger(v.n)) &&
      (v.tags === undefined || v.tags.every((t) => typeof t === 'string')), 'json_schema output satisfies the schema', r.text);
  }
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'object', properties: { a: { $ref: '#/x' } } } } } });
  check(isError(r, 400, 'response_format.json_schema.schema'), 'unsupported schema keyword: 400', r.text);

  // ---- /v1/responses over HTTP (the SDK's view is in responses_sdk.mjs): every malformed request a 400 naming the field
  stage = 'responses: malformed requests';
  {
    r = await POST(A, '/v1/responses', { model: ID, input: 'x', max_output_tokens: 3, temperature: 0 });
    check(r.status === 200 && r.json.object === 'response' && r.json.output[0].type === 'message' &&
      r.json.usage.output_tokens <= 3 && /^application\/json/.test(r.headers['content-type']), 'POST /v1/responses', r.text);
    const fn = { type: 'function', name: 'f', parameters: { type: 'object', properties: { a: { type: 'string' } } } };
    const bad = [
      [{ input: 'x' }, 400, 'model'], [{ model: 1, input: 'x' }, 400, 'model'], [{ model: ID }, 400, 'input'],
      [{ model: ID, input: 5 }, 400, 'input'], [{ model: ID, input: [] }, 400, 'input'], [{ model: ID, input: null }, 400, 'input'],
      [{ model: ID, input: ['x'] }, 400, 'input[0]'], [{ model: ID, input: [{ content: 'x' }] }, 400, 'input[0].role'],
      [{ model: ID, input: [{ role: 'tool', content: 'x' }] }, 400, 'input[0].role'],
      [{ model: ID, input: [{ role: 'user' }] }, 400, 'input[0].content'],
      [{ model: ID, input: [{ role: 'user', content: 7 }] }, 400, 'input[0].content'],
      [{ model: ID, input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x' }] }] }, 400, 'input[0].content[0]'],
      [{ model: ID, input: [{ role: 'user', content: [{ type: 'input_text' }] }] }, 400, 'input[0].content[0].text'],
      [{ model: ID, input: [{ role: 'user', content: [{ type: 'input_text', text: 'x', extra: 1 }] }] }, 400, 'input[0].content[0].extra'],
      [{ model: ID, input: [{ role: 'user', content: 'x', name: 'n' }] }, 400, 'input[0].name'],
      [{ model: ID, input: [{ type: 5, role: 'user', content: 'x' }] }, 400, 'input[0].type'],
      [{ model: ID, input: [{ type: 'reasoning', summary: [] }] }, 400, 'input[0]'],
      [{ model: ID, input: [{ type: 'function_call', call_id: 1, name: 'f', arguments: '{}' }] }, 400, 'input[0].call_id'],
      [{ model: ID, input: [{ type: 'function_call', call_id: 'c', arguments: '{}' }] }, 400, 'input[0].name'],
      [{ model: ID, input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: {} }] }, 400, 'input[0].arguments'],
      [{ model: ID, input: [{ type: 'function_call_output', call_id: 'c' }] }, 400, 'input[0].output'],
      [{ model: ID, input: [{ type: 'function_call_output', output: 'x' }] }, 400, 'input[0].call_id'],
      [{ model: ID, input: 'x', instructions: 3 }, 400, 'instructions'],
      [{ model: ID, input: 'x', max_output_tokens: 0 }, 400, 'max_output_tokens'],
      [{ model: ID, input: 'x', max_output_tokens: 'many' }, 400, 'max_output_tokens'],
      [{ model: ID, input: 'x', temperature: 'hot' }, 400, 'temperature'], [{ model: ID, input: 'x', top_p: 2 }, 400, 'top_p'],
      [{ model: ID, input: 'x', stream: 'yes' }, 400, 'stream'], [{ model: ID, input: 'x', seed: 1.5 }, 400, 'seed'],
      [{ model: ID, input: 'x', tools: {} }, 400, 'tools'], [{ model: ID, input: 'x', tools: [5] }, 400, 'tools[0]'],
      [{ model: ID, input: 'x', tools: [{ type: 'function' }] }, 400, 'tools[0].name'],
      [{ model: ID, input: 'x', tools: [{ type: 'function', name: 'bad name' }] }, 400, 'tools[0].name'],
      [{ model: ID, input: 'x', tools: [fn, fn] }, 400, 'tools[1].name'],
      [{ model: ID, input: 'x', tools: [{ type: 'function', function: { name: 'f' } }] }, 400, 'tools[0].function'],
      [{ model: ID, input: 'x', tools: [{ ...fn, parameters: 'x' }] }, 400, 'tools[0].parameters'],
      [{ model: ID, input: 'x', tools: [{ ...fn, strict: 'yes' }] }, 400, 'tools[0].strict'],
      [{ model: ID, input: 'x', tools: [{ type: 'file_search' }] }, 400, 'tools[0].type'],
      [{ model: ID, input: 'x', tools: [fn], tool_choice: 'sometimes' }, 400, 'tool_choice'],
      [{ model: ID, input: 'x', tools: [fn], tool_choice: { type: 'function' } }, 400, 'tool_choice.name'],
      [{ model: ID, input: 'x', tools: [fn], tool_choice: { type: 'function', name: 'g' } }, 400, 'tool_choice'],
      [{ model: ID, input: 'x', tools: [fn], tool_choice: { type: 'web_search_preview' } }, 400, 'tool_choice.type'],
      [{ model: ID, input: 'x', tool_choice: 'required' }, 400, 'tool_choice'],
      [{ model: ID, input: 'x', text: 'json' }, 400, 'text'], [{ model: ID, input: 'x', text: { format: { type: 'yaml' } } }, 400, 'text.format.type'],
      [{ model: ID, input: 'x', text: { verbosity: 'low' } }, 400, 'text.verbosity'],
      [{ model: ID, input: 'x', text: { format: { type: 'json_schema', name: 'n' } } }, 400, 'text.format.schema'],
      [{ model: ID, input: 'x', text: { format: { type: 'json_schema', schema: { type: 'object' } } } }, 400, 'text.format.name'],
      [{ model: ID, input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'object', properties: { a: { type: 'frobnicate' } } } } } }, 400, 'text.format.schema'],
      [{ model: ID, input: 'x', tools: [fn], tool_choice: 'required', text: { format: { type: 'json_object' } } }, 400, 'text.format'],
      [{ model: ID, input: 'x', metadata: { a: 1 } }, 400, 'metadata.a'], [{ model: ID, input: 'x', metadata: [] }, 400, 'metadata'],
      [{ model: ID, input: 'x', store: 'yes' }, 400, 'store'], [{ model: ID, input: 'x', parallel_tool_calls: 1 }, 400, 'parallel_tool_calls'],
      [{ model: ID, input: 'x', stream_options: { include_usage: true } }, 400, 'stream_options.include_usage'],
      [{ model: ID, input: 'x', previous_response_id: 'resp_1' }, 400, 'previous_response_id'],
      [{ model: ID, input: 'x', conversation: 'conv_1' }, 400, 'conversation'],
      [{ model: ID, input: 'x', background: true }, 400, 'background'], [{ model: ID, input: 'x', include: ['x'] }, 400, 'include'],
      [{ model: ID, input: 'x', truncation: 'auto' }, 400, 'truncation'], [{ model: ID, input: 'x', top_logprobs: 3 }, 400, 'top_logprobs'],
      [{ model: ID, input: 'x', messages: [] }, 400, 'messages'], [{ model: ID, input: 'x', n: 2 }, 400, 'n'],
      [{ model: 'gpt-4', input: 'x' }, 404, 'model'], [['x'], 400, undefined]];
    for (const [body, status, param] of bad) {
      r = await POST(A, '/v1/responses', body);
      check(isError(r, status, param === undefined ? null : param), `responses refuses ${JSON.stringify(body).slice(0, 90)}: ${status} naming ${param}`, r.text);
    }
    r = await POST(A, '/v1/responses', { model: ID, input: 'x', previous_response_id: 'resp_1' });
    check(r.json?.error?.code === 'unsupported_parameter' && /stateless/.test(r.json.error.message), 'previous_response_id: unsupported_parameter, stateless', r.text);
    r = await POST(A, '/v1/responses', { model: ID, input: 'x', frobnicate: 1 });
    check(isError(r, 400, 'frobnicate') && r.json.error.code === 'unknown_parameter', 'unknown field: 400 unknown_parameter', r.text);
    r = await POST(A, '/v1/responses', { model: ID, input: 'x'.repeat(1100) });
    check(isError(r, 400, 'input') && r.json.error.code === 'context_length_exceeded', 'responses input longer than the context: 400 naming input', r.text);
    r = await POST(A, '/v1/responses', { model: ID, input: 'x', max_output_tokens: 2, store: true, background: false, include: [],
      truncation: 'disabled', top_logprobs: 0, previous_response_id: null, reasoning: null, service_tier: 'auto',
      prompt_cache_key: 'k', safety_identifier: 's', max_tool_calls: 1, stream_options: { include_obfuscation: false } });
    check(r.status === 200 && r.json.store === false, 'fields accepted without effect; store answered false', r.text);
    r = await request(A.base, 'GET', '/v1/responses/resp_1');
    check(isError(r, 404) && r.json.error.code === 'unknown_url', 'GET /v1/responses/{id}: 404 (nothing is stored)', r.text);
  }

  // ---- errors
  stage = 'errors';
  r = await request(A.base, 'POST', '/v1/completions', { body: Buffer.from('{"model":'), raw: true });
  check(isError(r, 400) && /parse the JSON/.test(r.json.error.message), 'malformed JSON: 400', r.text);
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'x', temperature: 'hot' });
  check(isError(r, 400, 'temperature') && r.json.error.message.includes('temperature'), 'invalid field: 400 names it', r.text);
  r = await POST(A, '/v1/chat/completions', { model: ID, messages: [{ role: 'wizard', content: 'x' }] });
  check(isError(r, 400, 'messages[0].role'), 'invalid role: 400', r.text);
  r = await POST(A, '/v1/completions', { model: 'gpt-4', prompt: 'x' });
  check(isError(r, 404, 'model') && r.json.error.code === 'model_not_found', 'unknown model: 404', r.text);
  r = await request(A.base, 'GET', '/v1/files');
  check(isError(r, 404) && r.json.error.code === 'unknown_url', 'unknown route: 404', r.text);
  r = await request(A.base, 'GET', '/v1/completions');
  check(isError(r, 405) && r.headers.allow === 'POST, OPTIONS', 'wrong method: 405 with Allow', r.text);
  r = await request(A.base, 'DELETE', '/health');
  check(r.status === 405, 'DELETE /health: 405');
  r = await POST(A, '/v1/completions', { model: ID, prompt: 'x'.repeat(1100) });
  check(isError(r, 400, 'prompt') && r.json.error.code === 'context_length_exceeded' && /1024/.test(r.json.error.message) &&
    /1101/.test(r.json.error.message), 'prompt longer than the context: 400 with both numbers', r.text);
  r = await request(A.base, 'POST', '/v1/completions', { body: Buffer.alloc(1100000, 0x20), raw: true });
  check(isError(r, 413) && r.json.error.code === 'request_too_large', 'body over --max-body: 413', r.text);
  const chunked = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: A.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', (e) => resolve({ status: 0, text: String(e) }));
    for (let i = 0; i < 12; i++) req.write(Buffer.alloc(100000, 0x20));
    req.end();
  });
  check(chunked.status === 413, 'chunked body over --max-body: 413', chunked);

  // ---- 16 concurrent streaming clients equal their sequential runs
  stage = '16 concurrent streaming clients equal their sequential runs';
  const prompts = Array.from({ length: 16 }, (_, i) => `Client ${i}: ${'abcdefghij'.slice(0, (i % 7) + 1)}`);
  const sequential = [];
  for (const p of prompts) {
    r = await POST(A, '/v1/completions', { model: ID, prompt: p, max_tokens: 16, temperature: 0 });
    sequential.push(r.json.choices[0].text);
  }
  const concurrent = await Promise.all(prompts.map(async (p) => {
    const { events: ev } = await streamText(A, '/v1/completions', { model: ID, prompt: p, max_tokens: 16, temperature: 0 });
    return ev.filter((e) => e.choices && e.choices.length).map((e) => e.choices[0].text).join('');
  }));
  check(concurrent.every((t, i) => t === sequential[i]), '16 concurrent streams equal their sequential runs', { concurrent, sequential });

  // ---- disconnecting clients free their slots at once
  stage = 'disconnecting clients free their slots at once';
  let m0 = (await request(A.base, 'GET', '/metrics')).text;
  const gen0 = metricValue(m0, 'bitnet_generated_tokens_total');
  await Promise.all(Array.from({ length: 6 }, () => new Promise((resolve) => {
    const body = Buffer.from(JSON.stringify({ model: ID, prompt: 'long', max_tokens: 1000, temperature: 0, stream: true }));
    const req = http.request({ host: '127.0.0.1', port: A.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': body.length } }, (res) => {
      res.once('data', () => { req.destroy(); resolve(); });
    });
    req.on('error', () => resolve());
    req.end(body);
  })));
  let busy = -1, metrics = '';
  for (let i = 0; i < 500; i++) {
    metrics = (await request(A.base, 'GET', '/metrics')).text;
    busy = metricValue(metrics, 'bitnet_busy_slots');
    if (busy === 0) break;
    await sleep(10);
  }
  const generated = metricValue(metrics, 'bitnet_generated_tokens_total') - gen0;
  check(busy === 0 && metricValue(metrics, 'bitnet_kv_cache_used_cells') === 0, 'disconnected streams free their slots', metrics);
  check(generated < 6 * 1000 / 2, 'disconnected streams stop generating', { generated });
  for (const name of ['bitnet_requests_total{endpoint="/v1/completions",status="200"}', 'bitnet_prompt_tokens_total',
    'bitnet_time_to_first_token_seconds_count', 'bitnet_inter_token_latency_seconds_count', 'bitnet_queue_depth',
    'bitnet_kv_cache_capacity_cells', 'bitnet_rejected_requests_total{reason="too_large"}',
    'bitnet_requests_total{endpoint="/v1/completions",status="413"}']) {
    const v = Number((metrics.split('\n').find((l) => l.startsWith(name)) || ' NaN').split(' ').pop());
    check(Number.isFinite(v) && (name.includes('queue') || v > 0), `metric ${name}`, metrics);
  }

  // ---- 500 malformed or hostile requests: each a 4xx, the server stays healthy
  stage = '500 malformed or hostile requests: each a 4xx, the server stays healthy';
  const hostile = [];
  const rnd = (() => { let x = 12345; return () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32); })();
  const fieldsBad = [['max_tokens', 'x'], ['max_tokens', -5], ['max_tokens', 1e400], ['n', 1e9], ['temperature', []],
    ['top_p', 7], ['stop', [1, 2]], ['logit_bias', { 999999: 1 }], ['seed', 'abc'], ['stream', 1], ['echo', 'yes'],
    ['logprobs', 99], ['prompt', null], ['prompt', [[]]], ['prompt', [-1]], ['model', null], ['user', {}],
    ['presence_penalty', 9], ['stream_options', 5]];
  for (let i = 0; i < 500; i++) {
    const kind = i % 10;
    if (kind === 0) hostile.push({ path: '/v1/completions', raw: Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256))) });
    else if (kind === 1) {
      const [f, v] = fieldsBad[i % fieldsBad.length];
      const body = JSON.stringify({ model: ID, prompt: 'x', [f]: v }).replace('1e+400', '1e400');
      hostile.push({ path: '/v1/completions', raw: Buffer.from(body.includes('"max_tokens":null') ? body.replace('null', '1e400') : body) });
    } else if (kind === 2) hostile.push({ path: '/v1/chat/completions', raw: Buffer.from('['.repeat(3000 + i) + ']'.repeat(3000 + i)) });
    else if (kind === 3) hostile.push({ path: '/v1/chat/completions', raw: Buffer.concat([Buffer.from(`{"model":"${ID}","messages":[{"role":"user","content":"`), Buffer.from([0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80]), Buffer.from('"}]}')]) });
    else if (kind === 4) hostile.push({ path: '/v1/completions', raw: Buffer.from(`{"model":"${ID}","prompt":"x","max_tokens":${'9'.repeat(50 + i)}}`) });
    else if (kind === 5) hostile.push({ path: '/v1/chat/completions', raw: Buffer.from(JSON.stringify({ model: ID, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }] })) });
    else if (kind === 6) hostile.push({ path: i % 20 === 6 ? '/v1/completions' : '/v1/chat/completions', raw: Buffer.alloc(i % 40 === 6 ? 1100000 : 64, 0x7b) });
    else if (kind === 7) hostile.push({ path: ['/index.htm', '/v1', '/v1/engines', '/admin', '/v1/chat', '/%00', '/v1/models/../health'][i % 7], method: 'GET' });
    else if (kind === 8) hostile.push({ path: ['/v1/models', '/health', '/v1/chat/completions'][i % 3], method: ['PUT', 'PATCH', 'DELETE'][i % 3] });
    else hostile.push({ path: '/v1/chat/completions', raw: Buffer.from(JSON.stringify({ model: ID, messages: [{ role: 'user', content: 'x' }],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'nope' } } } } }], tool_choice: 'required' })) });
  }
  const statuses = new Array(hostile.length);
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < hostile.length) {
      const k = next++;
      const h = hostile[k];
      const res = await request(A.base, h.method || 'POST', h.path, h.raw ? { body: h.raw, raw: true } : {}).catch((e) => ({ status: 0, text: String(e) }));
      statuses[k] = res.status;
    }
  }));
  const bad = statuses.map((s, k) => [s, k]).filter(([s]) => !(s >= 400 && s < 500));
  check(bad.length === 0, '500 hostile requests all get a 4xx', bad.slice(0, 10).map(([s, k]) => [s, hostile[k].path, (hostile[k].raw || '').slice(0, 80).toString()]));
  // slow senders and truncated bodies on raw sockets
  const slowBody = `{"model":"${ID}","prompt":1.5}`;
  const slow = Buffer.from(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${slowBody.length}\r\n\r\n${slowBody}`);
  const slowStatuses = await Promise.all([0, 1, 2].map(() => rawRequest(A.port, slow, { chunk: 7, delayMs: 15 })));
  check(slowStatuses.every((s) => s === 400), 'slow senders get 400', slowStatuses);
  const huge = await rawRequest(A.port, Buffer.from('POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n{"a":'));
  check(huge === 413, 'a huge Content-Length is answered 413 at once', huge);
  r = await request(A.base, 'GET', '/health');
  check(r.status === 200, 'healthy after hostile traffic');
  r = await POST(A, '/v1/completions', { model: ID, prompt, max_tokens: 12, temperature: 0 });
  check(r.status === 200 && r.json.choices[0].text === c0.choices[0].text, 'still answers correctly after hostile traffic');

  // ---- OpenAPI: every documented route answers as documented; nothing undocumented answers
  stage = 'OpenAPI: every documented route answers as documented; nothing undocumented answers';
  if (process.env.OPENAPI_JSON) {
    const spec = JSON.parse(fs.readFileSync(process.env.OPENAPI_JSON, 'utf8'));
    const bodies = { '/v1/completions': { model: ID, prompt: 'x', max_tokens: 2 },
      '/tokenize': { content: 'x' }, '/detokenize': { tokens: [1, 2] }, '/v1/embeddings': { model: ID, input: 'x' },
      '/v1/responses': { model: ID, input: 'x', max_output_tokens: 2 },
      '/v1/chat/completions': { model: ID, messages: [{ role: 'user', content: 'x' }], max_tokens: 2 } };
    for (const [path, ops] of Object.entries(spec.paths)) {
      const concrete = path.replace('{model}', ID);
      for (const [method, op] of Object.entries(ops)) {
        const documented = Object.keys(op.responses).map(Number);
        const res = await request(A.base, method.toUpperCase(), concrete, bodies[path] ? { body: bodies[path] } : {});
        const ctype = (res.headers['content-type'] || '').split(';')[0];
        const media = op.responses[String(res.status)] && op.responses[String(res.status)].content;
        check(documented.includes(res.status) && (!media || Object.keys(media).includes(ctype)),
          `openapi: ${method.toUpperCase()} ${path} answers as documented`, { status: res.status, ctype });
        for (const other of ['get', 'post', 'put', 'delete', 'patch', 'head', 'options']) {
          if (ops[other]) continue;
          const res2 = await request(A.base, other.toUpperCase(), concrete, {});
          check(res2.status === 405, `openapi: ${other.toUpperCase()} ${path} is not a route (405)`, res2.status);
        }
      }
    }
    for (const p of ['/', '/v1', '/v1/responses/x', '/v1/files', '/v1/audio/speech', '/v1/images/generations',
      '/v1/moderations', '/v1/completions/x', '/metrics/x', '/health/x', '/v1/chat/completions/x', '/props', '/slots',
      '/tokenize', '/v1/models/x/y']) {
      for (const method of ['GET', 'POST']) {
        const res = await request(A.base, method, p, method === 'POST' ? { body: {} } : {});
        const documentedPath = Object.keys(spec.paths).some((d) => new RegExp('^' + d.replace(/\{[^}]+\}/g, '.+') + '$').test(p));
        check(documentedPath || res.status === 404, `openapi: undocumented ${method} ${p} is 404`, res.status);
      }
    }
  }

  // ---- SIGTERM: running requests finish, exit code 0
  stage = 'SIGTERM: running requests finish, exit code 0';
  let started;
  const first = new Promise((resolve) => { started = resolve; });
  const pending = new Promise((resolve) => {
    const body = Buffer.from(JSON.stringify({ model: ID, prompt: 'bye', max_tokens: 200, temperature: 0, stream: true }));
    const req = http.request({ host: '127.0.0.1', port: A.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': body.length } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; started(); });
      res.on('end', () => resolve({ r: { text }, events: parseSSE(text) }));
    });
    req.on('error', (e) => resolve({ r: { text: String(e) }, events: [] }));
    req.end(body);
  });
  await first;
  A.proc.kill('SIGTERM');
  const last = await pending;
  const code = await A.exited;
  check(last.events[last.events.length - 1] === '[DONE]', 'in-flight stream finishes after SIGTERM', last.r.text.slice(-200));
  check(code === 0, 'SIGTERM: exit code 0', code);

  // ---- API keys, rate limits (a second server)
  stage = 'API keys, rate limits (a second server)';
  const keyFile = `${TMP}/keys.txt`;
  const longKey = 'L'.repeat(4095) + 'tail'; // a line longer than the old 4096-byte read buffer
  fs.writeFileSync(keyFile, `# keys\nfile-key\n\n${longKey}\n`);
  const B = await startServer(BIN, ['-m', MODEL, '-t', '1', '-c', '512', '--api-key', 'k1', '--api-key-file', keyFile,
    '--rate-limit-rpm', '3', '--rate-limit-tpm', '400', '--model-alias', 'my-model', '--log-format', 'json'],
  { BITNET_API_KEY: 'env-key', BITNET_PARALLEL: '2' });
  r = await request(B.base, 'GET', '/v1/models');
  check(isError(r, 401) && r.json.error.code === 'invalid_api_key', 'missing key: 401', r.text);
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer k2' } });
  check(isError(r, 401), 'wrong key: 401', r.text);
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer k1' } });
  check(r.status === 200 && r.json.data[0].id === 'my-model', 'good key and --model-alias', r.text);
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer env-key' } });
  check(r.status === 200, 'key from BITNET_API_KEY', r.text);
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer file-key' } });
  check(r.status === 200, 'key from --api-key-file', r.text);
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: `Bearer ${longKey}` } });
  check(r.status === 200, 'a 4,099-byte key line from --api-key-file is one key', r.text.slice(0, 200));
  r = await request(B.base, 'GET', '/v1/models', { headers: { Authorization: 'Bearer tail' } });
  check(isError(r, 401), 'the tail of a long key line is not a key of its own', r.text);
  // a second server on a port in use fails instead of sharing the traffic (no SO_REUSEPORT)
  let second = { status: 0, stderr: '' };
  try {
    execFileSync(BIN, ['serve', '-m', MODEL, '--port', String(B.port)], { timeout: 20000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    second = { status: e.status, stderr: String(e.stderr) };
  }
  check(second.status !== 0 && second.status !== null && /in use/i.test(second.stderr),
    'a second server on the same port exits with "address in use"', second);
  r = await request(B.base, 'GET', '/health');
  check(r.status === 200, '/health needs no key');
  r = await request(B.base, 'GET', '/');
  check(r.status === 200 && r.headers['content-type'].startsWith('text/html'), 'the chat page needs no key', r.status);
  r = await request(B.base, 'GET', '/metrics');
  check(r.status === 200 && metricValue(r.text, 'bitnet_rejected_requests_total{reason="auth"}') === 3 && // missing, k2, tail
    metricValue(r.text, 'bitnet_slots') === 2, '/metrics needs no key; auth rejections counted; BITNET_PARALLEL', r.text);
  const k1 = { Authorization: 'Bearer k1' };
  await request(B.base, 'GET', '/v1/models', { headers: k1 });
  await request(B.base, 'GET', '/v1/models', { headers: k1 });
  r = await request(B.base, 'GET', '/v1/models', { headers: k1 });
  check(isError(r, 429) && Number(r.headers['retry-after']) >= 1 && r.json.error.code === 'rate_limit_exceeded',
    'requests per minute: 429 with Retry-After', r.text);
  const fk = { Authorization: 'Bearer file-key' };
  r = await request(B.base, 'POST', '/v1/completions', { headers: fk, body: { model: 'my-model', prompt: 'Hi', max_tokens: 300,
    temperature: 0, logit_bias: { 260: -100, 261: -100 } } });
  check(r.status === 200 && r.json.usage.completion_tokens === 300, 'tokens within the minute', r.text);
  r = await request(B.base, 'POST', '/v1/completions', { headers: fk, body: { model: 'my-model', prompt: 'Hi', max_tokens: 300 } });
  check(isError(r, 429) && Number(r.headers['retry-after']) >= 1, 'tokens per minute: 429 with Retry-After', r.text);
  check(!B.logs().includes('k1') && !B.logs().includes('file-key') && !B.logs().includes('env-key'), 'keys never logged');
  check(B.logs().split('\n').filter((l) => l.startsWith('{')).every((l) => { try { JSON.parse(l); return true; } catch { return false; } }),
    '--log-format json writes JSON lines');
  B.proc.kill('SIGINT');
  check((await B.exited) === 0, 'SIGINT: exit code 0');

  // ---- bounded queue: 503 when full (a third server, one slot, queue of one)
  stage = 'bounded queue: 503 when full (a third server, one slot, queue of one)';
  const C = await startServer(BIN, ['-m', MODEL, '-t', '1', '-c', '4096', '--parallel', '1', '--queue', '1', '--no-webui']);
  r = await request(C.base, 'GET', '/');
  check(isError(r, 404) && r.json.error.code === 'unknown_url', '--no-webui: GET / is 404 like any unknown path', r.text);
  const longBody = Buffer.from(JSON.stringify({ model: ID, prompt: 'x', max_tokens: 4000, temperature: 0, stream: true,
    logit_bias: { 260: -100, 261: -100 } }));
  const open = [];
  const startLong = () => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: C.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': longBody.length } }, (res) => { res.once('data', () => resolve()); });
    req.on('error', () => resolve());
    open.push(req);
    req.end(longBody);
  });
  await startLong(); // running in the slot
  startLong();       // waits in the queue
  let depth = 0;
  for (let i = 0; i < 500 && depth < 1; i++) {
    depth = metricValue((await request(C.base, 'GET', '/metrics')).text, 'bitnet_queue_depth');
    if (depth < 1) await sleep(5);
  }
  r = await POST(C, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 });
  check(depth === 1 && isError(r, 503) && Number(r.headers['retry-after']) >= 1 && r.json.error.code === 'server_overloaded',
    'queue full: 503 with Retry-After', { depth, text: r.text });
  for (const req of open) req.destroy();
  m0 = (await request(C.base, 'GET', '/metrics')).text;
  check(metricValue(m0, 'bitnet_rejected_requests_total{reason="overload"}') === 1, 'overload rejection counted');
  C.proc.kill('SIGTERM');
  check((await C.exited) === 0, 'server with cancelled streams exits 0');
}

// The shipped model (when models/ has one): greedy equals `bitnet run`, streaming equals the
// non-streamed text, and constrained outputs are valid.
async function shipped(model) {
  stage = 'shipped model ' + model;
  const id = model.replace(/^.*\//, '').replace(/\.gguf$/, '');
  const S = await startServer(BIN, ['-m', model, '-t', '2', '-c', '512', '--parallel', '2']);
  try {
    const prompt = 'In the beginning';
    const r = await POST(S, '/v1/completions', { model: id, prompt, max_tokens: 16, temperature: 0 });
    let run = null;
    try {
      run = execFileSync(BIN, ['run', '-m', model, '-t', '2', '-c', '512', '-p', prompt, '-n', '16', '--temp', '0', '--no-echo'],
        { stdio: ['ignore', 'pipe', 'ignore'] }).toString('utf8').replace(/\n$/, '');
    } catch { run = null; }
    check(r.status === 200 && run !== null && collapse(run) === collapse(r.json.choices[0].text), 'shipped model: greedy equals `bitnet run`',
      { run, http: r.text });
    const { events } = await streamText(S, '/v1/completions', { model: id, prompt, max_tokens: 16, temperature: 0 });
    check(events.filter((e) => e.choices && e.choices.length).map((e) => e.choices[0].text).join('') === r.json.choices[0].text,
      'shipped model: stream equals non-stream');
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const c = await POST(S, '/v1/chat/completions', { model: id, messages: [{ role: 'user', content: 'Who was Adam?' }], max_tokens: 48,
      temperature: 0.7, seed: 1, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } });
    let v; try { v = JSON.parse(c.json.choices[0].message.content); } catch { v = undefined; }
    check(v && typeof v.name === 'string' && Number.isInteger(v.age), 'shipped model: json_schema output valid', c.text);
    const t = await POST(S, '/v1/chat/completions', { model: id, messages: [{ role: 'user', content: 'Weather in Paris?' }], max_tokens: 48,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
      tool_choice: 'required' });
    const call = t.json.choices && t.json.choices[0].message.tool_calls && t.json.choices[0].message.tool_calls[0];
    let a; try { a = JSON.parse(call.function.arguments); } catch { a = undefined; }
    check(a && typeof a.city === 'string' && t.json.choices[0].finish_reason === 'tool_calls', 'shipped model: tool call valid', t.text);
  } finally {
    S.proc.kill('SIGTERM');
    check((await S.exited) === 0, 'shipped model: server exits 0');
  }
}

async function all() {
  await main();
  if (process.env.SHIPPED_MODEL) await shipped(process.env.SHIPPED_MODEL);
}

all().then(() => process.exit(finish('server_http')), (e) => { console.log('not ok - exception in stage', stage, e); finish('server_http'); process.exit(1); });
