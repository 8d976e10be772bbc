/* EventLog: sequence numbers, terminal events, close, observer, retention, subscriptions. */
#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/json.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *ev(const char *type, const char *text)
{
    return json_pack("{s:s,s:s}", "type", type, "text", text);
}

/* Appends and drops the reference; returns the append's code. */
static int append_new(cgw_eventlog_t *log, json_t *e)
{
    int rc = cgw_eventlog_append(log, e, NULL);
    json_decref(e);
    return rc;
}

static cgw_eventlog_t *log_new(cgw_ctx_t *ctx, size_t max_entries, size_t max_bytes)
{
    cgw_eventlog_options_t o;
    cgw_eventlog_options_init(&o);
    o.session_id = "sess-1";
    o.max_entries = max_entries;
    o.max_bytes = max_bytes;
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, &o, &log), CGW_OK);
    return log;
}

/* Runs every callback that is ready, until nothing is left (bounded). */
static void drain(cgw_ctx_t *ctx)
{
    for (int i = 0; i < 10000; i++) {
        if (event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK) != 0) {
            return;
        }
        if (event_base_get_num_events(cgw_ctx_base(ctx),
                                      EVENT_BASE_COUNT_ACTIVE | EVENT_BASE_COUNT_ADDED) == 0) {
            return;
        }
    }
    fail_msg("loop never went idle");
}

/* What a subscriber saw, and what it should do while seeing it. */
struct rec {
    cgw_eventlog_t *log;
    cgw_eventlog_sub_t *sub;
    uint64_t seqs[512];
    size_t n;
    int finals, final_status;
    bool order_ok;
    /* behaviours */
    uint64_t unsubscribe_at; /* unsubscribe itself on this seq */
    struct rec *kill_other;  /* unsubscribe this one on the first entry */
    uint64_t append_until;   /* append a text_delta on each entry until last_seq reaches it */
    bool append_terminal;    /* ... then append stream_complete */
    bool free_log_at_first;  /* free the log inside the first entry callback */
    bool subscribe_other;    /* subscribe `other` (from 0) inside the first callback */
    struct rec *other;
    bool read_after_append; /* append, then read the whole view (retention pin check) */
};

static void rec_init(struct rec *r, cgw_eventlog_t *log)
{
    memset(r, 0, sizeof(*r));
    r->log = log;
    r->order_ok = true;
    r->final_status = 12345;
}

static void rec_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user);

static void rec_subscribe(struct rec *r, uint64_t after)
{
    assert_int_equal(cgw_eventlog_subscribe(r->log, after, rec_cb, r, &r->sub), CGW_OK);
}

static void on_entry(struct rec *r, const cgw_eventlog_entry_t *e)
{
    uint64_t expect = r->n == 0 ? cgw_eventlog_sub_position(r->sub) : r->seqs[r->n - 1] + 1;
    if (e->seq != expect || cgw_eventlog_sub_position(r->sub) != e->seq) {
        r->order_ok = false;
    }
    if (r->n < sizeof(r->seqs) / sizeof(r->seqs[0])) {
        r->seqs[r->n++] = e->seq;
    }
    if (r->read_after_append) {
        char copy[512];
        size_t len = e->frame.len < sizeof(copy) ? e->frame.len : sizeof(copy);
        memcpy(copy, e->frame.ptr, len);
        append_new(r->log, ev("text_delta", "pushes the old one out"));
        assert_memory_equal(copy, e->frame.ptr, len); /* still readable under ASan */
    }
    if (r->append_until != 0) {
        if (cgw_eventlog_last_seq(r->log) < r->append_until) {
            assert_int_equal(append_new(r->log, ev("text_delta", "from callback")), CGW_OK);
        } else if (r->append_terminal && !cgw_eventlog_closed(r->log)) {
            assert_int_equal(append_new(r->log, ev("stream_complete", "")), CGW_OK);
        }
    }
    if (r->kill_other != NULL) {
        cgw_eventlog_unsubscribe(r->kill_other->sub);
        r->kill_other = NULL;
    }
    if (r->subscribe_other) {
        r->subscribe_other = false;
        rec_subscribe(r->other, 0);
    }
    if (r->unsubscribe_at == e->seq) {
        cgw_eventlog_unsubscribe(r->sub);
    }
    if (r->free_log_at_first) {
        r->free_log_at_first = false;
        cgw_eventlog_free(r->log);
    }
}

