/*
 * Newline-delimited framing (the MCP stdio transport's wire format), with no I/O and no loop.
 *
 * Bytes go in through cgw__ndjson_feed in chunks of any size; every complete line comes out
 * through the line callback, without its "\n" (and without a trailing "\r", as the TS SDK
 * reader does). Blank lines are skipped. Lines that fit inside one fed chunk are handed out
 * in place (no copy); a line split across chunks is assembled in an internal buffer.
 *
 * A line longer than `max_line` bytes is never buffered whole: its bytes are discarded up to
 * the next "\n" and reported once through the error callback (CGW_ELINETOOLONG) with the
 * first and last bytes seen, so the caller can still find out which request it answered.
 * The stream then carries on with the next line.
 */
#ifndef CGW_PROTO_NDJSON_H
#define CGW_PROTO_NDJSON_H

#include <stddef.h>

#include "core/buf.h"

#define CGW_NDJSON_DEFAULT_MAX_LINE ((size_t)16 * 1024 * 1024)
/* How many bytes of the head and of the tail of an oversize line are kept for the report. */
#define CGW_NDJSON_SNIP 256

/* One complete line, valid only during the call. `line` is NUL-terminated at line[len] only
 * when it came from the internal buffer, so use `len`. */
typedef void (*cgw__ndjson_line_cb)(void *user, const char *line, size_t len);

/* An oversize line was discarded. `total` is its full length; head/tail are its first and last
 * bytes (up to CGW_NDJSON_SNIP each; tail_len is 0 when the whole line fit in head). */
typedef struct cgw__ndjson_oversize {
    size_t total;
    const char *head;
    size_t head_len;
    const char *tail;
    size_t tail_len;
} cgw__ndjson_oversize_t;
typedef void (*cgw__ndjson_error_cb)(void *user, int code, const cgw__ndjson_oversize_t *info);

typedef struct cgw__ndjson {
    size_t max_line;   /* 0 = CGW_NDJSON_DEFAULT_MAX_LINE */
    cgw_buf_t partial; /* the start of a line whose end has not arrived yet */
    int discarding;    /* inside an oversize line, skipping to its "\n" */
    size_t discarded;  /* bytes of the oversize line so far */
    char head[CGW_NDJSON_SNIP];
    size_t head_len;
    char tail[CGW_NDJSON_SNIP]; /* ring of the last bytes of the oversize line */
    size_t tail_pos;
    cgw__ndjson_line_cb on_line;
    cgw__ndjson_error_cb on_error;
    void *user;
} cgw__ndjson_t;

/* Prepares `nd` (no allocation). Callbacks may be NULL. */
void cgw__ndjson_init(cgw__ndjson_t *nd, size_t max_line, cgw__ndjson_line_cb on_line,
                      cgw__ndjson_error_cb on_error, void *user);

/* Feeds `len` bytes. Callbacks run synchronously from inside this call. Returns CGW_OK, or
 * CGW_ENOMEM when a split line could not be buffered (that line is then treated as oversize). */
int cgw__ndjson_feed(cgw__ndjson_t *nd, const char *data, size_t len);

/* Bytes of an incomplete last line currently held (0 when at a line boundary). */
size_t cgw__ndjson_pending(const cgw__ndjson_t *nd);

/* Releases the internal buffer; `nd` may be initialised again. */
void cgw__ndjson_free(cgw__ndjson_t *nd);

#endif
