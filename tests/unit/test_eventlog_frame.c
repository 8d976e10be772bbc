/* EventLog serialization: the compact JSON writer (cgw_json_dump_buf) against jansson's own
 * output, and the resume-position parser. */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json.h"
#include "testutil.h"

/* cgw_json_dump_buf must produce exactly json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY). */
static void assert_same_as_jansson(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(want);
    cgw_buf_t b = CGW_BUF_INIT;
    assert_int_equal(cgw_json_dump_buf(v, &b), CGW_OK);
    if (strlen(want) != b.len || memcmp(want, b.data, b.len) != 0) {
        fail_msg("writer differs from jansson:\n want %s\n got  %s", want, b.data);
    }
    cgw_buf_free(&b);
    free(want);
}

static void test_writer_scalars_and_escapes(void **state)
{
    (void)state;
    const char *docs[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1.0",
        "1.5",
        "-0.0",
        "0.1",
        "3.141592653589793",
        "1e20",
        "1.5e-7",
        "123456789.125",
        "1.7976931348623157e308",
        "5e-324",
        "\"\"",
        "\"plain\"",
        "\"a/b\\\\c\\\"d\"",
        "\"\\u00e9\\u4e2d\\ud83d\\ude00\"",
        "\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"",
        "[]",
        "{}",
        "[[],{},[{}]]",
        "{\"k\\n\\\"\":{\"x\":[1,2.5,\"s\",null,true]}}",
        "{\"z\":1,\"a\":2,\"m\":3}", /* key order is insertion order, as jansson keeps it */
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        assert_same_as_jansson(v);
        json_decref(v);
    }
    /* Every control byte, and NULs inside strings and keys. */
    char all[40];
    for (int c = 0; c < 32; c++) {
        all[c] = (char)c;
    }
    memcpy(all + 32, "\"\\/\x7f", 4);
    json_t *o = json_object();
    json_object_set_new(o, "all", json_stringn(all, 36));
    json_object_setn_new(o, "k\0ey", 4, json_integer(7));
    assert_same_as_jansson(o);
    json_decref(o);
}

static void test_writer_limits(void **state)
{
    (void)state;
    cgw_buf_t b = CGW_BUF_INIT;
    assert_int_equal(cgw_json_dump_buf(NULL, &b), CGW_EINVAL);
    /* Depth CGW_JSON_MAX_DEPTH is fine, one more is not; a failed write leaves the buffer as it
     * was. */
    json_t *root = json_array();
    json_t *cur = root;
    for (int i = 0; i < CGW_JSON_MAX_DEPTH; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(cgw_buf_append_str(&b, "keep"), CGW_OK);
    json_t *wrap = json_array();
    json_array_append(wrap, root);
    assert_int_equal(cgw_json_dump_buf(wrap, &b), CGW_EINVAL);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_int_equal(cgw_json_dump_buf(root, &b), CGW_OK);
    assert_int_equal(b.len, 4 + 2 * (CGW_JSON_MAX_DEPTH + 1));
    json_decref(wrap);
    json_decref(root);

    /* The buffer's limit turns into E2BIG, leaving the buffer untouched. */
    cgw_buf_reset(&b);
    b.limit = 10;
    json_t *s = json_string("longer than ten bytes");
    assert_int_equal(cgw_json_dump_buf(s, &b), CGW_E2BIG);
    assert_int_equal(b.len, 0);
    json_decref(s);
    cgw_buf_free(&b);
}

/* Real API payloads: every JSON fixture under ../shared writes byte-for-byte as jansson does. */
static int fixtures_seen;

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || n < 5 || strcmp(path + n - 5, ".json") != 0) {
        return 0;
    }
    json_t *v = json_load_file(path, JSON_DECODE_ANY, NULL);
    if (v != NULL) {
        assert_same_as_jansson(v);
        json_decref(v);
        fixtures_seen++;
    }
    return 0;
}

static void test_writer_matches_jansson_on_fixtures(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/fixtures", cgw_test_shared_dir());
    fixtures_seen = 0;
    assert_int_equal(nftw(dir, visit, 16, FTW_PHYS), 0);
    assert_true(fixtures_seen >= 20);
}

static int parse(const char *s, uint64_t *out)
{
    return cgw_eventlog_parse_seq((cgw_str_t){s, s != NULL ? strlen(s) : 0}, out);
}

static void test_parse_seq(void **state)
{
    (void)state;
    uint64_t v = 77;
    assert_int_equal(parse("0", &v), CGW_OK);
    assert_int_equal(v, 0);
    assert_int_equal(parse("1", &v), CGW_OK);
    assert_int_equal(v, 1);
    assert_int_equal(parse("1234567890", &v), CGW_OK);
    assert_int_equal(v, 1234567890);
    assert_int_equal(parse("9223372036854775807", &v), CGW_OK);
    assert_true(v == 9223372036854775807ULL);

    const char *bad[] = {
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "01",
        "00",
        "1a",
        "a1",
        "0x10",
        "1.0",
        "1e3",
        "9223372036854775808",  /* INT64_MAX + 1 */
        "18446744073709551616", /* UINT64_MAX + 1 */
        "99999999999999999999999999",
        "\xd9\xa1", /* an Arabic-Indic digit */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 77;
        assert_int_equal(parse(bad[i], &v), CGW_EINVAL);
        assert_int_equal(v, 77); /* untouched on failure */
    }
    /* Length-delimited: bytes after `len` are not looked at, a NUL inside is garbage. */
    assert_int_equal(cgw_eventlog_parse_seq((cgw_str_t){"12xyz", 2}, &v), CGW_OK);
    assert_int_equal(v, 12);
    assert_int_equal(cgw_eventlog_parse_seq((cgw_str_t){"1\0", 2}, &v), CGW_EINVAL);
    assert_int_equal(cgw_eventlog_parse_seq((cgw_str_t){NULL, 0}, &v), CGW_EINVAL);
    assert_int_equal(parse("5", NULL), CGW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_scalars_and_escapes),
        cmocka_unit_test(test_writer_limits),
        cmocka_unit_test(test_writer_matches_jansson_on_fixtures),
        cmocka_unit_test(test_parse_seq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