static void rec_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user)
{
    struct rec *r = user;
    assert_ptr_equal(sub, r->sub);
    if (e == NULL) {
        r->finals++;
        r->final_status = status;
        return;
    }
    assert_int_equal(status, CGW_OK);
    on_entry(r, e);
}

static void assert_seqs(const struct rec *r, uint64_t from, uint64_t to)
{
    assert_true(r->order_ok);
    assert_int_equal(r->n, to >= from ? to - from + 1 : 0);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(r->seqs[i], from + i);
    }
}

/* ---- storage rules ----------------------------------------------------------------------- */

static void test_seq_and_entries(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    assert_string_equal(cgw_eventlog_session_id(log), "sess-1");
    assert_int_equal(cgw_eventlog_last_seq(log), 0);
    assert_int_equal(cgw_eventlog_first_seq(log), 1);
    assert_false(cgw_eventlog_closed(log));

    double before = wall_now();
    json_t *e = ev("text_delta", "hello");
    for (uint64_t i = 1; i <= 3; i++) {
        uint64_t seq = 0;
        assert_int_equal(cgw_eventlog_append(log, e, &seq), CGW_OK);
        assert_int_equal(seq, i);
    }
    /* The log kept a copy: changing the caller's object changes nothing stored. */
    json_object_set_new(e, "text", json_string("changed"));
    json_decref(e);
    double after = wall_now();

    assert_int_equal(cgw_eventlog_last_seq(log), 3);
    assert_int_equal(cgw_eventlog_count(log), 3);
    cgw_eventlog_entry_t en;
    assert_int_equal(cgw_eventlog_get(log, 0, &en), CGW_ENOENT);
    assert_int_equal(cgw_eventlog_get(log, 4, &en), CGW_ENOENT);
    assert_int_equal(cgw_eventlog_get(log, 2, &en), CGW_OK);
    assert_int_equal(en.seq, 2);
    assert_false(en.terminal);
    assert_true(en.ts >= floor(before * 1e6) / 1e6 && en.ts <= after + 1e-6);
    assert_int_equal(en.type.len, 10);
    assert_memory_equal(en.type.ptr, "text_delta", 10);
    const char *want = "{\"type\":\"text_delta\",\"text\":\"hello\"}";
    assert_int_equal(en.event_json.len, strlen(want));
    assert_memory_equal(en.event_json.ptr, want, strlen(want));

    json_t *back = NULL;
    assert_int_equal(cgw_eventlog_entry_event(&en, &back), CGW_OK);
    assert_string_equal(json_string_value(json_object_get(back, "text")), "hello");
    json_decref(back);
    cgw_eventlog_free(log);
}

static void test_frame_bytes_exact(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    json_t *e =
        json_pack("{s:s,s:s,s:i}", "type", "tool_use", "tool_name", "a\"b\n/é", "call_index", 0);
    assert_int_equal(append_new(log, e), CGW_OK);
    cgw_eventlog_entry_t en;
    assert_int_equal(cgw_eventlog_get(log, 1, &en), CGW_OK);

    char ts[64], entry[512], frame[1024];
    snprintf(ts, sizeof(ts), "%.6f", en.ts);
    const char *evjson = "{\"type\":\"tool_use\",\"tool_name\":\"a\\\"b\\n/é\",\"call_index\":0}";
    snprintf(entry, sizeof(entry), "{\"seq\":1,\"ts\":%s,\"event\":%s}", ts, evjson);
    snprintf(frame, sizeof(frame), "id: 1\nevent: tool_use\ndata: %s\n\n", entry);
    assert_int_equal(en.frame.len, strlen(frame));
    assert_memory_equal(en.frame.ptr, frame, strlen(frame));
    assert_int_equal(en.json.len, strlen(entry));
    assert_memory_equal(en.json.ptr, entry, strlen(entry));
    assert_int_equal(cgw_eventlog_bytes(log), strlen(frame));

    /* The entry JSON parses back to the same seq, ts and event. */
    json_t *parsed = json_loadb(en.json.ptr, en.json.len, 0, NULL);
    assert_non_null(parsed);
    assert_int_equal(json_integer_value(json_object_get(parsed, "seq")), 1);
    assert_true(json_real_value(json_object_get(parsed, "ts")) == en.ts);
    json_t *orig = json_loadb(evjson, strlen(evjson), 0, NULL);
    assert_true(json_equal(json_object_get(parsed, "event"), orig));
    json_decref(orig);
    json_decref(parsed);
    cgw_eventlog_free(log);
}

