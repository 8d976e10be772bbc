#!/usr/bin/env bash
# claude-gateway run against claude-gateway mock-api and the real server-everything (npm):
# jsonl (entry bytes, seq order, as-it-happens flushing), text output, thinking + tools (MCP
# and the local greet) with the mock checking the thinking signature round trip, --sessions 5
# (session fields, independent conversations), exit status on an error run (500s until the
# retries run out), --approve none/all/ask without a terminal, --max-turns, the stub without a
# credential, and every bad flag (exit 2).
set -euo pipefail

BIN=${CGW_GATEWAY_BIN:?}
SRC=${CGW_SOURCE_DIR:?}
NPM=${CGW_NPM_DIR:-$SRC/.cache/npm}/node_modules/@modelcontextprotocol
T=$(mktemp -d /tmp/cgw-run-cli-XXXXXX)
MOCK_PID=
cleanup() {
    [ -z "$MOCK_PID" ] || kill "$MOCK_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/home"
export HOME="$T/home" # no ~/.claude.json: only --mcp-config servers
export ANTHROPIC_API_KEY=test-key
unset ANTHROPIC_AUTH_TOKEN ANTHROPIC_BASE_URL
cd "$T"
failures=0
fail() {
    echo "FAIL [$CASE]: $*" >&2
    failures=$((failures + 1))
}

cat > mcp.json <<JSON
{"mcpServers": {"everything": {"command": "node",
                               "args": ["$NPM/server-everything/dist/index.js"]}}}
JSON

# mock SCRIPT_JSON: (re)starts the mock with this script; sets URL.
mock() {
    [ -z "$MOCK_PID" ] || { kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true; }
    printf '%s' "$1" > script.json
    # Remove the old output first: the background job truncates it only once it has forked,
    # and the loop below could otherwise read the previous mock's (dead) address.
    rm -f mock.out
    "$BIN" mock-api --script script.json > mock.out 2> mock.err &
    MOCK_PID=$!
    for _ in $(seq 400); do
        grep -q 'listening on' mock.out 2>/dev/null && break
        sleep 0.05
    done
    URL="http://$(sed -n 's/^listening on //p' mock.out)"
    [ "$URL" != "http://" ] || { echo "FAIL: mock-api did not start: $(cat mock.err)"; exit 1; }
}

# run ARGS...: runs claude-gateway run; sets RC, OUT and ERR (files).
run() {
    OUT=$T/out ERR=$T/err
    set +e
    timeout 60 "$BIN" run "$@" > "$OUT" 2> "$ERR" < /dev/null
    RC=$?
    set -e
}
expect_rc() {
    [ "$RC" = "$1" ] || fail "exit status $RC, expected $1; stderr: $(head -c 400 "$ERR")"
}
# check JS: runs JS with `lines` = the parsed jsonl lines of OUT and `raw` = its text.
PRELUDE='
const fs = require("fs");
const raw = fs.readFileSync(process.argv[1], "utf8");
const lines = raw.split("\n").filter((l) => l.length).map((l) => JSON.parse(l));
const events = lines.map((l) => l.event);
const assert = (c, m) => { if (!c) { console.error("assertion: " + m); process.exit(1); } };
'
check() {
    node -e "$PRELUDE$1" "$OUT" || fail "check failed: $(head -c 600 "$OUT")"
}

TOOLS_SCRIPT='{"turns": [
 {"name": "call-tools", "content": [
   {"type": "thinking", "thinking": "Both tools, at once.", "chunks": 3},
   {"type": "text", "text": "Calling the tools.", "chunks": 2},
   {"type": "tool_use", "id": "toolu_echo", "name": "echo", "input": {"message": "ping"}, "chunks": 2},
   {"type": "tool_use", "id": "toolu_greet", "name": "greet", "input": {"name": "Ada"}, "chunks": 2}],
  "usage": {"input_tokens": 100, "output_tokens": 20}},
 {"name": "answer", "text": "Echo said ping; Ada was greeted.", "chunks": 4,
  "usage": {"input_tokens": 200, "output_tokens": 10, "cache_read_input_tokens": 50}}]}'

# Marker turns, so that concurrent conversations each get their own two turns.
SESSIONS_SCRIPT='{"when_exhausted": "error", "turns": [
 {"name": "answer", "match": "Hello from", "text": "Done.", "chunks": 2},
 {"name": "call-tools", "match": "please", "content": [
   {"type": "text", "text": "On it.", "chunks": 2},
   {"type": "tool_use", "name": "echo", "input": {"message": "ping"}},
   {"type": "tool_use", "name": "greet", "input": {"name": "Ada"}}]}]}'

