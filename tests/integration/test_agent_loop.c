/*
 * The agent loop against the real `claude-gateway mock-api` and server-everything (npm):
 * text only; thinking + redacted_thinking + local and MCP tools with the signature round trip
 * checked by the mock; hooks; parallel tool calls (overlap, order, limit); max_turns;
 * 529 then success; an error event after content (stream_retry + discard_from_seq);
 * the no-credential stub; cost figures; a tool_use cut by max_tokens; excluded and unknown
 * tools; a conversation continued by a second run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "agent_harness.h"
#include "core/buf.h"
#include "core/ctx_int.h"

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

static const char *everything_config(void)
{
    static char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{\"everything\":{\"command\":\"node\",\"args\":[\"%s\"]}}}",
             mcp_h_npm_entry("everything"));
    return cfg;
}

static json_t *greet(const cgw_tool_call_t *call, json_t **error, void *user)
{
    int *calls = user;
    if (calls != NULL) {
        (*calls)++;
    }
    const char *name = json_string_value(json_object_get(call->input, "name"));
    if (name == NULL) {
        *error = json_pack("{s:s, s:s}", "code", "bad_input", "message", "name is required");
        return NULL;
    }
    char text[256];
    snprintf(text, sizeof(text), "Hello, %s!", name);
    return json_pack("{s:s, s:s}", "greeting", text, "lang", "en\xc3\xa9");
}

static const json_t *last_event(const json_t *events)
{
    return json_array_get(events, json_array_size(events) - 1);
}

static const char *type_of(const json_t *ev)
{
    return json_string_value(json_object_get(ev, "type"));
}

/* ---- text only, and a continued conversation -------------------------------------------- */

static void test_text_only_and_continue(void **state)
{
    (void)state;
    agent_mock_script("[{\"text\":\"Hello there, world\",\"chunks\":3},"
                      "{\"text\":\"Second answer\"}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    agent_h_runner(&h, NULL);
    assert_true(agent_h_run(&h, "Say hello", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_string_equal(h.stop_reason, "end_turn");
    assert_int_equal(h.turns, 1);

    json_t *ev = agent_h_events(&h);
    char *text = agent_h_text(ev);
    assert_string_equal(text, "Hello there, world");
    free(text);
    json_t *deltas = agent_h_filter(ev, "text_delta");
    assert_int_equal(json_array_size(deltas), 3);
    json_decref(deltas);
    json_t *usage = agent_h_filter(ev, "usage");
    assert_int_equal(json_array_size(usage), 1);
    json_decref(usage);
    const json_t *done = last_event(ev);
    assert_string_equal(type_of(done), "stream_complete");
    assert_int_equal(json_integer_value(json_object_get(done, "turns")), 1);
    assert_non_null(json_object_get(json_object_get(done, "usage"), "estimated_cost_usd"));
    assert_true(cgw_eventlog_closed(h.log));
    json_decref(ev);

    /* The runner handed back the conversation with the final assistant turn. */
    assert_int_equal(cgw_conversation_count(h.conv), 2);
    json_t *m = agent_h_message(&h, 1);
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(m, "content"), 0), "text")),
                        "Hello there, world");
    json_decref(m);

    /* Next user message, next run, new log: the request carries the whole conversation. */
    agent_h_new_log(&h);
    assert_true(agent_h_run(&h, "And again?", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(cgw_conversation_count(h.conv), 4);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2);
    const json_t *b0 = agent_mock_body(reqs, 0);
    assert_true(json_is_array(json_object_get(b0, "tools")));
    assert_int_equal(json_array_size(json_object_get(b0, "tools")), 0);
    assert_true(json_is_true(json_object_get(b0, "stream")));
    const json_t *b1 = agent_mock_body(reqs, 1);
    assert_int_equal(json_array_size(json_object_get(b1, "messages")), 3);
    json_decref(reqs);
    agent_h_free(&h);
}

/* ---- thinking + tools: the byte-exact round trip ---------------------------------------- */

