# SPDX-License-Identifier: MIT
# Sourced by the HTTP endpoint tests: starts a real mesh on loopback (a
# scripted node speaking the real wire protocol, http_fake_node, and a real
# meshcoord with its OpenAI endpoint), registers the node through the admin
# API and waits until its model is listed. Everything lives in a temporary
# directory removed on exit; every process started here is stopped by pid.
#
#   . http_mesh.sh; mesh_up [meshcoord options...]
#   -> $BASE (http://127.0.0.1:PORT), $WORK, $COORD_PID, $NODE_PID, $ADMIN,
#      $ADMIN_TOKEN, $CANCEL_LOG. COORD_WRAP (e.g. "valgrind --leak-check=full")
#      runs meshcoord under a tool; KEEP_WORK=1 keeps the logs.
set -euo pipefail

: "${MESH_BIN_DIR:?MESH_BIN_DIR must point at the bin directory of the build}"
FAKE_NODE="${FAKE_NODE:-$MESH_BIN_DIR/../tests/http_fake_node}"
for b in "$MESH_BIN_DIR/meshcoord" "$FAKE_NODE"; do
    [ -x "$b" ] || { echo "FAIL: $b is not built" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "FAIL: curl is needed (deploy/setup-deps.sh)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mesh-http.XXXXXX")
PIDS=()
# Stops every process; a daemon that does not exit cleanly on SIGTERM (a
# crash on shutdown, or LeakSanitizer finding a leak) fails the test.
mesh_down() {
    local rc=$? p st bad=0
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        st=0
        wait "$p" 2>/dev/null || st=$?
        if [ "$st" != 0 ] && [ "$st" != 143 ]; then
            echo "FAIL: process $p exited with status $st on SIGTERM" >&2
            bad=1
        fi
    done
    if [ "$bad" = 1 ]; then
        tail -n 40 "$WORK"/*.log >&2 || true
        rc=1
    fi
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap mesh_down EXIT

# In sanitizer builds: no quarantine and free memory handed back at once, so
# the memory checks see the program, not the allocator; LeakSanitizer on.
# Appended to what the caller set (tests/run.sh sets ASAN_OPTIONS): in
# ASAN_OPTIONS the last setting of a flag wins.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0:allocator_release_to_os_interval_ms=0:detect_leaks=1"

s_wait_file() { # file, what
    local i
    for i in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done
    echo "FAIL: $2 did not start (no $1)" >&2
    cat "$WORK"/*.log >&2 || true
    exit 1
}

# start_node NAME [extra options]: another scripted node, registered.
start_node() {
    local name=$1; shift
    "$FAKE_NODE" --key "$WORK/$name.key" --info-file "$WORK/$name.info" \
        --cancel-log "$WORK/cancel.log" --name "$name" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    [ "$name" = node1 ] && NODE_PID=$!
    s_wait_file "$WORK/$name.info" "node $name"
    local ep key
    ep=$(sed -n 1p "$WORK/$name.info")
    key=$(sed -n 2p "$WORK/$name.info")
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"address\":\"$ep\",\"key\":\"$key\",\"name\":\"$name\"}" \
        "$ADMIN/admin/v1/nodes" >/dev/null || { echo "FAIL: cannot add node $name" >&2; exit 1; }
}

# start_real_node: a real meshnode serving the test model as node1.
start_real_node() {
    local model="$MESH_TESTDATA/glm-tiny/tiny-glm.q8_0.gguf" port key i
    [ -f "$model" ] || { echo "FAIL: test model $model is missing (MESH_TESTDATA)" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$MESH_BIN_DIR/meshnode" --listen "tcp://127.0.0.1:$port" --key "$WORK/node1.key" \
        --trust "$COORD_KEY" --model "glm-tiny=$model" --name node1 --heartbeat-ms 200 \
        --mem-limit 2G >"$WORK/node1.log" 2>&1 &
    NODE_PID=$!
    PIDS+=($NODE_PID)
    s_wait_file "$WORK/node1.key" meshnode
    sleep 0.1
    key=$("$MESH_BIN_DIR/meshnode" --key "$WORK/node1.key" --print-key)
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"address\":\"tcp://127.0.0.1:$port\",\"key\":\"$key\",\"name\":\"node1\"}" \
        "$ADMIN/admin/v1/nodes" >/dev/null || { echo "FAIL: cannot add the real node" >&2; exit 1; }
}

# mesh_up [meshcoord options]: NODE_KIND=real starts a real meshnode (test
# model from MESH_TESTDATA) instead of the scripted one.
mesh_up() {
    if [ "${NODE_KIND:-fake}" = real ]; then
        COORD_KEY=$("$MESH_BIN_DIR/meshcoord" --state "$WORK/state.json" --key "$WORK/coord.key" --print-key)
    fi
    ${COORD_WRAP:-} "$MESH_BIN_DIR/meshcoord" --state "$WORK/state.json" --key "$WORK/coord.key" \
        --admin 127.0.0.1:0 --admin-token-file "$WORK/admin.token" \
        --port-file "$WORK/admin.port" --listen 127.0.0.1:0 \
        --http-port-file "$WORK/http.port" --heartbeat-ms 200 "$@" \
        >"$WORK/coord.log" 2>&1 &
    COORD_PID=$!
    PIDS+=($COORD_PID)
    s_wait_file "$WORK/http.port" meshcoord
    s_wait_file "$WORK/admin.port" meshcoord
    ADMIN="http://127.0.0.1:$(cat "$WORK/admin.port")"
    ADMIN_TOKEN=$(tr -d '\n' <"$WORK/admin.token")
    BASE="http://127.0.0.1:$(cat "$WORK/http.port")"
    CANCEL_LOG="$WORK/cancel.log"
    if [ "${NODE_KIND:-fake}" = real ]; then start_real_node; else start_node node1; fi
    local i
    for i in $(seq 1 200); do
        if curl -s "$BASE/health" | grep -q '"nodes_up":1'; then return 0; fi
        sleep 0.05
    done
    echo "FAIL: node never came up" >&2
    cat "$WORK"/*.log >&2
    exit 1
}

# rss PID: resident memory in KiB.
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
