/* Request building, auth options, beta merging, the thinking rule and the retry policy
 * functions of the Anthropic client. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/json.h"
#include "llm/llm_int.h"
#include "testutil.h"

#define KEY "sk-test-0123456789abcdef"

static cgw_ctx_t *g_ctx;

static int setup(void **state)
{
    (void)state;
    g_ctx = cgw_test_ctx_new();
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("ANTHROPIC_AUTH_TOKEN");
    unsetenv("ANTHROPIC_BASE_URL");
    return g_ctx == NULL;
}

static int teardown(void **state)
{
    (void)state;
    cgw_ctx_free(g_ctx);
    return 0;
}

static cgw_anthropic_t *client_with(cgw_anthropic_options_t *o)
{
    cgw_anthropic_t *c = NULL;
    cgw_error_t err;
    int rc = cgw_anthropic_new(g_ctx, o, &c, &err);
    if (rc != CGW_OK) {
        fail_msg("cgw_anthropic_new: %s", err.message);
    }
    return c;
}

static cgw_anthropic_t *api_client(void)
{
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.api_key = KEY;
    return client_with(&o);
}

/* Builds the body and parses it; fails the test if it is not valid JSON. */
static json_t *body_of(cgw_anthropic_t *c, const cgw_anthropic_request_t *req)
{
    char *body = NULL;
    size_t len = 0;
    cgw_error_t err;
    assert_int_equal(cgw_anthropic_build_body(c, req, &body, &len, &err), CGW_OK);
    assert_int_equal(strlen(body), len);
    json_t *v = NULL;
    int rc = cgw_json_parse(body, len, &v, &err);
    if (rc != CGW_OK) {
        fail_msg("body is not JSON (%s): %s", err.message, body);
    }
    cgw_free(body);
    return v;
}

static void test_defaults_and_tools_always(void **state)
{
    (void)state;
    cgw_anthropic_t *c = api_client();
    cgw_conversation_t *conv = NULL;
    assert_int_equal(cgw_conversation_new(&conv), CGW_OK);
    assert_int_equal(cgw_conversation_append_text(conv, "user", "hi"), CGW_OK);
    cgw_anthropic_request_t req = {.conversation = conv};
    json_t *b = body_of(c, &req);
    assert_string_equal(cgw_json_str(b, "model", ""), "claude-sonnet-4-6");
    assert_int_equal(cgw_json_int(b, "max_tokens", 0), 16000);
    assert_true(json_is_true(json_object_get(b, "stream")));
    assert_true(json_is_array(json_object_get(b, "tools")));
    assert_int_equal(json_array_size(json_object_get(b, "tools")), 0);
    assert_null(json_object_get(b, "system"));
    /* sonnet-4-6 -> adaptive thinking */
    assert_string_equal(cgw_json_str(json_object_get(b, "thinking"), "type", ""), "adaptive");
    assert_null(json_object_get(b, "temperature"));
    assert_null(cgw_anthropic_beta_header(c));
    json_decref(b);
    cgw_conversation_free(conv);
    cgw_anthropic_free(c);
}

static void test_system_string_is_cached_block(void **state)
{
    (void)state;
    cgw_anthropic_t *c = api_client();
    cgw_conversation_t *conv = NULL;
    cgw_conversation_new(&conv);
    cgw_conversation_append_text(conv, "user", "hi");
    cgw_anthropic_request_t req = {.conversation = conv,
                                   .system = "Be brief. \"quoted\"\n",
                                   .tools_json = "[{\"name\":\"t\",\"input_schema\":{\"type\":"
                                                 "\"object\"}}]"};
    json_t *b = body_of(c, &req);
    json_t *sys = json_object_get(b, "system");
    assert_int_equal(json_array_size(sys), 1);
    json_t *blk = json_array_get(sys, 0);
    assert_string_equal(cgw_json_str(blk, "type", ""), "text");
    assert_string_equal(cgw_json_str(blk, "text", ""), "Be brief. \"quoted\"\n");
    assert_string_equal(cgw_json_str(json_object_get(blk, "cache_control"), "type", ""),
                        "ephemeral");
    assert_string_equal(cgw_json_str(json_array_get(json_object_get(b, "tools"), 0), "name", ""),
                        "t");
    json_decref(b);
    /* An empty system prompt sends no system field; system_json wins and is spliced. */
    req.system = "";
    b = body_of(c, &req);
    assert_null(json_object_get(b, "system"));
    json_decref(b);
    req.system = "ignored";
    req.system_json = "[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B\"}]";
    b = body_of(c, &req);
    assert_int_equal(json_array_size(json_object_get(b, "system")), 2);
    json_decref(b);
    cgw_conversation_free(conv);
    cgw_anthropic_free(c);
}

