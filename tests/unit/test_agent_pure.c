/* The pure parts of the agent: prices and cost, the tool_result block rules, the approval
 * nonce, the session approvals' answer errors, the dispatcher's registration checks and
 * routing errors without any server. */
#include <ctype.h>
#include <string.h>

#include <event2/event.h>

#include "testutil.h"

/* ---- cost ------------------------------------------------------------------------------- */

static void test_cost_default_table(void **state)
{
    (void)state;
    cgw_usage_t u = {.input_tokens = 1000000, .output_tokens = 1000000};
    assert_float_equal(cgw_usage_cost(NULL, "claude-sonnet-4-6", &u), 18.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, "claude-opus-4-1-20250805", &u), 90.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, "claude-opus-4-5", &u), 30.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, "claude-haiku-4-5", &u), 6.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, "claude-3-5-haiku-latest", &u), 4.8, 1e-9);
    /* Unknown models fall back to Sonnet prices. */
    assert_float_equal(cgw_usage_cost(NULL, "some-other-model", &u), 18.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, NULL, &u), 18.0, 1e-9);
    assert_float_equal(cgw_usage_cost(NULL, "x", NULL), 0.0, 0);
    /* The longest match wins. */
    assert_string_equal(cgw_price_for(NULL, "claude-opus-4-6")->match, "opus-4-6");
    assert_string_equal(cgw_price_for(NULL, "claude-opus-4")->match, "opus-4");
}

static void test_cost_cache_tokens(void **state)
{
    (void)state;
    /* input_tokens excludes cached tokens: nothing is subtracted. */
    cgw_usage_t u = {.input_tokens = 1000,
                     .output_tokens = 500,
                     .cache_creation_input_tokens = 2000,
                     .cache_read_input_tokens = 10000};
    assert_float_equal(cgw_usage_cost(NULL, "claude-sonnet-4-6", &u), 0.021, 1e-12);
    /* 1-hour writes at 2x input, the rest at 1.25x. */
    u.cache_creation_1h_tokens = 1000;
    assert_float_equal(cgw_usage_cost(NULL, "claude-sonnet-4-6", &u),
                       (1000 * 3 + 500 * 15 + 1000 * 3.75 + 1000 * 6.0 + 10000 * 0.3) / 1e6, 1e-12);
    /* A 1h count above the total is clamped. */
    u.cache_creation_1h_tokens = 99999;
    assert_float_equal(cgw_usage_cost(NULL, "claude-sonnet-4-6", &u),
                       (1000 * 3 + 500 * 15 + 2000 * 6.0 + 10000 * 0.3) / 1e6, 1e-12);
}

static void test_cost_custom_table(void **state)
{
    (void)state;
    static const cgw_model_price_t entries[] = {{"m1", 1, 2, 3, 4, 5},
                                                {"m1-big", 10, 20, 30, 40, 50}};
    static const cgw_model_price_t fallback = {"", 100, 100, 100, 100, 100};
    cgw_price_table_t t = {entries, 2, &fallback};
    cgw_usage_t u = {.input_tokens = 1,
                     .output_tokens = 1,
                     .cache_creation_input_tokens = 1,
                     .cache_read_input_tokens = 1};
    assert_float_equal(cgw_usage_cost(&t, "m1", &u), (1 + 2 + 3 + 5) / 1e6, 1e-15);
    assert_float_equal(cgw_usage_cost(&t, "m1-big-2", &u), (10 + 20 + 30 + 50) / 1e6, 1e-15);
    assert_float_equal(cgw_usage_cost(&t, "zzz", &u), 400 / 1e6, 1e-15);
    t.fallback = NULL; /* then the built-in Sonnet prices */
    assert_float_equal(cgw_usage_cost(&t, "zzz", &u), (3 + 15 + 3.75 + 0.3) / 1e6, 1e-15);
    assert_non_null(cgw_price_table_default()->entries);
}

/* ---- tool_result blocks ----------------------------------------------------------------- */

static const char *content(const json_t *b)
{
    return json_string_value(json_object_get(b, "content"));
}