static int g_timing_calls;
static void on_timing(const char *sid, const char *tool, const char *server, int64_t ms,
                      bool is_error, size_t bytes, void *user)
{
    (void)sid;
    (void)server;
    (void)ms;
    (void)is_error;
    (void)user;
    (void)tool;
    assert_true(bytes > 0);
    g_timing_calls++;
}

static void on_result(cgw_tool_result_ctx_t *c, void *user)
{
    (void)user;
    if (strcmp(c->tool_name, "greet") == 0) {
        assert_non_null(c->result);
        assert_null(c->error);
        assert_null(c->server);
        json_array_append_new(c->extra_blocks,
                              json_pack("{s:s, s:s}", "type", "text", "text", "HOOK-NOTE"));
    } else {
        assert_string_equal(c->server, "everything");
    }
}

#define THINK_TURN                                                                                 \
    "{\"content\":["                                                                               \
    "{\"type\":\"thinking\",\"thinking\":\"Let me think  about\\nthis \\u00e9\",\"chunks\":3},"    \
    "{\"type\":\"redacted_thinking\",\"data\":\"RED-ACTED-DATA==\"},"                              \
    "{\"type\":\"text\",\"text\":\"\"},"                                                           \
    "{\"type\":\"tool_use\",\"id\":\"toolu_greet\",\"name\":\"greet\",\"input\":{\"name\":"        \
    "\"Ada\"},\"chunks\":3},"                                                                      \
    "{\"type\":\"tool_use\",\"id\":\"toolu_echo\",\"name\":\"echo\",\"input\":{\"message\":"       \
    "\"hi there\"}}]}"

static void test_thinking_tools_roundtrip(void **state)
{
    (void)state;
    agent_mock_script("[" THINK_TURN ",{\"text\":\"All done.\"}]");
    agent_h_t h;
    agent_h_init(&h, everything_config(), 1);
    agent_h_dispatcher(&h, NULL);
    int calls = 0;
    cgw_tool_def_t def = {.name = "greet",
                          .description = "Greets someone",
                          .input_schema_json = "{\"type\":\"object\",\"properties\":{\"name\":"
                                               "{\"type\":\"string\"}},\"required\":[\"name\"]}",
                          .sync_handler = greet,
                          .user = &calls};
    assert_int_equal(cgw_dispatcher_add_tool(h.disp, &def), CGW_OK);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.hooks.on_tool_result = on_result;
    ro.hooks.on_tool_timing = on_timing;
    g_timing_calls = 0;
    agent_h_runner(&h, &ro);
    assert_true(agent_h_run(&h, "Greet Ada and echo", 30000));
    assert_int_equal(h.code, CGW_OK);
    assert_string_equal(h.error, "");
    assert_int_equal(calls, 1);
    assert_int_equal(g_timing_calls, 2);
    assert_int_equal(h.turns, 2);

    json_t *ev = agent_h_events(&h);
    json_t *th = agent_h_filter(ev, "thinking_delta");
    assert_int_equal(json_array_size(th), 3);
    json_decref(th);
    json_t *uses = agent_h_filter(ev, "tool_use");
    assert_int_equal(json_array_size(uses), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(uses, 0), "tool_name")),
                        "greet");
    assert_true(json_is_null(json_object_get(json_array_get(uses, 0), "server")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(uses, 1), "server")),
                        "everything");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(uses, 1), "call_index")), 1);
    json_decref(uses);
    json_t *results = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(results), 2);
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        assert_true(json_is_false(json_object_get(r, "is_error")));
        assert_true(json_is_null(json_object_get(r, "error")));
        assert_true(json_is_integer(json_object_get(r, "duration_ms")));
    }
    json_decref(results);
    json_decref(ev);

    /* What went back to the API: the mock checked the signature and the redacted data (it
     * would have answered 400); here the exact bytes and order are checked too. */
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2);
    const json_t *b0 = agent_mock_body(reqs, 0);
    assert_int_equal(json_array_size(json_object_get(b0, "tools")),
                     1 + cgw_mcp_toolmap_count(cgw_mcp_manager_toolmap(h.mcp.mgr)));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(b0, "tools"), 0), "name")),
        "greet");
    const json_t *msgs = json_object_get(agent_mock_body(reqs, 1), "messages");
    assert_int_equal(json_array_size(msgs), 3);
    const json_t *asst = json_object_get(json_array_get(msgs, 1), "content");
    assert_int_equal(json_array_size(asst), 4); /* the empty text block was not sent */
    const json_t *think = json_array_get(asst, 0);
    assert_string_equal(json_string_value(json_object_get(think, "type")), "thinking");
    assert_string_equal(json_string_value(json_object_get(think, "thinking")),
                        "Let me think  about\nthis \xc3\xa9");
    assert_non_null(json_string_value(json_object_get(think, "signature")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(asst, 1), "data")),
                        "RED-ACTED-DATA==");
    assert_string_equal(json_string_value(json_object_get(json_array_get(asst, 2), "id")),
                        "toolu_greet");
    const json_t *user = json_object_get(json_array_get(msgs, 2), "content");
    assert_int_equal(json_array_size(user), 3);
    const json_t *tr0 = json_array_get(user, 0);
    assert_string_equal(json_string_value(json_object_get(tr0, "tool_use_id")), "toolu_greet");
    /* Python-style JSON text: ", " and ": " separators, non-ASCII escaped. */
    assert_string_equal(json_string_value(json_object_get(tr0, "content")),
                        "{\"greeting\": \"Hello, Ada!\", \"lang\": \"en\\u00e9\"}");
    assert_null(json_object_get(tr0, "is_error"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(user, 1), "text")),
                        "HOOK-NOTE");
    const json_t *tr1 = json_array_get(user, 2);
    assert_string_equal(json_string_value(json_object_get(tr1, "tool_use_id")), "toolu_echo");
    assert_non_null(strstr(json_string_value(json_object_get(tr1, "content")), "hi there"));
    json_decref(reqs);
    agent_h_free(&h);
}

