/* Server-Sent-Events streams of runs.
 *
 * A live run is streamed from a subscription to its EventLog: each entry's SSE frame, made
 * once at append, is copied into the connection's output as is. A run that is no longer in
 * memory (finished earlier, or before a restart) is replayed from the store in batches, paced
 * by the connection's output so a long history never sits in memory at once. Either way the
 * stream ends after the terminal entry (the store always has one for a finished run).
 *
 * Resume: Last-Event-ID (wins) or ?after=N; frames with seq > N follow, so a client that
 * reconnects with the id of the last frame it saw gets every later event exactly once.
 *
 * Pacing: a stream first catches up (entries already in the log, or stored) only while the
 * connection's unsent output is under half the cap, so a client resuming a long run is never
 * flooded; once caught up it subscribes and gets live entries as they come. A live entry that
 * finds the output over half the cap (a burst, or a slow client) sends the stream back to
 * catching up, so a connection never holds more than half the cap plus one frame. A client
 * whose output stays that full for stall_ms reads too slowly: its connection is dropped, and
 * it resumes with Last-Event-ID. A client that goes away is seen through the connection's
 * close callback, which frees the stream; the run goes on unless the stream was started by
 * POST .../messages with cancel_on_disconnect. */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ctx_int.h"
#include "server/gateway_int.h"
#include "server/http_util.h"

#define REPLAY_BATCH 256

struct gw_stream {
    cgw_gateway_t *gw;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    gw_run_t *run;           /* live stream: the run whose log we read */
    cgw_eventlog_sub_t *sub; /* live stream: the subscription */
    struct event *replay;    /* the catch-up timer (live and stored streams) */
    char run_id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    char peer[64];
    uint64_t pos;        /* seq of the last frame sent */
    uint64_t full_since; /* when the output was last found full (0: it has room) */
    bool cancel_run_on_close;
    gw_stream_t *prev, *next;
};

/* ---- bookkeeping ------------------------------------------------------------------------- */

static gw_peer_t *peer_find(cgw_gateway_t *gw, const char *addr, bool add)
{
    for (size_t i = 0; i < gw->n_peers; i++) {
        if (strcmp(gw->peers[i].addr, addr) == 0) {
            return &gw->peers[i];
        }
    }
    if (!add) {
        return NULL;
    }
    if (gw->n_peers == gw->cap_peers) {
        size_t cap = gw->cap_peers ? 2 * gw->cap_peers : 16;
        gw_peer_t *p = cgw__realloc(gw->peers, cap * sizeof(*p));
        if (p == NULL) {
            return NULL;
        }
        gw->peers = p;
        gw->cap_peers = cap;
    }
    gw_peer_t *p = &gw->peers[gw->n_peers++];
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    p->streams = 0;
    return p;
}

static void stream_free(gw_stream_t *st)
{
    cgw_gateway_t *gw = st->gw;
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        gw->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    gw->n_streams--;
    gw_peer_t *p = peer_find(gw, st->peer, false);
    if (p != NULL && p->streams > 0 && --p->streams == 0) {
        *p = gw->peers[--gw->n_peers]; /* order does not matter */
    }
    cgw_eventlog_unsubscribe(st->sub);
    if (st->replay != NULL) {
        event_free(st->replay);
    }
    gw_run_t *run = st->run;
    cgw_free(st);
    if (run != NULL) {
        run->watchers--;
        cgw__gw_run_release_check(run);
    }
}

/* Ends the reply properly (closing chunk) and frees the stream. */
static void stream_end(gw_stream_t *st)
{
    evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    struct evhttp_request *req = st->req;
    stream_free(st);
    evhttp_send_reply_end(req);
}

/* Drops the connection without the closing chunk: the client sees a cut transfer. */
static void stream_cut(gw_stream_t *st)
{
    struct evhttp_connection *evcon = st->evcon;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    st->gw->metrics.streams_cut++;
    CGW_WARN(st->gw->ctx, "gateway",
             "stream of run %s for %s cut off after seq %llu: the "
             "client reads too slowly",
             st->run_id, st->peer, (unsigned long long)st->pos);
    stream_free(st);
    evhttp_connection_free(evcon);
}

enum { ROOM_OK, ROOM_FULL, ROOM_GONE };

/* Whether the connection takes more output now: its unsent bytes are at most half the cap.
 * While it is full, how long it has been full is tracked; past stall_ms the client is taken to
 * read too slowly and is cut off (ROOM_GONE: st is freed). */