/* The spliced body must equal (as JSON) the body built as one tree and dumped. */
static void test_spliced_body_equals_tree(void **state)
{
    (void)state;
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.api_key = KEY;
    o.model = "claude-sonnet-4-5";
    o.max_tokens = 4096;
    o.extra_body = "{\"metadata\":{\"user_id\":\"u-1\"},\"temperature\":0.5}";
    cgw_anthropic_t *c = client_with(&o);
    cgw_conversation_t *conv = NULL;
    cgw_conversation_new(&conv);
    json_t *msgs = json_array();
    const char *texts[] = {
        "{\"role\":\"user\",\"content\":\"h\\u00e9llo \\\"x\\\" \\n\"}",
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hm  \","
        "\"signature\":\"EqQBCkYIAxgCIkD+/==\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\","
        "\"name\":\"calc\",\"input\":{\"a\":1,\"big\":9007199254740993}}]}",
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":\"2\",\"is_error\":false}]}",
    };
    for (size_t i = 0; i < 3; i++) {
        cgw_error_t err;
        assert_int_equal(cgw_conversation_append_json(conv, texts[i], strlen(texts[i]), &err),
                         CGW_OK);
        json_array_append_new(msgs, json_loads(texts[i], 0, NULL));
    }
    assert_int_equal(cgw_conversation_count(conv), 3);
    const char *tools = "[{\"name\":\"calc\",\"input_schema\":{\"type\":\"object\"}}]";
    cgw_anthropic_request_t req = {.conversation = conv, .system = "sys", .tools_json = tools};
    json_t *spliced = body_of(c, &req);

    json_t *tree =
        json_pack("{s:s, s:i, s:b, s:[{s:s, s:s, s:{s:s}}], s:{s:s, s:i}, s:{s:s},"
                  " s:f, s:o, s:o}",
                  "model", "claude-sonnet-4-5", "max_tokens", 4096, "stream", 1, "system", "type",
                  "text", "text", "sys", "cache_control", "type", "ephemeral", "thinking", "type",
                  "enabled", "budget_tokens", 3072, "metadata", "user_id", "u-1", "temperature",
                  0.5, "tools", json_loads(tools, 0, NULL), "messages", msgs);
    assert_non_null(tree);
    if (!json_equal(spliced, tree)) {
        char *a = json_dumps(spliced, JSON_COMPACT), *t = json_dumps(tree, JSON_COMPACT);
        fail_msg("spliced != tree\n%s\n%s", a, t);
    }
    /* Byte-exact message bytes: the big integer and the signature survive. */
    cgw_str_t m1 = cgw_conversation_get(conv, 1);
    assert_non_null(memmem(m1.ptr, m1.len, "9007199254740993", 16));
    assert_non_null(memmem(m1.ptr, m1.len, "EqQBCkYIAxgCIkD+/==", 19));
    assert_null(cgw_conversation_get(conv, 3).ptr);
    /* A reply becomes an assistant message with the content as received. */
    json_t *reply = json_loads("{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"
                               "\"assistant\",\"content\":[{\"type\":\"redacted_thinking\","
                               "\"data\":\"EmwKAhgB\"}],\"usage\":{}}",
                               0, NULL);
    assert_int_equal(cgw_conversation_append_reply(conv, reply), CGW_OK);
    cgw_str_t m3 = cgw_conversation_get(conv, 3);
    assert_string_equal(m3.ptr, "{\"role\":\"assistant\",\"content\":[{\"type\":"
                                "\"redacted_thinking\",\"data\":\"EmwKAhgB\"}]}");
    json_decref(reply);
    cgw_conversation_truncate(conv, 1);
    assert_int_equal(cgw_conversation_count(conv), 1);
    json_decref(spliced);
    json_decref(tree);
    cgw_conversation_free(conv);
    cgw_anthropic_free(c);
}

