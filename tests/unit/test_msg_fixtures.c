/* The recorded streams of ../shared/fixtures/anthropic-sse (see its SOURCES.md) through
 * cgw_sse_parser_t + cgw_msg_accum_t:
 *   - PHP ga/ and beta/ captures (raw `curl -N -D -`: split at the blank line first) against
 *     their .json expected messages, "deep subset" with expected null = wildcard;
 *   - the Python/TS/Go SSE files against expectations written here from the recordings;
 *   (the recorded HTTP exchanges and the Vercel recordings: test_msg_exchanges.c);
 *   - every stream split at every byte boundary, fed byte by byte, split at random points,
 *     and with its line ends rewritten to CRLF and to CR, gives the same result as whole. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "msgstream.h"
#include "testutil.h"

/* ---- PHP SDK captures with expected messages ----------------------------------------------- */

static int run_php_pair(const char *dir, const char *name)
{
    char rel[512];
    size_t rlen, jlen, blen;
    int status = 0;
    snprintf(rel, sizeof(rel), "anthropic-sdk-php/fixtures/%s/%s.txt", dir, name);
    char *raw = cgw_test_read_fixture(rel, &rlen);
    const char *body = cgw_test_http_body(raw, rlen, &status, &blen);
    assert_non_null(body);
    assert_int_equal(status, 200);
    snprintf(rel, sizeof(rel), "anthropic-sdk-php/fixtures/%s/%s.json", dir, name);
    char *exp_text = cgw_test_read_fixture(rel, &jlen);
    json_t *expected = json_loadb(exp_text, jlen, 0, NULL);
    assert_non_null(expected);
    json_t *msg = NULL;
    cgw_error_t e;
    int rc = cgw_test_run_sse(body, blen, NULL, 0, &msg, &e);
    if (rc != CGW_OK) {
        fail_msg("%s: %s %s", rel, cgw_err_name(rc), e.message);
    }
    cgw_test_assert_subset(expected, msg, rel);
    cgw_test_check_splits(body, blen, rel, true);
    cgw_test_check_line_ends(body, blen, "\r\n", rel);
    cgw_test_check_line_ends(body, blen, "\r", rel);
    json_decref(msg);
    json_decref(expected);
    free(exp_text);
    free(raw);
    return 1;
}

static void test_php_pairs(void **state)
{
    (void)state;
    const char *dirs[] = {"ga", "beta"};
    int pairs = 0;
    for (size_t d = 0; d < 2; d++) {
        char rel[256];
        snprintf(rel, sizeof(rel), "anthropic-sdk-php/fixtures/%s", dirs[d]);
        DIR *dir = opendir(cgw_test_fixture_path(rel));
        assert_non_null(dir);
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t n = strlen(de->d_name);
            if (n > 4 && strcmp(de->d_name + n - 4, ".txt") == 0) {
                char name[256];
                snprintf(name, sizeof(name), "%.*s", (int)(n - 4), de->d_name);
                pairs += run_php_pair(dirs[d], name);
            }
        }
        closedir(dir);
    }
    assert_int_equal(pairs, 8); /* ga: 7, beta: 1 */
}

/* ---- SSE files with expectations written from the recordings ------------------------------ */

typedef struct sse_case {
    const char *rel;
    int code;
    const char *expected; /* deep subset of the final message, or a piece of the error */
} sse_case_t;

#define PY "anthropic-sdk-python/"
#define TS "anthropic-sdk-typescript/"
#define GO "anthropic-sdk-go/lib/betafallback/testdata/fallbackstream/"

