/*
 * curl multi-socket on libevent (see curl_multi.h for the contract).
 *
 * Re-entrancy is the delicate part. curl calls us (write, header, socket and timer callbacks)
 * from inside curl_multi_socket_action and curl_multi_add_handle, and it refuses
 * curl_multi_add_handle / curl_multi_remove_handle made from inside those callbacks. But our
 * users react to data by cancelling (freeing) transfers or starting new ones right there.
 * So while we are inside curl (`in_curl` > 0):
 *   - a freed running transfer is marked dead (its callbacks are no longer forwarded) and
 *     parked on `doomed`; it is removed and released as soon as curl returns;
 *   - a started transfer is parked on `pending` and handed to curl as soon as curl returns.
 * Completion (CURLMSG_DONE) is read after curl returns, so on_done always runs outside curl.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "cgw/error.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/curl_multi.h"

enum xfer_state { XFER_NEW, XFER_PENDING, XFER_RUNNING, XFER_DONE };

struct sockw {
    struct event *ev;
    struct sockw *prev, *next;
};

typedef struct cgw_curlm {
    cgw_ctx_t *ctx;
    CURLM *multi;
    struct event *timer;
    int in_curl;
    size_t active;        /* transfers handed to curl and not yet done */
    cgw__xfer_t *doomed;  /* freed while inside curl: remove + release after */
    cgw__xfer_t *pending; /* started while inside curl: add after */
    struct sockw *socks;  /* every watched socket, so teardown can release them */
} cgw_curlm_t;

struct cgw__xfer {
    cgw_curlm_t *m;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    cgw__xfer_cbs_t cbs;
    void *user;
    enum xfer_state state;
    int dead;
    cgw__xfer_t *next; /* on m->doomed or m->pending */
    char errbuf[CURL_ERROR_SIZE];
};

static void drive(cgw_curlm_t *m, curl_socket_t fd, int flags);

/* ---- sockets and the timer: curl -> libevent ---------------------------------------------- */

static void sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
    int flags =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    drive(arg, fd, flags);
}

static void timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_release(cgw_curlm_t *m, struct sockw *w)
{
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        m->socks = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    if (w->ev != NULL) {
        event_free(w->ev);
    }
    cgw_free(w);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
    (void)easy;
    cgw_curlm_t *m = arg;
    struct sockw *w = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (w != NULL) {
            sock_release(m, w);
            curl_multi_assign(m->multi, s, NULL);
        }
        return 0;
    }
    if (w == NULL) {
        w = cgw__calloc(1, sizeof(*w));
        if (w == NULL) {
            return -1; /* curl fails the transfers on this socket */
        }
        w->next = m->socks;
        if (m->socks != NULL) {
            m->socks->prev = w;
        }
        m->socks = w;
        curl_multi_assign(m->multi, s, w);
    } else if (w->ev != NULL) {
        event_free(w->ev);
        w->ev = NULL;
    }
    short kind = (short)(EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    w->ev = event_new(cgw_ctx_base(m->ctx), s, kind, sock_event_cb, m);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
        return -1;
    }
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    (void)multi;
    cgw_curlm_t *m = arg;
    if (timeout_ms < 0) {
        evtimer_del(m->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    return evtimer_add(m->timer, &tv) == 0 ? 0 : -1;
}

/* ---- driving curl --------------------------------------------------------------------------- */

static void xfer_release(cgw__xfer_t *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    cgw_free(x->body);
    cgw_free(x);
}

static CURLMcode hand_to_curl(cgw_curlm_t *m, cgw__xfer_t *x)
{
    m->in_curl++;
    CURLMcode rc = curl_multi_add_handle(m->multi, x->easy);
    m->in_curl--;
    if (rc != CURLM_OK) {
        x->state = XFER_DONE;
        snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_multi_strerror(rc));
        return rc;
    }
    x->state = XFER_RUNNING;
    m->active++;
    return CURLM_OK;
}

/* Work deferred while curl was on the stack. */
static void after_curl(cgw_curlm_t *m)
{
    while (m->doomed != NULL) {
        cgw__xfer_t *x = m->doomed;
        m->doomed = x->next;
        curl_multi_remove_handle(m->multi, x->easy);
        m->active--;
        xfer_release(x);
    }
    while (m->pending != NULL) {
        cgw__xfer_t *x = m->pending;
        m->pending = x->next;
        if (hand_to_curl(m, x) != CURLM_OK) {
            /* cgw__xfer_start already said yes, so the failure goes through on_done. */
            x->cbs.on_done(x, CURLE_FAILED_INIT, x->user);
        }
    }
}

static void reap_done(cgw_curlm_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        cgw__xfer_t *x = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        /* Remove first (msg dies with it) so on_done may free or reuse the transfer. */
        curl_multi_remove_handle(m->multi, easy);
        m->active--;
        x->state = XFER_DONE;
        x->cbs.on_done(x, result, x->user);
        after_curl(m);
    }
}

static void drive(cgw_curlm_t *m, curl_socket_t fd, int flags)
{
    int running = 0;
    m->in_curl++;
    curl_multi_socket_action(m->multi, fd, flags, &running);
    m->in_curl--;
    after_curl(m);
    reap_done(m);
}

/* ---- the per-context multi handle ----------------------------------------------------------- */

