/* mock-api pieces without a network: script parsing (every refusal), recordings (raw captures,
 * SSE framing, signature harvesting), answer planning (fault positions), request checks, and
 * the in-process server (cgw_mock_api_t) driven from a forked child so that its whole life,
 * including shutdown with streams in progress, runs under the sanitizers. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/alloc.h"
#include "core/json.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"
#include "server/mock_check.h"
#include "server/mock_script.h"
#include "testutil.h"

static cgw__mock_script_t *parse_ok(const char *json)
{
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    cgw__mock_script_t *s = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw__mock_script_parse(doc, NULL, &s, &err);
    if (rc != CGW_OK) {
        fail_msg("script refused: %s", err.message);
    }
    json_decref(doc);
    return s;
}

static void test_script_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *needle; /* in err.message */
    } cases[] = {
        {"{\"turns\": 3}", "expected an array of turns"},
        {"42", "expected an array of turns"},
        {"[7]", "turn 1: a turn must be an object"},
        {"[{}, {\"status\": 99}]", "turn 2: 'status' must be 200..599"},
        {"[{\"delay_ms\": -1}]", "'delay_ms' not negative"},
        {"[{\"headers\": []}]", "'headers' must be an object"},
        {"[{\"headers\": {\"a\": [1]}}]", "header values are strings, numbers or null"},
        {"[{\"content\": {}}]", "'content' must be an array"},
        {"[{\"content\": [3]}]", "object with a string 'type'"},
        {"[{\"content\": [{\"type\": \"text\", \"text\": 5}]}]", "block text must be a string"},
        {"[{\"content\": [{\"type\": \"text\", \"text\": \"a\", \"deltas\": [\"a\"]}]}]",
         "excludes the whole text"},
        {"[{\"content\": [{\"type\": \"text\", \"deltas\": [1]}]}]", "array of strings"},
        {"[{\"content\": [{\"type\": \"tool_use\"}]}]", "tool_use needs a string 'name'"},
        {"[{\"content\": [{\"type\": \"tool_use\", \"name\": \"f\", \"input\": [1]}]}]",
         "'input' must be an object"},
        {"[{\"content\": [{\"type\": \"tool_use\", \"name\": \"f\", \"input\": {},"
         " \"input_deltas\": [\"{}\"]}]}]",
         "excludes 'input'"},
        {"[{\"content\": [{\"type\": \"redacted_thinking\"}]}]", "needs a string 'data'"},
        {"[{\"hang\": \"later\"}]", "a fault position is"},
        {"[{\"hang\": -1}]", "a fault position is"},
        {"[{\"error_event\": {\"after\": \"request\"}}]", "a fault position is"},
        {"[{\"hang\": 1, \"cut\": 2}]", "exclude each other"},
        {"[{\"usage\": 3}]", "'usage' must be an object"},
        {"[{\"stop_details\": 3}]", "'stop_details' must be an object or null"},
        {"[{\"content\": [{\"type\": \"text\", \"citations\": {}}]}]",
         "'citations' must be an array"},
        {"[{}, {\"repeat\": 0}]", "turn 2: 'repeat' must be 1..10000"},
        {"[{\"repeat\": \"x\", \"status\": 1}]", "'status' must be 200..599"},
        {"[{\"status\": 429, \"error\": \"x\"}]", "'error' must be an object"},
        {"[{\"status\": 500, \"body\": 1}]", "'body' must be a string"},
        {"{\"when_exhausted\": \"loop\", \"turns\": []}", "'when_exhausted'"},
        {"[{\"replay\": \"/nonexistent/x.sse\"}]", "cannot open /nonexistent/x.sse"},
        {"[{\"replay\": \"/dev/zero\"}]", "/dev/zero is not a regular file"},
        {"[{\"replay\": \"/tmp\"}]", "/tmp is not a regular file"},
        {"[{\"response\": 3}]", "turn 1: 'response' must be an object"},
        {"[{\"response\": {\"status\": 100}}]", "status of 200..599"},
        {"[{\"response\": {\"headers\": 5}}]", "'response' headers"},
        {"[{\"response\": {\"headers\": {\"a\": true}}}]", "'response' headers"},
        {"[{\"response\": {\"headers\": [[1, \"x\"]]}}]", "'response' headers"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(doc);
        cgw__mock_script_t *s = NULL;
        cgw_error_t err;
        cgw_error_clear(&err);
        int rc = cgw__mock_script_parse(doc, NULL, &s, &err);
        json_decref(doc);
        if (rc == CGW_OK || strstr(err.message, cases[i].needle) == NULL) {
            fail_msg("case %zu (%s): rc %d, message '%s'", i, cases[i].json, rc, err.message);
        }
        assert_null(s);
    }
}

