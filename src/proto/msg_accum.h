/*
 * cgw_msg_accum_t: turns the events of one Anthropic Messages API stream into the final
 * Message, exactly as the non-streaming endpoint would have returned it, and reports every
 * increment to a consumer as it arrives. Pure: no I/O, no loop, no clock.
 *
 * Feed it (event type, data bytes) pairs, typically straight from cgw_sse_parser_t
 * (cgw_msg_accum_sse_cb is a ready-made SSE callback). The rules (anthropic-protocol.md §4):
 *
 *   message_start        its `message` becomes the accumulated message (all fields kept);
 *   content_block_start  `index` must equal the number of blocks so far; the block is kept
 *                        verbatim, whatever its type (unknown/server blocks included);
 *   content_block_delta  text_delta -> append .text; thinking_delta -> append .thinking;
 *                        signature_delta -> set .signature; citations_delta -> append
 *                        .citation to .citations; input_json_delta -> append partial_json to
 *                        the block's input buffer; compaction_delta -> set its fields; other
 *                        delta types are reported and otherwise ignored;
 *   content_block_stop   an input buffer that received input_json_delta is parsed into
 *                        .input (empty -> {}); if it does not parse: CGW_EJSON, never a
 *                        partial input;
 *   message_delta        every field of `delta` is set on the message (stop_reason,
 *                        stop_sequence, stop_details, container, ...); every field of `usage`
 *                        REPLACES the stored one (the values are running totals, not
 *                        increments);
 *   message_stop         the message is complete; blocks never stopped are closed now (a
 *                        tool input that does not parse then fails with CGW_ETRUNCATED:
 *                        the stream was cut, e.g. by max_tokens);
 *   ping, unknown types  ignored (unknown ones are reported as CGW_MSG_EV_UNKNOWN);
 *   error                fails with CGW_EAPI, err->type = error.type, err->message =
 *                        error.message, err->request_id when the body carries one (data
 *                        that is not JSON: CGW_EAPI too, err->message quotes it).
 *
 * Byte-exactness: text, thinking, signature and every other string are the JSON-decoded
 * bytes as received, concatenated with nothing added, trimmed or normalised (embedded NUL
 * included); redacted_thinking and all block fields other than the ones deltas touch are
 * kept as received. So a thinking block can be sent back as the API requires (§7).
 *
 * Protocol violations fail with CGW_EPROTO and a message naming the event and index: an
 * event before message_start, a second message_start, anything but ping after message_stop,
 * a start whose index is not the next one, a delta/stop for an index that is not open, a
 * delta whose type does not fit the block (text_delta on a tool_use, ...), a missing or
 * mistyped required field. Data that is not one JSON object fails with CGW_EJSON (line and
 * column in err). Failures are sticky until cgw_msg_accum_reset().
 *
 * Performance: deltas are appended to per-block byte buffers; the JSON strings are built
 * once, when the block stops or when the message is read, so a long text costs O(n). The
 * text/thinking/input_json deltas in the API's exact shape are decoded without building JSON
 * values (proto/delta_scan.h); any other shape takes the general jansson path.
 *
 * Not thread-safe; one accumulator per stream, used from one thread. Callbacks run
 * synchronously inside cgw_msg_accum_feed()/finish(), so on whatever thread/loop calls them.
 */
#ifndef CGW_PROTO_MSG_ACCUM_H
#define CGW_PROTO_MSG_ACCUM_H

#include <jansson.h>

#include "cgw/common.h"
#include "cgw/error.h"
#include "proto/sse_parser.h"

typedef struct cgw_msg_accum cgw_msg_accum_t;

/** What a reported increment is. */
typedef enum cgw_msg_ev_kind {
    CGW_MSG_EV_MESSAGE_START,  /**< raw = the message_start event */
    CGW_MSG_EV_BLOCK_START,    /**< index, block_type, block = content_block as received */
    CGW_MSG_EV_TEXT_DELTA,     /**< index, text = the new text */
    CGW_MSG_EV_THINKING_DELTA, /**< index, text = the new thinking text */
    CGW_MSG_EV_SIGNATURE,      /**< index, text = the signature (replaces any earlier one) */
    CGW_MSG_EV_INPUT_DELTA,    /**< index, text = the partial_json fragment */
    CGW_MSG_EV_CITATION,       /**< index, block = the citation object */
    CGW_MSG_EV_OTHER_DELTA,    /**< index, block = the delta object (compaction_delta and
                                    delta types this code does not know) */
    CGW_MSG_EV_BLOCK_STOP,     /**< index, block_type, block = the completed block (with
                                    .text/.thinking/.input final) */
    CGW_MSG_EV_MESSAGE_DELTA,  /**< raw = the message_delta event; usage/stop_reason
                                    getters already reflect it */
    CGW_MSG_EV_MESSAGE_STOP,   /**< the message is complete (cgw_msg_accum_message) */
    CGW_MSG_EV_UNKNOWN,        /**< an event type this code does not know; ignored;
                                    name = its type, raw = its data (NULL if not JSON) */
} cgw_msg_ev_kind_t;

