/* tools/call outcome mapping: every branch of the original's (result, error) rules, the
 * JSON-RPC and local failures, and the content blocks for images, audio and resources. */
#include <string.h>

#include "core/json.h"
#include "mcp/mcp_result.h"
#include "testutil.h"

/* A 1x1 PNG, as server-everything's get-tiny-image sends (shortened). */
#define PNG_B64                                                                                    \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+"                                \
    "M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

static json_t *parse(const char *s)
{
    json_t *v = NULL;
    cgw_error_t err;
    if (cgw_json_parse(s, strlen(s), &v, &err) != CGW_OK) {
        fail_msg("bad test JSON: %s", err.message);
    }
    return v;
}

static void expect_json(const json_t *v, const char *want)
{
    if (want == NULL) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    char *got = cgw_json_dump(v, NULL);
    if (strcmp(got, want) != 0) {
        fail_msg("got  %s\nwant %s", got, want);
    }
    cgw_free(got);
}

/* Maps a tools/call "result" and checks the three outputs (compact JSON or NULL). */
static void check_result(const char *rpc_result, const char *result, const char *error,
                         const char *content)
{
    json_t *r = parse(rpc_result);
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    assert_int_equal(cgw__mcp_outcome_from_result(r, "the_tool", &o), CGW_OK);
    expect_json(o.result, result);
    expect_json(o.error, error);
    expect_json(o.content, content);
    assert_true((o.result == NULL) != (o.error == NULL));
    cgw__mcp_outcome_clear(&o);
    assert_null(o.result);
    json_decref(r);
}

static void test_success_structured(void **state)
{
    (void)state;
    /* structuredContent wins over its JSON copy in text (no duplication) */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"temp\\\":22}\"}],"
                 "\"structuredContent\":{\"temp\":22.5,\"unit\":\"C\"}}",
                 "{\"temp\":22.5,\"unit\":\"C\"}", NULL, NULL);
    /* any non-null value counts, like Python's "is not None" */
    check_result("{\"content\":[],\"structuredContent\":[1,2]}", "[1,2]", NULL, NULL);
    check_result("{\"content\":[],\"structuredContent\":false}", "false", NULL, NULL);
    /* null means absent: fall through to the text */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"structuredContent\":null}",
                 "{\"text\":\"hi\"}", NULL, NULL);
}

static void test_success_text(void **state)
{
    (void)state;
    /* text that is JSON is parsed, whatever its type */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":[1,2]}\"}]}",
                 "{\"a\":[1,2]}", NULL, NULL);
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"42\"}]}", "42", NULL, NULL);
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\" \\\"s\\\" \"}]}", "\"s\"", NULL,
                 NULL);
    /* otherwise {"text": ...} */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"Echo: hello\"}]}",
                 "{\"text\":\"Echo: hello\"}", NULL, NULL);
    /* items are joined with \n, whitespace-only items are left out, the whole is stripped */
    check_result(
        "{\"content\":[{\"type\":\"text\",\"text\":\"  first\"},"
        "{\"type\":\"text\",\"text\":\" \\n\\t \"},{\"type\":\"text\",\"text\":\"second \\n\"}]}",
        "{\"text\":\"first\\nsecond\"}", NULL, NULL);
    /* JSON split over two items is joined before parsing */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"a\\\":\"},"
                 "{\"type\":\"text\",\"text\":\"1}\"}]}",
                 "{\"a\":1}", NULL, NULL);
    /* an item without a type but with a text counts as text (the original read .text) */
    check_result("{\"content\":[{\"text\":\"untyped\"}]}", "{\"text\":\"untyped\"}", NULL, NULL);
    /* a text item without a string text and a non-array content are ignored */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":5}]}", "{}", NULL, NULL);
    check_result("{\"content\":\"nope\"}", "{}", NULL, NULL);
}

static void test_success_empty(void **state)
{
    (void)state;
    check_result("{}", "{}", NULL, NULL);
    check_result("{\"content\":[]}", "{}", NULL, NULL);
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"   \"}]}", "{}", NULL, NULL);
    /* isError must be the JSON true: anything else is a success */
    check_result("{\"content\":[],\"isError\":false}", "{}", NULL, NULL);
    check_result("{\"content\":[],\"isError\":\"true\"}", "{}", NULL, NULL);
}

