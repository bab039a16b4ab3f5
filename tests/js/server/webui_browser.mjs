// webui_browser.mjs: the chat page at GET / in a real browser (Debian's chromium, headless, driven
// by puppeteer-core; run by tests/test_webui_browser.sh). Env: BITNET_BIN, MODEL (a synthetic tiny
// model with a long context), CHROMIUM (the browser), TMP (scratch dir), SCREENSHOT (PNG to write).
//
// The page runs under the server's own Content-Security-Policy (any violation fails the test). The
// browser's requests pass through puppeteer's interception: to record what the page sends, to make
// the random model's answers run to max_tokens (its end tokens biased away), and to answer one turn
// with canned markdown holding HTML that must stay text.
import puppeteer from 'puppeteer-core';
import { check, finish, metricValue, request, sleep, startServer } from './lib.mjs';

const BIN = process.env.BITNET_BIN;
const MODEL = process.env.MODEL;
const ID = MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');
const NO_END = { 260: -100, 261: -100 }; // the byte-vocab synthetic model's EOS and EOT

let stage = 'start';
const sent = [];   // bodies (and Authorization) of the page's chat requests
let route = null;  // how the next chat request is treated: {mutate(body)} or {respond: {...}}
const problems = []; // CSP violations, page errors, console errors
let current = null;  // the open page, whose state a failure prints