static void test_script_load_errors(void **state)
{
    (void)state;
    cgw__mock_script_t *s = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw__mock_script_load("/nonexistent/s.json", &s, &err), CGW_ENOENT);
    char path[] = "/tmp/cgw-mock-unit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[{\"text\": ", 10), 10);
    close(fd);
    assert_int_equal(cgw__mock_script_load(path, &s, &err), CGW_EJSON);
    assert_true(err.line == 1);
    unlink(path);
    assert_null(s);
}

static void test_script_defaults(void **state)
{
    (void)state;
    cgw__mock_script_t *s = parse_ok(
        "[{\"content\": [{\"type\": \"thinking\", \"thinking\": \"abc\"},"
        "{\"type\": \"tool_use\", \"name\": \"f\", \"input\": {\"k\": \"v\"}, \"chunks\": 50},"
        "{\"type\": \"web_search_tool_result\", \"tool_use_id\": \"srvtoolu_1\","
        " \"content\": [], \"delay_ms\": 5}]},"
        "{\"status\": 529}, {\"status\": 418}, {\"text\": \"\"}]");
    assert_int_equal(s->nturns, 4);
    cgw__mock_turn_t *t = &s->turns[0];
    assert_string_equal(t->name, "turn-1");
    assert_string_equal(json_string_value(t->stop_reason), "tool_use");
    assert_true(json_is_null(t->stop_sequence));
    const char *sig = cgw_json_str(t->blocks[0].final, "signature", NULL);
    assert_true(strncmp(sig, "mock-sig-", 9) == 0);
    /* The issued registry knows the signature with its text. */
    assert_string_equal(json_string_value(json_object_get(t->issued, sig)), "abc");
    assert_string_equal(cgw_json_str(t->blocks[1].final, "id", ""), "toolu_mock_1_1");
    /* More chunks than characters: one character per delta. */
    assert_int_equal(json_array_size(t->blocks[1].deltas), strlen("{\"k\":\"v\"}"));
    /* Unknown block types pass through whole, without our delay_ms. */
    assert_null(json_object_get(t->blocks[2].start, "delay_ms"));
    assert_int_equal(json_array_size(t->blocks[2].deltas), 0);
    assert_string_equal(s->turns[1].error_type, "overloaded_error");
    assert_string_equal(s->turns[1].error_message, "Overloaded");
    assert_string_equal(s->turns[2].error_type, "invalid_request_error");
    cgw__mock_script_free(s);
    s = parse_ok("[{\"status\": 429, \"repeat\": 3}, {\"name\": \"ok\", \"text\": \"\"}]");
    assert_int_equal(s->nturns, 4);
    assert_string_equal(s->turns[2].name, "turn-1"); /* the copies share the name */
    assert_int_equal(s->turns[2].status, 429);
    assert_string_equal(s->turns[3].name, "ok");
    assert_int_equal(json_array_size(s->turns[3].blocks[0].deltas), 0); /* empty text */
    assert_int_equal(json_integer_value(json_object_get(s->turns[3].usage, "output_tokens")), 1);
    cgw__mock_script_free(s);
}

/* ---- recordings --------------------------------------------------------------------------- */

