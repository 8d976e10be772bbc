/*
 * cgw_eventlog_t: the ordered, append-only log of one run's events, and its subscriptions.
 *
 * Every accepted append gets the next sequence number (1, 2, 3, ...) and a wall-clock
 * timestamp. The event is serialized once, at append, into the entry's SSE frame:
 *
 *     id: <seq>\nevent: <type>\ndata: {"seq":<seq>,"ts":<ts>,"event":<event>}\n\n
 *
 * and that one allocation is all the log keeps: the entry JSON and the event JSON are
 * ranges inside the frame, handed out as borrowed bytes, and the event is parsed back into a
 * json_t only on demand (cgw_eventlog_entry_event). An HTTP server writes the frame as-is to
 * every stream.
 *
 * A `stream_complete` or `error` event is terminal unless it carries a non-null `agent_id`
 * (sub-agent events are never terminal): it closes the log, and every later append is refused
 * with CGW_ECLOSED. So a closed log holds at most one terminal entry, and it is the last.
 *
 * Subscribers see every entry after a starting seq, in order, exactly once, and then a final
 * notification. Delivery always runs on the loop (never inside subscribe or append), so a
 * callback may append, subscribe or unsubscribe freely, and entries appended in one go reach
 * a subscriber in one batch.
 *
 * Everything here belongs to the loop of the cgw_ctx_t the log was created with and is not
 * thread-safe.
 */
#ifndef CGW_EVENTLOG_H
#define CGW_EVENTLOG_H

#include "common.h"
#include "ctx.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct json_t json_t;

typedef struct cgw_eventlog cgw_eventlog_t;
typedef struct cgw_eventlog_sub cgw_eventlog_sub_t;

/** A view of one stored entry. Every pointer is borrowed from the log and stays valid until
 *  the entry is dropped by retention (a later append may do that when a bound is set) or the
 *  log is freed; inside a callback it is valid for the whole callback. No range is
 *  NUL-terminated. */
typedef struct cgw_eventlog_entry {
    uint64_t seq;         /**< 1, 2, 3, ... */
    double ts;            /**< Unix seconds at append, microsecond precision (as in `json`) */
    bool terminal;        /**< this entry closed the log */
    cgw_str_t type;       /**< the event's "type" */
    cgw_str_t event_json; /**< compact JSON of the event, as appended */
    cgw_str_t json;       /**< {"seq":N,"ts":T,"event":{...}} */
    cgw_str_t frame;      /**< the SSE frame: id, event and data lines and the blank line */
} cgw_eventlog_entry_t;

/** Observer of every accepted append. Runs synchronously inside cgw_eventlog_append, after
 *  the entry is stored and before a terminal entry closes the log. `event` is the caller's
 *  original object (borrowed), `entry` the stored entry. It may append to other logs (a
 *  sub-agent's observer forwards to its parent's log); an append to this same log from here
 *  is refused with CGW_EBUSY. It may free the log (see cgw_eventlog_free). */
typedef void (*cgw_eventlog_event_cb)(cgw_eventlog_t *log, const cgw_eventlog_entry_t *entry,
                                      const json_t *event, void *user);

typedef struct cgw_eventlog_options {
    /** Copied; readable back with cgw_eventlog_session_id. Default "". */
    const char *session_id;
    /** Retention: keep at most this many entries (0 = unbounded, the default). */
    size_t max_entries;
    /** Retention: keep at most this many bytes of stored frames (0 = unbounded, the
     *  default). The newest entry is always kept, even when it alone exceeds the bound. */
    size_t max_bytes;
    /** Optional observer and its argument. */
    cgw_eventlog_event_cb on_event;
    void *on_event_user;
} cgw_eventlog_options_t;

/** Fills `opts` with the defaults (no session id, unbounded, no observer). */
CGW_EXTERN void cgw_eventlog_options_init(cgw_eventlog_options_t *opts);

/** Creates an empty, open log on ctx's loop. `opts` is borrowed (NULL = defaults). On success
 *  *out owns the log (free with cgw_eventlog_free). Returns CGW_OK, CGW_EINVAL (NULL ctx or
 *  out) or CGW_ENOMEM. */
CGW_EXTERN int cgw_eventlog_new(cgw_ctx_t *ctx, const cgw_eventlog_options_t *opts,
                                cgw_eventlog_t **out);

/** Frees the log (NULL is fine). Every subscription still open gets its final notification
 *  (entry NULL, status CGW_ECANCELED) synchronously, inside this call. May be called from a
 *  subscription callback or the on_event observer: the log is then torn down (with those
 *  notifications) as soon as that callback returns, and nothing else is delivered. During the
 *  teardown, appends return CGW_ECLOSED and subscribes CGW_ECANCELED. */
CGW_EXTERN void cgw_eventlog_free(cgw_eventlog_t *log);

/** Appends a copy of `event` (borrowed: serialized here, never referenced afterwards).
 *  `event` must be an object with a string "type" of 1 to 255 bytes and no control characters,
 *  nested at most 2048 levels deep (jansson's parser limit). On success, when `seq` is not
 *  NULL, *seq is the new entry's sequence number.
 *  Returns CGW_OK; CGW_ECLOSED when the log is closed (the event is dropped, nothing else
 *  happens); CGW_EINVAL for an event of the wrong shape; CGW_EBUSY when called from this log's
 *  own on_event observer; CGW_E2BIG for a frame over 4 GiB; CGW_ENOMEM. On any error the log
 *  is unchanged. Subscribers are woken on the loop, never from here. */
