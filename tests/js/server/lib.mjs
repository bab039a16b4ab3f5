// lib.mjs: helpers shared by the server tests: start `bitnet serve` on a free loopback port,
// plain HTTP requests (node:http, one connection each), SSE parsing and a tiny TAP-like reporter.
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

let passed = 0, failed = 0;
export function check(ok, what, detail) {
  if (ok) { passed++; return true; }
  failed++;
  console.log(`not ok - ${what}${detail !== undefined ? ': ' + (typeof detail === 'string' ? detail : JSON.stringify(detail)).slice(0, 600) : ''}`);
  return false;
}
export function finish(name) {
  console.log(`${name}: ${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Servers still running when the test process exits (a failed test) are killed with it.
const running = new Set();
process.on('exit', () => { for (const p of running) p.kill('SIGKILL'); });

// Starts the server; resolves with {port, base, proc, exited (promise of the exit code), logs()}.
// tls: the server speaks HTTPS (readiness is then probed over TLS without verification).
export async function startServer(bin, args, env = {}, { tls = false } = {}) {
  const proc = spawn(bin, ['serve', '--port', '0', ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '', err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  running.add(proc);
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => { running.delete(proc); resolve(code ?? sig); }));
  let port = 0;
  for (let i = 0; i < 600 && !port; i++) {
    const m = out.match(/listening on https?:\/\/(?:\[[^\]]+\]|[^:/\s]+):(\d+)/);
    if (m) port = Number(m[1]);
    else await sleep(20);
    if (proc.exitCode !== null) break;
  }
  if (!port) throw new Error(`server did not start: ${out} ${err}`);
  const v6only = /--host\s+::1\b/.test(args.join(' ')) || args.includes('::1');
  const base = `http://${v6only ? '[::1]' : '127.0.0.1'}:${port}`;
  for (let i = 0; i < 600; i++) {
    const r = await (tls ? tlsHealth(port) : request(base, 'GET', '/health')).catch(() => null);
    if (r && r.status === 200) break;
    await sleep(20);
  }
  return { port, base, proc, exited, logs: () => out + err };
}

function tlsHealth(port) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/health', rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('error', reject);
    req.end();
  });
}

// One request on its own connection; resolves {status, headers, text, json}.
export function request(base, method, path, { body, headers = {}, raw = false } = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const data = body === undefined ? undefined : raw ? body : Buffer.from(JSON.stringify(body));
    const h = { ...headers };
    if (data !== undefined && !h['Content-Type']) h['Content-Type'] = 'application/json';
    if (data !== undefined) h['Content-Length'] = data.length;
    const req = http.request({ host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, method, path: url.pathname + url.search,
      headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

// Parses an SSE body into the list of data payloads (objects, or the string '[DONE]').
// POSTs body as JSON on its own connection and reads the SSE response as it arrives: onEvent gets
// each parsed `data:` object ([DONE] excluded) when its event is complete. Resolves when the
// response ends (for client-side timings: TTFT, inter-token latency).
export function streamEvents(port, path, body, onEvent) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    let buf = '';
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      res.on('data', (d) => {
        buf += d;
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (ev.startsWith('data: ') && ev !== 'data: [DONE]') onEvent(JSON.parse(ev.slice(6)));
        }
      });
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(data);
  });
}

export function parseSSE(text) {
  const events = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    const line = block.split('\n').find((l) => l.startsWith('data: '));
    if (!line) { events.push({ malformed: block }); continue; }
    const payload = line.slice(6);
    if (payload === '[DONE]') events.push('[DONE]');
    else {
      try { events.push(JSON.parse(payload)); } catch { events.push({ malformed: payload }); }
    }
  }
  return events;
}

// Sends raw bytes on a socket (optionally slowly) and resolves with the status code (0: none).
export function rawRequest(port, bytes, { delayMs = 0, chunk = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      const m = got.match(/^HTTP\/1\.[01] (\d{3})/);
      resolve(m ? Number(m[1]) : 0);
      sock.destroy();
    };
    sock.on('data', (d) => { got += d.toString('latin1'); if (/\r\n\r\n/.test(got)) setTimeout(end, 20); });
    sock.on('error', end);
    sock.on('close', end);
    sock.on('connect', async () => {
      if (!chunk) { sock.write(bytes); return; }
      for (let i = 0; i < bytes.length && !done; i += chunk) {
        sock.write(bytes.subarray(i, i + chunk));
        await sleep(delayMs);
      }
    });
    setTimeout(end, 20000);
  });
}

export function metricValue(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
}