static void test_capture_parse(void **state)
{
    (void)state;
    const char raw[] = "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/2 429 \r\ncontent-type: application/json\r\nretry-after:  7 \r\n"
                       "content-length: 2\r\ntransfer-encoding: chunked\r\n\r\n{}";
    cgw__mock_capture_t *c = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw__mock_capture_parse(raw, sizeof(raw) - 1, &c, &err), CGW_OK);
    assert_int_equal(c->status, 429);
    assert_int_equal(json_array_size(c->headers), 2); /* hop-by-hop headers dropped */
    assert_string_equal(json_string_value(json_array_get(json_array_get(c->headers, 1), 1)), "7");
    assert_int_equal(c->body_len, 2);
    assert_memory_equal(c->body, "{}", 2);
    cgw__mock_capture_free(c);

    const char lf[] = "HTTP/1.1 200 OK\ncontent-type: text/event-stream\n\nevent: ping\n";
    assert_int_equal(cgw__mock_capture_parse(lf, sizeof(lf) - 1, &c, &err), CGW_OK);
    assert_int_equal(c->status, 200);
    assert_string_equal(c->body, "event: ping\n");
    cgw__mock_capture_free(c);

    const char bare[] = "event: ping\ndata: {}\n\n";
    assert_int_equal(cgw__mock_capture_parse(bare, sizeof(bare) - 1, &c, &err), CGW_OK);
    assert_int_equal(c->status, 0);
    assert_int_equal(c->body_len, sizeof(bare) - 1);
    cgw__mock_capture_free(c);

    const char *bad[] = {"HTTP/1.1\r\n\r\n", "HTTP/1.1 abc\r\n\r\n",
                         "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 700 Odd\r\n\r\n"};
    for (size_t i = 0; i < 4; i++) {
        c = NULL;
        assert_int_equal(cgw__mock_capture_parse(bad[i], strlen(bad[i]), &c, &err), CGW_ECONFIG);
        assert_null(c);
    }
}

static void test_response_turns(void **state)
{
    (void)state;
    cgw__mock_script_t *s = parse_ok(
        "[{\"response\": {\"status\": 201, \"headers\": {\"x-n\": 5, \"Content-Length\": \"9\"},"
        " \"body\": {\"a\": 1}}},"
        " {\"response\": {\"headers\": [\"x-a\", \"1\", \"x-b\", \"2\"], \"body\": \"raw\"}},"
        " {\"response\": {\"headers\": [[\"x-c\", \"3\"]]}}]");
    cgw__mock_capture_t *c = s->turns[0].replay;
    assert_int_equal(c->status, 201);
    assert_int_equal(json_array_size(c->headers), 1); /* content-length is evhttp's to set */
    assert_string_equal(json_string_value(json_array_get(json_array_get(c->headers, 0), 1)), "5");
    assert_string_equal(c->body, "{\"a\":1}");
    assert_int_equal(s->turns[1].replay->status, 200);
    assert_int_equal(json_array_size(s->turns[1].replay->headers), 2);
    assert_string_equal(s->turns[1].replay->body, "raw");
    assert_int_equal(s->turns[2].replay->body_len, 0);
    cgw__mock_script_free(s);

    /* Recorded exchange lists become one response turn each; other JSON does not. */
    json_t *doc = json_loads("[{\"request\": {}, \"response\": {\"status_code\": 429, \"headers\":"
                             " {}, \"body\": {}}}, {\"status\": 200, \"rawHeaders\": [],"
                             " \"response\": {\"id\": \"m\"}}]",
                             0, NULL);
    json_t *script = cgw__mock_exchanges_script(doc);
    assert_non_null(script);
    json_t *turns = json_object_get(script, "turns");
    assert_int_equal(json_array_size(turns), 2);
    assert_string_equal(cgw_json_str(json_array_get(turns, 1), "name", ""), "exchange-2");
    json_decref(script);
    json_decref(doc);
    doc = json_loads("[{\"text\": \"a\"}]", 0, NULL);
    assert_null(cgw__mock_exchanges_script(doc));
    json_decref(doc);
    assert_null(cgw__mock_exchanges_script(NULL));
}

