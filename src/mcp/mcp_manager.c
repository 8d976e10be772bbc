/*
 * The MCP client manager: one session per configured server, the merged tool list, tool
 * calls, restarts. See include/cgw/mcp.h for the contract.
 *
 * Servers are indexed in config order and never reordered, so the toolmap (builtin names
 * first, then the first server in config order) is rebuilt from scratch from every server's
 * last known tool list whenever one changes: a server that is restarting keeps its last list,
 * so its tools stay advertised while it comes back.
 *
 * Calls: each call is on its server's list while in flight so that a dying server fails
 * exactly its own calls. Failures known before anything is sent (unknown tool, server not
 * running) are completed from a zero-delay timer, so `done` never runs inside
 * cgw_mcp_manager_call.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "mcp/mcp_client.h"
#include "mcp/mcp_result.h"

#define RESTART_INITIAL_MS 500
#define RESTART_MAX_MS 30000
#define STABLE_MS 10000 /* a server ready this long before dying restarts at the initial delay */
#define PING_INTERVAL_MS 30000

typedef struct server server_t;

struct cgw_mcp_call {
    cgw_mcp_manager_t *mgr;
    server_t *srv;
    char *tool;                /* exposed name */
    char *server_tool;         /* the server's name for it */
    cgw__mcp_req_t *req;       /* while the request is in flight */
    struct event *deferred;    /* a failure waiting to be delivered */
    cgw_mcp_outcome_t outcome; /* for deferred failures */
    int status;
    cgw_mcp_call_done_cb done;
    void *user;
    uint64_t start_us;
    cgw_mcp_call_t *prev, *next;
};

struct server {
    cgw_mcp_manager_t *mgr;
    size_t index;
    const cgw_mcp_server_config_t *cfg;
    cgw__mcp_client_t *client;
    cgw_mcp_server_state_t state;
    int initial_done; /* counted for the started callback */
    char reason[512];
    cgw_buf_t stderr_tail; /* copied when a session ends */
    char version[32];
    json_t *tools; /* last known list */
    uint64_t calls, errors, restarts;
    uint32_t backoff_ms, attempts;
    uint64_t ready_since_ms;
    struct event *restart_timer;
    struct event *ping_timer;
    cgw__mcp_req_t *ping_req;
};

struct cgw_mcp_manager {
    cgw_ctx_t *ctx;
    cgw_mcp_manager_options_t opts;
    char **builtins; /* copies behind opts.naming.builtin_names */
    char **roots;    /* NULL-terminated file:// URIs */
    server_t *servers;
    size_t n;
    cgw_mcp_toolmap_t *map;
    json_t *defs;            /* exposed name -> the server's tool object */
    cgw_mcp_call_t *pending; /* calls not attached to a server (deferred failures) */
    int started;
    cgw_mcp_started_cb started_cb;
    void *started_user;
    struct event *started_ev;
    int started_fired;
};

static void start_server(server_t *s);

static uint64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

const char *cgw_mcp_server_state_name(cgw_mcp_server_state_t state)
{
    switch (state) {
    case CGW_MCP_SERVER_STARTING:
        return "starting";
    case CGW_MCP_SERVER_READY:
        return "ready";
    case CGW_MCP_SERVER_RESTARTING:
        return "restarting";
    case CGW_MCP_SERVER_FAILED:
        return "failed";
    }
    return "?";
}

/* ---- status ---------------------------------------------------------------------------- */

static void fill_status(const server_t *s, cgw_mcp_server_status_t *st)
{
    st->name = s->cfg->name;
    st->state = s->state;
    st->reason = s->reason;
    st->stderr_tail = s->client != NULL             ? cgw__mcp_client_stderr(s->client)
                      : s->stderr_tail.data != NULL ? s->stderr_tail.data
                                                    : "";
    st->protocol_version = s->version;
    st->pid = s->client != NULL ? cgw__mcp_client_pid(s->client) : 0;
    st->tool_count = json_array_size(s->tools);
    st->calls = s->calls;
    st->errors = s->errors;
    st->restarts = s->restarts;
}

