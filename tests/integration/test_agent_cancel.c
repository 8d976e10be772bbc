/*
 * Cancelling runs and losing tools, against `claude-gateway mock-api` and server-everything:
 * cancel mid-stream (the stream is dropped, the log ends with error "cancelled", the
 * conversation is rolled back); cancel mid-tool (an MCP call in flight gets
 * notifications/cancelled, seen on the wire through `tee`; a local handler gets its cancel
 * callback; each reports tool_result "cancelled"); an MCP server killed in the middle of a
 * call (the call fails, the run goes on and completes).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "agent_harness.h"

static char g_dir[256];

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/cgw-agent-cancel-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        return -1;
    }
    return agent_mock_start();
}

static int group_teardown(void **state)
{
    (void)state;
    agent_mock_stop();
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    int rc = system(cmd);
    (void)rc;
    return mcp_h_child_count() == 0 ? 0 : -1;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Runs the loop until the log has an event of `type` (or timeout). */
typedef struct waiter {
    const agent_h_t *h;
    const char *type;
    int found;
} waiter_t;

static void check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    waiter_t *w = arg;
    uint64_t last = cgw_eventlog_last_seq(w->h->log);
    for (uint64_t s = 1; s <= last && !w->found; s++) {
        cgw_eventlog_entry_t e;
        if (cgw_eventlog_get(w->h->log, s, &e) == CGW_OK && e.type.len == strlen(w->type) &&
            memcmp(e.type.ptr, w->type, e.type.len) == 0) {
            w->found = 1;
        }
    }
}

static int wait_event(const agent_h_t *h, const char *type, int timeout_ms)
{
    waiter_t w = {h, type, 0};
    struct event *t = event_new(cgw_ctx_base(h->ctx), -1, EV_PERSIST, check_cb, &w);
    struct timeval tv = {0, 5000};
    event_add(t, &tv);
    int ok = cgw_test_run_until(h->ctx, &w.found, timeout_ms);
    event_free(t);
    return ok;
}

static void test_cancel_mid_stream(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"delay_ms\":100,\"content\":[{\"type\":\"text\",\"deltas\":["
                         "\"one \",\"two \",\"three \",\"four \",\"five \",\"six \",\"seven \","
                         "\"eight \",\"nine \",\"ten\"]}]}]");
    agent_h_start(&h, "count to ten");
    assert_true(wait_event(&h, "text_delta", 5000));
    assert_true(cgw_runner_running(h.runner));
    assert_int_equal(cgw_runner_cancel(h.runner), CGW_OK);
    assert_int_equal(cgw_runner_cancel(h.runner), CGW_ESTATE); /* once */
    assert_true(cgw_test_run_until(h.ctx, &h.done, 2000));
    assert_int_equal(h.code, CGW_ECANCELED);
    json_t *ev = agent_h_events(&h);
    const json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    assert_string_equal(str(last, "type"), "error");
    assert_string_equal(str(last, "code"), "cancelled");
    assert_true(cgw_eventlog_closed(h.log));
    json_t *deltas = agent_h_filter(ev, "text_delta");
    assert_true(json_array_size(deltas) < 10);
    json_decref(deltas);
    json_decref(ev);
    assert_int_equal(cgw_conversation_count(h.conv), 1);
    /* The transfer is gone: spinning longer adds nothing to the (closed) log. */
    uint64_t seq = cgw_eventlog_last_seq(h.log);
    int never = 0;
    cgw_test_run_until(h.ctx, &never, 300);
    assert_int_equal(cgw_eventlog_last_seq(h.log), seq);
    agent_h_free(&h);
}

/* A local tool that never answers on its own. */
static int g_cancelled;
static void on_cancel(void *user)
{
    (void)user;
    g_cancelled++;
}

static void forever(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    (void)call;
    (void)user;
    cgw_tool_on_cancel(done, on_cancel, NULL);
}

static int count_in_file(const char *path, const char *needle)
{
    char *text = cgw_test_read_file(path, NULL);
    int n = 0;
    for (const char *s = text; s != NULL && (s = strstr(s, needle)) != NULL; s++) {
        n++;
    }
    free(text);
    return n;
}

