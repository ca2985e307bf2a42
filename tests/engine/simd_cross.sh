#!/bin/sh
# SPDX-License-Identifier: MIT
# arm64 check of the CPU kernels, run on an x86-64 build host: compiles every
# portable and NEON file of kernels/cpu with aarch64-linux-gnu-gcc under the
# project's warning flags (-Werror), links the SIMD-vs-scalar checker
# test_simd_levels against the needed sources only (not the whole tree: this
# stays well under a minute on 2 cores) and runs it under qemu-aarch64 with
# --require neon, so NEON results are compared with scalar bit for bit.
# usage: simd_cross.sh SOURCE_DIR WORK_DIR
# Needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user
# (deploy/setup-deps.sh installs them).
set -eu
case "${1:-}" in
    -h|--help) sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -eq 2 ] || { echo "simd_cross.sh: need SOURCE_DIR WORK_DIR (see --help)" >&2; exit 2; }
src=$1
work=$2
cc=${MESH_CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${MESH_QEMU:-qemu-aarch64}
sysroot=${MESH_CROSS_SYSROOT:-/usr/aarch64-linux-gnu}
command -v "$cc" >/dev/null || { echo "simd_cross.sh: $cc not found (deploy/setup-deps.sh)" >&2; exit 1; }
command -v "$qemu" >/dev/null || { echo "simd_cross.sh: $qemu not found (deploy/setup-deps.sh)" >&2; exit 1; }
mkdir -p "$work"
flags="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -DMESH_CPU_ARM64=1"
flags="$flags -I$src/kernels/cpu -I$src/engine -I$src/common"

# 1. every kernels/cpu file an arm64 build compiles, compile only, 2 at a time
n=0
pids=""
for f in "$src"/kernels/cpu/*.c; do
    case "$f" in *_avx2.c|*_avx512.c|*_avx512vnni.c) continue ;; esac
    # shellcheck disable=SC2086
    $cc $flags -c "$f" -o "$work/$(basename "$f" .c).o" &
    pids="$pids $!"
    n=$((n + 1))
    if [ $((n % 2)) -eq 0 ]; then
        for p in $pids; do wait "$p"; done
        pids=""
    fi
done
for p in $pids; do wait "$p"; done

# 2. the checker, linked with what the fused dot products need
ok=$work/quant_dot.o
$cc $flags -c "$src/tests/engine/test_simd_levels.c" -o "$work/test_simd_levels.o"
$cc $flags -c "$src/engine/quant.c" -o "$work/quant.o"
$cc $flags -c "$src/engine/quant_ref.c" -o "$work/quant_ref.o"
$cc $flags -c "$src/common/mesh_err.c" -o "$work/mesh_err.o"
$cc -o "$work/test_simd_levels" "$work/test_simd_levels.o" "$ok" "$work/quant_dot_neon.o" \
    "$work/matmul_neon.o" "$work/cpu_features.o" "$work/quant.o" "$work/quant_ref.o" "$work/mesh_err.o" -lm -lpthread
echo "simd_cross.sh: $n kernels/cpu files compile for arm64"

# 3. run it under qemu: NEON must be there and match scalar
"$qemu" -L "$sysroot" "$work/test_simd_levels" --require neon
