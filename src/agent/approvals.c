/* cgw_approvals_t: a session's approved tool types and its approval requests in flight.
 *
 * Pending requests are kept in a list (a session rarely has more than a handful at once);
 * resolved ones are remembered in a ring of the last RESOLVED_MAX ids so that a late or
 * repeated answer gets a precise error (already answered vs expired vs unknown). */
#include <string.h>
#include <sys/random.h>

#include "agent/agent_int.h"
#include "core/alloc.h"
#include "core/ctx_int.h"

#define RESOLVED_MAX 1024u

typedef enum resolved_kind { RES_ANSWERED = 0, RES_EXPIRED, RES_DROPPED } resolved_kind_t;

struct cgw__approval {
    cgw_approvals_t *owner;
    cgw__approval_t *next;
    char *tool_call_id;
    char nonce[17];
    cgw__approval_cb cb;
    void *arg;
    struct event *timer;
    struct event *fire; /* delivers the outcome on the loop */
    cgw__approval_outcome_t outcome;
    bool allow_type;
    bool resolved;
};

typedef struct resolved {
    char *tool_call_id;
    resolved_kind_t kind;
} resolved_t;

struct cgw_approvals {
    cgw_ctx_t *ctx;
    json_t *allowed; /* object used as a set of tool names */
    cgw__approval_t *pending;
    size_t npending;
    resolved_t ring[RESOLVED_MAX];
    size_t ring_next;
};

int cgw_approvals_new(cgw_ctx_t *ctx, cgw_approvals_t **out)
{
    if (ctx == NULL || out == NULL) {
        return CGW_EINVAL;
    }
    cgw_approvals_t *a = cgw__calloc(1, sizeof(*a));
    if (a == NULL || (a->allowed = json_object()) == NULL) {
        cgw_free(a);
        return CGW_ENOMEM;
    }
    a->ctx = ctx;
    *out = a;
    return CGW_OK;
}

static void unlink_pending(cgw__approval_t *p)
{
    cgw_approvals_t *a = p->owner;
    for (cgw__approval_t **pp = &a->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            a->npending--;
            return;
        }
    }
}

static void remember(cgw_approvals_t *a, const char *id, resolved_kind_t kind)
{
    resolved_t *r = &a->ring[a->ring_next];
    cgw_free(r->tool_call_id);
    r->tool_call_id = cgw__strdup(id); /* on ENOMEM the id is simply forgotten (ENOENT later) */
    r->kind = kind;
    a->ring_next = (a->ring_next + 1) % RESOLVED_MAX;
}

static void approval_free(cgw__approval_t *p)
{
    if (p->timer != NULL) {
        event_free(p->timer);
    }
    if (p->fire != NULL) {
        event_free(p->fire);
    }
    cgw_free(p->tool_call_id);
    cgw_free(p);
}

static void fire_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__approval_t *p = arg;
    cgw__approval_cb cb = p->cb;
    void *cb_arg = p->arg;
    cgw__approval_outcome_t outcome = p->outcome;
    bool allow = p->allow_type;
    approval_free(p);
    cb(cb_arg, outcome, allow);
}

/* Moves a pending request to "resolved" and schedules its callback. */
static void resolve(cgw__approval_t *p, cgw__approval_outcome_t outcome, bool allow,
                    resolved_kind_t kind)
{
    p->resolved = true;
    p->outcome = outcome;
    p->allow_type = allow;
    unlink_pending(p);
    remember(p->owner, p->tool_call_id, kind);
    evtimer_del(p->timer);
    cgw__defer_fire(p->fire);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolve(arg, CGW__APPROVAL_TIMEOUT, false, RES_EXPIRED);
}

void cgw_approvals_free(cgw_approvals_t *a)
{
    if (a == NULL) {
        return;
    }
    /* Pending requests end as timeouts; their callbacks run from the loop later, so their
     * events must survive this object: they do (each owns its events), but `owner` must not be
     * used any more, which resolve() only does synchronously here. */
    while (a->pending != NULL) {
        resolve(a->pending, CGW__APPROVAL_TIMEOUT, false, RES_EXPIRED);
    }
    for (size_t i = 0; i < RESOLVED_MAX; i++) {
        cgw_free(a->ring[i].tool_call_id);
    }
    json_decref(a->allowed);
    cgw_free(a);
}

