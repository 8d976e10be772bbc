/*
 * cgw_anthropic_call_t: one streamed POST /v1/messages with retries.
 *
 * Per attempt: a transfer on the context's curl multi (core/curl_multi.h); response headers
 * are scanned for status, request-id, retry-after(-ms) and x-should-retry; a 200 body goes
 * through the SSE parser into the message accumulator, whose increments are forwarded to
 * on_event as they arrive; any other body is collected (bounded) and read as an API error.
 * Every way an attempt can end (HTTP error, `error` event, cut stream, transport failure,
 * stall) funnels into attempt_failed(), which either schedules the next attempt (telling
 * on_retry first) or ends the call with one error. The turn timer ends the call outright.
 *
 * Callbacks may free the call. `depth` counts user code on the stack; a free that happens
 * there only marks the call (`freed`), nothing more is forwarded, and whoever is outermost
 * destroys it when the stack unwinds (leave()).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "cgw/anthropic.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/curl_multi.h"
#include "core/json.h"
#include "llm/llm_int.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"

#define ERROR_BODY_MAX (64 * 1024)

_Static_assert((int)CGW_LLM_UNKNOWN == (int)CGW_MSG_EV_UNKNOWN, "event kinds must line up");

struct cgw_anthropic_call {
    cgw_anthropic_t *client;
    cgw_ctx_t *ctx;
    cgw_anthropic_callbacks_t cbs;
    void *user;
    char *body;
    size_t body_len;
    cgw__xfer_t *xfer;
    cgw_sse_parser_t *sse;
    cgw_msg_accum_t *acc;
    struct event *stall_timer, *turn_timer, *retry_timer;
    int attempt;
    int depth;
    bool freed;
    bool done;
    bool lenient_input;
    uint64_t rng;
    /* per attempt */
    long status;
    bool forwarded;
    bool failed; /* `fail` holds why the stream was aborted */
    int should_retry;
    char retry_after[64];
    char retry_after_ms[64];
    char request_id[128];
    char content_type[64];
    cgw_buf_t errbody;
    cgw_error_t fail;
};

static void destroy(cgw_anthropic_call_t *c);
static int start_attempt(cgw_anthropic_call_t *c);

/* ---- bookkeeping ---------------------------------------------------------------------------- */

static void enter(cgw_anthropic_call_t *c)
{
    c->depth++;
}

/* True when the call was freed meanwhile and is now gone: the caller must return at once. */
static bool leave(cgw_anthropic_call_t *c)
{
    if (--c->depth == 0 && c->freed) {
        destroy(c);
        return true;
    }
    return false;
}

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

static void drop_transfer(cgw_anthropic_call_t *c)
{
    cgw__xfer_free(c->xfer);
    c->xfer = NULL;
    evtimer_del(c->stall_timer);
}