static void set_state(server_t *s, cgw_mcp_server_state_t state)
{
    s->state = state;
    cgw_mcp_manager_t *m = s->mgr;
    if (m->opts.on_server_state != NULL) {
        cgw_mcp_server_status_t st;
        fill_status(s, &st);
        m->opts.on_server_state(m, s->index, &st, m->opts.user);
    }
}

/* ---- the merged tool list ---------------------------------------------------------------- */

static int rebuild_tools(cgw_mcp_manager_t *m)
{
    cgw_mcp_toolmap_t *map = NULL;
    json_t *defs = json_object();
    int rc = defs != NULL ? cgw_mcp_toolmap_new(&m->opts.naming, &map) : CGW_ENOMEM;
    for (size_t i = 0; rc == CGW_OK && i < m->n; i++) {
        size_t k;
        json_t *t;
        json_array_foreach(m->servers[i].tools, k, t)
        {
            const cgw_mcp_tool_ref_t *ref = NULL;
            cgw_mcp_tool_status_t st;
            rc = cgw_mcp_toolmap_add(map, m->servers[i].cfg->name, cgw_json_str(t, "name", ""), &st,
                                     &ref);
            if (rc != CGW_OK) {
                break;
            }
            if (st == CGW_MCP_TOOL_ADDED) {
                json_object_set(defs, ref->exposed, t);
            } else {
                CGW_DEBUG(m->ctx, "mcp", "tool '%s' of server '%s' not advertised: %s",
                          cgw_json_str(t, "name", ""), m->servers[i].cfg->name,
                          cgw_mcp_tool_status_name(st));
            }
        }
    }
    if (rc != CGW_OK) {
        cgw_mcp_toolmap_free(map);
        json_decref(defs);
        CGW_ERROR(m->ctx, "mcp", "cannot rebuild the tool list: %s", cgw_strerror(rc));
        return rc;
    }
    cgw_mcp_toolmap_free(m->map);
    json_decref(m->defs);
    m->map = map;
    m->defs = defs;
    return CGW_OK;
}

static void tools_changed(cgw_mcp_manager_t *m)
{
    if (rebuild_tools(m) == CGW_OK && m->started_fired && m->opts.on_tools_changed != NULL) {
        m->opts.on_tools_changed(m, m->opts.user);
    }
}

/* ---- starting and restarting ---------------------------------------------------------------- */

static void started_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_mcp_manager_t *m = arg;
    size_t ready = 0, failed = 0;
    for (size_t i = 0; i < m->n; i++) {
        ready += m->servers[i].state == CGW_MCP_SERVER_READY;
        failed += m->servers[i].state == CGW_MCP_SERVER_FAILED;
    }
    m->started_fired = 1;
    if (m->started_cb != NULL) {
        m->started_cb(m, ready, failed, m->started_user);
    }
}

static void initial_done(server_t *s)
{
    if (s->initial_done) {
        return;
    }
    s->initial_done = 1;
    cgw_mcp_manager_t *m = s->mgr;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->servers[i].initial_done) {
            return;
        }
    }
    struct timeval zero = {0, 0};
    event_add(m->started_ev, &zero);
}

static void keep_stderr(server_t *s)
{
    if (s->client != NULL) {
        const char *tail = cgw__mcp_client_stderr(s->client);
        cgw_buf_reset(&s->stderr_tail);
        cgw_buf_append_str(&s->stderr_tail, tail);
    }
}

static void drop_client(server_t *s)
{
    event_del(s->ping_timer);
    keep_stderr(s);
    cgw__mcp_client_free(s->client, 1); /* detached: shutdown continues in the background */
    s->client = NULL;
}

static void schedule_restart(server_t *s)
{
    cgw_mcp_manager_t *m = s->mgr;
    uint32_t max = m->opts.restart_max_ms;
    if (m->opts.restart_max_attempts > 0 && s->attempts >= m->opts.restart_max_attempts) {
        CGW_ERROR(m->ctx, "mcp", "server '%s': giving up after %u restart attempts", s->cfg->name,
                  (unsigned)s->attempts);
        set_state(s, CGW_MCP_SERVER_FAILED);
        return;
    }
    uint32_t delay = s->backoff_ms;
    s->backoff_ms = s->backoff_ms > max / 2 ? max : s->backoff_ms * 2;
    CGW_WARN(m->ctx, "mcp", "server '%s': restarting in %u ms (%s)", s->cfg->name, (unsigned)delay,
             s->reason);
    struct timeval tv = {delay / 1000, (long)(delay % 1000) * 1000};
    event_add(s->restart_timer, &tv);
    if (s->state != CGW_MCP_SERVER_RESTARTING) {
        set_state(s, CGW_MCP_SERVER_RESTARTING);
    }
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_t *s = arg;
    s->attempts++;
    start_server(s);
}

