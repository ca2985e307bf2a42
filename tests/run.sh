#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite: installs missing packages, builds twice (normal in
# build/, ASan+UBSan in build-asan/), runs every CTest test in both, and
# exits non-zero if anything fails. When a CUDA toolkit is present it also
# compiles (never runs) the CUDA backend in build-cuda/, so GPU code keeps
# compiling on machines without a GPU. Prints each phase's seconds.
#
# usage: tests/run.sh [-L label] [--only normal|asan] [--help]
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tests/run.sh [-L label] [--only normal|asan] [-h|--help]

Installs missing packages (deploy/setup-deps.sh), builds build/ (RelWithDebInfo)
and build-asan/ (ASan+UBSan), runs the tests with CTest in both and exits
non-zero if anything fails.

  -L label             run only tests with this CTest label (a regular
                       expression: unit, golden, integration, fault, fuzz,
                       or e.g. 'unit|golden')
  --only normal|asan   build and test one of the two builds only
  -h, --help           this text

Environment: MESH_CI_CUDA=0 skips the CUDA compile check (build-cuda/), which
otherwise runs when /usr/local/cuda/bin/nvcc exists. JOBS=N overrides the
build parallelism (default: nproc). CTEST_PARALLEL_LEVEL=N runs N tests at
once (default: one at a time).
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

labels=()
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -L)
            [ $# -ge 2 ] || { echo "run.sh: -L needs a label" >&2; exit 2; }
            labels=(-L "$2"); shift ;;
        -L*) labels=(-L "${1#-L}") ;;
        --only)
            [ $# -ge 2 ] || { echo "run.sh: --only needs normal or asan" >&2; exit 2; }
            only="$2"; shift ;;
        --only=*) only="${1#--only=}" ;;
        *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$only" in
    ""|normal|asan) ;;
    *) echo "run.sh: --only takes normal or asan, not '$only'" >&2; exit 2 ;;
esac

jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
t_start=$SECONDS
timings=()
# phase NAME CMD...: runs CMD, records its seconds (also when it fails).
phase() {
    local name="$1"; shift
    local t0=$SECONDS rc=0
    echo "=== $name"
    "$@" || rc=$?
    timings+=("$(printf '%-28s %5ds%s' "$name" $((SECONDS - t0)) "$([ $rc -ne 0 ] && echo '  FAILED')")")
    return $rc
}

print_timings() {
    echo "=== timings"
    local t
    for t in "${timings[@]}"; do echo "  $t"; done
    printf '  %-28s %5ds\n' "total" $((SECONDS - t_start))
}

phase "setup-deps" ./deploy/setup-deps.sh

configure_build() { # dir, cmake args...
    local dir="$1"; shift
    mkdir -p "$dir"
    cmake -S . -B "$dir" "$@" >"$dir/configure.log" 2>&1 || {
        cat "$dir/configure.log" >&2; return 1; }
    cmake --build "$dir" -j"$jobs"
}

failed=()
summaries=()
# run_ctest NAME DIR [env...]: runs CTest and keeps its summary lines.
run_ctest() {
    local name="$1" dir="$2"; shift 2
    local log="$dir/ctest.log" rc=0
    # Serial by default: integration tests start real processes on loopback
    # ports. CTEST_PARALLEL_LEVEL=N (read by ctest itself) runs N at once.
    env "$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error \
        "${labels[@]}" 2>&1 | tee "$log" || rc=$?
    # CTest's own summary: "N% tests passed, M tests failed out of T" and the
    # list of failed tests after it.
    summaries+=("[$name] $(grep -E 'tests passed|No tests were found' "$log" | tail -1)")
    return $rc
}

if [ "$only" != "asan" ]; then
    phase "build normal (build/)" configure_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        || failed+=("build normal")
    if [[ ! " ${failed[*]-} " =~ " build normal " ]]; then
        phase "ctest normal" run_ctest normal build || failed+=("tests normal")
    fi
fi
if [ "$only" != "normal" ]; then
    # RelWithDebInfo (-O2) keeps sanitized numeric tests fast; -fno-omit-frame-pointer
    # (added by MESH_SANITIZE) keeps stacks readable.
    phase "build asan (build-asan/)" configure_build build-asan \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMESH_SANITIZE=address,undefined \
        || failed+=("build asan")
    if [[ ! " ${failed[*]-} " =~ " build asan " ]]; then
        phase "ctest asan" run_ctest asan build-asan \
            ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 || failed+=("tests asan")
    fi
fi

# CUDA: compile only (CI has no GPU). Only in full runs, not for -L/--only.
if [ -z "$only" ] && [ ${#labels[@]} -eq 0 ]; then
    if [ "${MESH_CI_CUDA:-1}" = 0 ]; then
        echo "=== cuda compile check: skipped (MESH_CI_CUDA=0)"
    elif [ ! -x /usr/local/cuda/bin/nvcc ]; then
        echo "=== cuda compile check: skipped (no /usr/local/cuda/bin/nvcc)"
    elif [ ! -f kernels/cuda/CMakeLists.txt ]; then
        echo "=== cuda compile check: skipped (kernels/cuda/CMakeLists.txt does not exist yet)"
    else
        phase "build cuda (compile only)" configure_build build-cuda \
            -DMESH_CUDA=ON -DMESH_ENGINE_ONLY=ON -DMESH_BUILD_TESTS=OFF \
            -DCMAKE_CUDA_ARCHITECTURES="90;100;120" || failed+=("build cuda")
    fi
fi

print_timings
echo "=== summary"
for s in "${summaries[@]}"; do echo "  $s"; done
if [ ${#failed[@]} -gt 0 ]; then
    echo "run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "run.sh: all builds and tests passed"
