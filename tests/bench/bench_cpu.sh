#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CPU speed of the engine on the three tiny-glm files, with ratios.
#
# Builds nothing: give it a built meshrun. For each file it runs
# `meshrun bench` (prompt 512, generation 128) with the default thread count
# and with 1 thread, and prints our tokens/s, llama.cpp's figures on the same
# 2-core machine and files (the baseline from the issue), our ratio to them,
# and the ratio of multi-thread to 1 thread measured in this same run.
# Numbers from a shared or busy machine are noisy: run it on an idle one, or
# raise ROUNDS (env, default 1): each figure is then the best of ROUNDS runs.
# The load average at the start and end is printed with the table.
#
# usage: [ROUNDS=R] tests/bench/bench_cpu.sh [path/to/meshrun] [testdata dir] [threads]
set -euo pipefail

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
MESHRUN=${1:-${MESH_BIN_DIR:-build/bin}/meshrun}
TD=${2:-${MESH_TESTDATA:-../shared/testdata}}
THREADS=${3:-$(nproc)}
ROUNDS=${ROUNDS:-1}
if [[ ! -x "$MESHRUN" ]]; then
    echo "bench_cpu.sh: meshrun not found or not executable at '$MESHRUN'" >&2
    exit 2
fi

# llama.cpp on the same files and machine: generation tokens/s, and the
# prompt range the issue gives for the three files (11800-14300).
declare -A TG_REF=([bf16]=2600 [q8_0]=2900 [q4_k_m]=2800)
PP_LO=11800
PP_HI=14300

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "load average at start: $(loadavg); best of $ROUNDS round(s)"
printf '| file | threads | pp512 t/s | llama.cpp pp | ratio | tg128 t/s | llama.cpp tg | ratio | pp %s/1 thr | tg %s/1 thr |\n' "$THREADS" "$THREADS"
printf '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
for q in bf16 q8_0 q4_k_m; do
    f="$TD/glm-tiny/tiny-glm.$q.gguf"
    if [[ ! -f "$f" ]]; then
        echo "bench_cpu.sh: missing $f" >&2
        exit 2
    fi
    pp=""; tg=""; pp1=""; tg1=""
    for ((r = 0; r < ROUNDS; r++)); do
        multi=$("$MESHRUN" bench --model "$f" -p 512 -n 128 --threads "$THREADS" --json)
        one=$("$MESHRUN" bench --model "$f" -p 512 -n 128 --threads 1 --json)
        pp=$(best "$(field pp_tps <<<"$multi")" "$pp"); tg=$(best "$(field tg_tps <<<"$multi")" "$tg")
        pp1=$(best "$(field pp_tps <<<"$one")" "$pp1"); tg1=$(best "$(field tg_tps <<<"$one")" "$tg1")
    done
    printf '| %s | %s | %s | %s-%s | %s-%s | %s | %s | %s | %s | %s |\n' "$q" "$THREADS" "$pp" \
        "$PP_LO" "$PP_HI" "$(ratio "$pp" "$PP_HI")" "$(ratio "$pp" "$PP_LO")" "$tg" "${TG_REF[$q]}" \
        "$(ratio "$tg" "${TG_REF[$q]}")" "$(ratio "$pp" "$pp1")" "$(ratio "$tg" "$tg1")"
done
echo "1-thread figures: measured in this run; ratios >1 in the last two columns mean threads help."
echo "load average at end: $(loadavg)"