static int room(gw_stream_t *st)
{
    if (cgw__http_pending_output(st->evcon) <= st->gw->stream_cap / 2) {
        st->full_since = 0;
        return ROOM_OK;
    }
    uint64_t now = cgw__now_ms();
    if (st->full_since == 0) {
        st->full_since = now;
    }
    if (now - st->full_since >= st->gw->stall_ms) {
        stream_cut(st);
        return ROOM_GONE;
    }
    return ROOM_FULL;
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    gw_stream_t *st = arg;
    struct evhttp_request *req = st->req;
    if (st->cancel_run_on_close && st->run != NULL && !st->run->done) {
        CGW_INFO(st->gw->ctx, "gateway", "client left: cancelling run %s", st->run_id);
        cgw_runner_cancel(st->run->runner);
    }
    stream_free(st);
    /* The client went away mid-reply: evhttp left the unfinished request to us, and ending
     * the reply is what frees it. */
    if (evhttp_request_get_connection(req) == NULL) {
        evhttp_send_reply_end(req);
    }
}

/* ---- live streams ------------------------------------------------------------------------ */

static void arm_replay(gw_stream_t *st, int ms)
{
    struct timeval tv = {0, ms * 1000};
    evtimer_add(st->replay, &tv);
}

static void on_entry(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *entry, int status,
                     void *user)
{
    (void)sub;
    gw_stream_t *st = user;
    if (entry == NULL) {
        st->sub = NULL; /* freed by the log when this returns */
        if (status != CGW_OK) {
            CGW_WARN(st->gw->ctx, "gateway", "stream of run %s ended early: %s", st->run_id,
                     cgw_strerror(status));
        }
        stream_end(st);
        return;
    }
    int r = room(st);
    if (r == ROOM_OK) {
        cgw__http_send_chunk(st->req, entry->frame.ptr, entry->frame.len);
        st->pos = entry->seq;
    } else if (r == ROOM_FULL) {
        /* A burst, or a slow client: go back to catching up from the log at its pace. */
        cgw_eventlog_unsubscribe(st->sub);
        st->sub = NULL;
        arm_replay(st, 5);
    }
}

/* Live catch-up: copies the log's entries after pos while the connection has room, then
 * subscribes for the rest (the subscription also ends the stream after the terminal entry). */
static void on_catchup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_stream_t *st = arg;
    cgw_eventlog_t *log = st->run->log;
    for (int n = 0; n < REPLAY_BATCH && st->pos < cgw_eventlog_last_seq(log); n++) {
        int r = room(st);
        if (r != ROOM_OK) {
            if (r == ROOM_FULL) {
                arm_replay(st, 5); /* wait for the client to read */
            }
            return;
        }
        cgw_eventlog_entry_t e;
        if (cgw_eventlog_get(log, st->pos + 1, &e) != CGW_OK) {
            stream_cut(st);
            return;
        }
        cgw__http_send_chunk(st->req, e.frame.ptr, e.frame.len);
        st->pos = e.seq;
    }
    if (st->pos < cgw_eventlog_last_seq(log)) {
        arm_replay(st, 0);
        return;
    }
    int rc = cgw_eventlog_subscribe(log, st->pos, on_entry, st, &st->sub);
    if (rc != CGW_OK) {
        st->sub = NULL;
        CGW_ERROR(st->gw->ctx, "gateway", "cannot subscribe to run %s: %s", st->run_id,
                  cgw_strerror(rc));
        stream_cut(st);
    }
}

/* ---- stored streams ---------------------------------------------------------------------- */

static int add_frame(const cgw_store_event_t *ev, void *user)
{
    gw_stream_t *st = user;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)ev->seq);
    int rc = cgw__http_sse_send(st->req, id, ev->type, ev->json, ev->json_len);
    if (rc == CGW_OK) {
        st->pos = ev->seq;
    }
    return rc;
}

/* Sends the next batch when the connection has room; ends after the last stored event. */
static void on_replay(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_stream_t *st = arg;
    cgw_gateway_t *gw = st->gw;
    int r = room(st);
    if (r != ROOM_OK) {
        if (r == ROOM_FULL) {
            arm_replay(st, 5); /* wait for the client to read */
        }
        return;
    }
    uint64_t before = st->pos;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_store_event_read(gw->store, st->tenant, st->run_id, st->pos, REPLAY_BATCH,
                                  add_frame, st, &err);
    if (rc != CGW_OK) {
        CGW_ERROR(gw->ctx, "gateway", "replay of run %s failed: %s", st->run_id, err.message);
        stream_cut(st);
    } else if (st->pos - before < REPLAY_BATCH) {
        stream_end(st); /* a stored run is finished: its last event is terminal */
    } else {
        arm_replay(st, 0);
    }
}

/* ---- opening streams --------------------------------------------------------------------- */

/* The peer address of the request's connection (borrowed from evhttp). */
static const char *peer_of(struct evhttp_request *req)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
    return addr != NULL ? addr : "?";
}

bool cgw__gw_stream_allowed(cgw_gateway_t *gw, struct evhttp_request *req)
{
    const gw_peer_t *p = peer_find(gw, peer_of(req), false);
    if (p != NULL && p->streams >= gw->max_streams_per_client) {
        cgw__gw_error(gw, req, 429, "rate_limit_error",
                      "this client has %zu streams open; the limit is %zu", p->streams,
                      gw->max_streams_per_client);
        return false;
    }
    return true;
}