int cgw_approvals_allow(cgw_approvals_t *a, const char *tool_name)
{
    if (a == NULL || tool_name == NULL) {
        return CGW_EINVAL;
    }
    return json_object_set_new(a->allowed, tool_name, json_true()) == 0 ? CGW_OK : CGW_ENOMEM;
}

bool cgw_approvals_is_allowed(const cgw_approvals_t *a, const char *tool_name)
{
    return a != NULL && tool_name != NULL && json_object_get(a->allowed, tool_name) != NULL;
}

size_t cgw_approvals_pending_count(const cgw_approvals_t *a)
{
    return a == NULL ? 0 : a->npending;
}

static cgw__approval_t *find_pending(const cgw_approvals_t *a, const char *id)
{
    for (cgw__approval_t *p = a->pending; p != NULL; p = p->next) {
        if (strcmp(p->tool_call_id, id) == 0) {
            return p;
        }
    }
    return NULL;
}

/* The most recent resolution of `id`, or -1. */
static int find_resolved(const cgw_approvals_t *a, const char *id)
{
    for (size_t k = 1; k <= RESOLVED_MAX; k++) {
        const resolved_t *r = &a->ring[(a->ring_next + RESOLVED_MAX - k) % RESOLVED_MAX];
        if (r->tool_call_id != NULL && strcmp(r->tool_call_id, id) == 0) {
            return (int)r->kind;
        }
    }
    return -1;
}

int cgw_approvals_answer(cgw_approvals_t *a, const char *tool_call_id, const char *nonce,
                         bool approved, bool allow_tool_type)
{
    if (a == NULL || tool_call_id == NULL || nonce == NULL) {
        return CGW_EINVAL;
    }
    cgw__approval_t *p = find_pending(a, tool_call_id);
    if (p == NULL) {
        int kind = find_resolved(a, tool_call_id);
        return kind < 0 ? CGW_ENOENT : kind == RES_EXPIRED ? CGW_EEXPIRED : CGW_ESTATE;
    }
    if (strcmp(p->nonce, nonce) != 0) {
        return CGW_ESTATE;
    }
    resolve(p, approved ? CGW__APPROVAL_APPROVED : CGW__APPROVAL_DENIED,
            approved && allow_tool_type, RES_ANSWERED);
    return CGW_OK;
}

int cgw__approvals_add(cgw_approvals_t *a, const char *tool_call_id, const char *nonce,
                       uint32_t timeout_ms, cgw__approval_cb cb, void *arg, cgw__approval_t **out)
{
    if (find_pending(a, tool_call_id) != NULL) {
        return CGW_EEXIST;
    }
    cgw__approval_t *p = cgw__calloc(1, sizeof(*p));
    if (p == NULL) {
        return CGW_ENOMEM;
    }
    p->owner = a;
    p->cb = cb;
    p->arg = arg;
    snprintf(p->nonce, sizeof(p->nonce), "%s", nonce);
    p->tool_call_id = cgw__strdup(tool_call_id);
    p->timer = evtimer_new(cgw_ctx_base(a->ctx), timeout_cb, p);
    p->fire = cgw__defer_new(a->ctx, fire_cb, p);
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (p->tool_call_id == NULL || p->timer == NULL || p->fire == NULL ||
        evtimer_add(p->timer, &tv) != 0) {
        approval_free(p);
        return CGW_ENOMEM;
    }
    p->next = a->pending;
    a->pending = p;
    a->npending++;
    *out = p;
    return CGW_OK;
}

void cgw__approvals_drop(cgw__approval_t *p)
{
    if (p == NULL) {
        return;
    }
    if (p->resolved) {
        /* Outcome already scheduled: cancel the delivery. */
        approval_free(p);
        return;
    }
    unlink_pending(p);
    remember(p->owner, p->tool_call_id, RES_DROPPED);
    approval_free(p);
}

int cgw_approval_nonce(char out[17])
{
    unsigned char rnd[8];
    if (out == NULL) {
        return CGW_EINVAL;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        return CGW_EIO;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[16] = '\0';
    return CGW_OK;
}