static void test_result_block_success(void **state)
{
    (void)state;
    json_t *r = json_pack("{s:i, s:s, s:[i,i], s:{}}", "a", 1, "b", "caf\xc3\xa9 \xf0\x9f\x98\x80",
                          "c", 1, 2, "d");
    bool is_error = true;
    json_t *b = cgw_tool_result_block("toolu_1", r, NULL, &is_error);
    assert_false(is_error);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "tool_result");
    assert_string_equal(json_string_value(json_object_get(b, "tool_use_id")), "toolu_1");
    /* Python json.dumps: ", " / ": ", keys in order, \u escapes in lower case, surrogates. */
    assert_string_equal(
        content(b), "{\"a\": 1, \"b\": \"caf\\u00e9 \\ud83d\\ude00\", \"c\": [1, 2], \"d\": {}}");
    assert_null(json_object_get(b, "is_error"));
    json_decref(b);
    json_decref(r);
    /* Scalars and strings are JSON text too; a backslash before 'u' is not an escape. */
    json_t *s = json_string("x\\u00AB");
    b = cgw_tool_result_block("t", s, NULL, NULL);
    assert_string_equal(content(b), "\"x\\\\u00AB\"");
    json_decref(b);
    json_decref(s);
    json_t *n = json_integer(42);
    b = cgw_tool_result_block("t", n, NULL, NULL);
    assert_string_equal(content(b), "42");
    json_decref(b);
    json_decref(n);
}

static void test_result_block_soft_errors(void **state)
{
    (void)state;
    const char *soft[] = {"{\"success\": false}", "{\"status\": \"error\", \"x\": 1}"};
    const char *fine[] = {"{\"success\": true}", "{\"status\": \"ok\"}", "{\"success\": 0}",
                          "[false]"};
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_loads(soft[i], 0, NULL);
        bool is_error = false;
        json_t *b = cgw_tool_result_block("t", r, NULL, &is_error);
        assert_true(is_error);
        assert_true(json_is_true(json_object_get(b, "is_error")));
        assert_string_equal(content(b), soft[i]);
        json_decref(b);
        json_decref(r);
    }
    for (size_t i = 0; i < 4; i++) {
        json_t *r = json_loads(fine[i], 0, NULL);
        bool is_error = true;
        json_t *b = cgw_tool_result_block("t", r, NULL, &is_error);
        assert_false(is_error);
        assert_null(json_object_get(b, "is_error"));
        json_decref(b);
        json_decref(r);
    }
}

static void test_result_block_errors(void **state)
{
    (void)state;
    json_t *e = json_pack("{s:s, s:s, s:s, s:i}", "code", "mcp_tool_error", "message", "boom",
                          "sub_code", "isError", "extra", 1);
    bool is_error = false;
    json_t *b = cgw_tool_result_block("t", NULL, e, &is_error);
    assert_true(is_error);
    assert_true(json_is_true(json_object_get(b, "is_error")));
    assert_string_equal(content(b), "{\"error\": {\"code\": \"mcp_tool_error\", \"message\": "
                                    "\"boom\", \"sub_code\": \"isError\"}}");
    json_decref(b);
    json_decref(e);
    /* Defaults: code tool_error, message "Tool failed". */
    json_t *empty = json_object();
    b = cgw_tool_result_block("t", NULL, empty, NULL);
    assert_string_equal(content(b),
                        "{\"error\": {\"code\": \"tool_error\", \"message\": \"Tool failed\"}}");
    json_decref(b);
    json_decref(empty);
    /* An error wins over a result. */
    json_t *r = json_pack("{s:b}", "ok", 1);
    json_t *e2 = json_pack("{s:s, s:s}", "code", "cancelled", "message", "Task was cancelled");
    b = cgw_tool_result_block("t", r, e2, NULL);
    assert_non_null(strstr(content(b), "cancelled"));
    json_decref(b);
    json_decref(r);
    json_decref(e2);
}

/* ---- nonce, approvals, dispatcher ------------------------------------------------------- */

static void test_nonce(void **state)
{
    (void)state;
    char a[17], b[17];
    assert_int_equal(cgw_approval_nonce(a), CGW_OK);
    assert_int_equal(cgw_approval_nonce(b), CGW_OK);
    assert_int_equal(strlen(a), 16);
    for (size_t i = 0; i < 16; i++) {
        assert_true(isxdigit((unsigned char)a[i]));
        assert_false(isupper((unsigned char)a[i]));
    }
    assert_string_not_equal(a, b);
    assert_int_equal(cgw_approval_nonce(NULL), CGW_EINVAL);
}

