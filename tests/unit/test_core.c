/* Core: error codes, error details, buffers, JSON helpers, context and logging. */
#include <string.h>

#include "core/buf.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "testutil.h"

static void test_error_codes(void **state)
{
    (void)state;
    assert_int_equal(CGW_EINVAL, -EINVAL);
    assert_int_equal(CGW_ETIMEDOUT, -ETIMEDOUT);
    assert_string_equal(cgw_strerror(CGW_OK), "success");
    assert_string_equal(cgw_strerror(CGW_ECLOSED), "closed");
    assert_string_equal(cgw_err_name(CGW_ETRIMMED), "ETRIMMED");
    assert_string_equal(cgw_strerror(-99999), "unknown error");
    assert_string_equal(cgw_err_name(12345), "UNKNOWN");
    assert_true(CGW_ECLOSED < 0 && CGW_EUSAGE < 0);
}

static void test_error_detail(void **state)
{
    (void)state;
    cgw_error_t e;
    cgw_error_clear(&e);
    assert_int_equal(cgw_error_set(&e, CGW_EJSON, "bad %d", 7), CGW_EJSON);
    assert_int_equal(e.code, CGW_EJSON);
    assert_string_equal(e.message, "bad 7");
    assert_int_equal(cgw_error_set(NULL, CGW_EIO, "ignored"), CGW_EIO);
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cgw_error_set(&e, CGW_EIO, "%s", big);
    assert_int_equal(strlen(e.message), sizeof(e.message) - 1);
}

static void test_buf(void **state)
{
    (void)state;
    cgw_buf_t b = CGW_BUF_INIT;
    assert_int_equal(cgw_buf_append_str(&b, "hello"), CGW_OK);
    assert_int_equal(cgw_buf_appendf(&b, " %s %d", "world", 42), CGW_OK);
    assert_string_equal(b.data, "hello world 42");
    cgw_buf_consume(&b, 6);
    assert_string_equal(b.data, "world 42");
    b.limit = 10;
    assert_int_equal(cgw_buf_append_str(&b, "toolong"), CGW_E2BIG);
    assert_string_equal(b.data, "world 42");
    size_t n;
    char *s = cgw_buf_steal(&b, &n);
    assert_int_equal(n, 8);
    assert_null(b.data);
    cgw_free(s);
    cgw_buf_free(&b);
}

static void test_json(void **state)
{
    (void)state;
    json_t *v = NULL;
    cgw_error_t e;
    cgw_error_clear(&e);
    const char *src = "{\"a\":\"x\",\"n\":9007199254740993,\"f\":1.5,\"b\":true}";
    assert_int_equal(cgw_json_parse(src, strlen(src), &v, &e), CGW_OK);
    assert_string_equal(cgw_json_str(v, "a", NULL), "x");
    assert_null(cgw_json_str(v, "n", NULL));
    assert_true(cgw_json_int(v, "n", 0) == 9007199254740993LL);
    assert_true(cgw_json_num(v, "f", 0) == 1.5);
    assert_int_equal(cgw_json_bool(v, "b", 0), 1);
    assert_int_equal(cgw_json_bool(v, "missing", -1), -1);
    size_t len;
    char *out = cgw_json_dump(v, &len);
    assert_string_equal(out, "{\"a\":\"x\",\"n\":9007199254740993,\"f\":1.5,\"b\":true}");
    cgw_free(out);
    assert_null(cgw_json_dump(NULL, &len));
    json_decref(v);

    const char *bad = "{\"a\":\n  oops}";
    assert_int_equal(cgw_json_parse(bad, strlen(bad), &v, &e), CGW_EJSON);
    assert_int_equal(e.line, 2);
    assert_non_null(strstr(e.message, "line 2"));
    const char bad_utf8[] = "\"\xff\xfe\"";
    assert_int_equal(cgw_json_parse(bad_utf8, sizeof(bad_utf8) - 1, &v, NULL), CGW_EJSON);
    assert_int_equal(cgw_json_parse("{} x", 4, &v, NULL), CGW_EJSON);
}

struct captured {
    int count;
    cgw_log_level_t level;
    char msg[512];
};

