#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The OpenAI endpoint over curl against a real mesh on loopback: every
# endpoint, GLM output split into reasoning/tool calls (plain and streamed,
# SSE parsed strictly), each error status with the OpenAI error shape,
# queue-full 429, cancel on disconnect (seen at the node), and /metrics
# accepted by promtool.
. "$(dirname "$0")/http_mesh.sh"
CHECK=(python3 "$(dirname "$0")/http_check.py")
command -v promtool >/dev/null || { echo "FAIL: promtool is needed (Debian package prometheus)" >&2; exit 1; }

KEY=test-key-0123456789abcdef
printf '# client keys\n\n%s\nsecond-key-0123456789\n' "$KEY" >"$WORK/keys"
chmod 600 "$WORK/keys"
mesh_up --api-keys "$WORK/keys" --max-queue 3 --max-body 65536
AUTH=(-H "Authorization: Bearer $KEY")
N=0
ok() { N=$((N + 1)); echo "ok $N: $*"; }
# req NAME METHOD PATH [curl args]: body in $WORK/NAME.out, headers NAME.hdr, status $ST
req() {
    local n=$1 m=$2 p=$3
    shift 3
    ST=$(curl -s -o "$WORK/$n.out" -D "$WORK/$n.hdr" -w '%{http_code}' -X "$m" "$@" "$BASE$p")
}
chat() { req "$1" POST /v1/chat/completions "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary "$2"; }
comp() { req "$1" POST /v1/completions "${AUTH[@]}" -H 'Content-Type: application/json' --data-binary "$2"; }
USER='"messages":[{"role":"user","content":"Hi there"}]'
TOOLS='"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"days":{"type":"integer"}}}}}]'
WEATHER='"messages":[{"role":"user","content":"What is the weather in Tokyo?"}]'

req health GET /health
[ "$ST" = 200 ] && grep -q '"status":"ok"' "$WORK/health.out" && ok "health"

req m1 GET /v1/models
"${CHECK[@]}" error "$WORK/m1.out" "$ST" 401 "" invalid_api_key && ok "no key: 401"
req m2 GET /v1/models -H "Authorization: Bearer wrong-key-0123456789"
"${CHECK[@]}" error "$WORK/m2.out" "$ST" 401 "" invalid_api_key && ok "wrong key: 401"
req m3 GET /v1/models -H "Authorization: Bearer second-key-0123456789"
[ "$ST" = 200 ] && "${CHECK[@]}" models "$WORK/m3.out" glm-tiny && ok "models (second key)"
req m4 GET /v1/models/glm-tiny:bf16 "${AUTH[@]}"
[ "$ST" = 200 ] && grep -q '"id":"glm-tiny:bf16"' "$WORK/m4.out" && ok "one model"

chat c1 "{\"model\":\"glm-tiny\",$USER}"
[ "$ST" = 200 ] && "${CHECK[@]}" chat "$WORK/c1.out" reasoning >/dev/null &&
    grep -qi '^x-mesh-node: node1' "$WORK/c1.hdr" && ok "chat: reasoning split, x-mesh-node"
chat c2 "{\"model\":\"glm-tiny:bf16\",$USER,\"chat_template_kwargs\":{\"enable_thinking\":false}}"
[ "$ST" = 200 ] && "${CHECK[@]}" chat "$WORK/c2.out" plain >/dev/null && ok "chat: thinking off"
chat c3 "{\"model\":\"glm-tiny\",$WEATHER,$TOOLS}"
[ "$ST" = 200 ] && "${CHECK[@]}" chat "$WORK/c3.out" tools >/dev/null && ok "chat: tool call"
chat c4 "{\"model\":\"glm-tiny\",$USER,\"max_tokens\":5,\"chat_template_kwargs\":{\"enable_thinking\":false}}"
[ "$ST" = 200 ] && [ "$("${CHECK[@]}" chat "$WORK/c4.out")" = length ] && ok "chat: length"
chat c5 "{\"model\":\"glm-tiny\",$USER,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
[ "$ST" = 200 ] && grep -qi '^content-type: text/event-stream' "$WORK/c5.hdr" &&
    [ "$("${CHECK[@]}" sse "$WORK/c5.out" usage)" = stop ] && ok "chat stream + usage"
chat c6 "{\"model\":\"glm-tiny\",$WEATHER,$TOOLS,\"stream\":true}"
[ "$ST" = 200 ] && "${CHECK[@]}" sse "$WORK/c6.out" tools >/dev/null && ok "chat stream: tool call deltas"
chat c7 "{\"model\":\"glm-tiny\",$USER,\"logprobs\":true}"
[ "$ST" = 200 ] && python3 -c '
import json,sys
lp=json.load(open(sys.argv[1]))["choices"][0]["logprobs"]["content"]
assert lp and all(isinstance(e["logprob"],float) and e["logprob"]<0 for e in lp), lp
' "$WORK/c7.out" && ok "chat logprobs"
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/c7.out" chat 0 >/dev/null && ok "chat logprobs: entries without alternatives"
chat c10 "{\"model\":\"glm-tiny\",$USER,\"logprobs\":true,\"top_logprobs\":3}"
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/c10.out" chat 3 >/dev/null && python3 -c '
import json,sys
e=json.load(open(sys.argv[1]))["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1]
assert e["token"]=="bytes:\\xe4\\xbd" and e["bytes"]==[228,189], e
' "$WORK/c10.out" && ok "chat top_logprobs: 3 per token, half a character as bytes"
chat c11 "{\"model\":\"glm-tiny\",$USER,\"logprobs\":true,\"top_logprobs\":20,\"stream\":true}"
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/c11.out" chat stream 20 >/dev/null &&
    "${CHECK[@]}" sse "$WORK/c11.out" >/dev/null && ok "chat stream top_logprobs: 20 per token"
chat c8 "{\"model\":\"glm-tiny\",$USER,$TOOLS,\"tool_choice\":\"required\"}"
"${CHECK[@]}" error "$WORK/c8.out" "$ST" 500 tool_choice tool_choice_not_satisfied && ok "tool_choice required, not met: error"
chat c9 "{\"model\":\"glm-tiny\",$WEATHER,$TOOLS,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}"
[ "$ST" = 200 ] && "${CHECK[@]}" chat "$WORK/c9.out" tools >/dev/null && ok "tool_choice named"

comp p1 '{"model":"glm-tiny","prompt":"Once upon a time"}'
[ "$ST" = 200 ] && "${CHECK[@]}" completion "$WORK/p1.out" >/dev/null && ok "completions: text"
comp p2 '{"model":"glm-tiny","prompt":[1,2,3],"max_tokens":4}'
[ "$ST" = 200 ] && [ "$("${CHECK[@]}" completion "$WORK/p2.out")" = length ] && ok "completions: token ids"
comp p3 '{"model":"glm-tiny","prompt":"Once","stream":true}'
[ "$ST" = 200 ] && "${CHECK[@]}" sse "$WORK/p3.out" completion >/dev/null && ok "completions: stream"
comp p4 '{"model":"glm-tiny","prompt":"Once upon a time","logprobs":2,"max_tokens":12}'
[ "$ST" = 200 ] && [ "$("${CHECK[@]}" logprobs "$WORK/p4.out" completion 2)" = 12 ] && ok "completions logprobs: older shape, text_offset"
comp p5 '{"model":"glm-tiny","prompt":"Once","logprobs":5,"stream":true}'
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/p5.out" completion stream 5 >/dev/null &&
    "${CHECK[@]}" sse "$WORK/p5.out" completion >/dev/null && ok "completions stream logprobs"

# Errors.
chat e1 '{"model": "glm-tiny", "messages": ['
"${CHECK[@]}" error "$WORK/e1.out" "$ST" 400 "" invalid_json && ok "malformed JSON: 400"
chat e2 "$(printf '{"model":"glm-tiny","messages":[{"role":"user","content":"\xc3\x28"}]}')"
"${CHECK[@]}" error "$WORK/e2.out" "$ST" 400 "" invalid_json && ok "invalid UTF-8: 400"
chat e3 "{\"model\":\"glm-tiny\",\"x\":$(printf '[%.0s' $(seq 1 5000))$(printf ']%.0s' $(seq 1 5000)),$USER}"
"${CHECK[@]}" error "$WORK/e3.out" "$ST" 400 "" invalid_json && ok "deep nesting: 400"
chat e4 "{\"model\":\"glm-tiny\",$USER,\"max_tokens\":1e999}"
"${CHECK[@]}" error "$WORK/e4.out" "$ST" 400 max_tokens && ok "huge number: 400 names max_tokens"
chat e5 "{\"model\":\"glm-tiny\",$USER,\"n\":3}"
"${CHECK[@]}" error "$WORK/e5.out" "$ST" 400 n && ok "n=3: 400"
chat e13 "{\"model\":\"glm-tiny\",$USER,\"logprobs\":true,\"top_logprobs\":21}"
"${CHECK[@]}" error "$WORK/e13.out" "$ST" 400 top_logprobs && ok "top_logprobs 21: 400"
chat e14 "{\"model\":\"glm-tiny\",$USER,\"logprobs\":true,\"top_logprobs\":-1}"
"${CHECK[@]}" error "$WORK/e14.out" "$ST" 400 top_logprobs && ok "top_logprobs -1: 400"
chat e15 "{\"model\":\"glm-tiny\",$USER,\"top_logprobs\":2}"
"${CHECK[@]}" error "$WORK/e15.out" "$ST" 400 top_logprobs && ok "top_logprobs without logprobs: 400"
comp e16 '{"model":"glm-tiny","prompt":"x","logprobs":6}'
"${CHECK[@]}" error "$WORK/e16.out" "$ST" 400 logprobs && ok "completions logprobs 6: 400"
chat e6 "{\"model\":\"no-such-model\",$USER}"
"${CHECK[@]}" error "$WORK/e6.out" "$ST" 404 model model_not_found && ok "unknown model: 404"
chat e7 "{\"model\":\"glm-tiny:q2_k\",$USER}"
"${CHECK[@]}" error "$WORK/e7.out" "$ST" 404 model model_not_found && ok "unknown quant: 404"
head -c 70000 /dev/zero | tr '\0' a >"$WORK/big"
req e8 POST /v1/chat/completions "${AUTH[@]}" --data-binary "@$WORK/big"
"${CHECK[@]}" error "$WORK/e8.out" "$ST" 413 "" request_too_large && ok "body too large: 413"
LONG=$(head -c 30000 /dev/zero | tr '\0' x)
chat e9 "{\"model\":\"glm-tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}]}"
"${CHECK[@]}" error "$WORK/e9.out" "$ST" 400 "" context_length_exceeded && ok "prompt over every context: 400"
req e10 GET /v1/chat/completions "${AUTH[@]}"
"${CHECK[@]}" error "$WORK/e10.out" "$ST" 405 && ok "wrong method: 405"
req e11 GET /v2/nothing "${AUTH[@]}"
"${CHECK[@]}" error "$WORK/e11.out" "$ST" 404 "" unknown_url && ok "unknown path: 404"
curl -sf -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"on":true}' "$ADMIN/admin/v1/nodes/node1/drain" >/dev/null
chat e12 "{\"model\":\"glm-tiny\",$USER}"
"${CHECK[@]}" error "$WORK/e12.out" "$ST" 503 "" no_node_available && ok "no node can serve (drained): 503"
curl -sf -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"on":false}' "$ADMIN/admin/v1/nodes/node1/drain" >/dev/null

