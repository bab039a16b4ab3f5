// load_server.mjs: load benchmark of `bitnet serve` (a documented command, not a test; see
// bench/load_server.sh and docs/SERVER.md). For each concurrency level it starts that many
// streaming /v1/completions clients at once, each generating --tokens tokens with greedy
// sampling, and reports aggregate generated tokens/s (all clients' tokens over the wall time of the
// level), time to first token and inter-token latency (p50/p99, measured by the client from SSE
// event arrival). Env: BITNET_BIN, MODEL; args: --levels 1,2,4,8,16 --tokens 32 --threads 2
// --json FILE --int8-lm-head (the server's optional int8 LM head).
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startServer, streamEvents } from '../tests/js/server/lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []));
const levels = (args.levels || '1,2,4,8,16').split(',').map(Number);
const tokens = Number(args.tokens || 32);
const threads = String(args.threads || 2);
const ID = process.env.MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function stream(port, prompt) {
  const t0 = performance.now();
  const arrivals = [];
  let generated = 0;
  await streamEvents(port, '/v1/completions', { model: ID, prompt, max_tokens: tokens, temperature: 0, stream: true,
    stream_options: { include_usage: true }, logit_bias: {} }, (j) => {
    if (j.usage) generated = j.usage.completion_tokens;
    else if (j.choices[0] && j.choices[0].finish_reason === null) arrivals.push(performance.now());
  });
  return { t0, arrivals, generated };
}

const maxLevel = Math.max(...levels);
const S = await startServer(process.env.BITNET_BIN, ['-m', process.env.MODEL, '-t', threads, '-c', String(64 + tokens * 2),
  '--parallel', String(maxLevel), '--queue', String(maxLevel * 2), ...('int8-lm-head' in args ? ['--int8-lm-head'] : [])]);
const rows = [];
try {
  await stream(S.port, 'warm up'); // first-touch of the weights
  for (const n of levels) {
    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => stream(S.port, `Stream ${i} says`)));
    const wall = (performance.now() - t0) / 1000;
    const ttft = results.map((r) => (r.arrivals[0] - r.t0) / 1000);
    const itl = results.flatMap((r) => r.arrivals.slice(1).map((t, k) => (t - r.arrivals[k]) / 1000));
    const total = results.reduce((a, r) => a + r.generated, 0);
    rows.push({ streams: n, generated_tokens: total, wall_s: wall, tokens_per_s: total / wall,
      ttft_p50_ms: pct(ttft, 50) * 1e3, ttft_p99_ms: pct(ttft, 99) * 1e3, itl_p50_ms: pct(itl, 50) * 1e3, itl_p99_ms: pct(itl, 99) * 1e3 });
  }
} finally {
  S.proc.kill('SIGTERM');
  await S.exited;
}
console.log(`model ${process.env.MODEL}, ${tokens} tokens per stream, ${threads} threads, greedy, ` +
  `LM head ${'int8-lm-head' in args ? 'int8' : 'f16'}`);
console.log('streams  tokens/s   TTFT p50   TTFT p99    ITL p50    ITL p99   (ms)');
for (const r of rows)
  console.log(`${String(r.streams).padStart(7)}  ${r.tokens_per_s.toFixed(2).padStart(8)}  ${r.ttft_p50_ms.toFixed(1).padStart(9)}  ` +
    `${r.ttft_p99_ms.toFixed(1).padStart(9)}  ${r.itl_p50_ms.toFixed(1).padStart(9)}  ${r.itl_p99_ms.toFixed(1).padStart(9)}`);
const one = rows.find((r) => r.streams === 1), eight = rows.find((r) => r.streams === 8);
if (one && eight) console.log(`speed-up at 8 streams: ${(eight.tokens_per_s / one.tokens_per_s).toFixed(2)}x (bar: 4x)`);
if (args.json) fs.writeFileSync(args.json, JSON.stringify({ model: process.env.MODEL, tokens, threads: Number(threads), rows }, null, 2));
