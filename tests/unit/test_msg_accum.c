/* cgw_msg_accum_t on hand-written streams: every block and delta kind, byte-exact thinking,
 * tool input parsing, usage replacement, the error event, every protocol violation, limits and
 * the increments reported to the consumer. Recorded streams: test_msg_fixtures.c. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "msgstream.h"
#include "proto/msg_accum.h"
#include "testutil.h"

#define MSG_START                                                                                  \
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","              \
    "\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,"                  \
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":3,"         \
    "\"output_tokens\":1}}}"

/* The increments seen, rendered one per line: "KIND index text". */
typedef struct seen {
    cgw_buf_t log;
    int abort_at; /* return CGW_ECANCELED on this event number (1-based), 0 = never */
    int n;
} seen_t;

static const char *kind_name(cgw_msg_ev_kind_t k)
{
    static const char *names[] = {"MSTART", "BSTART", "TEXT",  "THINK",  "SIG",   "INPUT",
                                  "CITE",   "OTHER",  "BSTOP", "MDELTA", "MSTOP", "UNKNOWN"};
    return names[k];
}

static int on_ev(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err)
{
    (void)err;
    seen_t *s = user;
    s->n++;
    cgw_buf_appendf(&s->log, "%s %zu %s %.*s\n", kind_name(ev->kind), ev->index,
                    ev->block_type ? ev->block_type : "-", (int)ev->text.len, ev->text.ptr);
    return s->abort_at != 0 && s->n == s->abort_at ? CGW_ECANCELED : CGW_OK;
}

static cgw_msg_accum_t *new_acc(seen_t *s, size_t max_block)
{
    cgw_msg_accum_options_t o;
    cgw_msg_accum_options_init(&o);
    o.on_event = s ? on_ev : NULL;
    o.user = s;
    if (max_block) {
        o.max_block_bytes = max_block;
    }
    cgw_msg_accum_t *a = NULL;
    assert_int_equal(cgw_msg_accum_new(&o, &a), CGW_OK);
    return a;
}

static int feed(cgw_msg_accum_t *a, const char *type, const char *data, cgw_error_t *err)
{
    cgw_str_t t = {type, strlen(type)};
    return cgw_msg_accum_feed(a, t, data, strlen(data), err);
}

/* Feeds (name, data) pairs until a NULL name; asserts each returns CGW_OK but the last, whose
 * code is returned. */
static int feed_all(cgw_msg_accum_t *a, const char *const *ev, cgw_error_t *err)
{
    int rc = CGW_OK;
    for (size_t i = 0; ev[i] != NULL; i += 2) {
        assert_int_equal(rc, CGW_OK);
        rc = feed(a, ev[i], ev[i + 1], err);
    }
    return rc;
}

static void assert_json(const json_t *actual, const char *expected_subset)
{
    json_error_t je;
    json_t *e = json_loads(expected_subset, 0, &je);
    assert_non_null(e);
    char where[1024];
    if (!cgw_test_json_subset(e, actual, where, sizeof(where))) {
        fail_msg("%s", where);
    }
    json_decref(e);
}

static void test_text_stream_and_increments(void **state)
{
    (void)state;
    seen_t s = {CGW_BUF_INIT, 0, 0};
    cgw_msg_accum_t *a = new_acc(&s, 0);
    assert_null(cgw_msg_accum_message(a));
    assert_int_equal(feed(a, "ping", "{\"type\": \"ping\"}", NULL), CGW_OK); /* before start: ok */
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_false(cgw_msg_accum_content_started(a));
    const char *const ev[] = {"content_block_start",
                              "{\"type\":\"content_block_start\",\"index\":0,"
                              "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
                              "content_block_delta",
                              "{\"type\":\"content_block_delta\",\"index\":0,"
                              "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}   ",
                              "ping",
                              "",
                              "content_block_delta",
                              "{\"type\":\"content_block_delta\",\"index\":0,"
                              "\"delta\":{\"type\":\"text_delta\",\"text\":\" w\\u00f6rld\"}}",
                              NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    assert_true(cgw_msg_accum_content_started(a));
    /* the message so far shows the open block's text */
    assert_json(cgw_msg_accum_message(a),
                "{\"content\":[{\"type\":\"text\",\"text\":\"Hello w\u00f6rld\"}]}");
    const char *const ev2[] = {
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\","
        "\"stop_sequence\":\"##\"},\"usage\":{\"output_tokens\":6}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
        NULL};
    assert_int_equal(feed_all(a, ev2, NULL), CGW_OK);
    assert_int_equal(cgw_msg_accum_finish(a, NULL), CGW_OK);
    assert_true(cgw_msg_accum_complete(a));
    assert_string_equal(cgw_msg_accum_stop_reason(a), "stop_sequence");
    assert_string_equal(cgw_msg_accum_stop_sequence(a), "##");
    assert_int_equal(cgw_msg_accum_block_count(a), 1);
    assert_int_equal(cgw_msg_accum_event_count(a), 9);
    assert_json(
        cgw_msg_accum_message(a),
        "{\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
        "\"text\":\"Hello w\u00f6rld\"}],\"stop_reason\":\"stop_sequence\","
        "\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":3,\"output_tokens\":6}}");
    cgw_buf_append(&s.log, "", 0);
    assert_string_equal(s.log.data, "MSTART 0 - \n"
                                    "BSTART 0 text \n"
                                    "TEXT 0 text Hello\n"
                                    "TEXT 0 text  w\u00f6rld\n"
                                    "BSTOP 0 text \n"
                                    "MDELTA 0 - \n"
                                    "MSTOP 0 - \n");
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);
}