CASE=jsonl-text
mock '{"when_exhausted": "repeat_last", "turns": [{"text": "Hello there, world", "chunks": 3}]}'
run --prompt hi --base-url "$URL"
expect_rc 0
check '
assert(lines.every((l, i) => l.seq === i + 1 && typeof l.ts === "number" && !("session" in l)),
       "seq 1..n, ts, no session");
assert(raw.split("\n")[0].startsWith("{\"seq\":1,\"ts\":"), "entry bytes as stored");
assert(events.filter((e) => e.type === "text_delta").map((e) => e.text).join("") ===
       "Hello there, world", "text");
assert(events.filter((e) => e.type === "text_delta").length === 3, "3 deltas");
const last = events[events.length - 1];
assert(last.type === "stream_complete" && last.turns === 1 && last.stop_reason === "end_turn",
       "stream_complete last");'

CASE=base-url-from-env
ANTHROPIC_BASE_URL="$URL" run --prompt hi
expect_rc 0
grep -q '"type":"stream_complete"' "$OUT" || fail "ANTHROPIC_BASE_URL not used"

CASE=mock-write-stamps
# The mock option the benchmark's latency figure relies on: {{mock_write_us}} in a delta
# becomes the wall-clock microsecond of that frame's write, before the client appended it.
mock '{"turns": [{"content": [{"type": "text", "deltas": ["{{mock_write_us}} a", "b {{mock_write_us}}"]}]}]}'
run --prompt hi --base-url "$URL"
expect_rc 0
check '
const d = lines.filter((l) => l.event.type === "text_delta");
assert(d.length === 2 && /^[0-9]{16} a$/.test(d[0].event.text) && /^b [0-9]{16}$/.test(d[1].event.text),
       "stamped texts");
for (const l of d) {
    const us = Number(l.event.text.match(/[0-9]{16}/)[0]);
    assert(us <= l.ts * 1e6 + 1 && l.ts * 1e6 - us < 5e6, "stamp before the append, and recent");
}'

CASE=jsonl-tools
mock "$TOOLS_SCRIPT"
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --system "Be brief."
expect_rc 0
check '
const th = events.filter((e) => e.type === "thinking_delta").map((e) => e.text).join("");
assert(th === "Both tools, at once.", "thinking " + th);
const uses = events.filter((e) => e.type === "tool_use");
assert(uses.length === 2, "2 tool_use");
const echo = uses.find((e) => e.tool_name === "echo"), greet = uses.find((e) => e.tool_name === "greet");
assert(echo.server === "everything" && echo.tool_input.message === "ping", "echo use");
assert(greet.server === null && greet.tool_call_id === "toolu_greet", "greet use");
const res = events.filter((e) => e.type === "tool_result");
const er = res.find((e) => e.tool_call_id === "toolu_echo");
const gr = res.find((e) => e.tool_call_id === "toolu_greet");
assert(er && !er.is_error && JSON.stringify(er.result).includes("Echo: ping") &&
       er.server === "everything" && typeof er.duration_ms === "number", "echo result");
assert(gr && !gr.is_error && gr.result.result === "Hello from Ada", "greet result");
const done = events[events.length - 1];
assert(done.type === "stream_complete" && done.turns === 2, "2 turns");
assert(done.usage.input_tokens === 300 && done.usage.output_tokens === 30 &&
       done.usage.cache_read_input_tokens === 50, "usage totals");
assert(events.filter((e) => e.type === "usage").length === 2, "usage per call");'
# The second request carried the thinking block back (the mock refuses a bad signature) and
# both tool results; the system prompt went with each request.
curl -s "$URL/_mock/requests" > reqs.json
node -e '
const r = JSON.parse(require("fs").readFileSync("reqs.json", "utf8"));
if (r.length !== 2 || r.some((q) => q.status !== 200)) throw new Error("requests " + r.map((q) => q.status));
const m = r[1].body.messages;
if (m.length !== 3 || m[1].content[0].type !== "thinking") throw new Error("assistant turn");
const ids = m[2].content.map((b) => b.tool_use_id).join(",");
if (ids !== "toolu_echo,toolu_greet") throw new Error("tool results " + ids);
if (!JSON.stringify(r[0].body.system).includes("Be brief.")) throw new Error("system");
if (!r[0].body.tools.some((t) => t.name === "greet") || !r[0].body.tools.some((t) => t.name === "echo"))
    throw new Error("tools");
