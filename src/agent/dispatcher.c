/* cgw_dispatcher_t: routes one tool call: approval, local handler by exact name, MCP, else
 * unknown_tool. Each dispatch is a small state machine whose steps all run from the loop; its
 * outcome is delivered through one deferred event so `done` never runs inside
 * cgw_dispatcher_dispatch. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agent/agent_int.h"
#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"

typedef struct tool {
    char *name;
    char *description;
    json_t *schema;
    cgw_tool_handler_cb handler;
    cgw_tool_sync_cb sync_handler;
    void *user;
} tool_t;

typedef enum dstate { D_START = 0, D_APPROVAL, D_LOCAL, D_MCP, D_DONE } dstate_t;

struct cgw_dispatch {
    cgw_dispatcher_t *d;
    cgw_dispatch_t *prev, *next;
    dstate_t state;
    /* the call, copied */
    cgw_tool_call_t call;
    char *id, *name, *agent_id, *parent_id, *session_id;
    json_t *input;
    cgw_dispatch_done_cb done;
    void *user;
    struct event *step;    /* deferred start / finish */
    struct event *timeout; /* tool_timeout once routed */
    cgw__approval_t *approval;
    cgw_tool_completion_t *completion;
    cgw_mcp_call_t *mcp_call;
    bool in_mcp_cancel;
    /* the outcome */
    json_t *result, *error, *content;
    char *server;
};

struct cgw_tool_completion {
    cgw_dispatch_t *ds; /* NULL once detached (cancelled) */
    void (*on_cancel)(void *user);
    void *cancel_user;
};

struct cgw_dispatcher {
    cgw_ctx_t *ctx;
    cgw_dispatcher_options_t opts;
    cgw_approvals_t *own_approvals;
    tool_t *tools;
    size_t ntools, cap;
    cgw_dispatch_t *active;
    json_t *oom_error; /* made up front: the outcome when not even an error can be built */
};

void cgw_dispatcher_options_init(cgw_dispatcher_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->approval_timeout_ms = CGW_APPROVAL_TIMEOUT_MS_DEFAULT;
}

int cgw_dispatcher_new(cgw_ctx_t *ctx, const cgw_dispatcher_options_t *opts, cgw_dispatcher_t **out)
{
    if (ctx == NULL || out == NULL) {
        return CGW_EINVAL;
    }
    cgw_dispatcher_t *d = cgw__calloc(1, sizeof(*d));
    if (d == NULL) {
        return CGW_ENOMEM;
    }
    d->ctx = ctx;
    d->oom_error = json_pack("{s:s, s:s}", "code", "internal_error", "message", "out of memory");
    if (d->oom_error == NULL) {
        cgw_free(d);
        return CGW_ENOMEM;
    }
    if (opts != NULL) {
        d->opts = *opts;
    } else {
        cgw_dispatcher_options_init(&d->opts);
    }
    if (d->opts.approval_timeout_ms == 0) {
        d->opts.approval_timeout_ms = CGW_APPROVAL_TIMEOUT_MS_DEFAULT;
    }
    if (d->opts.approvals == NULL) {
        int rc = cgw_approvals_new(ctx, &d->own_approvals);
        if (rc != CGW_OK) {
            json_decref(d->oom_error);
            cgw_free(d);
            return rc;
        }
        d->opts.approvals = d->own_approvals;
    }
    *out = d;
    return CGW_OK;
}

void cgw_dispatcher_free(cgw_dispatcher_t *d)
{
    if (d == NULL) {
        return;
    }
    while (d->active != NULL) {
        cgw_dispatch_cancel(d->active);
    }
    for (size_t i = 0; i < d->ntools; i++) {
        cgw_free(d->tools[i].name);
        cgw_free(d->tools[i].description);
        json_decref(d->tools[i].schema);
    }
    cgw_free(d->tools);
    cgw_approvals_free(d->own_approvals);
    json_decref(d->oom_error);
    cgw_free(d);
}

static const tool_t *find_tool(const cgw_dispatcher_t *d, const char *name)
{
    for (size_t i = 0; i < d->ntools; i++) {
        if (strcmp(d->tools[i].name, name) == 0) {
            return &d->tools[i];
        }
    }
    return NULL;
}