static double next_random(cgw_anthropic_call_t *c)
{
    /* xorshift64*: jitter only, no need for quality beyond "not in lockstep". */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- the end of a call ---------------------------------------------------------------------- */

static void finish(cgw_anthropic_call_t *c, cgw_llm_result_t *res)
{
    c->done = true;
    drop_transfer(c);
    evtimer_del(c->turn_timer);
    evtimer_del(c->retry_timer);
    res->attempts = c->attempt + 1;
    res->request_id = c->request_id[0] ? c->request_id : NULL;
    enter(c);
    c->cbs.on_done(res, c->user);
    leave(c);
}

/* Error text can quote what a server sent back; make sure no registered secret rides along. */
static void scrub(cgw_anthropic_call_t *c, cgw_error_t *e)
{
    char clean[sizeof(e->message)];
    cgw_ctx_redact(c->ctx, e->message, clean, sizeof(clean));
    memcpy(e->message, clean, sizeof(clean));
}

static void finish_error(cgw_anthropic_call_t *c, cgw_error_t *e)
{
    scrub(c, e);
    cgw_llm_result_t res = {.code = e->code, .error = e};
    CGW_WARN(c->ctx, "llm", "call failed: %s (%s, HTTP %d, request %s)", e->message,
             cgw_err_name(e->code), e->http_status, e->request_id[0] ? e->request_id : "-");
    finish(c, &res);
}

static void finish_ok(cgw_anthropic_call_t *c)
{
    const json_t *msg = cgw_msg_accum_message(c->acc);
    cgw_llm_result_t res = {
        .code = CGW_OK,
        .message = msg,
        .usage = cgw_msg_accum_usage(c->acc),
        .stop_reason = cgw_msg_accum_stop_reason(c->acc),
    };
    CGW_DEBUG(c->ctx, "llm", "call done after %d attempt(s), stop_reason %s", c->attempt + 1,
              res.stop_reason ? res.stop_reason : "-");
    finish(c, &res);
}

/* ---- retry decision ------------------------------------------------------------------------- */

static void attempt_failed(cgw_anthropic_call_t *c, cgw_error_t *e, bool retryable,
                           int64_t server_wait_ms)
{
    scrub(c, e);
    if (e->request_id[0] == '\0' && c->request_id[0] != '\0') {
        snprintf(e->request_id, sizeof(e->request_id), "%s", c->request_id);
    }
    if (!retryable || c->attempt >= c->client->max_retries) {
        if (retryable && c->attempt > 0) {
            char why[sizeof(e->message)];
            snprintf(why, sizeof(why), "%s", e->message);
            cgw_error_set(e, CGW_ERETRIES, "gave up after %d attempts: %s", c->attempt + 1, why);
        }
        finish_error(c, e);
        return;
    }
    int64_t delay =
        server_wait_ms >= 0 ? server_wait_ms : cgw_anthropic_backoff_ms(c->attempt, next_random(c));
    cgw_llm_retry_t info = {c->attempt, e, c->forwarded, delay};
    CGW_WARN(c->ctx, "llm", "attempt %d failed (%s); retrying in %lld ms", c->attempt + 1,
             e->message, (long long)delay);
    if (c->cbs.on_retry != NULL) {
        enter(c);
        c->cbs.on_retry(&info, c->user);
        if (leave(c) || c->freed) {
            return;
        }
    }
    c->attempt++;
    arm(c->retry_timer, delay);
}

static void retry_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_anthropic_call_t *c = arg;
    int rc = start_attempt(c);
    if (rc != CGW_OK) {
        cgw_error_t e;
        cgw_error_clear(&e);
        cgw_error_set(&e, rc, "could not start attempt %d: %s", c->attempt + 1, cgw_strerror(rc));
        finish_error(c, &e);
    }
}

static void stall_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_anthropic_call_t *c = arg;
    cgw_error_t e;
    cgw_error_clear(&e);
    e.http_status = (int)c->status;
    cgw_error_set(&e, CGW_ESTALL, "stream stalled: no data for %d ms", c->client->stall_timeout_ms);
    drop_transfer(c);
    attempt_failed(c, &e, true, -1);
}

static void turn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_anthropic_call_t *c = arg;
    cgw_error_t e;
    cgw_error_clear(&e);
    e.http_status = (int)c->status;
    cgw_error_set(&e, CGW_ETIMEDOUT, "turn timed out after %d ms", c->client->turn_timeout_ms);
    finish_error(c, &e);
}

/* ---- reading the response ------------------------------------------------------------------- */

static void copy_trimmed(char *dst, size_t cap, const char *v, size_t n)
{
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) {
        n--;
    }
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
}

static int on_header(const char *line, size_t len, void *user)
{
    cgw_anthropic_call_t *c = user;
    if (c->client->stall_timeout_ms > 0) {
        arm(c->stall_timer, c->client->stall_timeout_ms);
    }
    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue, say) starts the header set over. */
        c->status = 0;
        c->should_retry = -1;
        c->retry_after[0] = c->retry_after_ms[0] = c->request_id[0] = '\0';
        c->content_type[0] = '\0';
        return 0;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL) {
        return 0;
    }
    size_t n = (size_t)(colon - line);
    const char *v = colon + 1;
    while (v < line + len && *v == ' ') {
        v++;
    }
    size_t vn = (size_t)(line + len - v);
    if (n == 10 && strncasecmp(line, "request-id", n) == 0) {
        copy_trimmed(c->request_id, sizeof(c->request_id), v, vn);
    } else if (n == 11 && strncasecmp(line, "retry-after", n) == 0) {
        copy_trimmed(c->retry_after, sizeof(c->retry_after), v, vn);
    } else if (n == 14 && strncasecmp(line, "retry-after-ms", n) == 0) {
        copy_trimmed(c->retry_after_ms, sizeof(c->retry_after_ms), v, vn);
    } else if (n == 12 && strncasecmp(line, "content-type", n) == 0) {
        copy_trimmed(c->content_type, sizeof(c->content_type), v, vn);
    } else if (n == 14 && strncasecmp(line, "x-should-retry", n) == 0) {
        c->should_retry = vn >= 4 && strncasecmp(v, "true", 4) == 0    ? 1
                          : vn >= 5 && strncasecmp(v, "false", 5) == 0 ? 0
                                                                       : -1;
    }
    return 0;
}