static void test_is_error(void **state)
{
    (void)state;
    struct {
        const char *text, *sub;
    } cases[] = {
        {"File not found: /x", "not_found"},
        {"No filing for ACME", "not_found"},
        {"NO DATA available", "not_found"},
        {"MCP error -32602: Invalid arguments", "parse_error"},
        {"could not PARSE input", "parse_error"},
        {"malformed date", "parse_error"},
        {"upstream Timeout", "timeout"},
        {"request timed out", "timeout"},
        {"boom", "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char in[256], err[256];
        snprintf(in, sizeof(in),
                 "{\"content\":[{\"type\":\"text\",\"text\":\"%s\"}],\"isError\":true}",
                 cases[i].text);
        snprintf(err, sizeof(err),
                 "{\"code\":\"mcp_tool_error\",\"sub_code\":\"%s\",\"message\":\"%s\"}",
                 cases[i].sub, cases[i].text);
        check_result(in, NULL, err, NULL);
    }
    /* no text: structuredContent as Python's json.dumps writes it */
    check_result("{\"content\":[],\"isError\":true,"
                 "\"structuredContent\":{\"b\":[1,2],\"caf\\u00e9\":\"x\",\"n\":null}}",
                 NULL,
                 "{\"code\":\"mcp_tool_error\",\"sub_code\":\"unknown\",\"message\":"
                 "\"{\\\"b\\\": [1, 2], \\\"caf\\\\u00e9\\\": \\\"x\\\", \\\"n\\\": null}\"}",
                 NULL);
    /* a literal backslash-u in a string is not an escape and keeps its case */
    check_result("{\"isError\":true,\"structuredContent\":{\"p\":\"\\\\u00AB\\u00AB\"}}", NULL,
                 "{\"code\":\"mcp_tool_error\",\"sub_code\":\"unknown\",\"message\":"
                 "\"{\\\"p\\\": \\\"\\\\\\\\u00AB\\\\u00ab\\\"}\"}",
                 NULL);
    /* nothing at all */
    check_result("{\"isError\":true}", NULL,
                 "{\"code\":\"mcp_tool_error\",\"sub_code\":\"unknown\",\"message\":"
                 "\"MCP tool failed: the_tool\"}",
                 NULL);
    /* text wins over structuredContent; an image is still shown to the model */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"bad\"},{\"type\":\"image\","
                 "\"data\":\"" PNG_B64 "\",\"mimeType\":\"image/png\"}],\"isError\":true,"
                 "\"structuredContent\":{\"x\":1}}",
                 NULL, "{\"code\":\"mcp_tool_error\",\"sub_code\":\"unknown\",\"message\":\"bad\"}",
                 "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                 "\"image/png\",\"data\":\"" PNG_B64 "\"}}]");
}

static void test_malformed_result(void **state)
{
    (void)state;
    check_result("[1]", NULL,
                 "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":"
                 "\"malformed tools/call result\"}",
                 NULL);
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    assert_int_equal(cgw__mcp_outcome_from_result(NULL, NULL, &o), CGW_OK);
    assert_non_null(o.error);
    cgw__mcp_outcome_clear(&o);
    cgw__mcp_outcome_clear(NULL);
}

static void check_rpc(const char *rpc_error, const char *want)
{
    json_t *e = parse(rpc_error);
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    assert_int_equal(cgw__mcp_outcome_from_rpc_error(e, &o), CGW_OK);
    assert_null(o.result);
    assert_null(o.content);
    expect_json(o.error, want);
    cgw__mcp_outcome_clear(&o);
    json_decref(e);
}

static void test_rpc_errors(void **state)
{
    (void)state;
    check_rpc("{\"code\":-32601,\"message\":\"Method not found\"}",
              "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":\"Method not "
              "found\",\"rpc_code\":-32601}");
    check_rpc("{\"code\":-32001,\"message\":\"Request timed out\"}",
              "{\"code\":\"tool_error\",\"sub_code\":\"timeout\",\"message\":\"Request timed "
              "out\",\"rpc_code\":-32001}");
    check_rpc("{\"code\":-32000,\"message\":\"Connection closed\"}",
              "{\"code\":\"tool_error\",\"sub_code\":\"connection_error\",\"message\":"
              "\"Connection closed\",\"rpc_code\":-32000}");
    check_rpc("{\"code\":-32602,\"message\":\"Unsupported\",\"data\":{\"supported\":[\"a\"]}}",
              "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":\"Unsupported\","
              "\"rpc_code\":-32602,\"rpc_data\":{\"supported\":[\"a\"]}}");
    check_rpc("{\"code\":-32603}", "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":"
                                   "\"JSON-RPC error -32603\",\"rpc_code\":-32603}");
    check_rpc("{\"code\":-32603,\"message\":\"\"}",
              "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":"
              "\"JSON-RPC error -32603\",\"rpc_code\":-32603}");
    check_rpc("\"weird\"",
              "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":\"JSON-RPC error\"}");
}

