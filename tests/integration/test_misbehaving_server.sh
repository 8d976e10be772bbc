#!/usr/bin/env bash
# Proves that tests/support/misbehaving_mcp_server.js behaves as its header documents, mode
# by mode, with raw JSON-RPC lines over a pipe (no client library involved), so that the
# fault tests built on it test the client and not the fake.
set -euo pipefail

SRC=${CGW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SERVER="$SRC/tests/support/misbehaving_mcp_server.js"
NODE=${NODE:-$(command -v node || echo /usr/bin/node)}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0

fail() {
    echo "FAIL [$CASE]: $*" >&2
    failures=$((failures + 1))
}

# run "<server args>" HOLD_SECONDS: feeds $INPUT (one message per line) to the server, keeps
# stdin open HOLD_SECONDS longer, then closes it. Sets OUT, ERR (files) and RC.
run() {
    local args=$1 hold=${2:-0}
    OUT=$WORK/out ERR=$WORK/err
    set +e
    # shellcheck disable=SC2086
    # The subshell keeps bash's "Killed" job notice (crash-mid-call) out of the test log.
    ( { printf '%s\n' "$INPUT"; sleep "$hold"; } |
        timeout 20 "$NODE" "$SERVER" $args >"$OUT" 2>"$ERR" ) 2>/dev/null
    RC=$?
    set -e
}

expect_line() { # a line containing this exact text
    grep -qF -- "$1" "$OUT" || fail "no line with: $1"
}
expect_no_line() {
    ! grep -qF -- "$1" "$OUT" || fail "unexpected line with: $1"
}
expect_count() { # expect_count N TEXT: exactly N lines contain TEXT
    local n
    n=$(grep -cF -- "$2" "$OUT" || true)
    [ "$n" = "$1" ] || fail "expected $1 lines with '$2', got $n"
}
expect_rc() {
    [ "$RC" = "$1" ] || fail "exit status $RC, expected $1 (stderr: $(head -c 300 "$ERR"))"
}

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}'
INITED='{"jsonrpc":"2.0","method":"notifications/initialized"}'
call() { # call ID TOOL ARGS_JSON
    printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":%s}}' \
        "$1" "$2" "$3"
}

CASE=normal
INPUT="$(printf '%s\n' \
    '{"jsonrpc":"2.0","id":"v","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}' \
    '{"jsonrpc":"2.0","id":"w","method":"initialize","params":{"protocolVersion":"2099-01-01","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}' \
    "$INITED" \
    'this line is not JSON and must be ignored' \
    '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}' \
    '{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"cursor":"page-2"}}' \
    '{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"nope"}}' \
    "$(call 5 echo '{"message":"hello"}')" \
    "$(call 6 add '{"a":2,"b":3}')" \
    "$(call 7 missing '{}')" \
    '{"jsonrpc":"2.0","id":8,"method":"ping"}' \
    '{"jsonrpc":"2.0","id":9,"method":"resources/list","params":{}}')"
run normal
expect_rc 0
expect_line '"id":"v","result":{"protocolVersion":"2024-11-05"'
expect_line '"id":"w","result":{"protocolVersion":"2025-11-25"'
expect_line '"capabilities":{"tools":{"listChanged":true},"logging":{}}'
expect_line '"id":2,"result":{"tools":[{"name":"echo"'
expect_line '{"name":"add"'
expect_line '"nextCursor":"page-2"}}'
expect_line '"id":3,"result":{"tools":[{"name":"big"'
expect_count 1 '"nextCursor"'
expect_line '"id":4,"error":{"code":-32602'
expect_line '"id":5,"result":{"content":[{"type":"text","text":"hello"}]}}'
expect_line '"id":6,"result":{"content":[{"type":"text","text":"{\"sum\":5}"}],"structuredContent":{"sum":5}}}'
expect_line '"id":7,"result":{"content":[{"type":"text","text":"MCP error -32602: Tool missing not found"}],"isError":true}}'
expect_line '{"jsonrpc":"2.0","id":8,"result":{}}'
expect_line '"id":9,"error":{"code":-32601'
expect_count 10 '"jsonrpc":"2.0"'
[ "$(grep -c . "$OUT")" = 10 ] || fail "normal mode wrote something besides JSON-RPC lines"
grep -qF 'misbehaving-mcp-server ready (normal)' "$ERR" || fail "no ready banner on stderr"

CASE=garbage
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 echo '{"message":"a"}')" \
    '{"jsonrpc":"2.0","id":3,"method":"ping"}')"
run garbage
expect_rc 0
expect_count 3 'this is not JSON'
[ "$(grep -cx '{"jsonrpc"' "$OUT")" = 1 ] || fail "expected one truncated object line"
expect_line '"id":2,"result":{"content":[{"type":"text","text":"a"}]}}'
expect_line '{"jsonrpc":"2.0","id":3,"result":{}}'

CASE=oversized
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 echo '{"message":"first"}')" \
    "$(call 3 echo '{"message":"second"}')")"
