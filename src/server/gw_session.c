/* Sessions and runs of the gateway.
 *
 * A session is loaded into memory on first use (settings, approvals) and stays loaded; its
 * conversation is rebuilt from the store's message bytes when a run needs it and dropped again
 * when the run ends, so memory holds the conversations of running sessions only (reading a
 * conversation back costs microseconds per message, next to seconds for a model turn). A user
 * message is appended to the conversation and stored
 * before its run starts; the run's messages (assistant turns, tool results) are stored when the
 * run ends, so the store always holds a conversation the API accepts. A run has its own
 * EventLog, dispatcher and runner. The log's observer stores every entry as it is appended and
 * ends the run in the store (final status + terminal entry in one transaction) when the
 * terminal entry comes. A finished run stays in memory until its last subscriber is gone; GET
 * .../events for an older run replays from the store. */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "server/gateway_int.h"
#include "server/http_util.h"

/* ---- sessions ---------------------------------------------------------------------------- */

static void session_free(gw_session_t *s)
{
    if (s == NULL) {
        return;
    }
    cgw_conversation_free(s->conv);
    cgw_approvals_free(s->approvals);
    json_decref(s->settings);
    cgw_free(s);
}

static int load_message(uint64_t index, const char *json, size_t len, void *user)
{
    (void)index;
    gw_session_t *s = user;
    return cgw_conversation_append_json(s->conv, json, len, NULL);
}

static int by_use(const void *a, const void *b)
{
    const gw_session_t *x = *(gw_session_t *const *)a, *y = *(gw_session_t *const *)b;
    return x->used_ms < y->used_ms ? -1 : x->used_ms > y->used_ms;
}

/* Keeps the loaded sessions under max_loaded_sessions: past it, the least recently used ones
 * that nothing holds (no run object, no approval pending) are unloaded, down to 7/8 of the
 * bound so the sort is paid once per many loads (`keep`, the session being loaded, stays).
 * An unloaded session is read back from the
 * store when it is used again; what it loses is its allow_tool_type approvals. */
static void evict_idle(cgw_gateway_t *gw, const gw_session_t *keep)
{
    if (gw->sessions.len <= gw->max_loaded) {
        return;
    }
    gw_session_t **c = cgw__calloc(gw->sessions.len, sizeof(*c));
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < gw->sessions.cap; i++) {
        gw_session_t *s = gw->sessions.slots[i].value;
        if (gw->sessions.slots[i].key != NULL && s != keep && s->runs_held == 0 &&
            cgw_approvals_pending_count(s->approvals) == 0) {
            c[n++] = s;
        }
    }
    qsort(c, n, sizeof(*c), by_use);
    size_t target = gw->max_loaded - gw->max_loaded / 8;
    for (size_t i = 0; i < n && gw->sessions.len > target; i++) {
        cgw__map_del(&gw->sessions, c[i]->id);
        session_free(c[i]);
    }
    cgw_free(c);
}

/* The loaded session `id` of `tenant`, loading it from the store when needed. NULL with *rc
 * CGW_ENOENT (unknown or another tenant's) or another error. */
static gw_session_t *session_load(cgw_gateway_t *gw, const char *tenant, const char *id, int *rc,
                                  cgw_error_t *err)
{
    gw_session_t *s = cgw__map_get(&gw->sessions, id);
    if (s != NULL) {
        *rc = strcmp(s->tenant, tenant) == 0 ? CGW_OK : CGW_ENOENT;
        s->used_ms = cgw__now_ms();
        return *rc == CGW_OK ? s : NULL;
    }
    cgw_store_session_t rec;
    memset(&rec, 0, sizeof(rec));
    *rc = cgw_store_session_get(gw->store, tenant, id, &rec, err);
    if (*rc != CGW_OK) {
        return NULL;
    }
    s = cgw__calloc(1, sizeof(*s));
    *rc = CGW_ENOMEM;
    if (s != NULL && cgw_approvals_new(gw->ctx, &s->approvals) == CGW_OK) {
        snprintf(s->id, sizeof(s->id), "%s", rec.id);
        snprintf(s->tenant, sizeof(s->tenant), "%s", rec.tenant);
        s->gw = gw;
        s->used_ms = cgw__now_ms();
        s->settings = json_loadb(rec.settings, rec.settings_len, 0, NULL);
        *rc = s->settings != NULL ? CGW_OK : CGW_ECORRUPT;
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(s->settings, "approved_tools"), i, t)
        {
            if (*rc == CGW_OK && json_is_string(t)) {
                *rc = cgw_approvals_allow(s->approvals, json_string_value(t));
            }
        }
    }
    if (*rc == CGW_OK) {
        *rc = cgw__map_put(&gw->sessions, s->id, s);
    }
    cgw_store_session_clear(&rec);
    if (*rc != CGW_OK) {
        session_free(s);
        return NULL;
    }
    evict_idle(gw, s);
    return s;
}

