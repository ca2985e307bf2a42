#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The local demo: installs what is missing, builds build/, then runs a mesh on
# 127.0.0.1: one meshcoord (admin API + OpenAI-compatible HTTP endpoint) and
# two meshnode, CURVE keys and the admin token created on the fly in
# build/demo/, the nodes added with `meshctl node add`, `meshctl node list`,
# ONE chat request over HTTP with curl (answer and serving node printed), and
# a clean shutdown (SIGTERM: the nodes drain; no process is left behind).
#
# The default model is made by `meshrun synth --preset tiny --type q8_0`:
# RANDOM weights and a built-in vocabulary, so the answer is gibberish; it
# is cached in build/demo/. MODEL=/path/to/file.gguf (or --model) serves a
# real GGUF instead.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: deploy/demo.sh [--model FILE.gguf] [--no-build] [--build-dir DIR] [--keep] [-h|--help]

Installs missing packages (deploy/setup-deps.sh), builds build/, and runs a
local mesh: one meshcoord and two meshnode on 127.0.0.1, the nodes added with
meshctl, one chat request through the OpenAI-compatible HTTP API with curl
(prints the answer and which node served it), then a clean shutdown.

The demo model has RANDOM weights (meshrun synth --preset tiny --type q8_0,
cached in build/demo/): its answers are gibberish. To serve a real model:
    MODEL=/path/to/GLM-4.7-Flash-Q4_K_M.gguf ./deploy/demo.sh
(each of the two nodes loads it: it needs the memory twice).

  --model FILE.gguf   serve this GGUF (same as MODEL=FILE.gguf)
  --no-build          skip setup-deps.sh and the build (binaries must exist)
  --build-dir DIR     build folder with bin/ (default build/); the demo's
                      files go to DIR/demo/
  --keep              keep the run's logs, keys and token in DIR/demo/run/
  -h, --help          this text

Environment: MODEL (as --model), MODEL_NAME (served name; default "demo", or
"glm-4.7-flash" with MODEL), MESH_DEMO_NODE_PORT (first node port; default: a
free port from 20000 up).
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

model="${MODEL:-}"
build_dir="build"
do_build=1
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --model)
            [ $# -ge 2 ] || { echo "demo: --model needs a GGUF file" >&2; exit 2; }
            model="$2"; shift ;;
        --build-dir)
            [ $# -ge 2 ] || { echo "demo: --build-dir needs a folder" >&2; exit 2; }
            build_dir="$2"; shift ;;
        --no-build) do_build=0 ;;
        --keep) keep=1 ;;
        *) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$model" ] && [ ! -f "$model" ]; then
    echo "demo: model file '$model' not found" >&2
    exit 2
