/* Manager behaviour that needs no npm server: liveness pings, per-server tool timeouts, the
 * allow-list, builtin names, tool definitions with defaults, an empty configuration and API
 * misuse. Servers are the misbehaving test server and small shell scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_harness.h"

static char js[600];

/* A server that lists one tool without description or schema, then reads and ignores
 * everything (so it never answers a ping or a call). */
static const char *MUTE =
    "read a; echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\","
    "\"capabilities\":{},\"serverInfo\":{\"name\":\"mute\",\"version\":\"1\"}}}'; read b; read c; "
    "echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"bare\"}]}}'; "
    "cat >/dev/null";

static char *config(const char *extra)
{
    static char buf[4096];
    json_t *mute = json_pack("{s:s,s:[s,s]}", "command", "sh", "args", "-c", MUTE);
    char *mute_s = json_dumps(mute, JSON_COMPACT);
    snprintf(buf, sizeof(buf),
             "{\"mcpServers\":{\"good\":{\"command\":\"node\",\"args\":[\"%s\"]},"
             "\"mute\":%s%s}}",
             js, mute_s, extra);
    free(mute_s);
    json_decref(mute);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    snprintf(js, sizeof(js), "%s/tests/support/misbehaving_mcp_server.js", cgw_test_source_dir());
    return 0;
}