' || fail "requests seen by the mock"

CASE=text-output
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --output text
expect_rc 0
grep -q '^thinking: Both tools, at once\.' "$OUT" || fail "thinking line"
grep -q '^Calling the tools\.$' "$OUT" || fail "text line"
grep -q '^→ echo \[everything\] {"message":"ping"}$' "$OUT" || fail "echo call line"
grep -Eq '^← echo \[everything\] [0-9]+ ms: .*Echo: ping' "$OUT" || fail "echo result line"
grep -Eq '^← greet \[local\] [0-9]+ ms: \{"result":"Hello from Ada"\}$' "$OUT" || fail "greet line"
grep -q '^Echo said ping; Ada was greeted\.$' "$OUT" || fail "final text"
grep -Eq '^— 2 turns, 300 input \+ 30 output tokens \(cache: 50 read, 0 written\), ~\$[0-9.]+ \(end_turn\)$' "$OUT" ||
    fail "final line: $(tail -1 "$OUT")"
if grep -q $'\x1b' "$OUT"; then fail "ANSI codes without a terminal"; fi

CASE=text-retry-long-result
# A 529 first (retried: one line says so), then a tool whose result is cut to one short line.
LONG=$(printf 'x%.0s' $(seq 150))
mock '{"turns": [
 {"status": 529, "headers": {"retry-after-ms": "5", "retry-after": null}},
 {"content": [{"type": "tool_use", "name": "echo", "input": {"message": "'"$LONG"'"}}]},
 {"text": "done"}]}'
run --prompt hi --base-url "$URL" --mcp-config mcp.json --output text
expect_rc 0
grep -q '^↻ retrying (attempt 1): ' "$OUT" || fail "no retry line: $(cat "$OUT")"
grep -Eq '^← echo \[everything\] [0-9]+ ms: \{"text":"Echo: xxxx+…$' "$OUT" || fail "long result line"
[ "$(grep '^← echo' "$OUT" | wc -c)" -lt 160 ] || fail "result line not cut"
grep -q '^→ echo \[everything\] {"message":"xxx*…$' "$OUT" || fail "long input line"

CASE=sessions
mock "$SESSIONS_SCRIPT"
run --prompt "tools please" --base-url "$URL" --mcp-config mcp.json --sessions 5
expect_rc 0
check '
const by = {};
for (const l of lines) { (by[l.session] = by[l.session] || []).push(l); }
assert(Object.keys(by).sort().join() === "1,2,3,4,5", "sessions 1..5");
for (const [s, ls] of Object.entries(by)) {
    assert(ls.every((l, i) => l.seq === i + 1), "seq per session " + s);
    const ev = ls.map((l) => l.event);
    assert(ev.filter((e) => e.type === "tool_result" && !e.is_error).length === 2, "results " + s);
    assert(ev[ev.length - 1].type === "stream_complete" && ev[ev.length - 1].turns === 2, "end " + s);
}
assert(raw.split("\n")[0].startsWith("{\"session\":"), "session first");'
curl -s "$URL/_mock/requests" > reqs.json
node -e '
const r = JSON.parse(require("fs").readFileSync("reqs.json", "utf8"));
if (r.length !== 10) throw new Error("requests " + r.length);
// Independent conversations: each request is a fresh start or exactly one tool round.
for (const q of r) {
    const n = q.body.messages.length;
    if (q.status !== 200 || (n !== 1 && n !== 3)) throw new Error("a mixed conversation: " + n);
}
' || fail "requests seen by the mock"

CASE=sessions-100
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "tools please" --base-url "$URL" --mcp-config mcp.json --sessions 100
expect_rc 0
check '
const done = lines.filter((l) => l.event.type === "stream_complete" && l.event.turns === 2);
assert(new Set(done.map((l) => l.session)).size === 100, "100 sessions completed");
assert(lines.filter((l) => l.event.type === "tool_result" && !l.event.is_error).length === 200,
       "200 tool results");'

