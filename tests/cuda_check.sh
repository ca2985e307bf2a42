#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The CUDA backend's correctness run, for the GPU machine (CI has no GPU and
# only compiles the backend): the op-by-op comparison with the CPU backend
# (test_backend_ops, including the batch-invariance and fused-vs-apart bit
# checks), the golden logits and greedy tests on the CUDA backend, and
# compute-sanitizer memcheck on the greedy run with CUDA graphs off.
# Prints one line per step and exits non-zero if any step fails.
#
# usage: tests/cuda_check.sh [build dir]
#   The build needs -DMESH_CUDA=ON (MESH_ENGINE_ONLY=ON is enough: it builds
#   these tests from libc, libm, pthreads, cmocka and the CUDA toolkit).
#   env: MESH_TESTDATA (default ../shared/testdata beside the checkout),
#        MESH_BIN_DIR (where meshrun is, default BUILD/bin),
#        OUT_DIR (where each step's full output goes, default a temp dir),
#        SANITIZER=0 skips compute-sanitizer (it takes a few minutes)
set -uo pipefail

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build=${1:-$root/build-cuda}
tests="$build/tests"
export MESH_TESTDATA=${MESH_TESTDATA:-$root/../shared/testdata}
# test_golden_greedy's CLI case runs meshrun from here (CTest sets it too).
export MESH_BIN_DIR=${MESH_BIN_DIR:-$build/bin}
out=${OUT_DIR:-$(mktemp -d /tmp/cuda_check.XXXXXX)}
mkdir -p "$out"
for t in test_backend_ops test_golden_logits test_golden_greedy; do
    [[ -x "$tests/$t" ]] || { echo "cuda_check.sh: $tests/$t is missing (build with -DMESH_CUDA=ON)" >&2; exit 2; }
done
if [[ -f "$build/CMakeCache.txt" ]] && ! grep -q '^MESH_CUDA:BOOL=ON' "$build/CMakeCache.txt"; then
    echo "cuda_check.sh: $build is not a CUDA build (configure it with -DMESH_CUDA=ON)" >&2
    exit 2
fi
[[ -d "$MESH_TESTDATA" ]] || { echo "cuda_check.sh: no reference data at $MESH_TESTDATA (set MESH_TESTDATA)" >&2; exit 2; }

fails=0
step() { # step NAME CMD...: runs CMD, its output into $out/NAME.txt
    local name=$1 rc
    shift
    "$@" >"$out/$name.txt" 2>&1
    rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "PASS  $name"
    else
        echo "FAIL  $name (rc $rc; last lines of $out/$name.txt below)"
        tail -n 15 "$out/$name.txt" | sed 's/^/      /'
        fails=$((fails + 1))
    fi
}

step backend_ops timeout 300 "$tests/test_backend_ops"
step golden_logits env MESH_TEST_BACKEND=cuda timeout 120 "$tests/test_golden_logits"
step golden_greedy env MESH_TEST_BACKEND=cuda timeout 120 "$tests/test_golden_greedy"
if [[ "${SANITIZER:-1}" != 0 ]]; then
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
    if [[ -z "$cs" ]]; then
        echo "FAIL  memcheck (compute-sanitizer not found; SANITIZER=0 skips this step)"
        fails=$((fails + 1))
    else
        step memcheck env MESH_TEST_BACKEND=cuda MESH_CUDA_GRAPH=0 timeout 600 \
            "$cs" --tool memcheck --error-exitcode 9 "$tests/test_golden_greedy"
    fi
fi
echo "outputs in $out"
[[ $fails -eq 0 ]] || { echo "cuda_check.sh: $fails step(s) failed" >&2; exit 1; }
echo "cuda_check.sh: all steps passed"