/* ---- parallel tool calls ---------------------------------------------------------------- */

typedef struct slow_call {
    cgw_tool_completion_t *done;
    struct event *timer;
    uint64_t start_ms, end_ms;
    int ms;
} slow_call_t;

static slow_call_t g_slow[8];
static int g_nslow;

static void slow_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    slow_call_t *s = arg;
    s->end_ms = cgw__now_ms();
    json_t *r = json_pack("{s:i}", "slept_ms", s->ms);
    cgw_tool_complete(s->done, r);
    json_decref(r);
    event_free(s->timer);
    s->timer = NULL;
}

static void slow_handler(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    cgw_ctx_t *ctx = user;
    slow_call_t *s = &g_slow[g_nslow++];
    s->done = done;
    s->ms = (int)json_integer_value(json_object_get(call->input, "ms"));
    s->start_ms = cgw__now_ms();
    s->timer = evtimer_new(cgw_ctx_base(ctx), slow_fire, s);
    struct timeval tv = {0, s->ms * 1000};
    evtimer_add(s->timer, &tv);
}

#define SLOW_TURN                                                                                  \
    "{\"content\":["                                                                               \
    "{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"slow\",\"input\":{\"ms\":300}},"         \
    "{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"slow\",\"input\":{\"ms\":100}},"         \
    "{\"type\":\"tool_use\",\"id\":\"toolu_c\",\"name\":\"slow\",\"input\":{\"ms\":200}}]}"

static void run_slow(int max_parallel, uint64_t *wall_ms)
{
    agent_mock_script("[" SLOW_TURN ",{\"text\":\"ok\"}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    assert_int_equal(cgw_dispatcher_add_handler(h.disp, "slow", slow_handler, h.ctx), CGW_OK);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.max_parallel_tools = max_parallel;
    agent_h_runner(&h, &ro);
    memset(g_slow, 0, sizeof(g_slow));
    g_nslow = 0;
    assert_true(agent_h_run(&h, "run three", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_nslow, 3);
    uint64_t first = g_slow[0].start_ms, last = 0;
    for (int i = 0; i < 3; i++) {
        last = g_slow[i].end_ms > last ? g_slow[i].end_ms : last;
    }
    *wall_ms = last - first;

    /* Results go back in the model's order (a, b, c), whatever order they finished in. */
    json_t *reqs = agent_mock_requests();
    const json_t *msgs = json_object_get(agent_mock_body(reqs, 1), "messages");
    const json_t *user = json_object_get(json_array_get(msgs, 2), "content");
    assert_int_equal(json_array_size(user), 3);
    const char *ids[] = {"toolu_a", "toolu_b", "toolu_c"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(user, i), "tool_use_id")), ids[i]);
    }
    json_decref(reqs);
    /* tool_result events come as calls finish. */
    json_t *ev = agent_h_events(&h);
    json_t *res = agent_h_filter(ev, "tool_result");
    const char *first_done =
        json_string_value(json_object_get(json_array_get(res, 0), "tool_call_id"));
    assert_string_equal(first_done, max_parallel == 1 ? "toolu_a" : "toolu_b");
    json_decref(res);
    json_decref(ev);
    agent_h_free(&h);
}

