// SSE delivery and durability of the gateway, against the real binary: resume after a
// disconnect with nothing lost or doubled, a slow reader cut off and resumed, pings, client
// disconnects, kill -9 mid-run then restart/replay/continue, SIGTERM with streams open.
// Run by test_gateway_streams.sh.
import assert from 'node:assert/strict';

import {
  call, checkSequence, parseSse, rawSocket, runTests, sleep, sse, startGateway, startMock, stop,
  waitExit,
} from './gateway_lib.mjs';

async function session(addr) {
  return (await call(addr, 'POST', '/v1/sessions', { body: {} })).json.session_id;
}

async function waitStatus(addr, rid, want, ms = 20000) {
  const end = Date.now() + ms;
  let st;
  while (Date.now() < end) {
    st = (await call(addr, 'GET', `/v1/runs/${rid}`)).json.status;
    if (st === want) return;
    await sleep(50);
  }
  throw new Error(`run ${rid} is ${st}, not ${want}`);
}

const slowTurn = (n = 30, delay = 40) => ({ text: Array.from({ length: n }, (_, i) => `w${i} `).join(''), chunks: n, delay_ms: delay });

const tests = {
  async 'resume after disconnects: nothing lost, nothing doubled'() {
    const mock = await startMock({ turns: [slowTurn(30, 30)] });
    const gw = await startGateway({ mock });
    const sid = await session(gw.addr);
    const rid = (await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { body: { content: 'go' } })).json.run_id;
    const a = await sse(gw.addr, `/v1/runs/${rid}/events`, { stopAfter: 5 });
    const b = await sse(gw.addr, `/v1/runs/${rid}/events`, { headers: { 'last-event-id': String(a.events.at(-1).id) }, stopAfter: 7 });
    const c = await sse(gw.addr, `/v1/runs/${rid}/events?after=${b.events.at(-1).id}`);
    assert.ok(c.ended);
    const all = [...a.events, ...b.events, ...c.events];
    checkSequence(all);
    assert.equal(all.at(-1).event, 'stream_complete');
    // Last-Event-ID wins over ?after=; a position past the end is refused.
    const d = await sse(gw.addr, `/v1/runs/${rid}/events?after=1`, { headers: { 'last-event-id': String(all.length - 1) } });
    assert.deepEqual(d.events.map((f) => f.id), [all.length]);
    assert.equal((await call(gw.addr, 'GET', `/v1/runs/${rid}/events?after=${all.length + 1}`)).status, 400);
    assert.equal((await call(gw.addr, 'GET', `/v1/runs/${rid}/events?after=-1`)).status, 400);
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'a slow reader is cut off and resumes without loss'() {
    // 12 MB of deltas over a few seconds: more than the kernel buffers on both ends plus the
    // 64 KiB cap, arriving while the client is live (a backlog is paced instead).
    const big = 'x'.repeat(8192);
    const mock = await startMock({ turns: [{ content: [{ type: 'text', deltas: Array(1500).fill(big) }], delay_ms: 1 }] });
    const gw = await startGateway({ mock, set: { stream_buffer_bytes: '65536', stream_stall_ms: '500' } });
    const sid = await session(gw.addr);
    const rid = (await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { body: { content: 'flood' } })).json.run_id;
    const sock = await rawSocket(gw.addr);
    let raw = '';
    let closed = false;
    let paused = false;
    sock.on('data', (d) => {
      raw += d;
      if (!paused && raw.includes('\n\n')) {
        paused = true;
        sock.pause(); // stop reading after the first event: the gateway's output backs up
      }
    });
    sock.on('close', () => { closed = true; });
    sock.write(`GET /v1/runs/${rid}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    await waitStatus(gw.addr, rid, 'completed', 60000);
    let m = '';
    for (let i = 0; i < 200 && !/cgw_streams_cut_total 1/.test(m); i++) {
      await sleep(50); // the cut comes stream_stall_ms after the output filled up
      m = (await call(gw.addr, 'GET', '/metrics')).text;
    }
    assert.match(m, /cgw_streams_cut_total 1/);
    sock.resume();
    for (let i = 0; i < 200 && !closed; i++) await sleep(50);
    assert.ok(closed, 'the gateway did not drop the slow connection');
    // Chunked framing: keep the SSE bytes only (chunk-size lines are hex-only lines).
    const body = raw.slice(raw.indexOf('\r\n\r\n') + 4).split('\r\n').filter((l, i) => i % 2 === 1).join('');
    const state = { events: [], pings: 0 };
    parseSse(body, state);
    assert.ok(state.events.length > 0 && state.events.length < 1500, `got ${state.events.length}`);
    const rest = await sse(gw.addr, `/v1/runs/${rid}/events`, { headers: { 'last-event-id': String(state.events.at(-1).id) } });
    const all = [...state.events, ...rest.events];
    checkSequence(all);
    assert.equal(all.filter((f) => f.event === 'text_delta').length, 1500);
    // A reader that catches up on the whole 12 MB backlog at its own pace is not cut off.
    const whole = await sse(gw.addr, `/v1/runs/${rid}/events`);
    checkSequence(whole.events);
    assert.equal(whole.events.length, all.length);
    assert.match((await call(gw.addr, 'GET', '/metrics')).text, /cgw_streams_cut_total 1/);
    assert.equal(await stop(gw), 0);
    await stop(mock);
  },

  async 'pings, and a disconnect does not stop the run (unless configured)'() {
    const mock = await startMock({ when_exhausted: 'cycle', turns: [slowTurn(10, 60)] });
    const gw = await startGateway({ mock, set: { ping_interval_ms: '100' } });
    const sid = await session(gw.addr);
    const a = await sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'go' }, stopAfter: 2 });
    const rid = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json.runs[0].run_id;
    const rest = await sse(gw.addr, `/v1/runs/${rid}/events`, { headers: { 'last-event-id': '2' } });
    checkSequence([...a.events, ...rest.events]);
    assert.ok(rest.pings > 0, 'no ping');
    assert.equal(await stop(gw), 0);

    const gw2 = await startGateway({ mock, set: { cancel_on_disconnect: 'true' } });
    const sid2 = await session(gw2.addr);
    await sse(gw2.addr, `/v1/sessions/${sid2}/messages`, { method: 'POST', body: { content: 'go' }, stopAfter: 2 });
    const rid2 = (await call(gw2.addr, 'GET', `/v1/sessions/${sid2}`)).json.runs[0].run_id;
    await waitStatus(gw2.addr, rid2, 'cancelled');
    assert.equal(await stop(gw2), 0);
    await stop(mock);
  },

  async 'kill -9 mid-run, restart: replay and continue'() {
    const mock = await startMock({ turns: [slowTurn(40, 100), { name: 'after', text: 'Continued fine.' }] });
    const gw = await startGateway({ mock });
    const sid = await session(gw.addr);
    const rid = (await call(gw.addr, 'POST', `/v1/sessions/${sid}/messages`, { body: { content: 'first question' } })).json.run_id;
    const seen = await sse(gw.addr, `/v1/runs/${rid}/events`, { stopAfter: 5 });
    gw.kill('SIGKILL');
    await waitExit(gw);
    const gw2 = await startGateway({ mock, dataDir: gw.dataDir });
    assert.match(gw2.stderrText, /interrupted/);
    assert.equal((await call(gw2.addr, 'GET', `/v1/runs/${rid}`)).json.status, 'interrupted');
    const replay = await sse(gw2.addr, `/v1/runs/${rid}/events`);
    assert.ok(replay.ended);
    checkSequence(replay.events);
    assert.deepEqual(replay.events.slice(0, 5).map((f) => f.data), seen.events.map((f) => f.data));
    const last = replay.events.at(-1).data.event;
    assert.equal(last.type, 'error');
    assert.equal(last.code, 'interrupted');
    assert.match(last.error, /gateway stopped before this run ended/);
    const next = await sse(gw2.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'second question' } });
    checkSequence(next.events);
    assert.equal(next.events.at(-1).event, 'stream_complete');
    const sent = (await call(mock.addr, 'GET', '/_mock/requests')).json.at(-1).body.messages;
    assert.deepEqual(sent.map((m) => m.role), ['user', 'user']);
    assert.match(JSON.stringify(sent), /first question.*second question/);
    const st = (await call(gw2.addr, 'GET', `/v1/sessions/${sid}`)).json;
    assert.equal(st.message_count, 3);
    assert.deepEqual(st.runs.map((r) => r.status), ['interrupted', 'completed']);
    assert.equal(await stop(gw2), 0);
    await stop(mock);
  },

  async 'SIGTERM with streams open ends them with a terminal event and exits 0'() {
    const mock = await startMock({ when_exhausted: 'cycle', turns: [slowTurn(50, 100)] });
    const gw = await startGateway({ mock });
    const sid = await session(gw.addr);
    const s1 = sse(gw.addr, `/v1/sessions/${sid}/messages`, { method: 'POST', body: { content: 'go' } });
    for (let i = 0; i < 100 && (await call(gw.addr, 'GET', '/healthz')).json.open_streams < 1; i++) await sleep(20);
    const rid = (await call(gw.addr, 'GET', `/v1/sessions/${sid}`)).json.runs[0].run_id;
    const s2 = sse(gw.addr, `/v1/runs/${rid}/events`);
    for (let i = 0; i < 100 && (await call(gw.addr, 'GET', '/healthz')).json.open_streams < 2; i++) await sleep(20);
    const t0 = Date.now();
    gw.kill('SIGTERM');
    const [a, b] = await Promise.all([s1, s2]);
    for (const s of [a, b]) {
      assert.ok(s.ended, 'stream not ended cleanly');
      checkSequence(s.events);
      assert.equal(s.events.at(-1).data.event.code, 'shutdown');
    }
    assert.equal(await waitExit(gw), 0);
    assert.ok(Date.now() - t0 < 5000);
    const gw2 = await startGateway({ mock, dataDir: gw.dataDir });
    assert.equal((await call(gw2.addr, 'GET', `/v1/runs/${rid}`)).json.status, 'interrupted');
    assert.equal(await stop(gw2), 0);
    await stop(mock);
  },
};

await runTests(tests);
