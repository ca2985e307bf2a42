#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Strict checks of the OpenAI endpoint's replies for the curl test:
#   http_check.py error FILE STATUS_GOT STATUS_WANT [PARAM] [CODE]
#   http_check.py chat FILE [tools|reasoning|plain]
#   http_check.py sse FILE [usage] [tools] [completion]
#   http_check.py completion FILE
#   http_check.py models FILE MODEL
#   http_check.py logprobs FILE chat|completion [stream] N
# Exits non-zero with one line naming what is wrong.
import json
import sys


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except Exception as e:
        die("%s is not JSON (%s): %r" % (path, e, raw[:200]))


def check_error(path, got, want, param=None, code=None):
    if int(got) != int(want):
        die("status %s, wanted %s: %s" % (got, want, open(path, "rb").read()[:300]))
    j = load(path)
    e = j.get("error")
    if not isinstance(e, dict) or set(e) != {"message", "type", "param", "code"}:
        die("not the OpenAI error shape: %r" % j)
    if not isinstance(e["message"], str) or not e["message"]:
        die("empty error message")
    if param and e["param"] != param:
        die("param %r, wanted %r (%s)" % (e["param"], param, e["message"]))
    if param and param not in e["message"]:
        die("message %r does not name %r" % (e["message"], param))
    if code and e["code"] != code:
        die("code %r, wanted %r (%s)" % (e["code"], code, e["message"]))


def check_common(j, obj):
    for k in ("id", "object", "created", "model", "choices"):
        if k not in j:
            die("missing %r in %r" % (k, j))
    if j["object"] != obj:
        die("object %r, wanted %r" % (j["object"], obj))
    if not isinstance(j["created"], int):
        die("created is not an integer")
    m = j.get("mesh")
    if not isinstance(m, dict) or not m.get("node"):
        die("no mesh.node in %r" % j)


def check_chat(path, kind):
    j = load(path)
    check_common(j, "chat.completion")
    if not j["id"].startswith("chatcmpl-"):
        die("id %r" % j["id"])
    c = j["choices"]
    if len(c) != 1 or c[0]["index"] != 0:
        die("choices %r" % c)
    msg = c[0]["message"]
    if msg["role"] != "assistant":
        die("role %r" % msg["role"])
    u = j["usage"]
    if u["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"] or u["completion_tokens"] < 1:
        die("usage %r" % u)
    if kind == "tools":
        if c[0]["finish_reason"] != "tool_calls":
            die("finish_reason %r" % c[0]["finish_reason"])
        tc = msg["tool_calls"]
        if len(tc) != 1 or tc[0]["type"] != "function" or not tc[0]["id"].startswith("call_"):
            die("tool_calls %r" % tc)
        f = tc[0]["function"]
        if f["name"] != "get_weather" or json.loads(f["arguments"]) != {"location": "Tokyo", "days": 2}:
            die("function %r" % f)
    elif kind == "reasoning":
        if not msg.get("reasoning_content") or "<think>" in msg["content"] or "</think>" in msg["content"]:
            die("reasoning not split out: %r" % msg)
    elif kind == "plain":
        if "reasoning_content" in msg or "think" in msg["content"]:
            die("thinking off but reasoning present: %r" % msg)
    if kind != "tools" and (not isinstance(msg["content"], str) or not msg["content"]):
        die("content %r" % msg.get("content"))
    print(c[0]["finish_reason"])


def parse_sse(path):
    """Every event is exactly 'data: <payload>' followed by a blank line."""
    raw = open(path, "rb").read().decode("utf-8")
    if not raw.endswith("\n\n"):
        die("stream does not end with a blank line: %r" % raw[-80:])
    events = raw[:-2].split("\n\n")
    out = []
    for ev in events:
        if not ev.startswith("data: ") or "\n" in ev:
            die("malformed SSE event %r" % ev[:120])
        out.append(ev[6:])
    return out