static void test_parallel_tools(void **state)
{
    (void)state;
    uint64_t wall = 0;
    run_slow(8, &wall);
    /* All three overlapped: every call started before the first one finished. */
    uint64_t first_end = g_slow[0].end_ms;
    for (int i = 0; i < 3; i++) {
        first_end = g_slow[i].end_ms < first_end ? g_slow[i].end_ms : first_end;
    }
    for (int i = 0; i < 3; i++) {
        assert_true(g_slow[i].start_ms <= first_end);
    }
    assert_true(wall < 550); /* serial would be 600 */
    print_message("parallel: 300+100+200 ms of tools took %llu ms\n", (unsigned long long)wall);

    /* The limit is honoured: one at a time takes the sum. */
    run_slow(1, &wall);
    assert_true(wall >= 590);
    for (int i = 1; i < 3; i++) {
        assert_true(g_slow[i].start_ms >= g_slow[i - 1].end_ms);
    }
}

/* ---- max_turns, excluded and unknown tools ---------------------------------------------- */

static void test_max_turns(void **state)
{
    (void)state;
    agent_mock_script("{\"when_exhausted\":\"repeat_last\",\"turns\":[{\"content\":["
                      "{\"type\":\"tool_use\",\"name\":\"greet\",\"input\":{\"name\":\"Bo\"}}]}]}");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "greet", greet, NULL), CGW_OK);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.max_turns = 2;
    agent_h_runner(&h, &ro);
    assert_true(agent_h_run(&h, "loop forever", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_string_equal(h.stop_reason, "max_turns");
    assert_int_equal(h.turns, 2);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2);
    json_decref(reqs);
    json_t *ev = agent_h_events(&h);
    char *text = agent_h_text(ev);
    assert_string_equal(text, "\n\n[Sub-agent reached maximum turn limit]");
    free(text);
    assert_string_equal(json_string_value(json_object_get(last_event(ev), "stop_reason")),
                        "max_turns");
    json_decref(ev);
    agent_h_free(&h);
}

static void test_excluded_and_unknown(void **state)
{
    (void)state;
    agent_mock_script(
        "[{\"content\":["
        "{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"greet\",\"input\":{\"name\":\"Z\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_y\",\"name\":\"nope\",\"input\":{}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_z\",\"name\":\"ok\",\"input\":{}}]},"
        "{\"text\":\"fine\"}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    int calls = 0;
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "greet", greet, &calls), CGW_OK);
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "ok", greet, &calls), CGW_OK);
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "ok", greet, &calls), CGW_EEXIST);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    const char *excl[] = {"greet"};
    ro.excluded_tools = excl;
    ro.n_excluded_tools = 1;
    agent_h_runner(&h, &ro);
    assert_true(agent_h_run(&h, "try", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(calls, 1); /* only "ok" ran, and it failed softly: no name */
    json_t *ev = agent_h_events(&h);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 3);
    const char *want[][2] = {
        {"toolu_x", "tool_excluded"}, {"toolu_y", "unknown_tool"}, {"toolu_z", "bad_input"}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *r = NULL;
        size_t k;
        json_t *e;
        json_array_foreach(res, k, e)
        {
            if (strcmp(json_string_value(json_object_get(e, "tool_call_id")), want[i][0]) == 0) {
                r = e;
            }
        }
        assert_non_null(r);
        assert_true(json_is_true(json_object_get(r, "is_error")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "code")),
                            want[i][1]);
    }
    json_decref(res);
    json_decref(ev);
    json_t *reqs = agent_mock_requests();
    const json_t *b0 = agent_mock_body(reqs, 0);
    assert_int_equal(json_array_size(json_object_get(b0, "tools")), 1); /* greet excluded */
    const json_t *user = agent_mock_content(reqs, 1, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(user, 0), "content")),
                        "{\"error\": {\"code\": \"tool_excluded\", \"message\": \"Tool 'greet' is "
                        "not available in this context\"}}");
    assert_string_equal(json_string_value(json_object_get(json_array_get(user, 1), "content")),
                        "{\"error\": {\"code\": \"unknown_tool\", \"message\": \"Unknown tool: "
                        "nope\"}}");
    assert_true(json_is_true(json_object_get(json_array_get(user, 1), "is_error")));
    json_decref(reqs);
    agent_h_free(&h);
}

