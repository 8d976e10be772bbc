#include "agent_harness.h"

#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/buf.h"
#include "mock_proc.h"

#define TEST_KEY "sk-ant-test-agent-0123456789"

extern char **environ;

static pid_t g_pid = -1;
static char g_base[128];

int agent_mock_start(void)
{
    signal(SIGPIPE, SIG_IGN);
    g_pid = cgw_test_mock_spawn(cgw_test_gateway_bin(), NULL, NULL, g_base, sizeof(g_base));
    return g_pid > 0 ? 0 : -1;
}

void agent_mock_stop(void)
{
    cgw_test_mock_kill(g_pid);
    g_pid = -1;
}

const char *agent_mock_base(void)
{
    return g_base;
}

/* Blocking HTTP to the mock's control endpoints (another process, so blocking is fine). */
static json_t *mock_http(const char *path, const char *post_body)
{
    long status;
    json_t *v = cgw_test_mock_http(g_base, path, post_body, &status);
    if (status != 200) {
        fail_msg("%s: HTTP %ld", path, status);
    }
    return v;
}

void agent_mock_script(const char *json)
{
    json_decref(mock_http("/_mock/script", json));
    json_decref(mock_http("/_mock/reset", ""));
}

json_t *agent_mock_requests(void)
{
    json_t *v = mock_http("/_mock/requests", NULL);
    assert_non_null(v);
    return v;
}

const json_t *agent_mock_body(const json_t *reqs, size_t n)
{
    size_t i, k = 0;
    const json_t *r;
    json_array_foreach(reqs, i, r)
    {
        const char *path = json_string_value(json_object_get(r, "path"));
        if (path != NULL && strncmp(path, "/v1/messages", 12) == 0) {
            if (k++ == n) {
                return json_object_get(r, "body");
            }
        }
    }
    return NULL;
}

size_t agent_mock_message_count(const json_t *reqs)
{
    size_t n = 0;
    while (agent_mock_body(reqs, n) != NULL) {
        n++;
    }
    return n;
}

const json_t *agent_mock_content(const json_t *reqs, size_t n, size_t m)
{
    return json_object_get(json_array_get(json_object_get(agent_mock_body(reqs, n), "messages"), m),
                           "content");
}

/* ---- one agent -------------------------------------------------------------------------- */

void agent_h_init(agent_h_t *h, const char *mcp_config_json, int with_client)
{
    memset(h, 0, sizeof(*h));
    if (mcp_config_json != NULL) {
        assert_int_equal(mcp_h_start(&h->mcp, mcp_config_json, NULL, 30000), 1);
        h->has_mcp = 1;
        h->ctx = h->mcp.ctx;
    } else {
        h->ctx = cgw_test_ctx_new();
    }
    assert_non_null(h->ctx);
    if (with_client) {
        cgw_anthropic_options_t o;
        cgw_anthropic_options_init(&o);
        o.base_url = g_base;
        o.api_key = TEST_KEY;
        o.model = "claude-sonnet-4-6";
        o.max_retries = 3;
        cgw_error_t err;
        assert_int_equal(cgw_anthropic_new(h->ctx, &o, &h->client, &err), CGW_OK);
    }
    assert_int_equal(cgw_approvals_new(h->ctx, &h->approvals), CGW_OK);
    assert_int_equal(cgw_conversation_new(&h->conv), CGW_OK);
    agent_h_new_log(h);
}

void agent_h_scripted(agent_h_t *h, const char *script)
{
    agent_mock_script(script);
    agent_h_init(h, NULL, 1);
    agent_h_runner(h, NULL);
}

void agent_h_new_log(agent_h_t *h)
{
    if (h->runner != NULL && h->log != NULL) {
        /* the runner keeps a pointer: swap first */
        cgw_eventlog_t *old = h->log;
        assert_int_equal(cgw_eventlog_new(h->ctx, NULL, &h->log), CGW_OK);
        assert_int_equal(cgw_runner_set_log(h->runner, h->log), CGW_OK);
        cgw_eventlog_free(old);
        return;
    }
    cgw_eventlog_free(h->log);
    assert_int_equal(cgw_eventlog_new(h->ctx, NULL, &h->log), CGW_OK);
}