static void test_bad_events(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    assert_int_equal(append_new(log, json_string("text_delta")), CGW_EINVAL);
    assert_int_equal(append_new(log, json_pack("{s:s}", "text", "no type")), CGW_EINVAL);
    assert_int_equal(append_new(log, json_pack("{s:i}", "type", 3)), CGW_EINVAL);
    assert_int_equal(append_new(log, json_pack("{s:s}", "type", "")), CGW_EINVAL);
    assert_int_equal(append_new(log, json_pack("{s:s}", "type", "two\nlines")), CGW_EINVAL);
    assert_int_equal(append_new(log, json_pack("{s:s}", "type", "cr\r")), CGW_EINVAL);
    char longtype[300];
    memset(longtype, 'x', sizeof(longtype) - 1);
    longtype[sizeof(longtype) - 1] = '\0';
    assert_int_equal(append_new(log, json_pack("{s:s}", "type", longtype)), CGW_EINVAL);
    longtype[255] = '\0';
    assert_int_equal(append_new(log, json_pack("{s:s}", "type", longtype)), CGW_OK);

    /* Nested deeper than the writer allows, and a reference cycle: refused, no overflow. */
    json_t *deep = json_array();
    json_t *cur = deep;
    for (int i = 0; i < CGW_JSON_MAX_DEPTH; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    json_t *e = json_pack("{s:s,s:o}", "type", "tool_use", "tool_input", deep);
    assert_int_equal(append_new(log, e), CGW_EINVAL);
    json_t *cyc = json_pack("{s:s}", "type", "tool_use");
    json_t *inner = json_object();
    assert_int_equal(json_object_set(cyc, "inner", inner), 0);
    assert_int_equal(json_object_set(inner, "outer", cyc), 0);
    assert_int_equal(cgw_eventlog_append(log, cyc, NULL), CGW_EINVAL);
    json_object_del(inner, "outer");
    json_decref(inner);
    json_decref(cyc);

    assert_int_equal(cgw_eventlog_append(log, NULL, NULL), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_append(NULL, NULL, NULL), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_last_seq(log), 1); /* only the 255-byte type got in */
    assert_int_equal(cgw_eventlog_new(NULL, NULL, &log), CGW_EINVAL);
    cgw_eventlog_free(log);
    cgw_eventlog_free(NULL);
}

static void test_terminal_events(void **state)
{
    cgw_ctx_t *ctx = *state;
    const char *terminals[] = {"stream_complete", "error"};
    for (int i = 0; i < 2; i++) {
        cgw_eventlog_t *log = log_new(ctx, 0, 0);
        assert_int_equal(append_new(log, ev("text_delta", "a")), CGW_OK);
        /* Sub-agent events are never terminal. */
        json_t *sub = json_pack("{s:s,s:s,s:s}", "type", terminals[i], "agent_id", "sub0:abc",
                                "parent_tool_call_id", "tc1");
        assert_int_equal(append_new(log, sub), CGW_OK);
        assert_false(cgw_eventlog_closed(log));
        /* A null agent_id is a top-level event. */
        json_t *top = json_pack("{s:s,s:n}", "type", terminals[i], "agent_id");
        uint64_t seq = 0;
        assert_int_equal(cgw_eventlog_append(log, top, &seq), CGW_OK);
        json_decref(top);
        assert_int_equal(seq, 3);
        assert_true(cgw_eventlog_closed(log));
        cgw_eventlog_entry_t en;
        assert_int_equal(cgw_eventlog_get(log, 3, &en), CGW_OK);
        assert_true(en.terminal);
        assert_int_equal(cgw_eventlog_get(log, 2, &en), CGW_OK);
        assert_false(en.terminal);

        /* Once closed, appends are refused and change nothing. */
        seq = 99;
        json_t *late = ev("text_delta", "late");
        assert_int_equal(cgw_eventlog_append(log, late, &seq), CGW_ECLOSED);
        json_decref(late);
        assert_int_equal(seq, 99);
        assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_ECLOSED);
        assert_int_equal(cgw_eventlog_append(log, NULL, NULL), CGW_ECLOSED);
        assert_int_equal(cgw_eventlog_last_seq(log), 3);
        cgw_eventlog_free(log);
    }
}