static void check_failure(int code, const char *message, const char *want)
{
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    assert_int_equal(cgw__mcp_outcome_from_failure(code, message, &o), CGW_OK);
    expect_json(o.error, want);
    assert_null(o.result);
    cgw__mcp_outcome_clear(&o);
}

static void test_failures(void **state)
{
    (void)state;
    check_failure(CGW_ETIMEDOUT, "MCP tool 'x' did not answer within 30000 ms",
                  "{\"code\":\"tool_error\",\"sub_code\":\"timeout\",\"message\":\"MCP tool 'x' "
                  "did not answer within 30000 ms\"}");
    check_failure(CGW_ESERVERDIED, "server exited with status 1",
                  "{\"code\":\"tool_error\",\"sub_code\":\"connection_error\",\"message\":"
                  "\"server exited with status 1\"}");
    check_failure(CGW_EPIPE, "write failed",
                  "{\"code\":\"tool_error\",\"sub_code\":"
                  "\"connection_error\",\"message\":\"write failed\"}");
    check_failure(CGW_ECLOSED, NULL,
                  "{\"code\":\"tool_error\",\"sub_code\":\"connection_error\","
                  "\"message\":\"closed\"}");
    check_failure(CGW_ELINETOOLONG, "response line longer than 16777216 bytes",
                  "{\"code\":\"tool_error\",\"sub_code\":\"unknown\",\"message\":\"response line "
                  "longer than 16777216 bytes\"}");
    check_failure(CGW_EIO, "Connection refused by peer",
                  "{\"code\":\"tool_error\",\"sub_code\":\"connection_error\",\"message\":"
                  "\"Connection refused by peer\"}");
    check_failure(CGW_EIO, "operation timed out",
                  "{\"code\":\"tool_error\",\"sub_code\":\"timeout\",\"message\":\"operation "
                  "timed out\"}");
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    assert_int_equal(cgw__mcp_outcome_error("unknown_tool", NULL, "Unknown tool: t", &o), CGW_OK);
    expect_json(o.error, "{\"code\":\"unknown_tool\",\"message\":\"Unknown tool: t\"}");
    /* a second mapping into the same outcome releases the first */
    assert_int_equal(
        cgw__mcp_outcome_error("mcp_tool_error", NULL, "MCP server unavailable: s", &o), CGW_OK);
    expect_json(o.error, "{\"code\":\"mcp_tool_error\",\"message\":\"MCP server unavailable: s\"}");
    cgw__mcp_outcome_clear(&o);
}

#define TEXT_BLOCK(t) "{\"type\":\"text\",\"text\":\"" t "\"}"

/* One content item in, the content blocks out (the item is never plain text here). */
static void check_block(const char *item, const char *blocks)
{
    char in[4096];
    snprintf(in, sizeof(in), "{\"content\":[%s]}", item);
    check_result(in, "{}", NULL, blocks);
}