static void test_thinking_byte_exact(void **state)
{
    (void)state;
    seen_t s = {CGW_BUF_INIT, 0, 0};
    cgw_msg_accum_t *a = new_acc(&s, 0);
    /* whitespace, escapes, an embedded NUL, an astral character: all kept exactly */
    const char *const ev[] = {
        "message_start",
        MSG_START,
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"thinking_delta\",\"thinking\":\"  a\\tb\\n\"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"thinking_delta\",\"thinking\":\"\\u0000\\ud83d\\ude00 \"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"thinking_delta\",\"thinking\":\"\"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"signature_delta\",\"signature\":\"EqQBCkYIBx+/=\"}}",
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":0}",
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
        "{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgB \\u00e9\"}}",
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":1}",
        "message_stop",
        "",
        NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    const json_t *m = cgw_msg_accum_message(a);
    const json_t *th = json_array_get(json_object_get(m, "content"), 0);
    const json_t *t = json_object_get(th, "thinking");
    static const char want[] = "  a\tb\n\0\xF0\x9F\x98\x80 ";
    assert_int_equal(json_string_length(t), sizeof(want) - 1);
    assert_memory_equal(json_string_value(t), want, sizeof(want) - 1);
    assert_string_equal(json_string_value(json_object_get(th, "signature")), "EqQBCkYIBx+/=");
    /* field order as received, so a re-serialised block reads like the original */
    char *dump = json_dumps(th, JSON_COMPACT);
    assert_non_null(strstr(dump, "{\"type\":\"thinking\",\"thinking\":"));
    free(dump);
    assert_json(m, "{\"content\":[{\"type\":\"thinking\"},{\"type\":\"redacted_thinking\","
                   "\"data\":\"EmwKAhgB \u00e9\"}]}");
    assert_non_null(strstr(s.log.data, "SIG 0 thinking EqQBCkYIBx+/=\n"));
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);
}

static const char *tool_start(const char *type)
{
    static char buf[256];
    snprintf(buf, sizeof(buf),
             "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"%s\","
             "\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}}",
             type);
    return buf;
}

#define INPUT(js)                                                                                  \
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"                           \
    "\"input_json_delta\",\"partial_json\":" js "}}"
#define STOP0 "{\"type\":\"content_block_stop\",\"index\":0}"