static void test_close(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    assert_int_equal(cgw_eventlog_close(log, NULL), CGW_OK);
    assert_true(cgw_eventlog_closed(log));
    cgw_eventlog_entry_t en;
    assert_int_equal(cgw_eventlog_get(log, 1, &en), CGW_OK);
    assert_true(en.terminal);
    const char *want = "{\"type\":\"error\",\"error\":\"stream closed\"}";
    assert_int_equal(en.event_json.len, strlen(want));
    assert_memory_equal(en.event_json.ptr, want, strlen(want));
    /* A second close is a no-op. */
    assert_int_equal(cgw_eventlog_close(log, "again"), CGW_OK);
    assert_int_equal(cgw_eventlog_last_seq(log), 1);
    cgw_eventlog_free(log);

    log = log_new(ctx, 0, 0);
    assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    assert_int_equal(cgw_eventlog_close(log, "Turn timed out after 5s"), CGW_OK);
    assert_int_equal(cgw_eventlog_get(log, 2, &en), CGW_OK);
    want = "{\"type\":\"error\",\"error\":\"Turn timed out after 5s\"}";
    assert_memory_equal(en.event_json.ptr, want, strlen(want));
    cgw_eventlog_free(log);

    /* After a terminal event, close adds nothing. */
    log = log_new(ctx, 0, 0);
    assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_OK);
    assert_int_equal(cgw_eventlog_close(log, "ignored"), CGW_OK);
    assert_int_equal(cgw_eventlog_last_seq(log), 1);
    cgw_eventlog_free(log);
    assert_int_equal(cgw_eventlog_close(NULL, NULL), CGW_EINVAL);
}

/* ---- observer ---------------------------------------------------------------------------- */

struct obs {
    int calls;
    uint64_t last_seq;
    const json_t *last_event;
    bool closed_during_terminal;
    int self_append_rc, self_close_rc;
    cgw_eventlog_t *forward_to; /* a parent log, as a sub-agent's observer does */
    bool free_log;
};

static void obs_cb(cgw_eventlog_t *log, const cgw_eventlog_entry_t *e, const json_t *event,
                   void *user)
{
    struct obs *o = user;
    o->calls++;
    o->last_seq = e->seq;
    o->last_event = event;
    assert_string_equal(cgw_eventlog_session_id(log), "child");
    if (e->terminal) {
        o->closed_during_terminal = cgw_eventlog_closed(log);
    }
    json_t *x = ev("text_delta", "from observer");
    o->self_append_rc = cgw_eventlog_append(log, x, NULL);
    json_decref(x);
    o->self_close_rc = cgw_eventlog_close(log, NULL);
    if (o->forward_to != NULL) {
        json_t *copy = json_deep_copy(event);
        json_object_set_new(copy, "agent_id", json_string("sub0:child"));
        assert_int_equal(cgw_eventlog_append(o->forward_to, copy, NULL), CGW_OK);
        json_decref(copy);
    }
    if (o->free_log) {
        cgw_eventlog_free(log);
    }
}

