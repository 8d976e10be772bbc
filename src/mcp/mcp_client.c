/*
 * One MCP session; see mcp_client.h for the protocol notes.
 *
 * Structure: requests we sent live in a doubly linked list (few are in flight at once, so a
 * list beats a hash table here); answers from the server to requests it sent us
 * (sampling/elicitation handed to the application) live in another list, so an answer the
 * application gives after the session died is dropped instead of touching freed memory.
 *
 * Re-entrancy: every entry point from the loop (transport callbacks, timers) runs between
 * enter() and leave(); cgw__mcp_client_free called from inside one of our callbacks only
 * marks the client and the real free happens when the outermost entry point unwinds.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "mcp/mcp_client.h"
#include "proto/jsonrpc.h"

#define LIST_DELAY_DEFAULT_MS 20
#define MAX_TOOL_PAGES 1000

const char *const cgw__mcp_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05",
                                         NULL};

enum cstate { C_INIT, C_LISTING, C_READY, C_DONE };

struct cgw__mcp_req {
    cgw__mcp_client_t *c;
    json_int_t id;
    char *method;
    cgw__mcp_reply_cb reply;
    void *user;
    cgw_mcp_progress_cb progress;
    void *progress_user;
    struct event *timer;
    uint32_t timeout_ms;
    uint64_t hard_deadline_ms;
    cgw__mcp_req_t *prev, *next;
};

struct cgw_mcp_reply {
    cgw__mcp_client_t *c; /* NULL once the session is gone */
    json_t *id;
    cgw_mcp_reply_t *prev, *next;
};

struct cgw__mcp_client {
    cgw_ctx_t *ctx;
    char *name;
    cgw__mcp_transport_t *tr;
    cgw__mcp_client_cbs_t cbs;
    json_int_t next_id;
    cgw__mcp_req_t *reqs;
    cgw_mcp_reply_t *replies;
    enum cstate state;
    int ready_reported;
    int closed;
    json_t *tools; /* last complete list */
    json_t *pages; /* list being assembled */
    int n_pages;
    int listing; /* a tools/list is in flight */
    int relist;  /* list_changed arrived meanwhile */
    struct event *relist_timer;
    uint32_t list_delay_ms;
    uint32_t startup_timeout_ms;
    char version[32];
    json_t *roots; /* {"roots":[...]} ready to send */
    cgw_mcp_request_handler_cb sampling, elicitation;
    void *handler_user;
    cgw_buf_t out;
    int depth;
    int doomed; /* free requested from inside a callback */
    int doomed_detach;
};

static void really_free(cgw__mcp_client_t *c);
static void list_tools(cgw__mcp_client_t *c, const char *cursor);

/* ---- re-entrancy ----------------------------------------------------------------------- */

static void enter(cgw__mcp_client_t *c)
{
    c->depth++;
}

static int leave(cgw__mcp_client_t *c)
{
    if (--c->depth == 0 && c->doomed) {
        really_free(c);
        return 1;
    }
    return 0;
}

/* ---- sending --------------------------------------------------------------------------- */

static int send_buf(cgw__mcp_client_t *c)
{
    int rc = c->tr != NULL ? c->tr->vt->send(c->tr, c->out.data, c->out.len) : CGW_ECLOSED;
    cgw_buf_reset(&c->out);
    return rc;
}

static int notify(cgw__mcp_client_t *c, const char *method, const json_t *params)
{
    int rc = cgw__rpc_write_notification(&c->out, method, params);
    return rc == CGW_OK ? send_buf(c) : rc;
}

static void answer_result(cgw__mcp_client_t *c, const json_t *id, const json_t *result)
{
    if (cgw__rpc_write_result(&c->out, id, result) == CGW_OK) {
        send_buf(c);
    }
    cgw_buf_reset(&c->out);
}