static const sse_case_t sse_cases[] = {
    {PY "tests/lib/streaming/fixtures/basic_response.txt", CGW_OK,
     "{\"id\":\"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK\",\"model\":\"claude-3-opus-latest\","
     "\"content\":[{\"type\":\"text\",\"text\":\"Hello there!\"}],\"stop_reason\":\"end_turn\","
     "\"stop_sequence\":null,\"usage\":{\"input_tokens\":11,\"output_tokens\":6}}"},
    {PY "tests/lib/streaming/fixtures/tool_use_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"text\",\"text\":\"I'll check the current weather in Paris for "
     "you.\"},{\"type\":\"tool_use\",\"id\":\"toolu_01NRLabsLyVHZPKxbKvkfSMn\",\"name\":"
     "\"get_weather\",\"caller\":{\"type\":\"direct\"},\"input\":{\"location\":\"Paris\"}}],"
     "\"stop_reason\":\"tool_use\",\"usage\":{\"input_tokens\":377,\"output_tokens\":65,"
     "\"service_tier\":\"standard\"}}"},
    {PY "tests/lib/streaming/fixtures/incomplete_partial_json_response.txt", CGW_ETRUNCATED,
     "content block 1 (tool_use) was cut off"},
    {PY "tests/lib/streaming/fixtures/compaction_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"compaction\",\"content\":\"Earlier conversation summarized.\","
     "\"encrypted_content\":\"EpwBCioIDxgCEAEYASJALd_opaque_compaction_payload\"},"
     "{\"type\":\"text\",\"text\":\"Hello there!\"}],\"stop_reason\":\"end_turn\"}"},
    {PY "tests/lib/streaming/fixtures/fallback_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"fallback\",\"from\":{\"model\":\"claude-opus-4-7\"},\"to\":"
     "{\"model\":\"claude-sonnet-4-5\"},\"trigger\":{\"type\":\"refusal\"}},{\"type\":\"text\","
     "\"text\":\"Hello there!\"}]}"},
    {PY "tests/lib/streaming/fixtures/fallback_credit_response.txt", CGW_OK,
     "{\"usage\":{\"input_tokens\":25,\"output_tokens\":8,\"fallback_credit\":{\"status\":"
     "{\"type\":\"redeemed\"}}}}"},
    {PY "tests/lib/streaming/fixtures/refusal_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"text\",\"text\":\"\"}],\"stop_reason\":\"refusal\","
     "\"stop_details\":{\"type\":\"refusal\",\"category\":\"cyber\",\"explanation\":"
     "\"This request was refused due to policy.\"},\"usage\":{\"output_tokens\":0}}"},
    {PY "tests/fixtures/fable-fallback/stream-a-refusal.sse", CGW_OK,
     "{\"id\":\"msg_fixture_a_0001\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Simple "
     "educational question about what a solar eclipse is. This is benign general knowledge "
     "\\u2014 definitions are fine. Also the user called me \\\"claudius\\\" \\u2014 I'm Claude. "
     "Minor correction or just roll with it politely.\",\"signature\":"
     "\"c3ludGhldGljLXNpZ25hdHVyZS1maXh0dXJlLWEtbm90LWEtcmVhbC1zaWduYXR1cmU=\"},"
     "{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"refusal\",\"stop_details\":"
     "{\"fallback_credit_token\":\"tok_synthetic_fixture_a\"},\"usage\":{\"output_tokens\":106,"
     "\"output_tokens_details\":{\"thinking_tokens\":67},\"inference_geo\":\"global\"}}"},
    {PY "tests/fixtures/fable-fallback/stream-a-toolrefusal.sse", CGW_OK,
     "{\"content\":[{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_fixture_a_0001\",\"name\":"
     "\"web_search\",\"input\":{\"query\":\"solar eclipse viewing safety news 2026\"}},"
     "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_fixture_a_0001\","
     "\"content\":[{\"type\":\"web_search_result\",\"page_age\":\"April 30, 2026\"},"
     "{\"type\":\"web_search_result\",\"page_age\":\"1 week ago\"}],\"caller\":{\"type\":"
     "\"direct\"}},{\"type\":\"text\",\"text\":\"Here's a summary of this year's solar eclipses "
     "and how\"}],\"stop_reason\":\"refusal\"}"},
    {PY "tests/fixtures/fable-fallback/stream-b-fallback.sse", CGW_OK,
     "{\"model\":\"claude-opus-4-8\",\"content\":[{\"type\":\"text\"}],\"stop_reason\":"
     "\"end_turn\",\"usage\":{\"output_tokens\":547}}"},
    {PY "_history/0601a021/tests/lib/streaming/fixtures/tool_use_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"text\"},{\"type\":\"tool_use\",\"input\":{\"location\":"
     "\"Paris\"}}],\"stop_reason\":\"tool_use\"}"},
    {PY "_unmerged-prs/pr-1070/tests/lib/streaming/fixtures/extra_fields_response.txt", CGW_OK,
     "{\"id\":\"msg_123\",\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],"
     "\"private_field\":{\"nested\":{\"values\":[1,2]}},\"usage\":{\"output_tokens\":3}}"},
    {PY "_unmerged-prs/pr-1379/tests/lib/streaming/fixtures/server_tool_result_response.txt",
     CGW_OK,
     "{\"content\":[{\"type\":\"server_tool_use\",\"id\":\"svu_web_001\",\"input\":{}},"
     "{\"type\":\"tool_use\",\"id\":\"tu_client_001\",\"input\":{\"query\":\"test\"}},"
     "{\"type\":\"web_search_tool_result\",\"content\":[{\"url\":\"https://example.com\","
     "\"encrypted_content\":\"enc_abc123\"}]},{\"type\":\"code_execution_tool_result\","
     "\"content\":{\"type\":\"code_execution_result\",\"return_code\":0,\"stdout\":\"hello\"}}],"
     "\"stop_reason\":\"tool_use\"}"},
    {PY "_unmerged-prs/pr-1740/tests/lib/streaming/fixtures/server_tool_use_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"text\",\"text\":\"Let me search for that.\"},{\"type\":"
     "\"server_tool_use\",\"id\":\"srvtoolu_01WebSearch\",\"input\":{\"query\":"
     "\"weather in Paris\"}}]}"},
    {PY "_unmerged-prs/pr-1782/tests/lib/streaming/fixtures/out_of_order_response.txt", CGW_EPROTO,
     "content_block_start for index 1, expected 0"},
    {PY "_unmerged-prs/pr-1802/tests/lib/streaming/fixtures/container_response.txt", CGW_OK,
     "{\"content\":[{\"text\":\"Hello there!\"}],\"container\":{\"id\":"
     "\"container_011CPmr789A6Pg7Rjhvi6cvJ\",\"expires_at\":\"2026-08-05T12:00:00Z\"}}"},
    {TS "tests/lib/fixtures/basic_response.txt", CGW_OK,
     "{\"model\":\"claude-opus-4-8\",\"content\":[{\"text\":\"Hello there!\"}]}"},
    {TS "tests/lib/fixtures/tool_use_response.txt", CGW_OK,
     "{\"content\":[{\"type\":\"text\"},{\"type\":\"tool_use\",\"input\":{\"location\":"
     "\"Paris\"}}],\"usage\":{\"output_tokens\":65}}"},
    {TS "tests/lib/fixtures/incomplete_partial_json_response.txt", CGW_ETRUNCATED,
     "input JSON is incomplete"},
    {TS "_unmerged-prs/pr-1015/tests/lib/fixtures/code_execution_response.txt", CGW_OK,
     "{\"content\":[{\"text\":\"Running code.\"}],\"container\":{\"id\":"
     "\"container_01AbCdEfGhIjKlMnOpQrStUv\",\"expires_at\":\"2030-01-01T00:00:00.000000+00:00\"}"
     "}"},
    {GO "refusal.sse", CGW_OK,
     "{\"content\":[{\"type\":\"thinking\",\"thinking\":\"Simple educational question. Benign.\","
     "\"signature\":\"sig-thinking-a\"},{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":"
     "\"refusal\",\"stop_details\":{\"fallback_credit_token\":\"credit-token-a\"}}"},
    {GO "fallback-end.sse", CGW_OK,
     "{\"id\":\"msg_end\",\"content\":[{\"text\":\" there! Happy to help with that.\"}],"
     "\"stop_reason\":\"end_turn\"}"},
    {GO "fallback-tooluse.sse", CGW_OK,
     "{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_echo_1\",\"input\":{\"text\":"
     "\"hello\"}}],\"stop_reason\":\"tool_use\",\"usage\":{\"cache_creation\":null}}"},
};

