#!/usr/bin/env node
// A small MCP stdio server for fault tests. Plain Node, no npm dependencies.
//
// Usage: node misbehaving_mcp_server.js [MODE[,MODE...]] [--size BYTES] [--count N]
//
// Without a mode it speaks correct MCP (2025-11-25, and echoes 2025-06-18, 2025-03-26 and
// 2024-11-05 when asked for them): initialize, notifications/initialized, ping (both
// ways), tools/list split over two pages (nextCursor "page-2"; any other cursor is -32602),
// tools/call, notifications/cancelled. Unknown methods get -32601, unparsable input lines
// are ignored (like the TypeScript SDK), and EOF on stdin ends the process with status 0.
// The server's capabilities are {"tools":{"listChanged":true},"logging":{}}.
//
// Tools (always present; page 1: echo, add; page 2: big, sleep, list-changed,
// client-responses):
//   echo {message}          -> text: the message
//   add {a, b}              -> text: the sum as JSON, and structuredContent {"sum": a+b}
//   big {bytes}             -> text of `bytes` 'x' characters (for line-length caps)
//   sleep {ms}              -> answers "slept <ms>" after ms; sends notifications/progress
//                              every 50 ms when the call carries _meta.progressToken;
//                              cancelled by notifications/cancelled (then never answers)
//   list-changed {count}    -> sends `count` notifications/tools/list_changed, then answers
//   client-responses        -> text: JSON array of every response the client sent to this
//                              server's own requests, in arrival order
//
// Modes (combine with commas, e.g. "garbage,answer-twice"):
//   normal              the default, as above
//   garbage             before every line it writes, a non-JSON line ("garbage line <n>: this
//                       is not JSON") and, every second time, a truncated object "{\"jsonrpc\""
//   oversized           the first tools/call is answered with one valid JSON-RPC response
//                       line of exactly --size bytes (default 20 MiB) before its newline;
//                       later calls are answered normally
//   never-answer        tools/call requests are never answered (everything else is)
//   answer-twice        every tools/call is answered twice with the same id; the second
//                       answer's text ends with " (again)"
//   exit-in-initialize  on initialize, writes "exiting during initialize" to stderr and
//                       exits with status 3 without answering
//   crash-mid-call      on tools/call, writes the first half of its response (no newline)
//                       and kills itself with SIGKILL
//   server-requests     right after notifications/initialized it sends, with ids 0..4:
//                       ping, roots/list, sampling/createMessage, elicitation/create and
//                       "bogus/method"; the answers are kept for client-responses
//   list-changed-burst  right after notifications/initialized it sends --count (default 5)
//                       notifications/tools/list_changed in one write
//   ignore-eof          EOF on stdin does not end the process (it must be signalled)
//
// Every mode writes "misbehaving-mcp-server ready (<modes>)" to stderr at start.
'use strict';

const LATEST = '2025-11-25';
const VERSIONS = [LATEST, '2025-06-18', '2025-03-26', '2024-11-05'];

function parseArgs(argv) {
    const o = { modes: new Set(), size: 20 * 1024 * 1024, count: 5 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--size') {
            o.size = Number(argv[++i]);
        } else if (a === '--count') {
            o.count = Number(argv[++i]);
        } else {
            a.split(',').filter(Boolean).forEach((m) => o.modes.add(m));
        }
    }
    const known = ['normal', 'garbage', 'oversized', 'never-answer', 'answer-twice',
        'exit-in-initialize', 'crash-mid-call', 'server-requests', 'list-changed-burst',
        'ignore-eof'];
    for (const m of o.modes) {
        if (!known.includes(m)) {
            process.stderr.write(`unknown mode: ${m}\n`);
            process.exit(2);
        }
    }
    if (!Number.isInteger(o.size) || o.size < 64 || !Number.isInteger(o.count) || o.count < 0) {
        process.stderr.write('bad --size or --count\n');
        process.exit(2);
    }
    return o;
}

const opts = parseArgs(process.argv.slice(2));
const has = (m) => opts.modes.has(m);
let garbageCount = 0;
let oversizedDone = false;
const clientResponses = [];
const sleeping = new Map(); // request id (as JSON) -> {timer, progress}

const TOOLS = [
    tool('echo', 'Echoes the message back.', { message: { type: 'string' } }, ['message']),
    tool('add', 'Adds two numbers.', { a: { type: 'number' }, b: { type: 'number' } }, ['a', 'b']),
    tool('big', 'Returns a text of the given size.', { bytes: { type: 'integer' } }, ['bytes']),
    tool('sleep', 'Answers after ms milliseconds.', { ms: { type: 'integer' } }, ['ms']),
    tool('list-changed', 'Sends count list_changed notifications.',
        { count: { type: 'integer' } }, []),
    tool('client-responses', 'Responses the client sent to server requests.', {}, []),
];
const PAGE_1 = 2;

function tool(name, description, properties, required) {
    return { name, description, inputSchema: { type: 'object', properties, required } };
}

// Pipes are written synchronously by Node on Linux, so exit() after write() loses nothing.
function writeLine(s) {
    if (has('garbage')) {
        garbageCount++;
        process.stdout.write(`garbage line ${garbageCount}: this is not JSON\n`);
        if (garbageCount % 2 === 0) {
            process.stdout.write('{"jsonrpc"\n');
        }
    }
    process.stdout.write(s + '\n');
}

function send(msg) {
    writeLine(JSON.stringify(msg));
}

const result = (id, r) => send({ jsonrpc: '2.0', id, result: r });
const error = (id, code, message) => send({ jsonrpc: '2.0', id, error: { code, message } });
const notify = (method, params) => send({ jsonrpc: '2.0', method, params });
const text = (t) => ({ content: [{ type: 'text', text: t }] });

