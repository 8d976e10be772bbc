// Helpers for the gateway integration tests (test_gateway_*.sh): start the real
// claude-gateway binary (serve, mock-api) on loopback, talk HTTP/SSE to it, clean up.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BIN = process.env.CGW_GATEWAY_BIN;
const SRC = process.env.CGW_SOURCE_DIR;
const NPM = (process.env.CGW_NPM_DIR || `${SRC}/.cache/npm`) + '/node_modules/@modelcontextprotocol';
export const EVERYTHING = `${NPM}/server-everything/dist/index.js`;

const procs = new Set();
export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cgw-gw-'));

// SIGTERM first so a gateway stops its MCP servers; SIGKILL whatever is left.
export async function cleanup() {
  const live = [...procs].filter((p) => p.exitCode === null && p.signalCode === null);
  for (const p of live) p.kill('SIGTERM');
  for (const p of live) {
    try { await waitExit(p, 8000); } catch { p.kill('SIGKILL'); }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

export async function stop(p) {
  p.kill('SIGTERM');
  return waitExit(p, 10000);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Spawns BIN with args; resolves once it printed "listening on HOST:PORT".
export function startProc(args, env = {}, name = 'proc') {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, {
      env: { ...process.env, HOME: tmp, ANTHROPIC_API_KEY: '', ANTHROPIC_AUTH_TOKEN: '', ...env },
      cwd: tmp,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.add(p);
    let out = '';
    p.stderrText = '';
    p.stderr.on('data', (d) => { p.stderrText += d; });
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${p.stderrText}`)), 15000);
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (\S+)/);
      if (m && !p.addr) {
        p.addr = m[1];
        clearTimeout(timer);
        resolve(p);
      }
    });
    p.on('exit', (code) => {
      if (!p.addr) {
        clearTimeout(timer);
        reject(Object.assign(new Error(`${name} exited ${code}: ${p.stderrText}`), { code, stderr: p.stderrText }));
      }
    });
  });
}

export function waitExit(p, ms = 10000) {
  return new Promise((resolve, reject) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve(p.exitCode);
    const t = setTimeout(() => reject(new Error('process did not exit')), ms);
    p.on('exit', (code) => { clearTimeout(t); resolve(code); });
  });
}

let mockN = 0;
export async function startMock(script) {
  const file = path.join(tmp, `script${++mockN}.json`);
  fs.writeFileSync(file, JSON.stringify(script));
  return startProc(['mock-api', '--script', file], {}, 'mock-api');
}

export function mcpConfig(servers) {
  const file = path.join(tmp, `mcp${++mockN}.json`);
  fs.writeFileSync(file, JSON.stringify({ mcpServers: servers }));
  return file;
}

export const everythingConfig = () =>
  mcpConfig({ everything: { type: 'stdio', command: 'node', args: [EVERYTHING] } });

// Starts `serve`: settings as --set KEY=VALUE, a fresh data dir unless given.
export async function startGateway({ set = {}, env = {}, dataDir, mock, memory = false, listen = '127.0.0.1:0' } = {}) {
  const args = ['serve', '--listen', listen, '--log-level', 'debug'];
  if (memory) args.push('--memory');
  else args.push('--data-dir', dataDir || fs.mkdtempSync(path.join(tmp, 'data-')));
  const all = { strict_mcp_config: 'true', mcp_config: mcpConfig({}), ping_interval_ms: '60000', ...set };
  for (const [k, v] of Object.entries(all)) args.push('--set', `${k}=${v}`);
  const e = { ...env };
  if (mock) {
    e.ANTHROPIC_BASE_URL = `http://${mock.addr}`;
    e.ANTHROPIC_API_KEY = 'sk-ant-test-key-0123456789';
  }
  const p = await startProc(args, e, 'gateway');
  p.dataDir = args[args.indexOf('--data-dir') + 1];
  return p;
}

// One HTTP request; resolves {status, headers, text, json}.
export async function call(addr, method, p, { body, token, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let b = raw;
  if (body !== undefined) {
    b = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const r = await fetch(`http://${addr}${p}`, { method, headers: h, body: b });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, text, json };
}

// Parses SSE text into frames {id, event, data} and counts ": ping" comments.
export function parseSse(buf, state) {
  let i;
  while ((i = buf.indexOf('\n\n')) >= 0) {
    const block = buf.slice(0, i);
    buf = buf.slice(i + 2);
    const f = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) { state.pings++; continue; }
      const c = line.indexOf(': ');
      const k = line.slice(0, c), v = line.slice(c + 2);
      if (k === 'id') f.id = Number(v);
      else if (k === 'event') f.event = v;
      else if (k === 'data') f.data = JSON.parse(v);
    }
    if (f.event) state.events.push(f);
  }
  return buf;
}

const TERMINAL = (f) => !f.data.event.agent_id && (f.event === 'stream_complete' || f.event === 'error');

// Reads an SSE stream. `stopAfter`: abort after that many events. Resolves
// {status, events, pings, ended (server closed the stream cleanly), error}. Promises returned
// by onEvent are awaited (after the stream) before it resolves.
export async function sse(addr, p, { token, headers = {}, method = 'GET', body, stopAfter, onEvent } = {}) {
  const h = { accept: 'text/event-stream', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const ac = new AbortController();
  const r = await fetch(`http://${addr}${p}`, { method, headers: h, signal: ac.signal,
    body: body !== undefined ? JSON.stringify(body) : undefined });
  const state = { status: r.status, events: [], pings: 0, ended: false, json: null };
  if (!r.headers.get('content-type')?.includes('text/event-stream')) {
    state.json = JSON.parse(await r.text());
    return state;
  }
  const dec = new TextDecoder();
  const pending = []; // what onEvent started (answers, cancels): awaited before returning
  let buf = '';
  try {
    for await (const chunk of r.body) {
      const before = state.events.length;
      buf = parseSse(buf + dec.decode(chunk, { stream: true }), state);
      for (const f of state.events.slice(before)) if (onEvent) pending.push(onEvent(f, state));
      if (stopAfter !== undefined && state.events.length >= stopAfter) {
        state.events.length = stopAfter;
        ac.abort();
        await Promise.all(pending);
        return state;
      }
    }
    state.ended = true;
  } catch (e) {
    state.error = e;
  }
  await Promise.all(pending);
  return state;
}

export function checkSequence(events, from = 1) {
  events.forEach((f, i) => {
    if (f.id !== from + i) throw new Error(`event ${i} has id ${f.id}, wanted ${from + i}`);
    if (f.data.seq !== f.id) throw new Error(`seq ${f.data.seq} != id ${f.id}`);
  });
  const last = events[events.length - 1];
  if (!TERMINAL(last)) throw new Error(`last event is ${last.event}, not terminal`);
}

export const isTerminal = TERMINAL;

// A raw HTTP exchange over a socket (for truncated bodies, huge headers, slow readers).
export function rawSocket(addr) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => resolve(s));
    s.on('error', reject);
  });
}

export function rawExchange(addr, bytes, { endAfterWrite = false } = {}) {
  return new Promise(async (resolve) => {
    const s = await rawSocket(addr);
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('close', () => resolve(data));
    s.on('error', () => resolve(data));
    s.write(bytes);
    if (endAfterWrite) s.end();
    setTimeout(() => s.destroy(), 3000);
  });
}

export async function runTests(tests) {
  const only = process.argv[2];
  let failed = 0;
  try {
    for (const [name, fn] of Object.entries(tests)) {
      if (only && !name.startsWith(only)) continue;
      const t0 = Date.now();
      try {
        await fn();
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name}: ${e.stack}`);
      }
    }
  } finally {
    await cleanup();
  }
  process.exit(failed ? 1 : 0);
}