static void test_conversation_rejects_bad_messages(void **state)
{
    (void)state;
    cgw_conversation_t *conv = NULL;
    cgw_conversation_new(&conv);
    cgw_error_t err;
    assert_int_equal(cgw_conversation_append_json(conv, "{\"role\":", 8, &err), CGW_EJSON);
    assert_int_equal(cgw_conversation_append_json(conv, "[1]", 3, &err), CGW_EINVAL);
    assert_int_equal(cgw_conversation_append_json(conv, "{\"content\":\"x\"}", 15, &err),
                     CGW_EINVAL);
    assert_int_equal(cgw_conversation_append_text(conv, "user", "\xff\xfe"), CGW_EINVAL);
    assert_int_equal(cgw_conversation_append(conv, NULL), CGW_EINVAL);
    /* Deeper than the serializer goes (only a program can build that; the parser stops
     * first): refused, not reported as out of memory. */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < CGW_JSON_MAX_DEPTH; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    json_t *deep_msg = json_pack("{s:s,s:o}", "role", "user", "content", deep);
    assert_int_equal(cgw_conversation_append(conv, deep_msg), CGW_EINVAL);
    json_decref(deep_msg);
    json_t *no_content = json_pack("{s:s}", "type", "message");
    assert_int_equal(cgw_conversation_append_reply(conv, no_content), CGW_EINVAL);
    assert_int_equal(cgw_conversation_append_reply(conv, NULL), CGW_EINVAL);
    json_decref(no_content);
    assert_int_equal(cgw_conversation_count(conv), 0);
    /* An empty conversation still gives a valid body. */
    cgw_anthropic_t *c = api_client();
    cgw_anthropic_request_t req = {.conversation = conv};
    json_t *b = body_of(c, &req);
    assert_int_equal(json_array_size(json_object_get(b, "messages")), 0);
    json_decref(b);
    req.conversation = NULL;
    char *body = NULL;
    size_t len;
    assert_int_equal(cgw_anthropic_build_body(c, &req, &body, &len, &err), CGW_EINVAL);
    cgw_anthropic_free(c);
    cgw_conversation_free(conv);
}

static void test_thinking_rule(void **state)
{
    (void)state;
    assert_int_equal(cgw_anthropic_thinking_for("claude-sonnet-4-6", 16000), CGW_THINKING_ADAPTIVE);
    assert_int_equal(cgw_anthropic_thinking_for("claude-opus-4-6", 16000), CGW_THINKING_ADAPTIVE);
    assert_int_equal(cgw_anthropic_thinking_for("claude-sonnet-4-5-20250929", 16000),
                     CGW_THINKING_ENABLED);
    assert_int_equal(cgw_anthropic_thinking_for("claude-opus-4-5", 16000), CGW_THINKING_ENABLED);
    assert_int_equal(cgw_anthropic_thinking_for("claude-sonnet-4-20250514", 16000),
                     CGW_THINKING_ENABLED);
    assert_int_equal(cgw_anthropic_thinking_for("claude-3-5-haiku", 16000), CGW_THINKING_OFF);
    assert_int_equal(cgw_anthropic_thinking_for("claude-sonnet-4-6", 2047), CGW_THINKING_OFF);
    assert_int_equal(cgw_anthropic_thinking_for(NULL, 16000), CGW_THINKING_OFF);

    cgw_conversation_t *conv = NULL;
    cgw_conversation_new(&conv);
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.api_key = KEY;
    cgw_anthropic_t *c = client_with(&o);
    /* Budget min(10000, max_tokens - 1024) for the per-request model override. */
    cgw_anthropic_request_t req = {
        .conversation = conv, .model = "claude-sonnet-4-5", .max_tokens = 32000};
    json_t *b = body_of(c, &req);
    json_t *t = json_object_get(b, "thinking");
    assert_string_equal(cgw_json_str(t, "type", ""), "enabled");
    assert_int_equal(cgw_json_int(t, "budget_tokens", 0), 10000);
    json_decref(b);
    req.model = "claude-haiku-3";
    b = body_of(c, &req);
    assert_null(json_object_get(b, "thinking"));
    json_decref(b);
    cgw_anthropic_free(c);
    /* Overrides: off, and enabled with an explicit budget. */
    o.thinking = CGW_THINKING_OFF;
    c = client_with(&o);
    req.model = NULL;
    b = body_of(c, &req);
    assert_null(json_object_get(b, "thinking"));
    json_decref(b);
    cgw_anthropic_free(c);
    o.thinking = CGW_THINKING_ENABLED;
    o.thinking_budget = 2000;
    c = client_with(&o);
    b = body_of(c, &req);
    assert_int_equal(cgw_json_int(json_object_get(b, "thinking"), "budget_tokens", 0), 2000);
    json_decref(b);
    cgw_anthropic_free(c);
    cgw_conversation_free(conv);
}

