#!/usr/bin/env bash
# usage: scripts/bench-routes.sh [case ...]
#
# Instructions per route match (src/route/), counted by callgrind on benches/routes.rs: each
# case runs N times in its own process and once with N=0; (Ir(N) - Ir(0)) / N is what one
# match costs, to the instruction and the same on every run. Cases default to all of the
# bench's (literal, parameter, constraint, catch-all, complex segments) and the literal floor.
# Environment: ROUTES_IR_N=20000 matches per count; CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${ROUTES_IR_N:-20000}"
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y valgrind >/dev/null; }
echo "building benches/routes.rs (bench profile)"
bin=$(cargo bench --locked --bench routes --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "routes" and m.get("executable"):
        print(m["executable"])')
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
    cases=(literal_floor/hit $(grep -o '^    ("[a-z_]*/[a-z_]*"' benches/routes.rs | tr -d ' ("'))
fi
ir() {
    local out
    out=$(mktemp)
    ROUTES_BENCH_LOOP="$1:$2" valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
    rm -f "$out"
}
echo "instructions per match (N=$n)"
for case in "${cases[@]}"; do
    base=$(ir "$case" 0)
    total=$(ir "$case" "$n")
    printf '%-36s %8.1f\n' "$case" "$(echo "($total - $base) / $n" | bc -l)"
done