static void capture_cb(cgw_log_level_t level, const char *component, const char *msg,
                       void *user)
{
    struct captured *c = user;
    (void)component;
    c->count++;
    c->level = level;
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static void test_ctx_logging_redacts(void **state)
{
    (void)state;
    struct captured cap = {0};
    cgw_ctx_options_t o;
    cgw_ctx_options_init(&o);
    o.log_cb = capture_cb;
    o.log_user = &cap;
    o.log_level = CGW_LOG_INFO;
    cgw_ctx_t *ctx = NULL;
    assert_int_equal(cgw_ctx_new(&o, &ctx), CGW_OK);
    assert_non_null(cgw_ctx_base(ctx));

    cgw_ctx_log(ctx, CGW_LOG_DEBUG, "t", "dropped");
    assert_int_equal(cap.count, 0);
    assert_int_equal(cgw_ctx_add_secret(ctx, "short"), CGW_EINVAL);
    assert_int_equal(cgw_ctx_add_secret(ctx, "my-bearer-token-123"), CGW_OK);
    cgw_ctx_log(ctx, CGW_LOG_WARN, "t", "auth=%s key=%s end", "my-bearer-token-123",
                "sk-ant-api03-abcDEF_123");
    assert_int_equal(cap.count, 1);
    assert_int_equal(cap.level, CGW_LOG_WARN);
    assert_string_equal(cap.msg, "auth=[REDACTED] key=[REDACTED] end");

    char out[16];
    cgw_ctx_redact(ctx, "xx my-bearer-token-123 yy", out, sizeof(out));
    assert_string_equal(out, "xx [REDACTED] y");
    /* Without a context only the key shape is caught; a mark that does not fit is left out
     * whole rather than cut. */
    assert_int_equal(cgw_ctx_redact(NULL, "k=sk-ant-x1_y my-bearer-token-123", out, sizeof(out)),
                     15);
    assert_string_equal(out, "k=[REDACTED] my");
    char tiny[8];
    assert_int_equal(cgw_ctx_redact(ctx, "ab sk-ant-abc", tiny, sizeof(tiny)), 3);
    assert_string_equal(tiny, "ab ");

    cgw_log_level_t lvl;
    assert_int_equal(cgw_log_level_parse("DEBUG", &lvl), CGW_OK);
    assert_int_equal(lvl, CGW_LOG_DEBUG);
    assert_int_equal(cgw_log_level_parse("loud", &lvl), CGW_EINVAL);
    cgw_ctx_set_log_level(ctx, CGW_LOG_OFF);
    cgw_ctx_log(ctx, CGW_LOG_ERROR, "t", "off");
    assert_int_equal(cap.count, 1);
    cgw_ctx_free(ctx);
}

static int at_free_order[3];
static int at_free_n;
static void record_free(void *arg)
{
    at_free_order[at_free_n++] = (int)(intptr_t)arg;
}

static void test_ctx_slots_and_teardown(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    assert_non_null(ctx);
    assert_null(*cgw__ctx_slot(ctx, CGW_CTX_SLOT_CURLM));
    at_free_n = 0;
    assert_int_equal(cgw__ctx_at_free(ctx, record_free, (void *)(intptr_t)1), CGW_OK);
    assert_int_equal(cgw__ctx_at_free(ctx, record_free, (void *)(intptr_t)2), CGW_OK);
    cgw_ctx_free(ctx);
    assert_int_equal(at_free_n, 2);
    assert_int_equal(at_free_order[0], 2);
    assert_int_equal(at_free_order[1], 1);
    cgw_ctx_free(NULL);
}

static void test_two_contexts_independent(void **state)
{
    (void)state;
    cgw_ctx_t *a = cgw_test_ctx_new(), *b = cgw_test_ctx_new();
    assert_ptr_not_equal(cgw_ctx_base(a), cgw_ctx_base(b));
    cgw_ctx_set_log_level(a, CGW_LOG_ERROR);
    assert_int_not_equal(cgw_ctx_log_level(b), CGW_LOG_ERROR);
    cgw_ctx_free(a);
    cgw_ctx_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_error_detail),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_ctx_logging_redacts),
        cmocka_unit_test(test_ctx_slots_and_teardown),
        cmocka_unit_test(test_two_contexts_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