static void test_beta_merge(void **state)
{
    (void)state;
    cgw_buf_t b = CGW_BUF_INIT;
    assert_int_equal(cgw__beta_merge(&b, "oauth-2025-04-20"), CGW_OK);
    assert_int_equal(cgw__beta_merge(&b, " oauth-2025-04-20b , x ,, oauth-2025-04-20,x"), CGW_OK);
    assert_int_equal(cgw__beta_merge(&b, ""), CGW_OK);
    assert_int_equal(cgw__beta_merge(&b, NULL), CGW_OK);
    assert_string_equal(b.data, "oauth-2025-04-20,oauth-2025-04-20b,x");
    cgw_buf_free(&b);

    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.auth_mode = CGW_AUTH_OAUTH;
    o.auth_token = "tok-0123456789abcdef";
    const char *betas[] = {"interleaved-thinking-2025-05-14,oauth-2025-04-20", "new-beta-1"};
    const char *headers[] = {"anthropic-beta: new-beta-1, other-2", "x-trace: 7"};
    o.betas = betas;
    o.nbetas = 2;
    o.headers = headers;
    o.nheaders = 2;
    cgw_anthropic_t *c = client_with(&o);
    assert_string_equal(cgw_anthropic_beta_header(c),
                        "oauth-2025-04-20,interleaved-thinking-2025-05-14,new-beta-1,other-2");
    cgw_anthropic_free(c);
}

static void test_options_errors(void **state)
{
    (void)state;
    cgw_anthropic_options_t o;
    cgw_anthropic_t *c = NULL;
    cgw_error_t err;
    cgw_anthropic_options_init(&o);
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_ENOCRED);
    assert_null(c);
    o.auth_mode = CGW_AUTH_OAUTH;
    o.api_key = KEY; /* the wrong credential for the mode */
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_ENOCRED);
    setenv("ANTHROPIC_AUTH_TOKEN", "env-token-0123456789", 1);
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_OK);
    cgw_anthropic_free(c);
    unsetenv("ANTHROPIC_AUTH_TOKEN");

    const char *bad_headers[][1] = {{"x-api-key: other"},        {"Authorization: Bearer z"},
                                    {"anthropic-version: 2020"}, {"no colon"},
                                    {"x-a: b\r\nx-b: c"},        {"bad name: v"}};
    cgw_anthropic_options_init(&o);
    o.api_key = KEY;
    for (size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
        o.headers = bad_headers[i];
        o.nheaders = 1;
        assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EINVAL);
        assert_true(err.message[0] != '\0');
    }
    o.nheaders = 0;
    o.extra_body = "[1]";
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EJSON);
    o.extra_body = "{\"messages\":[]}";
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EINVAL);
    o.extra_body = "{bad";
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EJSON);
    o.extra_body = NULL;
    o.base_url = "ftp://x";
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EINVAL);
    o.base_url = NULL;
    o.max_tokens = 0;
    assert_int_equal(cgw_anthropic_new(g_ctx, &o, &c, &err), CGW_EINVAL);
    assert_int_equal(cgw_anthropic_new(NULL, &o, &c, &err), CGW_EINVAL);

    assert_int_equal(cgw_auth_mode_parse(" OAuth "), CGW_AUTH_OAUTH);
    assert_int_equal(cgw_auth_mode_parse("api"), CGW_AUTH_API);
    assert_int_equal(cgw_auth_mode_parse("oauth2"), CGW_AUTH_API);
    assert_int_equal(cgw_auth_mode_parse(NULL), CGW_AUTH_API);
}

