/* JSON-RPC classification, building and id sniffing. */
#include <string.h>

#include "core/json.h"
#include "proto/jsonrpc.h"
#include "testutil.h"

static cgw__rpc_kind_t kind_of(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    cgw__rpc_msg_t m;
    cgw__rpc_classify(v, &m, NULL);
    json_decref(v);
    return m.kind;
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"roots/list\"}"),
                     CGW_RPC_REQUEST);
    assert_int_equal(
        kind_of("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"ping\",\"params\":{}}"),
        CGW_RPC_REQUEST);
    assert_int_equal(
        kind_of("{\"method\":\"notifications/tools/list_changed\",\"jsonrpc\":\"2.0\"}"),
        CGW_RPC_NOTIFICATION);
    assert_int_equal(kind_of("{\"result\":{},\"jsonrpc\":\"2.0\",\"id\":3}"), CGW_RPC_RESULT);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601,"
                             "\"message\":\"x\"}}"),
                     CGW_RPC_ERROR);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700}}"),
                     CGW_RPC_ERROR);
    /* Invalid ones. */
    const char *bad[] = {
        "[{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]", /* batch */
        "42",
        "{\"id\":1,\"method\":\"x\"}", /* no jsonrpc */
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", /* null request id */
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":true,\"result\":{}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"no code\"}}",
        "{\"jsonrpc\":\"2.0\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(kind_of(bad[i]), CGW_RPC_INVALID);
    }
    cgw_error_t err;
    json_t *v = json_loads("[1]", 0, NULL);
    cgw__rpc_msg_t m;
    assert_int_equal(cgw__rpc_classify(v, &m, &err), CGW_EPROTO);
    assert_non_null(strstr(err.message, "batch"));
    json_decref(v);
}

static void test_write(void **state)
{
    (void)state;
    cgw_buf_t b = CGW_BUF_INIT;
    json_t *p = json_pack("{s:s}", "k", "v\n");
    assert_int_equal(cgw__rpc_write_request(&b, 7, "tools/call", p), CGW_OK);
    assert_string_equal(b.data,
                        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
                        "{\"k\":\"v\\n\"}}\n");
    cgw_buf_reset(&b);
    /* Negative and zero ids, a method that needs escaping. */
    assert_int_equal(cgw__rpc_write_request(&b, -5, "we\"ird\n", NULL), CGW_OK);
    assert_int_equal(cgw__rpc_write_request(&b, 0, "ping", NULL), CGW_OK);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":-5,\"method\":\"we\\\"ird\\n\"}\n"
                                "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}\n");
    cgw_buf_reset(&b);
    assert_int_equal(cgw__rpc_write_notification(&b, "notifications/initialized", NULL), CGW_OK);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
    cgw_buf_reset(&b);
    json_t *id = json_string("s1");
    assert_int_equal(cgw__rpc_write_result(&b, id, NULL), CGW_OK);
    assert_string_equal(b.data, "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}\n");
    cgw_buf_reset(&b);
    assert_int_equal(cgw__rpc_write_error(&b, id, -32601, "Method not found"), CGW_OK);
    /* What we write classifies as what we meant. */
    json_t *v = json_loadb(b.data, b.len, 0, NULL);
    cgw__rpc_msg_t m;
    assert_int_equal(cgw__rpc_classify(v, &m, NULL), CGW_OK);
    assert_int_equal(m.kind, CGW_RPC_ERROR);
    assert_int_equal(m.err_code, -32601);
    assert_string_equal(m.err_message, "Method not found");
    json_decref(v);
    json_decref(id);
    json_decref(p);
    cgw_buf_free(&b);
}

static int sniff(const char *head, const char *tail, json_int_t *id)
{
    return cgw__rpc_sniff_id(head, strlen(head), tail, tail != NULL ? strlen(tail) : 0, id);
}

static void test_sniff(void **state)
{
    (void)state;
    json_int_t id = -1;
    assert_true(sniff("{\"jsonrpc\":\"2.0\",\"id\":12,\"result\":{\"content\":[", "xx\"}]}}", &id));
    assert_int_equal(id, 12);
    /* The TS SDK puts the id last. */
    assert_true(sniff("{\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"aaa",
                      "aaa\"}]},\"jsonrpc\":\"2.0\",\"id\":5}", &id));
    assert_int_equal(id, 5);
    /* A nested id is not the message's. */
    assert_false(sniff("{\"result\":{\"x\":[", "{\"id\":5}]}}", &id));
    assert_false(sniff("{\"result\":{\"x\":[", "\"a\",\"id\":\"str\"}", &id));
    assert_false(sniff("garbage", "more garbage", &id));
    /* A short line kept whole in head. */
    assert_true(sniff("{\"result\":1,\"id\":3}", NULL, &id));
    assert_int_equal(id, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_sniff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
