#!/usr/bin/env node
// The agent loop of `claude-gateway run --output jsonl`, written the way a Node user would:
// the official @anthropic-ai/sdk (messages.stream) and @modelcontextprotocol/sdk (Client +
// StdioClientTransport), one process, N conversations as concurrent async functions.
//
// Contract (the subset of `claude-gateway run` the benchmark uses):
//   node agent_node.cjs --prompt TEXT [--system TEXT] [--model M] [--max-turns N]
//        [--base-url URL] [--mcp-config FILE] [--allowed-servers a,b]
//        [--approve all|none] [--output jsonl] [--sessions N]
// One line per event, {"seq","ts","event"} (plus "session", 1-based, first, when N > 1),
// written as it happens. Events: text_delta, thinking_delta, tool_use, tool_result, usage,
// stream_complete, error. A local tool `greet` answers {"result": "Hello from <name>"}.
// Exit status 0 only when every session reached stream_complete; 2 on a bad flag.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const npmDir = process.env.CGW_NPM_DIR || path.join(__dirname, '..', '..', '.cache', 'npm');
const npmRequire = createRequire(path.join(path.resolve(npmDir), 'package.json'));
const Anthropic = npmRequire('@anthropic-ai/sdk').default;
const { Client } = npmRequire('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = npmRequire('@modelcontextprotocol/sdk/client/stdio.js');

function usage(msg) {
    process.stderr.write(`agent_node: ${msg}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const a = { model: 'claude-sonnet-4-6', sessions: 1, approve: 'all', output: 'jsonl' };
    const names = {
        '--prompt': 'prompt', '--system': 'system', '--model': 'model',
        '--max-turns': 'maxTurns', '--base-url': 'baseURL', '--mcp-config': 'mcpConfig',
        '--allowed-servers': 'allowed', '--approve': 'approve', '--output': 'output',
        '--sessions': 'sessions',
    };
    for (let i = 0; i < argv.length; i++) {
        const key = names[argv[i]];
        if (!key) usage(`unknown option ${argv[i]}`);
        if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
        a[key] = argv[++i];
    }
    if (a.prompt === undefined) usage('--prompt is required');
    a.sessions = Number(a.sessions);
    if (!Number.isInteger(a.sessions) || a.sessions < 1) usage('--sessions must be >= 1');
    if (a.maxTurns !== undefined) {
        a.maxTurns = Number(a.maxTurns);
        if (!Number.isInteger(a.maxTurns) || a.maxTurns < 1) usage('--max-turns must be >= 1');
    }
    if (!['all', 'none'].includes(a.approve)) usage('--approve must be all or none');
    if (a.output !== 'jsonl') usage('only --output jsonl is implemented');
    return a;
}

// ---- MCP: one client per configured stdio server, shared by every session ----------------

async function startMcp(file, allowed) {
    const tools = [];
    const owner = new Map(); // tool name -> { client, server }
    const clients = [];
    if (!file) return { tools, owner, clients };
    const servers = JSON.parse(fs.readFileSync(file, 'utf8')).mcpServers || {};
    const allow = allowed ? new Set(allowed.split(',').filter(Boolean)) : null;
    const entries = Object.entries(servers).filter(([name]) => !allow || allow.has(name));
    await Promise.all(entries.map(async ([name, cfg]) => {
        const client = new Client({ name: 'agent-node-peer', version: '1.0.0' });
        const env = { ...process.env };
        for (const [k, v] of Object.entries(cfg.env || {})) env[k] = String(v);
        await client.connect(new StdioClientTransport({
            command: cfg.command, args: cfg.args || [], env, cwd: cfg.cwd, stderr: 'ignore',
        }));
        clients.push({ name, client });
    }));
    for (const [name] of entries) { // config order: the first server wins a name
        const { client } = clients.find((c) => c.name === name);
        const { tools: listed } = await client.listTools();
        for (const t of listed) {
            if (t.name === 'greet' || owner.has(t.name)) continue;
            owner.set(t.name, { client, server: name });
            tools.push({ name: t.name, description: t.description || '', input_schema: t.inputSchema });
        }
    }
    return { tools, owner, clients };
}

function mapMcpResult(r) {
    const text = (r.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('');
    let value = r.structuredContent;
    if (value === undefined && text) {
        try { value = JSON.parse(text); } catch { value = { text }; }
    }
    if (value === undefined) value = {};
    return r.isError ? [null, { code: 'mcp_tool_error', message: text || 'tool error' }] : [value, null];
}

// ---- one conversation ---------------------------------------------------------------------

const GREET = {
    name: 'greet', description: 'Greet someone',
    input_schema: { type: 'object', properties: { name: { type: 'string' } } },
};

function nowSeconds() {
    return Math.round((performance.timeOrigin + performance.now()) * 1000) / 1e6;
}

function makeEmitter(session, multi) {
    let seq = 0;
    return (event) => {
        seq++;
        const entry = multi ? { session, seq, ts: nowSeconds(), event } : { seq, ts: nowSeconds(), event };
        process.stdout.write(JSON.stringify(entry) + '\n');
    };
}

async function runTool(mcp, args, block, index, emit) {
    const server = block.name === 'greet' ? null : (mcp.owner.get(block.name) || {}).server || null;
    emit({ type: 'tool_use', tool_call_id: block.id, tool_name: block.name, tool_input: block.input,
           call_index: index, server });
    const t0 = performance.now();
    let result = null;
    let error = null;
    if (args.approve === 'none') {
        error = { code: 'user_denied', message: 'User denied execution' };
    } else if (block.name === 'greet') {
        result = { result: `Hello from ${(block.input && block.input.name) || 'world'}` };
    } else if (mcp.owner.has(block.name)) {
        try {
            [result, error] = mapMcpResult(await mcp.owner.get(block.name).client.callTool({
                name: block.name, arguments: block.input || {},
            }));
        } catch (e) {
            error = { code: 'tool_error', message: String(e.message || e) };
        }
    } else {
        error = { code: 'unknown_tool', message: `Unknown tool: ${block.name}` };
    }
    const soft = result && (result.success === false || result.status === 'error');
    const isError = error !== null || Boolean(soft);
    emit({ type: 'tool_result', tool_call_id: block.id, tool_name: block.name, result, error,
           is_error: isError, duration_ms: Math.round(performance.now() - t0), server });
    const content = JSON.stringify(error ? { error } : result);
    return isError ? { type: 'tool_result', tool_use_id: block.id, content, is_error: true }
                   : { type: 'tool_result', tool_use_id: block.id, content };
}

// Sonnet list prices, USD per million tokens; input_tokens excludes cached tokens.
function cost(u) {
    return (u.input_tokens * 3 + u.cache_creation_input_tokens * 3.75 +
            u.cache_read_input_tokens * 0.3 + u.output_tokens * 15) / 1e6;
}

async function converse(anthropic, mcp, args, emit) {
    const messages = [{ role: 'user', content: args.prompt }];
    const tools = [GREET, ...mcp.tools];
    const total = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    let turns = 0;
    let stopReason = null;
    for (;;) {
        if (args.maxTurns !== undefined && turns >= args.maxTurns) {
            stopReason = 'max_turns';
            break;
        }
        turns++;
        const stream = anthropic.messages.stream({
            model: args.model, max_tokens: 16000, messages, tools,
            ...(args.system ? { system: args.system } : {}),
        });
        for await (const ev of stream) {
            if (ev.type !== 'content_block_delta') continue;
            if (ev.delta.type === 'text_delta' && ev.delta.text) emit({ type: 'text_delta', text: ev.delta.text });
            else if (ev.delta.type === 'thinking_delta' && ev.delta.thinking) emit({ type: 'thinking_delta', text: ev.delta.thinking });
        }
        const msg = await stream.finalMessage();
        const u = msg.usage;
        const usage = {
            input_tokens: u.input_tokens || 0, output_tokens: u.output_tokens || 0,
            cache_creation_input_tokens: u.cache_creation_input_tokens || 0,
            cache_read_input_tokens: u.cache_read_input_tokens || 0,
        };
        for (const k of Object.keys(total)) total[k] += usage[k];
        emit({ type: 'usage', ...usage, estimated_cost_usd: cost(usage), model: msg.model });
        stopReason = msg.stop_reason;
        const calls = msg.content.filter((b) => b.type === 'tool_use');
        if (calls.length === 0 || msg.stop_reason !== 'tool_use') break;
        messages.push({ role: 'assistant', content: msg.content.filter((b) => b.type !== 'text' || b.text) });
        const results = await Promise.all(calls.map((b, i) => runTool(mcp, args, b, i, emit)));
        messages.push({ role: 'user', content: results });
    }
    emit({ type: 'stream_complete', stop_reason: stopReason, turns,
           usage: { ...total, estimated_cost_usd: Math.round(cost(total) * 1e6) / 1e6 } });
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const anthropic = new Anthropic({
        ...(args.baseURL ? { baseURL: args.baseURL } : {}),
    });
    const mcp = await startMcp(args.mcpConfig, args.allowed);
    const outcomes = await Promise.all(Array.from({ length: args.sessions }, async (_, i) => {
        const emit = makeEmitter(i + 1, args.sessions > 1);
        try {
            await converse(anthropic, mcp, args, emit);
            return true;
        } catch (e) {
            emit({ type: 'error', error: String(e.message || e), code: e.status ? `http_${e.status}` : 'error' });
            return false;
        }
    }));
    await Promise.all(mcp.clients.map(({ client }) => client.close()));
    process.exitCode = outcomes.every(Boolean) ? 0 : 1;
}

main().catch((e) => {
    process.stderr.write(`agent_node: ${e.stack || e}\n`);
    process.exitCode = 1;
});