static void test_sse_frames(void **state)
{
    (void)state;
    const char body[] = "event: a\ndata: 1\n\n\n"
                        "event: b\r\ndata: 2\r\n\r\n"
                        "event: c\rdata: 3\r\r"
                        "event: d\ndata: 4";
    size_t *ends = NULL;
    long n = cgw__mock_sse_frames(body, sizeof(body) - 1, &ends);
    assert_int_equal(n, 4);
    assert_int_equal(ends[0], strlen("event: a\ndata: 1\n\n"));
    /* The stray blank line goes with the next frame; every byte is covered. */
    assert_int_equal(ends[1], ends[0] + strlen("\nevent: b\r\ndata: 2\r\n\r\n"));
    assert_int_equal(ends[2], ends[1] + strlen("event: c\rdata: 3\r\r"));
    assert_int_equal(ends[3], sizeof(body) - 1);
    cgw_free(ends);
    assert_int_equal(cgw__mock_sse_frames("", 0, &ends), 0);
    cgw_free(ends);
}

static void test_sse_harvest(void **state)
{
    (void)state;
    const char body[] =
        "event: content_block_start\n"
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}   \n\n"
        "data: "
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
        "\"thinking\":\"ab\"}}\n\n"
        "data: "
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
        "\"thinking\":\"c\"}}\n\n"
        "data: not json\n\n"
        "data: "
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
        "\"signature\":\"SIG\"}}\n\n"
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
        "data:{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
        "{\"type\":\"redacted_thinking\",\"data\":\"RED\"}}";
    json_t *issued = json_object();
    cgw__mock_sse_harvest(body, sizeof(body) - 1, issued);
    assert_string_equal(json_string_value(json_object_get(issued, "SIG")), "abc");
    assert_non_null(json_object_get(issued, "redacted:RED"));
    assert_int_equal(json_object_size(issued), 2);
    json_decref(issued);
}

/* ---- planning ----------------------------------------------------------------------------- */

/* The event names of a plan, space-separated. */
static void plan_names(const cgw__mock_plan_t *p, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < p->nframes; i++) {
        const char *name = p->frames[i].bytes + 7;
        size_t n = strcspn(name, "\n");
        snprintf(out + strlen(out), cap - strlen(out), "%s%.*s", i ? " " : "", (int)n, name);
    }
}

static void test_plan_faults(void **state)
{
    (void)state;
    cgw__mock_script_t *s =
        parse_ok("[{\"text\": \"ab\", \"chunks\": 2, \"delay_ms\": 5, \"ping\": false},"
                 " {\"text\": \"ab\", \"chunks\": 2, \"hang\": 1},"
                 " {\"text\": \"ab\", \"chunks\": 2, \"cut\": 0},"
                 " {\"text\": \"ab\", \"chunks\": 2, \"error_event\": {\"after\": 9}},"
                 " {\"text\": \"ab\", \"cut\": \"request\"},"
                 " {\"text\": \"ab\", \"hang\": \"headers\", \"headers\": {\"x-a\": \"1\", "
                 "\"x-b\": null}}]");
    static const char *const want[] = {
        "message_start content_block_start content_block_delta content_block_delta "
        "content_block_stop message_delta message_stop",
        "message_start ping content_block_start content_block_delta",
        "message_start ping",
        "message_start ping content_block_start content_block_delta content_block_delta "
        "content_block_stop error",
        "",
        "",
    };
    static const cgw__mock_end_t ends[] = {CGW_MOCK_END_FINISH, CGW_MOCK_END_HANG,
                                           CGW_MOCK_END_CUT,    CGW_MOCK_END_FINISH,
                                           CGW_MOCK_END_CUT,    CGW_MOCK_END_HANG};
    for (size_t i = 0; i < s->nturns; i++) {
        cgw__mock_plan_t *p = NULL;
        assert_int_equal(cgw__mock_plan_stream(&s->turns[i], "m", "msg_1", &p), CGW_OK);
        char names[512];
        plan_names(p, names, sizeof(names));
        assert_string_equal(names, want[i]);
        assert_int_equal(p->end, ends[i]);
        assert_int_equal(p->before_headers, i == 4);
        if (i == 0) {
            assert_int_equal(p->frames[2].delay_ms, 5); /* pauses only before deltas */
            assert_int_equal(p->frames[4].delay_ms, 0);
        }
        if (i == 5) {
            assert_int_equal(json_array_size(p->headers), 1); /* null drops, it adds nothing */
        }
        cgw__mock_plan_free(p);
    }
    cgw__mock_script_free(s);
}