static void test_on_event_observer(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *parent = log_new(ctx, 0, 0);
    struct obs o = {0};
    o.forward_to = parent;
    cgw_eventlog_options_t opts;
    cgw_eventlog_options_init(&opts);
    opts.session_id = "child";
    opts.on_event = obs_cb;
    opts.on_event_user = &o;
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, &opts, &log), CGW_OK);

    json_t *e = ev("text_delta", "a");
    assert_int_equal(cgw_eventlog_append(log, e, NULL), CGW_OK);
    assert_int_equal(o.calls, 1);
    assert_ptr_equal(o.last_event, e); /* the original object, not a copy */
    json_decref(e);
    assert_int_equal(o.self_append_rc, CGW_EBUSY);
    assert_int_equal(o.self_close_rc, CGW_EBUSY);
    assert_int_equal(cgw_eventlog_last_seq(log), 1);

    assert_int_equal(append_new(log, json_pack("{s:s}", "bad", "event")), CGW_EINVAL);
    assert_int_equal(o.calls, 1); /* refused appends are not observed */
    assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_OK);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.last_seq, 2);
    assert_false(o.closed_during_terminal); /* runs before closing */
    assert_true(cgw_eventlog_closed(log));
    assert_int_equal(append_new(log, ev("text_delta", "late")), CGW_ECLOSED);
    assert_int_equal(o.calls, 2);

    /* The forwarded sub-agent events landed in the parent, which stays open. */
    assert_int_equal(cgw_eventlog_last_seq(parent), 2);
    assert_false(cgw_eventlog_closed(parent));
    cgw_eventlog_free(log);
    cgw_eventlog_free(parent);

    /* An observer that frees its log: the append completes, nothing touches freed memory. */
    struct obs o2 = {0};
    o2.free_log = true;
    opts.on_event_user = &o2;
    assert_int_equal(cgw_eventlog_new(ctx, &opts, &log), CGW_OK);
    assert_int_equal(append_new(log, ev("text_delta", "bye")), CGW_OK);
    assert_int_equal(o2.calls, 1);
}

/* ---- subscriptions ----------------------------------------------------------------------- */

static void test_subscribe_replay_then_live(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    struct rec a, b;
    rec_init(&a, log);
    rec_init(&b, log);
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 3);
    assert_int_equal(cgw_eventlog_sub_count(log), 2);
    /* Nothing is delivered inside subscribe or append, only on the loop. */
    assert_int_equal(a.n, 0);
    assert_int_equal(append_new(log, ev("text_delta", "y")), CGW_OK);
    assert_int_equal(a.n, 0);
    drain(ctx);
    assert_seqs(&a, 1, 6);
    assert_seqs(&b, 4, 6);
    assert_int_equal(a.finals, 0);

    /* Live entries, batched: several appends, one loop turn, every entry exactly once. */
    for (int i = 0; i < 100; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "z")), CGW_OK);
    }
    assert_int_equal(a.n, 6);
    event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK | EVLOOP_ONCE);
    assert_seqs(&a, 1, 106);
    assert_seqs(&b, 4, 106);

    /* The terminal entry ends the subscription with a final CGW_OK. */
    assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_OK);
    drain(ctx);
    assert_seqs(&a, 1, 107);
    assert_int_equal(a.finals, 1);
    assert_int_equal(a.final_status, CGW_OK);
    assert_int_equal(b.finals, 1);
    assert_int_equal(cgw_eventlog_sub_count(log), 0);
    cgw_eventlog_free(log);
}

static void test_subscribe_after_close(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    assert_int_equal(cgw_eventlog_close(log, "done"), CGW_OK);
    struct rec a, b, c;
    rec_init(&a, log);
    rec_init(&b, log);
    rec_init(&c, log);
    rec_subscribe(&a, 2);
    rec_subscribe(&b, 5); /* already saw the terminal: ends at once */
    rec_subscribe(&c, 0);
    drain(ctx);
    assert_seqs(&a, 3, 5);
    assert_int_equal(a.finals, 1);
    assert_int_equal(a.final_status, CGW_OK);
    assert_seqs(&b, 6, 5);
    assert_int_equal(b.finals, 1);
    assert_int_equal(b.final_status, CGW_OK);
    assert_seqs(&c, 1, 5);
    assert_int_equal(c.finals, 1);
    cgw_eventlog_free(log);
}

