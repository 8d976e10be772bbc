/* Fuzz target: the tool_result block of any JSON value. The input is parsed as JSON (anything
 * else is skipped); the block built from it as a result, and from an error object built from
 * it, must hold a content string that parses back to an equal value (the Python-style text
 * with lower-cased \u escapes loses nothing), never contain a non-ASCII byte, and carry
 * is_error exactly for errors and soft errors. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgw.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool soft(const json_t *v)
{
    const json_t *st = json_object_get(v, "status");
    return json_is_object(v) &&
           (json_is_false(json_object_get(v, "success")) ||
            (json_is_string(st) && strcmp(json_string_value(st), "error") == 0));
}

static void check_text(const json_t *block, const json_t *expect)
{
    const char *text = json_string_value(json_object_get(block, "content"));
    CHECK(text != NULL);
    for (const char *p = text; *p; p++) {
        CHECK((unsigned char)*p < 0x80);
    }
    json_t *back = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    CHECK(back != NULL);
    CHECK(json_equal(back, (json_t *)expect));
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v == NULL) {
        return 0;
    }
    bool is_error = false;
    json_t *b = cgw_tool_result_block("toolu_fuzz", v, NULL, &is_error);
    if (b != NULL) {
        CHECK(is_error == soft(v));
        CHECK(json_is_true(json_object_get(b, "is_error")) == is_error);
        check_text(b, v);
        json_decref(b);
    }
    /* As an error: {"error": {code, message[, sub_code]}} with the defaults filled in. */
    json_t *e = json_is_object(v) ? json_incref(v) : json_pack("{s:O}", "message", v);
    b = e ? cgw_tool_result_block("toolu_fuzz", NULL, e, &is_error) : NULL;
    if (b != NULL) {
        CHECK(is_error);
        const char *text = json_string_value(json_object_get(b, "content"));
        json_t *back = json_loads(text, 0, NULL);
        CHECK(back != NULL);
        const json_t *err = json_object_get(back, "error");
        CHECK(json_is_string(json_object_get(err, "code")));
        CHECK(json_is_string(json_object_get(err, "message")));
        json_decref(back);
        json_decref(b);
    }
    json_decref(e);
    json_decref(v);
    return 0;
}