/* Streams the plan of turn `t` through the project's SSE parser and Message accumulator;
 * returns the accumulation's result code and the message (new reference) in *msg. */
static int accumulate(const cgw__mock_turn_t *t, json_t **msg, cgw_error_t *err)
{
    cgw__mock_plan_t *p = NULL;
    assert_int_equal(cgw__mock_plan_stream(t, "claude-x", "msg_7", &p), CGW_OK);
    cgw_msg_accum_t *acc = NULL;
    assert_int_equal(cgw_msg_accum_new(NULL, &acc), CGW_OK);
    cgw_sse_parser_options_t po;
    cgw_sse_parser_options_init(&po);
    po.on_event = cgw_msg_accum_sse_cb;
    po.user = acc;
    cgw_sse_parser_t *sp = NULL;
    assert_int_equal(cgw_sse_parser_new(&po, &sp), CGW_OK);
    int rc = CGW_OK;
    for (size_t i = 0; rc == CGW_OK && i < p->nframes; i++) {
        rc = cgw_sse_parser_feed(sp, p->frames[i].bytes, p->frames[i].len, err);
    }
    rc = rc == CGW_OK ? cgw_sse_parser_finish(sp, err) : rc;
    rc = rc == CGW_OK ? cgw_msg_accum_finish(acc, err) : rc;
    *msg = json_incref((json_t *)cgw_msg_accum_message(acc));
    cgw_sse_parser_free(sp);
    cgw_msg_accum_free(acc);
    cgw__mock_plan_free(p);
    return rc;
}

static void test_stream_matches_message(void **state)
{
    (void)state;
    /* The streamed answer and the non-streamed one come from the same turn: accumulating the
     * stream must give exactly the Message. */
    cgw__mock_script_t *s = parse_ok(
        "[{\"content\": [{\"type\": \"thinking\", \"thinking\": \"step \\u00e9 by step\", "
        "\"chunks\": 4},"
        "  {\"type\": \"redacted_thinking\", \"data\": \"RD\"},"
        "  {\"type\": \"text\", \"deltas\": [\"a\", \"\", \"b\\tc\"], \"citations\": [{\"type\":"
        "   \"char_location\", \"cited_text\": \"a\", \"document_index\": 0, \"start_char_index\": "
        "0,"
        "   \"end_char_index\": 1}, {\"type\": \"page_location\", \"page\": 2}]},"
        "  {\"type\": \"tool_use\", \"id\": \"t1\", \"name\": \"f\","
        "   \"input\": {\"x\": [1, {\"y\": \"\\u2603\"}], \"z\": null}, \"chunks\": 7},"
        "  {\"type\": \"tool_use\", \"name\": \"g\"},"
        "  {\"type\": \"web_search_tool_result\", \"tool_use_id\": \"s1\", \"content\": []}],"
        " \"stop_sequence\": \"END\", \"stop_reason\": \"stop_sequence\","
        " \"usage\": {\"input_tokens\": 50, \"cache_read_input_tokens\": 7, \"output_tokens\": 9}},"
        " {\"text\": \"\", \"model\": \"other\", \"id\": \"msg_own\", \"ping\": false,"
        "  \"stop_reason\": \"refusal\", \"stop_details\": {\"type\": \"refusal\", \"category\": "
        "\"cyber\"}},"
        " {\"text\": \"abc\", \"chunks\": 3, \"error_event\": 2},"
        " {\"text\": \"abc\", \"chunks\": 3, \"cut\": 1}]");
    for (size_t i = 0; i < 2; i++) {
        json_t *got = NULL;
        cgw_error_t err;
        cgw_error_clear(&err);
        if (accumulate(&s->turns[i], &got, &err) != CGW_OK) {
            fail_msg("turn %zu: %s", i + 1, err.message);
        }
        json_t *want = cgw__mock_turn_message(&s->turns[i], "claude-x", "msg_7");
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
            fail_msg("turn %zu:\n got %s\nwant %s", i + 1, g, w);
        }
        json_decref(got);
        json_decref(want);
    }
    /* The faults look like the API's to a real client: an error event, a truncated stream. */
    json_t *got = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(accumulate(&s->turns[2], &got, &err), CGW_EAPI);
    assert_string_equal(err.type, "overloaded_error");
    json_decref(got);
    assert_int_equal(accumulate(&s->turns[3], &got, &err), CGW_ETRUNCATED);
    json_decref(got);
    cgw__mock_script_free(s);
}