static json_t *parse_schema(const char *text)
{
    if (text == NULL) {
        return json_pack("{s:s, s:{}}", "type", "object", "properties");
    }
    json_t *v = NULL;
    if (cgw_json_parse(text, strlen(text), &v, NULL) != CGW_OK || !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

int cgw_dispatcher_add_tool(cgw_dispatcher_t *d, const cgw_tool_def_t *def)
{
    if (d == NULL || def == NULL || def->name == NULL || def->name[0] == '\0' ||
        (def->handler == NULL) == (def->sync_handler == NULL)) {
        return CGW_EINVAL;
    }
    if (find_tool(d, def->name) != NULL) {
        return CGW_EEXIST;
    }
    json_t *schema = parse_schema(def->input_schema_json);
    if (schema == NULL) {
        return CGW_EINVAL;
    }
    if (d->ntools == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        tool_t *t = cgw__realloc(d->tools, cap * sizeof(*t));
        if (t == NULL) {
            json_decref(schema);
            return CGW_ENOMEM;
        }
        d->tools = t;
        d->cap = cap;
    }
    tool_t *t = &d->tools[d->ntools];
    t->name = cgw__strdup(def->name);
    t->description = cgw__strdup(def->description ? def->description : "");
    if (t->name == NULL || t->description == NULL) {
        cgw_free(t->name);
        cgw_free(t->description);
        json_decref(schema);
        return CGW_ENOMEM;
    }
    t->schema = schema;
    t->handler = def->handler;
    t->sync_handler = def->sync_handler;
    t->user = def->user;
    d->ntools++;
    return CGW_OK;
}

int cgw_dispatcher_add_handler(cgw_dispatcher_t *d, const char *name, cgw_tool_handler_cb handler,
                               void *user)
{
    cgw_tool_def_t def = {.name = name, .handler = handler, .user = user};
    return cgw_dispatcher_add_tool(d, &def);
}

int cgw_dispatcher_add_sync(cgw_dispatcher_t *d, const char *name, cgw_tool_sync_cb handler,
                            void *user)
{
    cgw_tool_def_t def = {.name = name, .sync_handler = handler, .user = user};
    return cgw_dispatcher_add_tool(d, &def);
}

bool cgw_dispatcher_has_local(const cgw_dispatcher_t *d, const char *name)
{
    return d != NULL && name != NULL && find_tool(d, name) != NULL;
}

cgw_approvals_t *cgw_dispatcher_approvals(const cgw_dispatcher_t *d)
{
    return d == NULL ? NULL : d->opts.approvals;
}

static const cgw_mcp_tool_ref_t *mcp_ref(const cgw_dispatcher_t *d, const char *name)
{
    if (d->opts.mcp == NULL) {
        return NULL;
    }
    return cgw_mcp_toolmap_find(cgw_mcp_manager_toolmap(d->opts.mcp), name);
}

const char *cgw_dispatcher_server_for(const cgw_dispatcher_t *d, const char *name)
{
    if (d == NULL || name == NULL || find_tool(d, name) != NULL) {
        return NULL;
    }
    const cgw_mcp_tool_ref_t *ref = mcp_ref(d, name);
    return ref ? ref->server : NULL;
}

json_t *cgw_dispatcher_tool_definitions(const cgw_dispatcher_t *d)
{
    json_t *defs = json_array();
    if (defs == NULL || d == NULL) {
        return defs;
    }
    for (size_t i = 0; i < d->ntools; i++) {
        const tool_t *t = &d->tools[i];
        if (json_array_append_new(defs, json_pack("{s:s, s:s, s:O}", "name", t->name, "description",
                                                  t->description, "input_schema", t->schema)) !=
            0) {
            json_decref(defs);
            return NULL;
        }
    }
    json_t *mcp = d->opts.mcp ? cgw_mcp_manager_tool_definitions(d->opts.mcp) : NULL;
    size_t i;
    json_t *def;
    json_array_foreach(mcp, i, def)
    {
        if (find_tool(d, cgw_json_str(def, "name", "")) == NULL &&
            json_array_append(defs, def) != 0) {
            json_decref(mcp);
            json_decref(defs);
            return NULL;
        }
    }
    json_decref(mcp);
    return defs;
}

/* ---- dispatch lifecycle ----------------------------------------------------------------- */

static void dispatch_free(cgw_dispatch_t *ds)
{
    cgw_dispatcher_t *d = ds->d;
    if (ds->prev) {
        ds->prev->next = ds->next;
    } else {
        d->active = ds->next;
    }
    if (ds->next) {
        ds->next->prev = ds->prev;
    }
    if (ds->step) {
        event_free(ds->step);
    }
    if (ds->timeout) {
        event_free(ds->timeout);
    }
    cgw_free(ds->id);
    cgw_free(ds->name);
    cgw_free(ds->agent_id);
    cgw_free(ds->parent_id);
    cgw_free(ds->session_id);
    cgw_free(ds->server);
    json_decref(ds->input);
    json_decref(ds->result);
    json_decref(ds->error);
    json_decref(ds->content);
    cgw_free(ds);
}

/* Delivers the outcome now and frees the dispatch. */
static void deliver(cgw_dispatch_t *ds)
{
    if (ds->result == NULL && ds->error == NULL) {
        ds->error = json_incref(ds->d->oom_error);
    }
    cgw_tool_outcome_t o = {ds->result, ds->error, ds->content, ds->server};
    ds->state = D_DONE;
    ds->done(&o, ds->user);
    dispatch_free(ds);
}

/* Records the outcome (references taken: result/error/content are incref'd) and schedules the
 * delivery. */
static void settle(cgw_dispatch_t *ds, const json_t *result, const json_t *error,
                   const json_t *content, const char *server)
{
    if (ds->state == D_DONE) {
        return;
    }
    ds->state = D_DONE;
    ds->result = result ? json_incref((json_t *)result) : NULL;
    ds->error = error ? json_incref((json_t *)error) : NULL;
    ds->content = content ? json_incref((json_t *)content) : NULL;
    ds->server = server ? cgw__strdup(server) : NULL;
    if (ds->timeout) {
        evtimer_del(ds->timeout);
    }
    cgw__defer_fire(ds->step);
}

static void settle_error(cgw_dispatch_t *ds, const char *code, const char *sub_code,
                         const char *fmt, ...) CGW_PRINTF(4, 5);

static void settle_error(cgw_dispatch_t *ds, const char *code, const char *sub_code,
                         const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = cgw__tool_error(code, sub_code, msg);
    settle(ds, NULL, e, NULL, NULL);
    json_decref(e);
}

/* ---- routing ---------------------------------------------------------------------------- */

static void route(cgw_dispatch_t *ds);

static void mcp_progress(const cgw_mcp_progress_t *p, void *user)
{
    cgw_dispatch_t *ds = user;
    json_t *ev = json_pack("{s:s, s:s, s:f, s:o, s:o}", "type", "tool_progress", "tool_call_id",
                           ds->id, "progress", p->progress, "total",
                           p->has_total ? json_real(p->total) : json_null(), "message",
                           p->message ? json_string(p->message) : json_null());
    cgw__emit(ds->call.log, ev, ds->agent_id, ds->parent_id, NULL);
}

static void mcp_done(const cgw_mcp_call_result_t *r, void *user)
{
    cgw_dispatch_t *ds = user;
    ds->mcp_call = NULL;
    if (ds->in_mcp_cancel) {
        return; /* cgw_dispatch_cancel reports its own outcome */
    }
    if (r->result != NULL) {
        settle(ds, r->result, NULL, r->content, r->server);
        return;
    }
    json_t *e = r->error ? NULL : cgw__tool_error("tool_error", NULL, cgw_strerror(r->status));
    settle(ds, NULL, r->error ? r->error : e, NULL, r->server);
    json_decref(e);
}

static void start_mcp(cgw_dispatch_t *ds)
{
    cgw_mcp_call_options_t o = {
        .timeout_ms = ds->d->opts.mcp_timeout_ms, .progress = mcp_progress, .progress_user = ds};
    ds->state = D_MCP;
    int rc =
        cgw_mcp_manager_call(ds->d->opts.mcp, ds->name, ds->input, &o, mcp_done, ds, &ds->mcp_call);
    if (rc != CGW_OK) {
        settle_error(ds, "internal_error", NULL, "could not call the MCP tool '%s'", ds->name);
    }
}

static void start_local(cgw_dispatch_t *ds, const tool_t *t)
{
    if (t->sync_handler != NULL) {
        json_t *err = NULL;
        json_t *res = t->sync_handler(&ds->call, &err, t->user);
        if (res != NULL) {
            settle(ds, res, NULL, NULL, NULL);
        } else {
            json_t *e = err ? err : cgw__tool_error("tool_error", NULL, "Tool failed");
            settle(ds, NULL, e, NULL, NULL);
            if (err == NULL) {
                json_decref(e);
            }
        }
        json_decref(res);
        json_decref(err);
        return;
    }
    cgw_tool_completion_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL) {
        settle_error(ds, "internal_error", NULL, "out of memory running '%s'", ds->name);
        return;
    }
    c->ds = ds;
    ds->completion = c;
    ds->state = D_LOCAL;
    t->handler(&ds->call, c, t->user);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_dispatch_t *ds = arg;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "Tool '%s' timed out after %gs. The tool call was cancelled. You may retry or skip "
             "this tool.",
             ds->name, ds->call.timeout_ms / 1000.0);
    cgw_dispatch_cancel_with(ds, "tool_timeout", "timeout", msg);
}

