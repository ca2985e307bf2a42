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
if [ ! -f "$MESH_NPM_PREFIX/node_modules/openai/package.json" ]; then
    mkdir -p "$MESH_NPM_PREFIX"
    npm install --no-save --no-audit --no-fund --prefix "$MESH_NPM_PREFIX" openai >&2 ||
        { echo "FAIL: npm install openai failed" >&2; exit 1; }
fi
BASE="$BASE" MESH_NPM_PREFIX="$MESH_NPM_PREFIX" node "$HERE/openai/sdk_real_test.js"