static void test_tool_input(void **state)
{
    (void)state;
    const char *types[] = {"tool_use", "server_tool_use", "mcp_tool_use"};
    for (size_t i = 0; i < 3; i++) {
        cgw_msg_accum_t *a = new_acc(NULL, 0);
        const char *const ev[] = {"message_start",
                                  MSG_START,
                                  "content_block_start",
                                  tool_start(types[i]),
                                  "content_block_delta",
                                  INPUT("\"\""),
                                  "content_block_delta",
                                  INPUT("\"{\\\"q\\\": [1, \""),
                                  "content_block_delta",
                                  INPUT("\"2]}\""),
                                  "content_block_stop",
                                  STOP0,
                                  NULL};
        assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
        assert_json(cgw_msg_accum_message(a), "{\"content\":[{\"id\":\"toolu_1\",\"input\":"
                                              "{\"q\":[1,2]}}]}");
        cgw_msg_accum_free(a);
    }
    /* only an empty fragment: {} */
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    const char *const ev[] = {"message_start",
                              MSG_START,
                              "content_block_start",
                              tool_start("tool_use"),
                              "content_block_delta",
                              INPUT("\"\""),
                              "content_block_stop",
                              STOP0,
                              NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    const json_t *in = json_object_get(
        json_array_get(json_object_get(cgw_msg_accum_message(a), "content"), 0), "input");
    assert_true(json_is_object(in) && json_object_size(in) == 0);
    cgw_msg_accum_free(a);
}

static void test_tool_input_invalid(void **state)
{
    (void)state;
    const char *bad[] = {INPUT("\"{\\\"q\\\": \""), INPUT("\"[1,2]\""), INPUT("\"{} x\"")};
    for (size_t i = 0; i < 3; i++) {
        cgw_msg_accum_t *a = new_acc(NULL, 0);
        cgw_error_t e;
        cgw_error_clear(&e);
        const char *const ev[] = {"message_start",
                                  MSG_START,
                                  "content_block_start",
                                  tool_start("tool_use"),
                                  "content_block_delta",
                                  bad[i],
                                  "content_block_stop",
                                  STOP0,
                                  NULL};
        assert_int_equal(feed_all(a, ev, &e), CGW_EJSON);
        assert_non_null(strstr(e.message, "content block 0 (tool_use)"));
        /* never half an input: the block has no "input" at all */
        const json_t *b = json_array_get(json_object_get(cgw_msg_accum_message(a), "content"), 0);
        assert_null(json_object_get(b, "input"));
        /* sticky */
        assert_int_equal(feed(a, "message_stop", "", NULL), CGW_EJSON);
        assert_int_equal(cgw_msg_accum_finish(a, NULL), CGW_EJSON);
        assert_false(cgw_msg_accum_complete(a));
        cgw_msg_accum_free(a);
    }
}

static void test_truncated_tool_block(void **state)
{
    (void)state;
    /* the recorded max_tokens case: the tool block never stops, message_stop arrives */
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    cgw_error_t e;
    const char *const ev[] = {
        "message_start",
        MSG_START,
        "content_block_start",
        tool_start("tool_use"),
        "content_block_delta",
        INPUT("\"{\\\"path\\\": \\\"a.t\""),
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},"
        "\"usage\":{\"output_tokens\":9}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
        NULL};
    assert_int_equal(feed_all(a, ev, &e), CGW_ETRUNCATED);
    assert_non_null(strstr(e.message, "cut off"));
    assert_string_equal(cgw_msg_accum_stop_reason(a), "max_tokens");
    assert_false(cgw_msg_accum_complete(a));
    cgw_msg_accum_free(a);
    /* an unstopped text block is simply closed */
    a = new_acc(NULL, 0);
    const char *const ev2[] = {
        "message_start",
        MSG_START,
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"text_delta\",\"text\":\"x\"}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
        NULL};
    assert_int_equal(feed_all(a, ev2, NULL), CGW_OK);
    assert_json(cgw_msg_accum_message(a), "{\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}");
    cgw_msg_accum_free(a);
}

static void test_usage_replaces(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    const char *const ev[] = {
        "message_start",
        MSG_START,
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},"
        "\"usage\":{\"output_tokens\":5,\"server_tool_use\":{\"web_search_requests\":1}}}",
        "message_delta",
        "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
        "\"container\":{\"id\":\"c1\"}},\"usage\":{\"output_tokens\":7,"
        "\"input_tokens\":12}}",
        NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    assert_json(cgw_msg_accum_usage(a), "{\"input_tokens\":12,\"cache_read_input_tokens\":3,"
                                        "\"output_tokens\":7,\"server_tool_use\":"
                                        "{\"web_search_requests\":1}}");
    assert_json(cgw_msg_accum_message(a),
                "{\"stop_reason\":\"end_turn\",\"container\":{\"id\":\"c1\"}}");
    assert_false(cgw_msg_accum_content_started(a)); /* message-level events carry no content */
    assert_int_equal(cgw_msg_accum_finish(a, NULL), CGW_ETRUNCATED);
    cgw_msg_accum_free(a);
}