static void test_base_url_and_secret(void **state)
{
    (void)state;
    setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/", 1);
    cgw_anthropic_t *c = api_client();
    assert_string_equal(c->url, "http://127.0.0.1:9/v1/messages");
    cgw_anthropic_free(c);
    unsetenv("ANTHROPIC_BASE_URL");
    c = api_client();
    assert_string_equal(c->url, "https://api.anthropic.com/v1/messages");
    cgw_anthropic_free(c);
    /* The key is registered as a secret of the context. */
    char out[128];
    cgw_ctx_redact(g_ctx, "key=" KEY ".", out, sizeof(out));
    assert_string_equal(out, "key=[REDACTED].");
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cgw_anthropic_backoff_ms(0, 0.0), 500);
    assert_int_equal(cgw_anthropic_backoff_ms(1, 0.0), 1000);
    assert_int_equal(cgw_anthropic_backoff_ms(2, 0.0), 2000);
    assert_int_equal(cgw_anthropic_backoff_ms(3, 0.0), 4000);
    assert_int_equal(cgw_anthropic_backoff_ms(4, 0.0), 8000);
    assert_int_equal(cgw_anthropic_backoff_ms(10, 0.0), 8000);
    assert_int_equal(cgw_anthropic_backoff_ms(100, 0.0), 8000);
    assert_int_equal(cgw_anthropic_backoff_ms(0, 0.5), 437);
    assert_int_equal(cgw_anthropic_backoff_ms(4, 0.999999), 6000);
    assert_int_equal(cgw_anthropic_backoff_ms(-1, 2.0), 500);
}

static void test_retry_after(void **state)
{
    (void)state;
    int64_t now = 1700000000;
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, NULL, now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms("250", NULL, now), 250);
    assert_int_equal(cgw_anthropic_retry_after_ms("12.5", "3", now), 13);
    assert_int_equal(cgw_anthropic_retry_after_ms("0.4", NULL, now), 1); /* rounded up */
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "3", now), 3000);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, " 0.25 ", now), 250);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "60", now), 60000);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "61", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "0", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "-2", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "abc", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "nan", now), -1);
    /* A parsable retry-after-ms decides alone (even when out of range); junk falls through. */
    assert_int_equal(cgw_anthropic_retry_after_ms("0", "5", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms("junk", "5", now), 5000);
    /* HTTP date: 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT. */
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "Tue, 14 Nov 2023 22:13:30 GMT", now),
                     10000);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "Tue, 14 Nov 2023 22:13:10 GMT", now), -1);
    assert_int_equal(cgw_anthropic_retry_after_ms(NULL, "Tue, 14 Nov 2023 23:13:20 GMT", now), -1);
}

static void test_retry_rules(void **state)
{
    (void)state;
    long yes[] = {408, 409, 429, 500, 502, 503, 504, 529};
    long no[] = {400, 401, 402, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(cgw__retry_status(yes[i], -1));
        assert_false(cgw__retry_status(yes[i], 0));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_false(cgw__retry_status(no[i], -1));
        assert_true(cgw__retry_status(no[i], 1));
    }
    assert_true(cgw__retry_event_type("overloaded_error"));
    assert_true(cgw__retry_event_type("api_error"));
    assert_false(cgw__retry_event_type("invalid_request_error"));
    assert_false(cgw__retry_event_type(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_tools_always),
        cmocka_unit_test(test_system_string_is_cached_block),
        cmocka_unit_test(test_spliced_body_equals_tree),
        cmocka_unit_test(test_conversation_rejects_bad_messages),
        cmocka_unit_test(test_thinking_rule),
        cmocka_unit_test(test_beta_merge),
        cmocka_unit_test(test_options_errors),
        cmocka_unit_test(test_base_url_and_secret),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
