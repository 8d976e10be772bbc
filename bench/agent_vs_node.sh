#!/usr/bin/env bash
# claude-gateway run vs the Node peer (bench/peers/agent_node.cjs), interleaved, medians and
# ratios; see bench/bench_agent_vs_node.c and docs/benchmarks.md "Agent loop vs Node peer".
#   bench/agent_vs_node.sh [rounds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build JOBS="${JOBS:-2}" >/dev/null
exec build/bench/bench_agent_vs_node "${1:-5}"
