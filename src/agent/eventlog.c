/*
 * EventLog: storage, retention and subscriptions. See include/cgw/eventlog.h for the contract.
 *
 * Storage is a ring of record pointers (agent/eventlog_frame.h): entry `seq` lives at ring
 * index seq - first_seq, so lookup is O(1) and retention pops from the front.
 *
 * Delivery. Appends and subscribes never call a subscriber; they activate one loop event per
 * log (`wake`). Its callback makes one pass over the subscribers and hands each one every
 * entry it has not seen, up to the last seq at the start of the pass; entries appended by
 * callbacks during the pass go to the next pass, which bounds the work per loop iteration
 * even when callbacks append forever. A subscriber's state is just `pos`, the last seq it got.
 *
 * Re-entrancy. While a pass (or the teardown) runs, `dispatching` is set and nothing that a
 * callback can reach is freed under the pass's feet: unsubscribing only marks the
 * subscription dead (it is unlinked and freed by the sweep at the end of the pass), freeing
 * the log only marks it doomed (the pass stops and tears it down after the callback
 * returns), and a record that retention drops while a callback is looking at it (a callback
 * that appends) is freed when that callback returns.
 */
#include <event2/event.h>
#include <math.h>
#include <string.h>

#include "agent/eventlog_frame.h"
#include "core/alloc.h"
#include "core/ctx_int.h"

struct cgw_eventlog_sub {
    cgw_eventlog_t *log;
    struct cgw_eventlog_sub *prev, *next;
    cgw_eventlog_sub_cb cb;
    void *user;
    uint64_t pos; /* last seq delivered */
    bool dead;    /* ended; unlinked and freed by the next sweep */
};

struct cgw_eventlog {
    cgw_ctx_t *ctx;
    char *session_id;
    size_t max_entries, max_bytes;
    cgw_eventlog_event_cb on_event;
    void *on_event_user;

    cgw__frame_t **ring; /* capacity a power of two */
    size_t cap, head, count, bytes;
    uint64_t last_seq;
    cgw_buf_t scratch; /* reused by every append to build the frame */

    bool closed;
    int close_status; /* final status for subscribers that reach the end without a terminal */
    bool in_observer, dispatching, doomed;
    const cgw__frame_t *pinned; /* the record a subscription callback is looking at */
    bool pinned_dropped;        /* retention dropped it meanwhile: free after the callback */

    struct event *wake;
    bool wake_pending;
    struct cgw_eventlog_sub *subs_head, *subs_tail;
    size_t nsubs;  /* open (not dead) subscriptions */
    bool has_dead; /* a sweep has something to do */
};

void cgw_eventlog_options_init(cgw_eventlog_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
}

static void wake_cb(evutil_socket_t fd, short what, void *arg);

int cgw_eventlog_new(cgw_ctx_t *ctx, const cgw_eventlog_options_t *opts, cgw_eventlog_t **out)
{
    if (ctx == NULL || out == NULL) {
        return CGW_EINVAL;
    }
    cgw_eventlog_options_t defaults;
    if (opts == NULL) {
        cgw_eventlog_options_init(&defaults);
        opts = &defaults;
    }
    cgw_eventlog_t *log = cgw__calloc(1, sizeof(*log));
    if (log == NULL) {
        return CGW_ENOMEM;
    }
    log->ctx = ctx;
    log->session_id = cgw__strdup(opts->session_id != NULL ? opts->session_id : "");
    log->wake = event_new(cgw_ctx_base(ctx), -1, 0, wake_cb, log);
    if (log->session_id == NULL || log->wake == NULL) {
        if (log->wake != NULL) {
            event_free(log->wake);
        }
        cgw_free(log->session_id);
        cgw_free(log);
        return CGW_ENOMEM;
    }
    log->max_entries = opts->max_entries;
    log->max_bytes = opts->max_bytes;
    log->on_event = opts->on_event;
    log->on_event_user = opts->on_event_user;
    *out = log;
    return CGW_OK;
}

/* ---- ring ------------------------------------------------------------------------------- */

static cgw__frame_t *ring_at(const cgw_eventlog_t *log, size_t i)
{
    return log->ring[(log->head + i) & (log->cap - 1)];
}

