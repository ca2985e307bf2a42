// SPDX-License-Identifier: MIT
// Strict Server-Sent Events parsing for the OpenAI endpoint tests: every
// event must be exactly one "data: <payload>" line and a blank line, the
// stream must end with "data: [DONE]", every chunk must be JSON of the
// streamed shape with one id, the role first and exactly one finish_reason.
'use strict';

function fail(msg) {
  throw new Error('SSE: ' + msg);
}

// Returns {chunks, content, reasoning, toolCalls, finish, usage}.
function parseStrict(raw, opts = {}) {
  if (!raw.endsWith('\n\n')) fail('stream does not end with a blank line: ' + JSON.stringify(raw.slice(-80)));
  const events = raw.slice(0, -2).split('\n\n');
  const payloads = events.map((ev) => {
    if (!ev.startsWith('data: ') || ev.includes('\n')) fail('malformed event ' + JSON.stringify(ev.slice(0, 120)));
    return ev.slice(6);
  });
  if (payloads[payloads.length - 1] !== '[DONE]') fail('no [DONE] at the end');
  const chunks = payloads.slice(0, -1).map((p) => {
    if (p === '[DONE]') fail('[DONE] before the end');
    return JSON.parse(p);
  });
  const object = opts.completion ? 'text_completion' : 'chat.completion.chunk';
  const ids = new Set(chunks.map((c) => c.id));
  if (ids.size !== 1) fail('chunk ids differ');
  let content = '', reasoning = '', finish = null, usage = null, finals = 0;
  const toolCalls = [];
  chunks.forEach((c, i) => {
    if (c.object !== object) fail('object ' + c.object);
    if (typeof c.created !== 'number' || typeof c.model !== 'string') fail('chunk fields');
    if (c.usage) {
      if (i !== chunks.length - 1 || c.choices.length !== 0) fail('usage chunk misplaced');
      usage = c.usage;
      return;
    }
    if (c.choices.length !== 1) fail('choices length ' + c.choices.length);
    const ch = c.choices[0];
    if (opts.completion) {
      content += ch.text;
    } else {
      if (i === 0 && ch.delta.role !== 'assistant') fail('first chunk has no role');
      content += ch.delta.content || '';
      reasoning += ch.delta.reasoning_content || '';
      for (const t of ch.delta.tool_calls || []) toolCalls.push(t);
    }
    if (ch.finish_reason) {
      finals++;
      finish = ch.finish_reason;
      if (!c.mesh || !c.mesh.node) fail('final chunk has no mesh.node');
    } else if (finals) {
      fail('chunk after finish_reason');
    }
  });
  if (finals !== 1) fail('finish_reason chunks: ' + finals);
  if (opts.usage && !usage) fail('no usage chunk');
  if (!opts.usage && usage) fail('usage chunk not asked for');
  if (/<\/?think>|<tool_call>/.test(content)) fail('tags leaked into content');
  return { chunks, content, reasoning, toolCalls, finish, usage };
}

module.exports = { parseStrict };
