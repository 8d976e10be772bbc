/* The MCP manager against misbehaving servers (tests/support/misbehaving_mcp_server.js and
 * two tiny shell servers), all in one manager so that each fault is also shown not to
 * disturb the others. Servers run behind `tee` where the test needs to see what the client
 * sent (notifications/cancelled, the number of tools/list requests). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp_harness.h"

static mcp_h_t H;
static char dir[256];

enum {
    S_GARBAGE,
    S_OVERSIZED,
    S_NEVER,
    S_TWICE,
    S_EXITINIT,
    S_CRASH,
    S_REQUESTS,
    S_BURST,
    S_OLD,
    S_FUTURE,
    S_MISSING,
    S_FLAKY
};

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char p[512];
    path_in(p, sizeof(p), name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A server entry running the misbehaving server with `mode`; with `spy`, stdin is copied to
 * <dir>/<name>.in first. */
static void entry(char *buf, size_t cap, const char *name, const char *mode, const char *extra,
                  int spy)
{
    char js[512];
    snprintf(js, sizeof(js), "%s/tests/support/misbehaving_mcp_server.js", cgw_test_source_dir());
    size_t n = strlen(buf);
    if (spy) {
        snprintf(buf + n, cap - n,
                 "%s\"%s\":{\"command\":\"sh\",\"args\":[\"-c\",\"tee %s/%s.in | exec node %s "
                 "%s %s\"]}",
                 n > 1 ? "," : "", name, dir, name, js, mode, extra);
    } else {
        snprintf(buf + n, cap - n, "%s\"%s\":{\"command\":\"node\",\"args\":[\"%s\",\"%s\"%s%s]}",
                 n > 1 ? "," : "", name, js, mode, *extra ? "," : "", extra);
    }
}

static void sh_entry(char *buf, size_t cap, const char *name, const char *script)
{
    char p[512];
    path_in(p, sizeof(p), script);
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, ",\"%s\":{\"command\":\"sh\",\"args\":[\"%s\"]}", name, p);
}

static const char *OLD_SH =
    "read a\n"
    "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2024-11-05\","
    "\"capabilities\":{},\"serverInfo\":{\"name\":\"old\",\"version\":\"1\"}}}'\n"
    "read b\nread c\n"
    "echo '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"old-tool\","
    "\"inputSchema\":{\"type\":\"object\"}}]}}'\n"
    "cat >/dev/null\n";
static const char *FUTURE_SH =
    "read a\n"
    "echo '{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"1999-01-01\","
    "\"capabilities\":{},\"serverInfo\":{\"name\":\"future\",\"version\":\"1\"}}}'\n"
    "cat >/dev/null\n";

/* Sampling is declined with an error of our own: cgw_mcp_reply_error's code and message reach
 * the server. */