CGW_EXTERN int cgw_eventlog_append(cgw_eventlog_t *log, const json_t *event, uint64_t *seq);

/** Closes the log. A no-op returning CGW_OK when it is already closed; CGW_EBUSY from this
 *  log's own on_event observer. Otherwise it appends the
 *  terminal {"type":"error","error":<message or "stream closed">} and returns that append's
 *  result. Should that append fail (CGW_ENOMEM), the log is closed anyway, without a terminal
 *  entry, and subscribers end with that code as their final status. `message` is borrowed. */
CGW_EXTERN int cgw_eventlog_close(cgw_eventlog_t *log, const char *message);

/** True once a terminal entry was appended or cgw_eventlog_close ran. */
CGW_EXTERN bool cgw_eventlog_closed(const cgw_eventlog_t *log);

/** Sequence number of the newest entry, 0 when nothing was ever appended. */
CGW_EXTERN uint64_t cgw_eventlog_last_seq(const cgw_eventlog_t *log);

/** Sequence number of the oldest retained entry; last_seq + 1 when the log is empty. Above 1
 *  only when retention dropped entries. */
CGW_EXTERN uint64_t cgw_eventlog_first_seq(const cgw_eventlog_t *log);

/** Number of retained entries and the bytes of their frames. */
CGW_EXTERN size_t cgw_eventlog_count(const cgw_eventlog_t *log);
CGW_EXTERN size_t cgw_eventlog_bytes(const cgw_eventlog_t *log);

/** The session id given at creation (borrowed, never NULL). */
CGW_EXTERN const char *cgw_eventlog_session_id(const cgw_eventlog_t *log);

/** Looks up entry `seq` and fills *out with borrowed views (see cgw_eventlog_entry_t).
 *  Returns CGW_OK, CGW_ETRIMMED (retention dropped it) or CGW_ENOENT (0 or not appended yet). */
CGW_EXTERN int cgw_eventlog_get(const cgw_eventlog_t *log, uint64_t seq, cgw_eventlog_entry_t *out);

/** Parses the entry's event back into a new json_t (*out is a new reference owned by the
 *  caller). Returns CGW_OK or CGW_ENOMEM. */
CGW_EXTERN int cgw_eventlog_entry_event(const cgw_eventlog_entry_t *entry, json_t **out);

/** Subscription callback, always run from the loop.
 *  - entry != NULL (status CGW_OK): the next entry, in order, exactly once.
 *  - entry == NULL: the final notification; the subscription is over and `sub` is freed when
 *    this call returns. status is CGW_OK after the terminal entry was delivered (or right
 *    away, for a subscription that starts at the last seq of a closed log); CGW_ETRIMMED when
 *    retention dropped entries this subscriber had not received yet (it fell behind);
 *    CGW_ECANCELED when the log is being freed (this one runs inside cgw_eventlog_free); or
 *    the error that stopped cgw_eventlog_close from appending its terminal entry.
 *  The callback may append to the log, subscribe, unsubscribe any subscription (including
 *  `sub`, after which no further call is made for it) and free the log. */
typedef void (*cgw_eventlog_sub_cb)(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *entry,
                                    int status, void *user);

/** Subscribes to every entry with seq > after_seq, then to live entries, until the terminal
 *  entry. Nothing is delivered from inside this call; the first batch comes on the next loop
 *  iteration. On success *out is the subscription handle, owned by the log: it stays valid
 *  until the final notification returns or cgw_eventlog_unsubscribe is called.
 *  Returns CGW_OK; CGW_ETRIMMED when entries after after_seq are no longer retained (nothing
 *  is ever skipped silently); CGW_ERANGE when after_seq > cgw_eventlog_last_seq (a position
 *  this log never had); CGW_EINVAL for a NULL argument; CGW_ECANCELED while the log is being
 *  freed; CGW_ENOMEM. */
CGW_EXTERN int cgw_eventlog_subscribe(cgw_eventlog_t *log, uint64_t after_seq,
                                      cgw_eventlog_sub_cb cb, void *user, cgw_eventlog_sub_t **out);

/** Ends a subscription now, without a final notification; no callback runs for it afterwards.
 *  Safe from any callback, including the subscription's own. NULL is fine. Calling it for a
 *  subscription whose final notification already returned is a use-after-free. */
CGW_EXTERN void cgw_eventlog_unsubscribe(cgw_eventlog_sub_t *sub);

/** Seq of the last entry delivered to this subscription (its after_seq before the first). */
CGW_EXTERN uint64_t cgw_eventlog_sub_position(const cgw_eventlog_sub_t *sub);

/** Number of open subscriptions. */
CGW_EXTERN size_t cgw_eventlog_sub_count(const cgw_eventlog_t *log);

/** Parses a resume position: the value of a Last-Event-ID header or of `?after=`. Strict
 *  decimal: "0" or a digit 1-9 followed by digits, nothing else (no sign, no space, no leading
 *  zero), at most 2^63 - 1. `s` is borrowed and need not be NUL-terminated.
 *  Returns CGW_OK with *out set, or CGW_EINVAL (empty, garbage, overflow; *out untouched). */
CGW_EXTERN int cgw_eventlog_parse_seq(cgw_str_t s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