# Queue full, then clients that hang up: the node must hear the cancel.
: >"$CANCEL_LOG"
BG=()
for i in 1 2 3; do
    curl -s -N "${AUTH[@]}" -H 'Content-Type: application/json' \
        --data-binary '{"model":"glm-tiny","messages":[{"role":"user","content":"SLOW"}],"stream":true}' \
        "$BASE/v1/chat/completions" >"$WORK/slow$i.out" 2>/dev/null &
    BG+=($!)
done
for i in $(seq 1 100); do
    curl -s "$BASE/health" | grep -q '"in_flight":3' && break
    sleep 0.05
done
chat q1 "{\"model\":\"glm-tiny\",$USER}"
"${CHECK[@]}" error "$WORK/q1.out" "$ST" 429 "" queue_full && ok "queue full: 429"
kill "${BG[@]}"
wait "${BG[@]}" 2>/dev/null || true
for i in $(seq 1 100); do
    [ "$(grep -c '^cancel' "$CANCEL_LOG" || true)" = 3 ] && break
    sleep 0.05
done
[ "$(grep -c '^cancel' "$CANCEL_LOG")" = 3 ] && ok "3 disconnected streams canceled at the node"
# A non-streamed request whose client gives up.
: >"$CANCEL_LOG"
curl -s -m 1 "${AUTH[@]}" -d '{"model":"glm-tiny","messages":[{"role":"user","content":"SLOW"}]}' \
    "$BASE/v1/chat/completions" >/dev/null 2>&1 || true
