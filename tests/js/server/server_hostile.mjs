// server_hostile.mjs: `bitnet serve` against the probes of a hostile client (issue 27): slow
// connections by the thousand, request smuggling, DNS rebinding and CSRF, odd URLs and methods,
// key guessing, shutdown cutting requests, a model file truncated while serving; and the options
// that go with them: CORS, IPv6 and host names, TLS (curl against a certificate made here),
// trusted proxies, JSON request logs. Env: BITNET_BIN, MODEL, TMP.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { check, finish, sleep, startServer, request, parseSSE, metricValue } from './lib.mjs';

const BIN = process.env.BITNET_BIN;
const MODEL = process.env.MODEL;
const TMP = process.env.TMP;
const ID = 'tiny';
let stage = '';

// Raw bytes on one connection; resolves {text (all bytes the server sent, latin1), closed (the
// server closed the connection within waitMs)}.
function rawExchange(port, bytes, { waitMs = 1500, host = '127.0.0.1', localAddress } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host, localAddress });
    let text = '';
    let closed = false;
    const done = () => { sock.destroy(); resolve({ text, closed }); };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (d) => { text += d.toString('latin1'); });
    sock.on('end', () => { closed = true; clearTimeout(timer); setTimeout(done, 10); });
    sock.on('error', () => { closed = true; clearTimeout(timer); done(); });
    sock.on('connect', () => sock.write(bytes));
  });
}

const statusLines = (text) => (text.match(/HTTP\/1\.[01] \d{3}/g) || []).length;

function get(base, path, headers = {}, localAddress) {
  return new Promise((resolve) => {
    const url = new URL(path, base);
    const req = http.request({ host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path: url.pathname, method: 'GET', headers,
      agent: false, localAddress, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => { req.destroy(); resolve({ status: 0, text: 'timeout' }); });
    req.on('error', (e) => resolve({ status: 0, text: String(e.code || e) }));
    req.end();
  });
}

function post(base, path, body, headers = {}) {
  return request(base, 'POST', path, { body, headers }).catch((e) => ({ status: 0, text: String(e.code || e) }));
}

const canBind = (host) => new Promise((resolve) => {
  const srv = net.createServer();
  srv.once('error', () => resolve(false));
  srv.listen(0, host, () => srv.close(() => resolve(true)));
});

async function slowConnections() {
  stage = 'defect 1: 1,030 slow connections from one address';
  const S = await startServer(BIN, ['-m', MODEL, '-t', '1']);
  const socks = [];
  let refused = 0;
  const open = (i) => new Promise((resolve) => {
    const sock = net.connect(S.port, '127.0.0.1');
    sock.on('error', () => { refused++; resolve(); });
    sock.on('connect', () => { sock.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n'); resolve(); });
    socks.push(sock);
  });
  for (let i = 0; i < 1030; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => open(i + k)));
  const trickle = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('X-Slow: 1\r\n'); }, 2000);
  await sleep(500);
  const t0 = Date.now();
  const same = await get(S.base, '/health');
  const sameMs = Date.now() - t0;
  const other = await get(S.base, '/health', {}, '127.0.0.2');
  check(same.status === 200 && sameMs < 3000, 'slow flood: /health from the same address answers', { status: same.status, ms: sameMs });
  check(other.status === 200, 'slow flood: /health from another address answers', other.status);
  const gen = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 3 });
  check(gen.status === 200, 'slow flood: a completion is served', gen.status);
  const m = (await get(S.base, '/metrics')).text;
  const evicted = metricValue(m, 'bitnet_connections_closed_total{reason="client_limit"}');
  const openNow = metricValue(m, 'bitnet_open_connections');
  check(evicted >= 900 && openNow <= 40, 'slow flood: the client\'s oldest waiting connections were closed (client_limit)',
    { evicted, openNow, refused });
  clearInterval(trickle);
  for (const s of socks) s.destroy();
  S.proc.kill('SIGTERM');
  check((await S.exited) === 0, 'slow flood: the server exits 0');

  stage = 'header and body deadlines';
  const T = await startServer(BIN, ['-m', MODEL, '-t', '1', '--header-timeout', '1', '--body-timeout', '1']);
  const t1 = Date.now();
  const head = await rawExchange(T.port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n', { waitMs: 5000 });
  const headMs = Date.now() - t1;
  check(head.closed && headMs >= 900 && headMs < 3000, 'an unfinished head is closed after --header-timeout', { headMs, closed: head.closed });
  const t2 = Date.now();
  const body = await rawExchange(T.port, 'POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":', { waitMs: 5000 });
  const bodyMs = Date.now() - t2;
  check(body.closed && bodyMs >= 900 && bodyMs < 3000, 'an unfinished body is closed after --body-timeout', { bodyMs, closed: body.closed });
  const mt = (await get(T.base, '/metrics')).text;
  check(metricValue(mt, 'bitnet_connections_closed_total{reason="header_timeout"}') >= 1 &&
        metricValue(mt, 'bitnet_connections_closed_total{reason="body_timeout"}') >= 1, 'deadline closures counted in /metrics');
  T.proc.kill('SIGTERM');
  await T.exited;
}

