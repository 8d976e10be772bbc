/* The MCP manager against the real server-everything (npm): tools, progress, structured
 * content, images, list_changed, server-to-client requests, timeouts, cancellation, and a
 * kill -9 in the middle of a call. One server instance serves the whole group. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mcp_harness.h"

static mcp_h_t H;
static int sampling_requests;

static void sampling_handler(const char *server, const char *method, const json_t *params,
                             cgw_mcp_reply_t *reply, void *user)
{
    (void)server;
    (void)params;
    (void)user;
    assert_string_equal(method, "sampling/createMessage");
    sampling_requests++;
    json_t *res =
        json_pack("{s:s,s:{s:s,s:s},s:s,s:s}", "role", "assistant", "content", "type", "text",
                  "text", "canned sampling answer", "model", "test-model", "stopReason", "endTurn");
    assert_int_equal(cgw_mcp_reply_result(reply, res), CGW_OK);
    json_decref(res);
}

static int elicitation_requests;

static void elicitation_handler(const char *server, const char *method, const json_t *params,
                                cgw_mcp_reply_t *reply, void *user)
{
    (void)server;
    (void)user;
    assert_string_equal(method, "elicitation/create");
    assert_true(json_is_object(json_object_get(params, "requestedSchema")));
    elicitation_requests++;
    json_t *res = json_pack("{s:s}", "action", "decline");
    assert_int_equal(cgw_mcp_reply_result(reply, res), CGW_OK);
    json_decref(res);
}

static int group_setup(void **state)
{
    (void)state;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{\"everything\":{\"command\":\"node\",\"args\":[\"%s\"],"
             "\"env\":{\"CGW_TEST_MARK\":\"overlay-ok\"}}}}",
             mcp_h_npm_entry("everything"));
    cgw_mcp_manager_options_t o;
    mcp_h_options(&H, &o);
    o.sampling = sampling_handler;
    o.elicitation = elicitation_handler;
    if (!mcp_h_start(&H, cfg, &o, 20000) || H.n_ready != 1) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mcp_h_stop(&H);
    /* Every server process is reaped: no running child and no zombie. */
    return mcp_h_child_count() == 0 ? 0 : -1;
}

static int has_tool(const char *name)
{
    return cgw_mcp_toolmap_find(cgw_mcp_manager_toolmap(H.mgr), name) != NULL;
}

static void test_status_and_tools(void **state)
{
    (void)state;
    cgw_mcp_server_status_t st;
    assert_int_equal(cgw_mcp_manager_server_status(H.mgr, 0, &st), CGW_OK);
    assert_string_equal(st.name, "everything");
    assert_int_equal(st.state, CGW_MCP_SERVER_READY);
    assert_string_equal(st.protocol_version, "2025-11-25");
    assert_true(st.pid > 0);
    assert_true(st.tool_count >= 13);
    assert_non_null(strstr(st.stderr_tail, "Starting default (STDIO) server"));
    assert_true(has_tool("echo") && has_tool("get-sum") && has_tool("get-tiny-image"));
    json_t *defs = cgw_mcp_manager_tool_definitions(H.mgr);
    assert_true(json_array_size(defs) >= 13);
    json_t *d = mcp_h_find_def(defs, "echo");
    assert_non_null(d);
    assert_true(json_is_object(json_object_get(d, "input_schema")));
    assert_string_equal(json_string_value(json_object_get(d, "description")),
                        "Echoes back the input string");
    json_decref(defs);
}