static void run_sse_case(const sse_case_t *c)
{
    size_t len;
    char *body = cgw_test_read_fixture(c->rel, &len);
    json_t *msg = NULL;
    cgw_error_t e;
    cgw_error_clear(&e);
    int rc = cgw_test_run_sse(body, len, NULL, 0, &msg, &e);
    if (rc != c->code) {
        fail_msg("%s: expected %s, got %s (%s)", c->rel, cgw_err_name(c->code), cgw_err_name(rc),
                 e.message);
    }
    if (rc == CGW_OK) {
        json_t *expected = json_loads(c->expected, 0, NULL);
        assert_non_null(expected);
        cgw_test_assert_subset(expected, msg, c->rel);
        json_decref(expected);
    } else if (strstr(e.message, c->expected) == NULL) {
        fail_msg("%s: error \"%s\" does not say \"%s\"", c->rel, e.message, c->expected);
    }
    cgw_test_check_splits(body, len, c->rel, true);
    cgw_test_check_line_ends(body, len, "\r\n", c->rel);
    cgw_test_check_line_ends(body, len, "\r", c->rel);
    json_decref(msg);
    free(body);
}

static void test_sse_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(sse_cases) / sizeof(sse_cases[0]); i++) {
        run_sse_case(&sse_cases[i]);
    }
}