static void test_error_event(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    cgw_error_t e;
    cgw_error_clear(&e);
    assert_int_equal(feed(a, "message_start", MSG_START, &e), CGW_OK);
    assert_int_equal(feed(a, "error",
                          "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                          "\"message\":\"Overloaded\"},\"request_id\":\"req_9\"}  ",
                          &e),
                     CGW_EAPI);
    assert_int_equal(e.code, CGW_EAPI);
    assert_string_equal(e.type, "overloaded_error");
    assert_string_equal(e.message, "Overloaded");
    assert_string_equal(e.request_id, "req_9");
    assert_false(cgw_msg_accum_content_started(a));
    assert_int_equal(cgw_msg_accum_finish(a, NULL), CGW_EAPI);
    /* reset makes it usable again, e.g. for a retry */
    cgw_msg_accum_reset(a);
    assert_null(cgw_msg_accum_message(a));
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    cgw_msg_accum_free(a);
    /* an error before message_start and with an empty body */
    a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "error", "", &e), CGW_EAPI);
    cgw_msg_accum_free(a);
}

typedef struct bad_case {
    const char *name, *data;
    int code;
    const char *msg; /* a piece of the expected message */
} bad_case_t;

#define TEXT_START                                                                                 \
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":" \
    "\"\"}}"

static void test_protocol_violations(void **state)
{
    (void)state;
    /* each case runs after message_start + one open text block at index 0 */
    const bad_case_t cases[] = {
        {"message_start", MSG_START, CGW_EPROTO, "second message_start"},
        {"content_block_start", TEXT_START, CGW_EPROTO, "index 0, expected 1"},
        {"content_block_start", "{\"index\":3,\"content_block\":{\"type\":\"text\"}}", CGW_EPROTO,
         "index 3, expected 1"},
        {"content_block_start", "{\"index\":1}", CGW_EPROTO, "typed block"},
        {"content_block_delta", "{\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}",
         CGW_EPROTO, "index 1, which is not an open block"},
        {"content_block_delta", "{\"index\":-1,\"delta\":{}}", CGW_EPROTO, "valid \"index\""},
        {"content_block_delta", "{\"index\":0,\"delta\":{\"text\":\"x\"}}", CGW_EPROTO, "typed"},
        {"content_block_delta", "{\"index\":0,\"delta\":{\"type\":\"text_delta\"}}", CGW_EPROTO,
         "string \"text\""},
        {"content_block_delta",
         "{\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
         "\"partial_json\":\"{\"}}",
         CGW_EPROTO, "does not fit a text block"},
        {"content_block_delta",
         "{\"index\":0,\"delta\":{\"type\":\"signature_delta\","
         "\"signature\":\"s\"}}",
         CGW_EPROTO, "does not fit"},
        {"content_block_delta", "{\"index\":0,\"delta\":{\"type\":\"citations_delta\"}}",
         CGW_EPROTO, "\"citation\" object"},
        {"content_block_stop", "{\"index\":5}", CGW_EPROTO, "not an open block"},
        {"message_delta", "{\"delta\":5}", CGW_EPROTO, "not objects"},
        {"message_start", "{\"type\":\"message_start\",\"message\":[]}", CGW_EPROTO, "second"},
        {"content_block_delta", "{\"index\":0,", CGW_EJSON, "not a JSON object"},
        {"content_block_delta", "[1]", CGW_EJSON, "another JSON value"},
        {"content_block_delta", "", CGW_EJSON, "without data"},
        {"", "{\"no\":\"type\"}", CGW_EPROTO, "without an event name"},
        {"", "", CGW_EJSON, "neither a name nor data"},
        {"ping", "nope", CGW_EJSON, "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cgw_msg_accum_t *a = new_acc(NULL, 0);
        assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
        assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
        cgw_error_t e;
        cgw_error_clear(&e);
        int rc = feed(a, cases[i].name, cases[i].data, &e);
        if (rc != cases[i].code || strstr(e.message, cases[i].msg) == NULL) {
            fail_msg("case %zu (%s %s): got %s \"%s\"", i, cases[i].name, cases[i].data,
                     cgw_err_name(rc), e.message);
        }
        cgw_msg_accum_free(a);
    }
}

static void test_order_violations(void **state)
{
    (void)state;
    cgw_error_t e;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, &e), CGW_EPROTO);
    assert_non_null(strstr(e.message, "before message_start"));
    cgw_msg_accum_free(a);
    a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "message_start", MSG_START, &e), CGW_OK);
    assert_int_equal(feed(a, "message_stop", "{}", &e), CGW_OK);
    assert_int_equal(feed(a, "ping", "{}", &e), CGW_OK);
    assert_int_equal(feed(a, "message_delta", "{}", &e), CGW_EPROTO);
    assert_non_null(strstr(e.message, "after message_stop"));
    cgw_msg_accum_free(a);
    /* a delta or a second stop for a block that already stopped */
    a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_stop", STOP0, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_delta",
                          "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                          "{\"type\":\"text_delta\",\"text\":\"late\"}}",
                          &e),
                     CGW_EPROTO);
    assert_non_null(strstr(e.message, "index 0, which is not an open block"));
    cgw_msg_accum_free(a);
    a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_stop", STOP0, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_stop", STOP0, &e), CGW_EPROTO);
    cgw_msg_accum_free(a);
    /* malformed JSON reports line and column */
    a = new_acc(NULL, 0);
    cgw_error_clear(&e);
    assert_int_equal(feed(a, "message_start", "{\n \"x\": tru }", &e), CGW_EJSON);
    assert_int_equal(e.line, 2);
    assert_true(e.column > 0);
    cgw_msg_accum_free(a);
}

