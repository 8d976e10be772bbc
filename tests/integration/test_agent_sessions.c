/*
 * 100 concurrent sessions on one loop against `claude-gateway mock-api`: each its own
 * conversation, log and runner, sharing one client and one dispatcher with an asynchronous
 * local tool; every session makes a tool call and two model calls, and every one must reach
 * stream_complete with its own, complete, correctly ordered events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "agent_harness.h"
#include "core/ctx_int.h"

#define SESSIONS 100

static int group_setup(void **state)
{
    (void)state;
    return agent_mock_start();
}

static int group_teardown(void **state)
{
    (void)state;
    agent_mock_stop();
    return 0;
}

typedef struct session {
    cgw_eventlog_t *log;
    cgw_conversation_t *conv;
    cgw_runner_t *runner;
    int done, code;
} session_t;

static int g_finished;

static void on_done(cgw_runner_t *r, const cgw_run_result_t *res, void *user)
{
    (void)r;
    session_t *s = user;
    s->done = 1;
    s->code = res->code;
    g_finished++;
}

/* An asynchronous tool answering after 20 ms, so that many calls are in flight together. */
typedef struct pending {
    cgw_tool_completion_t *done;
    struct event *timer;
    char who[64];
} pending_t;

static int g_in_flight, g_max_in_flight;

static void answer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending_t *p = arg;
    json_t *r = json_pack("{s:s}", "greeting", p->who);
    cgw_tool_complete(p->done, r);
    json_decref(r);
    event_free(p->timer);
    free(p);
    g_in_flight--;
}

static void greet_async(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    pending_t *p = calloc(1, sizeof(*p));
    p->done = done;
    snprintf(p->who, sizeof(p->who), "Hello, %s",
             json_string_value(json_object_get(call->input, "name")));
    p->timer = evtimer_new(cgw_ctx_base(user), answer, p);
    struct timeval tv = {0, 20000};
    evtimer_add(p->timer, &tv);
    if (++g_in_flight > g_max_in_flight) {
        g_max_in_flight = g_in_flight;
    }
}

static void test_hundred_sessions(void **state)
{
    (void)state;
    agent_mock_script("[{\"match\":\"LOAD-Q\",\"content\":[{\"type\":\"text\",\"text\":"
                      "\"Let me greet.\",\"chunks\":4},{\"type\":\"tool_use\",\"name\":\"greet\","
                      "\"input\":{\"name\":\"you\"}}]},"
                      "{\"match\":\"Hello, you\",\"text\":\"load done\",\"chunks\":5}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    assert_int_equal(cgw_dispatcher_add_handler(h.disp, "greet", greet_async, h.ctx), CGW_OK);
    session_t *ss = calloc(SESSIONS, sizeof(*ss));
    g_finished = g_in_flight = g_max_in_flight = 0;
    uint64_t t0 = cgw__now_ms();
    for (int i = 0; i < SESSIONS; i++) {
        session_t *s = &ss[i];
        char sid[32];
        snprintf(sid, sizeof(sid), "load-%03d", i);
        cgw_eventlog_options_t lo;
        cgw_eventlog_options_init(&lo);
        lo.session_id = sid;
        assert_int_equal(cgw_eventlog_new(h.ctx, &lo, &s->log), CGW_OK);
        assert_int_equal(cgw_conversation_new(&s->conv), CGW_OK);
        assert_int_equal(cgw_conversation_append_text(s->conv, "user", "LOAD-Q please"), CGW_OK);
        cgw_runner_options_t ro;
        cgw_runner_options_init(&ro);
        ro.client = h.client;
        ro.dispatcher = h.disp;
        ro.log = s->log;
        ro.session_id = sid;
        assert_int_equal(cgw_runner_new(h.ctx, &ro, &s->runner, NULL), CGW_OK);
        assert_int_equal(cgw_runner_run(s->runner, s->conv, on_done, s), CGW_OK);
    }
    int all = 0;
    while (g_finished < SESSIONS && cgw__now_ms() - t0 < 60000) {
        cgw_test_run_until(h.ctx, &all, 50);
    }
    uint64_t took = cgw__now_ms() - t0;
    assert_int_equal(g_finished, SESSIONS);
    print_message("%d sessions (2 model calls + 1 tool each) in %llu ms; up to %d tool calls in "
                  "flight at once\n",
                  SESSIONS, (unsigned long long)took, g_max_in_flight);
    assert_true(g_max_in_flight > 1);
    for (int i = 0; i < SESSIONS; i++) {
        session_t *s = &ss[i];
        assert_int_equal(s->code, CGW_OK);
        assert_true(cgw_eventlog_closed(s->log));
        /* 4 text, tool_use, tool_result, usage, 5 text, usage, stream_complete */
        assert_int_equal(cgw_eventlog_last_seq(s->log), 14);
        cgw_eventlog_entry_t e;
        assert_int_equal(cgw_eventlog_get(s->log, 14, &e), CGW_OK);
        assert_true(e.terminal);
        assert_int_equal(cgw_conversation_count(s->conv), 4);
        cgw_runner_free(s->runner);
        cgw_eventlog_free(s->log);
        cgw_conversation_free(s->conv);
    }
    free(ss);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2 * SESSIONS);
    json_decref(reqs);
    agent_h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hundred_sessions),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