static void test_content_images(void **state)
{
    (void)state;
    const char *types[] = {"image/png", "image/jpeg", "image/gif", "image/webp"};
    for (size_t i = 0; i < 4; i++) {
        char item[512], want[512];
        snprintf(item, sizeof(item), "{\"type\":\"image\",\"data\":\"%s\",\"mimeType\":\"%s\"}",
                 PNG_B64, types[i]);
        snprintf(want, sizeof(want),
                 "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"%s\","
                 "\"data\":\"%s\"}}]",
                 types[i], PNG_B64);
        check_block(item, want);
    }
    check_block("{\"type\":\"image\",\"data\":\"PHN2Zz4=\",\"mimeType\":\"image/svg+xml\"}",
                "[" TEXT_BLOCK("[image omitted: type image/svg+xml (5 bytes) cannot be shown to "
                               "the model]") "]");
    check_block("{\"type\":\"image\",\"data\":\"not base64!\",\"mimeType\":\"image/png\"}",
                "[" TEXT_BLOCK("[image omitted: its data is not valid base64]") "]");
    check_block("{\"type\":\"image\",\"data\":\"QUJD=A==\",\"mimeType\":\"image/png\"}",
                "[" TEXT_BLOCK("[image omitted: its data is not valid base64]") "]");
    check_block("{\"type\":\"image\",\"mimeType\":\"image/png\"}",
                "[" TEXT_BLOCK("[image omitted: its data is not valid base64]") "]");
    check_block("{\"type\":\"image\",\"data\":\"QUJD\"}",
                "[" TEXT_BLOCK("[image omitted: type unknown (3 bytes) cannot be shown to the "
                               "model]") "]");
    /* server-everything's get-tiny-image: text, image, text */
    check_result("{\"content\":[{\"type\":\"text\",\"text\":\"This is a tiny image:\"},"
                 "{\"type\":\"image\",\"data\":\"" PNG_B64 "\",\"mimeType\":\"image/png\"},"
                 "{\"type\":\"text\",\"text\":\"The image above is the MCP logo.\"}]}",
                 "{\"text\":\"This is a tiny image:\\nThe image above is the MCP logo.\"}", NULL,
                 "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                 "\"image/png\",\"data\":\"" PNG_B64 "\"}}]");
}

static void test_content_audio_and_links(void **state)
{
    (void)state;
    check_block("{\"type\":\"audio\",\"data\":\"UklGRg==\",\"mimeType\":\"audio/wav\"}",
                "[" TEXT_BLOCK("[audio audio/wav, 4 bytes, not shown: the model cannot take "
                               "audio]") "]");
    check_block("{\"type\":\"audio\",\"data\":\"%%%\",\"mimeType\":\"audio/wav\"}",
                "[" TEXT_BLOCK("[audio audio/wav omitted: its data is not valid base64]") "]");
    check_block("{\"type\":\"resource_link\",\"uri\":\"demo://resource/1\",\"name\":\"One\","
                "\"mimeType\":\"text/plain\",\"description\":\"first\"}",
                "[" TEXT_BLOCK("[resource link] One: demo://resource/1 (text/plain) - first") "]");
    check_block("{\"type\":\"resource_link\",\"uri\":\"file:///a\"}",
                "[" TEXT_BLOCK("[resource link] file:///a: file:///a") "]");
    check_block("{\"type\":\"video\"}",
                "[" TEXT_BLOCK("[unsupported MCP content type 'video']") "]");
    check_block("{}", "[" TEXT_BLOCK("[unsupported MCP content item without a type]") "]");
    check_block("7", "[" TEXT_BLOCK("[unsupported MCP content item without a type]") "]");
}

