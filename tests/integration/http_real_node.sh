#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The OpenAI endpoint in front of a real meshnode serving the test model.
# The node reports whether its build can generate (can_generate): if it can,
# the official openai package runs shape checks (openai/sdk_real_test.js);
# if it cannot yet (engine not in this build), the endpoint must list the
# model and answer a generation with 503 naming the node, not hang or crash.
. "$(dirname "$0")/http_mesh.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
: "${MESH_TESTDATA:?MESH_TESTDATA must name the shared test data}"
NODE_KIND=real mesh_up
curl -sf "$BASE/v1/models" | grep -q '"id":"glm-tiny:q8_0"' ||
    { echo "FAIL: the real node's model is not listed" >&2; exit 1; }
echo "ok: model listed"
CAN=$(curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN/admin/v1/nodes" |
    python3 -c 'import json,sys; n=json.load(sys.stdin); print(int(any(m.get("can_generate") for x in n for m in x.get("models", []))))')
if [ "$CAN" = 1 ]; then
    if [ ! -f "$MESH_NPM_PREFIX/node_modules/openai/package.json" ]; then
        mkdir -p "$MESH_NPM_PREFIX"
        npm install --no-save --no-audit --no-fund --prefix "$MESH_NPM_PREFIX" openai >&2 ||
            { echo "FAIL: npm install openai failed" >&2; exit 1; }
    fi
    BASE="$BASE" MESH_NPM_PREFIX="$MESH_NPM_PREFIX" node "$HERE/openai/sdk_real_test.js"
else
    echo "this meshnode build cannot generate yet: checking the refusal"
    ST=$(curl -s -o "$WORK/r.out" -w '%{http_code}' -d '{"model":"glm-tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4}' \
        "$BASE/v1/chat/completions")
    python3 "$HERE/http_check.py" error "$WORK/r.out" "$ST" 503 "" no_node_available
    grep -q node1 "$WORK/r.out" || { echo "FAIL: the 503 does not name the node" >&2; exit 1; }
    echo "PASS: model listed; generation refused with 503 naming node1"
fi