static void test_subscribe_bad_positions(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    cgw_eventlog_sub_t *sub = NULL;
    struct rec r;
    rec_init(&r, log);
    /* A position the log never had is refused rather than waited for. */
    assert_int_equal(cgw_eventlog_subscribe(log, 1, rec_cb, &r, &sub), CGW_ERANGE);
    assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    assert_int_equal(cgw_eventlog_subscribe(log, 2, rec_cb, &r, &sub), CGW_ERANGE);
    assert_int_equal(cgw_eventlog_subscribe(log, UINT64_MAX, rec_cb, &r, &sub), CGW_ERANGE);
    assert_int_equal(cgw_eventlog_subscribe(log, 0, NULL, &r, &sub), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_subscribe(log, 0, rec_cb, &r, NULL), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_subscribe(NULL, 0, rec_cb, &r, &sub), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_sub_count(log), 0);
    /* At the last seq of an open log: waits for the next entry. */
    rec_subscribe(&r, 1);
    drain(ctx);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.finals, 0);
    assert_int_equal(append_new(log, ev("text_delta", "y")), CGW_OK);
    drain(ctx);
    assert_seqs(&r, 2, 2);
    cgw_eventlog_unsubscribe(r.sub);
    cgw_eventlog_unsubscribe(NULL);
    cgw_eventlog_free(log);
}

static void test_unsubscribe_self_mid_delivery(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    struct rec a, b;
    rec_init(&a, log);
    rec_init(&b, log);
    a.unsubscribe_at = 3;
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 0);
    drain(ctx);
    assert_seqs(&a, 1, 3);
    assert_int_equal(a.finals, 0); /* unsubscribing means no final notification */
    assert_seqs(&b, 1, 6);
    assert_int_equal(cgw_eventlog_sub_count(log), 1);
    assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_OK);
    drain(ctx);
    assert_seqs(&a, 1, 3);
    assert_int_equal(b.finals, 1);
    cgw_eventlog_free(log);
}

static void test_unsubscribe_other_and_subscribe_inside_callback(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    struct rec a, b, c;
    rec_init(&a, log);
    rec_init(&b, log);
    rec_init(&c, log);
    a.kill_other = &b;
    a.subscribe_other = true;
    a.other = &c;
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 0);
    drain(ctx);
    assert_seqs(&a, 1, 3);
    assert_int_equal(b.n, 0); /* killed before its turn */
    assert_int_equal(b.finals, 0);
    assert_seqs(&c, 1, 3); /* subscribed from a callback, still gets everything */
    assert_int_equal(cgw_eventlog_sub_count(log), 2);
    cgw_eventlog_free(log);
    assert_int_equal(a.final_status, CGW_ECANCELED);
    assert_int_equal(c.final_status, CGW_ECANCELED);
}

static void test_thousand_subscribers(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    enum { NSUB = 1000, NEV = 50 };
    struct rec *subs = calloc(NSUB, sizeof(*subs));
    assert_non_null(subs);
    for (int i = 0; i < NSUB; i++) {
        rec_init(&subs[i], log);
        rec_subscribe(&subs[i], 0);
        if (i % 100 == 0) {
            assert_int_equal(append_new(log, ev("text_delta", "interleaved")), CGW_OK);
        }
    }
    assert_int_equal(cgw_eventlog_sub_count(log), NSUB);
    for (int i = 0; i < NEV; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
        if (i % 7 == 0) {
            drain(ctx);
        }
    }
    assert_int_equal(append_new(log, ev("stream_complete", "")), CGW_OK);
    drain(ctx);
    uint64_t last = cgw_eventlog_last_seq(log);
    assert_int_equal(last, 10 + NEV + 1);
    for (int i = 0; i < NSUB; i++) {
        assert_seqs(&subs[i], 1, last);
        assert_int_equal(subs[i].finals, 1);
        assert_int_equal(subs[i].final_status, CGW_OK);
    }
    assert_int_equal(cgw_eventlog_sub_count(log), 0);
    cgw_eventlog_free(log);
    free(subs);
}