/* Makes sure the session's conversation is in memory (read back from the store). */
static int conversation_load(cgw_gateway_t *gw, gw_session_t *s, cgw_error_t *err)
{
    if (s->conv != NULL) {
        return CGW_OK;
    }
    int rc = cgw_conversation_new(&s->conv);
    if (rc == CGW_OK) {
        rc = cgw_store_message_load(gw->store, s->tenant, s->id, load_message, s, err);
    }
    if (rc != CGW_OK) {
        cgw_conversation_free(s->conv);
        s->conv = NULL;
        return rc;
    }
    s->stored_messages = cgw_conversation_count(s->conv);
    return CGW_OK;
}

/* Replies for a failed lookup: 404 for a missing session, else the store error. */
static void lookup_failed(cgw_gateway_t *gw, struct evhttp_request *req, int rc,
                          const cgw_error_t *err, const char *what)
{
    if (rc == CGW_ENOENT) {
        cgw__gw_error(gw, req, 404, "not_found_error", "%s not found", what);
    } else {
        cgw__gw_store_error(gw, req, rc, err);
    }
}

/* Checks POST /v1/sessions settings; the reason goes to `why`. */
static bool settings_valid(const json_t *b, char *why, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)b, key, v)
    {
        bool ok = true;
        if (strcmp(key, "system") == 0 || strcmp(key, "model") == 0) {
            ok = json_is_string(v) || json_is_null(v);
        } else if (strcmp(key, "max_turns") == 0) {
            ok = json_is_null(v) || (json_is_integer(v) && json_integer_value(v) >= 0 &&
                                     json_integer_value(v) <= 1000);
        } else if (strcmp(key, "allowed_tools") == 0) {
            size_t i;
            json_t *t;
            ok = json_is_array(v) || json_is_null(v);
            json_array_foreach(v, i, t)
            {
                ok = ok && json_is_string(t);
            }
        } else {
            snprintf(why, cap,
                     "unknown field '%.64s' (known: system, model, max_turns, "
                     "allowed_tools)",
                     key);
            return false;
        }
        if (!ok) {
            snprintf(why, cap, "field '%s' has the wrong type", key);
            return false;
        }
    }
    return true;
}

void cgw__gw_sessions_create(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant)
{
    json_t *b = cgw__gw_body_object(gw, req, true);
    if (b == NULL) {
        return;
    }
    char why[160];
    cgw_error_t err;
    cgw_error_clear(&err);
    uint64_t have = 0;
    int rc;
    if (!settings_valid(b, why, sizeof(why))) {
        cgw__gw_error(gw, req, 400, "invalid_request_error", "%s", why);
    } else if ((rc = cgw_store_session_count(gw->store, tenant, &have, &err)) != CGW_OK) {
        cgw__gw_store_error(gw, req, rc, &err);
    } else if (have >= gw->max_sessions) {
        cgw__gw_error(gw, req, 429, "rate_limit_error",
                      "this tenant has %llu sessions; the limit is %zu", (unsigned long long)have,
                      gw->max_sessions);
    } else {
        size_t len = 0;
        char *settings = cgw_json_dump(b, &len);
        cgw_store_session_t s;
        memset(&s, 0, sizeof(s));
        rc = settings == NULL
                 ? CGW_ENOMEM
                 : cgw_store_session_create(gw->store, tenant, NULL, settings, len, &s, &err);
        cgw_free(settings);
        if (rc != CGW_OK) {
            cgw__gw_store_error(gw, req, rc, &err);
        } else {
            gw->metrics.sessions_created++;
            json_t *out = json_pack("{s:s, s:f, s:O}", "session_id", s.id, "created_at",
                                    s.created_at, "settings", b);
            cgw__gw_json(gw, req, 201, out);
            json_decref(out);
        }
        cgw_store_session_clear(&s);
    }
    json_decref(b);
}