static gw_stream_t *stream_open(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                                const char *run_id)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!cgw__gw_stream_allowed(gw, req)) {
        return NULL;
    }
    gw_stream_t *st = cgw__calloc(1, sizeof(*st));
    gw_peer_t *p = st != NULL ? peer_find(gw, peer_of(req), true) : NULL;
    if (p == NULL) {
        cgw_free(st);
        cgw__gw_error(gw, req, 500, "api_error", "out of memory");
        return NULL;
    }
    p->streams++;
    st->gw = gw;
    st->req = req;
    st->evcon = evcon;
    snprintf(st->peer, sizeof(st->peer), "%s", p->addr);
    snprintf(st->run_id, sizeof(st->run_id), "%s", run_id);
    snprintf(st->tenant, sizeof(st->tenant), "%s", tenant);
    st->next = gw->streams;
    if (gw->streams != NULL) {
        gw->streams->prev = st;
    }
    gw->streams = st;
    gw->n_streams++;
    gw->metrics.streams_total++;
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Accel-Buffering", "no");
    cgw__http_sse_start(req, 200);
    evhttp_connection_set_closecb(evcon, on_close, st);
    return st;
}

static void stream_live(cgw_gateway_t *gw, struct evhttp_request *req, gw_run_t *run,
                        uint64_t after, bool cancel_on_close)
{
    gw_stream_t *st = stream_open(gw, req, run->tenant, run->id);
    if (st == NULL) {
        return;
    }
    st->run = run;
    run->watchers++;
    st->pos = after;
    st->cancel_run_on_close = cancel_on_close;
    st->replay = evtimer_new(cgw_ctx_base(gw->ctx), on_catchup, st);
    if (st->replay == NULL) {
        stream_cut(st);
        return;
    }
    arm_replay(st, 0);
}

void cgw__gw_stream_run(cgw_gateway_t *gw, struct evhttp_request *req, gw_run_t *run)
{
    stream_live(gw, req, run, 0, gw->cancel_on_disconnect);
}

/* The resume position: Last-Event-ID, else ?after=, else 0. false: 400 sent. */
static bool resume_position(cgw_gateway_t *gw, struct evhttp_request *req, uint64_t *after)
{
    *after = 0;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (h == NULL && query != NULL && evhttp_parse_query_str(query, &q) == 0) {
        h = evhttp_find_header(&q, "after");
    }
    bool ok = h == NULL || cgw_eventlog_parse_seq((cgw_str_t){h, strlen(h)}, after) == CGW_OK;
    evhttp_clear_headers(&q);
    if (!ok) {
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "Last-Event-ID / after must be a decimal event id");
    }
    return ok;
}

void cgw__gw_events(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                    const char *run_id)
{
    uint64_t after;
    if (!resume_position(gw, req, &after)) {
        return;
    }
    gw_run_t *run = cgw__gw_run_find(gw, tenant, run_id);
    uint64_t last = 0;
    cgw_store_run_t rec;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = CGW_OK;
    if (run != NULL) {
        last = cgw_eventlog_last_seq(run->log);
    } else if ((rc = cgw_store_run_get(gw->store, tenant, run_id, &rec, &err)) == CGW_OK) {
        last = rec.last_seq;
    }
    if (rc == CGW_ENOENT) {
        cgw__gw_error(gw, req, 404, "not_found_error", "run not found");
    } else if (rc != CGW_OK) {
        cgw__gw_store_error(gw, req, rc, &err);
    } else if (after > last) {
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "resume position %llu is past the run's last event (%llu)",
                      (unsigned long long)after, (unsigned long long)last);
    } else if (run != NULL) {
        stream_live(gw, req, run, after, false);
    } else {
        gw_stream_t *st = stream_open(gw, req, tenant, run_id);
        if (st != NULL) {
            st->pos = after;
            st->replay = evtimer_new(cgw_ctx_base(gw->ctx), on_replay, st);
            if (st->replay == NULL) {
                stream_cut(st);
                return;
            }
            arm_replay(st, 0);
        }
    }
}

/* ---- gateway-wide ------------------------------------------------------------------------ */

void cgw__gw_streams_ping(cgw_gateway_t *gw)
{
    gw_stream_t *next;
    for (gw_stream_t *st = gw->streams; st != NULL; st = next) {
        next = st->next;
        if (room(st) == ROOM_OK) {
            cgw__http_send_chunk(st->req, ": ping\n\n", 8); /* a full stream needs none */
        }
    }
}

void cgw__gw_streams_run_gone(cgw_gateway_t *gw, gw_run_t *run)
{
    for (gw_stream_t *st = gw->streams; st != NULL; st = st->next) {
        if (st->run == run) {
            st->run = NULL;
        }
    }
}

void cgw__gw_streams_close_all(cgw_gateway_t *gw)
{
    while (gw->streams != NULL) {
        gw_stream_t *st = gw->streams;
        st->run = NULL; /* no release checks while tearing down */
        stream_end(st);
    }
}