static void test_unknowns_and_server_blocks(void **state)
{
    (void)state;
    seen_t s = {CGW_BUF_INIT, 0, 0};
    cgw_msg_accum_t *a = new_acc(&s, 0);
    const char *const ev[] = {
        "message_start",
        MSG_START,
        "brand_new_event",
        "not json at all",
        "other_event",
        "{\"type\":\"other_event\",\"x\":1}",
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
        "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srv_1\","
        "\"content\":[{\"type\":\"web_search_result\",\"url\":\"u\","
        "\"page_age\":null}]}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
        "{\"type\":\"future_delta\",\"v\":1}}",
        "content_block_stop",
        STOP0,
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
        "{\"type\":\"compaction\",\"content\":null}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
        "\"compaction_delta\",\"content\":\"sum\",\"encrypted_content\":\"E\"}}",
        "content_block_stop",
        "{\"type\":\"content_block_stop\",\"index\":1}",
        "content_block_start",
        "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":"
        "{\"type\":\"text\",\"text\":\"\",\"citations\":null}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
        "\"citations_delta\",\"citation\":{\"type\":\"char_location\",\"n\":1}}}",
        "content_block_delta",
        "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
        "\"citations_delta\",\"citation\":{\"type\":\"char_location\",\"n\":2}}}",
        "message_stop",
        "{\"type\":\"message_stop\"}",
        NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    assert_json(cgw_msg_accum_message(a),
                "{\"content\":[{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srv_1\","
                "\"content\":[{\"type\":\"web_search_result\",\"url\":\"u\"}]},"
                "{\"type\":\"compaction\",\"content\":\"sum\",\"encrypted_content\":\"E\"},"
                "{\"type\":\"text\",\"text\":\"\",\"citations\":[{\"n\":1},{\"n\":2}]}]}");
    assert_non_null(strstr(s.log.data, "UNKNOWN 0 - \nUNKNOWN 0 - \n"));
    assert_non_null(strstr(s.log.data, "OTHER 0 web_search_tool_result"));
    assert_non_null(strstr(s.log.data, "CITE 2 text"));
    /* the page_age null of the server block is kept, not dropped */
    const json_t *r = json_array_get(
        json_object_get(json_array_get(json_object_get(cgw_msg_accum_message(a), "content"), 0),
                        "content"),
        0);
    assert_true(json_is_null(json_object_get(r, "page_age")));
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);
}

static void test_limits_and_abort(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 8);
    cgw_error_t e;
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_delta",
                          "{\"index\":0,\"delta\":{\"type\":"
                          "\"text_delta\",\"text\":\"12345678\"}}",
                          NULL),
                     CGW_OK);
    assert_int_equal(feed(a, "content_block_delta",
                          "{\"index\":0,\"delta\":{\"type\":"
                          "\"text_delta\",\"text\":\"9\"}}",
                          &e),
                     CGW_E2BIG);
    assert_non_null(strstr(e.message, "more than 8 bytes"));
    cgw_msg_accum_free(a);

    seen_t s = {CGW_BUF_INIT, 2, 0};
    a = new_acc(&s, 0);
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_ECANCELED);
    assert_int_equal(feed(a, "ping", "{}", NULL), CGW_ECANCELED);
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);

    cgw_msg_accum_options_t o;
    cgw_msg_accum_options_init(&o);
    o.max_block_bytes = 0;
    assert_int_equal(cgw_msg_accum_new(&o, &a), CGW_EINVAL);
    assert_int_equal(cgw_msg_accum_new(NULL, NULL), CGW_EINVAL);
    cgw_msg_accum_free(NULL);
}