/* ---- run records as JSON ----------------------------------------------------------------- */

static json_t *run_json(const cgw_store_run_t *r)
{
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:I}", "run_id", r->id, "session_id", r->session_id,
                     "status", cgw_run_status_name(r->status), "created_at", r->created_at,
                     "ended_at", r->ended_at, "last_seq", (json_int_t)r->last_seq);
}

static int add_run(const cgw_store_run_t *run, void *user)
{
    return json_array_append_new(user, run_json(run)) == 0 ? CGW_OK : CGW_ENOMEM;
}

void cgw__gw_session_get(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                         const char *id)
{
    cgw_error_t err;
    cgw_error_clear(&err);
    cgw_store_session_t s;
    memset(&s, 0, sizeof(s));
    int rc = cgw_store_session_get(gw->store, tenant, id, &s, &err);
    if (rc != CGW_OK) {
        lookup_failed(gw, req, rc, &err, "session");
        return;
    }
    json_t *runs = json_array();
    rc = cgw_store_run_list(gw->store, tenant, id, add_run, runs, &err);
    gw_session_t *loaded = cgw__map_get(&gw->sessions, id);
    json_t *settings = json_loadb(s.settings, s.settings_len, 0, NULL);
    json_t *out = json_pack(
        "{s:s, s:f, s:f, s:I, s:o, s:o, s:o}", "session_id", s.id, "created_at", s.created_at,
        "updated_at", s.updated_at, "message_count", (json_int_t)s.message_count, "settings",
        settings != NULL ? settings : json_object(), "runs", runs, "active_run_id",
        loaded != NULL && loaded->run != NULL ? json_string(loaded->run->id) : json_null());
    if (rc != CGW_OK) {
        cgw__gw_store_error(gw, req, rc, &err);
    } else {
        cgw__gw_json(gw, req, 200, out);
    }
    json_decref(out);
    cgw_store_session_clear(&s);
}

/* ---- run lifecycle ----------------------------------------------------------------------- */

static void run_free(gw_run_t *run)
{
    cgw_gateway_t *gw = run->gw;
    cgw__map_del(&gw->runs, run->id);
    run->session->runs_held--;
    cgw__gw_streams_run_gone(gw, run);
    cgw_runner_free(run->runner);
    cgw_dispatcher_free(run->dispatcher);
    cgw_eventlog_free(run->log);
    json_decref(run->approval_names);
    if (run->release_ev != NULL) {
        event_free(run->release_ev);
    }
    cgw_free(run);
}

/* Frees a finished run once no stream reads its log any more. */
static void on_release(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_run_t *run = arg;
    if (run->done && run->watchers == 0) {
        run_free(run);
    }
}

void cgw__gw_run_release_check(gw_run_t *run)
{
    if (run->done) {
        event_active(run->release_ev, EV_TIMEOUT, 0);
    }
}

static cgw_run_status_t status_of(const char *type, const char *code)
{
    if (strcmp(type, "stream_complete") == 0) {
        return CGW_RUN_COMPLETED;
    }
    if (strcmp(code, "cancelled") == 0) {
        return CGW_RUN_CANCELLED;
    }
    return strcmp(code, "shutdown") == 0 ? CGW_RUN_INTERRUPTED : CGW_RUN_FAILED;
}

static void count_event(cgw_gateway_t *gw, gw_run_t *run, const char *type, const json_t *ev)
{
    gw_metrics_t *m = &gw->metrics;
    m->events++;
    cgw__gw_count(&m->events_by_type, type, "", 1);
    if (strcmp(type, "usage") == 0) {
        static const char *const kinds[][2] = {
            {"input_tokens", "input"},
            {"output_tokens", "output"},
            {"cache_read_input_tokens", "cache_read"},
            {"cache_creation_input_tokens", "cache_creation"},
        };
        for (size_t i = 0; i < 4; i++) {
            json_int_t n = cgw_json_int(ev, kinds[i][0], 0);
            if (n > 0) {
                cgw__gw_count(&m->tokens, kinds[i][1], "", (uint64_t)n);
            }
        }
        cgw__gw_observe(&m->model_turn_seconds,
                        (double)(cgw__now_ms() - run->turn_started_ms) / 1000.0);
    } else if (strcmp(type, "tool_result") == 0 && json_object_get(ev, "agent_id") == NULL) {
        const json_t *e = json_object_get(ev, "error");
        const char *outcome = json_is_object(e)                  ? cgw_json_str(e, "code", "error")
                              : cgw_json_bool(ev, "is_error", 0) ? "soft_error"
                                                                 : "ok";
        const char *server = cgw_json_str(ev, "server", NULL);
        cgw__gw_count(&m->tool_calls, server != NULL ? server : "local", outcome, 1);
        cgw__gw_observe(&m->tool_call_seconds, (double)cgw_json_int(ev, "duration_ms", 0) / 1e3);
        run->turn_started_ms = cgw__now_ms();
    }
}