static void answer_error(cgw__mcp_client_t *c, const json_t *id, json_int_t code, const char *msg)
{
    if (cgw__rpc_write_error(&c->out, id, code, msg) == CGW_OK) {
        send_buf(c);
    }
    cgw_buf_reset(&c->out);
}

/* ---- requests -------------------------------------------------------------------------- */

static void unlink_req(cgw__mcp_client_t *c, cgw__mcp_req_t *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        c->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

static void free_req(cgw__mcp_req_t *r)
{
    if (r->timer != NULL) {
        event_free(r->timer);
    }
    cgw_free(r->method);
    cgw_free(r);
}

/* Completes `r`: removes it, runs its callback, frees it. */
static void complete(cgw__mcp_req_t *r, int rc, const json_t *result, const json_t *rpc_error,
                     const char *detail)
{
    unlink_req(r->c, r);
    if (r->reply != NULL) {
        r->reply(r->user, rc, result, rpc_error, detail);
    }
    free_req(r);
}

static cgw__mcp_req_t *find_req(cgw__mcp_client_t *c, json_int_t id)
{
    for (cgw__mcp_req_t *r = c->reqs; r != NULL; r = r->next) {
        if (r->id == id) {
            return r;
        }
    }
    return NULL;
}

static void send_cancelled(cgw__mcp_client_t *c, cgw__mcp_req_t *r, const char *reason)
{
    /* Never for initialize (the spec forbids it); the session is abandoned instead. */
    if (strcmp(r->method, "initialize") == 0 || c->closed) {
        return;
    }
    json_t *params = json_pack("{s:I,s:s}", "requestId", (json_int_t)r->id, "reason",
                               reason != NULL ? reason : "cancelled");
    if (params != NULL) {
        notify(c, "notifications/cancelled", params);
        json_decref(params);
    }
}

static void arm(cgw__mcp_req_t *r, uint32_t ms)
{
    struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
    event_add(r->timer, &tv);
}

static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__mcp_req_t *r = arg;
    cgw__mcp_client_t *c = r->c;
    char detail[160];
    snprintf(detail, sizeof(detail), "MCP server '%s': %s timed out after %u ms", c->name,
             r->method, (unsigned)r->timeout_ms);
    CGW_WARN(c->ctx, "mcp", "%s", detail);
    enter(c);
    send_cancelled(c, r, "timed out");
    complete(r, CGW_ETIMEDOUT, NULL, NULL, detail);
    leave(c);
}

static cgw__mcp_req_t *new_req(cgw__mcp_client_t *c, const char *method,
                               const cgw__mcp_req_opts_t *opts, cgw__mcp_reply_cb reply, void *user)
{
    cgw__mcp_req_t *r = cgw__calloc(1, sizeof(*r));
    if (r == NULL || (r->method = cgw__strdup(method)) == NULL) {
        cgw_free(r);
        return NULL;
    }
    r->c = c;
    r->id = c->next_id++;
    r->reply = reply;
    r->user = user;
    if (opts != NULL && opts->progress != NULL) {
        r->progress = opts->progress;
        r->progress_user = opts->progress_user;
    }
    return r;
}

/* Sends the request line in c->out (rc: how writing it went), arms the timeout and puts `r`
 * in the pending list; frees `r` on failure. */
static int launch(cgw__mcp_client_t *c, cgw__mcp_req_t *r, int rc, const cgw__mcp_req_opts_t *opts,
                  cgw__mcp_req_t **handle)
{
    if (rc == CGW_OK && opts != NULL && opts->timeout_ms > 0) {
        r->timeout_ms = opts->timeout_ms;
        uint64_t cap = opts->max_total_ms ? opts->max_total_ms : (uint64_t)opts->timeout_ms * 10;
        r->hard_deadline_ms = cgw__now_ms() + cap;
        r->timer = evtimer_new(cgw_ctx_base(c->ctx), req_timeout_cb, r);
        rc = r->timer != NULL ? CGW_OK : CGW_ENOMEM;
    }
    if (rc == CGW_OK) {
        rc = send_buf(c);
    }
    cgw_buf_reset(&c->out);
    if (rc != CGW_OK) {
        free_req(r);
        return rc;
    }
    if (r->timer != NULL) {
        arm(r, r->timeout_ms);
    }
    r->next = c->reqs;
    if (c->reqs != NULL) {
        c->reqs->prev = r;
    }
    c->reqs = r;
    if (handle != NULL) {
        *handle = r;
    }
    return CGW_OK;
}

