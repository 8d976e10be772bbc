/* Fuzz target: random sequences of EventLog operations (appends, terminal and sub-agent
 * events, subscribes from any position, unsubscribes from outside and from inside callbacks,
 * appends from callbacks, close, partial and full loop turns, retention bounds) checked
 * against the contract after every step:
 *   - each subscription sees seq = previous + 1, from its after_seq on, never after its final;
 *   - exactly one final notification unless it unsubscribed, with a status that fits
 *     (OK only at the end of a closed log, ETRIMMED only when it fell behind the range);
 *   - once the loop is idle, every open subscription has seen every entry;
 *   - a closed log refuses appends and holds at most one terminal entry, its last. */
#include <event2/event.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgw.h"

#define MAX_SUBS 32
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fsub {
    cgw_eventlog_sub_t *sub;
    uint64_t pos;
    bool open;
    int finals;
    uint64_t unsubscribe_at; /* unsubscribe itself when it gets this seq (0 = never) */
    int appends_left;        /* append one event from each callback while > 0 */
};

struct run {
    cgw_ctx_t *ctx;
    cgw_eventlog_t *log;
    json_t *delta, *terminal, *sub_terminal;
    struct fsub subs[MAX_SUBS];
    int nsubs;
};

static void sub_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user);

static void check_frame(const cgw_eventlog_entry_t *e)
{
    char want[32];
    int n = snprintf(want, sizeof(want), "id: %llu\n", (unsigned long long)e->seq);
    CHECK(e->frame.len > (size_t)n && memcmp(e->frame.ptr, want, (size_t)n) == 0);
    CHECK(memcmp(e->frame.ptr + e->frame.len - 2, "\n\n", 2) == 0);
    CHECK(e->json.ptr > e->frame.ptr && e->event_json.ptr > e->json.ptr);
}

static void on_final(struct run *r, struct fsub *s, int status)
{
    s->finals++;
    s->open = false;
    CHECK(s->finals == 1);
    cgw_eventlog_t *log = r->log;
    if (status == CGW_OK) {
        CHECK(cgw_eventlog_closed(log) && s->pos == cgw_eventlog_last_seq(log));
    } else if (status == CGW_ETRIMMED) {
        CHECK(s->pos + 1 < cgw_eventlog_first_seq(log));
    } else {
        CHECK(status == CGW_ECANCELED || status == CGW_ENOMEM);
    }
}

static void sub_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user)
{
    struct run *r = ((void **)user)[0];
    struct fsub *s = ((void **)user)[1];
    CHECK(s->open && s->sub == sub);
    if (e == NULL) {
        on_final(r, s, status);
        return;
    }
    CHECK(status == CGW_OK && e->seq == s->pos + 1);
    s->pos = e->seq;
    check_frame(e);
    if (s->appends_left > 0) {
        s->appends_left--;
        int rc = cgw_eventlog_append(r->log, r->delta, NULL);
        CHECK(rc == CGW_OK || (rc == CGW_ECLOSED && cgw_eventlog_closed(r->log)));
    }
    if (s->unsubscribe_at == e->seq) {
        cgw_eventlog_unsubscribe(sub);
        s->open = false;
    }
}

/* Per-subscription user pointers: {run, fsub}. */
static void *users[MAX_SUBS][2];

static void op_subscribe(struct run *r, const uint8_t *arg)
{
    if (r->nsubs == MAX_SUBS) {
        return;
    }
    struct fsub *s = &r->subs[r->nsubs];
    uint64_t last = cgw_eventlog_last_seq(r->log);
    uint64_t after = arg[0] % (last + 2);
    memset(s, 0, sizeof(*s));
    s->pos = after;
    s->unsubscribe_at = arg[1] % 4 == 0 ? after + 1 + arg[1] % 8 : 0;
    s->appends_left = arg[1] % 3 == 0 ? arg[1] % 5 : 0;
    users[r->nsubs][0] = r;
    users[r->nsubs][1] = s;
    int rc = cgw_eventlog_subscribe(r->log, after, sub_cb, users[r->nsubs], &s->sub);
    if (after > last) {
        CHECK(rc == CGW_ERANGE);
    } else if (after + 1 < cgw_eventlog_first_seq(r->log)) {
        CHECK(rc == CGW_ETRIMMED);
    } else {
        CHECK(rc == CGW_OK);
        s->open = true;
        r->nsubs++;
    }
}

