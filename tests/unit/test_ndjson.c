/* NDJSON framing: split lines, CRLF, blank lines, the line cap and recovery after it. */
#include <string.h>

#include "proto/ndjson.h"
#include "testutil.h"

typedef struct rec {
    char lines[16][256];
    int n;
    int errors;
    size_t last_total;
    char head[CGW_NDJSON_SNIP + 1];
    char tail[CGW_NDJSON_SNIP + 1];
} rec_t;

static void on_line(void *user, const char *line, size_t len)
{
    rec_t *r = user;
    assert_true(len < sizeof(r->lines[0]));
    memcpy(r->lines[r->n], line, len);
    r->lines[r->n][len] = '\0';
    r->n++;
}

static void on_error(void *user, int code, const cgw__ndjson_oversize_t *info)
{
    rec_t *r = user;
    assert_int_equal(code, CGW_ELINETOOLONG);
    r->errors++;
    r->last_total = info->total;
    memcpy(r->head, info->head, info->head_len);
    r->head[info->head_len] = '\0';
    memcpy(r->tail, info->tail, info->tail_len);
    r->tail[info->tail_len] = '\0';
}

static void test_lines_and_splits(void **state)
{
    (void)state;
    rec_t r = {0};
    cgw__ndjson_t nd;
    cgw__ndjson_init(&nd, 0, on_line, on_error, &r);
    const char *in = "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\"";
    assert_int_equal(cgw__ndjson_feed(&nd, in, strlen(in)), CGW_OK);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.lines[0], "{\"a\":1}");
    assert_string_equal(r.lines[1], "{\"b\":2}");
    assert_int_equal(cgw__ndjson_pending(&nd), 4);
    /* Byte by byte across the boundary. */
    const char *rest = ":3}\n";
    for (size_t i = 0; i < strlen(rest); i++) {
        cgw__ndjson_feed(&nd, rest + i, 1);
    }
    assert_int_equal(r.n, 3);
    assert_string_equal(r.lines[2], "{\"c\":3}");
    assert_int_equal(cgw__ndjson_pending(&nd), 0);
    cgw__ndjson_free(&nd);
}

static void test_cap_discards_and_recovers(void **state)
{
    (void)state;
    rec_t r = {0};
    cgw__ndjson_t nd;
    cgw__ndjson_init(&nd, 16, on_line, on_error, &r);
    /* Exactly at the cap is fine. */
    cgw__ndjson_feed(&nd, "0123456789abcdef\n", 17);
    assert_int_equal(r.n, 1);
    /* Over the cap, delivered in pieces: discarded, reported once, and the next line works. */
    cgw__ndjson_feed(&nd, "{\"id\":7,", 8);
    char big[1000];
    memset(big, 'x', sizeof(big));
    cgw__ndjson_feed(&nd, big, sizeof(big));
    assert_int_equal(r.errors, 0);
    cgw__ndjson_feed(&nd, "END\nok\n", 7);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.last_total, 8 + 1000 + 3);
    assert_int_equal(strncmp(r.head, "{\"id\":7,xx", 10), 0);
    assert_int_equal(strlen(r.head), CGW_NDJSON_SNIP);
    assert_int_equal(strlen(r.tail), CGW_NDJSON_SNIP);
    assert_string_equal(r.tail + CGW_NDJSON_SNIP - 4, "xEND");
    assert_int_equal(r.n, 2);
    assert_string_equal(r.lines[1], "ok");
    /* Over the cap inside one chunk. */
    cgw__ndjson_feed(&nd, "aaaaaaaaaaaaaaaaaaaaaaaaa\nlast\n", 31);
    assert_int_equal(r.errors, 2);
    assert_int_equal(r.last_total, 25);
    assert_string_equal(r.head, "aaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(r.tail, "");
    assert_string_equal(r.lines[2], "last");
    cgw__ndjson_free(&nd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_splits),
        cmocka_unit_test(test_cap_discards_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