static void test_echo_and_sum(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "echo", "{\"message\":\"hello there\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_null(c.error);
    assert_string_equal(mcp_h_text(&c), "Echo: hello there");
    assert_string_equal(c.server, "everything");
    mcp_h_call_clear(&c);
    assert_true(mcp_h_call(&H, "get-sum", "{\"a\":2,\"b\":40}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_non_null(strstr(mcp_h_text(&c), "is 42"));
    mcp_h_call_clear(&c);
}

static void test_env_overlay(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "get-env", NULL, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    char *dump = json_dumps(c.result, JSON_COMPACT);
    /* The entry's env is there, and so is the parent's environment (PATH). */
    assert_non_null(strstr(dump, "overlay-ok"));
    assert_non_null(strstr(dump, "PATH"));
    free(dump);
    mcp_h_call_clear(&c);
}

static void test_structured_content(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(
        mcp_h_call(&H, "get-structured-content", "{\"location\":\"New York\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    /* structuredContent wins over its JSON copy in the text block. */
    assert_true(json_is_integer(json_object_get(c.result, "temperature")));
    assert_non_null(json_object_get(c.raw, "structuredContent"));
    mcp_h_call_clear(&c);
}

static void test_image_kept(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "get-tiny-image", NULL, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_true(json_is_array(c.content));
    json_t *img = json_array_get(c.content, 0);
    assert_string_equal(json_string_value(json_object_get(img, "type")), "image");
    json_t *src = json_object_get(img, "source");
    assert_string_equal(json_string_value(json_object_get(src, "media_type")), "image/png");
    assert_true(json_string_length(json_object_get(src, "data")) > 100);
    mcp_h_call_clear(&c);
}

static void test_progress(void **state)
{
    (void)state;
    mcp_h_call_t c;
    cgw_mcp_call_options_t o = {0};
    o.progress = mcp_h_count_progress;
    assert_true(mcp_h_call(&H, "trigger-long-running-operation", "{\"duration\":1,\"steps\":4}", &o,
                           &c, 10000));
    assert_int_equal(c.status, CGW_OK);
    assert_true(c.progress_count >= 3);
    assert_true(c.last_progress >= 3);
    mcp_h_call_clear(&c);
}

static int wait_tool(const char *name, int ms)
{
    for (int t = 0; t < ms && !has_tool(name); t += 20) {
        mcp_h_spin(&H, 20);
    }
    return has_tool(name);
}

static void test_list_changed_sampling_roots(void **state)
{
    (void)state;
    /* With roots and sampling declared, server-everything registers more tools after
     * initialized, each announced by notifications/tools/list_changed. */
    assert_true(wait_tool("trigger-sampling-request", 5000));
    assert_true(wait_tool("get-roots-list", 5000));
    assert_true(H.tools_changed >= 1);
    assert_true(wait_tool("trigger-elicitation-request", 5000));

    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "trigger-sampling-request", "{\"prompt\":\"hi\",\"maxTokens\":10}",
                           NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_int_equal(sampling_requests, 1);
    char *dump = json_dumps(c.raw, JSON_COMPACT);
    assert_non_null(strstr(dump, "canned sampling answer"));
    free(dump);
    mcp_h_call_clear(&c);

    assert_true(mcp_h_call(&H, "trigger-elicitation-request", NULL, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_int_equal(elicitation_requests, 1);
    dump = json_dumps(c.raw, JSON_COMPACT);
    assert_non_null(strstr(dump, "decline"));
    free(dump);
    mcp_h_call_clear(&c);

    assert_true(mcp_h_call(&H, "get-roots-list", NULL, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    dump = json_dumps(c.raw, JSON_COMPACT);
    assert_non_null(strstr(dump, "file://"));
    free(dump);
    mcp_h_call_clear(&c);
}

static void test_timeout_sends_cancel(void **state)
{
    (void)state;
    mcp_h_call_t c;
    cgw_mcp_call_options_t o = {0};
    o.timeout_ms = 300;
    o.progress = mcp_h_count_progress;
    /* Progress resets the timeout, up to 10x: 3 s with a step every 0.5 s would go on, so
     * use steps longer than the timeout. */
    assert_true(mcp_h_call(&H, "trigger-long-running-operation", "{\"duration\":3,\"steps\":2}", &o,
                           &c, 5000));
    assert_int_equal(c.status, CGW_ETIMEDOUT);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "tool_error");
    assert_string_equal(json_string_value(json_object_get(c.error, "sub_code")), "timeout");
    assert_true(c.duration_us < 1500000);
    mcp_h_call_clear(&c);
    /* The session is fine afterwards; stray progress for the dead call is dropped. */
    assert_true(mcp_h_call(&H, "echo", "{\"message\":\"after\"}", NULL, &c, 5000));
    assert_string_equal(mcp_h_text(&c), "Echo: after");
    mcp_h_call_clear(&c);
}

static void test_cancel(void **state)
{
    (void)state;
    mcp_h_call_t c;
    cgw_mcp_call_t *h = NULL;
    assert_int_equal(mcp_h_call_async(&H, "trigger-long-running-operation",
                                      "{\"duration\":2,\"steps\":2}", NULL, &c, &h),
                     CGW_OK);
    mcp_h_spin(&H, 100);
    assert_false(c.done);
    cgw_mcp_call_cancel(h);
    assert_true(c.done); /* synchronously */
    assert_int_equal(c.status, CGW_ECANCELED);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "tool_error");
    mcp_h_call_clear(&c);
    assert_true(mcp_h_call(&H, "echo", "{\"message\":\"still\"}", NULL, &c, 5000));
    assert_string_equal(mcp_h_text(&c), "Echo: still");
    mcp_h_call_clear(&c);
}

static void test_unknown_tool_and_bad_args(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "no-such-tool", NULL, NULL, &c, 1000));
    assert_int_equal(c.status, CGW_EUNKNOWNTOOL);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "unknown_tool");
    mcp_h_call_clear(&c);
    /* Bad arguments come back as an isError result. */
    assert_true(mcp_h_call(&H, "get-sum", "{\"a\":\"x\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "mcp_tool_error");
    mcp_h_call_clear(&c);
    json_t *arr = json_array();
    assert_int_equal(cgw_mcp_manager_call(H.mgr, "echo", arr, NULL, NULL, NULL, NULL), CGW_EINVAL);
    json_decref(arr);
}

/* Last in the group: kill -9 the server in the middle of a call. */
static void test_kill9_restart(void **state)
{
    (void)state;
    cgw_mcp_server_status_t st;
    cgw_mcp_manager_server_status(H.mgr, 0, &st);
    int pid = st.pid;
    size_t advertised = cgw_mcp_toolmap_count(cgw_mcp_manager_toolmap(H.mgr));
    mcp_h_call_t c;
    assert_int_equal(mcp_h_call_async(&H, "trigger-long-running-operation",
                                      "{\"duration\":5,\"steps\":5}", NULL, &c, NULL),
                     CGW_OK);
    mcp_h_spin(&H, 100);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_true(cgw_test_run_until(H.ctx, &c.done, 3000));
    assert_int_equal(c.status, CGW_ESERVERDIED);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "tool_error");
    assert_string_equal(json_string_value(json_object_get(c.error, "sub_code")),
                        "connection_error");
    assert_non_null(strstr(json_string_value(json_object_get(c.error, "message")), "signal 9"));
    mcp_h_call_clear(&c);
    /* Tools stay advertised while it restarts. */
    assert_true(H.restarting_seen);
    assert_int_equal(H.tools_while_restarting, advertised);
    assert_true(mcp_h_wait_state(&H, 0, CGW_MCP_SERVER_READY, 10000));
    cgw_mcp_manager_server_status(H.mgr, 0, &st);
    assert_int_equal(st.restarts, 1);
    assert_true(st.pid > 0 && st.pid != pid);
    assert_true(st.errors >= 1);
    assert_true(mcp_h_call(&H, "echo", "{\"message\":\"back\"}", NULL, &c, 5000));
    assert_string_equal(mcp_h_text(&c), "Echo: back");
    mcp_h_call_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_tools),
        cmocka_unit_test(test_echo_and_sum),
        cmocka_unit_test(test_env_overlay),
        cmocka_unit_test(test_structured_content),
        cmocka_unit_test(test_image_kept),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_list_changed_sampling_roots),
        cmocka_unit_test(test_timeout_sends_cancel),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_unknown_tool_and_bad_args),
        cmocka_unit_test(test_kill9_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