static void test_delta_bytes(void **state)
{
    (void)state;
    /* Deltas are rendered without jansson; the bytes must be what jansson would write. */
    cgw__mock_script_t *s = parse_ok(
        "[{\"content\": [{\"type\": \"text\", \"deltas\": [\"q\\\"\\\\/\", "
        "\"\\u0001\\u001f\\u007f\", \"\\b\\f\\r\\n\\t\", \"\\u00e9\\u2603\\ud83d\\ude00\", \"\"]},"
        "{\"type\": \"thinking\", \"thinking\": \"t\", \"signature\": \"s\\\"ig\"}]}]");
    cgw__mock_plan_t *p = NULL;
    assert_int_equal(cgw__mock_plan_stream(&s->turns[0], "m", "msg_1", &p), CGW_OK);
    size_t checked = 0;
    for (size_t i = 0; i < p->nframes; i++) {
        const char *data = strstr(p->frames[i].bytes, "data: ") + 6;
        if (strncmp(p->frames[i].bytes, "event: content_block_delta\n", 27) != 0) {
            continue;
        }
        json_t *v =
            json_loadb(data, p->frames[i].len - (size_t)(data - p->frames[i].bytes), 0, NULL);
        assert_non_null(v);
        char *want = json_dumps(v, JSON_COMPACT);
        size_t n = strlen(want);
        assert_memory_equal(data, want, n);
        assert_string_equal(data + n, "\n\n");
        free(want);
        json_decref(v);
        checked++;
    }
    assert_int_equal(checked, 7);
    cgw__mock_plan_free(p);
    cgw__mock_script_free(s);
}

static void test_turn_message(void **state)
{
    (void)state;
    cgw__mock_script_t *s =
        parse_ok("[{\"model\": \"fixed\", \"stop_reason\": \"max_tokens\", \"content\": ["
                 "{\"type\": \"tool_use\", \"id\": \"t1\", \"name\": \"f\", \"input_deltas\": "
                 "[\"{\\\"a\\\":\"]}]}]");
    json_t *m = cgw__mock_turn_message(&s->turns[0], "asked", "msg_9");
    assert_string_equal(cgw_json_str(m, "model", ""), "fixed");
    assert_string_equal(cgw_json_str(m, "id", ""), "msg_9");
    assert_string_equal(cgw_json_str(m, "stop_reason", ""), "max_tokens");
    /* A truncated input cannot be parsed: the Message carries {} as the API's would. */
    json_t *input = json_object_get(json_array_get(json_object_get(m, "content"), 0), "input");
    assert_true(json_is_object(input) && json_object_size(input) == 0);
    json_decref(m);
    cgw__mock_script_free(s);
    assert_int_equal(cgw__mock_error_status("overloaded_error"), 529);
    assert_int_equal(cgw__mock_error_status("api_error"), 500);
    assert_int_equal(cgw__mock_error_status("timeout_error"), 504);
    assert_int_equal(cgw__mock_error_status("no_such_error"), 500);
    assert_string_equal(cgw__mock_default_error_type(503), "api_error");
}

/* ---- request checks ----------------------------------------------------------------------- */

