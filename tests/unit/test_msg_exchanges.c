/* Recorded HTTP exchanges and one-JSON-per-line recordings of ../shared/fixtures/anthropic-sse:
 *   - Python inline snapshots (JSON lists of {request, response}, and older lists of raw SSE
 *     bodies): every 200 text/event-stream answer accumulates, survives random splits, and where
 *     the next request sends the answer back as the assistant turn, the accumulated content
 *     must match what the SDK sent (deep subset);
 *   - Go go-vcr cassettes (YAML): the same for the streamed interactions;
 *   - the Vercel AI SDK *.chunks.txt recordings (no SSE framing, several messages back to back
 *     in some files) and their two spliced/duplicated message_start anomalies. */
#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "msgstream.h"
#include "proto/msg_accum.h"
#include "testutil.h"

static int g_streams, g_pairs;

/* Accumulates one recorded SSE body; returns the message (new reference). */
static json_t *accumulate(const char *body, size_t len, const char *what)
{
    json_t *msg = NULL;
    cgw_error_t e;
    cgw_error_clear(&e);
    int rc = cgw_test_run_sse(body, len, NULL, 0, &msg, &e);
    if (rc != CGW_OK) {
        fail_msg("%s: %s %s", what, cgw_err_name(rc), e.message);
    }
    cgw_test_check_splits(body, len, what, false);
    g_streams++;
    return msg;
}

/* The assistant message the next request sent back after `req`'s history, or NULL. */
static const json_t *sent_back(const json_t *req_body, const json_t *next_body)
{
    size_t n = json_array_size(json_object_get(req_body, "messages"));
    const json_t *m = json_array_get(json_object_get(next_body, "messages"), n);
    const char *role = json_string_value(json_object_get(m, "role"));
    return role != NULL && strcmp(role, "assistant") == 0 ? m : NULL;
}

static void compare_sent_back(const json_t *msg, const json_t *assistant, const char *what)
{
    const json_t *want = json_object_get(assistant, "content");
    if (json_is_string(want)) {
        return; /* sent back as plain text: nothing block-shaped to compare */
    }
    cgw_test_assert_subset(want, json_object_get(msg, "content"), what);
    g_pairs++;
}

static bool is_stream(const json_t *resp)
{
    const char *ct =
        json_string_value(json_object_get(json_object_get(resp, "headers"), "content-type"));
    return json_integer_value(json_object_get(resp, "status_code")) == 200 && ct != NULL &&
           strstr(ct, "text/event-stream") != NULL && json_is_string(json_object_get(resp, "body"));
}

static void run_exchanges(const json_t *list, const char *what)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *x = json_array_get(list, i);
        const json_t *resp = json_object_get(x, "response");
        if (!is_stream(resp)) {
            continue;
        }
        const json_t *body = json_object_get(resp, "body");
        json_t *msg = accumulate(json_string_value(body), json_string_length(body), what);
        const json_t *next = json_array_get(list, i + 1);
        const json_t *back = sent_back(json_object_get(json_object_get(x, "request"), "body"),
                                       json_object_get(json_object_get(next, "request"), "body"));
        if (back != NULL) {
            compare_sent_back(msg, back, what);
        }
        json_decref(msg);
    }
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || n < 5 || strcmp(path + n - 5, ".json") != 0) {
        return 0;
    }
    json_t *list = json_load_file(path, 0, NULL);
    if (!json_is_array(list)) {
        json_decref(list);
        return 0;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *el = json_array_get(list, i);
        if (json_is_object(el) && json_object_get(el, "request") != NULL) {
            run_exchanges(list, path);
            break;
        }
        /* older snapshot format: raw response bodies as strings */
        if (json_is_string(el) && strncmp(json_string_value(el), "event:", 6) == 0) {
            json_decref(accumulate(json_string_value(el), json_string_length(el), path));
        }
    }
    json_decref(list);
    return 0;
}

static void test_python_snapshots(void **state)
{
    (void)state;
    g_streams = g_pairs = 0;
    assert_int_equal(nftw(cgw_test_fixture_path("anthropic-sdk-python"), visit, 16, FTW_PHYS), 0);
    /* 6 streamed answers in current snapshots + 7 raw bodies in the _history ones; 2 are sent
     * back in the next request (test_streaming_call_sync and ..._events) */
    assert_true(g_streams >= 13);
    assert_int_equal(g_pairs, 2);
}

/* ---- Go go-vcr cassettes: just enough YAML for their `body:` scalars ---------------------- */