static void test_append_from_callback(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    struct rec a, b;
    rec_init(&a, log);
    rec_init(&b, log);
    a.append_until = 40;
    a.append_terminal = true;
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 0);
    assert_int_equal(append_new(log, ev("text_delta", "seed")), CGW_OK);
    drain(ctx);
    assert_int_equal(cgw_eventlog_last_seq(log), 41);
    assert_true(cgw_eventlog_closed(log));
    assert_seqs(&a, 1, 41);
    assert_seqs(&b, 1, 41);
    assert_int_equal(a.finals, 1);
    assert_int_equal(b.finals, 1);
    cgw_eventlog_free(log);
}

static void test_free_with_subscribers(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    struct rec a, b;
    rec_init(&a, log);
    rec_init(&b, log);
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 0);
    drain(ctx);
    cgw_eventlog_free(log); /* synchronous ECANCELED to both */
    assert_int_equal(a.finals, 1);
    assert_int_equal(a.final_status, CGW_ECANCELED);
    assert_int_equal(b.finals, 1);

    /* Freed from inside a delivery callback: the pass stops, everyone gets ECANCELED. */
    log = log_new(ctx, 0, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    rec_init(&a, log);
    rec_init(&b, log);
    a.free_log_at_first = true;
    rec_subscribe(&a, 0);
    rec_subscribe(&b, 0);
    drain(ctx);
    assert_seqs(&a, 1, 1);
    assert_int_equal(a.final_status, CGW_ECANCELED);
    assert_int_equal(b.n, 0);
    assert_int_equal(b.finals, 1);
    assert_int_equal(b.final_status, CGW_ECANCELED);
}

/* A subscriber that, in its ECANCELED notification, tries everything on the dying log. */
struct dying {
    cgw_eventlog_t *log;
    int finals, append_rc, subscribe_rc;
};

static void dying_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user)
{
    struct dying *d = user;
    if (e != NULL) {
        return;
    }
    assert_int_equal(status, CGW_ECANCELED);
    d->finals++;
    json_t *x = ev("text_delta", "too late");
    d->append_rc = cgw_eventlog_append(d->log, x, NULL);
    json_decref(x);
    cgw_eventlog_sub_t *other = NULL;
    d->subscribe_rc = cgw_eventlog_subscribe(d->log, 0, dying_cb, d, &other);
    cgw_eventlog_unsubscribe(sub); /* already ending: harmless */
    cgw_eventlog_free(d->log);     /* already being freed: harmless */
}

static void test_callbacks_during_teardown(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    struct dying d = {log, 0, 0, 0};
    cgw_eventlog_sub_t *s1, *s2;
    assert_int_equal(cgw_eventlog_subscribe(log, 0, dying_cb, &d, &s1), CGW_OK);
    assert_int_equal(cgw_eventlog_subscribe(log, 0, dying_cb, &d, &s2), CGW_OK);
    cgw_eventlog_free(log);
    assert_int_equal(d.finals, 2);
    assert_int_equal(d.append_rc, CGW_ECLOSED);
    assert_int_equal(d.subscribe_rc, CGW_ECANCELED);
}

static void test_entry_event_round_trip(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 0);
    json_t *e = json_pack("{s:s,s:s%,s:f,s:[i,b,n]}", "type", "tool_result", "result",
                          "nul\0inside", (size_t)11, "duration", 1.25, "list", -7, 1);
    assert_non_null(e);
    assert_int_equal(cgw_eventlog_append(log, e, NULL), CGW_OK);
    cgw_eventlog_entry_t en;
    assert_int_equal(cgw_eventlog_get(log, 1, &en), CGW_OK);
    json_t *back = NULL;
    assert_int_equal(cgw_eventlog_entry_event(&en, &back), CGW_OK);
    assert_true(json_equal(back, e));
    json_decref(back);
    json_decref(e);
    cgw_eventlog_free(log);
}

/* ---- retention --------------------------------------------------------------------------- */

