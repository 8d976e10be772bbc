/* Result mapping against what the real server-everything sends: each tools/call answer is
 * taken off a raw stdio pipe (no client library in between) and mapped with
 * cgw__mcp_outcome_*, so the content rules are checked on real shapes, not only on the
 * shapes the spec describes. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ctx_int.h"
#include "core/json.h"
#include "mcp/mcp_result.h"
#include "testutil.h"

#define N_IDS 16

static struct {
    pid_t pid;
    int in, out;
    json_t *answers[N_IDS]; /* the response for each request id */
} S = {-1, -1, -1, {NULL}};

static void send_line(const char *line)
{
    size_t len = strlen(line);
    assert_int_equal(write(S.in, line, len), (ssize_t)len);
    assert_int_equal(write(S.in, "\n", 1), 1);
}

/* Reads lines until every id in [first, last] has been answered, or 15 s pass. */
static void collect(int first, int last)
{
    static char buf[1 << 20];
    static size_t used;
    uint64_t deadline = cgw__now_ms() + 15000;
    for (;;) {
        bool all = true;
        for (int id = first; id <= last; id++) {
            all = all && S.answers[id] != NULL;
        }
        if (all) {
            return;
        }
        struct pollfd p = {S.out, POLLIN, 0};
        uint64_t now = cgw__now_ms();
        assert_true(now < deadline);
        assert_true(poll(&p, 1, (int)(deadline - now)) > 0);
        ssize_t n = read(S.out, buf + used, sizeof(buf) - used - 1);
        assert_true(n > 0);
        used += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', used)) != NULL) {
            json_t *msg = NULL;
            if (cgw_json_parse(buf, (size_t)(nl - buf), &msg, NULL) == CGW_OK) {
                json_int_t id = cgw_json_int(msg, "id", -1);
                if (id >= 0 && id < N_IDS && json_object_get(msg, "method") == NULL) {
                    json_decref(S.answers[id]);
                    S.answers[id] = msg;
                    msg = NULL;
                }
                json_decref(msg);
            }
            used -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, used);
        }
    }
}

static int start_server(void **state)
{
    (void)state;
    char entry[1024];
    snprintf(entry, sizeof(entry),
             "%s/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
             cgw_test_npm_dir());
    if (access(entry, R_OK) != 0) {
        fprintf(stderr, "server-everything not installed (%s): run scripts/setup.sh\n", entry);
        return -1;
    }
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
        return -1;
    }
    S.pid = fork();
    if (S.pid == 0) {
        setpgid(0, 0);
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execlp("node", "node", entry, "stdio", (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    S.in = to_child[1];
    S.out = from_child[0];
    send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
              "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":"
              "\"cgw-test\",\"version\":\"1\"}}}");
    collect(1, 1);
    send_line("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    if (S.in >= 0) {
        close(S.in); /* servers exit on stdin EOF within milliseconds */
    }
    int status = 0, waited = 0;
    for (int i = 0; i < 300 && S.pid > 0; i++) {
        if ((waited = waitpid(S.pid, &status, WNOHANG)) == S.pid) {
            break;
        }
        usleep(10000);
    }
    if (S.pid > 0 && waited != S.pid) {
        kill(-S.pid, SIGKILL);
        waitpid(S.pid, &status, 0);
    }
    if (S.out >= 0) {
        close(S.out);
    }
    for (int i = 0; i < N_IDS; i++) {
        json_decref(S.answers[i]);
    }
    return 0;
}

/* Calls `tool` with `args` as request `id` and maps the answer. */
static void call(int id, const char *tool, const char *args, cgw_mcp_outcome_t *o)
{
    char line[512];
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\",\"arguments\":%s}}",
             id, tool, args);
    send_line(line);
    collect(id, id);
    const json_t *r = json_object_get(S.answers[id], "result");
    const json_t *e = json_object_get(S.answers[id], "error");
    int rc = r != NULL ? cgw__mcp_outcome_from_result(r, tool, o)
                       : cgw__mcp_outcome_from_rpc_error(e, o);
    assert_int_equal(rc, CGW_OK);
}

static const char *str_at(const json_t *v, const char *k1, const char *k2)
{
    const json_t *x = json_object_get(v, k1);
    return json_string_value(k2 != NULL ? json_object_get(x, k2) : x);
}