async function openPage(browser, base) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 800 });
  // the 4xx answers this test provokes are logged as "Failed to load resource"; anything else counts
  page.on('console', (m) => {
    const t = m.text();
    if (/Content.Security.Policy|Refused to/i.test(t) || (m.type() === 'error' && !/^Failed to load resource: .* status of 40[01]/.test(t)))
      problems.push(t);
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.setRequestInterception(true);
  page.on('request', (req) => {
    if (!req.url().endsWith('/v1/chat/completions') || req.method() !== 'POST') { req.continue(); return; }
    const body = JSON.parse(req.postData());
    sent.push({ body, authorization: req.headers().authorization });
    const r = route;
    route = null;
    if (r && r.respond) req.respond(r.respond);
    else req.continue({ postData: JSON.stringify(r && r.mutate ? r.mutate(body) : body) });
  });
  current = page;
  const resp = await page.goto(base + '/', { waitUntil: 'load' });
  // the length of the last answer, every time it changes
  await page.evaluate(() => {
    window.lengths = [];
    new MutationObserver(() => {
      const all = document.querySelectorAll('.msg.assistant .content');
      const n = all.length ? all[all.length - 1].textContent.length : 0;
      if (window.lengths[window.lengths.length - 1] !== n) window.lengths.push(n);
    }).observe(document.getElementById('messages'), { childList: true, subtree: true, characterData: true });
  });
  return { page, resp };
}

const setField = (page, sel, value) => page.$eval(sel, (el, v) => { el.value = v; el.dispatchEvent(new Event('change')); }, value);
const idle = (page, timeout = 30000) => page.waitForFunction(() => !document.getElementById('send').disabled &&
  document.getElementById('stop').disabled, { timeout });
const answers = (page) => page.$$eval('.msg.assistant', (els) => els.map((e) => ({
  text: e.querySelector('.content').textContent, meta: e.querySelector('.meta').textContent, cls: e.className })));
const lastAnswer = async (page) => (await answers(page)).pop();
const text = (page, sel) => page.$eval(sel, (el) => el.textContent);

// On a failure, what the page showed (before its browser closes).
async function printPage(e) {
  const state = current && await current.evaluate(() => ({ error: document.getElementById('error').textContent,
    messages: [...document.querySelectorAll('.msg')].map((m) => [m.className, m.textContent.slice(0, 200)]),
    lengths: window.lengths })).catch(() => null);
  if (state) console.log('page at the failure:', JSON.stringify(state));
  throw e;
}

async function main() {
  const A = await startServer(BIN, ['-m', MODEL, '-t', '1', '-c', '16384', '--parallel', '1']);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM, headless: true, userDataDir: `${process.env.TMP}/profile`,
    // the page under test is local; a sandbox needs privileges a root CI container lacks
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
  try {
    // ---- the page loads under its policy and names the model
    stage = 'page load';
    const { page, resp } = await openPage(browser, A.base);
    const csp = resp.headers()['content-security-policy'] || '';
    check(resp.status() === 200 && /^text\/html/.test(resp.headers()['content-type']) && /default-src 'none'/.test(csp) &&
      /connect-src 'self'/.test(csp), 'GET / is the page, with its Content-Security-Policy', { status: resp.status(), csp });
    await page.waitForFunction((id) => document.getElementById('model').textContent === id, { timeout: 10000 }, ID)
      .catch(() => {});
    check(await text(page, '#model') === ID, 'the model name is shown', await text(page, '#model'));
    check(await page.$eval('#api-key-row', (el) => el.hidden), 'no API key field on a server without keys');

    // ---- a streamed answer with the system prompt and settings
    stage = 'streamed answer';
    await setField(page, '#system', 'You are a terse test assistant.');
    await setField(page, '#temperature', '0.5');
    await setField(page, '#max-tokens', '3000');
    route = { mutate: (b) => ({ ...b, logit_bias: NO_END }) };
    await page.type('#input', 'Hello there');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 1, { timeout: 5000 });
    await idle(page);
    const body = sent[0] && sent[0].body;
    check(body && body.stream === true && body.model === ID && body.temperature === 0.5 && body.max_tokens === 3000 &&
      body.messages.length === 2 && body.messages[0].role === 'system' && body.messages[0].content === 'You are a terse test assistant.' &&
      body.messages[1].role === 'user' && body.messages[1].content === 'Hello there', 'the request carries the system prompt and settings', body);
    let lengths = await page.evaluate(() => window.lengths);
    const grew = lengths.filter((n) => n > 0);
    check(grew.length >= 3 && grew.every((n, i) => i === 0 || n > grew[i - 1]), 'the answer grew as it streamed (several steps)', lengths);
    let a = await lastAnswer(page);
    check(a.text.length > 0 && a.meta === 'stopped at the token limit', 'the answer is shown and ends at the token limit', a);
    const speed = await text(page, '#speed');
    check(/^\d+(\.\d)? tok\/s$/.test(speed) && parseFloat(speed) > 0, 'the speed is shown', speed);

    // ---- Stop during a long answer
    stage = 'stop';
    let m = await request(A.base, 'GET', '/metrics');
    const generatedBefore = metricValue(m.text, 'bitnet_generated_tokens_total');
    await setField(page, '#max-tokens', '14000');
    await page.evaluate(() => { window.lengths = []; });
    route = { mutate: (b) => ({ ...b, logit_bias: NO_END }) };
    await page.type('#input', 'Tell me a very long story.');
    await page.click('#send');
    await page.waitForFunction(() => window.lengths.filter((n) => n > 0).length >= 3, { timeout: 10000 });
    const running = await page.$eval('#stop', (el) => !el.disabled) && await page.$eval('#send', (el) => el.disabled);
    check(running, 'while streaming, Stop is enabled and Send is not');
    await page.click('#stop');
    await idle(page, 3000).catch(() => {});
    const after = await page.evaluate(() => ({ stop: document.getElementById('stop').disabled, send: document.getElementById('send').disabled }));
    check(after.stop && !after.send, 'after Stop, Send is enabled again and Stop disabled', after);
    const len1 = (await lastAnswer(page)).text.length;
    await sleep(1200);
    a = await lastAnswer(page);
    check(a.text.length === len1 && len1 > 0, 'the answer stops growing after Stop', { len1, len2: a.text.length });
    check(a.meta === 'stopped' && /\bstopped\b/.test(a.cls), 'the answer is marked stopped', a);
    let busy = NaN, generated = NaN;
    for (let i = 0; i < 60; i++) {
      m = await request(A.base, 'GET', '/metrics');
      busy = metricValue(m.text, 'bitnet_busy_slots');
      generated = metricValue(m.text, 'bitnet_generated_tokens_total') - generatedBefore;
      if (busy === 0) break;
      await sleep(50);
    }
    check(busy === 0 && generated < 14000, 'Stop cancelled the generation on the server (slot free, max_tokens not reached)', { busy, generated });

    // ---- markdown code blocks; HTML from the model or the user stays text
    stage = 'markdown';
    const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: ID,
      choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    const code = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
    const pieces = ['Here is code:\n``', '`ht', 'ml\n', code.slice(0, 20), code.slice(20) + '\n``', '`\nand `inline <b>x</b>` too.'];
    route = { respond: { status: 200, contentType: 'text/event-stream', body: chunk({ role: 'assistant', content: '' }) +
      pieces.map((p) => chunk({ content: p })).join('') + chunk({}, 'stop') + 'data: [DONE]\n\n' } };
    await page.type('#input', '<i>not italic</i> show me code');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 3, { timeout: 5000 });
    await idle(page);
    const shown = await page.evaluate(() => {
      const msgs = document.querySelectorAll('.msg');
      const last = msgs[msgs.length - 1];
      const pre = last.querySelector('pre');
      return {
        lang: pre && pre.dataset.lang, code: pre && pre.querySelector('code') && pre.querySelector('code').textContent,
        inline: [...last.querySelectorAll('.content > code')].map((c) => c.textContent),
        injected: document.querySelectorAll('#messages img, #messages script, #messages b, #messages i').length,
        pwned: window.pwned, user: msgs[msgs.length - 2].querySelector('.content').textContent,
      };
    });
    check(shown.lang === 'html' && shown.code === code, 'a fenced code block is a <pre><code> with its text', shown);
    check(JSON.stringify(shown.inline) === JSON.stringify(['inline <b>x</b>']), '`inline code` is a <code>', shown);
    check(shown.injected === 0 && shown.pwned === undefined && shown.user === '<i>not italic</i> show me code',
      'HTML in answers and messages is shown as text, never run', shown);
    const history = sent[sent.length - 1].body.messages;
    check(history.length === 6 && history[0].role === 'system' && history[2].role === 'assistant' && history[4].role === 'assistant' &&
      history[4].content.length > 0, 'the conversation (stopped answer included) is sent as context', history.map((x) => x.role));
    await page.screenshot({ path: process.env.SCREENSHOT });

    // ---- a server error is shown, and the message is given back
    stage = 'errors';
    route = { mutate: (b) => ({ ...b, temperature: 7 }) };
    await page.type('#input', 'This one fails');
    await page.click('#send');
    await page.waitForFunction(() => !document.getElementById('error').hidden, { timeout: 5000 }).catch(() => {});
    const err = await page.evaluate(() => ({ hidden: document.getElementById('error').hidden, text: document.getElementById('error').textContent,
      input: document.getElementById('input').value, answers: document.querySelectorAll('.msg.assistant').length }));
    check(!err.hidden && /^HTTP 400: .*temperature/.test(err.text) && err.input === 'This one fails' && err.answers === 3,
      'a 400 is shown with the server\'s message; the message goes back to the input', err);
    await page.click('#new-chat');
    check(await page.$$eval('.msg', (e) => e.length) === 0 && await page.$eval('#error', (el) => el.hidden), 'New chat clears the page');
    await page.close();
  } catch (e) {
    await printPage(e);
  } finally {
    await browser.close().catch(() => {});
    A.proc.kill('SIGTERM');
    check((await A.exited) === 0, 'server exits 0');
  }
}

