/* Compact JSON writer; see json_writer.h for why it exists next to cgw_json_dump.
 *
 * Escaping follows jansson's dump.c without flags: '"' and '\\' and every byte below 0x20 are
 * escaped (\b \f \n \r \t by name, the rest as \u00XX with upper-case hex), everything else,
 * including '/' and non-ASCII UTF-8, is copied. Reals are rare in events, so they are handed
 * to jansson itself, which keeps its exact formatting (%.17g, trimmed exponent, ".0"). */
#include <stdbool.h>
#include <string.h>

#include "agent/json_writer.h"
#include "core/json.h"

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

int cgw__json_write_string(const char *s, size_t len, cgw_buf_t *b)
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
            rc = cgw__json_write_string(json_object_iter_key(it), json_object_iter_key_len(it), b);
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
    if (depth > CGW_JSON_WRITER_MAX_DEPTH) {
        return CGW_EINVAL;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return write_object(v, b, depth);
    case JSON_ARRAY:
        return write_array(v, b, depth);
    case JSON_STRING:
        return cgw__json_write_string(json_string_value(v), json_string_length(v), b);
    case JSON_INTEGER:
        return cgw_buf_appendf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return cgw_json_dump_buf(v, b);
    case JSON_TRUE:
        return cgw_buf_append(b, "true", 4);
    case JSON_FALSE:
        return cgw_buf_append(b, "false", 5);
    case JSON_NULL:
        return cgw_buf_append(b, "null", 4);
    }
    return CGW_EINVAL;
}

int cgw__json_write(const json_t *v, cgw_buf_t *b)
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