/* The stream-b text starts and ends as recorded (too long for the table). */
static void test_long_text_stream(void **state)
{
    (void)state;
    size_t len;
    char *body =
        cgw_test_read_fixture(PY "tests/fixtures/fable-fallback/stream-b-fallback.sse", &len);
    json_t *msg = NULL;
    assert_int_equal(cgw_test_run_sse(body, len, NULL, 0, &msg, NULL), CGW_OK);
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(msg, "content"), 0), "text"));
    assert_non_null(text);
    assert_int_equal(strncmp(text, " there! Happy to explain.\n\n**Solar eclipses**", 45), 0);
    assert_non_null(strstr(text, "Just let me know what's sparking your interest!"));
    json_decref(msg);
    free(body);
}

static void test_subset_comparator(void **state)
{
    (void)state;
    /* the comparator the fixture checks rely on must actually reject differences */
    json_t *e = json_loads("{\"a\":[1,{\"b\":null}],\"c\":\"x\"}", 0, NULL);
    json_t *ok = json_loads("{\"a\":[1.0,{\"b\":7,\"z\":1}],\"c\":\"x\",\"d\":2}", 0, NULL);
    json_t *bad1 = json_loads("{\"a\":[1,{\"b\":7}],\"c\":\"y\"}", 0, NULL);
    json_t *bad2 = json_loads("{\"a\":[1],\"c\":\"x\"}", 0, NULL);
    json_t *bad3 = json_loads("{\"a\":[1,{}]}", 0, NULL);
    char where[256];
    assert_true(cgw_test_json_subset(e, ok, where, sizeof(where)));
    assert_false(cgw_test_json_subset(e, bad1, where, sizeof(where)));
    assert_non_null(strstr(where, ".c"));
    assert_false(cgw_test_json_subset(e, bad2, where, sizeof(where)));
    assert_false(cgw_test_json_subset(e, bad3, where, sizeof(where)));
    json_decref(e);
    json_decref(ok);
    json_decref(bad1);
    json_decref(bad2);
    json_decref(bad3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subset_comparator),
        cmocka_unit_test(test_php_pairs),
        cmocka_unit_test(test_sse_files),
        cmocka_unit_test(test_long_text_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