static void curlm_destroy(void *arg)
{
    cgw_curlm_t *m = arg;
    if (m->active > 0) {
        CGW_WARN(m->ctx, "http", "%zu transfer(s) still running when the context was freed",
                 m->active);
    }
    curl_multi_cleanup(m->multi);
    while (m->socks != NULL) {
        sock_release(m, m->socks);
    }
    event_free(m->timer);
    *cgw__ctx_slot(m->ctx, CGW_CTX_SLOT_CURLM) = NULL;
    cgw_free(m);
}

static cgw_curlm_t *curlm_get(cgw_ctx_t *ctx)
{
    void **slot = cgw__ctx_slot(ctx, CGW_CTX_SLOT_CURLM);
    if (*slot != NULL) {
        return *slot;
    }
    cgw_curlm_t *m = cgw__calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->ctx = ctx;
    m->multi = curl_multi_init();
    m->timer = evtimer_new(cgw_ctx_base(ctx), timer_event_cb, m);
    if (m->multi == NULL || m->timer == NULL || cgw__ctx_at_free(ctx, curlm_destroy, m) != CGW_OK) {
        if (m->multi != NULL) {
            curl_multi_cleanup(m->multi);
        }
        if (m->timer != NULL) {
            event_free(m->timer);
        }
        cgw_free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    *slot = m;
    return m;
}

size_t cgw__curlm_active(cgw_ctx_t *ctx)
{
    cgw_curlm_t *m = *cgw__ctx_slot(ctx, CGW_CTX_SLOT_CURLM);
    return m != NULL ? m->active : 0;
}

/* ---- transfers ------------------------------------------------------------------------------ */

static size_t write_tramp(char *data, size_t size, size_t n, void *arg)
{
    cgw__xfer_t *x = arg;
    size_t len = size * n;
    if (x->dead) {
        return 0;
    }
    if (x->cbs.on_data != NULL && x->cbs.on_data(data, len, x->user) != 0) {
        return 0;
    }
    return len;
}

static size_t header_tramp(char *data, size_t size, size_t n, void *arg)
{
    cgw__xfer_t *x = arg;
    size_t len = size * n;
    if (x->dead) {
        return 0;
    }
    if (x->cbs.on_header != NULL && x->cbs.on_header(data, len, x->user) != 0) {
        return 0;
    }
    return len;
}

int cgw__xfer_new(cgw_ctx_t *ctx, const cgw__xfer_cbs_t *cbs, void *user, cgw__xfer_t **out)
{
    *out = NULL;
    if (cbs == NULL || cbs->on_done == NULL) {
        return CGW_EINVAL;
    }
    cgw_curlm_t *m = curlm_get(ctx);
    if (m == NULL) {
        return CGW_ENOMEM;
    }
    cgw__xfer_t *x = cgw__calloc(1, sizeof(*x));
    if (x == NULL) {
        return CGW_ENOMEM;
    }
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        cgw_free(x);
        return CGW_EIO;
    }
    x->m = m;
    x->cbs = *cbs;
    x->user = user;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, write_tramp);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, header_tramp);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    *out = x;
    return CGW_OK;
}

CURL *cgw__xfer_easy(cgw__xfer_t *x)
{
    return x->easy;
}

const char *cgw__xfer_errmsg(cgw__xfer_t *x)
{
    return x->errbuf;
}

int cgw__xfer_add_header(cgw__xfer_t *x, const char *line)
{
    if (x->state != XFER_NEW) {
        return CGW_ESTATE;
    }
    struct curl_slist *l = curl_slist_append(x->headers, line);
    if (l == NULL) {
        return CGW_ENOMEM;
    }
    x->headers = l;
    return CGW_OK;
}

int cgw__xfer_set_body_take(cgw__xfer_t *x, char *body, size_t len)
{
    if (x->state != XFER_NEW) {
        cgw_free(body);
        return CGW_ESTATE;
    }
    cgw_free(x->body);
    x->body = body;
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, body);
    return CGW_OK;
}

int cgw__xfer_start(cgw__xfer_t *x)
{
    if (x->state != XFER_NEW) {
        return CGW_ESTATE;
    }
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    if (x->m->in_curl > 0) {
        x->state = XFER_PENDING;
        x->next = x->m->pending;
        x->m->pending = x;
        return CGW_OK;
    }
    return hand_to_curl(x->m, x) == CURLM_OK ? CGW_OK : CGW_EIO;
}

static void unlink_pending(cgw_curlm_t *m, cgw__xfer_t *x)
{
    for (cgw__xfer_t **p = &m->pending; *p != NULL; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            return;
        }
    }
}

void cgw__xfer_free(cgw__xfer_t *x)
{
    if (x == NULL || x->dead) {
        return;
    }
    cgw_curlm_t *m = x->m;
    if (x->state == XFER_PENDING) {
        unlink_pending(m, x);
    } else if (x->state == XFER_RUNNING) {
        if (m->in_curl > 0) {
            x->dead = 1;
            x->next = m->doomed;
            m->doomed = x;
            return;
        }
        curl_multi_remove_handle(m->multi, x->easy);
        m->active--;
    }
    xfer_release(x);
}

long cgw__xfer_status(cgw__xfer_t *x)
{
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}