/* A single-quoted YAML scalar starting after the opening quote: '' is a quote, a line break
 * folds to a space (an empty line to "\n") and continuation indentation is dropped. */
static const char *yaml_single_quoted(const char *p, cgw_buf_t *out)
{
    for (; *p != '\0'; p++) {
        if (*p == '\'' && p[1] == '\'') {
            cgw_buf_append_char(out, '\'');
            p++;
        } else if (*p == '\'') {
            return p + 1;
        } else if (*p == '\n') {
            int breaks = 0;
            while (*p == '\n' || *p == ' ') {
                breaks += *p == '\n';
                p++;
            }
            p--;
            for (int i = 1; i < breaks; i++) {
                cgw_buf_append_char(out, '\n');
            }
            if (breaks == 1) {
                cgw_buf_append_char(out, ' ');
            }
        } else {
            cgw_buf_append_char(out, *p);
        }
    }
    return p;
}

/* A `|+` block scalar whose lines are indented by `indent` spaces, starting at the line after
 * the indicator; empty lines are kept. */
static const char *yaml_block(const char *p, size_t indent, cgw_buf_t *out)
{
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t sp = 0;
        while (sp < n && p[sp] == ' ') {
            sp++;
        }
        if (n > 0 && sp < indent) {
            break; /* less indented, non-empty: the scalar ended */
        }
        if (n > indent) {
            cgw_buf_append(out, p + indent, n - indent);
        }
        cgw_buf_append_char(out, '\n');
        p = nl ? nl + 1 : p + n;
    }
    return p;
}

static void test_go_cassettes(void **state)
{
    (void)state;
    const char *files[] = {"tool_runner_next_streaming.yaml", "tool_runner_streaming_all.yaml"};
    g_streams = g_pairs = 0;
    for (size_t f = 0; f < 2; f++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "anthropic-sdk-go/toolrunner/testdata/cassettes/%s", files[f]);
        size_t len;
        char *y = cgw_test_read_fixture(rel, &len);
        json_t *prev_req = NULL, *prev_msg = NULL;
        for (const char *p = y; (p = strstr(p, "\n    body: ")) != NULL;) {
            p += 11;
            cgw_buf_t b = CGW_BUF_INIT;
            if (*p == '\'') {
                p = yaml_single_quoted(p + 1, &b);
                json_t *req = json_loadb(b.data, b.len, 0, NULL);
                assert_non_null(req);
                if (prev_msg != NULL && sent_back(prev_req, req) != NULL) {
                    compare_sent_back(prev_msg, sent_back(prev_req, req), rel);
                }
                json_decref(prev_req);
                json_decref(prev_msg);
                prev_req = req;
                prev_msg = NULL;
            } else if (strncmp(p, "|+\n", 3) == 0) {
                p = yaml_block(p + 3, 6, &b);
                prev_msg = accumulate(b.data, b.len, rel);
            }
            cgw_buf_free(&b);
        }
        json_decref(prev_req);
        json_decref(prev_msg);
        free(y);
    }
    assert_int_equal(g_streams, 3);
    assert_int_equal(g_pairs, 1); /* streaming_all sends its first answer back */
}

/* ---- Vercel AI SDK recordings: one event JSON per line ----------------------------------- */

#define VERCEL "vercel-ai/packages/anthropic/src/__fixtures__/"

typedef struct lines_run {
    int rc;
    int messages; /* messages completed (files hold several back to back) */
    json_t *last;
    cgw_error_t err;
} lines_run_t;

/* Feeds each line; after a message_stop, a following message_start begins the next message
 * (the recordings of multi-step calls are concatenated streams). */
static void run_lines(const char *text, size_t len, lines_run_t *r)
{
    cgw_msg_accum_t *a;
    assert_int_equal(cgw_msg_accum_new(NULL, &a), CGW_OK);
    memset(r, 0, sizeof(*r));
    const cgw_str_t none = {"", 0};
    for (const char *s = text, *end = text + len; s < end && r->rc == CGW_OK;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        if (e > s && cgw_msg_accum_complete(a)) {
            json_decref(r->last);
            r->last = json_incref((json_t *)cgw_msg_accum_message(a));
            r->messages++;
            cgw_msg_accum_reset(a);
        }
        if (e > s) {
            r->rc = cgw_msg_accum_feed(a, none, s, (size_t)(e - s), &r->err);
        }
        s = e + 1;
    }
    if (r->rc == CGW_OK) {
        r->rc = cgw_msg_accum_finish(a, &r->err);
    }
    if (r->rc == CGW_OK) {
        json_decref(r->last);
        r->last = json_incref((json_t *)cgw_msg_accum_message(a));
        r->messages++;
    }
    cgw_msg_accum_free(a);
}