/* ---- retries ---------------------------------------------------------------------------- */

static void test_529_then_success(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"status\":529,\"headers\":{\"retry-after-ms\":\"20\"}},"
                         "{\"text\":\"ok after retry\"}]");
    assert_true(agent_h_run(&h, "hi", 10000));
    assert_int_equal(h.code, CGW_OK);
    json_t *ev = agent_h_events(&h);
    const json_t *retry = json_array_get(ev, 0);
    assert_string_equal(type_of(retry), "stream_retry");
    assert_int_equal(json_integer_value(json_object_get(retry, "attempt")), 0);
    /* nothing to discard: it points past itself */
    assert_int_equal(json_integer_value(json_object_get(retry, "discard_from_seq")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(retry, "error")), "529"));
    char *text = agent_h_text(ev);
    assert_string_equal(text, "ok after retry");
    free(text);
    json_decref(ev);
    agent_h_free(&h);
}

static void test_error_event_after_content(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"text\":\"partial answer to drop\",\"chunks\":4,"
                         "\"error_event\":{\"after\":2,\"type\":\"overloaded_error\","
                         "\"message\":\"Overloaded\"}},{\"text\":\"second try\",\"chunks\":2}]");
    assert_true(agent_h_run(&h, "hi", 10000));
    assert_int_equal(h.code, CGW_OK);
    json_t *ev = agent_h_events(&h);
    /* text_delta, text_delta, stream_retry, text_delta, text_delta, usage, stream_complete */
    const json_t *retry = json_array_get(ev, 2);
    assert_string_equal(type_of(retry), "stream_retry");
    assert_int_equal(json_integer_value(json_object_get(retry, "discard_from_seq")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(retry, "error")), "Overloaded"));
    /* A consumer that drops seq >= discard_from_seq before the retry sees the clean answer. */
    cgw_buf_t kept = CGW_BUF_INIT;
    size_t i;
    json_t *e;
    json_int_t discard = json_integer_value(json_object_get(retry, "discard_from_seq"));
    json_int_t retry_seq = json_integer_value(json_object_get(retry, "_seq"));
    json_array_foreach(ev, i, e)
    {
        json_int_t seq = json_integer_value(json_object_get(e, "_seq"));
        if (strcmp(type_of(e), "text_delta") == 0 && !(seq >= discard && seq < retry_seq)) {
            cgw_buf_append_str(&kept, json_string_value(json_object_get(e, "text")));
        }
    }
    cgw_buf_append(&kept, "", 0);
    assert_string_equal(kept.data, "second try");
    cgw_buf_free(&kept);
    json_decref(ev);
    json_t *m = agent_h_message(&h, 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(m, "content"), 0), "text")),
                        "second try");
    json_decref(m);
    agent_h_free(&h);
}