static void sampling_declined(const char *server, const char *method, const json_t *params,
                              cgw_mcp_reply_t *reply, void *user)
{
    (void)server;
    (void)params;
    (void)user;
    assert_string_equal(method, "sampling/createMessage");
    assert_int_equal(cgw_mcp_reply_error(NULL, -1, "x"), CGW_EINVAL);
    assert_int_equal(cgw_mcp_reply_error(reply, -1, "no model here"), CGW_OK);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cgw-mcp-faults-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    write_file("old.sh", OLD_SH);
    write_file("future.sh", FUTURE_SH);
    /* Starts once; every restart fails, so the manager must give up. */
    char flaky[1200];
    snprintf(flaky, sizeof(flaky),
             "if [ -e %s/flaky.started ]; then echo 'refusing to start again' >&2; exit 1; fi\n"
             "touch %s/flaky.started\n"
             "exec node %s/tests/support/misbehaving_mcp_server.js crash-mid-call\n",
             dir, dir, cgw_test_source_dir());
    write_file("flaky.sh", flaky);
    static char cfg[8192];
    strcpy(cfg, "{");
    entry(cfg, sizeof(cfg), "garbage", "garbage", "", 0);
    entry(cfg, sizeof(cfg), "oversized", "oversized", "\"--size\",\"3000000\"", 0);
    entry(cfg, sizeof(cfg), "never", "never-answer", "", 1);
    entry(cfg, sizeof(cfg), "twice", "answer-twice", "", 0);
    entry(cfg, sizeof(cfg), "exitinit", "exit-in-initialize", "", 0);
    entry(cfg, sizeof(cfg), "crash", "crash-mid-call", "", 0);
    entry(cfg, sizeof(cfg), "requests", "server-requests", "", 0);
    entry(cfg, sizeof(cfg), "burst", "list-changed-burst", "--count 5", 1);
    sh_entry(cfg, sizeof(cfg), "old", "old.sh");
    sh_entry(cfg, sizeof(cfg), "future", "future.sh");
    strcat(cfg, ",\"missing\":{\"command\":\"/nonexistent/mcp-server\"}");
    sh_entry(cfg, sizeof(cfg), "flaky", "flaky.sh");
    strcat(cfg, "}");
    char full[9000];
    snprintf(full, sizeof(full), "{\"mcpServers\":%s}", cfg);
    cgw_mcp_manager_options_t o;
    mcp_h_options(&H, &o);
    o.naming.naming = CGW_MCP_NAMING_PREFIXED;
    o.max_line = 1024 * 1024;
    o.restart_max_attempts = 2;
    o.sampling = sampling_declined;
    if (!mcp_h_start(&H, full, &o, 30000)) {
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return mcp_h_teardown(&H, dir);
}

static cgw_mcp_server_status_t status_of(size_t i)
{
    cgw_mcp_server_status_t st;
    assert_int_equal(cgw_mcp_manager_server_status(H.mgr, i, &st), CGW_OK);
    return st;
}

static void expect_echo(const char *server, const char *msg)
{
    char tool[128], in[256], want[256];
    snprintf(tool, sizeof(tool), "mcp__%s__echo", server);
    snprintf(in, sizeof(in), "{\"message\":\"%s\"}", msg);
    snprintf(want, sizeof(want), "%s", msg);
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, tool, in, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    assert_string_equal(mcp_h_text(&c), want);
    mcp_h_call_clear(&c);
}

static void test_startup_report(void **state)
{
    (void)state;
    assert_int_equal(H.n_failed, 3); /* exitinit, future, missing */
    assert_int_equal(H.n_ready, 9);
    cgw_mcp_server_status_t st = status_of(S_EXITINIT);
    assert_int_equal(st.state, CGW_MCP_SERVER_FAILED);
    assert_non_null(strstr(st.reason, "exited with status 3"));
    assert_non_null(strstr(st.stderr_tail, "exiting during initialize"));
    st = status_of(S_FUTURE);
    assert_int_equal(st.state, CGW_MCP_SERVER_FAILED);
    assert_non_null(strstr(st.reason, "1999-01-01"));
    st = status_of(S_MISSING);
    assert_int_equal(st.state, CGW_MCP_SERVER_FAILED);
    assert_non_null(strstr(st.reason, "No such file or directory"));
    /* Negotiated down to 2024-11-05. */
    st = status_of(S_OLD);
    assert_int_equal(st.state, CGW_MCP_SERVER_READY);
    assert_string_equal(st.protocol_version, "2024-11-05");
    assert_non_null(cgw_mcp_toolmap_find(cgw_mcp_manager_toolmap(H.mgr), "mcp__old__old-tool"));
    /* Pagination: the misbehaving server splits its six tools over two pages. */
    st = status_of(S_TWICE);
    assert_int_equal(st.tool_count, 6);
    assert_non_null(cgw_mcp_manager_tool(H.mgr, "mcp__twice__client-responses"));
}

static void test_garbage_lines_skipped(void **state)
{
    (void)state;
    expect_echo("garbage", "through the noise");
    assert_int_equal(status_of(S_GARBAGE).state, CGW_MCP_SERVER_READY);
}

static void test_oversized_line(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "mcp__oversized__echo", "{\"message\":\"a\"}", NULL, &c, 10000));
    assert_int_equal(c.status, CGW_ELINETOOLONG);
    assert_string_equal(json_string_value(json_object_get(c.error, "code")), "tool_error");
    assert_non_null(
        strstr(json_string_value(json_object_get(c.error, "message")), "exceeds the line limit"));
    mcp_h_call_clear(&c);
    /* The connection lives on. */
    expect_echo("oversized", "after the big one");
    assert_int_equal(status_of(S_OVERSIZED).restarts, 0);
}

static int file_count(const char *name, const char *needle)
{
    char p[512];
    path_in(p, sizeof(p), name);
    char *text = cgw_test_read_file(p, NULL);
    int n = 0;
    for (const char *s = text; s != NULL && (s = strstr(s, needle)) != NULL; s++) {
        n++;
    }
    free(text);
    return n;
}

static void test_never_answers(void **state)
{
    (void)state;
    mcp_h_call_t c;
    cgw_mcp_call_options_t o = {0};
    o.timeout_ms = 200;
    assert_true(mcp_h_call(&H, "mcp__never__echo", "{\"message\":\"hello?\"}", &o, &c, 5000));
    assert_int_equal(c.status, CGW_ETIMEDOUT);
    assert_string_equal(json_string_value(json_object_get(c.error, "sub_code")), "timeout");
    mcp_h_call_clear(&c);
    mcp_h_spin(&H, 100);
    assert_int_equal(file_count("never.in", "\"method\":\"notifications/cancelled\""), 1);
    assert_int_equal(file_count("never.in", "\"reason\":\"timed out\""), 1);
    assert_int_equal(status_of(S_NEVER).state, CGW_MCP_SERVER_READY);
    /* Cancelling by hand sends one too, with the caller's reason. */
    cgw_mcp_call_t *h = NULL;
    assert_int_equal(mcp_h_call_async(&H, "mcp__never__echo", "{\"message\":\"x\"}", NULL, &c, &h),
                     CGW_OK);
    mcp_h_spin(&H, 50);
    cgw_mcp_call_cancel(h);
    assert_int_equal(c.status, CGW_ECANCELED);
    mcp_h_call_clear(&c);
    mcp_h_spin(&H, 100);
    assert_int_equal(file_count("never.in", "\"method\":\"notifications/cancelled\""), 2);
    assert_int_equal(file_count("never.in", "\"reason\":\"cancelled by the caller\""), 1);
}