static void test_approvals_set(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_approvals_t *a = NULL;
    assert_int_equal(cgw_approvals_new(NULL, &a), CGW_EINVAL);
    assert_int_equal(cgw_approvals_new(ctx, &a), CGW_OK);
    assert_false(cgw_approvals_is_allowed(a, "x"));
    assert_int_equal(cgw_approvals_allow(a, "x"), CGW_OK);
    assert_true(cgw_approvals_is_allowed(a, "x"));
    assert_false(cgw_approvals_is_allowed(a, NULL));
    assert_int_equal(cgw_approvals_allow(a, NULL), CGW_EINVAL);
    assert_int_equal(cgw_approvals_answer(a, "nope", "0123456789abcdef", true, false), CGW_ENOENT);
    assert_int_equal(cgw_approvals_answer(a, NULL, "n", true, false), CGW_EINVAL);
    assert_int_equal(cgw_approvals_pending_count(a), 0);
    cgw_approvals_free(a);
    cgw_approvals_free(NULL);
    cgw_ctx_free(ctx);
}

static json_t *sync_ok(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)call;
    (void)error;
    (void)user;
    return json_string("ok");
}

static void h_async(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    (void)call;
    (void)user;
    cgw_tool_fail(done, NULL, NULL);
}

typedef struct outcome {
    int done;
    json_t *result, *error;
} outcome_t;

static void on_outcome(const cgw_tool_outcome_t *o, void *user)
{
    outcome_t *out = user;
    out->done = 1;
    out->result = o->result ? json_incref((json_t *)o->result) : NULL;
    out->error = o->error ? json_incref((json_t *)o->error) : NULL;
}

static void dispatch_one(cgw_ctx_t *ctx, cgw_dispatcher_t *d, const char *name, outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    cgw_tool_call_t call = {.tool_call_id = "toolu_1", .tool_name = name};
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, out, NULL), CGW_OK);
    assert_int_equal(out->done, 0); /* never inside dispatch */
    assert_true(cgw_test_run_until(ctx, &out->done, 2000));
}

static void test_dispatcher_local_and_errors(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_dispatcher_t *d = NULL;
    assert_int_equal(cgw_dispatcher_new(ctx, NULL, &d), CGW_OK);
    cgw_tool_def_t both = {.name = "x", .handler = h_async, .sync_handler = sync_ok};
    assert_int_equal(cgw_dispatcher_add_tool(d, &both), CGW_EINVAL);
    cgw_tool_def_t none = {.name = "x"};
    assert_int_equal(cgw_dispatcher_add_tool(d, &none), CGW_EINVAL);
    cgw_tool_def_t bad_schema = {.name = "x", .sync_handler = sync_ok, .input_schema_json = "[1]"};
    assert_int_equal(cgw_dispatcher_add_tool(d, &bad_schema), CGW_EINVAL);
    cgw_tool_def_t garbage = {.name = "x", .sync_handler = sync_ok, .input_schema_json = "{"};
    assert_int_equal(cgw_dispatcher_add_tool(d, &garbage), CGW_EINVAL);
    assert_int_equal(cgw_dispatcher_add_sync(d, "", sync_ok, NULL), CGW_EINVAL);
    assert_int_equal(cgw_dispatcher_add_sync(d, "ok", sync_ok, NULL), CGW_OK);
    assert_int_equal(cgw_dispatcher_add_handler(d, "fails", h_async, NULL), CGW_OK);
    assert_true(cgw_dispatcher_has_local(d, "ok"));
    assert_null(cgw_dispatcher_server_for(d, "ok"));
    assert_non_null(cgw_dispatcher_approvals(d)); /* a private one */

    json_t *defs = cgw_dispatcher_tool_definitions(d);
    assert_int_equal(json_array_size(defs), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(defs, 0), "input_schema"), "type")),
                        "object");
    json_decref(defs);

    outcome_t o;
    dispatch_one(ctx, d, "ok", &o);
    assert_string_equal(json_string_value(o.result), "ok");
    json_decref(o.result);
    dispatch_one(ctx, d, "fails", &o);
    assert_string_equal(json_string_value(json_object_get(o.error, "code")), "tool_error");
    assert_string_equal(json_string_value(json_object_get(o.error, "message")), "Tool failed");
    json_decref(o.error);
    dispatch_one(ctx, d, "missing", &o);
    assert_string_equal(json_string_value(json_object_get(o.error, "code")), "unknown_tool");
    assert_string_equal(json_string_value(json_object_get(o.error, "message")),
                        "Unknown tool: missing");
    json_decref(o.error);

    /* Bad calls are refused up front. */
    cgw_tool_call_t call = {.tool_call_id = "t", .tool_name = "ok"};
    json_t *arr = json_array();
    call.input = arr;
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, &o, NULL), CGW_EINVAL);
    json_decref(arr);
    call.input = NULL;
    call.tool_name = NULL;
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, &o, NULL), CGW_EINVAL);

    /* Cancel before it ran: the outcome comes at once, as cancelled. */
    cgw_dispatch_t *handle = NULL;
    call.tool_name = "ok";
    memset(&o, 0, sizeof(o));
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, &o, &handle), CGW_OK);
    cgw_dispatch_cancel(handle);
    assert_int_equal(o.done, 1);
    assert_string_equal(json_string_value(json_object_get(o.error, "code")), "cancelled");
    json_decref(o.error);
    cgw_dispatcher_free(d);
    cgw_ctx_free(ctx);
}