// A server with API keys: the page asks for the key and sends it.
async function withKeys() {
  stage = 'API keys';
  const B = await startServer(BIN, ['-m', MODEL, '-t', '1', '-c', '2048', '--api-key', 'sesame']);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM, headless: true, userDataDir: `${process.env.TMP}/profile-keys`,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
  });
  try {
    const { page, resp } = await openPage(browser, B.base);
    check(resp.status() === 200, 'the page itself needs no key', resp.status());
    await page.waitForFunction(() => !document.getElementById('api-key-row').hidden, { timeout: 10000 }).catch(() => {});
    const first = await page.evaluate(() => ({ row: !document.getElementById('api-key-row').hidden,
      model: document.getElementById('model').textContent, error: document.getElementById('error').textContent,
      tip: document.getElementById('api-key').title }));
    check(first.row && first.model === 'API key needed' && /needs an API key/.test(first.error) && /Authorization: Bearer/.test(first.tip),
      'a 401 shows the API key field, with its tooltip', first);
    await setField(page, '#api-key', 'wrong');
    await page.waitForFunction(() => /refused/.test(document.getElementById('error').textContent), { timeout: 5000 }).catch(() => {});
    check(/refused/.test(await text(page, '#error')), 'a wrong key is reported', await text(page, '#error'));
    await setField(page, '#api-key', 'sesame');
    await page.waitForFunction((id) => document.getElementById('model').textContent === id, { timeout: 5000 }, ID).catch(() => {});
    check(await text(page, '#model') === ID && await page.$eval('#error', (el) => el.hidden), 'the right key shows the model', await text(page, '#model'));
    await setField(page, '#max-tokens', '24');
    route = { mutate: (b) => ({ ...b, logit_bias: NO_END }) };
    await page.type('#input', 'Hi');
    await page.click('#send');
    await page.waitForFunction(() => document.querySelectorAll('.msg.assistant').length === 1, { timeout: 5000 });
    await idle(page);
    const a = await lastAnswer(page);
    check(sent[sent.length - 1].authorization === 'Bearer sesame' && a.text.length > 0 && !/failed/.test(a.cls),
      'the chat request carries the key and is answered', { auth: sent[sent.length - 1].authorization, a });
    await page.close();
  } catch (e) {
    await printPage(e);
  } finally {
    await browser.close().catch(() => {});
    B.proc.kill('SIGTERM');
    await B.exited;
  }
}

async function all() {
  await main();
  await withKeys();
  check(problems.length === 0, 'no policy violations, page errors or console errors', problems);
}

all().then(() => process.exit(finish('webui_browser')), (e) => {
  console.log('not ok - exception in stage', stage, e);
  if (problems.length) console.log('page problems:', problems);
  finish('webui_browser');
  process.exit(1);
});
