#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The local demo: installs what is missing, builds, and runs the main job.
#
# The full demo starts a mesh on 127.0.0.1 (one meshcoord, two meshnode, CURVE
# keys created on the fly), serves a random-weight model made by `meshrun
# synth`, sends one chat request over HTTP, prints the answer and which node
# served it, and shuts everything down. Each step checks that the binaries it
# needs exist and support what it uses (their --help names the options); a
# step whose parts have not landed yet says so and the demo stops there,
# after showing what the build has today.
#
# usage: deploy/demo.sh [--model FILE.gguf] [--keep] [--help]
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: deploy/demo.sh [--model FILE.gguf] [--keep] [-h|--help]

Installs missing packages, builds build/, and runs a local mesh demo:
one meshcoord and two meshnode on 127.0.0.1 serving a model, one chat request
over the OpenAI-compatible HTTP API, then a clean shutdown.

  --model FILE.gguf   serve this GGUF instead of a random-weight demo model
                      (e.g. a GLM-4.7-Flash Q4_K_M file you downloaded)
  --keep              keep the demo's work folder (logs, keys) afterwards
  -h, --help          this text

Environment: MESH_DEMO_HTTP_PORT (default 18080), MESH_DEMO_NODE_PORT
(default 15555; the second node uses the next port).
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="$root/build/bin"

model=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --model)
            [ $# -ge 2 ] || { echo "demo: --model needs a GGUF file" >&2; exit 2; }
            model="$2"; shift ;;
        --keep) keep=1 ;;
        *) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -n "$model" ] && [ ! -f "$model" ]; then
    echo "demo: model file '$model' not found" >&2
    exit 2
fi

http_port="${MESH_DEMO_HTTP_PORT:-18080}"
node_port="${MESH_DEMO_NODE_PORT:-15555}"
work=""
pids=()

# --- helpers -----------------------------------------------------------------

say() { printf '\n== %s\n' "$*"; }

# supports BIN OPTION...: true when build/bin/BIN exists and its --help names
# every OPTION (so the demo never runs a binary that cannot do the step yet).
supports() {
    local b="$bin/$1"; shift
    [ -x "$b" ] || return 1
    local help
    help="$("$b" --help 2>&1)" || true
    local opt
    for opt in "$@"; do
        grep -q -- "$opt" <<<"$help" || return 1
    done
}

# The public key line of a key file (format: common/mesh_keys.h).
public_key_of() { sed -n 's/^[[:space:]]*public[[:space:]]*=[[:space:]]*//p' "$1" | head -1; }

# wait_for TEST_CMD... : polls for up to 20 s.
wait_for() {
    local i
    for i in $(seq 1 100); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

cleanup() {
    local rc=$?
    stop_mesh
    if [ -n "$work" ] && [ -d "$work" ]; then
        if [ "$keep" = 1 ] || [ $rc -ne 0 ]; then
            echo "demo: logs and keys kept in $work"
        else
            rm -rf "$work"
        fi
    fi
    exit $rc
}

# --- steps -------------------------------------------------------------------

build() {
    say "installing missing packages"
    ./deploy/setup-deps.sh
    say "building build/"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
}

show_binaries() {
    say "what this build has"
    local b
    for b in meshrun meshnode meshcoord meshctl; do
        if [ -x "$bin/$b" ]; then
            echo "--- $b --help"
            "$bin/$b" --help || true
        else
            echo "--- $b: not built yet"
        fi
    done
}

# Sets $model: the --model file, else a random-weight GLM-shaped model.
make_model() {
    if [ -n "$model" ]; then
        say "using your model $model"
        return 0
    fi
    # meshrun's subcommands print their own options with `meshrun synth --help`.
    local synth_help
    synth_help="$("$bin/meshrun" synth --help 2>&1)" || synth_help=""
    if ! grep -q -- "--out" <<<"$synth_help" || ! grep -q -- "--preset" <<<"$synth_help"; then
        echo "demo: 'meshrun synth' is not available yet: no demo model can be made" >&2
        return 1
    fi
    model="$work/demo-glm.gguf"
    say "making a demo model with random weights (meshrun synth)"
    "$bin/meshrun" synth --arch deepseek2 --preset tiny --out "$model"
    echo "NOTE: the demo model has RANDOM weights: its answers are gibberish."
    echo "      To serve a real model: deploy/demo.sh --model /path/to/GLM-4.7-Flash-Q4_K_M.gguf"
}

start_mesh() {
    if ! supports meshcoord --http --key --state || ! supports meshnode --listen --key --trust --model \
        || ! supports meshctl "node add"; then
        echo "demo: meshcoord/meshnode/meshctl are not built yet or lack the options the demo" >&2
        echo "      uses: the mesh demo arrives with the mesh issues." >&2
        return 1
    fi
    say "starting meshcoord on http://127.0.0.1:$http_port"
    "$bin/meshcoord" --http "127.0.0.1:$http_port" --key "$work/coord.key" \
        --state "$work/coord" >"$work/meshcoord.log" 2>&1 &
    pids+=($!)
    wait_for test -s "$work/coord.key" || { echo "demo: meshcoord made no key" >&2; return 1; }
    local coord_pub
    coord_pub="$(public_key_of "$work/coord.key")"
    printf '%s coordinator\n' "$coord_pub" >"$work/trusted.keys"

    local i port
    for i in 1 2; do
        port=$((node_port + i - 1))
        say "starting meshnode node$i on tcp://127.0.0.1:$port"
        "$bin/meshnode" --listen "tcp://127.0.0.1:$port" --key "$work/node$i.key" \
            --trust "$work/trusted.keys" --model "$model" --name "node$i" \
            >"$work/node$i.log" 2>&1 &
        pids+=($!)
        wait_for test -s "$work/node$i.key" || { echo "demo: node$i made no key" >&2; return 1; }
        "$bin/meshctl" --url "http://127.0.0.1:$http_port" --key "$work/coord.key" \
            node add "tcp://127.0.0.1:$port" --key "$(public_key_of "$work/node$i.key")" \
            --name "node$i"
    done
    "$bin/meshctl" --url "http://127.0.0.1:$http_port" --key "$work/coord.key" node list
}

ask() {
    say "asking through the OpenAI-compatible API"
    local body='{"model":"demo","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":32}'
    local headers="$work/headers.txt" answer="$work/answer.json"
    curl -sS --fail-with-body -D "$headers" -o "$answer" \
        -H 'Content-Type: application/json' -d "$body" \
        "http://127.0.0.1:$http_port/v1/chat/completions"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("answer:", r["choices"][0]["message"]["content"])' "$answer"
    echo "served by: $(grep -i '^x-mesh-node:' "$headers" | cut -d: -f2- | tr -d '\r' | sed 's/^ *//')"
}

stop_mesh() {
    local p
    for p in "${pids[@]-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]-}"; do
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    pids=()
}

# --- main --------------------------------------------------------------------

build
work="$(mktemp -d "${TMPDIR:-/tmp}/meshinfer-demo.XXXXXX")"
chmod 700 "$work"
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! supports meshcoord || ! supports meshnode || ! supports meshctl; then
    show_binaries
    say "the mesh demo arrives with the mesh issues"
    echo "This build has the engine tool meshrun only (shown above); meshcoord, meshnode"
    echo "and meshctl are not built yet. When they land, this script starts a local mesh"
    echo "and sends it a chat request."
    exit 0
fi

make_model || { show_binaries; exit 0; }
start_mesh || { show_binaries; exit 0; }
ask
say "shutting down"
stop_mesh
echo "demo: done"
