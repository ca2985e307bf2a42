// SPDX-License-Identifier: MIT
// The official openai npm package against a real meshnode serving the test
// model (random weights: what it says is noise, so only shapes, usage,
// finish reasons and the serving node are checked, plus a tool result
// round trip the template must render). sdk_test.js does the exact-content
// checks against the scripted node.
// env: BASE, MESH_NPM_PREFIX.
'use strict';
const assert = require('assert');
const path = require('path');
const mod = require(path.join(process.env.MESH_NPM_PREFIX, 'node_modules', 'openai'));
const OpenAI = mod.OpenAI || mod.default;
const { parseStrict } = require('./sse.js');

const client = new OpenAI({ baseURL: process.env.BASE + '/v1', apiKey: 'unused', maxRetries: 0 });
const MODEL = 'glm-tiny';
let n = 0;
const ok = (what) => console.log(`ok ${++n}: ${what}`);
const usageOk = (u) => u.prompt_tokens > 0 && u.completion_tokens > 0 && u.total_tokens === u.prompt_tokens + u.completion_tokens;

async function main() {
  const ids = [];
  for await (const m of await client.models.list()) ids.push(m.id);
  assert(ids.includes(MODEL) && ids.includes(MODEL + ':q8_0'), 'models: ' + ids);
  ok('models');

  const { data: chat, response } = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 12, temperature: 0 })
    .withResponse();
  assert.strictEqual(response.headers.get('x-mesh-node'), 'node1');
  assert.strictEqual(chat.object, 'chat.completion');
  assert(['stop', 'length'].includes(chat.choices[0].finish_reason));
  assert(usageOk(chat.usage) && chat.usage.completion_tokens <= 12);
  assert.strictEqual(chat.mesh.node, 'node1');
  ok('chat');

  const raw = await fetch(process.env.BASE + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true }, chat_template_kwargs: { enable_thinking: false } }),
  });
  assert.strictEqual(raw.status, 200);
  // Greedy, so the noise is the same every run: sampled noise can write a
  // <tool_call> that does not parse, which comes back as content by design
  // (the parser loses no text), and would make the tag check below flaky.
  const s = parseStrict(await raw.text(), { usage: true });
  assert(['stop', 'length'].includes(s.finish) && usageOk(s.usage));
  ok('chat stream parses strictly');

  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }];
  const t = await client.chat.completions.create({
    model: MODEL, max_tokens: 8, tools,
    messages: [
      { role: 'user', content: 'Weather in Tokyo?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Tokyo"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
    ],
  });
  assert(['stop', 'length', 'tool_calls'].includes(t.choices[0].finish_reason) && usageOk(t.usage));
  ok('tool result round trip rendered and answered');

  // top_logprobs from the real sampler: exactly N per token, sorted, all
  // <= 0, and with temperature 0 the sampled token is the first of them.
  const N = 5;
  const lp = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hello!' }], max_tokens: 8, temperature: 0,
    logprobs: true, top_logprobs: N,
  });
  const entries = lp.choices[0].logprobs.content;
  assert(entries.length >= 1 && entries.length <= lp.usage.completion_tokens);
  for (const e of entries) {
    assert.strictEqual(e.top_logprobs.length, N);
    assert(e.logprob <= 0 && e.top_logprobs.every((a) => a.logprob <= 0));
    for (let i = 1; i < N; i++) assert(e.top_logprobs[i].logprob <= e.top_logprobs[i - 1].logprob);
    assert.strictEqual(e.top_logprobs[0].logprob, e.logprob);
    assert.strictEqual(e.top_logprobs[0].token, e.token);
    assert.deepStrictEqual(e.top_logprobs[0].bytes, e.bytes);
    assert(Array.isArray(e.bytes) && e.bytes.length > 0);
  }
  ok(`top_logprobs: ${N} per token over ${entries.length} tokens, greedy token first`);

  const c = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6 });
  assert.strictEqual(c.object, 'text_completion');
  assert(usageOk(c.usage));
  ok('completions');

  await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  ok('404 for an unknown model');
  console.log(`PASS: ${n} checks`);
}

main().catch((e) => {
  console.error('FAIL:', e && e.stack ? e.stack : e);
  process.exit(1);
});