static void fail_server(server_t *s, const char *why)
{
    snprintf(s->reason, sizeof(s->reason), "%s", why);
    if (s->state == CGW_MCP_SERVER_RESTARTING) {
        schedule_restart(s); /* keep trying; the attempt counter decides when to stop */
        return;
    }
    CGW_ERROR(s->mgr->ctx, "mcp", "%s", why);
    set_state(s, CGW_MCP_SERVER_FAILED);
    initial_done(s);
}

static void arm_ping(server_t *s)
{
    uint32_t ms = s->mgr->opts.ping_interval_ms;
    if (ms > 0) {
        struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000};
        event_add(s->ping_timer, &tv);
    }
}

static void on_closed(void *user, int code, const char *detail);

static void ping_reply(void *user, int rc, const json_t *result, const json_t *rpc_error,
                       const char *detail)
{
    (void)result;
    (void)rpc_error;
    (void)detail;
    server_t *s = user;
    s->ping_req = NULL;
    if (rc == CGW_OK || rc == CGW_ERPC) {
        arm_ping(s); /* any answer, even an error, shows the server is alive */
        return;
    }
    if (rc != CGW_ETIMEDOUT || s->client == NULL) {
        return; /* the session ended for another reason, reported elsewhere */
    }
    char why[200];
    snprintf(why, sizeof(why), "server '%s' did not answer a ping: considered dead", s->cfg->name);
    cgw__mcp_client_fail_pending(s->client, CGW_ESERVERDIED, why);
    on_closed(s, CGW_ESERVERDIED, why);
}

static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_t *s = arg;
    if (s->state != CGW_MCP_SERVER_READY || s->client == NULL || s->ping_req != NULL) {
        return;
    }
    uint32_t timeout = s->mgr->opts.ping_interval_ms;
    if (s->cfg->startup_timeout_ms > 0 && s->cfg->startup_timeout_ms < timeout) {
        timeout = s->cfg->startup_timeout_ms;
    }
    cgw__mcp_req_opts_t o = {timeout, timeout, NULL, NULL};
    if (cgw__mcp_client_request(s->client, "ping", NULL, &o, ping_reply, s, &s->ping_req) !=
        CGW_OK) {
        s->ping_req = NULL;
    }
}

static void on_ready(void *user, int rc, const char *detail)
{
    server_t *s = user;
    cgw_mcp_manager_t *m = s->mgr;
    if (rc != CGW_OK) {
        drop_client(s);
        fail_server(s, detail != NULL ? detail : cgw_strerror(rc));
        return;
    }
    snprintf(s->version, sizeof(s->version), "%s", cgw__mcp_client_version(s->client));
    json_t *tools = json_incref((json_t *)cgw__mcp_client_tools(s->client));
    int changed = !json_equal(tools, s->tools);
    json_decref(s->tools);
    s->tools = tools;
    if (s->state == CGW_MCP_SERVER_RESTARTING) {
        s->restarts++;
        CGW_INFO(m->ctx, "mcp", "server '%s' is back (restart %llu)", s->cfg->name,
                 (unsigned long long)s->restarts);
    }
    s->attempts = 0;
    s->ready_since_ms = cgw__now_ms();
    set_state(s, CGW_MCP_SERVER_READY);
    arm_ping(s);
    if (changed || !s->initial_done) {
        tools_changed(m);
    }
    initial_done(s);
}

static void on_client_tools_changed(void *user)
{
    server_t *s = user;
    json_t *tools = json_incref((json_t *)cgw__mcp_client_tools(s->client));
    json_decref(s->tools);
    s->tools = tools;
    tools_changed(s->mgr);
}

