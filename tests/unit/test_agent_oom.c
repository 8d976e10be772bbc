/* Allocation failure in the agent code: for k = 0, 1, 2, ... the k-th allocation and every one
 * after it fail (cgw_set_allocator, shared with jansson; libevent keeps the system allocator,
 * so the loop itself still runs). Each scenario must then end cleanly: an error code or an
 * error outcome, never a crash or a hang, and nothing leaked (the ASan run checks that). */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "testutil.h"

static long g_left = -1; /* allocations still allowed; -1 = unlimited */
static long g_refused;

static bool refuse(void)
{
    if (g_left == 0) {
        g_refused++;
        return true;
    }
    if (g_left > 0) {
        g_left--;
    }
    return false;
}

static void *oom_malloc(size_t n)
{
    return refuse() ? NULL : malloc(n);
}

static void *oom_realloc(void *p, size_t n)
{
    return refuse() ? NULL : realloc(p, n);
}

/* A scenario returns CGW_OK when it did all its work, another code when an allocation
 * failure stopped it. */
typedef int (*scenario_fn)(cgw_ctx_t *ctx);

/* Runs `fn` with allocation k failing, for every k until one run never hits a failure, which
 * must then succeed. Returns the number of failure points exercised. */
static long sweep(scenario_fn fn)
{
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    assert_non_null(ctx);
    cgw_ctx_set_log_level(ctx, CGW_LOG_OFF); /* "event not logged: out of memory", many times */
    long k = 0;
    for (;; k++) {
        g_refused = 0;
        g_left = k;
        int rc = fn(ctx);
        g_left = -1;
        if (g_refused == 0) {
            assert_int_equal(rc, CGW_OK);
            break;
        }
        /* Whatever happened, the loop must be quiet again: nothing left scheduled. */
        assert_int_equal(event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK), 1);
    }
    cgw_ctx_free(ctx);
    return k;
}

/* ---- scenarios -------------------------------------------------------------------------- */

static int scenario_result_block(cgw_ctx_t *ctx)
{
    (void)ctx;
    json_t *r = json_pack("{s:s, s:[i,i], s:b}", "name", "caf\xc3\xa9", "list", 1, 2, "success", 0);
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "x", "message", "y", "sub_code", "z");
    int rc = r && e ? CGW_OK : CGW_ENOMEM;
    json_t *b1 = rc == CGW_OK ? cgw_tool_result_block("t", r, NULL, NULL) : NULL;
    json_t *b2 = rc == CGW_OK ? cgw_tool_result_block("t", NULL, e, NULL) : NULL;
    rc = b1 && b2 ? rc : CGW_ENOMEM;
    json_decref(b1);
    json_decref(b2);
    json_decref(r);
    json_decref(e);
    return rc;
}

static int scenario_approvals(cgw_ctx_t *ctx)
{
    cgw_approvals_t *a = NULL;
    int rc = cgw_approvals_new(ctx, &a);
    rc = rc ? rc : cgw_approvals_allow(a, "tool-a");
    rc = rc ? rc : (cgw_approvals_is_allowed(a, "tool-a") ? CGW_OK : CGW_EINVAL);
    cgw_approvals_free(a);
    return rc;
}

typedef struct outcome {
    int done;
    bool ok;
} outcome_t;

static void on_outcome(const cgw_tool_outcome_t *o, void *user)
{
    outcome_t *out = user;
    assert_true((o->result == NULL) != (o->error == NULL));
    out->done = 1;
    out->ok = o->result != NULL;
}

static json_t *sync_tool(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)user;
    (void)error;
    return json_pack("{s:O}", "echo", call->input);
}

static void async_tool(const cgw_tool_call_t *call, cgw_tool_completion_t *done, void *user)
{
    (void)call;
    (void)user;
    cgw_tool_progress(done, 1, 2, true, "half");
    json_t *r = json_string("async result");
    if (r == NULL) {
        cgw_tool_fail(done, "tool_error", "no memory");
        return;
    }
    cgw_tool_complete(done, r);
    json_decref(r);
}

static bool needs(const char *name, const json_t *input, void *user)
{
    (void)input;
    (void)user;
    return strcmp(name, "async") == 0;
}

static void approve(const cgw_approval_request_t *req, void *user)
{
    (void)user;
    cgw_approvals_answer(req->approvals, req->tool_call_id, req->nonce, true, true);
}