static void op_append(struct run *r, const json_t *ev)
{
    bool was_closed = cgw_eventlog_closed(r->log);
    uint64_t before = cgw_eventlog_last_seq(r->log);
    int rc = cgw_eventlog_append(r->log, ev, NULL);
    if (was_closed) {
        CHECK(rc == CGW_ECLOSED && cgw_eventlog_last_seq(r->log) == before);
    } else {
        CHECK(rc == CGW_OK && cgw_eventlog_last_seq(r->log) == before + 1);
    }
}

static void drain(struct run *r)
{
    struct event_base *base = cgw_ctx_base(r->ctx);
    for (int i = 0; i < 1000; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE | EVENT_BASE_COUNT_ADDED) ==
            0) {
            break;
        }
    }
    /* Idle loop: every open subscription has everything (or its final, if closed). */
    for (int i = 0; i < r->nsubs; i++) {
        if (r->subs[i].open) {
            CHECK(r->subs[i].pos == cgw_eventlog_last_seq(r->log));
            CHECK(!cgw_eventlog_closed(r->log));
        }
    }
}

static void step(struct run *r, uint8_t op, const uint8_t *arg)
{
    switch (op % 9) {
    case 0:
    case 1:
        op_append(r, r->delta);
        break;
    case 2:
        op_append(r, r->terminal);
        break;
    case 3: {
        bool was_closed = cgw_eventlog_closed(r->log);
        op_append(r, r->sub_terminal); /* a sub-agent's error never closes the log */
        CHECK(cgw_eventlog_closed(r->log) == was_closed);
        break;
    }
    case 4:
        op_subscribe(r, arg);
        break;
    case 5: {
        struct fsub *s = r->nsubs ? &r->subs[arg[0] % r->nsubs] : NULL;
        if (s != NULL && s->open) {
            cgw_eventlog_unsubscribe(s->sub);
            s->open = false;
        }
        break;
    }
    case 6:
        event_base_loop(cgw_ctx_base(r->ctx), EVLOOP_NONBLOCK | EVLOOP_ONCE);
        break;
    case 7:
        CHECK(cgw_eventlog_close(r->log, NULL) == CGW_OK && cgw_eventlog_closed(r->log));
        break;
    default:
        drain(r);
        break;
    }
}

static void check_terminal_last(cgw_eventlog_t *log)
{
    uint64_t last = cgw_eventlog_last_seq(log);
    for (uint64_t s = cgw_eventlog_first_seq(log); s <= last; s++) {
        cgw_eventlog_entry_t e;
        CHECK(cgw_eventlog_get(log, s, &e) == CGW_OK);
        CHECK(!e.terminal || (s == last && cgw_eventlog_closed(log)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    static struct run r;
    memset(&r, 0, sizeof(r));
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_OFF;
    if (cgw_ctx_new(&co, &r.ctx) != CGW_OK) {
        return 0;
    }
    cgw_eventlog_options_t o;
    cgw_eventlog_options_init(&o);
    o.max_entries = data[0] % 4 == 0 ? 0 : data[0] % 16 + 1;
    o.max_bytes = data[1] % 4 == 0 ? 1000 : 0;
    CHECK(cgw_eventlog_new(r.ctx, &o, &r.log) == CGW_OK);
    r.delta = json_pack("{s:s,s:s}", "type", "text_delta", "text", "fuzz");
    r.terminal = json_pack("{s:s,s:o}", "type", "stream_complete", "usage", json_object());
    r.sub_terminal = json_pack("{s:s,s:s}", "type", "error", "agent_id", "sub0:x");
    for (size_t i = 2; i + 2 < size && i < 2 + 3 * 400; i += 3) {
        step(&r, data[i], data + i + 1);
        check_terminal_last(r.log);
    }
    drain(&r);
    cgw_eventlog_free(r.log);
    for (int i = 0; i < r.nsubs; i++) {
        CHECK(!r.subs[i].open && r.subs[i].finals <= 1);
    }
    json_decref(r.delta);
    json_decref(r.terminal);
    json_decref(r.sub_terminal);
    cgw_ctx_free(r.ctx);
    return 0;
}