static void on_closed(void *user, int code, const char *detail)
{
    (void)code;
    server_t *s = user;
    cgw_mcp_manager_t *m = s->mgr;
    CGW_WARN(m->ctx, "mcp", "%s", detail);
    snprintf(s->reason, sizeof(s->reason), "%s", detail);
    drop_client(s);
    if (!m->opts.restart) {
        set_state(s, CGW_MCP_SERVER_FAILED);
        return;
    }
    if (cgw__now_ms() - s->ready_since_ms >= STABLE_MS) {
        s->backoff_ms = m->opts.restart_initial_ms;
    }
    s->attempts = 0;
    schedule_restart(s);
}

static void start_server(server_t *s)
{
    cgw_mcp_manager_t *m = s->mgr;
    const cgw_mcp_server_config_t *cfg = s->cfg;
    char why[600];
    if (cfg->error_code != CGW_OK || cfg->transport != CGW_MCP_TRANSPORT_STDIO) {
        snprintf(why, sizeof(why), "%s",
                 cfg->error != NULL ? cfg->error : "MCP server transport not supported yet");
        fail_server(s, why);
        return;
    }
    cgw__stdio_params_t sp = {
        cfg->name, cfg->command,     cfg->args,          cfg->env,
        cfg->cwd,  m->opts.max_line, m->opts.stderr_cap, (int)m->opts.term_grace_ms};
    cgw__mcp_client_params_t cp = {cfg->name,
                                   &sp,
                                   cfg->startup_timeout_ms,
                                   (const char *const *)m->roots,
                                   m->opts.sampling,
                                   m->opts.elicitation,
                                   m->opts.handler_user,
                                   0};
    cgw__mcp_client_cbs_t cbs = {on_ready, on_client_tools_changed, on_closed, s};
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw__mcp_client_new(m->ctx, &cp, &cbs, &s->client, &err);
    if (rc != CGW_OK) {
        snprintf(why, sizeof(why), "MCP server '%s': %s", cfg->name, err.message);
        fail_server(s, why);
        return;
    }
    if (s->state != CGW_MCP_SERVER_RESTARTING) {
        set_state(s, CGW_MCP_SERVER_STARTING);
    }
}

/* ---- calls -------------------------------------------------------------------------------- */

static void link_call(cgw_mcp_call_t **head, cgw_mcp_call_t *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head != NULL) {
        (*head)->prev = c;
    }
    *head = c;
}

static void unlink_call(cgw_mcp_call_t **head, cgw_mcp_call_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (*head == c) {
        *head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void free_call(cgw_mcp_call_t *c)
{
    if (c->deferred != NULL) {
        event_free(c->deferred);
    }
    cgw__mcp_outcome_clear(&c->outcome);
    cgw_free(c->tool);
    cgw_free(c->server_tool);
    cgw_free(c);
}

/* Delivers the outcome and frees the call. */
static void finish(cgw_mcp_call_t *c, int status, const json_t *raw)
{
    unlink_call(&c->mgr->pending, c);
    if (c->srv != NULL && c->outcome.error != NULL) {
        c->srv->errors++;
    }
    cgw_mcp_call_result_t r = {status,
                               c->tool,
                               c->srv != NULL ? c->srv->cfg->name : NULL,
                               c->outcome.result,
                               c->outcome.error,
                               c->outcome.content,
                               raw,
                               now_us() - c->start_us};
    c->done(&r, c->user);
    free_call(c);
}

static void call_reply(void *user, int rc, const json_t *result, const json_t *rpc_error,
                       const char *detail)
{
    cgw_mcp_call_t *c = user;
    c->req = NULL;
    int mrc;
    if (rc == CGW_OK) {
        mrc = cgw__mcp_outcome_from_result(result, c->server_tool, &c->outcome);
    } else if (rc == CGW_ERPC) {
        mrc = cgw__mcp_outcome_from_rpc_error(rpc_error, &c->outcome);
    } else {
        mrc = cgw__mcp_outcome_from_failure(rc, detail, &c->outcome);
    }
    finish(c, mrc != CGW_OK ? mrc : rc, rc == CGW_OK ? result : NULL);
}

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_mcp_call_t *c = arg;
    finish(c, c->status, NULL);
}

/* Completes the call from the loop with an error decided up front. */
static int defer_failure(cgw_mcp_call_t *c, int status, const char *code, const char *sub_code,
                         const char *message)
{
    c->status = status;
    c->deferred = evtimer_new(cgw_ctx_base(c->mgr->ctx), deferred_cb, c);
    if (c->deferred == NULL ||
        cgw__mcp_outcome_error(code, sub_code, message, &c->outcome) != CGW_OK) {
        return CGW_ENOMEM;
    }
    link_call(&c->mgr->pending, c);
    struct timeval zero = {0, 0};
    event_add(c->deferred, &zero);
    return CGW_OK;
}

static int send_call(cgw_mcp_call_t *c, const json_t *input, const cgw_mcp_call_options_t *opts)
{
    server_t *s = c->srv;
    cgw__mcp_req_opts_t ro = {0};
    ro.timeout_ms = opts != NULL && opts->timeout_ms ? opts->timeout_ms : s->cfg->tool_timeout_ms;
    ro.progress = opts != NULL ? opts->progress : NULL;
    ro.progress_user = opts != NULL ? opts->progress_user : NULL;
    int rc =
        cgw__mcp_client_call_tool(s->client, c->server_tool, input, &ro, call_reply, c, &c->req);
    if (rc == CGW_OK) {
        s->calls++;
    }
    return rc;
}

/* The server a toolmap entry points to; the map is built from m->servers, so it exists. */
static server_t *find_server(cgw_mcp_manager_t *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->servers[i].cfg->name, name) == 0) {
            return &m->servers[i];
        }
    }
    return NULL;
}