async function requestChecks() {
  stage = 'defects 4, 6, 7: framing, Host, Origin, media type, URLs, methods';
  const logFile = `${TMP}/hostile.log`;
  const S = await startServer(BIN, ['-m', MODEL, '-t', '1', '--log-format', 'json']);
  const body = JSON.stringify({ model: ID, prompt: 'x', max_tokens: 2 });
  const smuggle = `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  let r = await rawExchange(S.port, `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: ${body.length + smuggle.length}\r\n\r\n${body}${smuggle}`);
  check(/^HTTP\/1\.1 400/.test(r.text) && statusLines(r.text) === 1 && r.closed,
    'two different Content-Length headers: 400, connection closed, nothing after it answered', r.text.slice(0, 300));
  r = await rawExchange(S.port, `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n${smuggle}`);
  check(/^HTTP\/1\.1 400/.test(r.text) && statusLines(r.text) === 1 && r.closed,
    'Content-Length with Transfer-Encoding: 400, connection closed', r.text.slice(0, 300));
  r = await rawExchange(S.port, 'GET /health HTTP/1.1\r\n\r\n');
  check(/^HTTP\/1\.1 400/.test(r.text), 'HTTP/1.1 without Host: 400', r.text.slice(0, 200));
  r = await rawExchange(S.port, 'GET /health HTTP/1.0\r\n\r\n');
  check(/^HTTP\/1\.[01] 200/.test(r.text), 'HTTP/1.0 without Host: 200', r.text.slice(0, 200));

  let g = await get(S.base, '/v1/models', { Host: 'evil.example' });
  let j = JSON.parse(g.text || '{}');
  check(g.status === 403 && j.error && j.error.code === 'host_not_allowed', 'loopback bind: Host evil.example is 403', g.text);
  for (const host of [`localhost:${S.port}`, `127.0.0.1:${S.port}`, `[::1]:${S.port}`, `app.localhost:${S.port}`]) {
    g = await get(S.base, '/v1/models', { Host: host });
    check(g.status === 200, `Host ${host} is allowed`, g.status);
  }
  g = await get(S.base, '/v1/models', { Origin: 'http://evil.example' });
  j = JSON.parse(g.text || '{}');
  check(g.status === 403 && j.error && j.error.code === 'origin_not_allowed' && !g.headers['access-control-allow-origin'],
    'cross-origin request without --cors-origin: 403', g.text);
  g = await get(S.base, '/v1/models', { Origin: `http://127.0.0.1:${S.port}` });
  check(g.status === 200 && !g.headers['access-control-allow-origin'], 'same-origin request: 200 without CORS headers', g.status);
  let p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 }, { 'Content-Type': 'text/plain' });
  check(p.status === 415 && p.json && p.json.error.code === 'unsupported_media_type', 'POST as text/plain: 415', p.text);
  p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 }, { 'Content-Type': 'Application/JSON; charset=utf-8' });
  check(p.status === 200, 'POST as application/json; charset=utf-8: 200', p.status);

  r = await rawExchange(S.port, Buffer.from('GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'latin1'));
  const bodyText = Buffer.from(r.text, 'latin1').toString('utf8');
  const jsonStart = bodyText.indexOf('{');
  let err404 = null;
  try { err404 = JSON.parse(bodyText.slice(jsonStart)); } catch { err404 = null; }
  check(/^HTTP\/1\.1 404/.test(r.text) && err404 && err404.error && err404.error.message.includes('\ufffd'),
    'a URL with invalid UTF-8: 404 with an error body', bodyText.slice(0, 300));
  g = await get(S.base, '/v1/models%FF');
  check(g.status === 404 && JSON.parse(g.text).error.code === 'unknown_url', 'an escaped invalid UTF-8 URL: 404 with an error body', g.text);
  for (const path of ['/health%00x', '/health%00', '/v1/models%00/x']) {
    g = await get(S.base, path);
    check(g.status === 404, `${path} does not reach a route (404)`, g.status);
  }
  g = await get(S.base, '/health%2f'.replace('%2f', '%2F'));
  check(g.status === 404, '/health%2F is 404', g.status);
  r = await rawExchange(S.port, 'HEAD /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  check(/^HTTP\/1\.1 200/.test(r.text) && r.text.endsWith('\r\n\r\n'), 'HEAD /health: 200, no body', r.text);
  r = await rawExchange(S.port, 'HEAD /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  check(/^HTTP\/1\.1 405/.test(r.text) && /Allow: POST, OPTIONS/i.test(r.text), 'HEAD /v1/completions: 405', r.text);

  stage = 'request log: one JSON object per request with real token counts';
  const ev = await new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify({ model: ID, prompt: 'x', max_tokens: 5, stream: true, ignore_eos: true }));
    const req = http.request({ host: '127.0.0.1', port: S.port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => resolve(parseSSE(t)));
    });
    req.end(data);
  });
  await sleep(200);
  const lines = S.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const streamed = lines.filter((l) => l.event === 'request' && l.path === '/v1/completions' && l.status === 200);
  const last = streamed[streamed.length - 1] || {};
  check(ev[ev.length - 1] === '[DONE]' && last.completion_tokens === 5 && last.prompt_tokens >= 1 && last.method === 'POST' &&
        typeof last.duration_ms === 'number' && last.client === '127.0.0.1' && last.finish_reason === 'length' && /^cmpl-/.test(last.id),
    'a streamed request logs its fields and completion_tokens=5', last);
  check(lines.every((l) => l.time && l.level), 'every JSON log line has time and level');
  S.proc.kill('SIGTERM');
  await S.exited;
  fs.writeFileSync(logFile, S.logs());
}

