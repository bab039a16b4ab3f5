// chat_replay.mjs: prompt-cache benchmark of `bitnet serve` (a documented command, not a test; see
// bench/chat_replay.sh and docs/SERVER.md). Replays one --turns-turn conversation (fixed user
// messages, each assistant answer appended as the server returned it) through streaming
// /v1/chat/completions, greedy, twice: against a server started with --no-prompt-cache and against
// one with the prompt cache (the default). Reports, per turn and run, the prompt tokens, the tokens
// the cache supplied (usage.prompt_tokens_details.cached_tokens), the time to the first content
// chunk (TTFT, measured by the client) and whether both runs produced the same text; then the
// last turn's TTFT ratio. Env: BITNET_BIN, MODEL; args: --turns 20 --tokens 16 --threads 2
// --ctx 4096 --json FILE.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startServer, streamEvents } from '../tests/js/server/lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []));
const turns = Number(args.turns || 20);
const tokens = Number(args.tokens || 16);
const threads = String(args.threads || 2);
const ctx = String(args.ctx || 4096);
const ID = process.env.MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');
const topics = ['the harbour at dawn', 'a recipe for bread', 'the rules of chess', 'rain on a tin roof', 'an old map',
  'the speed of light', 'a lighthouse keeper', 'winter in the mountains', 'a train timetable', 'the history of paper'];

function userMessage(i) {
  return `Turn ${i + 1}. Tell me something new about ${topics[i % topics.length]}, and connect it to what we ` +
    `discussed before in one or two sentences, keeping the answer short and concrete.`;
}

async function streamChat(port, messages) {
  const t0 = performance.now();
  let first = 0, text = '', usage = null;
  await streamEvents(port, '/v1/chat/completions', { model: ID, messages, max_tokens: tokens, temperature: 0,
    stream: true, stream_options: { include_usage: true } }, (j) => {
    if (j.usage) { usage = j.usage; return; }
    const c = j.choices[0];
    if (!c) return;
    if (!first && ((c.delta && c.delta.content) || c.finish_reason)) first = performance.now();
    if (c.delta && c.delta.content) text += c.delta.content;
  });
  return { ttft: (first - t0) / 1000, total: (performance.now() - t0) / 1000, text, usage };
}

async function replay(extra) {
  const S = await startServer(process.env.BITNET_BIN, ['-m', process.env.MODEL, '-t', threads, '-c', ctx,
    '--parallel', '2', ...extra]);
  const rows = [];
  try {
    await streamChat(S.port, [{ role: 'user', content: 'warm up' }]); // first-touch of the weights
    const messages = [{ role: 'system', content: 'You are a concise assistant.' }];
    for (let i = 0; i < turns; i++) {
      messages.push({ role: 'user', content: userMessage(i) });
      const r = await streamChat(S.port, messages);
      if (!r.usage) throw new Error(`turn ${i + 1}: the server answered no stream (a prompt longer than --ctx ${ctx}?)`);
      messages.push({ role: 'assistant', content: r.text });
      rows.push({ turn: i + 1, prompt_tokens: r.usage.prompt_tokens, cached_tokens: r.usage.prompt_tokens_details.cached_tokens,
        ttft_s: r.ttft, total_s: r.total, text: r.text });
      process.stderr.write(`  turn ${i + 1}: prompt ${r.usage.prompt_tokens}, cached ${r.usage.prompt_tokens_details.cached_tokens}, TTFT ${r.ttft.toFixed(3)} s\n`);
    }
  } finally {
    S.proc.kill('SIGTERM');
    await S.exited;
  }
  return rows;
}

process.stderr.write('without the prompt cache (--no-prompt-cache):\n');
const cold = await replay(['--no-prompt-cache']);
process.stderr.write('with the prompt cache:\n');
const warm = await replay([]);
console.log(`model ${process.env.MODEL}, ${turns} turns, ${tokens} tokens per answer, ${threads} threads, greedy`);
console.log('turn  prompt  cached   TTFT cold   TTFT warm   speed-up  same text');
for (let i = 0; i < turns; i++) {
  const c = cold[i], w = warm[i];
  console.log(`${String(c.turn).padStart(4)}  ${String(c.prompt_tokens).padStart(6)}  ${String(w.cached_tokens).padStart(6)}  ` +
    `${c.ttft_s.toFixed(3).padStart(9)} s ${w.ttft_s.toFixed(3).padStart(9)} s  ${(c.ttft_s / w.ttft_s).toFixed(2).padStart(7)}x  ${c.text === w.text ? 'yes' : 'NO'}`);
}
const last = turns - 1;
const same = cold.every((c, i) => c.text === warm[i].text);
console.log(`last turn: TTFT ${cold[last].ttft_s.toFixed(3)} s without the cache, ${warm[last].ttft_s.toFixed(3)} s with it: ` +
  `${(cold[last].ttft_s / warm[last].ttft_s).toFixed(2)}x; texts identical in all turns: ${same ? 'yes' : 'NO'}`);
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ model: process.env.MODEL, turns, tokens, threads: Number(threads), cold, warm }, null, 2));
if (!same) process.exitCode = 1;