/* The EventLog observer: every entry goes to the store as it is appended. */
static void on_log_event(cgw_eventlog_t *log, const cgw_eventlog_entry_t *entry,
                         const json_t *event, void *user)
{
    (void)log;
    gw_run_t *run = user;
    cgw_gateway_t *gw = run->gw;
    char type[CGW_STORE_TYPE_MAX];
    snprintf(type, sizeof(type), "%.*s", (int)entry->type.len, entry->type.ptr);
    count_event(gw, run, type, event);
    if (strcmp(type, "tool_approval_request") == 0 && run->approval_names != NULL) {
        json_object_set(run->approval_names, cgw_json_str(event, "tool_call_id", ""),
                        json_object_get(event, "tool_name"));
    }
    cgw_store_event_t ev = {entry->seq, entry->ts, type, entry->json.ptr, entry->json.len};
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc;
    if (entry->terminal) {
        run->final_status = status_of(type, cgw_json_str(event, "code", ""));
        rc = cgw_store_run_finish(gw->store, run->tenant, run->id, run->final_status, &ev, NULL,
                                  &err);
        cgw__gw_count(&gw->metrics.runs_by_status, cgw_run_status_name(run->final_status), "", 1);
    } else {
        rc = cgw_store_event_append(gw->store, run->tenant, run->id, &ev, NULL, &err);
    }
    if (rc != CGW_OK && !run->store_failed) {
        run->store_failed = true;
        CGW_ERROR(gw->ctx, "gateway", "run %s: storing event %llu failed: %s", run->id,
                  (unsigned long long)entry->seq, err.message);
    }
}

/* Stores the messages the run added to the conversation (assistant turns, tool results). If
 * one cannot be stored, the run's turns are rolled back to its user message, in the store and
 * in memory: a stored prefix could end with a tool_use whose result is missing, which the API
 * would refuse on the next message. */
static void persist_conversation(gw_run_t *run)
{
    gw_session_t *s = run->session;
    cgw_gateway_t *gw = s->gw;
    size_t n = cgw_conversation_count(s->conv);
    for (size_t i = s->stored_messages; i < n; i++) {
        cgw_str_t m = cgw_conversation_get(s->conv, i);
        cgw_error_t err;
        cgw_error_clear(&err);
        if (cgw_store_message_append(gw->store, s->tenant, s->id, m.ptr, m.len, NULL, &err) !=
            CGW_OK) {
            CGW_ERROR(gw->ctx, "gateway", "session %s: storing message %zu failed: %s", s->id, i,
                      err.message);
            if (cgw_store_message_truncate(gw->store, s->tenant, s->id, run->conv_start, &err) !=
                CGW_OK) {
                CGW_ERROR(gw->ctx, "gateway", "session %s: rollback failed: %s", s->id,
                          err.message);
            }
            cgw_conversation_truncate(s->conv, run->conv_start);
            s->stored_messages = run->conv_start;
            return;
        }
        s->stored_messages = i + 1;
    }
}

/* A failed run takes its user message back out of the conversation: a message the API
 * refuses (a malformed content block, say) must not poison every later turn of the session.
 * The client sees the failure in the run's error event and may send it again. Cancelled and
 * interrupted runs keep theirs. */