void agent_h_dispatcher(agent_h_t *h, cgw_dispatcher_options_t *opts)
{
    cgw_dispatcher_options_t local;
    if (opts == NULL) {
        cgw_dispatcher_options_init(&local);
        opts = &local;
    }
    opts->mcp = h->has_mcp ? h->mcp.mgr : NULL;
    opts->approvals = h->approvals;
    assert_int_equal(cgw_dispatcher_new(h->ctx, opts, &h->disp), CGW_OK);
}

void agent_h_runner(agent_h_t *h, cgw_runner_options_t *opts)
{
    cgw_runner_options_t local;
    if (opts == NULL) {
        cgw_runner_options_init(&local);
        opts = &local;
    }
    opts->client = h->client;
    opts->dispatcher = h->disp;
    opts->log = h->log;
    if (opts->session_id == NULL) {
        opts->session_id = "test-session-0123456789";
    }
    cgw_error_t err;
    assert_int_equal(cgw_runner_new(h->ctx, opts, &h->runner, &err), CGW_OK);
}

static void on_done(cgw_runner_t *r, const cgw_run_result_t *res, void *user)
{
    (void)r;
    agent_h_t *h = user;
    h->done = 1;
    h->code = res->code;
    h->turns = res->turns;
    h->stub = res->stub;
    h->usage = res->usage;
    snprintf(h->stop_reason, sizeof(h->stop_reason), "%s",
             res->stop_reason ? res->stop_reason : "");
    snprintf(h->error, sizeof(h->error), "%s", res->error ? res->error : "");
}

void agent_h_start(agent_h_t *h, const char *text)
{
    h->done = 0;
    assert_int_equal(cgw_conversation_append_text(h->conv, "user", text), CGW_OK);
    assert_int_equal(cgw_runner_run(h->runner, h->conv, on_done, h), CGW_OK);
}

int agent_h_run(agent_h_t *h, const char *text, int timeout_ms)
{
    agent_h_start(h, text);
    return cgw_test_run_until(h->ctx, &h->done, timeout_ms);
}

json_t *agent_h_events(const agent_h_t *h)
{
    json_t *out = json_array();
    uint64_t last = cgw_eventlog_last_seq(h->log);
    for (uint64_t s = 1; s <= last; s++) {
        cgw_eventlog_entry_t e;
        json_t *ev = NULL;
        assert_int_equal(cgw_eventlog_get(h->log, s, &e), CGW_OK);
        assert_int_equal(cgw_eventlog_entry_event(&e, &ev), CGW_OK);
        json_object_set_new(ev, "_seq", json_integer((json_int_t)s));
        json_array_append_new(out, ev);
    }
    return out;
}

json_t *agent_h_filter(const json_t *events, const char *type)
{
    json_t *out = json_array();
    size_t i;
    const json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "type")), type) == 0) {
            json_array_append(out, (json_t *)ev);
        }
    }
    return out;
}

char *agent_h_text(const json_t *events)
{
    cgw_buf_t b = CGW_BUF_INIT;
    size_t i;
    const json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "type")), "text_delta") == 0 &&
            json_object_get(ev, "agent_id") == NULL) {
            cgw_buf_append_str(&b, json_string_value(json_object_get(ev, "text")));
        }
    }
    cgw_buf_append(&b, "", 0);
    char *s = strdup(b.data ? b.data : "");
    cgw_buf_free(&b);
    return s;
}

json_t *agent_h_message(const agent_h_t *h, size_t i)
{
    cgw_str_t m = cgw_conversation_get(h->conv, i);
    assert_non_null(m.ptr);
    json_t *v = json_loadb(m.ptr, m.len, 0, NULL);
    assert_non_null(v);
    return v;
}

void agent_h_free(agent_h_t *h)
{
    cgw_runner_free(h->runner);
    cgw_dispatcher_free(h->disp);
    cgw_eventlog_free(h->log);
    cgw_conversation_free(h->conv);
    cgw_approvals_free(h->approvals);
    cgw_anthropic_free(h->client);
    if (h->has_mcp) {
        mcp_h_stop(&h->mcp);
    } else {
        cgw_ctx_free(h->ctx);
    }
    memset(h, 0, sizeof(*h));
}