def check_sse(path, flags):
    evs = parse_sse(path)
    if evs[-1] != "[DONE]":
        die("stream does not end with [DONE]: %r" % evs[-1][:200])
    if "[DONE]" in evs[:-1]:
        die("[DONE] before the end")
    chunks = [json.loads(e) for e in evs[:-1]]
    completion = "completion" in flags
    obj = "text_completion" if completion else "chat.completion.chunk"
    ids = {c["id"] for c in chunks}
    if len(ids) != 1:
        die("chunk ids differ: %r" % ids)
    for c in chunks:
        if c["object"] != obj:
            die("object %r" % c["object"])
    usage = [c for c in chunks if c.get("usage")]
    body = [c for c in chunks if c["choices"]]
    if "usage" in flags:
        if len(usage) != 1 or usage[0] is not chunks[-1] or usage[0]["choices"] != []:
            die("usage chunk missing or misplaced")
    elif usage:
        die("usage chunk not asked for")
    if not completion and body[0]["choices"][0]["delta"].get("role") != "assistant":
        die("first chunk does not carry the role")
    finals = [c for c in body if c["choices"][0]["finish_reason"]]
    if len(finals) != 1 or finals[0] is not body[-1]:
        die("exactly the last choice chunk must have finish_reason")
    if not finals[0].get("mesh", {}).get("node"):
        die("final chunk has no mesh.node")
    text, reasoning, tools = "", "", []
    for c in body:
        ch = c["choices"][0]
        if completion:
            if ch["text"] == "" and not ch["finish_reason"]:
                die("empty text chunk")
            text += ch["text"]
            continue
        d = ch["delta"]
        if c is not body[0] and d.get("content") == "":
            die("empty content delta")
        text += d.get("content") or ""
        reasoning += d.get("reasoning_content") or ""
        tools += d.get("tool_calls") or []
    if "tools" in flags:
        if finals[0]["choices"][0]["finish_reason"] != "tool_calls" or len(tools) != 1:
            die("tool call deltas %r" % tools)
        if json.loads(tools[0]["function"]["arguments"]) != {"location": "Tokyo", "days": 2}:
            die("arguments %r" % tools[0])
    elif not text:
        die("no content in stream")
    if "<think>" in text or "</think>" in text or "<tool_call>" in text:
        die("tags leaked into content: %r" % text)
    print(finals[0]["choices"][0]["finish_reason"])


def check_completion(path):
    j = load(path)
    check_common(j, "text_completion")
    c = j["choices"][0]
    if not isinstance(c["text"], str) or not c["text"] or c["finish_reason"] not in ("stop", "length"):
        die("choice %r" % c)
    print(c["finish_reason"])


def check_models(path, model):
    j = load(path)
    if j.get("object") != "list":
        die("object %r" % j.get("object"))
    ids = [m["id"] for m in j["data"]]
    if model not in ids or model + ":bf16" not in ids:
        die("models %r lack %s and %s:bf16" % (ids, model, model))
    m = [x for x in j["data"] if x["id"] == model][0]
    if m["object"] != "model" or m["mesh"]["quants"] != ["bf16"] or not m["mesh"]["nodes"]:
        die("model entry %r" % m)


def check_alternatives(where, tok, lp, alts, n):
    """One token's alternatives: exactly n, sorted descending, all <= 0, and
    (greedy, as every test request is) the sampled token first."""
    if len(alts) != n:
        die("%s: %d alternatives, wanted %d: %r" % (where, len(alts), n, alts))
    vals = [a[1] for a in alts]
    if any(not isinstance(v, float) and not isinstance(v, int) for v in vals):
        die("%s: logprobs %r" % (where, vals))
    if any(v > 0 for v in vals + [lp]):
        die("%s: a logprob above 0: %r / %r" % (where, lp, vals))
    if vals != sorted(vals, reverse=True):
        die("%s: alternatives not sorted: %r" % (where, vals))
    if n and (alts[0][0] != tok or alts[0][1] != lp):
        die("%s: greedy token %r (%r) is not the first alternative %r" % (where, tok, lp, alts[0]))


def shown(raw):
    """The token text the endpoint shows for these bytes."""
    try:
        t = raw.decode("utf-8")
        if "\0" not in t:
            return t
    except UnicodeDecodeError:
        pass
    return "bytes:" + "".join("\\x%02x" % c for c in raw)


