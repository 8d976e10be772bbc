/* Compact serialization, byte-for-byte the output of json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) (same key order, same escapes, same reals), written by hand because jansson's
 * encoder calls back per token and decodes every string as UTF-8, which made it the whole cost
 * of an EventLog append (about 8x slower; see docs/benchmarks.md, EventLog).
 *
 * Escaping follows jansson's dump.c without flags: '"' and '\\' and every byte below 0x20 are
 * escaped (\b \f \n \r \t by name, the rest as \u00XX with upper-case hex), everything else,
 * including '/' and non-ASCII UTF-8, is copied. */
#include <stdbool.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json.h"

int cgw_json_parse(const char *s, size_t len, json_t **out, cgw_error_t *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        if (err != NULL) {
            err->line = jerr.line;
            err->column = jerr.column;
        }
        return cgw_error_set(err, CGW_EJSON, "malformed JSON at line %d column %d: %s",
                             jerr.line, jerr.column, jerr.text);
    }
    *out = v;
    return CGW_OK;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return cgw_buf_append((cgw_buf_t *)data, buffer, size) == CGW_OK ? 0 : -1;
}

/* Reals are rare, so they go through jansson itself, which keeps its exact formatting (%.17g,
 * trimmed exponent, ".0"). The caller restores b->len on failure. */
static int dump_jansson(const json_t *v, cgw_buf_t *b)
{
    if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        return b->limit != 0 ? CGW_E2BIG : CGW_ENOMEM;
    }
    return CGW_OK;
}

static inline bool needs_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* The escapes that have a one-letter name; the other control bytes become \u00XX. */
static const char named_escape[] = {
    ['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
    ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't',
};

static size_t escape_into(const char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    char *o = out;
    *o++ = '"';
    size_t i = 0;
    while (i < len) {
        /* Copy the run of plain bytes in one go: most text has no escape at all. */
        size_t run = i;
        while (run < len && !needs_escape((unsigned char)s[run])) {
            run++;
        }
        memcpy(o, s + i, run - i);
        o += run - i;
        if (run == len) {
            break;
        }
        unsigned char c = (unsigned char)s[run];
        *o++ = '\\';
        if (c < sizeof(named_escape) && named_escape[c] != 0) {
            *o++ = named_escape[c];
        } else {
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i = run + 1;
    }
    *o++ = '"';
    return (size_t)(o - out);
}

static int write_string(const char *s, size_t len, cgw_buf_t *b)
{
    /* Worst case: every byte becomes \u00XX, plus the quotes. */
    if (len > ((size_t)-1 - 2) / 6) {
        return CGW_E2BIG;
    }
    int rc = cgw_buf_reserve(b, len * 6 + 2);
    if (rc != CGW_OK) {
        return rc;
    }
    b->len += escape_into(s, len, b->data + b->len);
    b->data[b->len] = '\0';
    return CGW_OK;
}

static int write_value(const json_t *v, cgw_buf_t *b, int depth);

static int write_object(const json_t *v, cgw_buf_t *b, int depth)
{
    int rc = cgw_buf_append_char(b, '{');
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it != NULL && rc == CGW_OK;
         it = json_object_iter_next((json_t *)v, it)) {
        if (!first) {
            rc = cgw_buf_append_char(b, ',');
        }
        first = false;
        if (rc == CGW_OK) {
            rc = write_string(json_object_iter_key(it), json_object_iter_key_len(it), b);
        }
        if (rc == CGW_OK) {
            rc = cgw_buf_append_char(b, ':');
        }
        if (rc == CGW_OK) {
            rc = write_value(json_object_iter_value(it), b, depth + 1);
        }
    }
    return rc == CGW_OK ? cgw_buf_append_char(b, '}') : rc;
}

static int write_array(const json_t *v, cgw_buf_t *b, int depth)
{
    int rc = cgw_buf_append_char(b, '[');
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n && rc == CGW_OK; i++) {
        if (i > 0) {
            rc = cgw_buf_append_char(b, ',');
        }
        if (rc == CGW_OK) {
            rc = write_value(json_array_get(v, i), b, depth + 1);
        }
    }
    return rc == CGW_OK ? cgw_buf_append_char(b, ']') : rc;
}

static int write_value(const json_t *v, cgw_buf_t *b, int depth)
{
    if (depth > CGW_JSON_MAX_DEPTH) {
        return CGW_EINVAL;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return write_object(v, b, depth);
    case JSON_ARRAY:
        return write_array(v, b, depth);
    case JSON_STRING:
        return write_string(json_string_value(v), json_string_length(v), b);
    case JSON_INTEGER:
        return cgw_buf_appendf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return dump_jansson(v, b);
    case JSON_TRUE:
        return cgw_buf_append(b, "true", 4);
    case JSON_FALSE:
        return cgw_buf_append(b, "false", 5);
    case JSON_NULL:
        return cgw_buf_append(b, "null", 4);
    }
    return CGW_EINVAL;
}

int cgw_json_dump_buf(const json_t *v, cgw_buf_t *b)
{
    if (v == NULL) {
        return CGW_EINVAL;
    }
    size_t before = b->len;
    int rc = write_value(v, b, 0);
    if (rc != CGW_OK) {
        b->len = before;
        if (b->data != NULL) {
            b->data[before] = '\0';
        }
    }
    return rc;
}

char *cgw_json_dump(const json_t *v, size_t *len)
{
    cgw_buf_t b = CGW_BUF_INIT;
    if (cgw_json_dump_buf(v, &b) != CGW_OK) {
        cgw_buf_free(&b);
        return NULL;
    }
    return cgw_buf_steal(&b, len);
}

const char *cgw_json_str(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

json_int_t cgw_json_int(const json_t *obj, const char *key, json_int_t def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

double cgw_json_num(const json_t *obj, const char *key, double def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : def;
}

int cgw_json_bool(const json_t *obj, const char *key, int def)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}