static void test_feed_json_and_finish(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    json_t *start = json_loads(MSG_START, 0, NULL);
    cgw_str_t none = {"", 0};
    assert_int_equal(cgw_msg_accum_feed_json(a, none, start, NULL), CGW_OK);
    json_decref(start);
    json_t *arr = json_array();
    assert_int_equal(cgw_msg_accum_feed_json(a, none, arr, NULL), CGW_EJSON);
    json_decref(arr);
    cgw_msg_accum_free(a);

    a = new_acc(NULL, 0);
    cgw_error_t e;
    cgw_str_t null_name = {NULL, 0};
    assert_int_equal(cgw_msg_accum_feed(a, null_name, NULL, 0, &e), CGW_EJSON);
    assert_non_null(strstr(e.message, "neither a name nor data"));
    cgw_msg_accum_reset(a);
    assert_int_equal(cgw_msg_accum_finish(a, &e), CGW_ETRUNCATED);
    assert_non_null(strstr(e.message, "no message_start either"));
    cgw_msg_accum_free(a);
}

/* Builds a two-block stream; `api_shape` = 0 puts "index" after "delta" in every delta, which
 * sends them down the general jansson path instead of the fast one. */
static json_t *two_block_message(int api_shape, cgw_buf_t *log)
{
    seen_t s = {CGW_BUF_INIT, 0, 0};
    cgw_msg_accum_t *a = new_acc(&s, 0);
    const char *texts[] = {"\"H\\u00e9llo \\ud83d\\ude00\"", "\" w\\\"o\\\\rld\\n\""};
    const char *frags[] = {"\"{\\\"a\\\":\"", "\"[1,\\\"\\u00e9\\\"]}\""};
    char buf[512];
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof(buf),
                 api_shape ? "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                             "\"text_delta\",\"text\":%s}}"
                           : "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\","
                             "\"text\":%s},\"index\":0}",
                 texts[i]);
        assert_int_equal(feed(a, "content_block_delta", buf, NULL), CGW_OK);
    }
    assert_int_equal(feed(a, "content_block_stop", STOP0, NULL), CGW_OK);
    const char *start1 = "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
                         "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}";
    assert_int_equal(feed(a, "content_block_start", start1, NULL), CGW_OK);
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof(buf),
                 api_shape ? "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                             "\"input_json_delta\",\"partial_json\":%s}}"
                           : "{\"type\":\"content_block_delta\",\"delta\":{\"partial_json\":%s,"
                             "\"type\":\"input_json_delta\"},\"index\":1}",
                 frags[i]);
        assert_int_equal(feed(a, "content_block_delta", buf, NULL), CGW_OK);
    }
    assert_int_equal(
        feed(a, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}", NULL),
        CGW_OK);
    assert_int_equal(feed(a, "message_stop", "{}", NULL), CGW_OK);
    json_t *m = json_incref((json_t *)cgw_msg_accum_message(a));
    cgw_buf_append_str(log, s.log.data);
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);
    return m;
}

static void test_fast_and_general_paths_agree(void **state)
{
    (void)state;
    cgw_buf_t fast_log = CGW_BUF_INIT, slow_log = CGW_BUF_INIT;
    json_t *fast = two_block_message(1, &fast_log);
    json_t *slow = two_block_message(0, &slow_log);
    assert_true(json_equal(fast, slow));
    assert_string_equal(fast_log.data, slow_log.data); /* same increments, same bytes */
    assert_json(fast, "{\"content\":[{\"text\":\"H\u00e9llo \U0001F600 w\\\"o\\\\rld\\n\"},"
                      "{\"input\":{\"a\":[1,\"\u00e9\"]}}]}");
    json_decref(fast);
    json_decref(slow);
    cgw_buf_free(&fast_log);
    cgw_buf_free(&slow_log);
}

