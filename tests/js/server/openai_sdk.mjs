// openai_sdk.mjs: the official OpenAI Node SDK, unchanged, against `bitnet serve` (driven by
// tests/test_server_openai.sh): models.list, completions (stream and not), chat (stream and not),
// a tool-call round trip and embeddings (base64 decoded by the SDK, float). Env: BITNET_BIN, MODEL.
import OpenAI from 'openai';
import { check, finish, startServer } from './lib.mjs';

const ID = process.env.MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');

async function main() {
  const S = await startServer(process.env.BITNET_BIN, ['-m', process.env.MODEL, '-t', '1', '-c', '1024', '--api-key', 'sdk-key']);
  try {
    const client = new OpenAI({ baseURL: `${S.base}/v1`, apiKey: 'sdk-key', maxRetries: 0, timeout: 60000 });
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    check(models.length === 1 && models[0].id === ID, 'models.list', models);

    const c = await client.completions.create({ model: ID, prompt: 'Once upon', max_tokens: 8, temperature: 0 });
    check(c.object === 'text_completion' && typeof c.choices[0].text === 'string' && c.usage.completion_tokens > 0,
      'completions.create', c);
    let streamed = '';
    const cs = await client.completions.create({ model: ID, prompt: 'Once upon', max_tokens: 8, temperature: 0, stream: true });
    for await (const chunk of cs) streamed += chunk.choices[0]?.text ?? '';
    check(streamed === c.choices[0].text, 'completions stream equals non-stream', { streamed, text: c.choices[0].text });

    const messages = [{ role: 'user', content: 'Say hi' }];
    const chat = await client.chat.completions.create({ model: ID, messages, max_tokens: 8, temperature: 0 });
    check(chat.choices[0].message.role === 'assistant' && typeof chat.choices[0].message.content === 'string',
      'chat.completions.create', chat);
    let content = '';
    let finishReason = null;
    const st = await client.chat.completions.create({ model: ID, messages, max_tokens: 8, temperature: 0, stream: true,
      stream_options: { include_usage: true } });
    let usage = null;
    for await (const chunk of st) {
      if (chunk.usage) usage = chunk.usage;
      const ch = chunk.choices[0];
      if (!ch) continue;
      content += ch.delta?.content ?? '';
      if (ch.finish_reason) finishReason = ch.finish_reason;
    }
    check(content === chat.choices[0].message.content && finishReason === chat.choices[0].finish_reason &&
      usage && usage.completion_tokens === chat.usage.completion_tokens, 'chat stream equals non-stream', { content, chat });

    // tool-call round trip
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather',
      parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
        required: ['city', 'unit'] } } }];
    const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.chat.completions.create({ model: ID, messages: ask, tools, tool_choice: 'required',
      max_tokens: 60, temperature: 0.8, seed: 3 });
    const call = first.choices[0].message.tool_calls?.[0];
    let args = null;
    try { args = JSON.parse(call.function.arguments); } catch { args = null; }
    check(first.choices[0].finish_reason === 'tool_calls' && call && call.function.name === 'get_weather' &&
      args && typeof args.city === 'string' && ['c', 'f'].includes(args.unit), 'tool call with valid arguments', first);
    if (call) {
      const second = await client.chat.completions.create({ model: ID, tools, max_tokens: 8, temperature: 0, messages: [
        ...ask, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temp: 21 }) }] });
      check(second.choices[0].message.role === 'assistant' && second.usage.prompt_tokens > first.usage.prompt_tokens,
        'tool result fed back', second);
    }
    // streamed tool call through the SDK's stream helper
    const runner = client.chat.completions.stream({ model: ID, messages: ask, tools,
      tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 60, seed: 4 });
    const final = await runner.finalChatCompletion();
    const sc = final.choices[0].message.tool_calls?.[0];
    check(sc && sc.function.name === 'get_weather' && JSON.parse(sc.function.arguments).unit, 'streamed tool call (SDK helper)', final);
    // embeddings: the SDK asks for base64 by default and decodes it; float gives the same numbers
    const auth = { Authorization: 'Bearer sdk-key', 'Content-Type': 'application/json' };
    const props = await (await fetch(`${S.base}/props`, { headers: auth })).json();
    const inputs = ['The quick brown fox', 'jumps over the lazy dog', 'The quick brown fox'];
    const eb = await client.embeddings.create({ model: ID, input: inputs });
    const ef = await client.embeddings.create({ model: ID, input: inputs, encoding_format: 'float' });
    const norm = (v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    const near = (a, b, tol) => a.length === b.length && a.every((x, k) => Math.abs(x - b[k]) <= tol);
    check(eb.object === 'list' && eb.model === ID && eb.data.length === inputs.length && Number.isInteger(props.n_embd) &&
      eb.data.every((d, i) => d.object === 'embedding' && d.index === i && Array.isArray(d.embedding) &&
        d.embedding.length === props.n_embd) && eb.usage.prompt_tokens > 0 && eb.usage.total_tokens === eb.usage.prompt_tokens,
      'embeddings.create (base64, decoded by the SDK): one vector per input, in order, n_embd long',
      { n_embd: props.n_embd, data: eb.data.map((d) => [d.index, d.embedding.length]), usage: eb.usage });
    check(ef.data.length === inputs.length && ef.data.every((d, i) => near(d.embedding, eb.data[i].embedding, 1e-6)),
      'embeddings encoding_format float equals the decoded base64 within 1e-6');
    check(eb.data.every((d) => Math.abs(norm(d.embedding) - 1) < 1e-5), 'embeddings have norm 1',
      eb.data.map((d) => norm(d.embedding)));
    check(near(eb.data[0].embedding, eb.data[2].embedding, 0) && !near(eb.data[0].embedding, eb.data[1].embedding, 1e-3),
      'the same input gives the same vector, another input another');
    const one = await client.embeddings.create({ model: ID, input: inputs[1] });
    check(one.data.length === 1 && near(one.data[0].embedding, eb.data[1].embedding, 0), 'a single string equals its place in a batch');
    const ids = (await (await fetch(`${S.base}/tokenize`, { method: 'POST', headers: auth,
      body: JSON.stringify({ content: inputs[0], add_special: true }) })).json()).tokens;
    const et = await client.embeddings.create({ model: ID, input: ids });
    const ett = await client.embeddings.create({ model: ID, input: [ids, ids.slice(1)], dimensions: props.n_embd });
    check(near(et.data[0].embedding, eb.data[0].embedding, 0) && et.usage.prompt_tokens === ids.length &&
      near(ett.data[0].embedding, eb.data[0].embedding, 0) && !near(ett.data[1].embedding, eb.data[0].embedding, 1e-3),
      'token ids with BOS equal the text; without BOS they differ', { ids, usage: et.usage });
    try {
      await client.embeddings.create({ model: ID, input: 'x', dimensions: 8 });
      check(false, 'embeddings dimensions 8 rejected');
    } catch (e) {
      check(e instanceof OpenAI.BadRequestError && e.param === 'dimensions', 'embeddings dimensions other than n_embd: BadRequestError', String(e));
    }
    // errors surface as the SDK's typed errors
    try {
      await client.chat.completions.create({ model: 'nope', messages });
      check(false, 'unknown model rejected');
    } catch (e) {
      check(e instanceof OpenAI.NotFoundError && e.status === 404, 'unknown model: NotFoundError', String(e));
    }
    try {
      await new OpenAI({ baseURL: `${S.base}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list();
      check(false, 'wrong key rejected');
    } catch (e) {
      check(e instanceof OpenAI.AuthenticationError, 'wrong key: AuthenticationError', String(e));
    }
  } finally {
    S.proc.kill('SIGTERM');
    check((await S.exited) === 0, 'server exits 0');
  }
}

main().then(() => process.exit(finish('openai_sdk')), (e) => { console.log('not ok - exception', e); finish('openai_sdk'); process.exit(1); });