static int ring_push(cgw_eventlog_t *log, cgw__frame_t *f)
{
    if (log->count == log->cap) {
        size_t ncap = log->cap ? log->cap * 2 : 64;
        if (ncap > (size_t)-1 / sizeof(*log->ring)) {
            return CGW_ENOMEM;
        }
        cgw__frame_t **nr = cgw__malloc(ncap * sizeof(*nr));
        if (nr == NULL) {
            return CGW_ENOMEM;
        }
        for (size_t i = 0; i < log->count; i++) {
            nr[i] = ring_at(log, i);
        }
        cgw_free(log->ring);
        log->ring = nr;
        log->cap = ncap;
        log->head = 0;
    }
    log->ring[(log->head + log->count) & (log->cap - 1)] = f;
    log->count++;
    log->bytes += f->len;
    return CGW_OK;
}

static void ring_pop(cgw_eventlog_t *log)
{
    cgw__frame_t *f = log->ring[log->head];
    log->head = (log->head + 1) & (log->cap - 1);
    log->count--;
    log->bytes -= f->len;
    if (f == log->pinned) {
        log->pinned_dropped = true;
    } else {
        cgw_free(f);
    }
}

/* Applies the retention bounds; the newest entry always stays. */
static void trim(cgw_eventlog_t *log)
{
    while (log->count > 1 && ((log->max_entries != 0 && log->count > log->max_entries) ||
                              (log->max_bytes != 0 && log->bytes > log->max_bytes))) {
        ring_pop(log);
    }
}

/* ---- accessors -------------------------------------------------------------------------- */

bool cgw_eventlog_closed(const cgw_eventlog_t *log)
{
    return log->closed;
}

uint64_t cgw_eventlog_last_seq(const cgw_eventlog_t *log)
{
    return log->last_seq;
}

uint64_t cgw_eventlog_first_seq(const cgw_eventlog_t *log)
{
    return log->last_seq - log->count + 1;
}

size_t cgw_eventlog_count(const cgw_eventlog_t *log)
{
    return log->count;
}

size_t cgw_eventlog_bytes(const cgw_eventlog_t *log)
{
    return log->bytes;
}

const char *cgw_eventlog_session_id(const cgw_eventlog_t *log)
{
    return log->session_id;
}

size_t cgw_eventlog_sub_count(const cgw_eventlog_t *log)
{
    return log->nsubs;
}

uint64_t cgw_eventlog_sub_position(const cgw_eventlog_sub_t *sub)
{
    return sub->pos;
}

int cgw_eventlog_get(const cgw_eventlog_t *log, uint64_t seq, cgw_eventlog_entry_t *out)
{
    if (seq == 0 || seq > log->last_seq) {
        return CGW_ENOENT;
    }
    uint64_t first = cgw_eventlog_first_seq(log);
    if (seq < first) {
        return CGW_ETRIMMED;
    }
    cgw__frame_view(ring_at(log, (size_t)(seq - first)), seq, out);
    return CGW_OK;
}

int cgw_eventlog_entry_event(const cgw_eventlog_entry_t *entry, json_t **out)
{
    /* The bytes came from our own writer, so the only way to fail is memory. ALLOW_NUL: a
     * string the caller built with an embedded NUL was written as \u0000. */
    json_t *v = json_loadb(entry->event_json.ptr, entry->event_json.len, JSON_ALLOW_NUL, NULL);
    if (v == NULL) {
        return CGW_ENOMEM;
    }
    *out = v;
    return CGW_OK;
}

/* ---- append and close ------------------------------------------------------------------- */

static void schedule(cgw_eventlog_t *log)
{
    if (log->wake_pending || log->doomed) {
        return;
    }
    log->wake_pending = true;
    if (log->dispatching) {
        /* From inside a pass: a zero timer runs on the next loop iteration, after I/O, where
         * event_active would run again in this one (so callbacks that append forever would
         * starve every other event). */
        static const struct timeval now = {0, 0};
        event_add(log->wake, &now);
    } else {
        event_active(log->wake, EV_TIMEOUT, 0);
    }
}

/* The event's type, checked: 1..255 bytes, no control characters (it becomes an SSE line). */
static int event_type(const json_t *event, cgw_str_t *type)
{
    const json_t *t = json_object_get(event, "type");
    if (!json_is_string(t)) {
        return CGW_EINVAL;
    }
    type->ptr = json_string_value(t);
    type->len = json_string_length(t);
    if (type->len == 0 || type->len > CGW_EVENTLOG_MAX_TYPE) {
        return CGW_EINVAL;
    }
    for (size_t i = 0; i < type->len; i++) {
        unsigned char c = (unsigned char)type->ptr[i];
        if (c < 0x20 || c == 0x7f) {
            return CGW_EINVAL;
        }
    }
    return CGW_OK;
}