async function corsAndAuth() {
  stage = 'CORS: --cors-origin, preflight';
  const S = await startServer(BIN, ['-m', MODEL, '-t', '1', '--cors-origin', 'http://app.example', '--api-key', 'right-key',
    '--auth-fail-limit', '5', '--trusted-proxy', '127.0.0.3', '--allowed-hosts', 'api.example.test,other.test']);
  for (const host of ['api.example.test', `API.example.test:${S.port}`, 'other.test']) {
    const h = await get(S.base, '/health', { Host: host });
    check(h.status === 200, `--allowed-hosts: Host ${host} is allowed`, h.status);
  }
  const evil = await get(S.base, '/health', { Host: 'evil.example' });
  check(evil.status === 403, '--allowed-hosts: other names are still 403', evil.status);
  let g = await new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: S.port, method: 'OPTIONS', path: '/v1/chat/completions', agent: false,
      headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization, content-type' } }, (res) => { res.resume(); res.on('end', () => resolve(res)); });
    req.end();
  });
  check(g.statusCode === 204 && g.headers['access-control-allow-origin'] === 'http://app.example' &&
        /POST/.test(g.headers['access-control-allow-methods'] || '') && /authorization/i.test(g.headers['access-control-allow-headers'] || ''),
    'preflight from an allowed origin: 204 with CORS headers', { status: g.statusCode, headers: g.headers });
  const auth = { Authorization: 'Bearer right-key' };
  let p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 }, { ...auth, Origin: 'http://app.example' });
  check(p.status === 200 && p.headers['access-control-allow-origin'] === 'http://app.example' && /Origin/.test(p.headers.vary || ''),
    'POST from an allowed origin: Access-Control-Allow-Origin', p.headers);
  p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 }, { ...auth, Origin: 'http://other.example' });
  check(p.status === 403, 'POST from another origin: 403', p.status);

  stage = 'failed authentication is rate limited per client';
  const statuses = [];
  for (let i = 0; i < 7; i++) statuses.push((await get(S.base, '/v1/models', { Authorization: 'Bearer wrong' + i })).status);
  const blocked = await get(S.base, '/v1/models', auth);
  check(statuses.slice(0, 5).every((s) => s === 401) && statuses.slice(5).every((s) => s === 429) && blocked.status === 429 &&
        Number(blocked.headers['retry-after']) >= 1, 'after 5 failed keys a client gets 429 with Retry-After', { statuses, blocked: blocked.status });
  const otherClient = await get(S.base, '/v1/models', auth, '127.0.0.2');
  check(otherClient.status === 200, 'another client is not affected', otherClient.status);
  const viaProxy = await get(S.base, '/v1/models', { ...auth, 'X-Forwarded-For': '10.9.8.7' }, '127.0.0.3');
  check(viaProxy.status === 200, 'through the trusted proxy the client is X-Forwarded-For (not blocked)', viaProxy.status);
  const spoofed = await get(S.base, '/v1/models', { ...auth, 'X-Forwarded-For': '10.9.8.7' });
  check(spoofed.status === 429, 'X-Forwarded-For from an untrusted peer is ignored', spoofed.status);
  const m = (await get(S.base, '/metrics')).text;
  check(metricValue(m, 'bitnet_rejected_requests_total{reason="auth_rate_limit"}') >= 3, 'auth_rate_limit rejections counted');
  S.proc.kill('SIGTERM');
  await S.exited;
  check(/client=10\.9\.8\.7/.test(S.logs()), 'the log names the X-Forwarded-For client');

  stage = 'CORS: --cors-origin *';
  const W = await startServer(BIN, ['-m', MODEL, '-t', '1', '--cors-origin', '*']);
  g = await get(W.base, '/v1/models', { Origin: 'http://anything.example' });
  check(g.status === 200 && g.headers['access-control-allow-origin'] === '*', '--cors-origin *: any origin, ACAO *', g.headers);
  W.proc.kill('SIGTERM');
  await W.exited;
}

