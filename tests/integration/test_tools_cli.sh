#!/usr/bin/env bash
# claude-gateway tools against a ~/.claude.json written the way Claude Code writes it (state
# keys, user servers, a projects[<dir>] entry, an http server), with real npm servers. Checks
# the table, --json, --allowed-servers, --mcp-config/--strict-mcp-config, --prefixed, exit
# codes, the failure report with the stderr tail, and that no server process outlives a run.
set -euo pipefail

BIN=${CGW_GATEWAY_BIN:?}
SRC=${CGW_SOURCE_DIR:?}
NPM=${CGW_NPM_DIR:-$SRC/.cache/npm}/node_modules/@modelcontextprotocol
T=$(mktemp -d /tmp/cgw-tools-cli-XXXXXX)
MARK="cgw-tools-cli-$$-$RANDOM"
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/home" "$T/proj"
PROJ=$(cd "$T/proj" && pwd -P)

fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$T/home/.claude.json" <<JSON
{
  "numStartups": 42,
  "installMethod": "npm",
  "autoUpdates": true,
  "tipsHistory": {"new-user-warmup": 1},
  "userID": "0123456789abcdef",
  "mcpServers": {
    "everything": {"type": "stdio", "command": "node",
                   "args": ["$NPM/server-everything/dist/index.js"],
                   "env": {"CGW_CLI_MARK": "$MARK"}},
    "remote": {"type": "http", "url": "https://example.com/mcp",
               "headers": {"Authorization": "Bearer \${CGW_TEST_TOKEN:-none}"}},
    "broken": {"type": "stdio", "command": "sh",
               "args": ["-c", "echo 'fatal: missing API key' >&2; exit 3"],
               "env": {"CGW_CLI_MARK": "$MARK"}}
  },
  "projects": {
    "$PROJ": {
      "allowedTools": [],
      "history": [],
      "hasTrustDialogAccepted": true,
      "mcpServers": {
        "memory": {"type": "stdio", "command": "node",
                   "args": ["$NPM/server-memory/dist/index.js"],
                   "env": {"MEMORY_FILE_PATH": "$T/memory.jsonl", "CGW_CLI_MARK": "$MARK"}}
      }
    }
  }
}
JSON

run() { (cd "$PROJ" && HOME="$T/home" "$BIN" tools "$@"); }

no_leftovers() {
    # Every server got CGW_CLI_MARK in its environment: none may be alive after a run.
    local left
    left=$(grep -l "CGW_CLI_MARK=$MARK" /proc/[0-9]*/environ 2>/dev/null || true)
    [ -z "$left" ] || fail "server processes left behind: $left"
}

# 1. Everything configured: two servers fail (exit 1), the others are listed.
set +e
run > "$T/out" 2> "$T/err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "expected exit 1 with failing servers, got $rc"
grep -Eq '^echo +everything +Echoes back' "$T/out" || fail "echo not listed: $(cat "$T/out")"
grep -Eq '^create_entities +memory ' "$T/out" || fail "project-scope server missing"
grep -q 'broken: failed: .*exited with status 3' "$T/err" || fail "no reason for broken: $(cat "$T/err")"
grep -q 'stderr: fatal: missing API key' "$T/err" || fail "no stderr tail for broken"
grep -q 'remote: failed: .*http.*not supported' "$T/err" || fail "http server not reported"
no_leftovers

# 2. --allowed-servers: only the good ones, exit 0; --json is parseable and complete.
run --allowed-servers everything,memory --json > "$T/json"
node -e '
const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const names = d.servers.map((s) => s.name + ":" + s.state).join(",");
if (names !== "everything:ready,memory:ready") throw new Error("servers " + names);
const echo = d.tools.find((t) => t.name === "echo");
if (!echo || echo.server !== "everything" || echo.input_schema.type !== "object")
    throw new Error("echo missing or wrong");
if (!d.tools.some((t) => t.name === "read_graph" && t.server === "memory"))
    throw new Error("memory tools missing");
' "$T/json"
no_leftovers

# 3. --mcp-config + --strict-mcp-config: only that file; --prefixed names.
cat > "$T/only.json" <<JSON
{"mcpServers": {"mem": {"command": "node", "args": ["$NPM/server-memory/dist/index.js"],
                        "env": {"MEMORY_FILE_PATH": "$T/m2.jsonl", "CGW_CLI_MARK": "$MARK"}}}}
JSON
run --mcp-config "$T/only.json" --strict-mcp-config --prefixed > "$T/out"
grep -Eq '^mcp__mem__read_graph +mem ' "$T/out" || fail "prefixed name missing: $(cat "$T/out")"
if grep -q everything "$T/out"; then fail "strict config still read ~/.claude.json"; fi
no_leftovers

# 4. Usage and configuration errors: exit 2.
set +e
run --no-such-flag > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad flag should exit 2"
run --mcp-config "$T/missing.json" > /dev/null 2> "$T/err"; [ $? -eq 2 ] || fail "missing file should exit 2"
echo '{"mcpServers": ' > "$T/bad.json"
run --mcp-config "$T/bad.json" --strict-mcp-config > /dev/null 2> "$T/err"
[ $? -eq 2 ] || fail "malformed file should exit 2"
set -e
grep -q 'bad.json' "$T/err" || fail "malformed file not named: $(cat "$T/err")"
echo "test_tools_cli: ok"