static void unstore_user_message(gw_run_t *run)
{
    gw_session_t *s = run->session;
    cgw_error_t err;
    cgw_error_clear(&err);
    if (run->conv_start == 0 || cgw_store_message_truncate(s->gw->store, s->tenant, s->id,
                                                           run->conv_start - 1, &err) != CGW_OK) {
        CGW_ERROR(s->gw->ctx, "gateway", "session %s: cannot remove the failed message: %s", s->id,
                  err.message);
        return;
    }
    cgw_conversation_truncate(s->conv, run->conv_start - 1);
    s->stored_messages = run->conv_start - 1;
}

/* The run is over (runner done, or aborted): store its messages, let the session run again. */
static void run_finished(gw_run_t *run)
{
    cgw_gateway_t *gw = run->gw;
    if (run->done) {
        return;
    }
    run->done = true;
    gw->active_runs--;
    gw_session_t *s = run->session;
    if (run->final_status == CGW_RUN_FAILED) {
        unstore_user_message(run);
    }
    persist_conversation(run);
    if (s->stored_messages == cgw_conversation_count(s->conv)) {
        cgw_conversation_free(s->conv); /* all in the store: read back for the next run */
        s->conv = NULL;
    }
    s->run = NULL;
    CGW_INFO(gw->ctx, "gateway", "run %s ended: %s after %llu ms", run->id,
             cgw_run_status_name(run->final_status),
             (unsigned long long)(cgw__now_ms() - run->started_ms));
    cgw__gw_run_release_check(run);
}

static void on_run_done(cgw_runner_t *runner, const cgw_run_result_t *result, void *user)
{
    (void)runner;
    (void)result;
    run_finished(user);
}

/* ---- starting a run ---------------------------------------------------------------------- */

static bool needs_approval(const char *tool_name, const json_t *input, void *user)
{
    (void)input;
    cgw_gateway_t *gw = user;
    for (size_t i = 0; i < gw->n_approval_tools; i++) {
        if (strcmp(gw->approval_tools[i], "*") == 0 ||
            strcmp(gw->approval_tools[i], tool_name) == 0) {
            return true;
        }
    }
    return false;
}

/* The request is in the run's log (tool_approval_request); the answer comes over HTTP. */
static void request_approval(const cgw_approval_request_t *req, void *user)
{
    (void)req;
    (void)user;
}

/* Tools the session may not use: every tool not in its allowed_tools (when it has one). */
static int excluded_tools(gw_run_t *run, const json_t *allowed, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(allowed)) {
        return CGW_OK;
    }
    json_t *defs = cgw_dispatcher_tool_definitions(run->dispatcher);
    if (defs == NULL) {
        return CGW_ENOMEM;
    }
    *out = cgw__calloc(json_array_size(defs) + 1, sizeof(char *));
    size_t i, j;
    json_t *d, *a;
    json_array_foreach(defs, i, d)
    {
        const char *name = cgw_json_str(d, "name", "");
        bool ok = false;
        json_array_foreach(allowed, j, a)
        {
            ok = ok || strcmp(json_string_value(a), name) == 0;
        }
        if (!ok && *out != NULL) {
            /* Names stay valid: cgw_runner_new copies them before defs is released. */
            (*out)[(*n)++] = name;
        }
    }
    run->excluded_defs = defs;
    return *out != NULL ? CGW_OK : CGW_ENOMEM;
}

static int make_runner(gw_run_t *run)
{
    cgw_gateway_t *gw = run->gw;
    const json_t *st = run->session->settings;
    cgw_dispatcher_options_t d;
    cgw_dispatcher_options_init(&d);
    d.mcp = run->mcp;
    d.approvals = run->session->approvals;
    d.needs_approval = needs_approval;
    d.request_approval = request_approval;
    d.approval_user = gw;
    d.approval_timeout_ms = gw->approval_timeout_ms;
    int rc = cgw_dispatcher_new(gw->ctx, &d, &run->dispatcher);
    const char **excl = NULL;
    size_t n_excl = 0;
    if (rc == CGW_OK) {
        rc = excluded_tools(run, json_object_get(st, "allowed_tools"), &excl, &n_excl);
    }
    if (rc == CGW_OK) {
        cgw_runner_options_t o;
        cgw_runner_options_init(&o);
        o.client = gw->client;
        o.dispatcher = run->dispatcher;
        o.log = run->log;
        o.session_id = run->session->id;
        o.system_prompt = cgw_json_str(st, "system", gw->system_prompt);
        o.model = cgw_json_str(st, "model", gw->model);
        o.max_turns = (int)cgw_json_int(st, "max_turns", gw->max_turns);
        o.tool_timeout_ms = gw->tool_timeout_ms;
        o.excluded_tools = excl;
        o.n_excluded_tools = n_excl;
        o.stub_delay_ms = gw->stub_delay_ms;
        rc = cgw_runner_new(gw->ctx, &o, &run->runner, NULL);
    }
    cgw_free(excl);
    json_decref(run->excluded_defs);
    run->excluded_defs = NULL;
    return rc;
}