// A long request: n choices of 4000 tokens on one slot, so it runs for seconds.
function longRequest(port, stream) {
  const data = Buffer.from(JSON.stringify({ model: ID, prompt: 'x', max_tokens: 4000, n: 4, temperature: 0, stream,
    ignore_eos: true }));
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/completions', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => resolve({ status: res.statusCode, text: t }));
      res.on('error', () => resolve({ status: res.statusCode, text: t, aborted: true }));
    });
    req.on('error', (e) => resolve({ status: 0, text: String(e.code || e) }));
    req.end(data);
  });
}

async function waitBusy(base) {
  for (let i = 0; i < 400; i++) {
    const m = (await get(base, '/metrics')).text;
    if (metricValue(m, 'bitnet_busy_slots') >= 1 && metricValue(m, 'bitnet_generated_tokens_total') >= 0) return true;
    await sleep(10);
  }
  return false;
}

async function shutdown() {
  stage = 'defect 3: shutdown cuts, refused connections, SIGHUP, a second signal';
  const args = ['-m', MODEL, '-t', '1', '-c', '4096', '--parallel', '1'];
  let S = await startServer(BIN, [...args, '--shutdown-timeout', '0.3']);
  let pending = longRequest(S.port, false);
  await waitBusy(S.base);
  await sleep(100);
  S.proc.kill('SIGTERM');
  let r = await pending;
  let j = null;
  try { j = JSON.parse(r.text); } catch { j = null; }
  check(r.status === 503 && j && j.error && j.error.code === 'server_shutdown' && /tokens generated/.test(j.error.message),
    'a non-streaming request cut by --shutdown-timeout: 503 server_shutdown, not 200 "stop"', r);
  check((await S.exited) === 0, 'exit 0 after the cut');

  S = await startServer(BIN, [...args, '--shutdown-timeout', '0.3']);
  pending = longRequest(S.port, true);
  await waitBusy(S.base);
  await sleep(100);
  S.proc.kill('SIGTERM');
  r = await pending;
  const events = parseSSE(r.text);
  const lastEv = events[events.length - 1];
  check(r.status === 200 && lastEv && lastEv.error && lastEv.error.code === 'server_shutdown' && !events.includes('[DONE]'),
    'a cut stream ends with a server_shutdown error event and no [DONE]', events.slice(-2));
  await S.exited;

  // the Responses API's stream, cut the same way, ends with response.failed
  S = await startServer(BIN, [...args, '--shutdown-timeout', '0.3']);
  pending = new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify({ model: ID, input: 'x', max_output_tokens: 4000, temperature: 0, stream: true,
      ignore_eos: true }));
    const req = http.request({ host: '127.0.0.1', port: S.port, method: 'POST', path: '/v1/responses', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } }, (res) => {
      let t = '';
      res.on('data', (d) => { t += d; });
      res.on('end', () => resolve({ status: res.statusCode, text: t }));
      res.on('error', () => resolve({ status: res.statusCode, text: t }));
    });
    req.on('error', (e) => resolve({ status: 0, text: String(e.code || e) }));
    req.end(data);
  });
  await waitBusy(S.base);
  await sleep(100);
  S.proc.kill('SIGTERM');
  r = await pending;
  const rEvents = parseSSE(r.text);
  const rLast = rEvents[rEvents.length - 1];
  check(r.status === 200 && rLast && rLast.type === 'response.failed' && rLast.response.status === 'failed' &&
    rLast.response.error.code === 'server_shutdown' && /tokens generated/.test(rLast.response.error.message) &&
    rEvents.every((e, i) => e.sequence_number === i) && !r.text.includes('[DONE]'),
    'a cut /v1/responses stream ends with response.failed (server_shutdown)', rEvents.slice(-1));
  await S.exited;

  S = await startServer(BIN, [...args, '--shutdown-timeout', '60']);
  pending = longRequest(S.port, true);
  await waitBusy(S.base);
  S.proc.kill('SIGHUP');
  await sleep(300);
  const alive = await get(S.base, '/health');
  check(S.proc.exitCode === null && alive.status === 200, 'SIGHUP: the server goes on', { code: S.proc.exitCode, status: alive.status });
  S.proc.kill('SIGTERM');
  await sleep(300);
  const refused = await get(S.base, '/health');
  check(refused.status === 0 && /ECONNREFUSED|ECONNRESET/.test(refused.text), 'during the grace period new connections are refused', refused);
  check(S.proc.exitCode === null, 'during the grace period the running request goes on');
  const t0 = Date.now();
  S.proc.kill('SIGTERM');
  const code = await S.exited;
  r = await pending;
  const evs = parseSSE(r.text);
  check(code === 0 && Date.now() - t0 < 3000, 'a second SIGTERM ends the grace period at once', { code, ms: Date.now() - t0 });
  check(evs.length && evs[evs.length - 1].error && evs[evs.length - 1].error.code === 'server_shutdown', 'the cut stream says so', evs.slice(-1));
  check(/SIGHUP ignored/.test(S.logs()) && /second signal/.test(S.logs()), 'SIGHUP and the second signal are logged');
}