static void test_api_error_fails_run(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"status\":400,\"error\":{\"type\":\"invalid_request_error\","
                         "\"message\":\"bad thing\"}}]");
    assert_true(agent_h_run(&h, "hi", 10000));
    assert_int_equal(h.code, CGW_EAPI);
    assert_non_null(strstr(h.error, "bad thing"));
    json_t *ev = agent_h_events(&h);
    const json_t *last = last_event(ev);
    assert_string_equal(type_of(last), "error");
    assert_string_equal(json_string_value(json_object_get(last, "code")), "api_error");
    json_decref(ev);
    /* The conversation is back to where it was when the run started: the user message. */
    assert_int_equal(cgw_conversation_count(h.conv), 1);
    agent_h_free(&h);
}

/* ---- stub, cost, max_tokens ------------------------------------------------------------- */

static int g_usage_calls;
static void count_usage(const cgw_usage_report_t *rep, void *user)
{
    (void)user;
    (void)rep;
    g_usage_calls++;
}

static void test_no_credential_stub(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_init(&h, NULL, 0);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.stub_delay_ms = 20;
    ro.hooks.on_usage = count_usage;
    g_usage_calls = 0;
    agent_h_runner(&h, &ro);
    uint64_t t0 = cgw__now_ms();
    assert_true(agent_h_run(&h, "what is  2+2?", 5000));
    uint64_t took = cgw__now_ms() - t0;
    assert_int_equal(h.code, CGW_OK);
    assert_true(h.stub);
    json_t *ev = agent_h_events(&h);
    json_t *deltas = agent_h_filter(ev, "text_delta");
    /* "Stub response (no Anthropic credential configured). You asked: what is 2+2?" = 11 words */
    assert_int_equal(json_array_size(deltas), 11);
    assert_string_equal(json_string_value(json_object_get(json_array_get(deltas, 0), "text")),
                        "Stub ");
    json_decref(deltas);
    char *text = agent_h_text(ev);
    assert_string_equal(text, "Stub response (no Anthropic credential configured). You asked: "
                              "what is 2+2? ");
    free(text);
    const json_t *last = last_event(ev);
    assert_string_equal(type_of(last), "stream_complete");
    assert_int_equal(json_object_size(json_object_get(last, "usage")), 0);
    json_decref(ev);
    assert_true(took >= 10 * 20);
    assert_int_equal(g_usage_calls, 0); /* never for the stub */
    agent_h_free(&h);
}

static cgw_usage_t g_reported;
static void keep_usage(const cgw_usage_report_t *rep, void *user)
{
    (void)user;
    g_reported = rep->usage;
    g_usage_calls++;
}