function burst(n) {
    // One write, so the client sees the notifications within the same millisecond.
    const one = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    writeLine(Array(n).fill(one).join('\n'));
}

function onInitialize(id, params) {
    if (has('exit-in-initialize')) {
        process.stderr.write('exiting during initialize\n');
        process.exit(3);
    }
    const asked = params && params.protocolVersion;
    result(id, {
        protocolVersion: VERSIONS.includes(asked) ? asked : LATEST,
        capabilities: { tools: { listChanged: true }, logging: {} },
        serverInfo: { name: 'misbehaving-mcp-server', version: '1.0.0' },
    });
}

function onInitialized() {
    if (has('server-requests')) {
        send({ jsonrpc: '2.0', id: 0, method: 'ping' });
        send({ jsonrpc: '2.0', id: 1, method: 'roots/list', params: {} });
        send({
            jsonrpc: '2.0', id: 2, method: 'sampling/createMessage',
            params: { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
                maxTokens: 10 },
        });
        send({
            jsonrpc: '2.0', id: 3, method: 'elicitation/create',
            params: { message: 'name?', requestedSchema: { type: 'object', properties: {} } },
        });
        send({ jsonrpc: '2.0', id: 4, method: 'bogus/method', params: {} });
    }
    if (has('list-changed-burst')) {
        burst(opts.count);
    }
}

function onToolsList(id, params) {
    const cursor = params && params.cursor;
    if (cursor === undefined || cursor === null) {
        result(id, { tools: TOOLS.slice(0, PAGE_1), nextCursor: 'page-2' });
    } else if (cursor === 'page-2') {
        result(id, { tools: TOOLS.slice(PAGE_1) });
    } else {
        error(id, -32602, `invalid cursor: ${cursor}`);
    }
}

function runTool(name, args, id, meta) {
    switch (name) {
    case 'echo':
        return text(String(args.message));
    case 'add': {
        const sum = Number(args.a) + Number(args.b);
        return { ...text(JSON.stringify({ sum })), structuredContent: { sum } };
    }
    case 'big':
        return text('x'.repeat(Math.max(0, Number(args.bytes) || 0)));
    case 'list-changed':
        burst(Number(args.count) || 1);
        return text('sent');
    case 'client-responses':
        return text(JSON.stringify(clientResponses));
    case 'sleep':
        startSleep(id, Number(args.ms) || 0, meta && meta.progressToken);
        return null; // answered later
    default:
        return { ...text(`MCP error -32602: Tool ${name} not found`), isError: true };
    }
}

function startSleep(id, ms, token) {
    const key = JSON.stringify(id);
    const entry = { timer: null, progress: null };
    let step = 0;
    if (token !== undefined) {
        entry.progress = setInterval(() => {
            step++;
            notify('notifications/progress', { progressToken: token, progress: step });
        }, 50);
    }
    entry.timer = setTimeout(() => {
        stopSleep(key);
        answerCall(id, text(`slept ${ms}`));
    }, ms);
    sleeping.set(key, entry);
}

function stopSleep(key) {
    const e = sleeping.get(key);
    if (e) {
        clearTimeout(e.timer);
        clearInterval(e.progress);
        sleeping.delete(key);
    }
}

function answerCall(id, r) {
    if (has('oversized') && !oversizedDone) {
        oversizedDone = true;
        const empty = JSON.stringify({ jsonrpc: '2.0', id, result: text('') });
        const pad = opts.size - Buffer.byteLength(empty);
        r = text('x'.repeat(Math.max(0, pad)));
    }
    result(id, r);
    if (has('answer-twice')) {
        const again = JSON.parse(JSON.stringify(r));
        const first = again.content && again.content[0];
        if (first && first.type === 'text') {
            first.text += ' (again)';
        }
        result(id, again);
    }
}

function onToolsCall(id, params) {
    if (has('never-answer')) {
        return;
    }
    if (has('crash-mid-call')) {
        const line = JSON.stringify({ jsonrpc: '2.0', id, result: text('never finished') });
        process.stdout.write(line.slice(0, line.length >> 1));
        process.stderr.write('crashing mid-call\n');
        process.kill(process.pid, 'SIGKILL');
        return;
    }
    const p = params || {};
    const r = runTool(String(p.name), p.arguments || {}, id, p._meta);
    if (r !== null) {
        answerCall(id, r);
    }
}

function onRequest(msg) {
    const { id, method, params } = msg;
    switch (method) {
    case 'initialize':
        return onInitialize(id, params);
    case 'ping':
        return result(id, {});
    case 'tools/list':
        return onToolsList(id, params);
    case 'tools/call':
        return onToolsCall(id, params);
    default:
        return error(id, -32601, `Method not found: ${method}`);
    }
}

function onMessage(msg) {
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
        return;
    }
    if (msg.method === undefined) {
        if ('result' in msg || 'error' in msg) {
            clientResponses.push(msg);
        }
        return;
    }
    if (msg.id === undefined) {
        if (msg.method === 'notifications/initialized') {
            onInitialized();
        } else if (msg.method === 'notifications/cancelled') {
            stopSleep(JSON.stringify(msg.params && msg.params.requestId));
        }
        return;
    }
    onRequest(msg);
}

function main() {
    process.stderr.write(`misbehaving-mcp-server ready (${[...opts.modes].join(',') || 'normal'})\n`);
    let pending = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).replace(/\r$/, '');
            pending = pending.slice(nl + 1);
            let msg;
            try {
                msg = JSON.parse(line);
            } catch (e) {
                continue;
            }
            onMessage(msg);
        }
    });
    process.stdin.on('end', () => {
        if (has('ignore-eof')) {
            setInterval(() => {}, 1000); // lives on, as servers with their own timers do
            return;
        }
        process.exit(0);
    });
}

main();