static void run_vercel(const char *name, lines_run_t *r)
{
    char rel[512];
    snprintf(rel, sizeof(rel), VERCEL "%s", name);
    size_t len;
    char *text = cgw_test_read_fixture(rel, &len);
    run_lines(text, len, r);
    free(text);
}

static void test_vercel_all_files(void **state)
{
    (void)state;
    DIR *d = opendir(cgw_test_fixture_path(VERCEL));
    assert_non_null(d);
    struct dirent *de;
    int files = 0, messages = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 11 || strcmp(de->d_name + n - 11, ".chunks.txt") != 0) {
            continue;
        }
        lines_run_t r;
        run_vercel(de->d_name, &r);
        bool anomaly = strstr(de->d_name, "message-start") != NULL;
        if (anomaly) {
            /* a second message_start before message_stop: rejected, never merged */
            assert_int_equal(r.rc, CGW_EPROTO);
            assert_non_null(strstr(r.err.message, "second message_start"));
        } else if (r.rc != CGW_OK) {
            fail_msg("%s: %s %s", de->d_name, cgw_err_name(r.rc), r.err.message);
        }
        files++;
        messages += r.messages;
        json_decref(r.last);
    }
    closedir(d);
    assert_int_equal(files, 31);
    assert_true(messages >= 29 + 14 + 1 + 2 + 2 + 1); /* multi-message files counted in full */
}

static void expect_vercel(const char *name, int messages, const char *subset)
{
    lines_run_t r;
    run_vercel(name, &r);
    if (r.rc != CGW_OK) {
        fail_msg("%s: %s", name, r.err.message);
    }
    assert_int_equal(r.messages, messages);
    json_t *e = json_loads(subset, 0, NULL);
    assert_non_null(e);
    cgw_test_assert_subset(e, r.last, name);
    json_decref(e);
    json_decref(r.last);
}

static void test_vercel_contents(void **state)
{
    (void)state;
    /* a tool with no arguments: the only fragment is "" and the input becomes {} */
    expect_vercel("anthropic-tool-no-args.chunks.txt", 1,
                  "{\"content\":[{\"type\":\"text\"},{\"type\":\"tool_use\",\"name\":"
                  "\"updateIssueList\",\"input\":{}}],\"stop_reason\":\"tool_use\"}");
    /* MCP connector blocks kept verbatim, input streamed */
    expect_vercel("anthropic-mcp.1.chunks.txt", 1,
                  "{\"content\":[{\"type\":\"mcp_tool_use\",\"server_name\":\"echo\"},"
                  "{\"type\":\"mcp_tool_result\"},{\"type\":\"text\"}]}");
    expect_vercel("anthropic-message-delta-input-tokens.chunks.txt", 1,
                  "{\"stop_reason\":\"end_turn\"}");
    expect_vercel("anthropic-programmatic-tool-calling.1.chunks.txt", 15, "{\"type\":\"message\"}");
}

static void test_vercel_thinking_and_citations(void **state)
{
    (void)state;
    lines_run_t r;
    run_vercel("anthropic-clear-thinking.1.chunks.txt", &r);
    assert_int_equal(r.rc, CGW_OK);
    const json_t *th = json_array_get(json_object_get(r.last, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(th, "type")), "thinking");
    assert_true(json_string_length(json_object_get(th, "signature")) > 100); /* real signature */
    json_decref(r.last);

    run_vercel("anthropic-web-search-tool.1.chunks.txt", &r);
    assert_int_equal(r.rc, CGW_OK);
    size_t citations = 0;
    const json_t *content = json_object_get(r.last, "content");
    for (size_t i = 0; i < json_array_size(content); i++) {
        citations += json_array_size(json_object_get(json_array_get(content, i), "citations"));
    }
    assert_int_equal(json_array_size(content), 21);
    assert_int_equal(citations, 14); /* one per citations_delta */
    json_decref(r.last);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_snapshots),
        cmocka_unit_test(test_go_cassettes),
        cmocka_unit_test(test_vercel_all_files),
        cmocka_unit_test(test_vercel_contents),
        cmocka_unit_test(test_vercel_thinking_and_citations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