static bool is_terminal(const json_t *event, cgw_str_t type)
{
    bool terminal_type = (type.len == 15 && memcmp(type.ptr, "stream_complete", 15) == 0) ||
                         (type.len == 5 && memcmp(type.ptr, "error", 5) == 0);
    if (!terminal_type) {
        return false;
    }
    /* A sub-agent's completion ends only the sub-agent, not the parent's stream. */
    const json_t *agent = json_object_get(event, "agent_id");
    return agent == NULL || json_is_null(agent);
}

static void destroy(cgw_eventlog_t *log);

int cgw_eventlog_append(cgw_eventlog_t *log, const json_t *event, uint64_t *seq)
{
    if (log == NULL) {
        return CGW_EINVAL;
    }
    if (log->closed || log->doomed) {
        return CGW_ECLOSED; /* whatever it is, it is dropped */
    }
    if (log->in_observer) {
        return CGW_EBUSY;
    }
    if (!json_is_object(event)) {
        return CGW_EINVAL;
    }
    cgw_str_t type;
    int rc = event_type(event, &type);
    if (rc != CGW_OK) {
        return rc;
    }
    bool terminal = is_terminal(event, type);
    uint64_t nseq = log->last_seq + 1;
    int64_t ts_us = llround(cgw__wall_time() * 1e6);
    cgw__frame_t *f;
    rc = cgw__frame_new(nseq, ts_us, type, terminal, event, &log->scratch, &f);
    if (rc == CGW_OK && (rc = ring_push(log, f)) != CGW_OK) {
        cgw_free(f);
    }
    if (rc != CGW_OK) {
        return rc;
    }
    log->last_seq = nseq;
    if (seq != NULL) {
        *seq = nseq;
    }
    if (log->on_event != NULL) {
        cgw_eventlog_entry_t view;
        cgw__frame_view(f, nseq, &view);
        log->in_observer = true;
        log->on_event(log, &view, event, log->on_event_user);
        log->in_observer = false;
    }
    log->closed = log->closed || terminal;
    trim(log);
    if (log->doomed && !log->dispatching) {
        destroy(log); /* the observer freed the log */
        return CGW_OK;
    }
    if (log->nsubs > 0) {
        schedule(log);
    }
    return CGW_OK;
}

int cgw_eventlog_close(cgw_eventlog_t *log, const char *message)
{
    if (log == NULL) {
        return CGW_EINVAL;
    }
    if (log->closed || log->doomed) {
        return CGW_OK;
    }
    if (log->in_observer) {
        return CGW_EBUSY;
    }
    json_t *ev = json_pack("{s:s,s:s}", "type", "error", "error",
                           message != NULL ? message : "stream closed");
    int rc = ev != NULL ? cgw_eventlog_append(log, ev, NULL) : CGW_ENOMEM;
    json_decref(ev);
    if (rc != CGW_OK && rc != CGW_ECLOSED) {
        /* Closed without a terminal entry: subscribers end with this status instead. */
        log->closed = true;
        log->close_status = rc;
        if (log->nsubs > 0) {
            schedule(log);
        }
    }
    return rc;
}

/* ---- subscriptions ---------------------------------------------------------------------- */

int cgw_eventlog_subscribe(cgw_eventlog_t *log, uint64_t after_seq, cgw_eventlog_sub_cb cb,
                           void *user, cgw_eventlog_sub_t **out)
{
    if (log == NULL || cb == NULL || out == NULL) {
        return CGW_EINVAL;
    }
    if (log->doomed) {
        return CGW_ECANCELED;
    }
    if (after_seq > log->last_seq) {
        return CGW_ERANGE;
    }
    if (after_seq + 1 < cgw_eventlog_first_seq(log)) {
        return CGW_ETRIMMED;
    }
    cgw_eventlog_sub_t *sub = cgw__calloc(1, sizeof(*sub));
    if (sub == NULL) {
        return CGW_ENOMEM;
    }
    sub->log = log;
    sub->cb = cb;
    sub->user = user;
    sub->pos = after_seq;
    sub->prev = log->subs_tail;
    if (log->subs_tail != NULL) {
        log->subs_tail->next = sub;
    } else {
        log->subs_head = sub;
    }
    log->subs_tail = sub;
    log->nsubs++;
    schedule(log);
    *out = sub;
    return CGW_OK;
}

static void unlink_sub(cgw_eventlog_t *log, cgw_eventlog_sub_t *sub)
{
    if (sub->prev != NULL) {
        sub->prev->next = sub->next;
    } else {
        log->subs_head = sub->next;
    }
    if (sub->next != NULL) {
        sub->next->prev = sub->prev;
    } else {
        log->subs_tail = sub->prev;
    }
    cgw_free(sub);
}