def check_entry(where, e, n):
    """A chat logprobs.content entry: token, logprob, bytes, top_logprobs."""
    if set(e) != {"token", "logprob", "bytes", "top_logprobs"}:
        die("%s: entry keys %r" % (where, sorted(e)))
    for a in [e] + e["top_logprobs"]:
        if set(a) - {"top_logprobs"} != {"token", "logprob", "bytes"} or not isinstance(a["bytes"], list):
            die("%s: alternative %r" % (where, a))
        if a["token"] != shown(bytes(a["bytes"])):
            die("%s: token %r, wanted %r for its bytes" % (where, a["token"], shown(bytes(a["bytes"]))))
    check_alternatives(where, e["token"], e["logprob"],
                       [(a["token"], a["logprob"]) for a in e["top_logprobs"]], n)
    return bytes(e["bytes"])


def check_logprobs(path, kind, stream, n):
    """Every token's entry; the tokens' bytes must give the text. Prints the
    number of entries."""
    content = reasoning = ""
    if stream:
        chunks = [json.loads(e) for e in parse_sse(path)[:-1]]
        choices = [c["choices"][0] for c in chunks if c["choices"]]
        for c in choices:
            if kind == "completion":
                content += c.get("text") or ""
            else:
                content += c["delta"].get("content") or ""
                reasoning += c["delta"].get("reasoning_content") or ""
        parts = [c["logprobs"] for c in choices if c["logprobs"] is not None]
        usage, finish = None, choices[-1]["finish_reason"]
    else:
        j = load(path)
        c = j["choices"][0]
        if kind == "completion":
            content = c["text"]
        else:
            content = c["message"]["content"] or ""
            reasoning = c["message"].get("reasoning_content") or ""
        parts = [c["logprobs"]]
        usage, finish = j["usage"], c["finish_reason"]
    count = 0
    if kind == "chat":
        got = b""
        for part in parts:
            if not isinstance(part, dict) or set(part) != {"content"}:
                die("chat logprobs %r" % part)
            for e in part["content"]:
                got += check_entry("token %d" % count, e, n)
                count += 1
        try:
            g = got.decode("utf-8")
        except UnicodeDecodeError:
            g = None  # the stream shows invalid bytes as U+FFFD: not comparable
        if g is not None and (content not in g or reasoning not in g):
            die("the tokens' bytes %r do not hold %r and %r" % (g, reasoning, content))
    else:
        toks = []
        offs = []
        for part in parts:
            if not isinstance(part, dict) or set(part) != {"tokens", "token_logprobs", "top_logprobs", "text_offset"}:
                die("completion logprobs %r" % part)
            t, lps, tops, o = part["tokens"], part["token_logprobs"], part["top_logprobs"], part["text_offset"]
            if not (len(t) == len(lps) == len(o) == len(tops)):
                die("parallel arrays differ in length: %r" % part)
            for i in range(len(t)):
                check_alternatives("token %d" % count, t[i], lps[i], list(tops[i].items()), n)
                count += 1
            toks += t
            offs += o
        if offs != sorted(offs):
            die("text_offset decreases: %r" % offs)
        if not any(t.startswith("bytes:") for t in toks):
            if "".join(toks) != content:
                die("the tokens %r are not the text %r" % (toks, content))
            want = [len("".join(toks[:i])) for i in range(len(toks))]
            if offs != want:
                die("text_offset %r, wanted %r" % (offs, want))
    if count == 0:
        die("no logprob entries")
    if usage and not (count == usage["completion_tokens"] or
                      (finish == "stop" and count == usage["completion_tokens"] - 1)):
        die("%d entries for %d completion tokens" % (count, usage["completion_tokens"]))
    print(count)


cmd = sys.argv[1]
a = sys.argv[2:]
if cmd == "error":
    check_error(*a)
elif cmd == "chat":
    check_chat(a[0], a[1] if len(a) > 1 else "")
elif cmd == "sse":
    check_sse(a[0], a[1:])
elif cmd == "completion":
    check_completion(a[0])
elif cmd == "models":
    check_models(a[0], a[1])
elif cmd == "logprobs":
    check_logprobs(a[0], a[1], "stream" in a[2:-1], int(a[-1]))
else:
    die("unknown check " + cmd)