static bool is_content(cgw_msg_ev_kind_t k)
{
    return k != CGW_MSG_EV_MESSAGE_START && k != CGW_MSG_EV_MESSAGE_DELTA &&
           k != CGW_MSG_EV_MESSAGE_STOP && k != CGW_MSG_EV_UNKNOWN;
}

static int accum_cb(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err)
{
    (void)err;
    cgw_anthropic_call_t *c = user;
    if (c->freed) {
        return CGW_ECANCELED;
    }
    if (is_content(ev->kind)) {
        c->forwarded = true;
    }
    if (c->cbs.on_event != NULL) {
        cgw_llm_event_t e = {
            .kind = (cgw_llm_event_kind_t)ev->kind,
            .attempt = c->attempt,
            .index = ev->index,
            .block_type = ev->block_type,
            .text = ev->text,
            .block = ev->block,
            .raw = ev->raw,
            .name = ev->name,
        };
        c->cbs.on_event(&e, c->user);
    }
    return c->freed ? CGW_ECANCELED : CGW_OK;
}

/* Records why the stream is being aborted; the transfer's on_done picks it up. */
static void record_stream_failure(cgw_anthropic_call_t *c, int rc, const cgw_error_t *e)
{
    c->failed = true;
    c->fail = *e;
    c->fail.code = rc;
    c->fail.http_status = (int)c->status;
    if (rc == CGW_EAPI) {
        char msg[sizeof(c->fail.message)];
        snprintf(msg, sizeof(msg), "%s", e->message);
        cgw_error_set(&c->fail, rc, "error event in the stream: %s: %s",
                      e->type[0] ? e->type : "error", msg);
    }
}

static int on_data(const char *data, size_t len, void *user)
{
    cgw_anthropic_call_t *c = user;
    if (c->client->stall_timeout_ms > 0) {
        arm(c->stall_timer, c->client->stall_timeout_ms);
    }
    if (c->status == 0) {
        c->status = cgw__xfer_status(c->xfer);
    }
    if (c->status != 200) {
        size_t room = ERROR_BODY_MAX - c->errbody.len;
        cgw_buf_append(&c->errbody, data, len < room ? len : room);
        return 0;
    }
    cgw_error_t e;
    cgw_error_clear(&e);
    if (c->content_type[0] != '\0' && strncasecmp(c->content_type, "text/event-stream", 17) != 0) {
        /* A proxy that ignored stream:true, or something that is not the API at all. */
        cgw_error_set(&e, CGW_EPROTO, "expected an event stream, got content-type %s",
                      c->content_type);
        record_stream_failure(c, CGW_EPROTO, &e);
        return 1;
    }
    enter(c);
    int rc = cgw_sse_parser_feed(c->sse, data, len, &e);
    if (leave(c)) {
        return 1;
    }
    if (rc == CGW_OK) {
        return 0;
    }
    if (!c->freed) {
        record_stream_failure(c, rc, &e);
    }
    return 1;
}

/* Fills `e` from a non-200 response: the API's error body when there is one. */
static void http_error(cgw_anthropic_call_t *c, cgw_error_t *e)
{
    json_t *body = NULL;
    e->http_status = (int)c->status;
    const json_t *err = NULL;
    if (cgw_json_parse(c->errbody.data ? c->errbody.data : "", c->errbody.len, &body, NULL) ==
        CGW_OK) {
        err = json_object_get(body, "error");
    }
    if (json_is_object(err)) {
        snprintf(e->type, sizeof(e->type), "%s", cgw_json_str(err, "type", ""));
        snprintf(e->request_id, sizeof(e->request_id), "%s", cgw_json_str(body, "request_id", ""));
        cgw_error_set(e, CGW_EAPI, "HTTP %ld %s: %s", c->status, e->type,
                      cgw_json_str(err, "message", ""));
    } else {
        cgw_buf_t clip = CGW_BUF_INIT;
        for (size_t i = 0; i < c->errbody.len && i < 200; i++) {
            char ch = c->errbody.data[i];
            cgw_buf_append_char(&clip, (ch >= 0x20 && ch < 0x7f) ? ch : ' ');
        }
        cgw_error_set(e, CGW_EHTTP, "HTTP %ld: %s", c->status, clip.data ? clip.data : "");
        cgw_buf_free(&clip);
    }
    json_decref(body);
}

static int transport_code(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return CGW_ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return CGW_ETIMEDOUT;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return CGW_ECONNRESET;
    default:
        return CGW_EIO;
    }
}