static void test_answers_twice(void **state)
{
    (void)state;
    expect_echo("twice", "first");
    mcp_h_spin(&H, 50);
    /* The duplicate of the first answer must not be taken for the second call's. */
    expect_echo("twice", "second");
}

static void test_crash_mid_call(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "mcp__crash__echo", "{\"message\":\"x\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_ESERVERDIED);
    assert_string_equal(json_string_value(json_object_get(c.error, "sub_code")),
                        "connection_error");
    mcp_h_call_clear(&c);
    assert_true(mcp_h_wait_state(&H, S_CRASH, CGW_MCP_SERVER_READY, 10000));
    assert_int_equal(status_of(S_CRASH).restarts, 1);
    assert_non_null(strstr(status_of(S_CRASH).reason, "signal 9"));
}

static void test_server_requests_answered(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "mcp__requests__client-responses", NULL, NULL, &c, 5000));
    assert_int_equal(c.status, CGW_OK);
    /* The text is a JSON array; the mapping parsed it into the result. */
    json_t *arr = c.result;
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 5);
    json_t *r;
    size_t i;
    json_array_foreach(arr, i, r)
    {
        json_int_t id = json_integer_value(json_object_get(r, "id"));
        json_t *err = json_object_get(r, "error");
        if (id == 0) {
            assert_true(json_is_object(json_object_get(r, "result"))); /* ping */
        } else if (id == 1) {
            json_t *roots = json_object_get(json_object_get(r, "result"), "roots");
            assert_int_equal(json_array_size(roots), 1);
            assert_int_equal(
                strncmp(json_string_value(json_object_get(json_array_get(roots, 0), "uri")),
                        "file:///", 8),
                0);
        } else if (id == 2) {
            assert_int_equal(json_integer_value(json_object_get(err, "code")), -1);
            assert_string_equal(json_string_value(json_object_get(err, "message")),
                                "no model here");
        } else {
            /* elicitation (no handler) and an unknown method */
            assert_int_equal(json_integer_value(json_object_get(err, "code")), -32601);
        }
    }
    mcp_h_call_clear(&c);
}

static void test_list_changed_coalesced(void **state)
{
    (void)state;
    /* Five list_changed in one write right after initialized: the initial two-page listing
     * plus exactly one refresh (two pages). */
    mcp_h_spin(&H, 200);
    assert_int_equal(file_count("burst.in", "\"method\":\"tools/list\""), 4);
    int before = H.tools_changed;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "mcp__burst__list-changed", "{\"count\":20}", NULL, &c, 5000));
    mcp_h_call_clear(&c);
    mcp_h_spin(&H, 200);
    assert_int_equal(file_count("burst.in", "\"method\":\"tools/list\""), 6);
    assert_int_equal(H.tools_changed, before + 1);
}

static void test_restart_gives_up(void **state)
{
    (void)state;
    mcp_h_call_t c;
    assert_true(mcp_h_call(&H, "mcp__flaky__echo", "{\"message\":\"x\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_ESERVERDIED);
    mcp_h_call_clear(&c);
    assert_true(mcp_h_wait_state(&H, S_FLAKY, CGW_MCP_SERVER_FAILED, 5000));
    cgw_mcp_server_status_t st = status_of(S_FLAKY);
    assert_int_equal(st.restarts, 0);
    assert_non_null(strstr(st.reason, "exited with status 1"));
    assert_non_null(strstr(st.stderr_tail, "refusing to start again"));
    /* Its tools stay listed (as in the original); calls fail at once with a clear error. */
    assert_true(mcp_h_call(&H, "mcp__flaky__echo", "{\"message\":\"x\"}", NULL, &c, 5000));
    assert_int_equal(c.status, CGW_ENOTREADY);
    assert_string_equal(json_string_value(json_object_get(c.error, "message")),
                        "MCP server unavailable: flaky (failed)");
    mcp_h_call_clear(&c);
}

static void test_everything_still_works(void **state)
{
    (void)state;
    expect_echo("garbage", "end");
    expect_echo("twice", "end");
    expect_echo("burst", "end");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_report),
        cmocka_unit_test(test_garbage_lines_skipped),
        cmocka_unit_test(test_oversized_line),
        cmocka_unit_test(test_never_answers),
        cmocka_unit_test(test_answers_twice),
        cmocka_unit_test(test_crash_mid_call),
        cmocka_unit_test(test_server_requests_answered),
        cmocka_unit_test(test_list_changed_coalesced),
        cmocka_unit_test(test_restart_gives_up),
        cmocka_unit_test(test_everything_still_works),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