int cgw__mcp_client_request(cgw__mcp_client_t *c, const char *method, json_t *params,
                            const cgw__mcp_req_opts_t *opts, cgw__mcp_reply_cb reply, void *user,
                            cgw__mcp_req_t **handle)
{
    if (c->closed || c->doomed || c->tr == NULL) {
        return CGW_ECLOSED;
    }
    cgw__mcp_req_t *r = new_req(c, method, opts, reply, user);
    if (r == NULL) {
        return CGW_ENOMEM;
    }
    r->progress = NULL; /* progress tokens are sent by cgw__mcp_client_call_tool only */
    int rc = cgw__rpc_write_request(&c->out, r->id, method, params);
    return launch(c, r, rc, opts, handle);
}

int cgw__mcp_client_call_tool(cgw__mcp_client_t *c, const char *tool, const json_t *input,
                              const cgw__mcp_req_opts_t *opts, cgw__mcp_reply_cb reply, void *user,
                              cgw__mcp_req_t **handle)
{
    if (c->closed || c->doomed || c->tr == NULL) {
        return CGW_ECLOSED;
    }
    cgw__mcp_req_t *r = new_req(c, "tools/call", opts, reply, user);
    if (r == NULL) {
        return CGW_ENOMEM;
    }
    /* Written by hand: no temporary params object on the path of every call. */
    cgw_buf_t *b = &c->out;
    int rc = cgw__rpc_write_request_head(b, r->id, "tools/call");
    rc = rc == CGW_OK ? cgw_buf_append_str(b, "{\"name\":") : rc;
    rc = rc == CGW_OK ? cgw__rpc_append_string(b, tool) : rc;
    rc = rc == CGW_OK ? cgw_buf_append_str(b, ",\"arguments\":") : rc;
    if (rc == CGW_OK) {
        rc = input != NULL ? cgw_json_dump_buf(input, b) : cgw_buf_append(b, "{}", 2);
    }
    if (rc == CGW_OK && r->progress != NULL) {
        rc = cgw_buf_append_str(b, ",\"_meta\":{\"progressToken\":");
        rc = rc == CGW_OK ? cgw__rpc_append_int(b, r->id) : rc;
        rc = rc == CGW_OK ? cgw_buf_append_char(b, '}') : rc;
    }
    rc = rc == CGW_OK ? cgw_buf_append(b, "}}\n", 3) : rc;
    return launch(c, r, rc, opts, handle);
}

void cgw__mcp_client_cancel(cgw__mcp_client_t *c, cgw__mcp_req_t *r, const char *reason)
{
    enter(c);
    send_cancelled(c, r, reason);
    complete(r, CGW_ECANCELED, NULL, NULL, reason != NULL ? reason : "cancelled");
    leave(c);
}

/* Fails every pending request with `code` (the connection is gone or the client is freed). */
static void fail_all(cgw__mcp_client_t *c, int code, const char *detail)
{
    while (c->reqs != NULL) {
        complete(c->reqs, code, NULL, NULL, detail);
    }
}

void cgw__mcp_client_fail_pending(cgw__mcp_client_t *c, int code, const char *detail)
{
    enter(c);
    fail_all(c, code, detail);
    leave(c);
}

/* ---- start: initialize, initialized, tools/list ---------------------------------------- */