int cgw_mcp_manager_call(cgw_mcp_manager_t *m, const char *tool, const json_t *input,
                         const cgw_mcp_call_options_t *opts, cgw_mcp_call_done_cb done, void *user,
                         cgw_mcp_call_t **handle)
{
    if (m == NULL || tool == NULL || done == NULL || (input != NULL && !json_is_object(input))) {
        return CGW_EINVAL;
    }
    cgw_mcp_call_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL || (c->tool = cgw__strdup(tool)) == NULL) {
        cgw_free(c);
        return CGW_ENOMEM;
    }
    c->mgr = m;
    c->done = done;
    c->user = user;
    c->start_us = now_us();
    const cgw_mcp_tool_ref_t *ref = m->map != NULL ? cgw_mcp_toolmap_find(m->map, tool) : NULL;
    char msg[300];
    int rc;
    if (ref == NULL) {
        snprintf(msg, sizeof(msg), "Unknown tool: %s", tool);
        rc = defer_failure(c, CGW_EUNKNOWNTOOL, "unknown_tool", NULL, msg);
    } else {
        c->srv = find_server(m, ref->server);
        c->server_tool = cgw__strdup(ref->tool);
        if (c->server_tool == NULL || c->srv == NULL) {
            rc = c->server_tool == NULL ? CGW_ENOMEM : CGW_EINTERNAL;
        } else if (c->srv->state != CGW_MCP_SERVER_READY || c->srv->client == NULL) {
            snprintf(msg, sizeof(msg), "MCP server unavailable: %s (%s)", ref->server,
                     cgw_mcp_server_state_name(c->srv->state));
            rc = defer_failure(c, CGW_ENOTREADY, "tool_error", "connection_error", msg);
            c->srv->errors++;
            c->srv = NULL; /* counted once, here */
        } else {
            rc = send_call(c, input, opts);
            if (rc == CGW_ECLOSED) {
                snprintf(msg, sizeof(msg), "MCP server unavailable: %s (connection closed)",
                         ref->server);
                rc = defer_failure(c, CGW_ESERVERDIED, "tool_error", "connection_error", msg);
            } else if (rc != CGW_OK && rc != CGW_ENOMEM) {
                /* e.g. CGW_E2BIG: the server stopped reading its stdin */
                snprintf(msg, sizeof(msg), "cannot send the call to MCP server %s: %s", ref->server,
                         cgw_strerror(rc));
                rc = defer_failure(c, rc, "tool_error", "connection_error", msg);
            }
        }
    }
    if (rc != CGW_OK) {
        unlink_call(&m->pending, c);
        free_call(c);
        return rc;
    }
    if (handle != NULL) {
        *handle = c;
    }
    return CGW_OK;
}

