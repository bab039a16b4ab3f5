// responses_sdk.mjs: POST /v1/responses through the official OpenAI Node SDK, unchanged (driven by
// tests/test_server_openai.sh): client.responses.create with string and item input, streamed
// (event order, sequence numbers, deltas against the final response), the SDK's stream helper, a
// forced function call and its result fed back as function_call / function_call_output items,
// json_schema and json_object text formats, and the refusals (previous_response_id, reasoning,
// built-in tools, background). The model has random weights: the checks are about structure and
// about agreement with /v1/chat/completions (same prompt tokens, same greedy text), not meaning.
// Env: BITNET_BIN, MODEL.
import OpenAI from 'openai';
import { check, finish, startServer } from './lib.mjs';

const ID = process.env.MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');

// The usage block is consistent, and the status says whether max_output_tokens cut the output.
function usageOk(r, max) {
  const u = r.usage;
  const cut = r.status === 'incomplete';
  return u && u.input_tokens > 0 && u.output_tokens >= 0 && u.total_tokens === u.input_tokens + u.output_tokens &&
    Number.isInteger(u.input_tokens_details?.cached_tokens) && u.output_tokens_details?.reasoning_tokens === 0 &&
    u.output_tokens <= max && (cut ? r.incomplete_details?.reason === 'max_output_tokens' && u.output_tokens === max
      : r.status === 'completed' && r.incomplete_details === null);
}

function messageText(r) {
  const m = r.output.find((o) => o.type === 'message');
  return m ? m.content.map((c) => c.text).join('') : undefined;
}

// Reads a streamed response: the events in order, with the checks every stream must pass.
async function readStream(stream) {
  const events = [];
  for await (const ev of stream) events.push(ev);
  const seqOk = events.every((ev, i) => ev.sequence_number === i);
  return { events, seqOk, types: events.map((e) => e.type) };
}