static void test_check_body(void **state)
{
    (void)state;
    json_t *issued = json_pack("{s:s}", "sig1", "thought");
    json_t *parsed = NULL;
    cgw__mock_reject_t rej;
    const char *ok = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":["
                     "{\"role\":\"user\",\"content\":\"q\"},"
                     "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
                     "\"thought\",\"signature\":\"sig1\"},{\"type\":\"tool_use\",\"id\":\"a\","
                     "\"name\":\"f\",\"input\":{}},{\"type\":\"tool_use\",\"id\":\"b\",\"name\":"
                     "\"f\",\"input\":{}}]},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
                     "\"a\"},{\"type\":\"tool_result\",\"tool_use_id\":\"b\"}]}]}";
    assert_int_equal(cgw__mock_check_body(ok, strlen(ok), issued, NULL, &parsed, &rej), 0);
    assert_non_null(parsed);
    char *text = cgw__mock_last_user_text(parsed);
    assert_string_equal(text, "");
    cgw_free(text);
    json_decref(parsed);

    /* Missing signature counts as invalid; NULL body is a JSON error. */
    const char *nosig = "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"assistant\","
                        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"thought\"}]}]}";
    assert_int_equal(cgw__mock_check_body(nosig, strlen(nosig), issued, NULL, &parsed, &rej), -1);
    assert_null(parsed);
    assert_string_equal(rej.message,
                        "messages.0.content.0: Invalid `signature` in `thinking` block");
    assert_int_equal(cgw__mock_check_body(NULL, 0, issued, NULL, &parsed, &rej), -1);
    assert_int_equal(rej.status, 400);
    assert_true(strncmp(rej.message, "The request body is not valid JSON: ", 36) == 0);
    const char *trailing = "{\"model\":\"m\"} x";
    assert_int_equal(cgw__mock_check_body(trailing, strlen(trailing), issued, NULL, &parsed, &rej), -1);
    assert_non_null(strstr(rej.message, "line 1"));
    json_decref(issued);
}

static void test_last_user_text(void **state)
{
    (void)state;
    json_t *b = json_loads(
        "{\"messages\":[{\"role\":\"user\",\"content\":\"old\"},{\"role\":\"assistant\","
        "\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"A\"},"
        "{\"type\":\"image\"},{\"type\":\"tool_result\",\"content\":\"B\"},"
        "{\"type\":\"tool_result\",\"content\":[{\"type\":\"text\",\"text\":\"C\"}]}]},"
        "{\"role\":\"assistant\",\"content\":\"prefill\"}]}",
        0, NULL);
    char *t = cgw__mock_last_user_text(b);
    assert_string_equal(t, "A\nB\nC\n");
    cgw_free(t);
    json_decref(b);
}

/* ---- the in-process server ---------------------------------------------------------------- */

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    cgw_ctx_stop(arg);
}

/* The child: serve until SIGTERM, write the address to `fd` first. Exits 0 when clean; under
 * ASan a leak turns the exit status non-zero. */
static void run_child(int fd, const char *script)
{
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_mock_api_options_t o;
    cgw_mock_api_options_init(&o);
    cgw_mock_api_t *m = NULL;
    cgw_error_t err;
    if (ctx == NULL || cgw_mock_api_new(ctx, &o, &m, &err) != CGW_OK ||
        cgw_mock_api_load_script(m, script, strlen(script), &err) != CGW_OK) {
        _exit(3);
    }
    struct event *ev = evsignal_new(cgw_ctx_base(ctx), SIGTERM, on_term, ctx);
    event_add(ev, NULL);
    dprintf(fd, "%s\n", cgw_mock_api_address(m));
    close(fd);
    cgw_ctx_run(ctx);
    event_free(ev);
    cgw_mock_api_free(m);
    cgw_ctx_free(ctx);
    exit(0);
}

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += s * n;
    return s * n;
}