/* A 200 transfer that completed: flush the parser and see whether the message is whole. */
static void stream_ended(cgw_anthropic_call_t *c)
{
    cgw_error_t e;
    cgw_error_clear(&e);
    enter(c);
    int rc = cgw_sse_parser_finish(c->sse, &e);
    if (rc == CGW_OK) {
        rc = cgw_msg_accum_finish(c->acc, &e);
    }
    if (leave(c) || c->freed) {
        return;
    }
    if (rc == CGW_OK) {
        finish_ok(c);
        return;
    }
    record_stream_failure(c, rc, &e);
    e = c->fail;
    bool retryable = rc == CGW_ETRUNCATED || (rc == CGW_EAPI && cgw__retry_event_type(e.type));
    if (rc == CGW_ETRUNCATED) {
        cgw_error_set(&e, rc, "the stream ended before message_stop");
    }
    attempt_failed(c, &e, retryable, -1);
}

static void on_xfer_done(cgw__xfer_t *x, CURLcode result, void *user)
{
    cgw_anthropic_call_t *c = user;
    if (c->status == 0) {
        c->status = cgw__xfer_status(x);
    }
    char curl_msg[CURL_ERROR_SIZE];
    snprintf(curl_msg, sizeof(curl_msg), "%s",
             cgw__xfer_errmsg(x)[0] ? cgw__xfer_errmsg(x) : curl_easy_strerror(result));
    drop_transfer(c);
    cgw_error_t e;
    cgw_error_clear(&e);
    if (c->failed) {
        e = c->fail;
        attempt_failed(c, &e, e.code == CGW_EAPI && cgw__retry_event_type(e.type), -1);
    } else if (result == CURLE_OK && c->status == 200) {
        stream_ended(c);
    } else if (result == CURLE_OK && c->status != 0) {
        http_error(c, &e);
        int64_t wait = cgw_anthropic_retry_after_ms(c->retry_after_ms[0] ? c->retry_after_ms : NULL,
                                                    c->retry_after[0] ? c->retry_after : NULL,
                                                    (int64_t)time(NULL));
        attempt_failed(c, &e, cgw__retry_status(c->status, c->should_retry), wait);
    } else {
        e.http_status = (int)c->status;
        cgw_error_set(&e, transport_code(result), "%s: %s",
                      c->status == 200 ? "connection lost mid-stream" : "request failed", curl_msg);
        attempt_failed(c, &e, true, -1);
    }
}

/* ---- attempts ------------------------------------------------------------------------------- */

static int add_headers(cgw_anthropic_call_t *c, cgw__xfer_t *x)
{
    const cgw_anthropic_t *cl = c->client;
    char beta[1024 + 32];
    int rc = cgw__xfer_add_header(x, "content-type: application/json");
    rc = rc ? rc : cgw__xfer_add_header(x, "accept: text/event-stream");
    rc = rc ? rc : cgw__xfer_add_header(x, "anthropic-version: " CGW_ANTHROPIC_VERSION);
    rc = rc ? rc : cgw__xfer_add_header(x, "user-agent: claude-gateway/" CGW_VERSION_STRING);
    rc = rc ? rc : cgw__xfer_add_header(x, "expect:"); /* no 100-continue round trip */
    rc = rc ? rc : cgw__xfer_add_header(x, cl->auth_line);
    if (rc == CGW_OK && cl->beta != NULL) {
        if (strlen(cl->beta) > 1024) {
            return CGW_E2BIG;
        }
        snprintf(beta, sizeof(beta), "anthropic-beta: %s", cl->beta);
        rc = cgw__xfer_add_header(x, beta);
    }
    for (size_t i = 0; rc == CGW_OK && i < cl->nheaders; i++) {
        rc = cgw__xfer_add_header(x, cl->headers[i]);
    }
    return rc;
}

static void reset_attempt(cgw_anthropic_call_t *c)
{
    c->status = 0;
    c->forwarded = false;
    c->failed = false;
    c->should_retry = -1;
    c->retry_after[0] = c->retry_after_ms[0] = c->request_id[0] = '\0';
    c->content_type[0] = '\0';
    cgw_buf_reset(&c->errbody);
    cgw_error_clear(&c->fail);
    cgw_sse_parser_reset(c->sse);
    cgw_msg_accum_reset(c->acc);
}