CASE=error-exit
mock '{"when_exhausted": "repeat_last", "turns": [{"status": 500, "headers": {"retry-after-ms": "5", "retry-after": null}}]}'
run --prompt hi --base-url "$URL"
expect_rc 1
check '
const last = events[events.length - 1];
assert(last.type === "error" && typeof last.code === "string" && last.code.length, "error last");
assert(!events.some((e) => e.type === "stream_complete"), "no stream_complete");'
run --prompt hi --base-url "$URL" --sessions 3 --output text
expect_rc 1
[ "$(grep -c '✗ error' "$OUT")" = 3 ] || fail "3 error lines: $(cat "$OUT")"

CASE=approve-none
mock "$TOOLS_SCRIPT"
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --approve none
expect_rc 0
check '
const res = events.filter((e) => e.type === "tool_result");
assert(res.length === 2 && res.every((e) => e.is_error && e.error.code === "user_denied"), "denied");
assert(events.filter((e) => e.type === "tool_approval_request").length === 2, "requests");'

CASE=approve-ask-no-tty
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --approve ask --output text
expect_rc 0
[ "$(grep -c 'not a terminal' "$ERR")" = 1 ] || fail "not one note about the terminal: $(cat "$ERR")"
grep -q 'user_denied' "$OUT" || fail "not denied"

CASE=approve-ask-tty
# A terminal through script(1): the first request (echo) is approved, the second (greet)
# denied; answers typed before the prompts wait in the terminal's line buffer.
if command -v script > /dev/null; then
    curl -s -X POST "$URL/_mock/reset" > /dev/null
    set +e
    (sleep 1; printf 'y\nn\n') | timeout 60 script -qec "'$BIN' run --prompt 'use the tools' \
        --base-url $URL --mcp-config mcp.json --approve ask --output text" /dev/null > tty.out
    RC=$?
    set -e
    expect_rc 0
    grep -q 'Allow tool echo with input {"message":"ping"}?' tty.out || fail "no echo prompt"
    grep -q 'Allow tool greet with input {"name":"Ada"}?' tty.out || fail "no greet prompt"
    grep -Eq '← echo \[everything\] [0-9]+ ms: .*Echo: ping' tty.out || fail "echo not run"
    grep -q 'greet \[local\] [0-9]* ms: user_denied' tty.out || fail "greet not denied"
    grep -q $'\x1b\[2mthinking: ' tty.out || fail "thinking not dimmed on a terminal"
else
    echo "test_run_cli: script(1) missing, terminal approvals not tested" >&2
fi

CASE=approve-all
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --approve all
expect_rc 0
check '
assert(!events.some((e) => e.type === "tool_approval_request"), "no approval asked");
assert(events.filter((e) => e.type === "tool_result" && !e.is_error).length === 2, "ran");'

CASE=max-turns
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --max-turns 1
expect_rc 0
check '
const done = events[events.length - 1];
assert(done.type === "stream_complete" && done.turns === 1, "one turn: " + JSON.stringify(done));'

CASE=allowed-servers
curl -s -X POST "$URL/_mock/reset" > /dev/null
run --prompt "use the tools" --base-url "$URL" --mcp-config mcp.json --allowed-servers other
expect_rc 0
check '
const er = events.find((e) => e.type === "tool_result" && e.tool_call_id === "toolu_echo");
assert(er && er.is_error && er.error.code === "unknown_tool", "echo must be unknown");'

CASE=failed-server
# A server that cannot start is reported on stderr and left out; the run goes on.
cat > broken.json <<'JSON'
{"mcpServers": {"broken": {"command": "sh", "args": ["-c", "echo 'no key' >&2; exit 3"]}}}
JSON
mock '{"when_exhausted": "repeat_last", "turns": [{"text": "fine"}]}'
run --prompt hi --base-url "$URL" --mcp-config broken.json --strict-mcp-config
expect_rc 0
grep -q 'MCP server broken: .*(its tools are left out)' "$ERR" || fail "no report: $(cat "$ERR")"

CASE=stub
run_stub() { ANTHROPIC_API_KEY='' ANTHROPIC_AUTH_TOKEN='' run "$@"; }
run_stub --prompt "what is up" --base-url "$URL"
expect_rc 0
check '
const t = events.filter((e) => e.type === "text_delta").map((e) => e.text).join("");
assert(t.startsWith("Stub response (no Anthropic credential configured). You asked: what is up"), t);'

