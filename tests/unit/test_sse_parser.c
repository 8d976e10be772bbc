/* cgw_sse_parser_t: framing (line ends, field syntax, comments, retry, id), the end-of-stream
 * flush, limits, sticky failures, and identical results for every way of chunking a stream. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "proto/sse_parser.h"
#include "testutil.h"

/* Every event rendered as "event|data|id\n", so a whole run compares as one string. */
typedef struct rec {
    cgw_buf_t out;
    int stop_after; /* return CGW_ECANCELED from this event on (1-based), 0 = never */
    int n;
} rec_t;

static int on_event(void *user, const cgw_sse_event_t *ev, cgw_error_t *err)
{
    (void)err;
    rec_t *r = user;
    r->n++;
    cgw_buf_append(&r->out, ev->event.ptr, ev->event.len);
    cgw_buf_append_char(&r->out, '|');
    cgw_buf_append(&r->out, ev->data.ptr, ev->data.len);
    cgw_buf_append_char(&r->out, '|');
    cgw_buf_append(&r->out, ev->id.ptr, ev->id.len);
    cgw_buf_append_char(&r->out, '\n');
    return r->stop_after != 0 && r->n >= r->stop_after ? CGW_ECANCELED : CGW_OK;
}

static cgw_sse_parser_t *new_parser(rec_t *r, size_t max_line, size_t max_event)
{
    cgw_sse_parser_options_t o;
    cgw_sse_parser_options_init(&o);
    o.on_event = on_event;
    o.user = r;
    if (max_line) {
        o.max_line = max_line;
    }
    if (max_event) {
        o.max_event = max_event;
    }
    cgw_sse_parser_t *p = NULL;
    assert_int_equal(cgw_sse_parser_new(&o, &p), CGW_OK);
    return p;
}

/* Parses `in` in chunks of `step` bytes (0 = whole) and returns the rendered events
 * (caller frees with cgw_free). */
static char *parse_steps(const char *in, size_t len, size_t step)
{
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 0);
    size_t at = 0;
    while (at < len) {
        size_t n = step == 0 || len - at < step ? len - at : step;
        assert_int_equal(cgw_sse_parser_feed(p, in + at, n, NULL), CGW_OK);
        at += n;
    }
    assert_int_equal(cgw_sse_parser_finish(p, NULL), CGW_OK);
    cgw_sse_parser_free(p);
    cgw_buf_append(&r.out, "", 0);
    return cgw_buf_steal(&r.out, NULL);
}

static void expect_events(const char *in, const char *want)
{
    size_t len = strlen(in);
    char *whole = parse_steps(in, len, 0);
    assert_string_equal(whole, want);
    /* Every two-way split and every byte-at-a-time feed must give the same events. */
    char *bytewise = parse_steps(in, len, 1);
    assert_string_equal(bytewise, want);
    cgw_free(bytewise);
    for (size_t cut = 1; cut < len; cut++) {
        rec_t r = {CGW_BUF_INIT, 0, 0};
        cgw_sse_parser_t *p = new_parser(&r, 0, 0);
        assert_int_equal(cgw_sse_parser_feed(p, in, cut, NULL), CGW_OK);
        assert_int_equal(cgw_sse_parser_feed(p, in + cut, len - cut, NULL), CGW_OK);
        assert_int_equal(cgw_sse_parser_finish(p, NULL), CGW_OK);
        cgw_buf_append(&r.out, "", 0);
        assert_string_equal(r.out.data, want);
        cgw_buf_free(&r.out);
        cgw_sse_parser_free(p);
    }
    cgw_free(whole);
}

static void test_line_ends(void **state)
{
    (void)state;
    const char *want = "a|1|\nb|2|\n";
    expect_events("event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", want);
    expect_events("event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n", want);
    expect_events("event: a\rdata: 1\r\revent: b\rdata: 2\r\r", want);
    expect_events("event: a\r\ndata: 1\n\revent: b\rdata: 2\r\n\n", want);
}

