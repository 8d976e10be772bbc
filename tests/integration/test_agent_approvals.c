/*
 * Tool approvals through the runner against `claude-gateway mock-api`: granted, denied, timed
 * out, no handler, remembered across runs of a session (and across dispatchers), answered
 * later from outside by (tool_call_id, nonce) with the distinct errors an HTTP server needs.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "agent_harness.h"

#define TWO_TURNS                                                                                  \
    "{\"when_exhausted\":\"cycle\",\"turns\":[{\"content\":[{\"type\":\"tool_use\","               \
    "\"name\":\"danger\",\"input\":{\"target\":\"prod\"}}]},{\"text\":\"finished\"}]}"

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

static int g_runs;
static json_t *danger(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)call;
    (void)error;
    (void)user;
    g_runs++;
    return json_pack("{s:b}", "done", 1);
}

static bool needs(const char *name, const json_t *input, void *user)
{
    (void)user;
    assert_non_null(input);
    return strcmp(name, "danger") == 0;
}

/* What the approval handler does. */
typedef enum mode { ANSWER_NOW = 0, DENY_NOW, ANSWER_LATER, NEVER } mode_t_;

typedef struct approver {
    mode_t_ mode;
    bool allow_type;
    int asked;
    char id[128];
    char nonce[32];
    int64_t expires_at;
    uint32_t timeout_ms;
    cgw_approvals_t *approvals;
    struct event *later;
} approver_t;

static void answer_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    approver_t *a = arg;
    /* A wrong nonce is refused and leaves the request pending. */
    assert_int_equal(cgw_approvals_answer(a->approvals, a->id, "0000000000000000", true, false),
                     CGW_ESTATE);
    assert_int_equal(cgw_approvals_answer(a->approvals, "toolu_unknown", a->nonce, true, false),
                     CGW_ENOENT);
    assert_int_equal(cgw_approvals_pending_count(a->approvals), 1);
    assert_int_equal(cgw_approvals_answer(a->approvals, a->id, a->nonce, true, false), CGW_OK);
    /* Answered twice: the second answer is refused. */
    assert_int_equal(cgw_approvals_answer(a->approvals, a->id, a->nonce, true, false), CGW_ESTATE);
}

static void request_approval(const cgw_approval_request_t *req, void *user)
{
    approver_t *a = user;
    a->asked++;
    snprintf(a->id, sizeof(a->id), "%s", req->tool_call_id);
    snprintf(a->nonce, sizeof(a->nonce), "%s", req->nonce);
    a->expires_at = req->expires_at;
    a->timeout_ms = req->timeout_ms;
    a->approvals = req->approvals;
    assert_string_equal(req->tool_name, "danger");
    assert_string_equal(json_string_value(json_object_get(req->tool_input, "target")), "prod");
    switch (a->mode) {
    case ANSWER_NOW:
    case DENY_NOW:
        assert_int_equal(cgw_approvals_answer(req->approvals, req->tool_call_id, req->nonce,
                                              a->mode == ANSWER_NOW, a->allow_type),
                         CGW_OK);
        break;
    case ANSWER_LATER: {
        static const struct timeval tv = {0, 50000};
        evtimer_add(a->later, &tv);
        break;
    }
    case NEVER:
        break;
    }
}

static void setup(agent_h_t *h, approver_t *a, uint32_t timeout_ms, bool with_handler)
{
    agent_mock_script(TWO_TURNS);
    agent_h_init(h, NULL, 1);
    cgw_dispatcher_options_t o;
    cgw_dispatcher_options_init(&o);
    o.needs_approval = needs;
    o.request_approval = with_handler ? request_approval : NULL;
    o.approval_user = a;
    if (timeout_ms) {
        o.approval_timeout_ms = timeout_ms;
    }
    agent_h_dispatcher(h, &o);
    assert_int_equal(cgw_dispatcher_add_sync(h->disp, "danger", danger, NULL), CGW_OK);
    agent_h_runner(h, NULL);
    a->later = evtimer_new(cgw_ctx_base(h->ctx), answer_later, a);
    g_runs = 0;
}

static void teardown(agent_h_t *h, approver_t *a)
{
    event_free(a->later);
    agent_h_free(h);
}

