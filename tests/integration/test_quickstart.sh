#!/usr/bin/env bash
# examples/quickstart.c (the README's library example) against mock-api and server-everything
# from a ~/.claude.json that also lists a server outside the allow-list: the model is offered
# greet + the allowed server's tools only, both tool calls run, every event is printed in
# order and the program exits 0 after stream_complete; with a 400 it exits 1 after the error.
# The README's trimmed copy must compile.
set -euo pipefail

BIN=${CGW_GATEWAY_BIN:?}
SRC=${CGW_SOURCE_DIR:?}
QS=${CGW_BINARY_DIR:?}/examples/quickstart
NPM=${CGW_NPM_DIR:-$SRC/.cache/npm}/node_modules/@modelcontextprotocol
T=$(mktemp -d /tmp/cgw-quickstart-XXXXXX)
MOCK_PID=
trap '[ -z "$MOCK_PID" ] || kill "$MOCK_PID" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$QS" ] || fail "$QS not built"

mkdir -p "$T/home"
cat > "$T/home/.claude.json" <<JSON
{"mcpServers": {
  "everything": {"command": "node", "args": ["$NPM/server-everything/dist/index.js"]},
  "memory": {"command": "node", "args": ["$NPM/server-memory/dist/index.js"],
             "env": {"MEMORY_FILE_PATH": "$T/memory.jsonl"}}}}
JSON
cat > "$T/script.json" <<'JSON'
{"turns": [
  {"match": "Say hello", "content": [
    {"type": "text", "text": "Let me greet.", "chunks": 2},
    {"type": "tool_use", "id": "toolu_g", "name": "greet", "input": {"name": "Ada"}},
    {"type": "tool_use", "id": "toolu_e", "name": "echo", "input": {"message": "hi"}}]},
  {"match": "Hello from Ada", "text": "Hello, Ada!", "chunks": 2}]}
JSON
cd "$T"
"$BIN" mock-api --script script.json > mock.out 2>&1 &
MOCK_PID=$!
for _ in $(seq 400); do grep -q 'listening on' mock.out && break; sleep 0.05; done
URL="http://$(sed -n 's/^listening on //p' mock.out)"

HOME="$T/home" ANTHROPIC_API_KEY=test ANTHROPIC_BASE_URL="$URL" timeout 60 "$QS" > out 2> err ||
    fail "quickstart exited $?: $(cat err)"
node -e '
const fs = require("fs");
const ev = fs.readFileSync("out", "utf8").trim().split("\n").map((l) => JSON.parse(l));
const types = ev.map((e) => e.type);
const want = (c, m) => { if (!c) throw new Error(m + ": " + types.join(",")); };
want(types[types.length - 1] === "stream_complete", "stream_complete last");
want(ev.filter((e) => e.type === "text_delta").map((e) => e.text).join("") ===
     "Let me greet.Hello, Ada!", "text");
const g = ev.find((e) => e.type === "tool_result" && e.tool_name === "greet");
const e = ev.find((e) => e.type === "tool_result" && e.tool_name === "echo");
want(g && g.result.result === "Hello from Ada" && g.server === null, "greet");
want(e && !e.is_error && e.server === "everything", "echo");
const reqs = JSON.parse(require("child_process").execSync("curl -s " + process.argv[1] + "/_mock/requests"));
const tools = reqs[0].body.tools.map((t) => t.name);
want(tools[0] === "greet" && tools.includes("echo"), "tools offered " + tools);
want(!tools.includes("read_graph"), "memory is not allowed but its tools were offered");
want(reqs[0].body.system !== undefined, "system prompt");
' "$URL" || fail "output: $(head -c 800 out)"

# A request the API refuses: the log ends with an error event and the program exits 1.
curl -s -X POST "$URL/_mock/script" -d '[{"status": 400, "error": {"message": "bad request"}}]' > /dev/null
set +e
HOME="$T/home" ANTHROPIC_API_KEY=test ANTHROPIC_BASE_URL="$URL" timeout 60 "$QS" > out 2> err
rc=$?
set -e
[ $rc -eq 1 ] || fail "expected exit 1 after an error, got $rc"
tail -1 out | grep -q '"type":"error"' || fail "last event not an error: $(tail -1 out)"

# The README's copy of the example must still compile against the headers.
CC=${CC:-cc}
if command -v "$CC" > /dev/null; then
    sed -n '/^## Library quick start/,/^## /p' "$SRC/README.md" |
        sed -n '/^```c$/,/^```$/p' | sed '1d;$d' > readme.c
    [ -s readme.c ] || fail "no C block in the README's Library quick start"
    "$CC" -std=c17 -fsyntax-only -Wall -Werror -I"$SRC/include" readme.c 2> cc.err ||
        fail "README example does not compile: $(head -c 600 cc.err)"
fi

echo "test_quickstart: ok"