/* A dispatch still pending when the dispatcher is freed completes (cancelled) then. */
static void never(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    (void)call;
    *(cgw_tool_completion_t **)user = done;
}

/* A dispatcher with the handler "never" and one call to it in flight (timeout_ms 0: none). */
static cgw_dispatcher_t *dispatch_never(cgw_ctx_t *ctx, uint32_t timeout_ms,
                                        cgw_tool_completion_t **held, outcome_t *o)
{
    cgw_dispatcher_t *d = NULL;
    assert_int_equal(cgw_dispatcher_new(ctx, NULL, &d), CGW_OK);
    *held = NULL;
    assert_int_equal(cgw_dispatcher_add_handler(d, "never", never, held), CGW_OK);
    memset(o, 0, sizeof(*o));
    cgw_tool_call_t call = {.tool_call_id = "t", .tool_name = "never", .timeout_ms = timeout_ms};
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, o, NULL), CGW_OK);
    return d;
}

static void test_dispatcher_free_cancels(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_tool_completion_t *held;
    outcome_t o;
    cgw_dispatcher_t *d = dispatch_never(ctx, 0, &held, &o);
    int spin = 0;
    cgw_test_run_until(ctx, &spin, 20);
    assert_non_null(held);
    assert_non_null(cgw_tool_completion_call(held));
    cgw_dispatcher_free(d);
    assert_int_equal(o.done, 1);
    assert_string_equal(json_string_value(json_object_get(o.error, "code")), "cancelled");
    json_decref(o.error);
    /* Without a cancel callback the handle outlives the call; a late answer is dropped. */
    assert_null(cgw_tool_completion_call(held));
    assert_int_equal(cgw_tool_progress(held, 1, 2, true, "x"), CGW_ECANCELED);
    assert_int_equal(cgw_tool_complete(held, NULL), CGW_OK);
    cgw_ctx_free(ctx);
}

static void test_tool_timeout(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_tool_completion_t *held;
    outcome_t o;
    cgw_dispatcher_t *d = dispatch_never(ctx, 50, &held, &o);
    assert_true(cgw_test_run_until(ctx, &o.done, 2000));
    assert_string_equal(json_string_value(json_object_get(o.error, "code")), "tool_timeout");
    assert_string_equal(json_string_value(json_object_get(o.error, "sub_code")), "timeout");
    assert_string_equal(json_string_value(json_object_get(o.error, "message")),
                        "Tool 'never' timed out after 0.05s. The tool call was cancelled. You may "
                        "retry or skip this tool.");
    json_decref(o.error);
    assert_int_equal(cgw_tool_complete(held, NULL), CGW_OK);
    cgw_dispatcher_free(d);
    cgw_ctx_free(ctx);
}

static void progressing(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    (void)user;
    assert_int_equal(cgw_tool_completion_call(done)->call_index, call->call_index);
    assert_int_equal(cgw_tool_progress(done, 1, 4, true, "a quarter"), CGW_OK);
    assert_int_equal(cgw_tool_progress(done, 2, 0, false, NULL), CGW_OK);
    json_t *r = json_pack("{s:b}", "done", 1);
    assert_int_equal(cgw_tool_complete(done, r), CGW_OK);
    json_decref(r);
}