static gw_run_t *run_new(cgw_gateway_t *gw, gw_session_t *s, const cgw_store_run_t *rec)
{
    gw_run_t *run = cgw__calloc(1, sizeof(*run));
    if (run == NULL) {
        return NULL;
    }
    memcpy(run->id, rec->id, sizeof(run->id));
    memcpy(run->tenant, s->tenant, sizeof(run->tenant));
    run->gw = gw;
    run->session = s;
    s->runs_held++;
    run->mcp = gw->mcp;
    run->started_ms = run->turn_started_ms = cgw__now_ms();
    run->release_ev = event_new(cgw_ctx_base(gw->ctx), -1, 0, on_release, run);
    run->approval_names = json_object();
    cgw_eventlog_options_t lo;
    cgw_eventlog_options_init(&lo);
    lo.session_id = s->id;
    lo.on_event = on_log_event;
    lo.on_event_user = run;
    if (run->release_ev == NULL || cgw_eventlog_new(gw->ctx, &lo, &run->log) != CGW_OK ||
        make_runner(run) != CGW_OK || cgw__map_put(&gw->runs, run->id, run) != CGW_OK) {
        cgw__map_del(&gw->runs, run->id);
        run_free(run);
        return NULL;
    }
    return run;
}

/* Checks {"content": "text" | [blocks]} and builds the user message. NULL: 400 sent. */
static json_t *user_message(cgw_gateway_t *gw, struct evhttp_request *req, json_t *body)
{
    json_t *c = json_object_get(body, "content");
    bool ok = (json_is_string(c) && json_string_length(c) > 0) ||
              (json_is_array(c) && json_array_size(c) > 0);
    size_t i;
    json_t *blk;
    json_array_foreach(c, i, blk)
    {
        ok = ok && json_is_string(json_object_get(blk, "type"));
    }
    if (!ok || json_object_size(body) != 1) {
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "the body must be {\"content\": <non-empty text or array of content "
                      "blocks with a \"type\">} and nothing else");
        return NULL;
    }
    return json_pack("{s:s, s:O}", "role", "user", "content", c);
}

/* Appends and stores the user message, creates the run record. */
static int begin_run(cgw_gateway_t *gw, gw_session_t *s, const json_t *msg, cgw_store_run_t *rec,
                     cgw_error_t *err)
{
    int rc = conversation_load(gw, s, err);
    if (rc != CGW_OK) {
        return rc;
    }
    size_t before = cgw_conversation_count(s->conv);
    rc = cgw_conversation_append(s->conv, msg);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_str_t m = cgw_conversation_get(s->conv, before);
    rc = cgw_store_message_append(gw->store, s->tenant, s->id, m.ptr, m.len, NULL, err);
    if (rc == CGW_OK) {
        s->stored_messages = before + 1;
        rc = cgw_store_run_create(gw->store, s->tenant, s->id, NULL, rec, err);
    } else {
        cgw_conversation_truncate(s->conv, before);
    }
    return rc;
}

static bool wants_stream(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return a != NULL && strstr(a, "text/event-stream") != NULL;
}