static void route(cgw_dispatch_t *ds)
{
    if (ds->call.timeout_ms > 0) {
        struct timeval tv = {(time_t)(ds->call.timeout_ms / 1000),
                             (suseconds_t)(ds->call.timeout_ms % 1000) * 1000};
        evtimer_add(ds->timeout, &tv);
    }
    const tool_t *t = find_tool(ds->d, ds->name);
    if (t != NULL) {
        start_local(ds, t);
    } else if (mcp_ref(ds->d, ds->name) != NULL) {
        start_mcp(ds);
    } else {
        settle_error(ds, "unknown_tool", NULL, "Unknown tool: %s", ds->name);
    }
}

static void approval_cb(void *arg, cgw__approval_outcome_t outcome, bool allow_type)
{
    cgw_dispatch_t *ds = arg;
    ds->approval = NULL;
    if (outcome == CGW__APPROVAL_TIMEOUT) {
        settle_error(ds, "approval_timeout", NULL, "User did not respond within timeout");
    } else if (outcome == CGW__APPROVAL_DENIED) {
        settle_error(ds, "user_denied", NULL, "User denied execution");
    } else {
        if (allow_type) {
            cgw_approvals_allow(ds->d->opts.approvals, ds->name);
        }
        route(ds);
    }
}

static void ask_approval(cgw_dispatch_t *ds)
{
    const cgw_dispatcher_options_t *o = &ds->d->opts;
    if (o->request_approval == NULL) {
        settle_error(ds, "approval_required", NULL,
                     "Tool '%s' requires approval but no approval handler is configured", ds->name);
        return;
    }
    char nonce[17];
    int rc = cgw_approval_nonce(nonce);
    rc = rc ? rc
            : cgw__approvals_add(o->approvals, ds->id, nonce, o->approval_timeout_ms, approval_cb,
                                 ds, &ds->approval);
    if (rc != CGW_OK) {
        settle_error(ds, "internal_error", NULL, "could not register the approval of '%s'",
                     ds->name);
        return;
    }
    ds->state = D_APPROVAL;
    int64_t expires_at = (int64_t)time(NULL) + (int64_t)((o->approval_timeout_ms + 999) / 1000);
    json_t *ev = json_pack("{s:s, s:s, s:s, s:O, s:s, s:I}", "type", "tool_approval_request",
                           "tool_call_id", ds->id, "tool_name", ds->name, "tool_input", ds->input,
                           "nonce", nonce, "expires_at", (json_int_t)expires_at);
    cgw__emit(ds->call.log, ev, ds->agent_id, ds->parent_id, NULL);
    cgw_approval_request_t req = {
        ds->id,     nonce,        ds->name,    ds->input, o->approval_timeout_ms,
        expires_at, ds->agent_id, o->approvals};
    o->request_approval(&req, o->approval_user);
}