for i in $(seq 1 100); do grep -q '^cancel' "$CANCEL_LOG" && break; sleep 0.05; done
grep -q '^cancel' "$CANCEL_LOG" && ok "disconnected non-streamed request canceled at the node"
for i in $(seq 1 100); do curl -s "$BASE/health" | grep -q '"in_flight":0' && break; sleep 0.05; done
curl -s "$BASE/health" | grep -q '"in_flight":0' && ok "queue empty again"

# Metrics.
req metrics GET /metrics
[ "$ST" = 200 ] && promtool check metrics <"$WORK/metrics.out" && ok "promtool accepts /metrics"
for pat in 'mesh_http_requests_total{endpoint="chat",model="glm-tiny",status="200"}' \
    'mesh_http_requests_total{endpoint="chat",model="no-such-model",status="404"}' \
    'mesh_http_requests_total{endpoint="chat",model="glm-tiny",status="429"}' \
    'mesh_time_to_first_token_seconds_bucket{model="glm-tiny",le="+Inf"}' \
    'mesh_time_per_output_token_seconds_count{model="glm-tiny"}' \
    'mesh_completion_tokens_total{model="glm-tiny"}' 'mesh_prompt_tokens_total{model="glm-tiny"}' \
    'mesh_node_free_memory_bytes{node="node1"} 8589934592' 'mesh_node_up{node="node1"} 1' \
    'mesh_routing_decisions_total{node="node1",' 'mesh_queue_depth 0'; do
    grep -qF "$pat" "$WORK/metrics.out" || { echo "FAIL: /metrics lacks $pat" >&2; exit 1; }
done
ok "metrics carry requests, tokens, latency histograms, node gauges, routing"
[ "$N" = 44 ] || { echo "FAIL: $N of 44 checks passed" >&2; exit 1; }
echo "PASS: $N checks"