static void test_content_resources(void **state)
{
    (void)state;
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"demo://resource/static/1\","
                "\"mimeType\":\"text/plain\",\"text\":\"Resource 1: plain text\"}}",
                "[{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
                "\"text/plain\",\"data\":\"Resource 1: plain text\"},\"title\":"
                "\"demo://resource/static/1\"}]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://e\",\"text\":\"\"}}",
                "[" TEXT_BLOCK("[resource x://e: empty]") "]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://d.pdf\",\"mimeType\":"
                "\"application/pdf\",\"blob\":\"JVBERi0=\"}}",
                "[{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
                "\"application/pdf\",\"data\":\"JVBERi0=\"},\"title\":\"x://d.pdf\"}]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://i\",\"mimeType\":"
                "\"image/png\",\"blob\":\"" PNG_B64 "\"}}",
                "[{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                "\"image/png\",\"data\":\"" PNG_B64 "\"}}]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://i\",\"mimeType\":"
                "\"image/tiff\",\"blob\":\"QUJD\"}}",
                "[" TEXT_BLOCK("[resource x://i omitted: type image/tiff (3 bytes) cannot be "
                               "shown to the model]") "]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"demo://resource/static/2\","
                "\"mimeType\":\"application/octet-stream\",\"blob\":\"AAECAw==\"}}",
                "[" TEXT_BLOCK("[resource demo://resource/static/2 (application/octet-stream, "
                               "4 bytes) omitted: binary content of this type cannot be shown "
                               "to the model]") "]");
    /* server-everything's get-resource-reference Blob: a text/plain blob becomes text */
    check_block(
        "{\"type\":\"resource\",\"resource\":{\"uri\":\"demo://resource/dynamic/blob/2\","
        "\"mimeType\":\"text/plain\",\"blob\":\"UmVzb3VyY2UgMjogVGhpcyBpcyBhIGJhc2U2NCBibG9i\"}}",
        "[{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
        "\"text/plain\",\"data\":\"Resource 2: This is a base64 blob\"},\"title\":"
        "\"demo://resource/dynamic/blob/2\"}]");
    struct {
        const char *mime, *blob, *want;
    } blobs[] = {
        {"application/json", "eyJhIjoxfQ==", "{\\\"a\\\":1}"},
        {"application/vnd.api+json", "W10=", "[]"},
        {"application/atom+xml", "PGEvPg==", "<a/>"},
        {"text/markdown", "8J+YgCDDqQ==", "\xf0\x9f\x98\x80 \xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]); i++) {
        char item[512], want[512];
        snprintf(item, sizeof(item),
                 "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"mimeType\":\"%s\","
                 "\"blob\":\"%s\"}}",
                 blobs[i].mime, blobs[i].blob);
        snprintf(want, sizeof(want),
                 "[{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
                 "\"text/plain\",\"data\":\"%s\"},\"title\":\"u\"}]",
                 blobs[i].want);
        check_block(item, want);
    }
    /* text types whose bytes are not UTF-8 text: 0xff, NUL, overlong '/', a surrogate */
    const char *not_text[] = {"/w==", "AA==", "wK8=", "7aCA", "4oI="};
    for (size_t i = 0; i < sizeof(not_text) / sizeof(not_text[0]); i++) {
        char item[256];
        snprintf(item, sizeof(item),
                 "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"mimeType\":"
                 "\"text/plain\",\"blob\":\"%s\"}}",
                 not_text[i]);
        json_t *r = parse(item);
        json_t *content = json_pack("[O]", r);
        json_t *blocks = NULL;
        assert_int_equal(cgw__mcp_content_blocks(content, &blocks), CGW_OK);
        const char *t = json_string_value(json_object_get(json_array_get(blocks, 0), "text"));
        assert_non_null(t);
        assert_non_null(strstr(t, "omitted: it is not valid UTF-8 text]"));
        json_decref(blocks);
        json_decref(content);
        json_decref(r);
    }
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://b\",\"blob\":\"@@\"}}",
                "[" TEXT_BLOCK("[resource x://b omitted: its blob is not valid base64]") "]");
    check_block("{\"type\":\"resource\",\"resource\":{\"uri\":\"x://n\"}}",
                "[" TEXT_BLOCK("[resource x://n omitted: it has neither text nor blob]") "]");
    check_block("{\"type\":\"resource\"}",
                "[" TEXT_BLOCK("[resource (no uri) omitted: it has neither text nor blob]") "]");
}

/* annotations.audience without "assistant" keeps an item away from the model. */
static void test_content_audience(void **state)
{
    (void)state;
    check_result("{\"content\":[{\"type\":\"image\",\"data\":\"" PNG_B64 "\",\"mimeType\":"
                 "\"image/png\",\"annotations\":{\"audience\":[\"user\"]}}]}",
                 "{}", NULL, NULL);
    check_result("{\"content\":[{\"type\":\"resource_link\",\"uri\":\"u://1\",\"name\":\"n\","
                 "\"annotations\":{\"audience\":[\"user\",\"assistant\"],\"priority\":0.5}},"
                 "{\"type\":\"audio\",\"data\":\"AA==\",\"mimeType\":\"audio/mpeg\","
                 "\"annotations\":{\"priority\":1}}]}",
                 "{}", NULL,
                 "[" TEXT_BLOCK("[resource link] n: u://1") "," TEXT_BLOCK(
                     "[audio audio/mpeg, 1 bytes, not shown: the model cannot take audio]") "]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_structured),
        cmocka_unit_test(test_success_text),
        cmocka_unit_test(test_success_empty),
        cmocka_unit_test(test_is_error),
        cmocka_unit_test(test_malformed_result),
        cmocka_unit_test(test_rpc_errors),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_content_images),
        cmocka_unit_test(test_content_audio_and_links),
        cmocka_unit_test(test_content_resources),
        cmocka_unit_test(test_content_audience),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
