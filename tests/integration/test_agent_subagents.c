/*
 * Sub-agents (run_agent) against `claude-gateway mock-api`: two delegated in one turn run in
 * parallel, each with its own system prompt, model and tools (run_agent and excluded tools
 * withheld); their events land in the parent's log tagged with agent_id and
 * parent_tool_call_id and are not terminal; the model gets {response, tools_used, usage};
 * SubAgentConfig.max_turns is honoured; a sub-agent that outlives its timeout gives partial
 * results with a warning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_harness.h"

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

static json_t *greet(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)error;
    (void)user;
    char text[256];
    snprintf(text, sizeof(text), "Hello, %s!",
             json_string_value(json_object_get(call->input, "name")));
    return json_pack("{s:s}", "greeting", text);
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void setup(agent_h_t *h, int max_turns, uint32_t timeout_ms)
{
    agent_h_init(h, NULL, 1);
    agent_h_dispatcher(h, NULL);
    assert_int_equal(cgw_dispatcher_add_sync(h->disp, "greet", greet, NULL), CGW_OK);
    assert_int_equal(cgw_dispatcher_add_sync(h->disp, "secret", greet, NULL), CGW_OK);
    /* A local tool named like the built-in: never advertised twice, never called. */
    assert_int_equal(cgw_dispatcher_add_sync(h->disp, "run_agent", greet, NULL), CGW_OK);
    cgw_sub_agent_config_t sc;
    cgw_sub_agent_config_init(&sc);
    const char *excl[] = {"secret"};
    sc.excluded_tools = excl;
    sc.n_excluded_tools = 1;
    sc.system_prompt = "You are a careful sub-agent.";
    sc.model = "claude-haiku-4-5";
    sc.max_turns = max_turns;
    if (timeout_ms) {
        sc.timeout_ms = timeout_ms;
    }
    cgw_runner_options_t ro;
    cgw_runner_options_init(&ro);
    ro.sub_agent = &sc;
    agent_h_runner(h, &ro);
}

/* setup(), then runs "Delegate PARENT-Q" to a successful end; returns its events. */
static json_t *delegate(agent_h_t *h, int max_turns, uint32_t timeout_ms)
{
    setup(h, max_turns, timeout_ms);
    assert_true(agent_h_run(h, "Delegate PARENT-Q", 20000));
    assert_int_equal(h->code, CGW_OK);
    return agent_h_events(h);
}