static void report_ready(cgw__mcp_client_t *c, int rc, const char *detail)
{
    if (c->ready_reported) {
        return;
    }
    c->ready_reported = 1;
    if (rc != CGW_OK) {
        c->state = C_DONE;
    }
    if (c->cbs.on_ready != NULL && !c->doomed) {
        c->cbs.on_ready(c->cbs.user, rc, detail);
    }
}

static void relist_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__mcp_client_t *c = arg;
    enter(c);
    if (!c->listing && c->state == C_READY) {
        c->relist = 0;
        list_tools(c, NULL);
    }
    leave(c);
}

static void schedule_relist(cgw__mcp_client_t *c)
{
    c->relist = 1;
    if (c->state != C_READY || c->listing) {
        return; /* picked up when the running list completes */
    }
    /* The first notification of a burst opens a short window; the rest fall into it. */
    if (!evtimer_pending(c->relist_timer, NULL)) {
        struct timeval tv = {c->list_delay_ms / 1000, (long)(c->list_delay_ms % 1000) * 1000};
        event_add(c->relist_timer, &tv);
    }
}

static void lists_done(cgw__mcp_client_t *c)
{
    json_decref(c->tools);
    c->tools = c->pages;
    c->pages = NULL;
    c->listing = 0;
    CGW_DEBUG(c->ctx, "mcp", "server '%s': %zu tools", c->name, json_array_size(c->tools));
    if (c->state == C_LISTING) {
        c->state = C_READY;
        report_ready(c, CGW_OK, NULL);
    } else if (c->cbs.on_tools_changed != NULL && !c->doomed) {
        c->cbs.on_tools_changed(c->cbs.user);
    }
    if (c->relist && !c->doomed) {
        c->relist = 0;
        schedule_relist(c);
    }
}

static void list_reply(void *user, int rc, const json_t *result, const json_t *rpc_error,
                       const char *detail)
{
    cgw__mcp_client_t *c = user;
    char msg[300];
    json_t *tools = json_object_get(result, "tools");
    if (rc == CGW_OK && !json_is_array(tools)) {
        rc = CGW_EPROTO;
        detail = "tools/list result has no tools array";
    }
    if (rc != CGW_OK) {
        snprintf(msg, sizeof(msg), "MCP server '%s': tools/list failed: %s", c->name,
                 rpc_error != NULL ? cgw_json_str(rpc_error, "message", "error") : detail);
        json_decref(c->pages);
        c->pages = NULL;
        c->listing = 0;
        if (c->state == C_LISTING) {
            report_ready(c, rc, msg);
        } else {
            CGW_WARN(c->ctx, "mcp", "%s (keeping the previous list)", msg);
        }
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        if (json_is_object(t) && json_is_string(json_object_get(t, "name"))) {
            json_array_append(c->pages, t);
        }
    }
    const char *cursor = cgw_json_str(result, "nextCursor", NULL);
    if (cursor != NULL && ++c->n_pages < MAX_TOOL_PAGES) {
        list_tools(c, cursor);
        return;
    }
    lists_done(c);
}

static void list_tools(cgw__mcp_client_t *c, const char *cursor)
{
    if (cursor == NULL) {
        json_decref(c->pages);
        c->pages = json_array();
        c->n_pages = 0;
    }
    c->listing = 1;
    json_t *params = cursor != NULL ? json_pack("{s:s}", "cursor", cursor) : json_object();
    cgw__mcp_req_opts_t o = {c->startup_timeout_ms, 0, NULL, NULL};
    int rc = c->pages != NULL && params != NULL
                 ? cgw__mcp_client_request(c, "tools/list", params, &o, list_reply, c, NULL)
                 : CGW_ENOMEM;
    json_decref(params);
    if (rc != CGW_OK) {
        list_reply(c, rc, NULL, NULL, cgw_strerror(rc));
    }
}

