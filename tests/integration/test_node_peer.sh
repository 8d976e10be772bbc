#!/usr/bin/env bash
# The benchmark's Node peer (bench/peers/agent_node.cjs) keeps the contract of
# `claude-gateway run --output jsonl`: on the same scripted conversations (text only; thinking,
# text and two parallel tools, one on server-everything and the local greet; --sessions 3;
# a failing API) both print the same events with the same fields, "session" first when N > 1,
# and the same exit status. Only timings, the cost, the error text and key order may differ.
set -euo pipefail

BIN=${CGW_GATEWAY_BIN:?}
SRC=${CGW_SOURCE_DIR:?}
NPMROOT=${CGW_NPM_DIR:-$SRC/.cache/npm}
NPM=$NPMROOT/node_modules/@modelcontextprotocol
PEER=$SRC/bench/peers/agent_node.cjs
T=$(mktemp -d /tmp/cgw-node-peer-XXXXXX)
MOCK_PID=
trap '[ -z "$MOCK_PID" ] || kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL [$CASE]: $*" >&2; exit 1; }
if [ ! -d "$NPMROOT/node_modules/@anthropic-ai/sdk" ]; then
    echo "test_node_peer: @anthropic-ai/sdk missing (run scripts/setup.sh)" >&2
    exit 1
fi
mkdir -p "$T/home"
export HOME="$T/home" ANTHROPIC_API_KEY=test CGW_NPM_DIR="$NPMROOT"
unset ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL
cd "$T"
cat > mcp.json <<JSON
{"mcpServers": {"everything": {"command": "node",
                               "args": ["$NPM/server-everything/dist/index.js"]}}}
JSON

mock() {
    [ -z "$MOCK_PID" ] || { kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true; }
    printf '%s' "$1" > script.json
    rm -f mock.out   # else the wait below may read a previous mock's address
    "$BIN" mock-api --script script.json > mock.out 2>&1 &
    MOCK_PID=$!
    for _ in $(seq 400); do grep -q 'listening on' mock.out && break; sleep 0.05; done
    URL="http://$(sed -n 's/^listening on //p' mock.out)"
}

# both ARGS...: runs both clients with the same arguments; C_RC/N_RC and c.jsonl/n.jsonl.
both() {
    set +e
    timeout 60 "$BIN" run --base-url "$URL" "$@" > c.jsonl 2> c.err
    C_RC=$?
    curl -s -X POST "$URL/_mock/reset" > /dev/null
    timeout 60 node "$PEER" --base-url "$URL" "$@" > n.jsonl 2> n.err
    N_RC=$?
    curl -s -X POST "$URL/_mock/reset" > /dev/null
    set -e
    [ "$C_RC" = "$N_RC" ] || fail "exit status: claude-gateway $C_RC, node $N_RC ($(head -c 300 n.err))"
}

# Compares the two outputs: per session, the events with ts, duration, cost, the error text
# left out, keys sorted; tool_results compared as a set (they run in parallel).
same() {
    node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map((l) => JSON.parse(l));
// Field order inside an event is not part of the contract: compare with sorted keys.
const canon = (v) => Array.isArray(v) ? "[" + v.map(canon).join(",") + "]"
    : v && typeof v === "object"
        ? "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}"
        : JSON.stringify(v);
const norm = (lines) => {
    const keys = lines.map((l) => Object.keys(l).join(","));
    const by = {};
    for (const l of lines) {
        const e = { ...l.event };
        delete e.duration_ms; delete e.estimated_cost_usd;
        if (e.usage) { e.usage = { ...e.usage }; delete e.usage.estimated_cost_usd; }
        if (e.type === "error") { e.error = typeof e.error; e.code = typeof e.code; }
        (by[l.session || 0] = by[l.session || 0] || []).push(e);
    }
    for (const s of Object.keys(by)) {
        const ev = by[s];
        const results = ev.filter((e) => e.type === "tool_result").map(canon).sort();
        by[s] = { order: ev.map((e) => e.type === "tool_result" ? "tool_result" : canon(e)),
                  results, seqs: ev.length };
    }
    return { keys: [...new Set(keys)].sort(), by };
};
const c = norm(read("c.jsonl")), n = norm(read("n.jsonl"));
const a = JSON.stringify(c), b = JSON.stringify(n);
if (a !== b) {
    console.error("claude-gateway: " + a.slice(0, 1500));
    console.error("node peer:      " + b.slice(0, 1500));
    process.exit(1);
}' || fail "outputs differ"
}

CASE=text
mock '{"when_exhausted": "repeat_last", "turns": [{"text": "Hello there, world", "chunks": 3}]}'
both --prompt hi
same

CASE=tools
mock '{"when_exhausted": "error", "turns": [
 {"match": "Hello from", "text": "Echo said ping; Ada was greeted.", "chunks": 4,
  "usage": {"input_tokens": 200, "output_tokens": 10, "cache_read_input_tokens": 50}},
 {"match": "use the tools", "content": [
   {"type": "thinking", "thinking": "Both tools, at once.", "chunks": 3},
   {"type": "text", "text": "Calling the tools.", "chunks": 2},
   {"type": "tool_use", "id": "toolu_echo", "name": "echo", "input": {"message": "ping"}},
   {"type": "tool_use", "id": "toolu_greet", "name": "greet", "input": {"name": "Ada"}}],
  "usage": {"input_tokens": 100, "output_tokens": 20}}]}'
both --prompt "use the tools" --mcp-config mcp.json --system "Be brief."
same

CASE=sessions
both --prompt "use the tools" --mcp-config mcp.json --sessions 3
same

CASE=approve-none
both --prompt "use the tools" --mcp-config mcp.json --approve none
grep -q '"code":"user_denied"' n.jsonl || fail "node peer did not deny"

CASE=error
mock '{"when_exhausted": "repeat_last", "turns": [{"status": 400, "error": {"message": "bad"}}]}'
both --prompt hi
[ "$C_RC" = 1 ] || fail "exit status $C_RC"
tail -1 n.jsonl | grep -q '"type":"error"' || fail "node peer did not end with an error"

echo "test_node_peer: ok"