/* The tool_result error of the run's only tool call, or NULL when it succeeded. */
static const char *result_code(const agent_h_t *h, json_t **keep)
{
    json_t *ev = agent_h_events(h);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 1);
    const json_t *err = json_object_get(json_array_get(res, 0), "error");
    *keep = ev;
    const char *code = json_string_value(json_object_get(err, "code"));
    json_decref(res);
    return code;
}

static const json_t *approval_event(const json_t *ev)
{
    size_t i;
    const json_t *e;
    json_array_foreach(ev, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "type")), "tool_approval_request") == 0) {
            return e;
        }
    }
    return NULL;
}

static void check_nonce(const char *nonce)
{
    assert_int_equal(strlen(nonce), 16);
    for (size_t i = 0; i < 16; i++) {
        assert_true(isxdigit((unsigned char)nonce[i]) && !isupper((unsigned char)nonce[i]));
    }
}

static void test_granted(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = ANSWER_NOW};
    setup(&h, &a, 0, true);
    int64_t now = (int64_t)time(NULL);
    assert_true(agent_h_run(&h, "do it", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(a.asked, 1);
    assert_int_equal(g_runs, 1);
    assert_int_equal(a.timeout_ms, 120000);
    check_nonce(a.nonce);
    json_t *ev;
    assert_null(result_code(&h, &ev));
    const json_t *req = approval_event(ev);
    assert_non_null(req);
    assert_string_equal(json_string_value(json_object_get(req, "tool_call_id")), a.id);
    assert_string_equal(json_string_value(json_object_get(req, "nonce")), a.nonce);
    assert_string_equal(json_string_value(json_object_get(req, "tool_name")), "danger");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(req, "tool_input"), "target")), "prod");
    json_int_t exp = json_integer_value(json_object_get(req, "expires_at"));
    assert_true(exp >= now + 119 && exp <= now + 122);
    json_decref(ev);
    teardown(&h, &a);
}

static void test_denied(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = DENY_NOW};
    setup(&h, &a, 0, true);
    assert_true(agent_h_run(&h, "do it", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_runs, 0);
    json_t *ev;
    assert_string_equal(result_code(&h, &ev), "user_denied");
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(res, 0), "error"), "message")),
                        "User denied execution");
    json_decref(res);
    json_decref(ev);
    teardown(&h, &a);
}

static void test_timed_out(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = NEVER};
    setup(&h, &a, 150, true);
    assert_true(agent_h_run(&h, "do it", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_runs, 0);
    json_t *ev;
    assert_string_equal(result_code(&h, &ev), "approval_timeout");
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(res, 0), "error"), "message")),
                        "User did not respond within timeout");
    json_decref(res);
    json_decref(ev);
    /* A late answer learns that it expired. */
    assert_int_equal(cgw_approvals_answer(h.approvals, a.id, a.nonce, true, false), CGW_EEXPIRED);
    teardown(&h, &a);
}

static void test_no_handler(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = NEVER};
    setup(&h, &a, 0, false);
    assert_true(agent_h_run(&h, "do it", 10000));
    json_t *ev;
    assert_string_equal(result_code(&h, &ev), "approval_required");
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(res, 0), "error"), "message")),
                        "Tool 'danger' requires approval but no approval handler is configured");
    json_decref(res);
    assert_null(approval_event(ev));
    json_decref(ev);
    teardown(&h, &a);
}

static void test_answered_later_from_outside(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = ANSWER_LATER};
    setup(&h, &a, 0, true);
    assert_true(agent_h_run(&h, "do it", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_runs, 1);
    assert_int_equal(cgw_approvals_pending_count(h.approvals), 0);
    teardown(&h, &a);
}