static void test_tiny_image(void **state)
{
    (void)state;
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    call(2, "get-tiny-image", "{}", &o);
    assert_string_equal(str_at(o.result, "text", NULL),
                        "Here's the image you requested:\nThe image above is the MCP logo.");
    assert_int_equal(json_array_size(o.content), 1);
    const json_t *b = json_array_get(o.content, 0);
    assert_string_equal(str_at(b, "type", NULL), "image");
    assert_string_equal(str_at(b, "source", "media_type"), "image/png");
    /* the data is passed on as the server sent it */
    const json_t *items = json_object_get(json_object_get(S.answers[2], "result"), "content");
    const char *sent = NULL;
    for (size_t i = 0; i < json_array_size(items); i++) {
        if (strcmp(str_at(json_array_get(items, i), "type", NULL), "image") == 0) {
            sent = str_at(json_array_get(items, i), "data", NULL);
        }
    }
    assert_non_null(sent);
    assert_string_equal(str_at(b, "source", "data"), sent);
    cgw__mcp_outcome_clear(&o);
}

static void test_resources(void **state)
{
    (void)state;
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    call(3, "get-resource-reference", "{\"resourceType\":\"Text\",\"resourceId\":1}", &o);
    const json_t *b = json_array_get(o.content, 0);
    assert_int_equal(json_array_size(o.content), 1);
    assert_string_equal(str_at(b, "type", NULL), "document");
    assert_string_equal(str_at(b, "title", NULL), "demo://resource/dynamic/text/1");
    assert_non_null(strstr(str_at(b, "source", "data"), "Resource 1: This is a plaintext"));
    assert_non_null(strstr(str_at(o.result, "text", NULL), "demo://resource/dynamic/text/1"));
    cgw__mcp_outcome_clear(&o);

    /* its "Blob" resource is base64 text/plain: decoded into a text document */
    call(4, "get-resource-reference", "{\"resourceType\":\"Blob\",\"resourceId\":2}", &o);
    b = json_array_get(o.content, 0);
    assert_string_equal(str_at(b, "type", NULL), "document");
    assert_string_equal(str_at(b, "source", "type"), "text");
    assert_non_null(strstr(str_at(b, "source", "data"), "Resource 2: This is a base64 blob"));
    cgw__mcp_outcome_clear(&o);

    call(5, "get-resource-links", "{\"count\":2}", &o);
    assert_int_equal(json_array_size(o.content), 2);
    assert_string_equal(str_at(json_array_get(o.content, 0), "text", NULL),
                        "[resource link] Blob Resource 1: demo://resource/dynamic/blob/1 "
                        "(text/plain) - Resource 1: plaintext resource");
    cgw__mcp_outcome_clear(&o);
}

static void test_structured_and_audience(void **state)
{
    (void)state;
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    call(6, "get-structured-content", "{\"location\":\"New York\"}", &o);
    assert_true(json_is_integer(json_object_get(o.result, "temperature")));
    assert_non_null(str_at(o.result, "conditions", NULL));
    assert_null(o.content);
    cgw__mcp_outcome_clear(&o);

    /* the debug message's image is annotated for the user only: not sent to the model */
    call(7, "get-annotated-message", "{\"messageType\":\"debug\",\"includeImage\":true}", &o);
    assert_non_null(strstr(str_at(o.result, "text", NULL), "Debug:"));
    assert_null(o.content);
    cgw__mcp_outcome_clear(&o);
}

static void test_errors(void **state)
{
    (void)state;
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    call(8, "get-resource-reference", "{\"resourceType\":\"text\",\"resourceId\":1}", &o);
    assert_null(o.result);
    assert_string_equal(str_at(o.error, "code", NULL), "mcp_tool_error");
    assert_string_equal(str_at(o.error, "sub_code", NULL), "parse_error");
    assert_non_null(strstr(str_at(o.error, "message", NULL), "Invalid arguments"));
    cgw__mcp_outcome_clear(&o);

    call(9, "no-such-tool", "{}", &o);
    assert_string_equal(str_at(o.error, "code", NULL), "mcp_tool_error");
    assert_string_equal(str_at(o.error, "sub_code", NULL), "not_found");
    cgw__mcp_outcome_clear(&o);

    /* a JSON-RPC error (unknown method) maps to tool_error with its code */
    send_line("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"bogus/method\",\"params\":{}}");
    collect(10, 10);
    assert_int_equal(cgw__mcp_outcome_from_rpc_error(json_object_get(S.answers[10], "error"), &o),
                     CGW_OK);
    assert_string_equal(str_at(o.error, "code", NULL), "tool_error");
    assert_int_equal(json_integer_value(json_object_get(o.error, "rpc_code")), -32601);
    cgw__mcp_outcome_clear(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_image),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_structured_and_audience),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