/* Ends `sub` (idempotent); it is freed now, or by the sweep when a pass is running. */
static void kill_sub(cgw_eventlog_sub_t *sub)
{
    cgw_eventlog_t *log = sub->log;
    if (!sub->dead) {
        sub->dead = true;
        log->nsubs--;
    }
    if (log->dispatching) {
        log->has_dead = true;
    } else {
        unlink_sub(log, sub);
    }
}

void cgw_eventlog_unsubscribe(cgw_eventlog_sub_t *sub)
{
    if (sub != NULL) {
        kill_sub(sub);
    }
}

/* Final notification; only called while `dispatching` is set, so `sub` survives the call. */
static void finish(cgw_eventlog_sub_t *sub, int status)
{
    kill_sub(sub);
    sub->cb(sub, NULL, status, sub->user);
}

/* Hands `sub` every entry after its position up to `upto`, then its final notification
 * when it has reached the end of a closed log. */
static void deliver(cgw_eventlog_t *log, cgw_eventlog_sub_t *sub, uint64_t upto)
{
    while (!sub->dead && !log->doomed) {
        uint64_t first = cgw_eventlog_first_seq(log);
        if (sub->pos + 1 < first) {
            finish(sub, CGW_ETRIMMED); /* it fell behind the retained range */
            return;
        }
        if (sub->pos >= upto) {
            if (log->closed && sub->pos == log->last_seq) {
                finish(sub, log->close_status);
            }
            return;
        }
        const cgw__frame_t *f = ring_at(log, (size_t)(sub->pos + 1 - first));
        cgw_eventlog_entry_t view;
        cgw__frame_view(f, sub->pos + 1, &view);
        sub->pos++;
        log->pinned = f;
        sub->cb(sub, &view, CGW_OK, sub->user);
        log->pinned = NULL;
        if (log->pinned_dropped) {
            log->pinned_dropped = false;
            cgw_free((void *)f);
        }
        if (view.terminal && !sub->dead && !log->doomed) {
            finish(sub, CGW_OK);
            return;
        }
    }
}

static void sweep(cgw_eventlog_t *log)
{
    cgw_eventlog_sub_t *next;
    for (cgw_eventlog_sub_t *sub = log->subs_head; sub != NULL; sub = next) {
        next = sub->next;
        if (sub->dead) {
            unlink_sub(log, sub);
        }
    }
    log->has_dead = false;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_eventlog_t *log = arg;
    log->wake_pending = false;
    log->dispatching = true;
    uint64_t upto = log->last_seq;
    /* Subscriptions added during the pass are linked at the tail and visited too. */
    for (cgw_eventlog_sub_t *sub = log->subs_head; sub != NULL && !log->doomed; sub = sub->next) {
        if (!sub->dead) {
            deliver(log, sub, upto);
        }
    }
    if (!log->doomed && log->has_dead) {
        sweep(log);
    }
    if (!log->doomed && log->nsubs > 0 && log->last_seq > upto) {
        schedule(log); /* callbacks appended during the pass: next iteration */
    }
    log->dispatching = false;
    if (log->doomed) {
        destroy(log);
    }
}

/* ---- teardown --------------------------------------------------------------------------- */

static void destroy(cgw_eventlog_t *log)
{
    /* Callbacks below may append (refused), subscribe (refused) or unsubscribe (deferred). */
    log->doomed = true;
    log->closed = true;
    log->dispatching = true;
    for (cgw_eventlog_sub_t *sub = log->subs_head; sub != NULL; sub = sub->next) {
        if (!sub->dead) {
            finish(sub, CGW_ECANCELED);
        }
    }
    cgw_eventlog_sub_t *next;
    for (cgw_eventlog_sub_t *sub = log->subs_head; sub != NULL; sub = next) {
        next = sub->next;
        cgw_free(sub);
    }
    while (log->count > 0) {
        ring_pop(log);
    }
    cgw_free(log->ring);
    cgw_buf_free(&log->scratch);
    event_free(log->wake);
    cgw_free(log->session_id);
    cgw_free(log);
}

void cgw_eventlog_free(cgw_eventlog_t *log)
{
    if (log == NULL) {
        return;
    }
    if (log->dispatching || log->in_observer) {
        log->doomed = true; /* torn down by whoever is running a callback, when it returns */
        return;
    }
    destroy(log);
}