static void test_cr_split_across_chunks(void **state)
{
    (void)state;
    /* A CR ending one chunk and an LF starting the next are ONE line end: no extra blank
     * line, so the two data lines stay in one event. */
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 0);
    assert_int_equal(cgw_sse_parser_feed(p, "data: x\r", 8, NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, "\ndata: y\r", 9, NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, NULL, 0, NULL), CGW_OK); /* empty chunk keeps it */
    assert_int_equal(cgw_sse_parser_feed(p, "\n\r\n", 3, NULL), CGW_OK);
    assert_int_equal(r.n, 1);
    cgw_buf_append(&r.out, "", 0);
    assert_string_equal(r.out.data, "|x\ny|\n");
    cgw_buf_free(&r.out);
    cgw_sse_parser_free(p);
}

static void test_field_syntax(void **state)
{
    (void)state;
    /* no space, one space dropped, second space kept, trailing padding kept */
    expect_events("data:{\"a\":1}\n\n", "|{\"a\":1}|\n");
    expect_events("data:  two\n\n", "| two|\n");
    expect_events("data: {\"type\":\"message_stop\"}     \n\n",
                  "|{\"type\":\"message_stop\"}     |\n");
    /* multi-line data joined with \n; a bare "data" line is an empty data line */
    expect_events("data: a\ndata\ndata: b\n\n", "|a\n\nb|\n");
    /* comments and unknown fields ignored; a field name is case-sensitive */
    expect_events(": keep-alive\nfoo: bar\nData: no\nevent: e\ndata: d\n\n", "e|d|\n");
    /* the last event: line wins */
    expect_events("event: a\nevent: b\ndata: d\n\n", "b|d|\n");
    /* a leading BOM is skipped */
    expect_events("\xEF\xBB\xBF"
                  "data: x\n\n",
                  "|x|\n");
}

static void test_dispatch_rules(void **state)
{
    (void)state;
    /* event with no data is still dispatched (SDK behaviour; PHP ga/thinking.txt) */
    expect_events("event: message_stop\n\n", "message_stop||\n");
    /* a blank-line-only stream or comments only: nothing */
    expect_events("\n\n\n: c\n\n", "");
    /* id persists across events (NUL and empty ids: test_id_with_nul) */
    expect_events("id: 7\ndata: a\n\ndata: b\n\n", "|a|7\n|b|7\n");
    /* the last event without a closing blank line (or without any newline) is flushed */
    expect_events("data: a\n\ndata: b", "|a|\n|b|\n");
    expect_events("event: x\ndata: y\n", "x|y|\n");
}

static void test_id_with_nul(void **state)
{
    (void)state;
    static const char in[] = "id: 1\ndata: a\n\nid: 2\0z\ndata: b\n\nid\ndata: c\n\n";
    char *got = parse_steps(in, sizeof(in) - 1, 0);
    assert_string_equal(got, "|a|1\n|b|1\n|c|\n");
    cgw_free(got);
}

static void test_retry(void **state)
{
    (void)state;
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 0);
    assert_int_equal(cgw_sse_parser_retry_ms(p), -1);
    const char *in = "retry: 1500\n\nretry: 12a\n\nretry:\n\n";
    assert_int_equal(cgw_sse_parser_feed(p, in, strlen(in), NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_retry_ms(p), 1500); /* invalid ones ignored */
    const char *big = "retry: 99999999999999999999999\n";
    assert_int_equal(cgw_sse_parser_feed(p, big, strlen(big), NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_retry_ms(p), INT64_MAX);
    assert_int_equal(r.n, 0); /* retry alone dispatches nothing */
    cgw_sse_parser_reset(p);
    assert_int_equal(cgw_sse_parser_retry_ms(p), -1);
    cgw_sse_parser_free(p);
    cgw_buf_free(&r.out);
}

static void test_line_too_long(void **state)
{
    (void)state;
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 16, 0);
    cgw_error_t e;
    cgw_error_clear(&e);
    /* 16 bytes fit, fed in pieces that never contain the end of line */
    assert_int_equal(cgw_sse_parser_feed(p, "data: 0123", 10, &e), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, "456789", 6, &e), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, "\n\n", 2, &e), CGW_OK);
    assert_int_equal(r.n, 1);
    /* the 17th byte fails at once, before any line end arrives */
    assert_int_equal(cgw_sse_parser_feed(p, "data: 0123456789", 16, &e), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, "x", 1, &e), CGW_ELINETOOLONG);
    assert_int_equal(e.code, CGW_ELINETOOLONG);
    assert_non_null(strstr(e.message, "16-byte"));
    /* sticky */
    assert_int_equal(cgw_sse_parser_feed(p, "\n\n", 2, NULL), CGW_ELINETOOLONG);
    assert_int_equal(cgw_sse_parser_finish(p, NULL), CGW_ELINETOOLONG);
    /* a whole too-long line inside one chunk too */
    cgw_sse_parser_reset(p);
    assert_int_equal(cgw_sse_parser_feed(p, "data: 0123456789ABC\n", 20, NULL), CGW_ELINETOOLONG);
    cgw_sse_parser_free(p);
    cgw_buf_free(&r.out);
}