static void step_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_dispatch_t *ds = arg;
    if (ds->state == D_DONE) {
        deliver(ds);
        return;
    }
    const cgw_dispatcher_options_t *o = &ds->d->opts;
    if (o->needs_approval != NULL && !cgw_approvals_is_allowed(o->approvals, ds->name) &&
        o->needs_approval(ds->name, ds->input, o->approval_user)) {
        ask_approval(ds);
    } else {
        route(ds);
    }
}

static char *dup_opt(const char *s, bool *oom)
{
    if (s == NULL) {
        return NULL;
    }
    char *c = cgw__strdup(s);
    *oom |= c == NULL;
    return c;
}

int cgw_dispatcher_dispatch(cgw_dispatcher_t *d, const cgw_tool_call_t *call,
                            cgw_dispatch_done_cb done, void *user, cgw_dispatch_t **handle)
{
    if (d == NULL || call == NULL || call->tool_call_id == NULL || call->tool_name == NULL ||
        done == NULL || (call->input != NULL && !json_is_object(call->input))) {
        return CGW_EINVAL;
    }
    cgw_dispatch_t *ds = cgw__calloc(1, sizeof(*ds));
    if (ds == NULL) {
        return CGW_ENOMEM;
    }
    bool oom = false;
    ds->d = d;
    ds->done = done;
    ds->user = user;
    ds->id = dup_opt(call->tool_call_id, &oom);
    ds->name = dup_opt(call->tool_name, &oom);
    ds->agent_id = dup_opt(call->agent_id, &oom);
    ds->parent_id = dup_opt(call->parent_tool_call_id, &oom);
    ds->session_id = dup_opt(call->session_id ? call->session_id : "", &oom);
    ds->input = call->input ? json_deep_copy(call->input) : json_object();
    ds->step = cgw__defer_new(d->ctx, step_cb, ds);
    ds->timeout = evtimer_new(cgw_ctx_base(d->ctx), timeout_cb, ds);
    ds->next = d->active;
    if (d->active) {
        d->active->prev = ds;
    }
    d->active = ds;
    if (oom || ds->input == NULL || ds->step == NULL || ds->timeout == NULL) {
        dispatch_free(ds);
        return CGW_ENOMEM;
    }
    ds->call = *call;
    ds->call.tool_call_id = ds->id;
    ds->call.tool_name = ds->name;
    ds->call.input = ds->input;
    ds->call.agent_id = ds->agent_id;
    ds->call.parent_tool_call_id = ds->parent_id;
    ds->call.session_id = ds->session_id;
    cgw__defer_fire(ds->step);
    if (handle != NULL) {
        *handle = ds;
    }
    return CGW_OK;
}

