/* cgw__delta_scan, the fast path for hot deltas: it must either decline or agree byte for
 * byte with jansson (JSON_ALLOW_NUL) on every input, and must decline whatever jansson
 * rejects. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "proto/delta_scan.h"
#include "testutil.h"

#define PRE "{\"type\":\"content_block_delta\",\"index\":"

/* Returns 1 if the fast path accepted; checks agreement with jansson either way. */
static int agree(const char *data, size_t len)
{
    cgw_buf_t scratch = CGW_BUF_INIT;
    cgw_delta_t d;
    int took = cgw__delta_scan(data, len, &d, &scratch);
    json_t *v = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
    if (took) {
        if (v == NULL) {
            fail_msg("fast path accepted what jansson rejects: %.*s", (int)len, data);
        }
        const char *key = d.kind == CGW_DELTA_TEXT    ? "text"
                          : d.kind == CGW_DELTA_INPUT ? "partial_json"
                                                      : "thinking";
        json_t *s = json_object_get(json_object_get(v, "delta"), key);
        assert_int_equal(json_string_length(s), scratch.len);
        assert_memory_equal(json_string_value(s), scratch.data ? scratch.data : "", scratch.len);
        assert_int_equal(json_integer_value(json_object_get(v, "index")), d.index);
    }
    json_decref(v);
    cgw_buf_free(&scratch);
    return took;
}

static int agree_str(const char *s)
{
    return agree(s, strlen(s));
}

static void test_accepts_api_shapes(void **state)
{
    (void)state;
    assert_true(agree_str(PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}"));
    assert_true(agree_str(PRE "12,\"delta\":{\"type\":\"text_delta\",\"text\":\"\"}}   \r\n"));
    assert_true(agree_str(PRE "1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":"
                              "\"{\\\"a\\\": [1, \"}}"));
    assert_true(agree_str(PRE "0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
                              "\"a\\tb\\n\\\\ \\/ \\b\\f\\r \\u00e9 \\u20ac \\ud83d\\ude00\"}}"));
    assert_true(agree_str(PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xc3\xa9\xe2\x82"
                              "\xac\xf0\x9f\x98\x80 \x7f\"}}"));
    static const char nul[] = PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\\u0000b\"}}";
    assert_true(agree(nul, sizeof(nul) - 1));
}

static void test_declines_other_shapes(void **state)
{
    (void)state;
    const char *no[] = {
        /* other field order, extra fields, other delta types */
        "{\"index\":0,\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":"
        "\"x\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\",\"extra\":1}}",
        PRE "0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"x\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}x",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x}}",
        /* numbers JSON spells differently or not at all */
        PRE "01,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
        PRE "-1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
        PRE "1.0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
        PRE "99999999999,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
        PRE ",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
        /* strings jansson rejects */
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\tb\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\x\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\ud800\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\udc00\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\ud800\\u0041\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\u12g4\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\u12\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xc0\xaf\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xed\xa0\x80\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xf4\x90\x80\x80\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xe2\x82\"}}",
        PRE "0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xff\"}}",
        "",
        PRE,
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (agree_str(no[i])) {
            fail_msg("case %zu accepted: %s", i, no[i]);
        }
    }
}

static void test_every_prefix(void **state)
{
    (void)state;
    /* every truncation of a valid event is declined or agrees (never reads past the end) */
    const char *full = PRE "3,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
                           "\"\\ud83d\\ude00 \xe2\x82\xac \\\" \\u0041\"}}";
    size_t n = strlen(full);
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i + 1);
        memcpy(copy, full, i);
        assert_false(agree(copy, i));
        free(copy);
    }
    assert_true(agree(full, n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_api_shapes),
        cmocka_unit_test(test_declines_other_shapes),
        cmocka_unit_test(test_every_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