static void test_local_progress_events(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, NULL, &log), CGW_OK);
    cgw_dispatcher_t *d = NULL;
    assert_int_equal(cgw_dispatcher_new(ctx, NULL, &d), CGW_OK);
    assert_int_equal(cgw_dispatcher_add_handler(d, "p", progressing, NULL), CGW_OK);
    outcome_t o = {0};
    cgw_tool_call_t call = {.tool_call_id = "toolu_p",
                            .tool_name = "p",
                            .call_index = 3,
                            .log = log,
                            .agent_id = "sub0:s",
                            .parent_tool_call_id = "toolu_parent"};
    assert_int_equal(cgw_dispatcher_dispatch(d, &call, on_outcome, &o, NULL), CGW_OK);
    assert_true(cgw_test_run_until(ctx, &o.done, 2000));
    assert_true(json_is_true(json_object_get(o.result, "done")));
    json_decref(o.result);
    assert_int_equal(cgw_eventlog_last_seq(log), 2);
    cgw_eventlog_entry_t e;
    json_t *ev = NULL;
    assert_int_equal(cgw_eventlog_get(log, 1, &e), CGW_OK);
    assert_int_equal(cgw_eventlog_entry_event(&e, &ev), CGW_OK);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "tool_progress");
    assert_string_equal(json_string_value(json_object_get(ev, "tool_call_id")), "toolu_p");
    assert_float_equal(json_number_value(json_object_get(ev, "progress")), 1, 0);
    assert_float_equal(json_number_value(json_object_get(ev, "total")), 4, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "message")), "a quarter");
    assert_string_equal(json_string_value(json_object_get(ev, "agent_id")), "sub0:s");
    assert_string_equal(json_string_value(json_object_get(ev, "parent_tool_call_id")),
                        "toolu_parent");
    json_decref(ev);
    assert_int_equal(cgw_eventlog_get(log, 2, &e), CGW_OK);
    assert_int_equal(cgw_eventlog_entry_event(&e, &ev), CGW_OK);
    assert_true(json_is_null(json_object_get(ev, "total")));
    assert_true(json_is_null(json_object_get(ev, "message")));
    json_decref(ev);
    cgw_dispatcher_free(d);
    cgw_eventlog_free(log);
    cgw_ctx_free(ctx);
}

static void test_runner_options(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_runner_options_t o;
    cgw_runner_options_init(&o);
    assert_int_equal(o.max_parallel_tools, 8);
    assert_int_equal(o.tool_timeout_ms, 120000);
    assert_int_equal(o.stub_delay_ms, 50);
    cgw_runner_t *r = NULL;
    assert_int_equal(cgw_runner_new(ctx, &o, &r, NULL), CGW_EINVAL); /* no log */
    cgw_eventlog_t *log = NULL;
    assert_int_equal(cgw_eventlog_new(ctx, NULL, &log), CGW_OK);
    o.log = log;
    o.max_turns = -1;
    assert_int_equal(cgw_runner_new(ctx, &o, &r, NULL), CGW_EINVAL);
    o.max_turns = 0;
    assert_int_equal(cgw_runner_new(ctx, &o, &r, NULL), CGW_OK);
    assert_string_equal(cgw_runner_session_id(r), "no-session");
    assert_false(cgw_runner_running(r));
    assert_int_equal(cgw_runner_cancel(r), CGW_ESTATE);
    cgw_conversation_t *conv = NULL;
    assert_int_equal(cgw_conversation_new(&conv), CGW_OK);
    assert_int_equal(cgw_runner_run(r, conv, NULL, NULL), CGW_EINVAL); /* empty */
    assert_int_equal(cgw_conversation_append_text(conv, "user", "hi"), CGW_OK);
    cgw_eventlog_close(log, NULL);
    assert_int_equal(cgw_runner_run(r, conv, NULL, NULL), CGW_ECLOSED);
    cgw_sub_agent_config_t sc;
    cgw_sub_agent_config_init(&sc);
    assert_int_equal(sc.max_turns, 15);
    assert_int_equal(sc.timeout_ms, 300000);
    json_t *def = cgw_run_agent_tool_definition();
    assert_string_equal(json_string_value(json_object_get(def, "name")), "run_agent");
    json_decref(def);
    cgw_runner_free(r);
    cgw_runner_free(NULL);
    cgw_conversation_free(conv);
    cgw_eventlog_free(log);
    cgw_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cost_default_table),
        cmocka_unit_test(test_cost_cache_tokens),
        cmocka_unit_test(test_cost_custom_table),
        cmocka_unit_test(test_result_block_success),
        cmocka_unit_test(test_result_block_soft_errors),
        cmocka_unit_test(test_result_block_errors),
        cmocka_unit_test(test_nonce),
        cmocka_unit_test(test_approvals_set),
        cmocka_unit_test(test_dispatcher_local_and_errors),
        cmocka_unit_test(test_dispatcher_free_cancels),
        cmocka_unit_test(test_tool_timeout),
        cmocka_unit_test(test_local_progress_events),
        cmocka_unit_test(test_runner_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