static void test_cost_estimate(void **state)
{
    (void)state;
    agent_mock_script("{\"when_exhausted\":\"repeat_last\",\"turns\":[{\"text\":\"priced\","
                      "\"usage\":{\"input_tokens\":1000,\"output_tokens\":500,"
                      "\"cache_creation_input_tokens\":2000,\"cache_read_input_tokens\":10000}}]}");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.hooks.on_usage = keep_usage;
    g_usage_calls = 0;
    agent_h_runner(&h, &ro);
    assert_true(agent_h_run(&h, "price me", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_usage_calls, 1);
    /* Sonnet: 1000*3 + 500*15 + 2000*3.75 + 10000*0.30 = 21000 micro-dollars. (The original's
     * formula subtracts the cached tokens from input_tokens again and says 0.018.) */
    assert_float_equal(h.usage.estimated_cost_usd, 0.021, 1e-9);
    assert_float_equal(g_reported.estimated_cost_usd, 0.021, 1e-9);
    assert_int_equal(h.usage.cache_read_input_tokens, 10000);
    json_t *ev = agent_h_events(&h);
    const json_t *u = json_object_get(last_event(ev), "usage");
    assert_float_equal(json_real_value(json_object_get(u, "estimated_cost_usd")), 0.021, 1e-9);
    assert_int_equal(json_integer_value(json_object_get(u, "input_tokens")), 1000);
    json_t *per_call = agent_h_filter(ev, "usage");
    assert_string_equal(json_string_value(json_object_get(json_array_get(per_call, 0), "model")),
                        "claude-sonnet-4-6");
    json_decref(per_call);
    json_decref(ev);
    cgw_runner_free(h.runner);
    h.runner = NULL;

    /* A replaced price table. */
    static const cgw_model_price_t mine[] = {{"sonnet-4-6", 1.0, 2.0, 3.0, 4.0, 5.0}};
    static const cgw_price_table_t table = {mine, 1, NULL};
    ro.prices = &table;
    agent_h_new_log(&h);
    agent_h_runner(&h, &ro);
    assert_true(agent_h_run(&h, "again", 10000));
    assert_float_equal(h.usage.estimated_cost_usd,
                       (1000 * 1.0 + 500 * 2.0 + 2000 * 3.0 + 10000 * 5.0) / 1e6, 1e-9);
    agent_h_free(&h);
}

static void test_max_tokens_cuts_tool_use(void **state)
{
    (void)state;
    agent_mock_script("[{\"stop_reason\":\"max_tokens\",\"content\":["
                      "{\"type\":\"text\",\"text\":\"Writing it\"},"
                      "{\"type\":\"tool_use\",\"id\":\"toolu_cut\",\"name\":\"greet\","
                      "\"input_deltas\":[\"{\\\"name\\\": \\\"Ad\"]}]},"
                      "{\"text\":\"I will retry later\"}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    agent_h_dispatcher(&h, NULL);
    int calls = 0;
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "greet", greet, &calls), CGW_OK);
    agent_h_runner(&h, NULL);
    assert_true(agent_h_run(&h, "greet", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(calls, 0); /* never run with half an input */
    json_t *ev = agent_h_events(&h);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 1);
    const json_t *err = json_object_get(json_array_get(res, 0), "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "tool_input_truncated");
    json_decref(res);
    json_decref(ev);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2);
    const json_t *user = agent_mock_content(reqs, 1, 2);
    assert_true(json_is_true(json_object_get(json_array_get(user, 0), "is_error")));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(user, 0), "content")),
                           "max_tokens"));
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_mcp_image_content(void **state)
{
    (void)state;
    agent_mock_script("[{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_img\",\"name\":"
                      "\"get-tiny-image\",\"input\":{}}]},{\"text\":\"I see it\"}]");
    agent_h_t h;
    agent_h_init(&h, everything_config(), 1);
    agent_h_dispatcher(&h, NULL);
    agent_h_runner(&h, NULL);
    assert_true(agent_h_run(&h, "show me", 30000));
    assert_int_equal(h.code, CGW_OK);
    json_t *reqs = agent_mock_requests();
    const json_t *user = agent_mock_content(reqs, 1, 2);
    const json_t *tr = json_array_get(user, 0);
    assert_string_equal(json_string_value(json_object_get(tr, "tool_use_id")), "toolu_img");
    /* The JSON text first, then the image the server returned, as an Anthropic block. */
    const json_t *parts = json_object_get(tr, "content");
    assert_true(json_is_array(parts));
    assert_true(json_array_size(parts) >= 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 0), "type")),
                        "text");
    int images = 0;
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "type")), "image") == 0) {
            images++;
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(p, "source"), "type")), "base64");
        }
    }
    assert_int_equal(images, 1);
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_pause_turn_continues(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"stop_reason\":\"pause_turn\",\"text\":\"Working on it... \"},"
                         "{\"text\":\"finished\"}]");
    assert_true(agent_h_run(&h, "long job", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(h.turns, 2);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2);
    /* The paused turn was sent back as is, for the API to continue it. */
    const json_t *msgs = json_object_get(agent_mock_body(reqs, 1), "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "role")),
                        "assistant");
    json_decref(reqs);
    agent_h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_only_and_continue),
        cmocka_unit_test(test_thinking_tools_roundtrip),
        cmocka_unit_test(test_parallel_tools),
        cmocka_unit_test(test_max_turns),
        cmocka_unit_test(test_excluded_and_unknown),
        cmocka_unit_test(test_529_then_success),
        cmocka_unit_test(test_error_event_after_content),
        cmocka_unit_test(test_api_error_fails_run),
        cmocka_unit_test(test_no_credential_stub),
        cmocka_unit_test(test_cost_estimate),
        cmocka_unit_test(test_max_tokens_cuts_tool_use),
        cmocka_unit_test(test_mcp_image_content),
        cmocka_unit_test(test_pause_turn_continues),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
