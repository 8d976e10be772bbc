/* Small helpers over jansson for the patterns that repeat across modules: strict parsing into a
 * cgw_error_t, compact serialization, and typed field reads with defaults. Not a wrapper of
 * jansson: use jansson directly for everything else. */
#ifndef CGW_CORE_JSON_H
#define CGW_CORE_JSON_H

#include <jansson.h>

#include "cgw/error.h"
#include "core/buf.h"

/* Parses exactly one JSON value from `len` bytes (rejects NUL bytes, invalid UTF-8 and
 * trailing garbage). On success *out is a new reference. On failure returns CGW_EJSON with
 * err->line/column/message filled (err may be NULL). */
int cgw_json_parse(const char *s, size_t len, json_t **out, cgw_error_t *err);

/* Values nested deeper than this are not serialized. It is jansson's own parser limit, so
 * whatever cgw_json_parse accepted can be written back; it also turns a reference cycle (which
 * jansson lets a caller build) into an error instead of a stack overflow. */
#define CGW_JSON_MAX_DEPTH JSON_PARSER_MAX_DEPTH

/* Compact serialization (no spaces, key order kept, any value at top level), byte-for-byte
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY). Strings are trusted to be valid UTF-8, as
 * jansson guarantees for every string it checked on creation. Returns a string the caller frees
 * with cgw_free (its length in *len when len is not NULL), or NULL when v is NULL or too deep or
 * on allocation failure. */
char *cgw_json_dump(const json_t *v, size_t *len);

/* Appends the compact serialization of `v` to `b`. Returns CGW_OK, CGW_EINVAL (v NULL or
 * nested deeper than CGW_JSON_MAX_DEPTH), CGW_ENOMEM or CGW_E2BIG (the buffer's limit); on
 * failure b->len is back where it was. */
int cgw_json_dump_buf(const json_t *v, cgw_buf_t *b);

/* Typed field reads. They return the default when `obj` is not an object, the key is absent
 * or the value has another type. Returned strings are borrowed from `obj`. */
const char *cgw_json_str(const json_t *obj, const char *key, const char *def);
json_int_t cgw_json_int(const json_t *obj, const char *key, json_int_t def);
double cgw_json_num(const json_t *obj, const char *key, double def);
int cgw_json_bool(const json_t *obj, const char *key, int def);

#endif
