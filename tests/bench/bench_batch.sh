#!/bin/sh
# SPDX-License-Identifier: MIT
# Aggregate generation tok/s with 1, 4, 16 concurrent sequences on the
# `small` synthetic model (q8_0), ratios 4/1 and 16/1 from the same run.
# usage: tests/bench/bench_batch.sh BUILD_DIR [bench_batch options...]
set -eu
usage="usage: $0 BUILD_DIR [--threads N] [--prompt P] [--gen G] [--seqs 1,4,16] [--rounds R]"
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    echo "$usage"
    exit 0
fi
if [ $# -lt 1 ]; then
    echo "$usage" >&2
    exit 2
fi
build=$1
shift
model="$build/small-q8_0.gguf"
if [ ! -f "$model" ]; then
    "$build/bin/meshrun" synth --preset small --type q8_0 --out "$model" --quiet
fi
# The load average says how far the figures are from an idle machine's.
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
"$build/bin/bench_batch" --model "$model" "$@"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