run "oversized --size 1048576"
expect_rc 0
big=$(awk '/"id":2,/ { print length($0) }' "$OUT")
[ "$big" = 1048576 ] || fail "oversized line has $big bytes, expected 1048576"
expect_line '"id":3,"result":{"content":[{"type":"text","text":"second"}]}}'

CASE=never-answer
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 echo '{"message":"x"}')" \
    '{"jsonrpc":"2.0","id":3,"method":"ping"}')"
run never-answer 0.3
expect_rc 0
expect_no_line '"id":2'
expect_line '{"jsonrpc":"2.0","id":3,"result":{}}'

CASE=answer-twice
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 echo '{"message":"x"}')")"
run answer-twice
expect_rc 0
expect_count 2 '"id":2,'
expect_line '"id":2,"result":{"content":[{"type":"text","text":"x"}]}}'
expect_line '"id":2,"result":{"content":[{"type":"text","text":"x (again)"}]}}'

CASE=exit-in-initialize
INPUT="$INIT"
run exit-in-initialize 1
expect_rc 3
[ ! -s "$OUT" ] || fail "wrote to stdout before exiting"
grep -qF 'exiting during initialize' "$ERR" || fail "no stderr message"

CASE=crash-mid-call
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 echo '{"message":"x"}')")"
run crash-mid-call 1
[ "$RC" = 137 ] || fail "exit status $RC, expected 137 (SIGKILL)"
[ "$(tail -c 1 "$OUT" | od -An -c | tr -d ' ')" != '\n' ] || fail "last line is complete"
tail -n 1 "$OUT" | grep -q '^{"jsonrpc":"2.0","id":2' || fail "no partial response at the end"
grep -qF 'crashing mid-call' "$ERR" || fail "no stderr message"

CASE=server-requests
INPUT="$(printf '%s\n' "$INIT" "$INITED" \
    '{"jsonrpc":"2.0","id":0,"result":{}}' \
    '{"jsonrpc":"2.0","id":1,"result":{"roots":[{"uri":"file:///tmp"}]}}' \
    '{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no sampling"}}' \
    "$(call 9 client-responses '{}')")"
run server-requests
expect_rc 0
expect_line '{"jsonrpc":"2.0","id":0,"method":"ping"}'
expect_line '{"jsonrpc":"2.0","id":1,"method":"roots/list"'
expect_line '{"jsonrpc":"2.0","id":2,"method":"sampling/createMessage"'
expect_line '{"jsonrpc":"2.0","id":3,"method":"elicitation/create"'
expect_line '{"jsonrpc":"2.0","id":4,"method":"bogus/method"'
expect_line '"id":9,"result":{"content":[{"type":"text","text":"[{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}},{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"roots\":[{\"uri\":\"file:///tmp\"}]}},{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"no sampling\"}}]"}]}}'

CASE=list-changed-burst
INPUT="$(printf '%s\n' "$INIT" "$INITED" "$(call 2 list-changed '{"count":3}')")"
run "list-changed-burst --count 7"
expect_rc 0
expect_count 10 'notifications/tools/list_changed'
# the burst comes right after the initialize answer, before the tools/call answer
first_call=$(grep -n '"id":2,' "$OUT" | cut -d: -f1)
[ "$(head -n 8 "$OUT" | grep -c list_changed)" = 7 ] || fail "burst not right after initialize"
[ "$first_call" = 12 ] || fail "tools/call answered at line $first_call, expected 12"

CASE=sleep-progress-cancel
INPUT="$(printf '%s\n' "$INIT" "$INITED" \
    '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":300},"_meta":{"progressToken":"tok"}}}' \
    "$(call 3 sleep '{"ms":400}')" \
    '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"test"}}')"
run normal 0.8
expect_rc 0
expect_line '"id":2,"result":{"content":[{"type":"text","text":"slept 300"}]}}'
n=$(grep -c '"progressToken":"tok"' "$OUT" || true)
[ "$n" -ge 3 ] || fail "only $n progress notifications"
expect_no_line '"id":3,'

CASE=bad-mode
INPUT=''
run "no-such-mode"
expect_rc 2

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "misbehaving MCP server: all modes behave as documented"
