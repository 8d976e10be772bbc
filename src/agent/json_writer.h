/* A compact JSON writer for jansson values, byte-for-byte the output of
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) (same key order, same escapes, same reals),
 * about 8x faster on the small objects the EventLog serializes once per event: jansson's own
 * encoder calls back per token and decodes every string as UTF-8, which made it the whole
 * cost of an append (see docs/benchmarks.md, EventLog). */
#ifndef CGW_AGENT_JSON_WRITER_H
#define CGW_AGENT_JSON_WRITER_H

#include <jansson.h>

#include "cgw/error.h"
#include "core/buf.h"

/* Values nested deeper than this are refused; it also turns a reference cycle (which jansson
 * lets a caller build) into an error instead of a stack overflow. */
#define CGW_JSON_WRITER_MAX_DEPTH 512

/* Appends the compact serialization of `v` to `b`. Strings are trusted to be valid UTF-8, as
 * jansson guarantees for every string it checked on creation. Returns CGW_OK, CGW_EINVAL (NULL or
 * too deep), CGW_ENOMEM or CGW_E2BIG (the buffer's limit); on
 * failure b->len is back where it was. */
int cgw__json_write(const json_t *v, cgw_buf_t *b);

/* Appends `len` bytes as a JSON string literal (quotes included), escaped as jansson does. */
int cgw__json_write_string(const char *s, size_t len, cgw_buf_t *b);

#endif
