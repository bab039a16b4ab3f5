// schema_sampled.mjs: structured output sampled (temperature 1, several seeds, n > 1) on a random-
// weight model, every answer checked by Ajv (JSON Schema 2020-12 + formats), an implementation
// independent of the server's grammar. Driven by tests/test_server_schema.sh.
// Env: BITNET_BIN, MODEL (tiny synthetic), SHIPPED_MODEL (optional: the token-budget part).
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { check, finish, request, startServer } from './lib.mjs';

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

// Each schema exercises some keywords; together they cover every keyword docs/SERVER.md lists.
const schemas = {
  any_of_nullable_enum: {
    type: 'object', additionalProperties: false, required: ['id', 'color', 'note'],
    properties: {
      id: { anyOf: [{ type: 'integer', minimum: 1, maximum: 999 }, { type: 'string', pattern: '^[A-Z]{3}-[0-9]{2}$' }] },
      color: { enum: ['red', 'green', 'blue'] },
      note: { type: 'string', nullable: true, maxLength: 12 },
      maybe: { type: ['integer', 'null'] },
    },
  },
  one_of_const_bounds: {
    oneOf: [
      { type: 'object', additionalProperties: false, required: ['kind', 'r'],
        properties: { kind: { const: 'circle' }, r: { type: 'number', exclusiveMinimum: 0, maximum: 10 } } },
      { type: 'object', additionalProperties: false, required: ['kind', 'side'],
        properties: { kind: { const: 'square' }, side: { type: 'integer', minimum: 1, exclusiveMaximum: 100 } } },
    ],
  },
  ref_defs_recursive: {
    $defs: {
      node: { type: 'object', additionalProperties: false, required: ['v'],
        properties: { v: { type: 'integer', minimum: -5, maximum: 5 }, kids: { type: 'array', maxItems: 2, items: { $ref: '#/$defs/node' } } } },
    },
    $ref: '#/$defs/node',
  },
  strings_and_formats: {
    type: 'object', additionalProperties: false, required: ['code', 'name', 'day', 'mail', 'uid', 'at', 'ip', 'ip6', 'host', 'link', 'span'],
    properties: {
      code: { type: 'string', pattern: '^[a-z]{2,4}_(x|yz)\\d{1,3}$' },
      name: { type: 'string', minLength: 2, maxLength: 5 },
      day: { type: 'string', format: 'date' },
      mail: { type: 'string', format: 'email' },
      uid: { type: 'string', format: 'uuid' },
      at: { type: 'string', format: 'date-time' },
      ip: { type: 'string', format: 'ipv4' },
      ip6: { type: 'string', format: 'ipv6' },
      host: { type: 'string', format: 'hostname' },
      link: { type: 'string', format: 'uri' },
      span: { type: 'string', format: 'duration' },
    },
  },
  arrays: {
    type: 'object', additionalProperties: false, required: ['pair', 'tags', 'grid'],
    properties: {
      pair: { type: 'array', prefixItems: [{ type: 'string', maxLength: 3 }, { type: 'boolean' }], items: false, minItems: 2 },
      tags: { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 3 },
      grid: { type: 'array', maxItems: 2, items: { type: 'array', minItems: 1, maxItems: 2, items: { type: 'number', minimum: -1, maximum: 1 } } },
    },
  },
  maps_and_all_of: {
    allOf: [
      { type: 'object', required: ['scores'], properties: { scores: { type: 'object', additionalProperties: { type: 'integer', minimum: 0, maximum: 9 }, minProperties: 1, maxProperties: 3 } } },
      { required: ['flag'], properties: { flag: { type: 'boolean' } } },
    ],
  },
};

async function chat(S, body) {
  return request(S.base, 'POST', '/v1/chat/completions', { body: { model: S.id, messages: [{ role: 'user', content: 'Answer in JSON.' }], ...body } });
}