static int version_supported(const char *v)
{
    for (size_t i = 0; v != NULL && cgw__mcp_versions[i] != NULL; i++) {
        if (strcmp(v, cgw__mcp_versions[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void init_reply(void *user, int rc, const json_t *result, const json_t *rpc_error,
                       const char *detail)
{
    cgw__mcp_client_t *c = user;
    char msg[400];
    if (rc != CGW_OK) {
        snprintf(msg, sizeof(msg), "MCP server '%s': initialize failed: %s", c->name,
                 rpc_error != NULL ? cgw_json_str(rpc_error, "message", "error") : detail);
        report_ready(c, rc, msg);
        return;
    }
    const char *v = cgw_json_str(result, "protocolVersion", NULL);
    if (!version_supported(v)) {
        snprintf(msg, sizeof(msg),
                 "MCP server '%s' answered protocol version '%s', which this "
                 "client does not speak (%s to %s)",
                 c->name, v != NULL ? v : "(none)", CGW_MCP_PROTOCOL_VERSION_OLDEST,
                 CGW_MCP_PROTOCOL_VERSION);
        report_ready(c, CGW_EPROTO, msg);
        return;
    }
    snprintf(c->version, sizeof(c->version), "%s", v);
    c->state = C_LISTING;
    /* From here on the server may send requests; we can answer them already. */
    notify(c, "notifications/initialized", NULL);
    list_tools(c, NULL);
}

static json_t *capabilities(const cgw__mcp_client_t *c)
{
    json_t *caps = json_pack("{s:{}}", "roots");
    if (caps != NULL && c->sampling != NULL) {
        json_object_set_new(caps, "sampling", json_object());
    }
    if (caps != NULL && c->elicitation != NULL) {
        json_object_set_new(caps, "elicitation", json_pack("{s:{}}", "form"));
    }
    return caps;
}

static int send_initialize(cgw__mcp_client_t *c)
{
    json_t *params = json_pack("{s:s,s:o,s:{s:s,s:s}}", "protocolVersion", CGW_MCP_PROTOCOL_VERSION,
                               "capabilities", capabilities(c), "clientInfo", "name",
                               "claude-gateway", "version", CGW_VERSION_STRING);
    if (params == NULL) {
        return CGW_ENOMEM;
    }
    cgw__mcp_req_opts_t o = {c->startup_timeout_ms, 0, NULL, NULL};
    int rc = cgw__mcp_client_request(c, "initialize", params, &o, init_reply, c, NULL);
    json_decref(params);
    return rc;
}

/* ---- messages from the server ---------------------------------------------------------- */

static void reply_unlink(cgw_mcp_reply_t *rep)
{
    cgw__mcp_client_t *c = rep->c;
    if (c == NULL) {
        return;
    }
    if (rep->prev != NULL) {
        rep->prev->next = rep->next;
    } else {
        c->replies = rep->next;
    }
    if (rep->next != NULL) {
        rep->next->prev = rep->prev;
    }
    rep->c = NULL;
}

static void hand_to_application(cgw__mcp_client_t *c, cgw_mcp_request_handler_cb h,
                                const cgw__rpc_msg_t *m)
{
    cgw_mcp_reply_t *rep = cgw__calloc(1, sizeof(*rep));
    if (rep == NULL) {
        answer_error(c, m->id, CGW_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    rep->c = c;
    rep->id = json_incref(m->id);
    rep->next = c->replies;
    if (c->replies != NULL) {
        c->replies->prev = rep;
    }
    c->replies = rep;
    h(c->name, m->method, m->params, rep, c->handler_user);
}

static void server_request(cgw__mcp_client_t *c, const cgw__rpc_msg_t *m)
{
    if (strcmp(m->method, "ping") == 0) {
        answer_result(c, m->id, NULL);
    } else if (strcmp(m->method, "roots/list") == 0) {
        answer_result(c, m->id, c->roots);
    } else if (strcmp(m->method, "sampling/createMessage") == 0 && c->sampling != NULL) {
        hand_to_application(c, c->sampling, m);
    } else if (strcmp(m->method, "elicitation/create") == 0 && c->elicitation != NULL) {
        hand_to_application(c, c->elicitation, m);
    } else {
        char msg[200];
        snprintf(msg, sizeof(msg), "Method not found: %s", m->method);
        CGW_DEBUG(c->ctx, "mcp", "server '%s' asked for %s: not supported", c->name, m->method);
        answer_error(c, m->id, CGW_RPC_METHOD_NOT_FOUND, msg);
    }
}

static cgw_log_level_t mcp_level(const char *level)
{
    static const struct {
        const char *name;
        cgw_log_level_t lvl;
    } map[] = {{"debug", CGW_LOG_DEBUG},  {"info", CGW_LOG_INFO},      {"notice", CGW_LOG_INFO},
               {"warning", CGW_LOG_WARN}, {"error", CGW_LOG_ERROR},    {"critical", CGW_LOG_ERROR},
               {"alert", CGW_LOG_ERROR},  {"emergency", CGW_LOG_ERROR}};
    for (size_t i = 0; level != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(level, map[i].name) == 0) {
            return map[i].lvl;
        }
    }
    return CGW_LOG_INFO;
}

static void on_progress(cgw__mcp_client_t *c, const json_t *params)
{
    json_int_t token;
    cgw__mcp_req_t *r = cgw__rpc_id_int(json_object_get(params, "progressToken"), &token)
                            ? find_req(c, token)
                            : NULL;
    if (r == NULL || r->progress == NULL) {
        return; /* finished or cancelled call: servers keep sending, drop it */
    }
    if (r->timer != NULL) {
        uint64_t now = cgw__now_ms();
        uint64_t left = r->hard_deadline_ms > now ? r->hard_deadline_ms - now : 0;
        arm(r, (uint32_t)(left < r->timeout_ms ? left : r->timeout_ms));
    }
    const json_t *total = json_object_get(params, "total");
    cgw_mcp_progress_t p = {cgw_json_num(params, "progress", 0), json_number_value(total),
                            json_is_number(total), cgw_json_str(params, "message", NULL)};
    r->progress(&p, r->progress_user);
}

static void on_cancelled_by_server(cgw__mcp_client_t *c, const json_t *params)
{
    const json_t *id = json_object_get(params, "requestId");
    for (cgw_mcp_reply_t *rep = c->replies; rep != NULL; rep = rep->next) {
        if (json_equal(rep->id, id)) {
            reply_unlink(rep); /* the application's answer will be dropped */
            return;
        }
    }
}

static void server_notification(cgw__mcp_client_t *c, const cgw__rpc_msg_t *m)
{
    if (strcmp(m->method, "notifications/tools/list_changed") == 0) {
        schedule_relist(c);
    } else if (strcmp(m->method, "notifications/progress") == 0) {
        on_progress(c, m->params);
    } else if (strcmp(m->method, "notifications/message") == 0) {
        char *data = cgw_json_dump(json_object_get(m->params, "data"), NULL);
        const char *logger = cgw_json_str(m->params, "logger", NULL);
        CGW_LOG_AT(c->ctx, mcp_level(cgw_json_str(m->params, "level", NULL)), "mcp",
                   "server '%s'%s%s: %s", c->name, logger ? " " : "", logger ? logger : "",
                   data != NULL ? data : "");
        cgw_free(data);
    } else if (strcmp(m->method, "notifications/cancelled") == 0) {
        on_cancelled_by_server(c, m->params);
    } else {
        CGW_TRACE(c->ctx, "mcp", "server '%s': ignored %s", c->name, m->method);
    }
}

static void server_response(cgw__mcp_client_t *c, const cgw__rpc_msg_t *m, json_t *msg)
{
    json_int_t id;
    cgw__mcp_req_t *r = m->id != NULL && cgw__rpc_id_int(m->id, &id) ? find_req(c, id) : NULL;
    if (r == NULL) {
        char *ids = m->id != NULL ? cgw_json_dump(m->id, NULL) : NULL;
        CGW_DEBUG(c->ctx, "mcp",
                  "server '%s': dropped an answer to unknown, finished or "
                  "cancelled request id %s",
                  c->name, ids != NULL ? ids : "null");
        cgw_free(ids);
        return;
    }
    if (m->kind == CGW_RPC_RESULT) {
        complete(r, CGW_OK, m->result, NULL, NULL);
    } else {
        complete(r, CGW_ERPC, NULL, json_object_get(msg, "error"), m->err_message);
    }
}

static void tr_message(void *user, json_t *msg)
{
    cgw__mcp_client_t *c = user;
    cgw__rpc_msg_t m;
    cgw_error_t err;
    enter(c);
    if (cgw__rpc_classify(msg, &m, &err) != CGW_OK) {
        CGW_WARN(c->ctx, "mcp", "server '%s': %s (skipped)", c->name, err.message);
    } else if (m.kind == CGW_RPC_REQUEST) {
        server_request(c, &m);
    } else if (m.kind == CGW_RPC_NOTIFICATION) {
        server_notification(c, &m);
    } else if (m.kind == CGW_RPC_ERROR && m.id == NULL) {
        CGW_WARN(c->ctx, "mcp",
                 "server '%s' reported an error with no id: %" JSON_INTEGER_FORMAT " %s", c->name,
                 m.err_code, m.err_message);
    } else {
        server_response(c, &m, msg);
    }
    leave(c);
}

static void tr_bad_message(void *user, int code, int has_id, json_int_t id, const char *detail)
{
    cgw__mcp_client_t *c = user;
    if (code != CGW_ELINETOOLONG) {
        return; /* a skipped non-JSON line was logged by the transport */
    }
    enter(c);
    cgw__mcp_req_t *r = has_id ? find_req(c, id) : NULL;
    if (r != NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "MCP server '%s': answer to %s discarded: %s", c->name,
                 r->method, detail);
        complete(r, CGW_ELINETOOLONG, NULL, NULL, msg);
    } else {
        CGW_WARN(c->ctx, "mcp",
                 "server '%s': an oversize message of unknown origin was "
                 "discarded",
                 c->name);
    }
    leave(c);
}

static void tr_closed(void *user, int code, const char *detail)
{
    cgw__mcp_client_t *c = user;
    enter(c);
    c->closed = 1;
    if (c->relist_timer != NULL) {
        event_del(c->relist_timer);
    }
    int was_ready = c->state == C_READY;
    c->state = C_DONE;
    fail_all(c, code, detail);
    if (!was_ready) {
        report_ready(c, code, detail); /* no-op when a failed step already reported */
    } else if (c->cbs.on_closed != NULL && !c->doomed) {
        c->cbs.on_closed(c->cbs.user, code, detail);
    }
    leave(c);
}

/* ---- public (internal) API -------------------------------------------------------------- */

static json_t *roots_result(const char *const *roots)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && roots != NULL && roots[i] != NULL; i++) {
        const char *slash = strrchr(roots[i], '/');
        const char *name = slash != NULL && slash[1] ? slash + 1 : roots[i];
        json_array_append_new(list, json_pack("{s:s,s:s}", "uri", roots[i], "name", name));
    }
    return list != NULL ? json_pack("{s:o}", "roots", list) : NULL;
}

int cgw__mcp_client_new(cgw_ctx_t *ctx, const cgw__mcp_client_params_t *p,
                        const cgw__mcp_client_cbs_t *cbs, cgw__mcp_client_t **out, cgw_error_t *err)
{
    *out = NULL;
    cgw__mcp_client_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    c->ctx = ctx;
    c->cbs = *cbs;
    c->next_id = 1;
    c->name = cgw__strdup(p->name);
    c->startup_timeout_ms = p->startup_timeout_ms;
    c->list_delay_ms = p->list_changed_delay_ms ? p->list_changed_delay_ms : LIST_DELAY_DEFAULT_MS;
    c->sampling = p->sampling;
    c->elicitation = p->elicitation;
    c->handler_user = p->handler_user;
    c->roots = roots_result(p->roots);
    c->tools = json_array();
    c->relist_timer = evtimer_new(cgw_ctx_base(ctx), relist_cb, c);
    if (c->name == NULL || c->roots == NULL || c->tools == NULL || c->relist_timer == NULL) {
        really_free(c);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    cgw__mcp_transport_cbs_t tcbs = {tr_message, tr_bad_message, tr_closed, c};
    int rc = cgw__stdio_transport_new(ctx, p->stdio, &tcbs, &c->tr, err);
    if (rc == CGW_OK) {
        rc = send_initialize(c);
        if (rc != CGW_OK) {
            cgw_error_set(err, rc, "MCP server '%s': cannot send initialize", c->name);
        }
    }
    if (rc != CGW_OK) {
        really_free(c);
        return rc;
    }
    *out = c;
    return CGW_OK;
}

static void really_free(cgw__mcp_client_t *c)
{
    c->closed = 1;
    fail_all(c, CGW_ECANCELED, "MCP session closed");
    while (c->replies != NULL) {
        reply_unlink(c->replies);
    }
    if (c->tr != NULL) {
        if (c->doomed_detach) {
            c->tr->vt->close(c->tr);
        } else {
            c->tr->vt->free(c->tr);
        }
    }
    if (c->relist_timer != NULL) {
        event_free(c->relist_timer);
    }
    json_decref(c->tools);
    json_decref(c->pages);
    json_decref(c->roots);
    cgw_buf_free(&c->out);
    cgw_free(c->name);
    cgw_free(c);
}

void cgw__mcp_client_free(cgw__mcp_client_t *c, int detach)
{
    if (c == NULL || c->doomed) {
        return;
    }
    c->doomed_detach = detach;
    if (c->depth > 0) {
        c->doomed = 1;
        return;
    }
    c->doomed = 1;
    really_free(c);
}

const json_t *cgw__mcp_client_tools(const cgw__mcp_client_t *c)
{
    return c->tools;
}

const char *cgw__mcp_client_version(const cgw__mcp_client_t *c)
{
    return c->version;
}

const char *cgw__mcp_client_stderr(const cgw__mcp_client_t *c)
{
    return c->tr != NULL ? c->tr->vt->diag(c->tr) : "";
}

int cgw__mcp_client_pid(const cgw__mcp_client_t *c)
{
    return c->tr != NULL && !c->closed ? c->tr->vt->pid(c->tr) : 0;
}

/* ---- answers to server requests (public) ------------------------------------------------ */

static int reply_finish(cgw_mcp_reply_t *rep, const json_t *result, int64_t code,
                        const char *message)
{
    if (rep == NULL) {
        return CGW_EINVAL;
    }
    cgw__mcp_client_t *c = rep->c;
    int rc = CGW_ECLOSED;
    if (c != NULL && !c->closed) {
        rc = result != NULL ? cgw__rpc_write_result(&c->out, rep->id, result)
                            : cgw__rpc_write_error(&c->out, rep->id, code, message);
        rc = rc == CGW_OK ? send_buf(c) : rc;
        cgw_buf_reset(&c->out);
    }
    reply_unlink(rep);
    json_decref(rep->id);
    cgw_free(rep);
    return rc;
}

int cgw_mcp_reply_result(cgw_mcp_reply_t *reply, const json_t *result)
{
    json_t *empty = NULL;
    if (result == NULL) {
        result = empty = json_object();
    }
    int rc = reply_finish(reply, result, 0, NULL);
    json_decref(empty);
    return rc;
}

int cgw_mcp_reply_error(cgw_mcp_reply_t *reply, int64_t code, const char *message)
{
    return reply_finish(reply, NULL, code, message != NULL ? message : "");
}