/* The run_agent tool_result event for `id`. */
static const json_t *find_result(const json_t *ev, const char *id)
{
    size_t i;
    const json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (strcmp(str(e, "type"), "tool_result") == 0 && strcmp(str(e, "tool_call_id"), id) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Seq of the first / last event of `agent_id` with `type` (NULL: any). */
static json_int_t seq_of(const json_t *ev, const char *agent, const char *type, int last)
{
    json_int_t found = -1;
    size_t i;
    const json_t *e;
    json_array_foreach(ev, i, e)
    {
        const char *a = str(e, "agent_id");
        if (a != NULL && strcmp(a, agent) == 0 &&
            (type == NULL || strcmp(str(e, "type"), type) == 0)) {
            found = json_integer_value(json_object_get(e, "_seq"));
            if (!last) {
                return found;
            }
        }
    }
    return found;
}

#define PARALLEL_SCRIPT                                                                            \
    "[{\"match\":\"PARENT-Q\",\"content\":["                                                       \
    "{\"type\":\"tool_use\",\"id\":\"toolu_ra\",\"name\":\"run_agent\",\"input\":{\"task\":"       \
    "\"SUBTASK-A: greet A-person\"}},"                                                             \
    "{\"type\":\"tool_use\",\"id\":\"toolu_rb\",\"name\":\"run_agent\",\"input\":{\"task\":"       \
    "\"SUBTASK-B: say hi\"}}]},"                                                                   \
    "{\"match\":\"SUBTASK-A\",\"delay_ms\":80,\"content\":[{\"type\":\"tool_use\","                \
    "\"name\":\"greet\",\"input\":{\"name\":\"A-person\"},\"chunks\":3}]},"                        \
    "{\"match\":\"Hello, A-person\",\"text\":\"FINAL-A done\"},"                                   \
    "{\"match\":\"SUBTASK-B\",\"delay_ms\":30,\"text\":\"FINAL-B done\",\"chunks\":3},"            \
    "{\"match\":\"FINAL-A\",\"text\":\"All delegated work is done\"}]"

static void test_parallel_subagents(void **state)
{
    (void)state;
    agent_mock_script(PARALLEL_SCRIPT);
    agent_h_t h;
    setup(&h, 5, 0);
    assert_true(agent_h_run(&h, "Delegate PARENT-Q", 20000));
    assert_int_equal(h.code, CGW_OK);
    assert_string_equal(h.error, "");
    assert_int_equal(h.turns, 2);
    /* The parent's totals include its sub-agents: 2 + 2 + 1 model calls of 10 input tokens. */
    assert_int_equal(h.usage.input_tokens, 50);

    json_t *ev = agent_h_events(&h);
    const json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    assert_string_equal(str(last, "type"), "stream_complete");
    assert_null(json_object_get(last, "agent_id"));

    const char *A = "sub0:test-session", *B = "sub1:test-session";
    /* Both sub-agents ran, concurrently: B logged events before A had finished. */
    json_int_t a_end = seq_of(ev, A, "stream_complete", 1);
    json_int_t b_first = seq_of(ev, B, NULL, 0);
    assert_true(a_end > 0);
    assert_true(b_first > 0);
    assert_true(b_first < a_end);
    /* Tags: every event of A names the run_agent call that started it. */
    size_t i;
    json_t *e;
    int a_events = 0;
    json_array_foreach(ev, i, e)
    {
        const char *a = str(e, "agent_id");
        if (a != NULL && strcmp(a, A) == 0) {
            assert_string_equal(str(e, "parent_tool_call_id"), "toolu_ra");
            a_events++;
        }
        if (a != NULL && strcmp(a, B) == 0) {
            assert_string_equal(str(e, "parent_tool_call_id"), "toolu_rb");
        }
    }
    assert_true(a_events >= 6); /* deltas, tool_use, tool_result, usage x2, stream_complete */
    assert_true(seq_of(ev, A, "tool_use", 0) > 0);

    /* What the parent's model got back. */
    const json_t *ra = json_object_get(find_result(ev, "toolu_ra"), "result");
    assert_string_equal(str(ra, "response"), "FINAL-A done");
    assert_int_equal(json_array_size(json_object_get(ra, "tools_used")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ra, "tools_used"), 0)),
                        "greet");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(ra, "usage"), "input_tokens")), 20);
    assert_null(json_object_get(ra, "warning"));
    const json_t *rb = json_object_get(find_result(ev, "toolu_rb"), "result");
    assert_string_equal(str(rb, "response"), "FINAL-B done");
    assert_int_equal(json_array_size(json_object_get(rb, "tools_used")), 0);
    json_decref(ev);

    /* The sub-agents' own requests: model, system prompt, tools without run_agent/secret. */
    json_t *reqs = agent_mock_requests();
    size_t n = agent_mock_message_count(reqs);
    assert_int_equal(n, 5);
    int subs_seen = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *b = agent_mock_body(reqs, k);
        const json_t *first = json_array_get(json_object_get(b, "messages"), 0);
        const char *content = str(first, "content");
        const json_t *tools = json_object_get(b, "tools");
        if (content != NULL && strncmp(content, "SUBTASK", 7) == 0) {
            subs_seen++;
            assert_string_equal(str(b, "model"), "claude-haiku-4-5");
            assert_string_equal(str(json_array_get(json_object_get(b, "system"), 0), "text"),
                                "You are a careful sub-agent.");
            assert_int_equal(json_array_size(tools), 1);
            assert_string_equal(str(json_array_get(tools, 0), "name"), "greet");
        } else {
            assert_string_equal(str(b, "model"), "claude-sonnet-4-6");
            assert_int_equal(json_array_size(tools), 3);
            assert_string_equal(str(json_array_get(tools, 0), "name"), "run_agent");
        }
    }
    assert_int_equal(subs_seen, 3);
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_subagent_max_turns(void **state)
{
    (void)state;
    agent_mock_script("[{\"match\":\"PARENT-Q\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                      "\"toolu_ra\",\"name\":\"run_agent\",\"input\":{\"task\":\"SUBTASK-A\"}}]},"
                      "{\"match\":\"SUBTASK-A\",\"content\":[{\"type\":\"tool_use\",\"name\":"
                      "\"greet\",\"input\":{\"name\":\"Loop\"}}]},"
                      "{\"match\":\"Hello, Loop\",\"content\":[{\"type\":\"tool_use\",\"name\":"
                      "\"greet\",\"input\":{\"name\":\"Loop\"}}]},"
                      "{\"match\":\"maximum turn limit\",\"text\":\"parent done\"}]");
    agent_h_t h;
    json_t *ev = delegate(&h, 1, 0);
    const json_t *ra = json_object_get(find_result(ev, "toolu_ra"), "result");
    assert_string_equal(str(ra, "response"), "[Sub-agent reached maximum turn limit]");
    const json_t *sc = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (json_object_get(e, "agent_id") && strcmp(str(e, "type"), "stream_complete") == 0) {
            sc = e;
        }
    }
    assert_non_null(sc);
    assert_string_equal(str(sc, "stop_reason"), "max_turns");
    assert_int_equal(json_integer_value(json_object_get(sc, "turns")), 1);
    json_decref(ev);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 3); /* parent, one sub turn, parent */
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_subagent_timeout(void **state)
{
    (void)state;
    agent_mock_script("[{\"match\":\"PARENT-Q\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                      "\"toolu_ra\",\"name\":\"run_agent\",\"input\":{\"task\":\"SUBTASK-A\"}}]},"
                      "{\"match\":\"SUBTASK-A\",\"hang\":1,\"content\":[{\"type\":\"text\","
                      "\"deltas\":[\"PART1 \",\"PART2 \",\"PART3\"]}]},"
                      "{\"match\":\"timed out\",\"text\":\"parent done\"}]");
    agent_h_t h;
    json_t *ev = delegate(&h, 5, 300);
    const json_t *tr = find_result(ev, "toolu_ra");
    assert_true(json_is_false(json_object_get(tr, "is_error")));
    const json_t *ra = json_object_get(tr, "result");
    assert_string_equal(str(ra, "response"), "PART1");
    assert_string_equal(str(ra, "warning"),
                        "Sub-agent timed out after 0.3s \xe2\x80\x94 partial results returned");
    /* The sub-agent's log ended with its own (non-terminal) error. */
    size_t i;
    json_t *e;
    const json_t *sub_err = NULL;
    json_array_foreach(ev, i, e)
    {
        if (json_object_get(e, "agent_id") && strcmp(str(e, "type"), "error") == 0) {
            sub_err = e;
        }
    }
    assert_non_null(sub_err);
    assert_string_equal(str(sub_err, "code"), "timeout");
    assert_string_equal(str(json_array_get(ev, json_array_size(ev) - 1), "type"),
                        "stream_complete");
    json_decref(ev);
    /* The parent's model saw the warning, annotated as the original does. */
    json_t *reqs = agent_mock_requests();
    const json_t *user = agent_mock_content(reqs, 2, 2);
    assert_non_null(strstr(str(json_array_get(user, 0), "content"),
                           "\"_runner_warning\": \"Sub-agent warning: Sub-agent timed out"));
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_cancel_reaches_subagents(void **state)
{
    (void)state;
    agent_mock_script("[{\"match\":\"PARENT-Q\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                      "\"toolu_ra\",\"name\":\"run_agent\",\"input\":{\"task\":\"SUBTASK-A\"}},"
                      "{\"type\":\"tool_use\",\"id\":\"toolu_rb\",\"name\":\"run_agent\","
                      "\"input\":{\"task\":\"SUBTASK-B\"}}]},"
                      "{\"match\":\"SUBTASK\",\"hang\":1,\"content\":[{\"type\":\"text\","
                      "\"deltas\":[\"working \",\"more\"]}]}]");
    agent_h_t h;
    setup(&h, 5, 0);
    agent_h_start(&h, "Delegate PARENT-Q");
    /* Wait until both sub-agents streamed something. */
    int spin = 0;
    for (int i = 0; i < 400; i++) {
        json_t *ev = agent_h_events(&h);
        int subs = 0;
        size_t k;
        json_t *e;
        json_array_foreach(ev, k, e)
        {
            subs +=
                json_object_get(e, "agent_id") != NULL && strcmp(str(e, "type"), "text_delta") == 0;
        }
        json_decref(ev);
        if (subs >= 2) {
            break;
        }
        cgw_test_run_until(h.ctx, &spin, 10);
    }
    assert_int_equal(cgw_runner_cancel(h.runner), CGW_OK);
    assert_true(cgw_test_run_until(h.ctx, &h.done, 2000));
    assert_int_equal(h.code, CGW_ECANCELED);
    json_t *ev = agent_h_events(&h);
    int sub_cancelled = 0;
    size_t i;
    json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (json_object_get(e, "agent_id") && strcmp(str(e, "type"), "error") == 0) {
            assert_string_equal(str(e, "code"), "cancelled");
            sub_cancelled++;
        }
    }
    assert_int_equal(sub_cancelled, 2);
    const char *ids[] = {"toolu_ra", "toolu_rb"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *err = json_object_get(find_result(ev, ids[k]), "error");
        assert_string_equal(str(err, "code"), "cancelled");
        assert_string_equal(str(err, "message"), "Sub-agent was cancelled");
    }
    const json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    assert_string_equal(str(last, "type"), "error");
    assert_null(json_object_get(last, "agent_id"));
    assert_true(cgw_eventlog_closed(h.log));
    json_decref(ev);
    agent_h_free(&h);
}