void cgw_mcp_call_cancel(cgw_mcp_call_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->req != NULL) {
        cgw__mcp_client_cancel(c->srv->client, c->req, "cancelled by the caller");
        return; /* call_reply finished it */
    }
    cgw__mcp_outcome_clear(&c->outcome);
    cgw__mcp_outcome_from_failure(CGW_ECANCELED, "cancelled by the caller", &c->outcome);
    finish(c, CGW_ECANCELED, NULL);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

void cgw_mcp_manager_options_init(cgw_mcp_manager_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    cgw_mcp_toolmap_options_init(&opts->naming);
    opts->restart = true;
    opts->restart_initial_ms = RESTART_INITIAL_MS;
    opts->restart_max_ms = RESTART_MAX_MS;
    opts->ping_interval_ms = PING_INTERVAL_MS;
}

static char **copy_strv(const char *const *v, size_t n)
{
    char **out = cgw__calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i < n; i++) {
        if ((out[i] = cgw__strdup(v[i])) == NULL) {
            for (size_t j = 0; j < i; j++) {
                cgw_free(out[j]);
            }
            cgw_free(out);
            return NULL;
        }
    }
    return out;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        cgw_free(v[i]);
    }
    cgw_free(v);
}

/* "file://" + the path with everything outside RFC 3986's unreserved set and "/" escaped. */
static char *file_uri(const char *path)
{
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_append_str(&b, "file://");
    for (const unsigned char *p = (const unsigned char *)path; rc == CGW_OK && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~", *p) != NULL) {
            rc = cgw_buf_append_char(&b, (char)*p);
        } else {
            rc = cgw_buf_appendf(&b, "%%%02X", *p);
        }
    }
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return NULL;
    }
    return cgw_buf_steal(&b, NULL);
}

static char **default_roots(void)
{
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return cgw__calloc(1, sizeof(char *));
    }
    char **v = cgw__calloc(2, sizeof(char *));
    if (v != NULL && (v[0] = file_uri(cwd)) == NULL) {
        cgw_free(v);
        return NULL;
    }
    return v;
}

static size_t strv_len(const char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL) {
        n++;
    }
    return n;
}

