#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The OpenAI endpoint in front of a real meshnode serving the test model.
# The official openai package runs shape checks against it
# (openai/sdk_real_test.js): the node must report that it can generate.
. "$(dirname "$0")/http_mesh.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
: "${MESH_TESTDATA:?MESH_TESTDATA must name the shared test data}"
NODE_KIND=real mesh_up
curl -sf "$BASE/v1/models" | grep -q '"id":"glm-tiny:q8_0"' ||
    { echo "FAIL: the real node's model is not listed" >&2; exit 1; }
echo "ok: model listed"
CAN=$(curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN/admin/v1/nodes" |
    python3 -c 'import json,sys; n=json.load(sys.stdin); print(int(any(m.get("can_generate") for x in n for m in x.get("models", []))))')
[ "$CAN" = 1 ] || { echo "FAIL: the real node does not report can_generate" >&2; exit 1; }
# top_logprobs from the real sampler (greedy): exactly N alternatives per
# token, sorted, all <= 0, the sampled token first; chat and completions,
# plain and streamed, then the 400s.
CHECK=(python3 "$HERE/http_check.py")
post() { # NAME PATH BODY: body in $WORK/NAME.out, status in $ST
    ST=$(curl -s -o "$WORK/$1.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$3" "$BASE$2")
}
MSG='"messages":[{"role":"user","content":"Hello!"}],"temperature":0,"max_tokens":10'
post lp1 /v1/chat/completions "{\"model\":\"glm-tiny\",$MSG,\"logprobs\":true,\"top_logprobs\":7}"
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/lp1.out" chat 7 >/dev/null ||
    { echo "FAIL: chat top_logprobs" >&2; exit 1; }
post lp2 /v1/chat/completions "{\"model\":\"glm-tiny\",$MSG,\"logprobs\":true,\"top_logprobs\":20,\"stream\":true}"
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/lp2.out" chat stream 20 >/dev/null ||
    { echo "FAIL: chat stream top_logprobs" >&2; exit 1; }
post lp3 /v1/completions '{"model":"glm-tiny","prompt":"Once upon a time","temperature":0,"max_tokens":10,"logprobs":5}'
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/lp3.out" completion 5 >/dev/null ||
    { echo "FAIL: completions logprobs" >&2; exit 1; }
post lp4 /v1/completions '{"model":"glm-tiny","prompt":"Once upon a time","temperature":0,"max_tokens":10,"logprobs":3,"stream":true}'
[ "$ST" = 200 ] && "${CHECK[@]}" logprobs "$WORK/lp4.out" completion stream 3 >/dev/null ||
    { echo "FAIL: completions stream logprobs" >&2; exit 1; }
echo "ok: top_logprobs (chat, chat stream, completions, completions stream)"
post lp5 /v1/chat/completions "{\"model\":\"glm-tiny\",$MSG,\"logprobs\":true,\"top_logprobs\":21}"
"${CHECK[@]}" error "$WORK/lp5.out" "$ST" 400 top_logprobs || exit 1
post lp6 /v1/chat/completions "{\"model\":\"glm-tiny\",$MSG,\"top_logprobs\":3}"
"${CHECK[@]}" error "$WORK/lp6.out" "$ST" 400 top_logprobs || exit 1
echo "ok: top_logprobs 400s"
if [ ! -f "$MESH_NPM_PREFIX/node_modules/openai/package.json" ]; then
    mkdir -p "$MESH_NPM_PREFIX"
    npm install --no-save --no-audit --no-fund --prefix "$MESH_NPM_PREFIX" openai >&2 ||
        { echo "FAIL: npm install openai failed" >&2; exit 1; }
fi
BASE="$BASE" MESH_NPM_PREFIX="$MESH_NPM_PREFIX" node "$HERE/openai/sdk_real_test.js"