async function main() {
  const S = await startServer(process.env.BITNET_BIN, ['-m', process.env.MODEL, '-t', '1', '-c', '1024', '--api-key', 'sdk-key']);
  try {
    const client = new OpenAI({ baseURL: `${S.base}/v1`, apiKey: 'sdk-key', maxRetries: 0, timeout: 60000 });

    // ---- string input, cut by max_output_tokens (ignore_eos: the extension field, so the cut is certain)
    const r1 = await client.responses.create({ model: ID, input: 'Say hi', max_output_tokens: 8, temperature: 0,
      ignore_eos: true });
    check(r1.object === 'response' && /^resp_/.test(r1.id) && Number.isInteger(r1.created_at) && r1.model === ID &&
      r1.error === null && r1.output.length === 1 && r1.output[0].type === 'message' && /^msg_/.test(r1.output[0].id) &&
      r1.output[0].role === 'assistant' && r1.output[0].content[0].type === 'output_text' &&
      Array.isArray(r1.output[0].content[0].annotations), 'responses.create: response object shape', r1);
    check(typeof r1.output_text === 'string' && r1.output_text.length > 0 && r1.output_text === messageText(r1),
      'responses.create: SDK output_text is the message text, non-empty', r1);
    check(usageOk(r1, 8) && r1.status === 'incomplete' && r1.output[0].status === 'incomplete',
      'max_output_tokens cut: status incomplete, reason max_output_tokens, output_tokens = 8', r1);
    check(r1.max_output_tokens === 8 && r1.temperature === 0 && r1.top_p === 1 && Array.isArray(r1.tools) &&
      r1.tools.length === 0 && r1.tool_choice === 'auto' && r1.parallel_tool_calls === true &&
      r1.text?.format?.type === 'text' && r1.instructions === null && r1.store === false &&
      JSON.stringify(r1.metadata) === '{}', 'responses.create: request fields echoed', r1);

    // ---- item input with instructions: the same prompt and greedy text as the chat request it means
    const items = [
      { role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] },
      { role: 'assistant', content: [{ type: 'output_text', text: 'Hi!', annotations: [] }] },
      { type: 'message', role: 'developer', content: 'Answer briefly.' },
      { type: 'message', role: 'user', content: 'How are you?' },
    ];
    const r2 = await client.responses.create({ model: ID, instructions: 'You are terse.', input: items,
      max_output_tokens: 12, temperature: 0, metadata: { run: 'sdk' }, user: 'u1', store: true });
    const chat2 = await client.chat.completions.create({ model: ID, max_tokens: 12, temperature: 0, messages: [
      { role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: 'Hi!' }, { role: 'developer', content: 'Answer briefly.' },
      { role: 'user', content: 'How are you?' }] });
    check(usageOk(r2, 12) && r2.instructions === 'You are terse.' && r2.metadata.run === 'sdk' && r2.user === 'u1' &&
      r2.store === false, 'item input with instructions: usage, echo (store answered false)', r2);
    check(r2.usage.input_tokens === chat2.usage.prompt_tokens && r2.output_text === chat2.choices[0].message.content &&
      r2.usage.output_tokens === chat2.usage.completion_tokens,
      'item input = the chat request it means (prompt tokens, greedy text)', { r2, chat2 });

    // ---- streamed: event order, sequence numbers, deltas equal the final text and the non-streamed text
    const body3 = { model: ID, input: 'Once upon a time', max_output_tokens: 10, temperature: 0 };
    const r3 = await client.responses.create(body3);
    const s3 = await readStream(await client.responses.create({ ...body3, stream: true }));
    const t = s3.types;
    const last = s3.events[s3.events.length - 1];
    const deltas = s3.events.filter((e) => e.type === 'response.output_text.delta');
    const streamed = deltas.map((e) => e.delta).join('');
    const expectedTypes = ['response.created', 'response.in_progress', 'response.output_item.added',
      'response.content_part.added', ...deltas.map(() => 'response.output_text.delta'), 'response.output_text.done',
      'response.content_part.done', 'response.output_item.done',
      r3.status === 'incomplete' ? 'response.incomplete' : 'response.completed'];
    check(s3.seqOk, 'stream: sequence_number 0, 1, 2, ...', t);
    check(JSON.stringify(t) === JSON.stringify(expectedTypes), 'stream: event order', t);
    check(s3.events[0].response?.status === 'in_progress' && s3.events[0].response.output.length === 0 &&
      s3.events[0].response.id === last.response?.id, 'stream: response.created carries the in-progress response', s3.events[0]);
    const done = s3.events.find((e) => e.type === 'response.output_text.done');
    const itemId = s3.events[2].item?.id;
    check(deltas.every((e) => e.item_id === itemId && e.output_index === 0 && e.content_index === 0) &&
      done.text === streamed && messageText(last.response) === streamed,
      'stream: deltas (item_id, indexes) concatenate to output_text.done and the final response text', { streamed, done });
    check(streamed === r3.output_text && last.response.status === r3.status &&
      last.response.usage.output_tokens === r3.usage.output_tokens && last.response.usage.input_tokens === r3.usage.input_tokens,
      'stream: equals the non-streamed response (text, status, usage)', { streamed, r3 });

    // the SDK's stream helper accumulates the same text (its final object is the response.completed
    // one; after response.incomplete, as with OpenAI, it is the snapshot the deltas built)
    const helper = client.responses.stream(body3);
    const final = await helper.finalResponse();
    check(messageText(final) === r3.output_text && final.id.startsWith('resp_') &&
      (r3.status === 'incomplete' || final.status === 'completed'), 'responses.stream helper: finalResponse', final);

    // raw SSE: an `event:` line naming each data's type, no [DONE]
    const raw = await fetch(`${S.base}/v1/responses`, { method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer sdk-key' },
      body: JSON.stringify({ ...body3, stream: true }) });
    const rawText = await raw.text();
    const blocks = rawText.split('\n\n').filter((b) => b.trim());
    check(/text\/event-stream/.test(raw.headers.get('content-type')) && blocks.length === s3.events.length &&
      blocks.every((b) => {
        const m = b.match(/^event: (\S+)\ndata: (.*)$/s);
        return m && JSON.parse(m[2]).type === m[1];
      }) && !rawText.includes('[DONE]'), 'raw stream: event lines match data types, no [DONE]', rawText.slice(0, 400));

    // ---- forced function call, then its result fed back as items
    const tools = [{ type: 'function', name: 'get_weather', description: 'Current weather', strict: true,
      parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
        required: ['city', 'unit'] } }];
    const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const f1 = await client.responses.create({ model: ID, input: ask, tools,
      tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 60, temperature: 0.8, seed: 3 });
    const call = f1.output[0];
    let args = null;
    try { args = JSON.parse(call.arguments); } catch { args = null; }
    check(f1.status === 'completed' && f1.output.length === 1 && call.type === 'function_call' && /^fc_/.test(call.id) &&
      /^call_/.test(call.call_id) && call.name === 'get_weather' && call.status === 'completed' && f1.output_text === '',
      'forced function call: a function_call item', f1);
    check(args && typeof args.city === 'string' && ['c', 'f'].includes(args.unit), 'function call arguments match the parameters schema', call);
    check(f1.tools.length === 1 && f1.tools[0].name === 'get_weather' && f1.tools[0].strict === true &&
      f1.tool_choice.type === 'function' && f1.tool_choice.name === 'get_weather', 'tools and tool_choice echoed', f1);
    const req1 = await client.responses.create({ model: ID, input: ask, tools, tool_choice: 'required',
      max_output_tokens: 60, temperature: 0.8, seed: 5 });
    check(req1.output[0].type === 'function_call' && req1.output[0].name === 'get_weather' &&
      typeof JSON.parse(req1.output[0].arguments).city === 'string', 'tool_choice required: a function_call item', req1);
    const result = JSON.stringify({ temp: 21 });
    const f2 = await client.responses.create({ model: ID, tools, max_output_tokens: 8, temperature: 0,
      input: [...ask, ...f1.output, { type: 'function_call_output', call_id: call.call_id, output: result }] });
    check(usageOk(f2, 8) && f2.usage.input_tokens > f1.usage.input_tokens &&
      (f2.output[0].type === 'message' || f2.output[0].type === 'function_call'), 'function_call_output fed back', f2);
    const chatTools = tools.map((x) => ({ type: 'function', function: { name: x.name, description: x.description, parameters: x.parameters } }));
    const c2 = await client.chat.completions.create({ model: ID, tools: chatTools, max_tokens: 8, temperature: 0, messages: [
      ...ask, { role: 'assistant', content: null, tool_calls: [{ id: call.call_id, type: 'function',
        function: { name: call.name, arguments: call.arguments } }] },
      { role: 'tool', tool_call_id: call.call_id, content: result }] });
    check(f2.usage.input_tokens === c2.usage.prompt_tokens, 'function_call items = chat tool_calls and tool messages (prompt tokens)',
      { responses: f2.usage, chat: c2.usage });
    // streamed function call
    const s4 = await readStream(await client.responses.create({ model: ID, input: ask, tools, stream: true,
      tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 60, temperature: 0.8, seed: 3 }));
    const argDeltas = s4.events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
    const argsDone = s4.events.find((e) => e.type === 'response.function_call_arguments.done');
    check(s4.seqOk && JSON.stringify(s4.types) === JSON.stringify(['response.created', 'response.in_progress',
      'response.output_item.added', 'response.function_call_arguments.delta', 'response.function_call_arguments.done',
      'response.output_item.done', 'response.completed']), 'streamed function call: event order', s4.types);
    check(s4.events[2].item?.type === 'function_call' && argDeltas === call.arguments && argsDone?.arguments === call.arguments &&
      argsDone?.name === 'get_weather' && s4.events[6].response.output[0].call_id === s4.events[2].item.call_id,
      'streamed function call: arguments equal the non-streamed call', { argDeltas, call });

    // ---- structured output
    const schema = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
    const j1 = await client.responses.create({ model: ID, input: 'A person as JSON', max_output_tokens: 80, temperature: 0.7, seed: 1,
      text: { format: { type: 'json_schema', name: 'person', schema, strict: true } } });
    let person = null;
    try { person = JSON.parse(j1.output_text); } catch { person = null; }
    check(person && typeof person.name === 'string' && Number.isInteger(person.age) && j1.text.format.name === 'person',
      'text.format json_schema: output parses and satisfies the schema', j1);
    const j2 = await client.responses.create({ model: ID, input: 'Any JSON object', max_output_tokens: 60, temperature: 0.7, seed: 2,
      text: { format: { type: 'json_object' } } });
    let obj = null;
    try { obj = JSON.parse(j2.output_text); } catch { obj = null; }
    check(obj !== null && typeof obj === 'object' && !Array.isArray(obj), 'text.format json_object: output is a JSON object', j2);

    // ---- refusals surface as the SDK's BadRequestError naming the field
    const refused = async (body, param, pattern, what) => {
      try {
        await client.responses.create({ model: ID, input: 'x', ...body });
        check(false, what);
      } catch (e) {
        check(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === param && pattern.test(e.message), what, String(e));
      }
    };
    await refused({ previous_response_id: 'resp_123' }, 'previous_response_id', /stateless.*whole conversation as input items/,
      'previous_response_id: BadRequestError saying the server is stateless');
    await refused({ reasoning: { effort: 'low' } }, 'reasoning', /not supported/, 'reasoning: BadRequestError');
    await refused({ tools: [{ type: 'web_search' }] }, 'tools[0].type', /built-in tools/, 'built-in tool: BadRequestError');
    await refused({ background: true }, 'background', /not supported/, 'background: true: BadRequestError');
    await refused({ max_tokens: 5 }, 'max_tokens', /unknown parameter/, 'a chat-only field: BadRequestError');
    try {
      await client.responses.create({ model: 'nope', input: 'x' });
      check(false, 'unknown model rejected');
    } catch (e) {
      check(e instanceof OpenAI.NotFoundError && e.param === 'model', 'unknown model: NotFoundError', String(e));
    }
  } finally {
    S.proc.kill('SIGTERM');
    check((await S.exited) === 0, 'server exits 0');
  }
}

main().then(() => process.exit(finish('responses_sdk')), (e) => { console.log('not ok - exception', e); finish('responses_sdk'); process.exit(1); });
