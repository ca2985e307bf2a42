#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The official openai npm package (installed here into the build tree with
# npm, never committed) driving a real mesh: tests/integration/openai/sdk_test.js.
. "$(dirname "$0")/http_mesh.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
: "${MESH_NPM_PREFIX:?MESH_NPM_PREFIX must name a directory in the build tree}"
command -v node >/dev/null && command -v npm >/dev/null ||
    { echo "FAIL: node and npm are needed (deploy/setup-deps.sh)" >&2; exit 1; }
if [ ! -f "$MESH_NPM_PREFIX/node_modules/openai/package.json" ]; then
    mkdir -p "$MESH_NPM_PREFIX"
    npm install --no-save --no-audit --no-fund --prefix "$MESH_NPM_PREFIX" openai >&2 ||
        { echo "FAIL: npm install openai failed (is the npm registry reachable?)" >&2; exit 1; }
fi
mesh_up
BASE="$BASE" MESH_NPM_PREFIX="$MESH_NPM_PREFIX" node "$HERE/openai/sdk_test.js"
