// SPDX-License-Identifier: MIT
// The official openai npm package, unchanged, against a real mesh: models,
// chat (plain and streamed), a tool call with its result sent back, text
// completions, and errors surfacing as the SDK's typed errors. Also reads
// one stream raw and parses it strictly (sse.js).
// env: BASE (http://host:port), MESH_NPM_PREFIX (where npm put openai).
'use strict';
const assert = require('assert');
const path = require('path');
const mod = require(path.join(process.env.MESH_NPM_PREFIX, 'node_modules', 'openai'));
const OpenAI = mod.OpenAI || mod.default;
const { parseStrict } = require('./sse.js');

const client = new OpenAI({ baseURL: process.env.BASE + '/v1', apiKey: 'any-string-keys-are-off', maxRetries: 0 });
const MODEL = 'glm-tiny';
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: { type: 'object', properties: { location: { type: 'string' }, days: { type: 'integer' } }, required: ['location'] },
  },
}];
let n = 0;
const ok = (what) => console.log(`ok ${++n}: ${what}`);

async function main() {
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  assert(ids.includes(MODEL) && ids.includes(MODEL + ':bf16'), 'models: ' + ids);
  const one = await client.models.retrieve(MODEL);
  assert.strictEqual(one.id, MODEL);
  ok('models.list / retrieve');

  const { data: chat, response } = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello!' }], temperature: 0 })
    .withResponse();
  assert.strictEqual(response.headers.get('x-mesh-node'), 'node1');
  assert.strictEqual(chat.object, 'chat.completion');
  assert.match(chat.id, /^chatcmpl-/);
  const msg = chat.choices[0].message;
  assert.strictEqual(msg.role, 'assistant');
  assert(typeof msg.content === 'string' && msg.content.length > 0);
  assert(typeof msg.reasoning_content === 'string' && msg.reasoning_content.length > 0);
  assert.strictEqual(chat.choices[0].finish_reason, 'stop');
  assert(chat.usage.completion_tokens > 0 && chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens);
  assert.strictEqual(chat.mesh.node, 'node1');
  ok('chat (reasoning_content, usage, x-mesh-node)');

  const stream = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], stream: true, stream_options: { include_usage: true },
  });
  let content = '', reasoning = '', finish = null, usage = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    content += c.choices[0].delta.content || '';
    reasoning += c.choices[0].delta.reasoning_content || '';
    finish = c.choices[0].finish_reason || finish;
  }
  assert.strictEqual(content, msg.content, 'streamed content equals the plain reply');
  assert.strictEqual(reasoning, msg.reasoning_content);
  assert.strictEqual(finish, 'stop');
  assert(usage && usage.completion_tokens === chat.usage.completion_tokens);
  assert(chunks > 10);
  ok(`chat stream (${chunks} chunks, usage)`);

  // Raw, strictly parsed.
  const raw = await fetch(process.env.BASE + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], stream: true }),
  });
  assert.strictEqual(raw.headers.get('content-type'), 'text/event-stream');
  const parsed = parseStrict(await raw.text());
  assert.strictEqual(parsed.content, msg.content);
  ok('raw stream parses strictly');

  // Tool call, then its result back.
  const messages = [{ role: 'user', content: 'What is the weather in Tokyo?' }];
  const t1 = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'auto' });
  assert.strictEqual(t1.choices[0].finish_reason, 'tool_calls');
  const call = t1.choices[0].message.tool_calls[0];
  assert.strictEqual(call.type, 'function');
  assert.strictEqual(call.function.name, 'get_weather');
  assert.deepStrictEqual(JSON.parse(call.function.arguments), { location: 'Tokyo', days: 2 });
  ok('tool call');
  messages.push(t1.choices[0].message);
  messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temp: 21 }) });
  const t2 = await client.chat.completions.create({ model: MODEL, messages, tools });
  assert.strictEqual(t2.choices[0].finish_reason, 'stop');
  assert.match(t2.choices[0].message.content, /21 degrees/);
  ok('tool result round trip');

  const ts = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'weather in Tokyo please' }], tools, stream: true,
  });
  const calls = {};
  let tfinish = null;
  for await (const c of ts) {
    for (const d of c.choices[0]?.delta?.tool_calls || []) {
      calls[d.index] = calls[d.index] || { name: '', args: '' };
      calls[d.index].name += d.function?.name || '';
      calls[d.index].args += d.function?.arguments || '';
    }
    tfinish = c.choices[0]?.finish_reason || tfinish;
  }
  assert.strictEqual(tfinish, 'tool_calls');
  assert.strictEqual(calls[0].name, 'get_weather');
  assert.deepStrictEqual(JSON.parse(calls[0].args), { location: 'Tokyo', days: 2 });
  ok('streamed tool call deltas');

  // top_logprobs through the SDK: N alternatives per token, best first, the
  // (greedy) sampled token first; the scripted node's second alternative is
  // half a UTF-8 character, shown as bytes.
  const lp = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], logprobs: true, top_logprobs: 4, max_tokens: 6,
  });
  const entries = lp.choices[0].logprobs.content;
  assert.strictEqual(entries.length, lp.usage.completion_tokens);
  for (const e of entries) {
    assert.strictEqual(e.top_logprobs.length, 4);
    assert.strictEqual(e.top_logprobs[0].token, e.token);
    assert.strictEqual(e.top_logprobs[0].logprob, e.logprob);
    assert.deepStrictEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    for (let i = 1; i < 4; i++) assert(e.top_logprobs[i].logprob <= e.top_logprobs[i - 1].logprob);
    assert(e.top_logprobs.every((a) => a.logprob <= 0));
    assert.strictEqual(e.top_logprobs[1].token, 'bytes:\\xe4\\xbd');
    assert.deepStrictEqual(e.top_logprobs[1].bytes, [0xe4, 0xbd]);
  }
  const lps = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], logprobs: true, top_logprobs: 2, max_tokens: 6, stream: true,
  });
  let streamed = 0;
  for await (const c of lps) {
    for (const e of c.choices[0]?.logprobs?.content || []) {
      assert.strictEqual(e.top_logprobs.length, 2);
      streamed++;
    }
  }
  assert.strictEqual(streamed, 6);
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], logprobs: true, top_logprobs: 21 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'top_logprobs');
  ok('top_logprobs: 4 per token (and 2 streamed), sorted, bytes; 21 refused');

  const comp = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 8 });
  assert.strictEqual(comp.object, 'text_completion');
  assert.strictEqual(comp.choices[0].finish_reason, 'length');
  assert(comp.choices[0].text.length > 0);
  ok('completions');

  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found' && /no-such-model/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], n: 2 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n');
  ok('errors: 404 NotFoundError, 400 BadRequestError with param');
  console.log(`PASS: ${n} checks`);
}

main().catch((e) => {
  console.error('FAIL:', e && e.stack ? e.stack : e);
  process.exit(1);
});
