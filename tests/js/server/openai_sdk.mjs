// openai_sdk.mjs: the official OpenAI Node SDK, unchanged, against `bitnet serve` (driven by
// tests/test_server_openai.sh): models.list, completions (stream and not), chat (stream and not)
// and a tool-call round trip. Env: BITNET_BIN, MODEL.
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