static void test_cancel_mid_tool(void **state)
{
    (void)state;
    char cfg[2048], wire[512];
    snprintf(wire, sizeof(wire), "%s/everything.in", g_dir);
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{\"everything\":{\"command\":\"sh\",\"args\":[\"-c\",\"tee %s | "
             "exec node %s\"]}}}",
             wire, mcp_h_npm_entry("everything"));
    agent_mock_script("[{\"content\":["
                      "{\"type\":\"tool_use\",\"id\":\"toolu_long\",\"name\":"
                      "\"trigger-long-running-operation\",\"input\":{\"duration\":5,\"steps\":50}},"
                      "{\"type\":\"tool_use\",\"id\":\"toolu_local\",\"name\":\"forever\","
                      "\"input\":{}}]}]");
    agent_h_t h;
    agent_h_init(&h, cfg, 1);
    agent_h_dispatcher(&h, NULL);
    assert_int_equal(cgw_dispatcher_add_handler(h.disp, "forever", forever, NULL), CGW_OK);
    agent_h_runner(&h, NULL);
    g_cancelled = 0;
    agent_h_start(&h, "start both");
    assert_true(wait_event(&h, "tool_progress", 10000)); /* the MCP call is running */
    assert_int_equal(cgw_runner_cancel(h.runner), CGW_OK);
    assert_int_equal(g_cancelled, 1);
    assert_true(cgw_test_run_until(h.ctx, &h.done, 2000));
    assert_int_equal(h.code, CGW_ECANCELED);

    json_t *ev = agent_h_events(&h);
    json_t *prog = agent_h_filter(ev, "tool_progress");
    assert_string_equal(str(json_array_get(prog, 0), "tool_call_id"), "toolu_long");
    assert_true(json_is_number(json_object_get(json_array_get(prog, 0), "progress")));
    json_decref(prog);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 2);
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r)
    {
        assert_string_equal(str(json_object_get(r, "error"), "code"), "cancelled");
        assert_string_equal(str(json_object_get(r, "error"), "message"), "Task was cancelled");
    }
    json_decref(res);
    const json_t *last = json_array_get(ev, json_array_size(ev) - 1);
    assert_string_equal(str(last, "type"), "error");
    assert_string_equal(str(last, "code"), "cancelled");
    json_decref(ev);
    /* The server was told. */
    int never = 0;
    cgw_test_run_until(h.ctx, &never, 200);
    assert_int_equal(count_in_file(wire, "\"method\":\"notifications/cancelled\""), 1);
    json_t *reqs = agent_mock_requests();
    assert_int_equal(agent_mock_message_count(reqs), 1);
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_mcp_server_killed_mid_run(void **state)
{
    (void)state;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{\"everything\":{\"command\":\"node\",\"args\":[\"%s\"]}}}",
             mcp_h_npm_entry("everything"));
    agent_mock_script("[{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_long\",\"name\":"
                      "\"trigger-long-running-operation\",\"input\":{\"duration\":5,\"steps\":50}}"
                      "]},{\"text\":\"recovered\"}]");
    agent_h_t h;
    agent_h_init(&h, cfg, 1);
    agent_h_dispatcher(&h, NULL);
    agent_h_runner(&h, NULL);
    agent_h_start(&h, "run long");
    assert_true(wait_event(&h, "tool_progress", 10000));
    cgw_mcp_server_status_t st;
    assert_int_equal(cgw_mcp_manager_server_status(h.mcp.mgr, 0, &st), CGW_OK);
    assert_true(st.pid > 0);
    assert_int_equal(kill(st.pid, SIGKILL), 0);
    assert_true(cgw_test_run_until(h.ctx, &h.done, 10000));
    assert_int_equal(h.code, CGW_OK);
    json_t *ev = agent_h_events(&h);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 1);
    const json_t *r = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(r, "is_error")));
    assert_string_equal(str(r, "server"), "everything");
    assert_non_null(str(json_object_get(r, "error"), "code"));
    json_decref(res);
    char *text = agent_h_text(ev);
    assert_string_equal(text, "recovered");
    free(text);
    json_decref(ev);
    /* The model was told in a tool_result with is_error. */
    json_t *reqs = agent_mock_requests();
    const json_t *user = agent_mock_content(reqs, 1, 2);
    assert_true(json_is_true(json_object_get(json_array_get(user, 0), "is_error")));
    json_decref(reqs);
    agent_h_free(&h);
}

static void test_log_closed_mid_stream(void **state)
{
    (void)state;
    agent_h_t h;
    agent_h_scripted(&h, "[{\"delay_ms\":100,\"content\":[{\"type\":\"text\",\"deltas\":["
                         "\"one \",\"two \",\"three \",\"four \",\"five \",\"six\"]}]}]");
    agent_h_start(&h, "count");
    assert_true(wait_event(&h, "text_delta", 5000));
    /* The owner closes the log (the session went away): the run stops by itself. */
    assert_int_equal(cgw_eventlog_close(h.log, "session closed"), CGW_OK);
    assert_true(cgw_test_run_until(h.ctx, &h.done, 2000));
    assert_int_equal(h.code, CGW_ECLOSED);
    assert_false(cgw_runner_running(h.runner));
    assert_int_equal(cgw_conversation_count(h.conv), 1);
    agent_h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_mid_stream),
        cmocka_unit_test(test_cancel_mid_tool),
        cmocka_unit_test(test_mcp_server_killed_mid_run),
        cmocka_unit_test(test_log_closed_mid_stream),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
