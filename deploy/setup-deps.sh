#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages meshinfer needs to build and test, and only
# those that are missing. Idempotent and fast when nothing is missing (CI runs
# it on every build). As root it runs `apt-get update` once (only when
# something is missing) and installs; as another user it prints the exact
# command to run and exits 1.
#
# usage: deploy/setup-deps.sh [--with vulkan] [--vulkan] [--list] [--help]
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: deploy/setup-deps.sh [--with vulkan] [--list] [--help]

Installs the Debian 12 packages meshinfer needs (build, mesh libraries, tests)
that are not installed yet. Does nothing (exit 0) when all are present.

  --with vulkan, --vulkan   also the Vulkan backend's packages
                            (libvulkan-dev glslc mesa-vulkan-drivers)
  --list                    print the packages it would check, one a line
  -h, --help                this text

Not root: prints the apt-get command to run with sudo and exits 1.
CUDA (nvcc in /usr/local/cuda) and HIP (hipcc) are not installed by this script.
USAGE
}

# Package groups, by purpose. Add a package to the group it serves.
# An entry "pkg|cmd" counts as present when the command cmd exists, even if
# the package itself is not installed (e.g. npm bundled by another nodejs build).
PKGS_BUILD=(build-essential cmake pkg-config python3)
PKGS_MESH=(libzmq3-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev libsodium-dev
           libmicrohttpd-dev)
PKGS_TEST=(libcmocka-dev)
PKGS_FUZZ=(clang libclang-rt-14-dev)                # libFuzzer + sanitizer runtimes
PKGS_HTTP_TESTS=(curl ca-certificates "nodejs|node" "npm|npm")  # OpenAI SDK tests use node
PKGS_METRICS_TESTS=("prometheus|promtool")          # promtool checks /metrics output
# arm64 cross build + qemu: test_simd_neon_qemu checks the NEON kernels
PKGS_CROSS_TESTS=("gcc-aarch64-linux-gnu|aarch64-linux-gnu-gcc" libc6-dev-arm64-cross
                  "qemu-user|qemu-aarch64")
PKGS_VULKAN=(libvulkan-dev glslc mesa-vulkan-drivers) # optional: --with vulkan

want_vulkan=0
list_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --vulkan) want_vulkan=1 ;;
        --with)
            [ $# -ge 2 ] || { echo "setup-deps: --with needs a name (vulkan)" >&2; exit 2; }
            case "$2" in
                vulkan) want_vulkan=1 ;;
                *) echo "setup-deps: unknown --with '$2' (known: vulkan)" >&2; exit 2 ;;
            esac
            shift ;;
        --with=vulkan) want_vulkan=1 ;;
        --list) list_only=1 ;;
        *) echo "setup-deps: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

entries=("${PKGS_BUILD[@]}" "${PKGS_MESH[@]}" "${PKGS_TEST[@]}" "${PKGS_FUZZ[@]}"
         "${PKGS_HTTP_TESTS[@]}" "${PKGS_METRICS_TESTS[@]}" "${PKGS_CROSS_TESTS[@]}")
if [ "$want_vulkan" = 1 ]; then
    entries+=("${PKGS_VULKAN[@]}")
fi

if [ "$list_only" = 1 ]; then
    for e in "${entries[@]}"; do echo "${e%%|*}"; done
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup-deps: dpkg-query not found: this script supports Debian 12 (and derivatives) only" >&2
    exit 1
fi

# One dpkg-query call for all packages: "name status" lines.
names=()
for e in "${entries[@]}"; do names+=("${e%%|*}"); done
declare -A installed=()
while read -r name status; do
    [ "$status" = "installed" ] && installed["${name%%:*}"]=1
done < <(dpkg-query -W -f='${binary:Package} ${db:Status-Status}\n' "${names[@]}" 2>/dev/null || true)

missing=()
for e in "${entries[@]}"; do
    pkg="${e%%|*}"
    cmd=""
    [ "$e" != "$pkg" ] && cmd="${e#*|}"
    if [ -n "${installed[$pkg]:-}" ]; then continue; fi
    if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
    missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-deps: all ${#entries[@]} packages present"
    exit 0
fi

install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
    echo "setup-deps: missing packages: ${missing[*]}" >&2
    echo "setup-deps: run as root, or:" >&2
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive $install_cmd" >&2
    exit 1
fi

echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# `apt-get update` once, only now that something must be installed: package
# lists of a fresh image are often empty or stale.
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup-deps: done"