static void test_retention_count(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 3, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "x")), CGW_OK);
    }
    assert_int_equal(cgw_eventlog_count(log), 3);
    assert_int_equal(cgw_eventlog_first_seq(log), 3);
    assert_int_equal(cgw_eventlog_last_seq(log), 5);
    cgw_eventlog_entry_t en;
    assert_int_equal(cgw_eventlog_get(log, 2, &en), CGW_ETRIMMED);
    assert_int_equal(cgw_eventlog_get(log, 3, &en), CGW_OK);
    assert_int_equal(en.seq, 3);

    struct rec r, lag;
    rec_init(&r, log);
    rec_init(&lag, log);
    cgw_eventlog_sub_t *sub = NULL;
    /* Below the retained range: a clear error, never a silent gap. */
    assert_int_equal(cgw_eventlog_subscribe(log, 0, rec_cb, &r, &sub), CGW_ETRIMMED);
    assert_int_equal(cgw_eventlog_subscribe(log, 1, rec_cb, &r, &sub), CGW_ETRIMMED);
    rec_subscribe(&r, 2);
    drain(ctx);
    assert_seqs(&r, 3, 5);

    /* A subscriber that falls behind the range ends with ETRIMMED instead of skipping;
     * one that keeps up is unaffected. */
    rec_subscribe(&lag, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "burst")), CGW_OK);
    }
    drain(ctx);
    assert_int_equal(lag.n, 0);
    assert_int_equal(lag.finals, 1);
    assert_int_equal(lag.final_status, CGW_ETRIMMED);
    /* r was at 5 and needs 6, which is still there. */
    assert_seqs(&r, 3, 8);
    assert_int_equal(r.finals, 0);

    struct rec k;
    rec_init(&k, log);
    rec_subscribe(&k, 7);
    assert_int_equal(append_new(log, ev("text_delta", "one")), CGW_OK);
    drain(ctx);
    assert_seqs(&k, 8, 9);
    assert_int_equal(k.finals, 0);
    cgw_eventlog_free(log);
}

static void test_retention_bytes_and_pin(void **state)
{
    cgw_ctx_t *ctx = *state;
    cgw_eventlog_t *log = log_new(ctx, 0, 300);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(append_new(log, ev("text_delta", "some text of a delta")), CGW_OK);
        assert_true(cgw_eventlog_bytes(log) <= 300);
    }
    assert_true(cgw_eventlog_count(log) >= 2 && cgw_eventlog_count(log) < 5);
    assert_int_equal(cgw_eventlog_last_seq(log), 20);
    /* An entry bigger than the bound alone is still kept (the newest always is). */
    char big[1000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(append_new(log, ev("text_delta", big)), CGW_OK);
    assert_int_equal(cgw_eventlog_count(log), 1);
    assert_int_equal(cgw_eventlog_first_seq(log), 21);
    cgw_eventlog_free(log);

    /* A callback that appends while retention keeps one entry: the entry it is reading is
     * dropped from the log but stays valid until the callback returns. */
    log = log_new(ctx, 1, 0);
    assert_int_equal(append_new(log, ev("text_delta", "first")), CGW_OK);
    struct rec r;
    rec_init(&r, log);
    r.read_after_append = true;
    rec_subscribe(&r, 0);
    event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK | EVLOOP_ONCE);
    assert_seqs(&r, 1, 1);
    assert_int_equal(cgw_eventlog_first_seq(log), 2);
    cgw_eventlog_unsubscribe(r.sub);
    cgw_eventlog_free(log);
}

static int setup(void **state)
{
    *state = cgw_test_ctx_new();
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    cgw_ctx_free(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_and_entries),
        cmocka_unit_test(test_frame_bytes_exact),
        cmocka_unit_test(test_bad_events),
        cmocka_unit_test(test_terminal_events),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_on_event_observer),
        cmocka_unit_test(test_subscribe_replay_then_live),
        cmocka_unit_test(test_subscribe_after_close),
        cmocka_unit_test(test_subscribe_bad_positions),
        cmocka_unit_test(test_unsubscribe_self_mid_delivery),
        cmocka_unit_test(test_unsubscribe_other_and_subscribe_inside_callback),
        cmocka_unit_test(test_thousand_subscribers),
        cmocka_unit_test(test_append_from_callback),
        cmocka_unit_test(test_free_with_subscribers),
        cmocka_unit_test(test_callbacks_during_teardown),
        cmocka_unit_test(test_entry_event_round_trip),
        cmocka_unit_test(test_retention_count),
        cmocka_unit_test(test_retention_bytes_and_pin),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