static void start_run(cgw_gateway_t *gw, struct evhttp_request *req, gw_session_t *s,
                      const json_t *msg)
{
    cgw_error_t err;
    cgw_error_clear(&err);
    cgw_store_run_t rec;
    int rc = begin_run(gw, s, msg, &rec, &err);
    if (rc != CGW_OK) {
        cgw__gw_store_error(gw, req, rc, &err);
        return;
    }
    gw_run_t *run = run_new(gw, s, &rec);
    rc = run == NULL ? CGW_ENOMEM : cgw_runner_run(run->runner, s->conv, on_run_done, run);
    if (rc != CGW_OK) {
        cgw_store_run_finish(gw->store, s->tenant, rec.id, CGW_RUN_FAILED, NULL, NULL, NULL);
        if (run != NULL) {
            run_free(run);
        }
        cgw__gw_error(gw, req, 500, "api_error", "could not start the run: %s", cgw_strerror(rc));
        return;
    }
    run->conv_start = s->stored_messages;
    s->run = run;
    gw->active_runs++;
    gw->metrics.runs_started++;
    CGW_INFO(gw->ctx, "gateway", "run %s started on session %s (%zu messages)", run->id, s->id,
             cgw_conversation_count(s->conv));
    if (wants_stream(req)) {
        cgw__gw_stream_run(gw, req, run);
        return;
    }
    json_t *out =
        json_pack("{s:s, s:s, s:s}", "run_id", run->id, "session_id", s->id, "status", "running");
    cgw__gw_json(gw, req, 202, out);
    json_decref(out);
}

void cgw__gw_session_message(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                             const char *id)
{
    json_t *body = cgw__gw_body_object(gw, req, false);
    if (body == NULL) {
        return;
    }
    json_t *msg = user_message(gw, req, body);
    json_decref(body);
    if (msg == NULL) {
        return;
    }
    int rc;
    cgw_error_t err;
    cgw_error_clear(&err);
    gw_session_t *s = session_load(gw, tenant, id, &rc, &err);
    if (s == NULL) {
        lookup_failed(gw, req, rc, &err, "session");
    } else if (s->run != NULL) {
        cgw__gw_error(gw, req, 409, "conflict_error", "run %s is still in progress on this session",
                      s->run->id);
    } else if (gw->active_runs >= gw->max_runs) {
        cgw__gw_error(gw, req, 429, "rate_limit_error",
                      "%zu runs are in progress; the limit is %zu", gw->active_runs, gw->max_runs);
    } else if (wants_stream(req) && !cgw__gw_stream_allowed(gw, req)) {
        /* 429 sent, and no run started that nobody would watch */
    } else {
        start_run(gw, req, s, msg);
    }
    json_decref(msg);
}

/* ---- runs -------------------------------------------------------------------------------- */

gw_run_t *cgw__gw_run_find(cgw_gateway_t *gw, const char *tenant, const char *id)
{
    gw_run_t *run = cgw__map_get(&gw->runs, id);
    return run != NULL && strcmp(run->tenant, tenant) == 0 ? run : NULL;
}

void cgw__gw_run_get(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                     const char *id)
{
    cgw_store_run_t r;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_store_run_get(gw->store, tenant, id, &r, &err);
    if (rc != CGW_OK) {
        lookup_failed(gw, req, rc, &err, "run");
        return;
    }
    json_t *out = run_json(&r);
    cgw__gw_json(gw, req, 200, out);
    json_decref(out);
}

void cgw__gw_run_cancel(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                        const char *id)
{
    gw_run_t *run = cgw__gw_run_find(gw, tenant, id);
    if (run != NULL && !run->done && cgw_runner_cancel(run->runner) == CGW_OK) {
        json_t *out = json_pack("{s:s, s:s}", "run_id", id, "status", "cancelling");
        cgw__gw_json(gw, req, 202, out);
        json_decref(out);
        return;
    }
    cgw_store_run_t r;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_store_run_get(gw->store, tenant, id, &r, &err);
    if (rc != CGW_OK) {
        lookup_failed(gw, req, rc, &err, "run");
        return;
    }
    cgw__gw_error(gw, req, 409, "conflict_error", "run %s is not in progress (%s)", id,
                  cgw_run_status_name(r.status));
}

/* allow_tool_type: the tool joins the session's "approved_tools" setting, so the approval
 * outlives this process and an unload (session_load allows them again). */
static void remember_approval(cgw_gateway_t *gw, gw_session_t *s, gw_run_t *run, const char *call)
{
    json_t *name = run != NULL ? json_object_get(run->approval_names, call) : NULL;
    if (!json_is_string(name)) {
        return;
    }
    json_t *list = json_object_get(s->settings, "approved_tools");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(s->settings, "approved_tools", list);
    }
    json_array_append(list, name);
    size_t len = 0;
    char *text = cgw_json_dump(s->settings, &len);
    cgw_error_t err;
    cgw_error_clear(&err);
    if (text == NULL ||
        cgw_store_session_update_settings(gw->store, s->tenant, s->id, text, len, &err) != CGW_OK) {
        CGW_ERROR(gw->ctx, "gateway", "session %s: approval of %s not stored: %s", s->id,
                  json_string_value(name), err.message);
    }
    cgw_free(text);
}