static void test_parallel_open_blocks(void **state)
{
    (void)state;
    /* blocks are not interleaved in practice, but nothing forbids it: deltas go by index */
    seen_t s = {CGW_BUF_INIT, 0, 0};
    cgw_msg_accum_t *a = new_acc(&s, 0);
    const char *const ev[] = {"message_start",
                              MSG_START,
                              "content_block_start",
                              TEXT_START,
                              "content_block_start",
                              "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
                              "{\"type\":\"text\",\"text\":\"pre-\"}}",
                              "content_block_delta",
                              "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
                              "{\"type\":\"text_delta\",\"text\":\"b\"}}",
                              "content_block_delta",
                              "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                              "{\"type\":\"text_delta\",\"text\":\"a\"}}",
                              "content_block_stop",
                              "{\"type\":\"content_block_stop\",\"index\":1}",
                              "message_stop",
                              "{}",
                              NULL};
    assert_int_equal(feed_all(a, ev, NULL), CGW_OK);
    assert_json(cgw_msg_accum_message(a), "{\"content\":[{\"text\":\"a\"},{\"text\":\"pre-b\"}]}");
    /* block 0 was never stopped: message_stop closes it and reports the stop */
    assert_non_null(strstr(s.log.data, "BSTOP 1 text \nBSTOP 0 text \nMSTOP"));
    cgw_buf_free(&s.log);
    cgw_msg_accum_free(a);
}

static void test_initial_content_adopted(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    const char *start = "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":"
                        "[{\"type\":\"text\",\"text\":\"kept\"}],\"usage\":{}}}";
    assert_int_equal(feed(a, "message_start", start, NULL), CGW_OK);
    assert_int_equal(cgw_msg_accum_block_count(a), 1);
    cgw_error_t e;
    /* an earlier block is complete: no delta for it, and the next index is 1 */
    assert_int_equal(feed(a, "content_block_start", TEXT_START, &e), CGW_EPROTO);
    assert_non_null(strstr(e.message, "expected 1"));
    cgw_msg_accum_free(a);
    /* a message_start without content gets an empty array */
    a = new_acc(NULL, 0);
    assert_int_equal(feed(a, "message_start", "{\"message\":{\"id\":\"m\"}}", NULL), CGW_OK);
    assert_json(cgw_msg_accum_message(a), "{\"content\":[]}");
    assert_null(cgw_msg_accum_usage(a));
    assert_null(cgw_msg_accum_stop_reason(a));
    cgw_msg_accum_free(a);
}

static void test_error_after_content(void **state)
{
    (void)state;
    cgw_msg_accum_t *a = new_acc(NULL, 0);
    cgw_error_t e;
    cgw_error_clear(&e);
    assert_int_equal(feed(a, "message_start", MSG_START, NULL), CGW_OK);
    assert_int_equal(feed(a, "content_block_start", TEXT_START, NULL), CGW_OK);
    assert_true(cgw_msg_accum_content_started(a));
    assert_int_equal(feed(a, "error", "Service Unavailable", &e), CGW_EAPI);
    assert_non_null(strstr(e.message, "non-JSON data: Service Unavailable"));
    assert_true(cgw_msg_accum_content_started(a)); /* the retry logic must discard deltas */
    cgw_msg_accum_free(a);
    /* an error body without error.type/message still gives CGW_EAPI and a message */
    a = new_acc(NULL, 0);
    cgw_error_clear(&e);
    assert_int_equal(feed(a, "error", "{\"type\":\"error\"}", &e), CGW_EAPI);
    assert_string_equal(e.type, "");
    assert_non_null(strstr(e.message, "without a message"));
    cgw_msg_accum_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_stream_and_increments),
        cmocka_unit_test(test_thinking_byte_exact),
        cmocka_unit_test(test_tool_input),
        cmocka_unit_test(test_tool_input_invalid),
        cmocka_unit_test(test_truncated_tool_block),
        cmocka_unit_test(test_usage_replaces),
        cmocka_unit_test(test_error_event),
        cmocka_unit_test(test_protocol_violations),
        cmocka_unit_test(test_order_violations),
        cmocka_unit_test(test_unknowns_and_server_blocks),
        cmocka_unit_test(test_limits_and_abort),
        cmocka_unit_test(test_feed_json_and_finish),
        cmocka_unit_test(test_fast_and_general_paths_agree),
        cmocka_unit_test(test_parallel_open_blocks),
        cmocka_unit_test(test_initial_content_adopted),
        cmocka_unit_test(test_error_after_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