static void test_ping_timeout_restarts(void **state)
{
    (void)state;
    mcp_h_t h;
    cgw_mcp_manager_options_t o;
    mcp_h_options(&h, &o);
    /* The interval is also the ping's deadline: long enough that node answers in time on a
     * loaded machine, short enough that the mute server is found out quickly. */
    o.ping_interval_ms = 400;
    assert_true(mcp_h_start(&h, config(""), &o, 10000));
    assert_int_equal(h.n_ready, 2);
    /* A call stuck on the mute server fails as soon as the missed ping declares it dead. */
    mcp_h_call_t c;
    cgw_mcp_call_options_t co = {0};
    co.timeout_ms = 10000;
    assert_true(mcp_h_call(&h, "bare", NULL, &co, &c, 5000));
    assert_int_equal(c.status, CGW_ESERVERDIED);
    assert_string_equal(json_string_value(json_object_get(c.error, "sub_code")),
                        "connection_error");
    assert_true(c.duration_us < 2000000); /* a ping sent and missed: about 2 intervals */
    mcp_h_call_clear(&c);
    assert_true(h.restarting_seen);
    assert_true(mcp_h_wait_state(&h, 1, CGW_MCP_SERVER_READY, 5000));
    cgw_mcp_server_status_t st;
    cgw_mcp_manager_server_status(h.mgr, 1, &st);
    assert_true(st.restarts >= 1);
    assert_non_null(strstr(st.reason, "did not answer a ping"));
    /* The server that answers pings was never touched. */
    cgw_mcp_manager_server_status(h.mgr, 0, &st);
    assert_int_equal(st.state, CGW_MCP_SERVER_READY);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

static void test_progress_extends_timeout(void **state)
{
    (void)state;
    mcp_h_t h;
    assert_true(mcp_h_start(&h, config(""), NULL, 10000));
    /* 600 ms of work with a 200 ms timeout: progress every 50 ms keeps it alive... */
    mcp_h_call_t c;
    cgw_mcp_call_options_t o = {0};
    o.timeout_ms = 200;
    o.progress = mcp_h_count_progress;
    assert_true(mcp_h_call(&h, "sleep", "{\"ms\":600}", &o, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_string_equal(mcp_h_text(&c), "slept 600");
    assert_true(c.progress_count >= 8);
    mcp_h_call_clear(&c);
    /* ...up to ten times the timeout in total, */
    o.timeout_ms = 120;
    assert_true(mcp_h_call(&h, "sleep", "{\"ms\":3000}", &o, &c, 5000));
    assert_int_equal(c.status, CGW_ETIMEDOUT);
    assert_true(c.duration_us >= 1150000 && c.duration_us < 2500000);
    mcp_h_call_clear(&c);
    /* ...and without progress the timeout is the timeout. */
    o.timeout_ms = 200;
    o.progress = NULL;
    assert_true(mcp_h_call(&h, "sleep", "{\"ms\":600}", &o, &c, 5000));
    assert_int_equal(c.status, CGW_ETIMEDOUT);
    mcp_h_call_clear(&c);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

static void test_allowlist_and_builtins(void **state)
{
    (void)state;
    mcp_h_t h;
    cgw_mcp_config_options_t co;
    cgw_mcp_config_options_init(&co);
    const char *allowed[] = {"good", "never"};
    co.allowed_servers = allowed;
    co.n_allowed_servers = 2;
    cgw_mcp_manager_options_t o;
    mcp_h_options(&h, &o);
    const char *builtins[] = {"add"};
    o.naming.builtin_names = builtins;
    o.naming.n_builtin_names = 1;
    char extra[800];
    snprintf(extra, sizeof(extra),
             ",\"never\":{\"command\":\"node\",\"args\":[\"%s\","
             "\"never-answer\"]}",
             js);
    assert_true(mcp_h_start_cfg(&h, config(extra), &o, &co, 10000));
    assert_int_equal(cgw_mcp_manager_server_count(h.mgr), 2); /* mute is not allowed */
    const cgw_mcp_toolmap_t *map = cgw_mcp_manager_toolmap(h.mgr);
    assert_null(cgw_mcp_toolmap_find(map, "add"));  /* a builtin wins */
    assert_null(cgw_mcp_toolmap_find(map, "bare")); /* mute not started */
    const cgw_mcp_tool_ref_t *echo = cgw_mcp_toolmap_find(map, "echo");
    assert_non_null(echo);
    assert_string_equal(echo->server, "good"); /* the first server wins */
    /* "never" lists the same tools: all shadowed by "good" in plain naming, yet it runs. */
    cgw_mcp_server_status_t st;
    cgw_mcp_manager_server_status(h.mgr, 1, &st);
    assert_int_equal(st.state, CGW_MCP_SERVER_READY);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

static void test_per_server_timeout_applies(void **state)
{
    (void)state;
    mcp_h_t h;
    cgw_mcp_config_options_t co;
    cgw_mcp_config_options_init(&co);
    cgw_mcp_timeout_override_t ov = {"never", 150};
    co.timeout_overrides = &ov;
    co.n_timeout_overrides = 1;
    cgw_mcp_manager_options_t o;
    mcp_h_options(&h, &o);
    o.naming.naming = CGW_MCP_NAMING_PREFIXED;
    char cfg[1200];
    snprintf(cfg, sizeof(cfg),
             "{\"mcpServers\":{\"never\":{\"command\":\"node\",\"args\":[\"%s\","
             "\"never-answer\"]}}}",
             js);
    assert_true(mcp_h_start_cfg(&h, cfg, &o, &co, 10000));
    mcp_h_call_t c;
    assert_true(mcp_h_call(&h, "mcp__never__echo", "{\"message\":\"x\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_ETIMEDOUT);
    assert_true(c.duration_us >= 140000 && c.duration_us < 1000000);
    assert_non_null(strstr(json_string_value(json_object_get(c.error, "message")), "150 ms"));
    mcp_h_call_clear(&c);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

static void test_definitions_defaults(void **state)
{
    (void)state;
    mcp_h_t h;
    cgw_mcp_manager_options_t o;
    mcp_h_options(&h, &o);
    o.ping_interval_ms = 0;
    assert_true(mcp_h_start(&h, config(""), &o, 10000));
    json_t *defs = cgw_mcp_manager_tool_definitions(h.mgr);
    json_t *d = mcp_h_find_def(defs, "bare");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "description")), "");
    char *schema = json_dumps(json_object_get(d, "input_schema"), JSON_COMPACT);
    assert_string_equal(schema, "{\"type\":\"object\",\"properties\":{}}");
    free(schema);
    json_decref(defs);
    assert_non_null(cgw_mcp_manager_tool(h.mgr, "bare"));
    assert_null(cgw_mcp_manager_tool(h.mgr, "nope"));
    assert_int_equal(cgw_mcp_manager_start(h.mgr, NULL, NULL), CGW_ESTATE);
    cgw_mcp_server_status_t st;
    assert_int_equal(cgw_mcp_manager_server_status(h.mgr, 9, &st), CGW_ERANGE);
    assert_string_equal(cgw_mcp_server_state_name(CGW_MCP_SERVER_RESTARTING), "restarting");
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

static void test_empty_config_and_misuse(void **state)
{
    (void)state;
    mcp_h_t h;
    assert_true(mcp_h_start(&h, "{\"mcpServers\":{}}", NULL, 2000));
    assert_int_equal(h.n_ready + h.n_failed, 0);
    json_t *defs = cgw_mcp_manager_tool_definitions(h.mgr);
    assert_int_equal(json_array_size(defs), 0);
    json_decref(defs);
    mcp_h_call_t c;
    assert_true(mcp_h_call(&h, "anything", NULL, NULL, &c, 1000));
    assert_int_equal(c.status, CGW_EUNKNOWNTOOL);
    mcp_h_call_clear(&c);
    cgw_mcp_manager_options_t o;
    cgw_mcp_manager_options_init(&o);
    cgw_mcp_manager_t *m = NULL;
    cgw_error_t err;
    assert_int_equal(cgw_mcp_manager_new(h.ctx, &o, &m, &err), CGW_EINVAL); /* no config */
    o.config = h.cfg;
    o.naming.max_name_len = 5;
    assert_int_equal(cgw_mcp_manager_new(h.ctx, &o, &m, &err), CGW_EINVAL);
    assert_null(m);
    cgw_mcp_call_cancel(NULL);
    cgw_mcp_manager_free(NULL);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

typedef struct logs {
    int warned;
    char line[512];
} logs_t;

static void capture_log(cgw_log_level_t level, const char *component, const char *msg, void *user)
{
    logs_t *l = user;
    if (level == CGW_LOG_WARN && component != NULL && strcmp(component, "mcp") == 0 &&
        strstr(msg, "disk low") != NULL) {
        l->warned++;
        snprintf(l->line, sizeof(l->line), "%s", msg);
    }
}

static void on_started_flag(cgw_mcp_manager_t *m, size_t ready, size_t failed, void *user)
{
    (void)m;
    (void)ready;
    (void)failed;
    *(int *)user = 1;
}

/* notifications/message goes to the log at the mapped level, with the server's name. */
static void test_server_log_messages(void **state)
{
    (void)state;
    logs_t logs = {0};
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_WARN;
    co.log_cb = capture_log;
    co.log_user = &logs;
    cgw_ctx_t *ctx = NULL;
    assert_int_equal(cgw_ctx_new(&co, &ctx), CGW_OK);
    const char *script =
        "read a; echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":"
        "\"2025-06-18\",\"capabilities\":{\"logging\":{}},\"serverInfo\":{\"name\":\"l\","
        "\"version\":\"1\"}}}'; read b; read c; echo '{\"jsonrpc\":\"2.0\",\"id\":2,"
        "\"result\":{\"tools\":[]}}'; echo '{\"jsonrpc\":\"2.0\",\"method\":"
        "\"notifications/message\",\"params\":{\"level\":\"warning\",\"logger\":\"db\","
        "\"data\":{\"msg\":\"disk low\"}}}'; cat >/dev/null";
    json_t *doc = json_pack("{s:{s:{s:s,s:[s,s]}}}", "mcpServers", "logger", "command", "sh",
                            "args", "-c", script);
    char *text = json_dumps(doc, JSON_COMPACT);
    cgw_mcp_config_options_t cfo;
    cgw_mcp_config_options_init(&cfo);
    cfo.scopes = 0;
    cgw_mcp_config_t *cfg = NULL;
    assert_int_equal(cgw_mcp_config_new(&cfo, &cfg), CGW_OK);
    assert_int_equal(
        cgw_mcp_config_add_json(cfg, CGW_MCP_SCOPE_INLINE, text, strlen(text), "t", NULL), CGW_OK);
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    mo.config = cfg;
    mo.term_grace_ms = 200;
    cgw_mcp_manager_t *m = NULL;
    int started = 0;
    assert_int_equal(cgw_mcp_manager_new(ctx, &mo, &m, NULL), CGW_OK);
    assert_int_equal(cgw_mcp_manager_start(m, on_started_flag, &started), CGW_OK);
    assert_true(cgw_test_run_until(ctx, &started, 5000));
    for (int i = 0; i < 100 && logs.warned == 0; i++) {
        int never = 0;
        cgw_test_run_until(ctx, &never, 10);
    }
    assert_int_equal(logs.warned, 1);
    assert_non_null(strstr(logs.line, "server 'logger' db"));
    cgw_mcp_server_status_t st;
    cgw_mcp_manager_server_status(m, 0, &st);
    assert_string_equal(st.protocol_version, "2025-06-18");
    cgw_mcp_manager_free(m);
    cgw_mcp_config_free(cfg);
    cgw_ctx_free(ctx);
    free(text);
    json_decref(doc);
    assert_int_equal(mcp_h_child_count(), 0);
}

static void test_deferred_failure_cancel(void **state)
{
    (void)state;
    mcp_h_t h;
    assert_true(mcp_h_start(&h, "{\"mcpServers\":{}}", NULL, 2000));
    mcp_h_call_t c;
    cgw_mcp_call_t *handle = NULL;
    assert_int_equal(mcp_h_call_async(&h, "nothing", NULL, NULL, &c, &handle), CGW_OK);
    assert_false(c.done); /* never from inside the call */
    cgw_mcp_call_cancel(handle);
    assert_true(c.done);
    assert_int_equal(c.status, CGW_ECANCELED);
    mcp_h_call_clear(&c);
    /* A call still pending when the manager goes away completes with ECANCELED. */
    assert_int_equal(mcp_h_call_async(&h, "nothing", NULL, NULL, &c, NULL), CGW_OK);
    cgw_mcp_manager_free(h.mgr);
    h.mgr = NULL;
    assert_true(c.done);
    assert_int_equal(c.status, CGW_ECANCELED);
    mcp_h_call_clear(&c);
    assert_int_equal(mcp_h_teardown(&h, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_timeout_restarts),
        cmocka_unit_test(test_progress_extends_timeout),
        cmocka_unit_test(test_allowlist_and_builtins),
        cmocka_unit_test(test_per_server_timeout_applies),
        cmocka_unit_test(test_definitions_defaults),
        cmocka_unit_test(test_empty_config_and_misuse),
        cmocka_unit_test(test_deferred_failure_cancel),
        cmocka_unit_test(test_server_log_messages),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