async function truncatedModel() {
  stage = 'defect 8: the model file truncated while serving';
  const copy = `${TMP}/truncate-me.gguf`;
  fs.copyFileSync(MODEL, copy);
  const S = await startServer(BIN, ['-m', copy, '-t', '1', '--model-alias', ID]);
  let p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 });
  check(p.status === 200, 'before: 200', p.status);
  fs.truncateSync(copy, 4096);
  p = await post(S.base, '/v1/completions', { model: ID, prompt: 'x', max_tokens: 2 });
  check(p.status === 503 && p.json && p.json.error.code === 'model_file_changed', 'after truncation: 503 model_file_changed', p.text);
  const h = await get(S.base, '/health');
  check(S.proc.exitCode === null && h.status === 503 && /broken/.test(h.text), 'the server is alive and /health says broken', h);
  check(S.logs().includes(copy) && /changed size/.test(S.logs()), 'the log names the file', S.logs().slice(-400));
  S.proc.kill('SIGTERM');
  check((await S.exited) === 0, 'exit 0');
}

async function bindingAndTls() {
  stage = 'binding: IPv6, host names';
  if (await canBind('::1')) {
    const S = await startServer(BIN, ['-m', MODEL, '-t', '1', '--host', '::1']);
    const g = await get(`http://[::1]:${S.port}`, '/health');
    check(/listening on http:\/\/\[::1\]:\d+/.test(S.logs()) && g.status === 200, '--host ::1 serves IPv6', { status: g.status });
    S.proc.kill('SIGTERM');
    await S.exited;
    const D = await startServer(BIN, ['-m', MODEL, '-t', '1', '--host', '::']);
    const g4 = await get(`http://127.0.0.1:${D.port}`, '/health');
    const g6 = await get(`http://[::1]:${D.port}`, '/health');
    check(g4.status === 200 && g6.status === 200, '--host :: serves IPv4 and IPv6', { g4: g4.status, g6: g6.status });
    D.proc.kill('SIGTERM');
    await D.exited;
  } else {
    console.log('# IPv6 loopback unavailable here: the ::1 and :: checks are skipped');
  }
  const L = await startServer(BIN, ['-m', MODEL, '-t', '1', '--host', 'localhost']);
  const gl = await get(`http://127.0.0.1:${L.port}`, '/health', { Host: `localhost:${L.port}` });
  check(gl.status === 200, '--host localhost', gl.status);
  L.proc.kill('SIGTERM');
  await L.exited;
  const bad = spawnSync(BIN, ['serve', '-m', MODEL, '--port', '0', '--host', 'no-such-host.invalid'], { encoding: 'utf8', timeout: 20000 });
  check(bad.status !== 0 && /--host no-such-host\.invalid/.test(bad.stderr), 'an unknown host name is an error that names it', bad.stderr);

  stage = 'TLS: --ssl-cert-file/--ssl-key-file, curl with the certificate';
  const key = `${TMP}/key.pem`, cert = `${TMP}/cert.pem`;
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const T = await startServer(BIN, ['-m', MODEL, '-t', '1', '--ssl-cert-file', cert, '--ssl-key-file', key], {}, { tls: true });
  check(/listening on https:\/\/127\.0\.0\.1:\d+/.test(T.logs()), 'the listening line says https');
  const curl = (args) => spawnSync('curl', ['-sS', '--max-time', '20', '--cacert', cert, ...args], { encoding: 'utf8' });
  let c = curl([`https://127.0.0.1:${T.port}/health`]);
  check(c.status === 0 && c.stdout.includes('"ok"'), 'curl over HTTPS verifies the certificate: /health ok', c.stderr || c.stdout);
  c = curl(['-H', 'Content-Type: application/json', '-d', JSON.stringify({ model: ID, prompt: 'x', max_tokens: 3 }),
    `https://localhost:${T.port}/v1/completions`]);
  let body = null;
  try { body = JSON.parse(c.stdout); } catch { body = null; }
  check(c.status === 0 && body && body.choices && body.choices.length === 1, 'a completion over HTTPS', c.stderr || c.stdout);
  c = spawnSync('curl', ['-sS', '--max-time', '10', `https://127.0.0.1:${T.port}/health`], { encoding: 'utf8' });
  check(c.status !== 0, 'curl without the CA refuses the self-made certificate', c.status);
  const plain = await get(`http://127.0.0.1:${T.port}`, '/health');
  check(plain.status !== 200, 'plain HTTP to the HTTPS port gets no answer', plain.status);
  T.proc.kill('SIGTERM');
  check((await T.exited) === 0, 'the HTTPS server exits 0');
  const half = spawnSync(BIN, ['serve', '-m', MODEL, '--port', '0', '--ssl-cert-file', cert], { encoding: 'utf8', timeout: 20000 });
  check(half.status !== 0 && /--ssl-key-file/.test(half.stderr), 'a certificate without a key is an error', half.stderr);
}

async function all() {
  for (const [name, fn] of [['slow connections', slowConnections], ['request checks', requestChecks],
    ['cors and auth', corsAndAuth], ['shutdown', shutdown], ['truncated model', truncatedModel],
    ['binding and tls', bindingAndTls]]) {
    try { await fn(); } catch (e) { check(false, `exception in ${name} (${stage})`, String(e && e.stack || e)); }
  }
  process.exit(finish('server_hostile'));
}
all();