static int scenario_dispatch(cgw_ctx_t *ctx)
{
    cgw_eventlog_t *log = NULL;
    cgw_dispatcher_t *d = NULL;
    cgw_dispatcher_options_t o;
    cgw_dispatcher_options_init(&o);
    o.needs_approval = needs;
    o.request_approval = approve;
    int rc = cgw_eventlog_new(ctx, NULL, &log);
    rc = rc ? rc : cgw_dispatcher_new(ctx, &o, &d);
    rc = rc ? rc : cgw_dispatcher_add_sync(d, "sync", sync_tool, NULL);
    rc = rc ? rc : cgw_dispatcher_add_handler(d, "async", async_tool, NULL);
    json_t *defs = rc == CGW_OK ? cgw_dispatcher_tool_definitions(d) : NULL;
    rc = rc ? rc : (json_array_size(defs) == 2 ? CGW_OK : CGW_ENOMEM);
    json_decref(defs);
    json_t *input = rc == CGW_OK ? json_pack("{s:i}", "n", 1) : NULL;
    rc = rc ? rc : (input ? CGW_OK : CGW_ENOMEM);
    outcome_t out[3] = {{0}};
    const char *names[3] = {"sync", "async", "nope"};
    int started = 0;
    for (int i = 0; rc == CGW_OK && i < 3; i++) {
        cgw_tool_call_t call = {.tool_call_id = names[i],
                                .tool_name = names[i],
                                .input = input,
                                .log = log,
                                .timeout_ms = 1000};
        rc = cgw_dispatcher_dispatch(d, &call, on_outcome, &out[i], NULL);
        started += rc == CGW_OK;
    }
    for (int i = 0; i < started; i++) {
        assert_true(cgw_test_run_until(ctx, &out[i].done, 2000));
    }
    if (rc == CGW_OK && !(out[0].ok && out[1].ok && !out[2].ok)) {
        rc = CGW_ENOMEM; /* an outcome was an internal_error for lack of memory */
    }
    json_decref(input);
    cgw_dispatcher_free(d);
    cgw_eventlog_free(log);
    return rc;
}

typedef struct run_state {
    int done;
    int code;
} run_state_t;

static void run_done(cgw_runner_t *r, const cgw_run_result_t *res, void *user)
{
    (void)r;
    run_state_t *s = user;
    s->done = 1;
    s->code = res->code;
}

/* A stub run: "Stub response (no Anthropic credential configured). You asked: hi there" is
 * 10 words, then stream_complete: 11 events when nothing failed. */
static int scenario_stub_run(cgw_ctx_t *ctx)
{
    cgw_eventlog_t *log = NULL;
    cgw_conversation_t *conv = NULL;
    cgw_runner_t *r = NULL;
    run_state_t st = {0, 0};
    int rc = cgw_eventlog_new(ctx, NULL, &log);
    rc = rc ? rc : cgw_conversation_new(&conv);
    rc = rc ? rc : cgw_conversation_append_text(conv, "user", "hi there");
    cgw_runner_options_t o;
    cgw_runner_options_init(&o);
    o.log = log;
    o.stub_delay_ms = 0;
    o.session_id = "oom-session";
    rc = rc ? rc : cgw_runner_new(ctx, &o, &r, NULL);
    rc = rc ? rc : cgw_runner_run(r, conv, run_done, &st);
    if (rc == CGW_OK) {
        assert_true(cgw_test_run_until(ctx, &st.done, 5000));
        rc = st.code;
    }
    if (rc == CGW_OK && (cgw_eventlog_last_seq(log) != 11 || cgw_conversation_count(conv) != 2)) {
        rc = CGW_ENOMEM; /* events or the answer were lost to allocation failures */
    }
    cgw_runner_free(r);
    cgw_conversation_free(conv);
    cgw_eventlog_free(log);
    return rc;
}

static void test_result_block_oom(void **state)
{
    (void)state;
    assert_true(sweep(scenario_result_block) > 5);
}

static void test_approvals_oom(void **state)
{
    (void)state;
    assert_true(sweep(scenario_approvals) > 2);
}

static void test_dispatch_oom(void **state)
{
    (void)state;
    long points = sweep(scenario_dispatch);
    print_message("dispatch: %ld allocation failure points\n", points);
    assert_true(points > 20);
}

static void test_stub_run_oom(void **state)
{
    (void)state;
    long points = sweep(scenario_stub_run);
    print_message("stub run: %ld allocation failure points\n", points);
    assert_true(points > 20);
}

int main(void)
{
    /* Must come before the library allocates anything. */
    if (cgw_set_allocator(oom_malloc, oom_realloc, free) != CGW_OK) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_block_oom),
        cmocka_unit_test(test_approvals_oom),
        cmocka_unit_test(test_dispatch_oom),
        cmocka_unit_test(test_stub_run_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
