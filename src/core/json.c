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

int cgw_json_dump_buf(const json_t *v, cgw_buf_t *b)
{
    size_t before = b->len;
    if (json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        b->len = before;
        if (b->data != NULL) {
            b->data[before] = '\0';
        }
        return b->limit != 0 ? CGW_E2BIG : CGW_ENOMEM;
    }
    return CGW_OK;
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
