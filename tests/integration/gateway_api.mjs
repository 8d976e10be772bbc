// The gateway's HTTP API against the real binary: every endpoint and error status, a
// three-message conversation with MCP tools through mock-api, tenants, limits, approvals,
// cancel, malformed/oversized/truncated requests. Run by test_gateway_api.sh.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  call, checkSequence, everythingConfig, mcpConfig, rawExchange, runTests, sleep, sse,
  startGateway, startMock, startProc, stop, tmp, waitExit,
} from './gateway_lib.mjs';

const TA = 'tok-alpha-0123456789abcdef';
const TB = 'tok-beta-0123456789abcdefgh';
const TOKENS = `alpha:${TA},beta:${TB}`;

async function newSession(addr, token, body = {}) {
  const r = await call(addr, 'POST', '/v1/sessions', { body, token });
  assert.equal(r.status, 201, r.text);
  return r.json.session_id;
}

function errorOf(r, status, type) {
  assert.equal(r.status, status, r.text);
  assert.equal(typeof r.json.error.message, 'string', r.text);
  if (type) assert.equal(r.json.error.type, type, r.text);
}

const tests = {
  async 'stub answer without a credential, events replay after the run'() {
    const gw = await startGateway({ set: { stub_delay_ms: '2' } });
    const sid = await newSession(gw.addr);
    const s = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'hi there' } });
    assert.equal(s.status, 200);
    checkSequence(s.events);
    const text = s.events.filter((f) => f.event === 'text_delta').map((f) => f.data.event.text).join('');
    assert.match(text, /^Stub response \(no Anthropic credential configured\)\. You asked: hi there/);
    const runId = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json.runs[0].run_id;
    await sleep(100);
    const again = await sse(gw.addr, `/v1/runs/${runId}/events`);
    assert.deepEqual(again.events.map((f) => f.data), s.events.map((f) => f.data));
    assert.ok(again.ended);
    const run = await call(gw.addr, 'GET', `/v1/runs/${runId}`);
    assert.equal(run.json.status, 'completed');
    assert.equal(run.json.last_seq, s.events.length);
    assert.equal(await stop(gw), 0);
  },

  async 'conversation over three messages with MCP tools'() {
    const mock = await startMock({ turns: [
      { name: 't1-tool', content: [{ type: 'text', text: 'Let me echo.' },
        { type: 'tool_use', id: 'toolu_a1', name: 'echo', input: { message: 'first' } }] },
      { name: 't1-answer', text: 'Echo said first.', chunks: 3 },
      { name: 't2', text: 'Second answer.' },
      { name: 't3-tool', content: [{ type: 'tool_use', id: 'toolu_a3', name: 'echo', input: { message: 'third' } }] },
      { name: 't3-answer', text: 'Done with three.' },
    ] });
    const gw = await startGateway({ mock, set: { mcp_config: everythingConfig(), tokens: TOKENS } });
    // The MCP server starts in the background: wait until its tools are listed.
    let tools;
    for (let i = 0; i < 100; i++) {
      tools = await call(gw.addr, 'GET', '/v1/tools', { token: TA });
      if (tools.json.tools.some((t) => t.name === 'echo')) break;
      await sleep(100);
    }
    const echo = tools.json.tools.find((t) => t.name === 'echo');
    assert.equal(echo.server, 'everything');
    const servers = await call(gw.addr, 'GET', '/v1/mcp/servers', { token: TA });
    assert.equal(servers.json.servers[0].name, 'everything');
    assert.equal(servers.json.servers[0].state, 'ready');

    const sid = await newSession(gw.addr, TA, { system: 'You are terse.', max_turns: 5 });
    const r1 = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', token: TA, body: { content: 'echo first' } });
    checkSequence(r1.events);
    const use = r1.events.find((f) => f.event === 'tool_use').data.event;
    assert.equal(use.tool_name, 'echo');
    assert.equal(use.server, 'everything');
    const res = r1.events.find((f) => f.event === 'tool_result').data.event;
    assert.equal(res.is_error, false);
    assert.match(JSON.stringify(res.result), /first/);
    assert.equal(r1.events.at(-1).event, 'stream_complete');

    const r2 = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', token: TA,
      body: { content: [{ type: 'text', text: 'and now?' }] } });
    assert.equal(r2.events.at(-1).event, 'stream_complete');
    // 202 then the events endpoint.
    const p3 = await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: 'echo third' } });
    assert.equal(p3.status, 202, p3.text);
    const r3 = await sse(gw.addr, `/v1/runs/${p3.json.run_id}/events`, { token: TA });
    checkSequence(r3.events);
    assert.ok(r3.events.some((f) => f.event === 'tool_result'));

    const st = await call(gw.addr, 'GET', `/v1/sessions/${sid}`, { token: TA });
    assert.equal(st.json.message_count, 10, st.text);
    assert.equal(st.json.runs.length, 3);
    assert.ok(st.json.runs.every((r) => r.status === 'completed'));
    // The last model request carried the whole conversation, tool turns included.
    const reqs = (await call(mock.addr, 'GET', '/_mock/requests')).json;
    const last = reqs.at(-1).body;
    assert.equal(last.messages.length, 9);
    assert.equal(last.system[0].text, 'You are terse.');
    const flat = JSON.stringify(last.messages);
    assert.match(flat, /"tool_use_id":"toolu_a1"/);
    assert.match(flat, /"tool_use_id":"toolu_a3"/);
    assert.match(flat, /Second answer\./);
    const metrics = (await call(gw.addr, 'GET', '/metrics', { token: TA })).text;
    assert.match(metrics, /cgw_tool_calls_total\{server="everything",outcome="ok"\} 2/);
    assert.match(metrics, /cgw_tokens_total\{kind="input"\} \d+/);
    assert.match(metrics, /cgw_model_turn_seconds_count 5/);
    assert.match(metrics, /cgw_tool_call_seconds_count 2/);
    assert.match(metrics, /cgw_runs_finished_total\{status="completed"\} 3/);
    assert.ok(!metrics.includes(TA) && !metrics.includes('sk-ant-test'));
    assert.equal(await stop(gw), 0);
    assert.ok(!gw.stderrText.includes(TA) && !gw.stderrText.includes('sk-ant-test-key'), 'secret in logs');
    await stop(mock);
  },

  async 'routes, methods, bodies and authentication errors'() {
    const gw = await startGateway({ memory: true, set: { tokens: TOKENS, max_body_bytes: '2048', max_header_bytes: '4096' } });
    const a = gw.addr;
    assert.equal((await call(a, 'GET', '/healthz')).status, 200);
    errorOf(await call(a, 'GET', '/v1/tools'), 401, 'authentication_error');
    errorOf(await call(a, 'GET', '/v1/tools', { token: 'wrong-token-0123456789' }), 401);
    errorOf(await call(a, 'GET', '/v1/nothing', { token: TA }), 404, 'not_found_error');
    errorOf(await call(a, 'GET', '/v1/sessions/bad$id', { token: TA }), 404);
    const m = await call(a, 'GET', '/v1/sessions', { token: TA });
    errorOf(m, 405);
    assert.equal(m.headers.get('allow'), 'POST');
    errorOf(await call(a, 'DELETE', '/v1/tools', { token: TA }), 405);
    errorOf(await call(a, 'POST', '/v1/sessions', { token: TA, raw: '{"system": ', headers: { 'content-type': 'application/json' } }), 400, 'invalid_request_error');
    errorOf(await call(a, 'POST', '/v1/sessions', { token: TA, body: [1, 2] }), 400);
    errorOf(await call(a, 'POST', '/v1/sessions', { token: TA, body: { colour: 'red' } }), 400);
    errorOf(await call(a, 'POST', '/v1/sessions', { token: TA, body: { max_turns: 'x' } }), 400);
    const sid = await newSession(a, TA);
    errorOf(await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: '' } }), 400);
    errorOf(await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: [{ text: 'no type' }] } }), 400);
    errorOf(await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TA }), 400);
    errorOf(await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: 'x'.repeat(3000) } }), 413, 'request_too_large');
    errorOf(await call(a, 'GET', '/v1/sessions/sess_missing', { token: TA }), 404);
    errorOf(await call(a, 'POST', '/v1/sessions/sess_missing/messages', { token: TA, body: { content: 'hi' } }), 404);
    errorOf(await call(a, 'GET', '/v1/runs/run_missing', { token: TA }), 404);
    errorOf(await call(a, 'GET', '/v1/runs/run_missing/events', { token: TA }), 404);
    errorOf(await call(a, 'POST', '/v1/runs/run_missing/cancel', { token: TA }), 404);
    errorOf(await call(a, 'POST', '/v1/runs/run_missing/approvals', { token: TA, body: { tool_call_id: 'x', nonce: 'y', approved: true } }), 404);
    // Truncated body: the connection closes before Content-Length bytes came; no reply, and
    // the gateway keeps serving.
    const cut = await rawExchange(a, `POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TA}\r\nContent-Length: 100\r\n\r\n{"sys`, { endAfterWrite: true });
    assert.ok(!cut.includes('201'), cut);
    // Far over the body cap: evhttp refuses without reading it all.
    const huge = await call(a, 'POST', '/v1/sessions', { token: TA, raw: 'x'.repeat(200000) });
    assert.equal(huge.status, 413);
    // Oversized headers: our 431 with a message; far over the limit, evhttp's own 400.
    errorOf(await call(a, 'GET', '/v1/tools', { token: TA, headers: { 'x-big': 'a'.repeat(5000) } }), 431);
    const big = await rawExchange(a, `GET /v1/tools HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 400/);
    assert.equal((await call(a, 'GET', '/v1/tools', { token: TA })).status, 200);
    assert.equal(await stop(gw), 0);
  },

  async 'two tenants are kept apart'() {
    const gw = await startGateway({ memory: true, set: { tokens: TOKENS, stub_delay_ms: '1' } });
    const a = gw.addr;
    const sid = await newSession(a, TA);
    const run = await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: 'mine' } });
    assert.equal(run.status, 202);
    const rid = run.json.run_id;
    errorOf(await call(a, 'GET', `/v1/sessions/${sid}`, { token: TB }), 404);
    errorOf(await call(a, 'POST', `/v1/sessions/${sid}/messages`, { token: TB, body: { content: 'yours?' } }), 404);
    errorOf(await call(a, 'GET', `/v1/runs/${rid}`, { token: TB }), 404);
    errorOf(await call(a, 'GET', `/v1/runs/${rid}/events`, { token: TB }), 404);
    errorOf(await call(a, 'POST', `/v1/runs/${rid}/cancel`, { token: TB }), 404);
    errorOf(await call(a, 'POST', `/v1/runs/${rid}/approvals`, { token: TB, body: { tool_call_id: 'x', nonce: 'y', approved: true } }), 404);
    const own = await sse(a, `/v1/runs/${rid}/events`, { token: TA });
    checkSequence(own.events);
    assert.equal((await call(a, 'GET', `/v1/sessions/${sid}`, { token: TA })).status, 200);
    assert.equal(await stop(gw), 0);
  },

  async 'limits: sessions per tenant, concurrent runs, streams per client'() {
    const gw = await startGateway({ memory: true, set: { max_sessions_per_tenant: '2', max_concurrent_runs: '1',
      max_streams_per_client: '1', stub_delay_ms: '200' } });
    const a = gw.addr;
    const s1 = await newSession(a);
    const s2 = await newSession(a);
    errorOf(await call(a, 'POST', '/v1/sessions', { body: {} }), 429, 'rate_limit_error');
    const r1 = await call(a, 'POST', `/v1/sessions/${s1}/messages`, { body: { content: 'slow one' } });
    assert.equal(r1.status, 202);
    errorOf(await call(a, 'POST', `/v1/sessions/${s1}/messages`, { body: { content: 'again' } }), 409, 'conflict_error');
    errorOf(await call(a, 'POST', `/v1/sessions/${s2}/messages`, { body: { content: 'other' } }), 429);
    const first = sse(a, `/v1/runs/${r1.json.run_id}/events`);
    for (let i = 0; i < 100 && (await call(a, 'GET', '/healthz')).json.open_streams < 1; i++) await sleep(20);
    const second = await sse(a, `/v1/runs/${r1.json.run_id}/events`);
    assert.equal(second.status, 429);
    checkSequence((await first).events);
    await sleep(100);
    assert.equal((await call(a, 'POST', `/v1/sessions/${s2}/messages`, { body: { content: 'now' } })).status, 202);
    assert.equal(await stop(gw), 0);
  },

  async 'a streamed message over the stream limit starts no run'() {
    const gw = await startGateway({ memory: true, set: { max_streams_per_client: '1', stub_delay_ms: '100' } });
    const a = gw.addr;
    const s1 = await newSession(a);
    const s2 = await newSession(a);
    const r1 = await call(a, 'POST', `/v1/sessions/${s1}/messages`, { body: { content: 'watch me' } });
    const watching = sse(a, `/v1/runs/${r1.json.run_id}/events`);
    for (let i = 0; i < 100 && (await call(a, 'GET', '/healthz')).json.open_streams < 1; i++) await sleep(20);
    const refused = await sse(a, `/v1/sessions/${s2}/messages`, { method: 'POST', body: { content: 'stream me' } });
    assert.equal(refused.status, 429);
    assert.match(refused.json.error.message, /streams open/);
    const st = (await call(a, 'GET', `/v1/sessions/${s2}`)).json;
    assert.equal(st.runs.length, 0);
    assert.equal(st.message_count, 0);
    checkSequence((await watching).events);
    assert.equal(await stop(gw), 0);
  },

  async 'approvals over HTTP: every status'() {
    const mock = await startMock({ turns: [
      { content: [{ type: 'tool_use', id: 'toolu_p1', name: 'echo', input: { message: 'approved call' } }] },
      { text: 'ran it' },
      { content: [{ type: 'tool_use', id: 'toolu_p2', name: 'echo', input: { message: 'late' } }] },
      { text: 'timed out' },
    ] });
    const gw = await startGateway({ mock, set: { mcp_config: everythingConfig(), approval_tools: 'echo',
      approval_timeout_ms: '1500', tokens: TOKENS } });
    for (let i = 0; i < 100; i++) {
      if ((await call(gw.addr, 'GET', '/v1/tools', { token: TA })).json.tools.length) break;
      await sleep(100);
    }
    const sid = await newSession(gw.addr, TA);
    const p1 = await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: 'go' } });
    const rid = p1.json.run_id;
    const answers = [];
    const s1 = await sse(gw.addr, `/v1/runs/${rid}/events`, { token: TA, onEvent: async (f) => {
      if (f.event !== 'tool_approval_request') return;
      const ev = f.data.event;
      assert.match(ev.nonce, /^[0-9a-f]{16}$/);
      const ap = (body) => call(gw.addr, 'POST', `/v1/runs/${rid}/approvals`, { token: TA, body });
      answers.push(await ap({ tool_call_id: 'toolu_nope', nonce: ev.nonce, approved: true }));
      answers.push(await ap({ tool_call_id: ev.tool_call_id, nonce: '0000000000000000', approved: true }));
      answers.push(await ap({ tool_call_id: ev.tool_call_id, nonce: ev.nonce }));
      answers.push(await ap({ tool_call_id: ev.tool_call_id, nonce: ev.nonce, approved: true }));
      answers.push(await ap({ tool_call_id: ev.tool_call_id, nonce: ev.nonce, approved: true }));
    } });
    checkSequence(s1.events);
    assert.deepEqual(answers.map((r) => r.status), [404, 409, 400, 200, 409]);
    const res = s1.events.find((f) => f.event === 'tool_result').data.event;
    assert.equal(res.is_error, false, JSON.stringify(res));

    const p2 = await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { token: TA, body: { content: 'again' } });
    let req2;
    const s2 = await sse(gw.addr, `/v1/runs/${p2.json.run_id}/events`, { token: TA, onEvent: (f) => {
      if (f.event === 'tool_approval_request') req2 = f.data.event;
    } });
    const late = await call(gw.addr, 'POST', `/v1/runs/${p2.json.run_id}/approvals`, { token: TA,
      body: { tool_call_id: req2.tool_call_id, nonce: req2.nonce, approved: true } });
    errorOf(late, 410);
    const res2 = s2.events.find((f) => f.event === 'tool_result').data.event;
    assert.equal(res2.error.code, 'approval_timeout');
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'approvals: a denial, then the tool type allowed for the rest of the session'() {
    const use = (id) => ({ content: [{ type: 'tool_use', id, name: 'echo', input: { message: id } }] });
    const mock = await startMock({ turns: [use('toolu_d1'), { text: 'denied' }, use('toolu_d2'),
      { text: 'ran' }, use('toolu_d3'), { text: 'ran again' }] });
    const gw = await startGateway({ mock, set: { mcp_config: everythingConfig(), approval_tools: '*' } });
    for (let i = 0; i < 100; i++) {
      if ((await call(gw.addr, 'GET', '/v1/tools')).json.tools.length) break;
      await sleep(100);
    }
    const sid = await newSession(gw.addr, undefined);
    const answer = (approved, allow) => async (f) => {
      if (f.event !== 'tool_approval_request') return;
      const e = f.data.event;
      const rid = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json.active_run_id;
      const r = await call(gw.addr, 'POST', `/v1/runs/${rid}/approvals`,
        { body: { tool_call_id: e.tool_call_id, nonce: e.nonce, approved, allow_tool_type: allow } });
      assert.equal(r.status, 200, r.text);
    };
    const msg = (onEvent) => sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'go' }, onEvent });
    const denied = await msg(answer(false, false));
    assert.equal(denied.events.find((f) => f.event === 'tool_result').data.event.error.code, 'user_denied');
    const allowed = await msg(answer(true, true));
    assert.equal(allowed.events.find((f) => f.event === 'tool_result').data.event.is_error, false);
    const free = await msg((f) => assert.notEqual(f.event, 'tool_approval_request'));
    assert.ok(!free.events.some((f) => f.event === 'tool_approval_request'));
    assert.equal(free.events.find((f) => f.event === 'tool_result').data.event.is_error, false);
    checkSequence(free.events);
    assert.deepEqual((await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json.settings.approved_tools, ['echo']);
    assert.equal(await stop(gw), 0);
    // The approval is part of the session: it survives a restart.
    await call(mock.addr, 'POST', '/_mock/reset');
    const gw2 = await startGateway({ mock, dataDir: gw.dataDir, set: { mcp_config: everythingConfig(), approval_tools: '*' } });
    for (let i = 0; i < 100; i++) {
      if ((await call(gw2.addr, 'GET', '/v1/tools')).json.tools.length) break;
      await sleep(100);
    }
    await call(mock.addr, 'POST', '/_mock/script', { body: { turns: [use('toolu_d4'), { text: 'after restart' }] } });
    const after = await sse(gw2.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'go' } });
    assert.ok(!after.events.some((f) => f.event === 'tool_approval_request'));
    assert.equal(after.events.find((f) => f.event === 'tool_result').data.event.is_error, false);
    assert.equal(await stop(gw2), 0);
    await stop(mock);
  },

  async 'a failed run takes its message back; the session goes on'() {
    const mock = await startMock({ turns: [
      { status: 400, error: { type: 'invalid_request_error', message: 'messages.0.content.0: bad block' } },
      { text: 'fine now' },
    ] });
    const gw = await startGateway({ mock, memory: true });
    const sid = await newSession(gw.addr, undefined);
    const bad = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: [{ type: 'bogus' }] } });
    checkSequence(bad.events);
    assert.equal(bad.events.at(-1).event, 'error');
    assert.match(bad.events.at(-1).data.event.error, /bad block/);
    let st = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json;
    assert.equal(st.message_count, 0);
    assert.equal(st.runs[0].status, 'failed');
    const ok = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'hello' } });
    assert.equal(ok.events.at(-1).event, 'stream_complete');
    st = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json;
    assert.equal(st.message_count, 2);
    const sent = (await call(mock.addr, 'GET', '/_mock/requests')).json.at(-1).body.messages;
    assert.deepEqual(sent, [{ role: 'user', content: 'hello' }]);
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'cancel a run'() {
    const mock = await startMock({ turns: [{ text: 'a slow answer that goes on and on', chunks: 40, delay_ms: 100 }] });
    const gw = await startGateway({ mock, memory: true });
    const sid = await newSession(gw.addr);
    const p = await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { body: { content: 'talk' } });
    const rid = p.json.run_id;
    let pending;
    const s = await sse(gw.addr, `/v1/runs/${rid}/events`, { onEvent: () => {
      if (!pending) pending = call(gw.addr, 'POST', `/v1/runs/${rid}/cancel`);
    } });
    assert.equal((await pending).status, 202);
    checkSequence(s.events);
    assert.equal(s.events.at(-1).data.event.code, 'cancelled');
    assert.ok(s.events.length < 20);
    assert.equal((await call(gw.addr, 'GET', `/v1/runs/${rid}`)).json.status, 'cancelled');
    errorOf(await call(gw.addr, 'POST', `/v1/runs/${rid}/cancel`), 409, 'conflict_error');
    // The session takes the next message; the cancelled turn left only the user message.
    const st = await call(gw.addr, 'GET', `/v1/sessions/${sid}`);
    assert.equal(st.json.message_count, 1);
    assert.equal(st.json.active_run_id, null);
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'settings: flag > environment > file; bad settings are refused'() {
    const file = path.join(tmp, 'gw.json');
    const free = async () => { const g = await startGateway({ memory: true }); const a = g.addr; await stop(g); return a; };
    const [fa, ea, la] = [await free(), await free(), await free()];
    fs.writeFileSync(file, JSON.stringify({ listen: fa, store: 'memory', max_sessions_per_tenant: 1,
      tokens: [{ token: 'file-token-0123456789', tenant: 'filet' }], log_format: 'text' }));
    const base = ['serve', '--config', file, '--set', `mcp_config=${mcpConfig({})}`, '--set', 'strict_mcp_config=true'];
    let p = await startProc(base, {}, 'gateway');
    assert.equal(p.addr, fa);
    assert.equal((await call(p.addr, 'GET', '/v1/tools', { token: 'file-token-0123456789' })).status, 200);
    assert.equal((await call(p.addr, 'POST', '/v1/sessions', { token: 'file-token-0123456789', body: {} })).status, 201);
    assert.equal((await call(p.addr, 'POST', '/v1/sessions', { token: 'file-token-0123456789', body: {} })).status, 429);
    assert.match(p.stderrText, /INFO|info/);
    assert.ok(!p.stderrText.startsWith('{'), 'log_format text in the file');
    assert.equal(await stop(p), 0);
    p = await startProc(base, { CGW_LISTEN: ea, CGW_TOKENS: 'envt:env-token-0123456789' }, 'gateway');
    assert.equal(p.addr, ea);
    assert.equal((await call(p.addr, 'GET', '/v1/tools', { token: 'file-token-0123456789' })).status, 401);
    assert.equal((await call(p.addr, 'GET', '/v1/tools', { token: 'env-token-0123456789' })).status, 200);
    assert.equal(await stop(p), 0);
    p = await startProc([...base, '--listen', la], { CGW_LISTEN: ea }, 'gateway');
    assert.equal(p.addr, la);
    assert.equal(await stop(p), 0);
    for (const [args, env, re] of [
      [['serve', '--set', 'colour=red'], {}, /unknown setting 'colour'/],
      [['serve', '--set', 'max_body_bytes=lots'], {}, /max_body_bytes.*integer/],
      [['serve'], { CGW_CANCEL_ON_DISCONNECT: 'maybe' }, /cancel_on_disconnect.*environment/],
      [['serve', '--config', path.join(tmp, 'missing.json')], {}, /missing\.json/],
      [['serve', '--memory', '--listen', '127.0.0.1:0', '--set', 'tokens=notenant'], {}, /tenant/],
    ]) {
      let err;
      try { await startProc(args, env, 'gateway'); } catch (e) { err = e; }
      assert.ok(err, `started with ${args}`);
      assert.equal(err.code, 2, err.stderr);
      assert.match(err.stderr, re);
    }
  },

  async 'SIGHUP reloads the MCP configuration; allowed_tools limits a session'() {
    const mock = await startMock({ when_exhausted: 'cycle', turns: [{ text: 'fine' }] });
    const cfg = path.join(tmp, 'reload.json');
    fs.writeFileSync(cfg, JSON.stringify({ mcpServers: {} }));
    const gw = await startGateway({ mock, memory: true, set: { mcp_config: cfg } });
    assert.deepEqual((await call(gw.addr, 'GET', '/v1/tools')).json.tools, []);
    fs.copyFileSync(everythingConfig(), cfg);
    gw.kill('SIGHUP');
    let tools = [];
    for (let i = 0; i < 100 && !tools.some((t) => t.name === 'echo'); i++) {
      await sleep(100);
      tools = (await call(gw.addr, 'GET', '/v1/tools')).json.tools;
    }
    assert.ok(tools.some((t) => t.name === 'echo' && t.server === 'everything'));
    assert.match(gw.stderrText, /MCP configuration reloaded/);
    const all = (await call(gw.addr, 'POST', '/v1/sessions', { body: {} })).json.session_id;
    const some = (await call(gw.addr, 'POST', '/v1/sessions', { body: { allowed_tools: ['echo'] } })).json.session_id;
    for (const sid of [all, some]) {
      const s = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'hi' } });
      assert.equal(s.events.at(-1).event, 'stream_complete');
    }
    const reqs = (await call(mock.addr, 'GET', '/_mock/requests')).json;
    const names = (r) => r.body.tools.map((t) => t.name).sort();
    assert.ok(names(reqs.at(-2)).length > 1);
    assert.deepEqual(names(reqs.at(-1)), ['echo']);
    // A configuration that does not load keeps the old one.
    fs.writeFileSync(cfg, '{ not json');
    gw.kill('SIGHUP');
    await sleep(300);
    assert.match(gw.stderrText, /not reloaded/);
    assert.ok((await call(gw.addr, 'GET', '/v1/tools')).json.tools.some((t) => t.name === 'echo'));
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'refuses a non-loopback address without tokens'() {
    let err;
    try {
      await startGateway({ memory: true, listen: '0.0.0.0:0' });
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'the gateway started');
    assert.equal(err.code, 1);
    assert.match(err.stderr, /refusing to listen on 0\.0\.0\.0:\d+ without authentication/);
  },
};

await runTests(tests);