static void test_remembered_across_runs(void **state)
{
    (void)state;
    agent_h_t h;
    approver_t a = {.mode = ANSWER_NOW, .allow_type = true};
    setup(&h, &a, 0, true);
    assert_true(agent_h_run(&h, "first", 10000));
    assert_int_equal(a.asked, 1);
    assert_int_equal(g_runs, 1);
    assert_true(cgw_approvals_is_allowed(h.approvals, "danger"));

    /* Second run of the session, with a new dispatcher and runner: the session's approvals
     * object carries the decision, so nobody is asked. */
    cgw_runner_free(h.runner);
    h.runner = NULL;
    cgw_dispatcher_free(h.disp);
    h.disp = NULL;
    cgw_dispatcher_options_t o;
    cgw_dispatcher_options_init(&o);
    o.needs_approval = needs;
    o.request_approval = request_approval;
    o.approval_user = &a;
    agent_h_dispatcher(&h, &o);
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "danger", danger, NULL), CGW_OK);
    agent_h_new_log(&h);
    agent_h_runner(&h, NULL);
    assert_true(agent_h_run(&h, "second", 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(a.asked, 1);
    assert_int_equal(g_runs, 2);
    json_t *ev = agent_h_events(&h);
    assert_null(approval_event(ev));
    json_decref(ev);
    teardown(&h, &a);
}

/* Two calls needing approval in one turn: both requests are pending together (the calls run
 * concurrently), each with its own nonce; one approved, one denied. */
static cgw_approvals_t *g_two_approvals;
static char g_two[2][2][64];
static int g_two_asked;
static size_t g_two_max_pending;

static void ask_two(const cgw_approval_request_t *req, void *user)
{
    (void)user;
    g_two_approvals = req->approvals;
    snprintf(g_two[g_two_asked][0], 64, "%s", req->tool_call_id);
    snprintf(g_two[g_two_asked][1], 64, "%s", req->nonce);
    g_two_asked++;
    size_t n = cgw_approvals_pending_count(req->approvals);
    g_two_max_pending = n > g_two_max_pending ? n : g_two_max_pending;
}

static void test_two_pending_at_once(void **state)
{
    (void)state;
    agent_mock_script("[{\"content\":["
                      "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"danger\","
                      "\"input\":{\"target\":\"prod\"}},"
                      "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"danger\","
                      "\"input\":{\"target\":\"prod\"}}]},{\"text\":\"finished\"}]");
    agent_h_t h;
    agent_h_init(&h, NULL, 1);
    cgw_dispatcher_options_t o;
    cgw_dispatcher_options_init(&o);
    o.needs_approval = needs;
    o.request_approval = ask_two;
    agent_h_dispatcher(&h, &o);
    assert_int_equal(cgw_dispatcher_add_sync(h.disp, "danger", danger, NULL), CGW_OK);
    agent_h_runner(&h, NULL);
    g_runs = g_two_asked = 0;
    g_two_max_pending = 0;
    agent_h_start(&h, "two at once");
    int spin = 0;
    for (int i = 0; i < 500 && g_two_asked < 2; i++) {
        cgw_test_run_until(h.ctx, &spin, 10);
    }
    assert_int_equal(g_two_asked, 2);
    assert_int_equal(g_two_max_pending, 2);
    assert_string_not_equal(g_two[0][1], g_two[1][1]);
    /* Nonces are per request. */
    assert_int_equal(cgw_approvals_answer(g_two_approvals, g_two[0][0], g_two[1][1], true, false),
                     CGW_ESTATE);
    assert_int_equal(cgw_approvals_answer(g_two_approvals, g_two[0][0], g_two[0][1], true, false),
                     CGW_OK);
    assert_int_equal(cgw_approvals_answer(g_two_approvals, g_two[1][0], g_two[1][1], false, false),
                     CGW_OK);
    assert_true(cgw_test_run_until(h.ctx, &h.done, 10000));
    assert_int_equal(h.code, CGW_OK);
    assert_int_equal(g_runs, 1);
    json_t *ev = agent_h_events(&h);
    json_t *res = agent_h_filter(ev, "tool_result");
    assert_int_equal(json_array_size(res), 2);
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "tool_call_id"));
        const json_t *err = json_object_get(r, "error");
        if (strcmp(id, g_two[0][0]) == 0) {
            assert_true(json_is_null(err));
        } else {
            assert_string_equal(json_string_value(json_object_get(err, "code")), "user_denied");
        }
    }
    json_decref(res);
    json_decref(ev);
    agent_h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_granted),
        cmocka_unit_test(test_denied),
        cmocka_unit_test(test_timed_out),
        cmocka_unit_test(test_no_handler),
        cmocka_unit_test(test_answered_later_from_outside),
        cmocka_unit_test(test_remembered_across_runs),
        cmocka_unit_test(test_two_pending_at_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
