/* Sending a planned mock answer over time.
 *
 * Each answer in progress is a small state machine driven by one timer: send the frames whose
 * pause has elapsed, wait for the next pause, and at the end either finish the chunked reply,
 * hang (send nothing more, keep the connection) or cut the connection. A cut first waits until
 * evhttp has handed every queued byte to the kernel, so that the client really receives the
 * content sent before the cut, then frees the connection without the closing chunk: the client
 * sees a truncated transfer.
 *
 * Lifetime: the connection's close callback frees the state when the client goes away first;
 * the state clears that callback before it ends the reply or closes the connection itself. */
#include <errno.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/ctx_int.h"
#include "server/http_util.h"
#include "server/mock_api_int.h"

#define WATCH_MS 100

typedef struct cgw__mock_stream {
    cgw_mock_api_t *srv;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    cgw__mock_plan_t *plan;
    size_t pos;    /* next frame to send */
    bool waited;   /* the pause before frames[pos] has elapsed */
    bool cutting;  /* waiting for the output to drain before the cut */
    bool watching; /* hanging before the headers: polling for the client's close */
    struct event *timer;
    struct cgw__mock_stream *prev, *next;
} cgw__mock_stream_t;

static void stream_free(cgw__mock_stream_t *st)
{
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        st->srv->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    if (st->timer != NULL) {
        event_free(st->timer);
    }
    cgw__mock_plan_free(st->plan);
    cgw_free(st);
}

/* Detaches from the connection, then frees: after this evhttp may free the connection. */
static void stream_detach(cgw__mock_stream_t *st)
{
    evhttp_connection_set_closecb(st->evcon, NULL, NULL);
    stream_free(st);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    cgw__mock_stream_t *st = arg;
    struct evhttp_request *req = st->req;
    stream_free(st);
    /* When the client went away mid-reply, evhttp has already detached the unfinished request
     * from the connection and leaves it to us: ending the reply is what frees it. */
    if (evhttp_request_get_connection(req) == NULL) {
        evhttp_send_reply_end(req);
    }
}

static void arm(cgw__mock_stream_t *st, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(st->timer, &tv);
}

static void do_cut(cgw__mock_stream_t *st)
{
    if (cgw__http_pending_output(st->evcon) > 0) {
        arm(st, 1); /* still writing what came before the cut */
        return;
    }
    struct evhttp_connection *evcon = st->evcon;
    stream_detach(st);
    evhttp_connection_free(evcon);
}

/* A hang before the headers: closes our side once the client has closed its own. */
static void watch(cgw__mock_stream_t *st)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(st->evcon);
    char c;
    ssize_t n = bev != NULL ? recv(bufferevent_getfd(bev), &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        st->cutting = true;
        do_cut(st);
        return;
    }
    arm(st, WATCH_MS);
}

static void finish(cgw__mock_stream_t *st)
{
    switch (st->plan->end) {
    case CGW_MOCK_END_FINISH: {
        struct evhttp_request *req = st->req;
        stream_detach(st);
        evhttp_send_reply_end(req);
        return;
    }
    case CGW_MOCK_END_HANG:
        /* Nothing more; the close callback (or server shutdown) frees the state. Before the
         * reply has started evhttp does not read the connection, so it would not notice the
         * client leaving: we look ourselves. */
        cgw__http_disable_timeouts(st->req);
        if (st->plan->before_headers) {
            st->watching = true;
            arm(st, WATCH_MS);
        }
        return;
    case CGW_MOCK_END_CUT:
        st->cutting = true;
        do_cut(st);
        return;
    }
}

/* Sends a delta frame with its CGW_MOCK_STAMP replaced by the time of this write. */
static void send_stamped(cgw__mock_stream_t *st, const cgw__mock_frame_t *f)
{
    size_t mlen = strlen(CGW_MOCK_STAMP), at = (size_t)f->stamp_at;
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%016" PRIu64, (uint64_t)(cgw__wall_time() * 1e6));
    cgw_buf_t b = CGW_BUF_INIT;
    if (cgw_buf_append(&b, f->bytes, at) == CGW_OK &&
        cgw_buf_append(&b, digits, (size_t)n) == CGW_OK &&
        cgw_buf_append(&b, f->bytes + at + mlen, f->len - at - mlen) == CGW_OK) {
        cgw__http_send_chunk(st->req, b.data, b.len);
    } else {
        cgw__http_send_chunk(st->req, f->bytes, f->len); /* out of memory: unstamped */
    }
    cgw_buf_free(&b);
}

static void step(cgw__mock_stream_t *st)
{
    while (st->pos < st->plan->nframes) {
        const cgw__mock_frame_t *f = &st->plan->frames[st->pos];
        if (f->delay_ms > 0 && !st->waited) {
            st->waited = true;
            arm(st, f->delay_ms);
            return;
        }
        if (f->stamp_at >= 0) {
            send_stamped(st, f);
        } else {
            cgw__http_send_chunk(st->req, f->bytes, f->len);
        }
        st->pos++;
        st->waited = false;
    }
    finish(st);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__mock_stream_t *st = arg;
    if (st->watching) {
        watch(st);
    } else if (st->cutting) {
        do_cut(st);
    } else {
        step(st);
    }
}

static void send_head(cgw__mock_stream_t *st)
{
    cgw__http_set_headers(st->req, st->plan->headers);
    cgw__http_sse_start(st->req, st->plan->status);
}

void cgw__mock_stream_start(cgw_mock_api_t *srv, struct evhttp_request *req, cgw__mock_plan_t *plan)
{
    cgw__mock_stream_t *st = cgw__calloc(1, sizeof(*st));
    struct event_base *base = cgw_ctx_base(srv->ctx);
    if (st == NULL || (st->timer = evtimer_new(base, on_timer, st)) == NULL) {
        cgw_free(st);
        cgw__mock_plan_free(plan);
        cgw__http_reply_error(req, 500, "api_error", "mock-api: out of memory", NULL);
        return;
    }
    st->srv = srv;
    st->req = req;
    st->evcon = evhttp_request_get_connection(req);
    st->plan = plan;
    st->next = srv->streams;
    if (srv->streams != NULL) {
        srv->streams->prev = st;
    }
    srv->streams = st;
    evhttp_connection_set_closecb(st->evcon, on_close, st);
    if (plan->before_headers) {
        cgw__http_disable_timeouts(req);
        /* Even a cut before the headers goes through the timer: freeing the connection from
         * inside evhttp's request callback is not allowed. */
        plan->nframes = 0;
        arm(st, 0);
        return;
    }
    send_head(st);
    step(st);
}

size_t cgw__mock_streams_count(const cgw_mock_api_t *srv)
{
    size_t n = 0;
    for (const cgw__mock_stream_t *st = srv->streams; st != NULL; st = st->next) {
        n++;
    }
    return n;
}

void cgw__mock_streams_free(cgw_mock_api_t *srv)
{
    while (srv->streams != NULL) {
        stream_detach(srv->streams);
    }
}