static CURLcode fetch(const char *addr, const char *body, long timeout_ms, size_t *got)
{
    char url[256];
    snprintf(url, sizeof(url), "http://%s/v1/messages", addr);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-api-key: k");
    h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static void test_in_process_server(void **state)
{
    (void)state;
    const char *script =
        "{\"when_exhausted\": \"cycle\", \"turns\": ["
        "{\"match\": \"HANG\", \"text\": \"abc\", \"chunks\": 3, \"hang\": 1},"
        "{\"match\": \"SLOW\", \"text\": \"abc\", \"chunks\": 3, \"delay_ms\": 400},"
        "{\"match\": \"QUIET\", \"text\": \"x\", \"hang\": \"request\"},"
        "{\"match\": \"CUT\", \"text\": \"abc\", \"chunks\": 3, \"cut\": 2},"
        "{\"match\": \"ERR\", \"text\": \"abc\", \"chunks\": 3, \"error_event\": 1},"
        "{\"text\": \"ok\"}]}";
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        run_child(fds[1], script);
    }
    close(fds[1]);
    char addr[128] = "";
    FILE *in = fdopen(fds[0], "r");
    assert_non_null(fgets(addr, sizeof(addr), in));
    fclose(in);
    addr[strcspn(addr, "\n")] = '\0';
#define ASK(word)                                                                                  \
    "{\"model\":\"m\",\"max_tokens\":9,\"stream\":true,\"messages\":"                              \
    "[{\"role\":\"user\",\"content\":\"" word "\"}]}"
    size_t got = 0;
    assert_int_equal(fetch(addr, ASK("hello"), 5000, &got), CURLE_OK);
    assert_true(got > 0);
    got = 0;
    assert_int_equal(fetch(addr, ASK("CUT"), 5000, &got), CURLE_PARTIAL_FILE);
    assert_int_equal(fetch(addr, ASK("ERR"), 5000, &got), CURLE_OK);
    /* Clients that give up: on a hang, during a pause, before any answer. */
    assert_int_equal(fetch(addr, ASK("HANG"), 300, &got), CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(fetch(addr, ASK("SLOW"), 300, &got), CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(fetch(addr, ASK("QUIET"), 300, &got), CURLE_OPERATION_TIMEDOUT);
    /* Shut down with a stream still pending on a live client. */
    pid_t client = fork();
    if (client == 0) {
        size_t n = 0;
        fetch(addr, ASK("HANG"), 3000, &n);
        _exit(0);
    }
    usleep(200 * 1000);
    kill(pid, SIGTERM);
    int status = -1;
    waitpid(pid, &status, 0);
    waitpid(client, NULL, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_new_refusals(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_mock_api_options_t o;
    cgw_mock_api_options_init(&o);
    cgw_mock_api_t *m = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    o.listen = "nonsense";
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m, &err), CGW_EINVAL);
    o.listen = "127.0.0.1:99999";
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m, &err), CGW_EINVAL);
    o.listen = "[::1:0";
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m, &err), CGW_EINVAL);
    o.listen = "127.0.0.1:0";
    o.script_path = "a";
    o.replay_path = "b";
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m, &err), CGW_EINVAL);
    assert_int_equal(cgw_mock_api_new(NULL, &o, &m, &err), CGW_EINVAL);
    o.script_path = NULL;
    o.replay_path = NULL;
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m, &err), CGW_OK);
    assert_int_equal(cgw_mock_api_load_script(m, "[", 1, &err), CGW_EJSON);
    assert_int_equal(cgw_mock_api_load_script(m, "[{\"hang\":\"x\"}]", 14, &err), CGW_ECONFIG);
    /* A second server on the same port cannot bind. */
    cgw_mock_api_t *m2 = NULL;
    o.listen = cgw_mock_api_address(m);
    assert_int_equal(cgw_mock_api_new(ctx, &o, &m2, &err), CGW_EIO);
    assert_null(m2);
    cgw_mock_api_free(m);
    cgw_mock_api_free(NULL);
    cgw_ctx_free(ctx);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_refusals), cmocka_unit_test(test_script_load_errors),
        cmocka_unit_test(test_script_defaults), cmocka_unit_test(test_capture_parse),
        cmocka_unit_test(test_response_turns),  cmocka_unit_test(test_sse_frames),
        cmocka_unit_test(test_sse_harvest),     cmocka_unit_test(test_plan_faults),
        cmocka_unit_test(test_turn_message),    cmocka_unit_test(test_stream_matches_message),
        cmocka_unit_test(test_delta_bytes),     cmocka_unit_test(test_check_body),
        cmocka_unit_test(test_last_user_text),  cmocka_unit_test(test_in_process_server),
        cmocka_unit_test(test_new_refusals),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
