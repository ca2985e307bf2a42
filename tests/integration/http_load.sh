#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 64 concurrent streaming clients against a real mesh; streams well formed
# and memory of coordinator and node back to its level (openai/load_test.js).
# NODE_KIND=real: the node is a real meshnode generating with the test model
# (greedy, so every client must get the same text); default: the scripted node.
. "$(dirname "$0")/http_mesh.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
command -v node >/dev/null || { echo "FAIL: node is needed (deploy/setup-deps.sh)" >&2; exit 1; }
mesh_up
BASE="$BASE" COORD_PID="$COORD_PID" NODE_PID="$NODE_PID" REAL=$([ "${NODE_KIND:-fake}" = real ] && echo 1 || echo 0) \
    node "$HERE/openai/load_test.js"