static bool approval_body(const json_t *b, const char **call, const char **nonce, bool *approved,
                          bool *allow)
{
    const json_t *ap = json_object_get(b, "approved");
    const json_t *al = json_object_get(b, "allow_tool_type");
    *call = cgw_json_str(b, "tool_call_id", NULL);
    *nonce = cgw_json_str(b, "nonce", NULL);
    *approved = json_is_true(ap);
    *allow = json_is_true(al);
    return *call != NULL && *nonce != NULL && json_is_boolean(ap) &&
           (al == NULL || json_is_boolean(al));
}

void cgw__gw_run_approval(cgw_gateway_t *gw, struct evhttp_request *req, const char *tenant,
                          const char *id)
{
    json_t *b = cgw__gw_body_object(gw, req, false);
    if (b == NULL) {
        return;
    }
    const char *call, *nonce;
    bool approved, allow;
    cgw_store_run_t r;
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc;
    gw_session_t *s;
    if (!approval_body(b, &call, &nonce, &approved, &allow)) {
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "the body must be {\"tool_call_id\": string, \"nonce\": string, "
                      "\"approved\": bool, \"allow_tool_type\": bool (optional)}");
    } else if ((rc = cgw_store_run_get(gw->store, tenant, id, &r, &err)) != CGW_OK) {
        lookup_failed(gw, req, rc, &err, "run");
    } else if ((s = session_load(gw, tenant, r.session_id, &rc, &err)) == NULL) {
        lookup_failed(gw, req, rc, &err, "session");
    } else {
        rc = cgw_approvals_answer(s->approvals, call, nonce, approved, allow);
        if (rc == CGW_OK && approved && allow) {
            remember_approval(gw, s, cgw__gw_run_find(gw, tenant, id), call);
        }
        if (rc == CGW_OK) {
            json_t *out =
                json_pack("{s:b, s:s, s:b}", "ok", 1, "tool_call_id", call, "approved", approved);
            cgw__gw_json(gw, req, 200, out);
            json_decref(out);
        } else if (rc == CGW_ENOENT) {
            cgw__gw_error(gw, req, 404, "not_found_error",
                          "no approval request for this "
                          "tool_call_id");
        } else if (rc == CGW_EEXPIRED) {
            cgw__gw_error(gw, req, 410, "expired_error", "the approval request has expired");
        } else {
            cgw__gw_error(gw, req, 409, "conflict_error",
                          "the approval request was already answered or the nonce is wrong");
        }
    }
    json_decref(b);
}

/* ---- teardown ---------------------------------------------------------------------------- */

void cgw__gw_runs_abort(cgw_gateway_t *gw, const char *message, const char *code)
{
    json_t *ev = json_pack("{s:s, s:s, s:s}", "type", "error", "error", message, "code", code);
    for (size_t i = 0; i < gw->runs.cap; i++) {
        gw_run_t *run = gw->runs.slots[i].value;
        if (gw->runs.slots[i].key == NULL || run->done) {
            continue;
        }
        /* The terminal entry first (stored, delivered to streams), then the runner goes: its
         * own cancel event finds the log closed. */
        if (ev != NULL) {
            cgw_eventlog_append(run->log, ev, NULL);
        }
        cgw_runner_free(run->runner);
        run->runner = NULL;
        run_finished(run);
    }
    json_decref(ev);
}

void cgw__gw_sessions_free_all(cgw_gateway_t *gw)
{
    /* Runs first: their runners use the sessions' conversations and approvals. */
    for (size_t i = 0; i < gw->runs.cap; i++) {
        while (gw->runs.slots != NULL && gw->runs.slots[i].key != NULL) {
            gw_run_t *run = gw->runs.slots[i].value;
            if (!run->done) {
                gw->active_runs--;
            }
            run_free(run);
        }
    }
    for (size_t i = 0; i < gw->sessions.cap; i++) {
        if (gw->sessions.slots[i].key != NULL) {
            session_free(gw->sessions.slots[i].value);
        }
    }
    cgw__map_free(&gw->sessions);
}