static void test_event_too_long(void **state)
{
    (void)state;
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 10);
    cgw_error_t e;
    cgw_error_clear(&e);
    assert_int_equal(cgw_sse_parser_feed(p, "data: 1234\ndata: 1234\n", 22, &e), CGW_OK);
    assert_int_equal(cgw_sse_parser_feed(p, "data: x\n", 8, &e), CGW_ELINETOOLONG);
    assert_non_null(strstr(e.message, "event data"));
    assert_int_equal(r.n, 0);
    cgw_sse_parser_free(p);
    cgw_buf_free(&r.out);
}

static void test_callback_abort_and_state(void **state)
{
    (void)state;
    rec_t r = {CGW_BUF_INIT, 1, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 0);
    const char *in = "data: a\n\ndata: b\n\n";
    assert_int_equal(cgw_sse_parser_feed(p, in, strlen(in), NULL), CGW_ECANCELED);
    assert_int_equal(r.n, 1); /* nothing after the refusing callback */
    assert_int_equal(cgw_sse_parser_feed(p, in, strlen(in), NULL), CGW_ECANCELED);
    cgw_sse_parser_reset(p);
    r.stop_after = 0;
    assert_int_equal(cgw_sse_parser_feed(p, in, strlen(in), NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_event_count(p), 2);
    assert_int_equal(cgw_sse_parser_finish(p, NULL), CGW_OK);
    assert_int_equal(cgw_sse_parser_finish(p, NULL), CGW_OK);
    cgw_error_t e;
    assert_int_equal(cgw_sse_parser_feed(p, "x", 1, &e), CGW_ESTATE);
    cgw_sse_parser_free(p);
    cgw_sse_parser_free(NULL);
    cgw_buf_free(&r.out);
}

static void test_bad_options(void **state)
{
    (void)state;
    cgw_sse_parser_options_t o;
    cgw_sse_parser_options_init(&o);
    cgw_sse_parser_t *p = NULL;
    assert_int_equal(cgw_sse_parser_new(&o, &p), CGW_EINVAL); /* no callback */
    o.on_event = on_event;
    o.max_line = 0;
    assert_int_equal(cgw_sse_parser_new(&o, &p), CGW_EINVAL);
    assert_int_equal(cgw_sse_parser_new(NULL, &p), CGW_EINVAL);
    assert_null(p);
}

static void test_last_id_getter(void **state)
{
    (void)state;
    rec_t r = {CGW_BUF_INIT, 0, 0};
    cgw_sse_parser_t *p = new_parser(&r, 0, 0);
    assert_int_equal(cgw_sse_parser_last_id(p).len, 0);
    assert_int_equal(cgw_sse_parser_feed(p, "id: 42\n", 7, NULL), CGW_OK);
    cgw_str_t id = cgw_sse_parser_last_id(p);
    assert_int_equal(id.len, 2);
    assert_memory_equal(id.ptr, "42", 2);
    cgw_sse_parser_free(p);
    cgw_buf_free(&r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_cr_split_across_chunks),
        cmocka_unit_test(test_field_syntax),
        cmocka_unit_test(test_dispatch_rules),
        cmocka_unit_test(test_id_with_nul),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_line_too_long),
        cmocka_unit_test(test_event_too_long),
        cmocka_unit_test(test_callback_abort_and_state),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_last_id_getter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