async function main() {
  const S = await startServer(process.env.BITNET_BIN, ['-m', process.env.MODEL, '-t', '1', '-c', '2048', '--parallel', '3']);
  S.id = process.env.MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');
  try {
    for (const [name, schema] of Object.entries(schemas)) {
      const validate = ajv.compile(schema);
      let answers = 0;
      for (const seed of [1, 2]) {
        const r = await chat(S, { n: 3, temperature: 1.0, top_p: 1, seed, max_tokens: 400,
          response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } } });
        if (!check(r.status === 200, `${name}: 200`, r.body)) continue;
        for (const ch of r.json.choices) {
          let v, parsed = false;
          try { v = JSON.parse(ch.message.content); parsed = true; } catch { /* reported below */ }
          check(parsed && validate(v), `${name} seed ${seed} choice ${ch.index}: valid`, { content: ch.message.content, errors: validate.errors, finish: ch.finish_reason });
          check(ch.finish_reason === 'stop', `${name}: finish_reason stop`, ch.finish_reason);
          answers++;
        }
      }
      check(answers === 6, `${name}: 6 sampled answers`, answers);
    }

    // a forced tool call: arguments follow a parameters schema with $ref and anyOf
    const params = { type: 'object', additionalProperties: false, required: ['where', 'when'],
      $defs: { place: { type: 'object', additionalProperties: false, required: ['city'], properties: { city: { type: 'string', maxLength: 10 }, zip: { type: 'string', pattern: '^\\d{5}$' } } } },
      properties: { where: { $ref: '#/$defs/place' }, when: { anyOf: [{ type: 'string', format: 'date' }, { const: 'now' }] }, days: { type: 'integer', minimum: 1, maximum: 7 } } };
    const vArgs = ajv.compile(params);
    const tools = [{ type: 'function', function: { name: 'forecast', parameters: params } },
      { type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {}, additionalProperties: false } } }];
    for (const seed of [5, 6, 7]) {
      const r = await chat(S, { tools, tool_choice: 'required', temperature: 1.0, seed, max_tokens: 300 });
      const call = r.json?.choices?.[0]?.message?.tool_calls?.[0];
      let args = null;
      try { args = JSON.parse(call.function.arguments); } catch { args = null; }
      const ok = call && (call.function.name === 'noop' ? JSON.stringify(args) === '{}' : vArgs(args));
      check(r.status === 200 && r.json.choices[0].finish_reason === 'tool_calls' && ok, `forced tool call seed ${seed}`, { body: r.body, errors: vArgs.errors });
    }

    // refused keywords name themselves and where they are
    for (const [kw, sch] of [['uniqueItems', { type: 'array', uniqueItems: true }], ['not', { type: 'object', properties: { a: { not: { type: 'null' } } } }],
      ['multipleOf', { type: 'integer', multipleOf: 5 }]]) {
      const r = await chat(S, { max_tokens: 5, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: sch } } });
      check(r.status === 400 && r.json?.error?.message?.includes(kw) && r.json?.error?.param === 'response_format.json_schema.schema',
        `refused keyword ${kw}`, r.body);
    }

    // llama-server's GBNF `grammar`, vLLM's guided_regex and guided_choice (completions and chat)
    const gbnf = 'root ::= answer " " num\nanswer ::= "yes" | "no"  # a comment\nnum ::= [1-9] [0-9]{1,2}\n';
    for (const seed of [1, 2, 3]) {
      const r = await request(S.base, 'POST', '/v1/completions', { body: { model: S.id, prompt: 'Q:', grammar: gbnf, temperature: 1.0, seed, max_tokens: 20 } });
      check(r.status === 200 && /^(yes|no) [1-9][0-9]{1,2}$/.test(r.json.choices[0].text), `grammar (GBNF) seed ${seed}`, r.body);
      const g = await chat(S, { guided_regex: '[a-c]{3}-\\d{2}', temperature: 1.0, seed, max_tokens: 20 });
      check(g.status === 200 && /^[a-c]{3}-\d{2}$/.test(g.json.choices[0].message.content), `guided_regex seed ${seed}`, g.body);
      const c = await chat(S, { guided_choice: ['alpha', 'beta', 'gamma ray'], temperature: 1.0, seed, max_tokens: 20 });
      check(c.status === 200 && ['alpha', 'beta', 'gamma ray'].includes(c.json.choices[0].message.content), `guided_choice seed ${seed}`, c.body);
    }
    const resp = await request(S.base, 'POST', '/v1/responses', { body: { model: S.id, input: 'Pick one.', guided_choice: ['left', 'right'], temperature: 1.0, seed: 4, max_output_tokens: 10 } });
    check(resp.status === 200 && ['left', 'right'].includes(resp.json?.output?.[0]?.content?.[0]?.text), '/v1/responses takes guided_choice', resp.body);
    const bad = await request(S.base, 'POST', '/v1/completions', { body: { model: S.id, prompt: 'Q:', grammar: 'root ::= missing', max_tokens: 5 } });
    check(bad.status === 400 && bad.json?.error?.param === 'grammar' && /missing/.test(bad.json.error.message), 'invalid GBNF is a 400 naming the rule', bad.body);
    const badRe = await chat(S, { guided_regex: '(a)\\1', max_tokens: 5 });
    check(badRe.status === 400 && badRe.json?.error?.param === 'guided_regex', 'a backreference is a 400', badRe.body);
  } finally {
    S.proc.kill('SIGTERM');
    await S.exited;
  }

  // token budget: on the shipped model (a trained BPE), a forced tool call whose shortest form is
  // over max_tokens bytes long but fits in max_tokens tokens closes validly
  if (process.env.SHIPPED_MODEL) {
    const K = await startServer(process.env.BITNET_BIN, ['-m', process.env.SHIPPED_MODEL, '-t', '1', '-c', '1024']);
    K.id = process.env.SHIPPED_MODEL.replace(/^.*\//, '').replace(/\.gguf$/, '');
    try {
      const params = { type: 'object', additionalProperties: false, required: ['and'],
        properties: { and: { enum: ['the people', 'the lord'] } } };
      const tools = [{ type: 'function', function: { name: 'the_lord', parameters: params } }];
      const shortest = '{"name":"the_lord","arguments":{"and":"the lord"}}';
      const tk = await request(K.base, 'POST', '/tokenize', { body: { content: shortest } });
      const nTok = tk.json?.tokens?.length ?? 0;
      check(shortest.length > 40 && nTok > 0 && nTok <= 40, 'budget precondition: shortest call is >40 bytes, <=40 tokens', { bytes: shortest.length, tokens: nTok });
      const vArgs = ajv.compile(params);
      for (const seed of [1, 2, 3, 4]) {
        const r = await request(K.base, 'POST', '/v1/chat/completions', { body: { model: K.id, messages: [{ role: 'user', content: 'Who spake?' }],
          tools, tool_choice: 'required', temperature: 1.0, seed, max_tokens: 40 } });
        const call = r.json?.choices?.[0]?.message?.tool_calls?.[0];
        let args = null;
        try { args = JSON.parse(call.function.arguments); } catch { args = null; }
        check(r.status === 200 && r.json.choices[0].finish_reason === 'tool_calls' && args && vArgs(args) &&
          r.json.usage.completion_tokens <= 40, `forced tool call within max_tokens 40 (seed ${seed})`, r.body);
      }
    } finally {
      K.proc.kill('SIGTERM');
      await K.exited;
    }
  }
  process.exitCode = finish('schema_sampled');
}

main().catch((e) => { console.log('not ok - crashed:', e); process.exitCode = 1; });