/** One increment. Everything is borrowed and valid only during the callback. */
typedef struct cgw_msg_ev {
    cgw_msg_ev_kind_t kind;
    size_t index;           /**< block index for block events, else 0 */
    const char *block_type; /**< "text", "tool_use", ... for block events, else NULL */
    cgw_str_t text;         /**< delta bytes for TEXT/THINKING/SIGNATURE/INPUT, else empty */
    const json_t *block;    /**< see the kinds above, else NULL */
    const json_t *raw;      /**< the whole decoded event; always NULL for TEXT, THINKING and
                                 INPUT deltas (decoded on a fast path without JSON values,
                                 use `text`) and for UNKNOWN events whose data is not JSON */
    cgw_str_t name;         /**< the event type as dispatched */
} cgw_msg_ev_t;

/** Called for every increment, synchronously from feed()/finish(). `err` is the caller's
 *  (may be NULL). Return CGW_OK to go on; any other value stops, is returned by feed() and
 *  makes the accumulator fail with it (sticky). */
typedef int (*cgw_msg_ev_cb)(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err);

typedef struct cgw_msg_accum_options {
    cgw_msg_ev_cb on_event;   /**< optional */
    void *user;               /**< passed to on_event */
    size_t max_block_bytes;   /**< cap on one block's accumulated text/thinking/input bytes;
                                   CGW_E2BIG past it (default 64 MiB) */
    bool lenient_tool_input;  /**< a streamed tool input that is not a JSON object at
                                   content_block_stop becomes {} instead of failing the
                                   stream (a max_tokens cut); the consumer, who saw the
                                   fragments as INPUT_DELTA events, decides. Default false */
} cgw_msg_accum_options_t;

/** Fills the defaults (no callback, limits above). */
void cgw_msg_accum_options_init(cgw_msg_accum_options_t *opts);

/** Creates an accumulator; `opts` may be NULL for defaults and is copied. CGW_OK, CGW_EINVAL
 *  (NULL out, zero limit) or CGW_ENOMEM. */
int cgw_msg_accum_new(const cgw_msg_accum_options_t *opts, cgw_msg_accum_t **out);

/** Frees it (NULL is fine); references obtained with json_incref stay valid. */
void cgw_msg_accum_free(cgw_msg_accum_t *a);

/** Forgets the message and the failure state, keeps the options: ready for a new stream
 *  (e.g. a retry). */
void cgw_msg_accum_reset(cgw_msg_accum_t *a);

/** Feeds one event. `type` is the SSE event name; when it is empty, the JSON "type" field
 *  of `data` is used (streams recorded as bare JSON lines). `data` is the event's data bytes
 *  (trailing whitespace fine); empty data is accepted for message_stop and ping only.
 *  Returns CGW_OK; CGW_EJSON, CGW_EPROTO, CGW_EAPI, CGW_ETRUNCATED, CGW_E2BIG, CGW_ENOMEM
 *  as described above; the callback's code; or the sticky code of an earlier failure.
 *  `err` (may be NULL) gets a readable message (and type/request_id for CGW_EAPI). */
int cgw_msg_accum_feed(cgw_msg_accum_t *a, cgw_str_t type, const char *data, size_t len,
                       cgw_error_t *err);

/** Same as feed() for an event already decoded (borrowed; `type` as in feed(), may be
 *  empty). Used by code that holds events as JSON (mock server, replays, tests). */
int cgw_msg_accum_feed_json(cgw_msg_accum_t *a, cgw_str_t type, const json_t *event,
                            cgw_error_t *err);

/** A cgw_sse_event_cb that feeds the event to the accumulator given as `user`: set
 *  opts.on_event = cgw_msg_accum_sse_cb and opts.user = accumulator. */
int cgw_msg_accum_sse_cb(void *user, const cgw_sse_event_t *ev, cgw_error_t *err);

/** Declares the end of the byte stream. CGW_OK if message_stop was seen; CGW_ETRUNCATED
 *  ("stream ended before message_stop") otherwise; or the sticky failure code. */
int cgw_msg_accum_finish(cgw_msg_accum_t *a, cgw_error_t *err);

/** The accumulated message (borrowed; json_incref it to keep it past the next
 *  feed/reset/free). NULL before message_start. Before message_stop it is the message so far
 *  (open blocks show their text so far; unparsed tool input stays as in content_block_start).
 *  Still readable after a failure, showing the state up to it; a tool block whose streamed
 *  input failed to parse has no "input" member at all. */
const json_t *cgw_msg_accum_message(cgw_msg_accum_t *a);

/** True once message_stop was processed successfully. */
bool cgw_msg_accum_complete(const cgw_msg_accum_t *a);

/** True once any content-bearing increment was reported (a block start or any delta) - what
 *  the retry logic needs to know before resending a failed stream transparently. */
bool cgw_msg_accum_content_started(const cgw_msg_accum_t *a);

/** The message's stop_reason (borrowed, NUL-terminated), or NULL while unknown. */
const char *cgw_msg_accum_stop_reason(const cgw_msg_accum_t *a);

/** The stop_sequence that matched (borrowed), or NULL. */
const char *cgw_msg_accum_stop_sequence(const cgw_msg_accum_t *a);

/** The message's usage object (borrowed; running totals as of the last message_delta), or
 *  NULL before message_start. */
const json_t *cgw_msg_accum_usage(const cgw_msg_accum_t *a);

/** Number of content blocks started so far. */
size_t cgw_msg_accum_block_count(const cgw_msg_accum_t *a);

/** Number of events fed successfully (ping and unknown ones included). */
uint64_t cgw_msg_accum_event_count(const cgw_msg_accum_t *a);

#endif