static int start_attempt(cgw_anthropic_call_t *c)
{
    static const cgw__xfer_cbs_t cbs = {on_header, on_data, on_xfer_done};
    reset_attempt(c);
    cgw__xfer_t *x = NULL;
    int rc = cgw__xfer_new(c->ctx, &cbs, c, &x);
    if (rc != CGW_OK) {
        return rc;
    }
    CURL *easy = cgw__xfer_easy(x);
    curl_easy_setopt(easy, CURLOPT_URL, c->client->url);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)c->client->connect_timeout_ms);
    /* HTTP/2 over TLS when offered; calls started together wait for one connection and
     * multiplex on it instead of each opening its own. */
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
    rc = add_headers(c, x);
    char *body = rc == CGW_OK ? cgw__memdup(c->body, c->body_len) : NULL;
    if (rc == CGW_OK && body == NULL) {
        rc = CGW_ENOMEM;
    }
    rc = rc ? rc : cgw__xfer_set_body_take(x, body, c->body_len);
    rc = rc ? rc : cgw__xfer_start(x);
    if (rc != CGW_OK) {
        cgw__xfer_free(x);
        return rc;
    }
    c->xfer = x;
    if (c->client->stall_timeout_ms > 0) {
        arm(c->stall_timer, c->client->stall_timeout_ms);
    }
    CGW_DEBUG(c->ctx, "llm", "POST %s attempt %d (%zu bytes)", c->client->url, c->attempt + 1,
              c->body_len);
    return CGW_OK;
}

/* ---- public --------------------------------------------------------------------------------- */

static int make_parsers(cgw_anthropic_call_t *c)
{
    cgw_msg_accum_options_t ao;
    cgw_msg_accum_options_init(&ao);
    ao.on_event = accum_cb;
    ao.user = c;
    ao.lenient_tool_input = c->lenient_input;
    int rc = cgw_msg_accum_new(&ao, &c->acc);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_sse_parser_options_t so;
    cgw_sse_parser_options_init(&so);
    so.on_event = cgw_msg_accum_sse_cb;
    so.user = c->acc;
    return cgw_sse_parser_new(&so, &c->sse);
}

static int make_timers(cgw_anthropic_call_t *c)
{
    struct event_base *base = cgw_ctx_base(c->ctx);
    c->stall_timer = evtimer_new(base, stall_timer_cb, c);
    c->turn_timer = evtimer_new(base, turn_timer_cb, c);
    c->retry_timer = evtimer_new(base, retry_timer_cb, c);
    return c->stall_timer && c->turn_timer && c->retry_timer ? CGW_OK : CGW_ENOMEM;
}

int cgw_anthropic_call_start(cgw_anthropic_t *client, const cgw_anthropic_request_t *req,
                             const cgw_anthropic_callbacks_t *cbs, void *user,
                             cgw_anthropic_call_t **out, cgw_error_t *err)
{
    if (client == NULL || req == NULL || cbs == NULL || cbs->on_done == NULL || out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "call_start needs a client, request, on_done");
    }
    *out = NULL;
    cgw_anthropic_call_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    c->client = client;
    c->ctx = client->ctx;
    c->cbs = *cbs;
    c->user = user;
    c->errbody.limit = ERROR_BODY_MAX + 1;
    c->lenient_input = req->lenient_tool_input;
    c->rng = (cgw__now_ms() ^ (uint64_t)(uintptr_t)c) | 1u;
    int rc = cgw_anthropic_build_body(client, req, &c->body, &c->body_len, err);
    if (rc == CGW_OK) {
        rc = make_parsers(c);
        rc = rc ? rc : make_timers(c);
        rc = rc ? rc : start_attempt(c);
        if (rc != CGW_OK) {
            cgw_error_set(err, rc, "could not start the call: %s", cgw_strerror(rc));
        }
    }
    if (rc != CGW_OK) {
        destroy(c);
        return rc;
    }
    if (client->turn_timeout_ms > 0) {
        arm(c->turn_timer, client->turn_timeout_ms);
    }
    *out = c;
    return CGW_OK;
}

static void destroy(cgw_anthropic_call_t *c)
{
    cgw__xfer_free(c->xfer);
    if (c->stall_timer != NULL) {
        event_free(c->stall_timer);
    }
    if (c->turn_timer != NULL) {
        event_free(c->turn_timer);
    }
    if (c->retry_timer != NULL) {
        event_free(c->retry_timer);
    }
    cgw_sse_parser_free(c->sse);
    cgw_msg_accum_free(c->acc);
    cgw_buf_free(&c->errbody);
    cgw_free(c->body);
    cgw_free(c);
}

void cgw_anthropic_call_free(cgw_anthropic_call_t *c)
{
    if (c == NULL || c->freed) {
        return;
    }
    c->freed = true;
    if (c->depth > 0) {
        /* User code is on the stack; the outermost leave() finishes the job. Stop the
         * transfer and timers now so nothing else fires meanwhile. */
        drop_transfer(c);
        evtimer_del(c->turn_timer);
        evtimer_del(c->retry_timer);
        return;
    }
    destroy(c);
}