static void test_subagent_cannot_nest(void **state)
{
    (void)state;
    agent_mock_script("[{\"match\":\"PARENT-Q\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                      "\"toolu_ra\",\"name\":\"run_agent\",\"input\":{\"task\":\"SUBTASK-A\"}}]},"
                      "{\"match\":\"SUBTASK-A\",\"content\":[{\"type\":\"tool_use\",\"id\":"
                      "\"toolu_nested\",\"name\":\"run_agent\",\"input\":{\"task\":\"deeper\"}}]},"
                      "{\"match\":\"not available\",\"text\":\"NESTED-REFUSED\"},"
                      "{\"match\":\"NESTED-REFUSED\",\"text\":\"parent done\"}]");
    agent_h_t h;
    json_t *ev = delegate(&h, 5, 0);
    const json_t *nested = find_result(ev, "toolu_nested");
    assert_non_null(json_object_get(nested, "agent_id"));
    assert_string_equal(str(json_object_get(nested, "error"), "code"), "tool_excluded");
    assert_string_equal(str(json_object_get(find_result(ev, "toolu_ra"), "result"), "response"),
                        "NESTED-REFUSED");
    json_decref(ev);
    agent_h_free(&h);
}

static void test_run_agent_without_task(void **state)
{
    (void)state;
    agent_mock_script("[{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_bad\",\"name\":"
                      "\"run_agent\",\"input\":{\"task\":\"\"}}]},{\"text\":\"ok\"}]");
    agent_h_t h;
    setup(&h, 5, 0);
    assert_true(agent_h_run(&h, "Delegate nothing", 10000));
    assert_int_equal(h.code, CGW_OK);
    json_t *ev = agent_h_events(&h);
    const json_t *err = json_object_get(find_result(ev, "toolu_bad"), "error");
    assert_string_equal(str(err, "code"), "sub_agent_error");
    assert_string_equal(str(err, "message"), "run_agent needs a non-empty string \"task\"");
    json_decref(ev);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 2); /* no sub-agent was started */
    json_decref(reqs);
    agent_h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_subagents),
        cmocka_unit_test(test_subagent_max_turns),
        cmocka_unit_test(test_subagent_timeout),
        cmocka_unit_test(test_cancel_reaches_subagents),
        cmocka_unit_test(test_subagent_cannot_nest),
        cmocka_unit_test(test_run_agent_without_task),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
