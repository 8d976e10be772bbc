/*
 * cgw_sse_parser_t: an incremental Server-Sent Events parser (WHATWG HTML §9.2 "event stream
 * interpretation"), with the two deviations the Anthropic SDKs make. Pure: no I/O, no loop,
 * no clock, so it can be fuzzed alone.
 *
 * Feed it byte chunks split anywhere (even inside a CRLF pair or a UTF-8 sequence); it calls
 * `on_event` once per complete event, synchronously, from inside cgw_sse_parser_feed() or
 * cgw_sse_parser_finish().
 *
 * What it accepts:
 *   - line ends LF, CRLF and lone CR, mixed freely; a CR that ends one chunk followed by an LF
 *     that starts the next counts as one line end;
 *   - a UTF-8 BOM at the very start of the stream (skipped);
 *   - "field:value" and "field: value" (exactly one leading space is dropped); a line with no
 *     colon is a field with an empty value; trailing spaces are kept (the API pads `data:` JSON
 *     with spaces, which JSON allows);
 *   - several `data:` lines in one event, joined with "\n";
 *   - comment lines starting with ':' (ignored), unknown fields (ignored);
 *   - `id:` sets the last event id (kept across events, as the spec says; an id containing a
 *     NUL byte is ignored); `retry:` made of ASCII digits only sets cgw_sse_parser_retry_ms(),
 *     anything else is ignored.
 *
 * Deviations from the browser algorithm, both taken from the official SDK decoders:
 *   - an event that has an `event:` line but no `data:` line is dispatched, with empty data
 *     (the PHP fixture ga/thinking.txt ends with a bare `event: message_stop`); a block with
 *     only `id:`/`retry:`/comments is not dispatched;
 *   - cgw_sse_parser_finish() dispatches a last event that was not closed by a blank line
 *     (several recorded streams end right after their last `data:` line).
 *
 * Bounds: a single line longer than `max_line` bytes, or an event whose joined data exceeds
 * `max_event` bytes, fails with CGW_ELINETOOLONG as soon as the limit is crossed, before the
 * rest arrives, so a hostile peer cannot make the buffer grow without bound.
 *
 * Errors are sticky: after a failure (or a callback that returned non-zero) every later
 * feed/finish returns the same code until cgw_sse_parser_reset().
 *
 * Not thread-safe; use one parser per stream, from one thread.
 */
#ifndef CGW_PROTO_SSE_PARSER_H
#define CGW_PROTO_SSE_PARSER_H

#include "cgw/common.h"
#include "cgw/error.h"

typedef struct cgw_sse_parser cgw_sse_parser_t;

/** One dispatched event. Every slice is borrowed from the parser and valid only during the
 *  callback; none is NUL-terminated by contract (copy what you keep). */
typedef struct cgw_sse_event {
    cgw_str_t event; /**< the `event:` value; empty (len 0) when the event had none (a browser
                          would call it "message") */
    cgw_str_t data;  /**< the `data:` lines joined with "\n", without the final "\n"; may be
                          empty; may contain any byte including NUL */
    cgw_str_t id;    /**< the last event id seen so far in the stream (empty if none) */
} cgw_sse_event_t;

/** Called once per event. `err` is the cgw_error_t the caller passed to feed/finish (may be
 *  NULL). Return CGW_OK to continue; any other value stops parsing at once, is returned by the
 *  feed/finish call that is running, and makes the parser fail with that code (sticky). */
typedef int (*cgw_sse_event_cb)(void *user, const cgw_sse_event_t *ev, cgw_error_t *err);

typedef struct cgw_sse_parser_options {
    size_t max_line;           /**< longest accepted line in bytes, terminator excluded
                                    (default 8 MiB) */
    size_t max_event;          /**< most data bytes in one event (default 16 MiB) */
    cgw_sse_event_cb on_event; /**< required */
    void *user;                /**< passed to on_event */
} cgw_sse_parser_options_t;

/** Fills the defaults (limits above, no callback). */
void cgw_sse_parser_options_init(cgw_sse_parser_options_t *opts);

/** Creates a parser. `opts` is copied. Returns CGW_OK, CGW_EINVAL (NULL opts/out, no
 *  on_event, a zero limit) or CGW_ENOMEM. */
int cgw_sse_parser_new(const cgw_sse_parser_options_t *opts, cgw_sse_parser_t **out);

/** Frees the parser and everything it buffers. NULL is fine. */
void cgw_sse_parser_free(cgw_sse_parser_t *p);

/** Feeds `len` bytes (len 0 is fine; data may be NULL then). Calls on_event for every event
 *  these bytes complete. Returns CGW_OK; CGW_ELINETOOLONG when a limit is crossed (err names
 *  which); CGW_ENOMEM; CGW_ESTATE after finish(); the callback's own non-zero code; or the
 *  sticky code of an earlier failure. `err` (may be NULL) is filled on failure. */
int cgw_sse_parser_feed(cgw_sse_parser_t *p, const char *data, size_t len, cgw_error_t *err);

/** Declares the end of the stream: a pending unterminated line is processed and a pending
 *  event dispatched (see the deviations above). Returns as feed() does. After finish only
 *  reset() makes the parser usable again; a second finish() is a no-op returning CGW_OK. */
int cgw_sse_parser_finish(cgw_sse_parser_t *p, cgw_error_t *err);

/** Forgets everything (buffers, last id, retry, failure, finished state) and keeps the
 *  options, ready for a new stream. */
void cgw_sse_parser_reset(cgw_sse_parser_t *p);

/** The reconnection time from the last valid `retry:` field in ms, or -1 if none was seen.
 *  Values beyond INT64_MAX saturate. */
int64_t cgw_sse_parser_retry_ms(const cgw_sse_parser_t *p);

/** The last event id (borrowed until the next feed/reset/free; empty if none). */
cgw_str_t cgw_sse_parser_last_id(const cgw_sse_parser_t *p);

/** Number of events dispatched since creation or the last reset. */
uint64_t cgw_sse_parser_event_count(const cgw_sse_parser_t *p);

#endif