int cgw_mcp_manager_new(cgw_ctx_t *ctx, const cgw_mcp_manager_options_t *opts,
                        cgw_mcp_manager_t **out, cgw_error_t *err)
{
    *out = NULL;
    if (ctx == NULL || opts == NULL || opts->config == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "an MCP configuration is required");
    }
    cgw_mcp_toolmap_t *probe = NULL;
    if (cgw_mcp_toolmap_new(&opts->naming, &probe) != CGW_OK) {
        return cgw_error_set(err, CGW_EINVAL, "invalid tool naming options");
    }
    cgw_mcp_toolmap_free(probe);
    cgw_mcp_manager_t *m = cgw__calloc(1, sizeof(*m));
    if (m == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    m->ctx = ctx;
    m->opts = *opts;
    if (m->opts.restart_initial_ms == 0) {
        m->opts.restart_initial_ms = RESTART_INITIAL_MS;
    }
    if (m->opts.restart_max_ms < m->opts.restart_initial_ms) {
        m->opts.restart_max_ms = m->opts.restart_initial_ms;
    }
    m->builtins = copy_strv(opts->naming.builtin_names, opts->naming.n_builtin_names);
    m->opts.naming.builtin_names = (const char *const *)m->builtins;
    m->roots =
        opts->roots != NULL ? copy_strv(opts->roots, strv_len(opts->roots)) : default_roots();
    m->opts.roots = NULL;
    m->n = cgw_mcp_config_count(opts->config);
    m->servers = cgw__calloc(m->n ? m->n : 1, sizeof(server_t));
    m->started_ev = evtimer_new(cgw_ctx_base(ctx), started_cb, m);
    int ok = m->builtins != NULL && m->roots != NULL && m->servers != NULL &&
             m->started_ev != NULL && rebuild_tools(m) == CGW_OK;
    for (size_t i = 0; ok && i < m->n; i++) {
        server_t *s = &m->servers[i];
        s->mgr = m;
        s->index = i;
        s->cfg = cgw_mcp_config_at(opts->config, i);
        s->backoff_ms = m->opts.restart_initial_ms;
        s->tools = json_array();
        s->restart_timer = evtimer_new(cgw_ctx_base(ctx), restart_cb, s);
        s->ping_timer = evtimer_new(cgw_ctx_base(ctx), ping_cb, s);
        ok = s->tools != NULL && s->restart_timer != NULL && s->ping_timer != NULL;
    }
    if (!ok) {
        cgw_mcp_manager_free(m);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    *out = m;
    return CGW_OK;
}

int cgw_mcp_manager_start(cgw_mcp_manager_t *m, cgw_mcp_started_cb cb, void *user)
{
    if (m->started) {
        return CGW_ESTATE;
    }
    m->started = 1;
    m->started_cb = cb;
    m->started_user = user;
    if (m->n == 0) {
        struct timeval zero = {0, 0};
        event_add(m->started_ev, &zero);
    }
    for (size_t i = 0; i < m->n; i++) {
        start_server(&m->servers[i]);
    }
    return CGW_OK;
}

void cgw_mcp_manager_free(cgw_mcp_manager_t *m)
{
    if (m == NULL) {
        return;
    }
    /* Reverse config order, as the original closes its sessions. */
    for (size_t i = m->n; i-- > 0 && m->servers != NULL;) {
        server_t *s = &m->servers[i];
        if (s->client != NULL) {
            cgw__mcp_client_free(s->client, 0);
            s->client = NULL;
        }
        if (s->restart_timer != NULL) {
            event_free(s->restart_timer);
        }
        if (s->ping_timer != NULL) {
            event_free(s->ping_timer);
        }
        json_decref(s->tools);
        cgw_buf_free(&s->stderr_tail);
    }
    while (m->pending != NULL) {
        cgw_mcp_call_t *c = m->pending;
        cgw__mcp_outcome_clear(&c->outcome);
        cgw__mcp_outcome_from_failure(CGW_ECANCELED, "MCP manager shut down", &c->outcome);
        finish(c, CGW_ECANCELED, NULL);
    }
    if (m->started_ev != NULL) {
        event_free(m->started_ev);
    }
    cgw_mcp_toolmap_free(m->map);
    json_decref(m->defs);
    free_strv(m->builtins);
    free_strv(m->roots);
    cgw_free(m->servers);
    cgw_free(m);
}

/* ---- queries ------------------------------------------------------------------------------ */

size_t cgw_mcp_manager_server_count(const cgw_mcp_manager_t *m)
{
    return m->n;
}

int cgw_mcp_manager_server_status(const cgw_mcp_manager_t *m, size_t i,
                                  cgw_mcp_server_status_t *out)
{
    if (i >= m->n) {
        return CGW_ERANGE;
    }
    fill_status(&m->servers[i], out);
    return CGW_OK;
}

const cgw_mcp_toolmap_t *cgw_mcp_manager_toolmap(const cgw_mcp_manager_t *m)
{
    return m->map;
}

const json_t *cgw_mcp_manager_tool(const cgw_mcp_manager_t *m, const char *exposed)
{
    return exposed != NULL ? json_object_get(m->defs, exposed) : NULL;
}

json_t *cgw_mcp_manager_tool_definitions(const cgw_mcp_manager_t *m)
{
    json_t *list = json_array();
    size_t n = cgw_mcp_toolmap_count(m->map);
    for (size_t i = 0; list != NULL && i < n; i++) {
        const cgw_mcp_tool_ref_t *ref = cgw_mcp_toolmap_at(m->map, i);
        const json_t *t = json_object_get(m->defs, ref->exposed);
        json_t *schema = json_object_get(t, "inputSchema");
        json_t *def = json_pack("{s:s,s:s,s:o}", "name", ref->exposed, "description",
                                cgw_json_str(t, "description", ""), "input_schema",
                                json_is_object(schema)
                                    ? json_deep_copy(schema)
                                    : json_pack("{s:s,s:{}}", "type", "object", "properties"));
        if (def == NULL || json_array_append_new(list, def) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}