fi
case "$build_dir" in /*) ;; *) build_dir="$root/$build_dir" ;; esac
bin="$build_dir/bin"
demo="$build_dir/demo"
run="$demo/run"
served="${MODEL_NAME:-}"
[ -n "$served" ] || { [ -n "$model" ] && served="glm-4.7-flash" || served="demo"; }
pids=()

say() { printf '\n== %s\n' "$*"; }

# wait_for CMD...: polls for up to 30 s.
wait_for() {
    local i
    for i in $(seq 1 150); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# A TCP port nobody listens on at 127.0.0.1, from $1 up.
free_port() {
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
        p=$((p + 1))
    done
    echo "$p"
}

# SIGTERM every process we started (nodes drain, the coordinator stops),
# then wait for each; SIGKILL whatever is still there after 15 s.
stop_mesh() {
    local p i
    for p in "${pids[@]-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]-}"; do
        [ -n "$p" ] || continue
        for i in $(seq 1 75); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}

cleanup() {
    local rc=$?
    trap - EXIT
    stop_mesh
    if [ $rc -ne 0 ]; then
        echo "demo: failed; logs are in $run" >&2
        local f
        for f in "$run"/*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $f" >&2
            tail -n 15 "$f" >&2
        done
    elif [ "$keep" = 0 ]; then
        rm -rf "$run"
    else
        echo "demo: logs, keys and token kept in $run"
    fi
    exit $rc
}

ctl() { "$bin/meshctl" --url "http://127.0.0.1:$admin_port" --token-file "$run/admin.token" "$@"; }

# --- 1. packages and build ---------------------------------------------------

if [ "$do_build" = 1 ]; then
    say "installing missing packages (deploy/setup-deps.sh)"
    ./deploy/setup-deps.sh
    say "building $build_dir"
    cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" -j"$(nproc 2>/dev/null || echo 2)"
fi
for b in meshrun meshcoord meshnode meshctl; do
    [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing (build first, or drop --no-build)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "demo: curl is missing (deploy/setup-deps.sh installs it)" >&2; exit 1; }

mkdir -p "$demo"
rm -rf "$run"
mkdir -m 700 "$run"
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 2. the model --------------------------------------------------------------

if [ -z "$model" ]; then
    model="$demo/demo-tiny.q8_0.gguf"
    if [ ! -s "$model" ]; then
        say "making the demo model (meshrun synth --preset tiny --type q8_0)"
        "$bin/meshrun" synth --preset tiny --type q8_0 --out "$model" --quiet
    fi
    echo "NOTE: the demo model has RANDOM weights: its answers are gibberish."
    echo "      A real model: MODEL=/path/to/GLM-4.7-Flash-Q4_K_M.gguf ./deploy/demo.sh"
    mem_limit=$(( $(stat -c %s "$model") + 256 * 1024 * 1024 ))
else
    say "serving your model $model as '$served'"
    mem_limit=""
fi

# --- 3. the mesh ---------------------------------------------------------------

say "starting meshcoord (admin API and OpenAI endpoint on 127.0.0.1)"
"$bin/meshcoord" --key "$run/coord.key" --state "$run/coord.state.json" \
    --admin 127.0.0.1:0 --port-file "$run/admin.port" --admin-token-file "$run/admin.token" \
    --listen 127.0.0.1:0 --http-port-file "$run/http.port" --heartbeat-ms 500 \
    >"$run/meshcoord.log" 2>&1 &
pids+=($!)
wait_for test -s "$run/http.port" || { echo "demo: meshcoord did not start" >&2; exit 1; }
admin_port=$(cat "$run/admin.port")
http_port=$(cat "$run/http.port")
coord_pub=$("$bin/meshcoord" --key "$run/coord.key" --state "$run/coord.state.json" --print-key)
echo "admin API http://127.0.0.1:$admin_port, OpenAI API http://127.0.0.1:$http_port/v1"

# Below 32768, where Linux hands out ephemeral ports for outgoing
# connections, so no client socket can hold the port when the node binds it.
port=$(free_port "${MESH_DEMO_NODE_PORT:-$((20000 + RANDOM % 12000))}")
threads=$(( $(nproc 2>/dev/null || echo 2) / 2 ))
[ "$threads" -ge 1 ] || threads=1
for i in 1 2; do
    [ "$i" = 1 ] || port=$(free_port $((port + 1)))
    say "starting meshnode node$i on tcp://127.0.0.1:$port"
    "$bin/meshnode" --listen "tcp://127.0.0.1:$port" --key "$run/node$i.key" \
        --trust "$coord_pub" --model "$served=$model" --name "node$i" \
        --threads "$threads" --heartbeat-ms 500 ${mem_limit:+--mem-limit "$mem_limit"} \
        >"$run/node$i.log" 2>&1 &
    pids+=($!)
    node_pub=$("$bin/meshnode" --key "$run/node$i.key" --print-key)
    ctl node add "tcp://127.0.0.1:$port" --key "$node_pub" --name "node$i"
done

say "meshctl node list"
up() { ctl --json status 2>/dev/null | tr -d '[:space:]' | grep -q '"nodes_up":2[,}]'; }
wait_for up || { echo "demo: the nodes did not come up (see $run/node*.log)" >&2; exit 1; }
ctl node list

# --- 4. one chat request over HTTP ---------------------------------------------

say "POST /v1/chat/completions (curl)"
# Thinking off (GLM's chat_template_kwargs switch), so the answer is content
# rather than reasoning_content.
body='{"model":"'"$served"'","messages":[{"role":"user","content":"Say hello to the mesh in five words."}],"max_tokens":32,"temperature":0,"chat_template_kwargs":{"enable_thinking":false}}'
echo "$body"
curl -sS --fail-with-body -D "$run/headers.txt" -o "$run/answer.json" \
    -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$http_port/v1/chat/completions"
echo "--- reply"
cat "$run/answer.json"
echo
node=$(grep -i '^x-mesh-node:' "$run/headers.txt" | cut -d: -f2- | tr -d '\r ' || true)
echo "--- served by node: ${node:-?} (x-mesh-node header; also the body's \"mesh\" field)"
[ -n "$node" ] || { echo "demo: the reply names no node" >&2; exit 1; }
grep -q '"choices"' "$run/answer.json" || { echo "demo: the reply has no choices" >&2; exit 1; }

# --- 5. shutdown ----------------------------------------------------------------

say "shutting down (SIGTERM: nodes drain, then exit)"
stop_mesh
echo "demo: done"