void cgw_dispatch_cancel_with(cgw_dispatch_t *ds, const char *code, const char *sub_code,
                              const char *message)
{
    if (ds == NULL) {
        return;
    }
    if (ds->state != D_DONE) {
        if (ds->approval != NULL) {
            cgw__approvals_drop(ds->approval);
            ds->approval = NULL;
        }
        if (ds->mcp_call != NULL) {
            ds->in_mcp_cancel = true;
            cgw_mcp_call_cancel(ds->mcp_call); /* sends notifications/cancelled */
            ds->mcp_call = NULL;
        }
        if (ds->completion != NULL) {
            cgw_tool_completion_t *c = ds->completion;
            ds->completion = NULL;
            c->ds = NULL;
            if (c->on_cancel != NULL) {
                c->on_cancel(c->cancel_user);
                cgw_free(c);
            }
        }
        json_decref(ds->result);
        json_decref(ds->error);
        json_decref(ds->content);
        ds->result = ds->content = NULL;
        ds->error = cgw__tool_error(code, sub_code, message);
    }
    /* Already settled: the outcome stands, delivered now instead of on the loop. */
    deliver(ds);
}

void cgw_dispatch_cancel(cgw_dispatch_t *ds)
{
    cgw_dispatch_cancel_with(ds, "cancelled", NULL, "Task was cancelled");
}

/* ---- completions ------------------------------------------------------------------------ */

static cgw_dispatch_t *take(cgw_tool_completion_t *c)
{
    cgw_dispatch_t *ds = c->ds;
    if (ds != NULL) {
        ds->completion = NULL;
    }
    cgw_free(c);
    return ds;
}

int cgw_tool_complete(cgw_tool_completion_t *c, const json_t *result)
{
    if (c == NULL) {
        return CGW_EINVAL;
    }
    cgw_dispatch_t *ds = take(c);
    if (ds != NULL) {
        json_t *null_result = result ? NULL : json_null();
        settle(ds, result ? result : null_result, NULL, NULL, NULL);
    }
    return CGW_OK;
}

int cgw_tool_fail(cgw_tool_completion_t *c, const char *code, const char *message)
{
    if (c == NULL) {
        return CGW_EINVAL;
    }
    cgw_dispatch_t *ds = take(c);
    if (ds != NULL) {
        json_t *e = cgw__tool_error(code, NULL, message);
        settle(ds, NULL, e, NULL, NULL);
        json_decref(e);
    }
    return CGW_OK;
}

int cgw_tool_progress(cgw_tool_completion_t *c, double progress, double total, bool has_total,
                      const char *message)
{
    if (c == NULL) {
        return CGW_EINVAL;
    }
    if (c->ds == NULL) {
        return CGW_ECANCELED;
    }
    cgw_mcp_progress_t p = {progress, total, has_total, message};
    mcp_progress(&p, c->ds);
    return CGW_OK;
}

void cgw_tool_on_cancel(cgw_tool_completion_t *c, void (*cb)(void *user), void *user)
{
    if (c != NULL) {
        c->on_cancel = cb;
        c->cancel_user = user;
    }
}

const cgw_tool_call_t *cgw_tool_completion_call(const cgw_tool_completion_t *c)
{
    return c != NULL && c->ds != NULL ? &c->ds->call : NULL;
}