CASE=auth-token
mock '{"when_exhausted": "repeat_last", "turns": [{"text": "ok"}]}'
ANTHROPIC_API_KEY='' ANTHROPIC_AUTH_TOKEN=tok-123 run --prompt hi --base-url "$URL"
expect_rc 0
curl -s "$URL/_mock/requests" > reqs.json
node -e '
const h = JSON.parse(require("fs").readFileSync("reqs.json", "utf8"))[0].headers;
const keys = Object.keys(h).map((k) => k.toLowerCase());
if (!keys.includes("authorization") || keys.includes("x-api-key")) throw new Error(keys.join());
' || fail "ANTHROPIC_AUTH_TOKEN not sent as Authorization"

CASE=sigint-mid-stream
# Two deltas, then the mock hangs: both lines are on stdout while the run is still going
# (written as they happen), and SIGINT ends it with the cancelled error, exit 130.
mock '{"turns": [{"text": "abcdef", "chunks": 3, "hang": 2}]}'
"$BIN" run --prompt hi --base-url "$URL" > "$T/out" 2> "$T/err" &
pid=$!
for _ in $(seq 200); do
    [ "$(wc -l < "$T/out")" -ge 2 ] && break
    sleep 0.05
done
[ "$(wc -l < "$T/out")" = 2 ] || fail "the first deltas were not on stdout during the run"
kill -INT "$pid"
set +e
wait "$pid"
RC=$?
set -e
OUT=$T/out
expect_rc 130
check '
const last = events[events.length - 1];
assert(last.type === "error" && last.code === "cancelled", JSON.stringify(last));
assert(events.filter((e) => e.type === "text_delta").map((e) => e.text).join("") === "abcd", "text");'

CASE=stdout-closed
# The reader goes away after one line: the runs are stopped at once, the MCP server is shut
# down with them, and the exit status says the output was lost.
MARK="cgw-run-cli-$$-$RANDOM"
cat > mark.json <<JSON
{"mcpServers": {"everything": {"command": "node", "env": {"CGW_RUN_MARK": "$MARK"},
                               "args": ["$NPM/server-everything/dist/index.js"]}}}
JSON
mock '{"turns": [{"text": "0123456789012345678901234567890123456789", "chunks": 40, "delay_ms": 100}]}'
start=$(date +%s%N)
set +e
"$BIN" run --prompt hi --base-url "$URL" --mcp-config mark.json 2> "$T/err" | head -n 1 > "$T/out"
RC=${PIPESTATUS[0]}
set -e
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
expect_rc 1
[ "$elapsed_ms" -lt 3000 ] || fail "took $elapsed_ms ms: the run went on after stdout closed"
grep -q '"type":"text_delta"' "$T/out" || fail "no first line"
if grep -l "CGW_RUN_MARK=$MARK" /proc/[0-9]*/environ 2>/dev/null; then
    fail "MCP server left running"
fi

CASE=sessions-text
mock "$SESSIONS_SCRIPT"
run --prompt "tools please" --base-url "$URL" --mcp-config mcp.json --sessions 3 --output text
expect_rc 0
for k in 1 2 3; do
    grep -Eq "^\[$k\] ← greet \[local\] [0-9]+ ms: " "$OUT" || fail "session $k greet line"
    grep -Eq "^\[$k\] — 2 turns, " "$OUT" || fail "session $k final line"
done
if grep -Ev '^\[[123]\] ' "$OUT"; then fail "a line without its session prefix"; fi

CASE=bad-flags
for args in "" "--prompt" "--prompt x --sessions 0" "--prompt x --sessions abc" \
    "--prompt x --max-turns 0" "--prompt x --max-turns 1x" "--prompt x --approve maybe" \
    "--prompt x --output xml" "--prompt x --no-such-flag" "--prompt x extra" \
    "--prompt x --strict-mcp-config" "--prompt x --mcp-config $T/missing.json" \
    "--prompt x --log-level loud"; do
    # shellcheck disable=SC2086
    run $args
    [ "$RC" = 2 ] || fail "'$args' gave exit $RC, expected 2"
    [ -s "$ERR" ] || fail "'$args' printed no reason"
    [ ! -s "$OUT" ] || fail "'$args' wrote to stdout"
done
run --prompt x --allowed-servers "$(seq -s, 1 65)"
[ "$RC" = 2 ] && grep -q 'more than 64 names' "$ERR" || fail "65 allowed servers: exit $RC"
run --help
[ "$RC" = 0 ] && grep -q -- '--sessions N' "$OUT" || fail "--help"

[ "$failures" = 0 ] || { echo "test_run_cli: $failures failure(s)" >&2; exit 1; }
echo "test_run_cli: ok"
