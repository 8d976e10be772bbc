#!/usr/bin/env bash
# A gateway killed with SIGKILL (no shutdown at all) must not leave its MCP servers running,
# even a server that does not exit when its stdin closes (the misbehaving server's ignore-eof
# mode; real servers with timers of their own behave so). The stdio transport starts servers
# with a parent-death signal (setpriv --pdeathsig), checked here on the real binary, next to a
# well-behaved server-everything.
set -euo pipefail
SRC=${CGW_SOURCE_DIR:?}
BIN=${CGW_GATEWAY_BIN:?}
NPM=${CGW_NPM_DIR:-$SRC/.cache/npm}
EVERYTHING=$NPM/node_modules/@modelcontextprotocol/server-everything/dist/index.js
command -v setpriv >/dev/null || { echo "setpriv (util-linux) missing"; exit 1; }
WORK=$(mktemp -d)
gw=
cleanup() {
    [ -n "$gw" ] && kill -9 "$gw" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/mcp.json" <<JSON
{"mcpServers": {
  "everything": {"command": "node", "args": ["$EVERYTHING"]},
  "stubborn": {"command": "node", "args": ["$SRC/tests/support/misbehaving_mcp_server.js", "ignore-eof"]}
}}
JSON
cat >"$WORK/gateway.json" <<JSON
{"mcp_config": "$WORK/mcp.json", "strict_mcp_config": true}
JSON
env -u ANTHROPIC_API_KEY -u ANTHROPIC_AUTH_TOKEN "$BIN" serve --listen 127.0.0.1:0 \
    --config "$WORK/gateway.json" --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/err" &
gw=$!
addr=
for _ in $(seq 400); do
    addr=$(sed -n 's/^listening on //p' "$WORK/out" | head -1)
    [ -n "$addr" ] && break
    sleep 0.05
done
[ -n "$addr" ] || { echo "FAIL: gateway did not start: $(cat "$WORK/err")"; exit 1; }
servers=
for _ in $(seq 400); do
    if [ "$(curl -s "http://$addr/v1/mcp/servers" | grep -o '"state":"ready"' | wc -l)" = 2 ]; then
        servers=$(pgrep -P "$gw" | tr '\n' ' ')
        break
    fi
    sleep 0.05
done
[ "$(echo $servers | wc -w)" = 2 ] || { echo "FAIL: MCP servers not ready: $servers"; exit 1; }

kill -9 "$gw"
wait "$gw" 2>/dev/null || true
gw=
for server in $servers; do
    for _ in $(seq 100); do
        kill -0 "$server" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$server" 2>/dev/null; then
        kill -9 $servers 2>/dev/null || true
        echo "FAIL: MCP server $server ($(tr '\0' ' ' </proc/"$server"/cmdline 2>/dev/null)) outlived the killed gateway"
        exit 1
    fi
done
echo "1 passed, 0 failed"
