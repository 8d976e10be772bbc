/* The HTTP gateway: lifecycle, routing, authentication, limits and the small endpoints.
 *
 * Every request goes through on_request: count it, refuse during shutdown (503), check the
 * body size (413, our JSON, below evhttp's own hard cap), route by path (404 for unknown
 * routes, 405 with Allow for a known route and another method), authenticate (401) and hand
 * the tenant to the handler. Session and run handlers live in gw_session.c, streams in
 * gw_stream.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "server/gateway_int.h"
#include "server/http_util.h"

#define DEFAULT_TENANT "default"

void cgw_gateway_options_init(cgw_gateway_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->listen = "127.0.0.1:8080";
    opts->tool_timeout_ms = 120000;
    opts->approval_timeout_ms = CGW_APPROVAL_TIMEOUT_MS_DEFAULT;
    opts->max_body_bytes = 1024 * 1024;
    opts->max_header_bytes = 16 * 1024;
    opts->max_sessions_per_tenant = 1000;
    opts->max_loaded_sessions = 10000;
    opts->max_concurrent_runs = 64;
    opts->max_streams_per_client = 32;
    opts->stream_buffer_bytes = 1024 * 1024;
    opts->stream_stall_ms = 30000;
    opts->ping_interval_ms = 15000;
    opts->shutdown_grace_ms = 5000;
    opts->stub_delay_ms = 50;
}

/* ---- replies --------------------------------------------------------------------------- */

static void count_status(cgw_gateway_t *gw, int status)
{
    char s[8];
    snprintf(s, sizeof(s), "%d", status);
    cgw__gw_count(&gw->metrics.http_by_status, s, "", 1);
}

void cgw__gw_error(cgw_gateway_t *gw, struct evhttp_request *req, int status, const char *type,
                   const char *fmt, ...)
{
    char msg[512], clean[512], rid[CGW_HTTP_REQUEST_ID_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A message may quote client input or a backend error: never let a secret through. */
    cgw_ctx_redact(gw->ctx, msg, clean, sizeof(clean));
    cgw__http_request_id(rid);
    count_status(gw, status);
    cgw__http_reply_error(req, status, type, clean, rid);
}

void cgw__gw_json(cgw_gateway_t *gw, struct evhttp_request *req, int status, const json_t *body)
{
    if (body == NULL) {
        cgw__gw_error(gw, req, 500, "api_error", "out of memory");
        return;
    }
    count_status(gw, status);
    cgw__http_reply_json(req, status, body);
}

json_t *cgw__gw_body_object(cgw_gateway_t *gw, struct evhttp_request *req, bool empty_ok)
{
    size_t len = 0;
    const char *body = cgw__http_body(req, &len);
    if (len == 0 && empty_ok) {
        return json_object();
    }
    json_t *v = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    if (len == 0) {
        cgw__gw_error(gw, req, 400, "invalid_request_error", "the request body is empty");
        return NULL;
    }
    if (cgw_json_parse(body, len, &v, &err) != CGW_OK) {
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "the request body is not valid JSON: %s (line %d, column %d)", err.message,
                      err.line, err.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        cgw__gw_error(gw, req, 400, "invalid_request_error",
                      "the request body must be a JSON object");
        return NULL;
    }
    return v;
}

void cgw__gw_store_error(cgw_gateway_t *gw, struct evhttp_request *req, int rc,
                         const cgw_error_t *err)
{
    CGW_ERROR(gw->ctx, "gateway", "store: %s (%s)", err != NULL ? err->message : "",
              cgw_err_name(rc));
    if (rc == CGW_EBUSY) {
        cgw__gw_error(gw, req, 503, "overloaded_error", "the store is busy, try again");
        return;
    }
    cgw__gw_error(gw, req, 500, "api_error", "the store failed: %s", cgw_strerror(rc));
}

/* ---- authentication ---------------------------------------------------------------------- */

/* The tenant of the request's bearer token, or NULL (then 401 was sent). */
static const char *authenticate(cgw_gateway_t *gw, struct evhttp_request *req)
{
    if (gw->n_tokens == 0) {
        return DEFAULT_TENANT;
    }
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
        cgw__gw_error(gw, req, 401, "authentication_error",
                      "an 'Authorization: Bearer <token>' header is required");
        return NULL;
    }
    uint8_t d[CGW_SHA256_LEN];
    cgw__sha256(h + 7, strlen(h + 7), d);
    const char *tenant = NULL;
    for (size_t i = 0; i < gw->n_tokens; i++) {
        /* No early exit: every token is compared, so timing says nothing about which. */
        if (cgw__digest_equal(d, gw->tokens[i].digest) && tenant == NULL) {
            tenant = gw->tokens[i].tenant;
        }
    }
    if (tenant == NULL) {
        cgw__gw_error(gw, req, 401, "authentication_error", "invalid bearer token");
    }
    return tenant;
}

/* ---- small endpoints --------------------------------------------------------------------- */

static void on_healthz(cgw_gateway_t *gw, struct evhttp_request *req)
{
    json_t *b = json_pack("{s:s, s:s, s:I, s:I, s:I}", "status", gw->stopping ? "stopping" : "ok",
                          "store", cgw_store_kind(gw->store), "active_runs",
                          (json_int_t)gw->active_runs, "open_streams", (json_int_t)gw->n_streams,
                          "sessions_loaded", (json_int_t)gw->sessions.len);
    cgw__gw_json(gw, req, 200, b);
    json_decref(b);
}

static void on_tools(cgw_gateway_t *gw, struct evhttp_request *req)
{
    json_t *tools = json_array();
    if (gw->mcp != NULL) {
        const cgw_mcp_toolmap_t *map = cgw_mcp_manager_toolmap(gw->mcp);
        json_t *defs = cgw_mcp_manager_tool_definitions(gw->mcp);
        size_t i;
        json_t *d;
        json_array_foreach(defs, i, d)
        {
            const char *name = cgw_json_str(d, "name", "");
            const cgw_mcp_tool_ref_t *e = cgw_mcp_toolmap_find(map, name);
            json_object_set_new(d, "server", e != NULL ? json_string(e->server) : json_null());
            json_array_append(tools, d);
        }
        json_decref(defs);
    }
    json_t *b = json_pack("{s:o}", "tools", tools);
    cgw__gw_json(gw, req, 200, b);
    json_decref(b);
}

static void on_mcp_servers(cgw_gateway_t *gw, struct evhttp_request *req)
{
    json_t *list = json_array();
    size_t n = gw->mcp != NULL ? cgw_mcp_manager_server_count(gw->mcp) : 0;
    for (size_t i = 0; i < n; i++) {
        cgw_mcp_server_status_t st;
        if (cgw_mcp_manager_server_status(gw->mcp, i, &st) != CGW_OK) {
            continue;
        }
        /* stderr_tail is left out: a server may print its own credentials there. */
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", st.name, "state",
                            cgw_mcp_server_state_name(st.state), "reason", st.reason,
                            "protocol_version", st.protocol_version, "tools",
                            (json_int_t)st.tool_count, "calls", (json_int_t)st.calls, "errors",
                            (json_int_t)st.errors, "restarts", (json_int_t)st.restarts));
    }
    json_t *b = json_pack("{s:o}", "servers", list);
    cgw__gw_json(gw, req, 200, b);
    json_decref(b);
}

/* ---- routing ----------------------------------------------------------------------------- */

enum route {
    R_NONE,
    R_SESSIONS,
    R_SESSION,
    R_MESSAGES,
    R_RUN,
    R_EVENTS,
    R_APPROVALS,
    R_CANCEL,
    R_TOOLS,
    R_MCP,
    R_HEALTH,
    R_METRICS
};

static bool valid_id(const char *s, size_t len)
{
    if (len == 0 || len >= CGW_STORE_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Matches "/v1/<kind>/{id}[/<sub>]": copies the id and returns the sub-path ("" if none), or
 * NULL when the path is not of that shape. */
static const char *match_id(const char *path, const char *prefix, char id[CGW_STORE_ID_MAX])
{
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) != 0) {
        return NULL;
    }
    const char *s = path + pl;
    const char *slash = strchr(s, '/');
    size_t len = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (!valid_id(s, len)) {
        return NULL;
    }
    memcpy(id, s, len);
    id[len] = '\0';
    return slash != NULL ? slash + 1 : "";
}

/* The route of `path` and the method it takes; the id goes to `id`. */
static enum route route_of(const char *path, char id[CGW_STORE_ID_MAX], int *method)
{
    static const struct {
        const char *path;
        enum route r;
        int method;
    } fixed[] = {
        {"/v1/sessions", R_SESSIONS, EVHTTP_REQ_POST}, {"/v1/tools", R_TOOLS, EVHTTP_REQ_GET},
        {"/v1/mcp/servers", R_MCP, EVHTTP_REQ_GET},    {"/healthz", R_HEALTH, EVHTTP_REQ_GET},
        {"/metrics", R_METRICS, EVHTTP_REQ_GET},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) == 0) {
            *method = fixed[i].method;
            return fixed[i].r;
        }
    }
    const char *sub = match_id(path, "/v1/sessions/", id);
    if (sub != NULL) {
        *method = *sub == '\0' ? EVHTTP_REQ_GET : EVHTTP_REQ_POST;
        return *sub == '\0' ? R_SESSION : strcmp(sub, "messages") == 0 ? R_MESSAGES : R_NONE;
    }
    sub = match_id(path, "/v1/runs/", id);
    if (sub == NULL) {
        return R_NONE;
    }
    *method = EVHTTP_REQ_POST;
    if (*sub == '\0' || strcmp(sub, "events") == 0) {
        *method = EVHTTP_REQ_GET;
        return *sub == '\0' ? R_RUN : R_EVENTS;
    }
    return strcmp(sub, "approvals") == 0 ? R_APPROVALS
           : strcmp(sub, "cancel") == 0  ? R_CANCEL
                                         : R_NONE;
}

static void dispatch(cgw_gateway_t *gw, struct evhttp_request *req, enum route r,
                     const char *tenant, const char *id)
{
    switch (r) {
    case R_SESSIONS:
        cgw__gw_sessions_create(gw, req, tenant);
        break;
    case R_SESSION:
        cgw__gw_session_get(gw, req, tenant, id);
        break;
    case R_MESSAGES:
        cgw__gw_session_message(gw, req, tenant, id);
        break;
    case R_RUN:
        cgw__gw_run_get(gw, req, tenant, id);
        break;
    case R_EVENTS:
        cgw__gw_events(gw, req, tenant, id);
        break;
    case R_APPROVALS:
        cgw__gw_run_approval(gw, req, tenant, id);
        break;
    case R_CANCEL:
        cgw__gw_run_cancel(gw, req, tenant, id);
        break;
    case R_TOOLS:
        on_tools(gw, req);
        break;
    case R_MCP:
        on_mcp_servers(gw, req);
        break;
    case R_METRICS:
        cgw__gw_metrics_reply(gw, req);
        break;
    default:
        on_healthz(gw, req);
        break;
    }
}

/* Bytes of the request's header lines ("Name: value\r\n" each). */
static size_t header_bytes(struct evhttp_request *req)
{
    size_t n = 0;
    const struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        n += strlen(h->key) + strlen(h->value) + 4;
    }
    return n;
}

static const char *method_name(int m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    default:
        return "OTHER";
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    cgw_gateway_t *gw = arg;
    gw->metrics.http_requests++;
    char path[512];
    cgw__http_path(req, path, sizeof(path));
    char id[CGW_STORE_ID_MAX] = "";
    int method = 0;
    enum route r = route_of(path, id, &method);
    if (r == R_NONE) {
        cgw__gw_error(gw, req, 404, "not_found_error", "no route for this path");
        return;
    }
    int got = (int)evhttp_request_get_command(req);
    CGW_DEBUG(gw->ctx, "http", "%s %s", method_name(got), path);
    if (got != method && !(got == EVHTTP_REQ_HEAD && method == EVHTTP_REQ_GET)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          method == EVHTTP_REQ_GET ? "GET" : "POST");
        cgw__gw_error(gw, req, 405, "invalid_request_error", "method not allowed here");
        return;
    }
    if (gw->stopping && r != R_HEALTH) {
        cgw__gw_error(gw, req, 503, "overloaded_error", "the gateway is shutting down");
        return;
    }
    size_t hdr = header_bytes(req);
    if (hdr > gw->max_headers) {
        cgw__gw_error(gw, req, 431, "invalid_request_error",
                      "the request headers are %zu bytes; the limit is %zu", hdr, gw->max_headers);
        return;
    }
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (len > gw->max_body) {
        cgw__gw_error(gw, req, 413, "request_too_large",
                      "the request body is %zu bytes; the limit is %zu", len, gw->max_body);
        return;
    }
    if (r == R_HEALTH) {
        on_healthz(gw, req);
        return;
    }
    const char *tenant = authenticate(gw, req);
    if (tenant != NULL) {
        dispatch(gw, req, r, tenant, id);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static bool is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]", 5) == 0;
}

static int copy_tokens(cgw_gateway_t *gw, const cgw_gateway_options_t *o, cgw_error_t *err)
{
    if (o->n_tokens == 0) {
        return CGW_OK;
    }
    gw->tokens = cgw__calloc(o->n_tokens, sizeof(*gw->tokens));
    if (gw->tokens == NULL) {
        return CGW_ENOMEM;
    }
    for (size_t i = 0; i < o->n_tokens; i++) {
        const char *t = o->tokens[i].token, *tenant = o->tokens[i].tenant;
        size_t tl = tenant != NULL ? strlen(tenant) : 0;
        if (t == NULL || strlen(t) < 16) {
            return cgw_error_set(err, CGW_EINVAL, "token %zu is shorter than 16 bytes", i + 1);
        }
        if (tl == 0 || tl >= CGW_STORE_TENANT_MAX) {
            return cgw_error_set(err, CGW_EINVAL, "token %zu has no valid tenant", i + 1);
        }
        cgw__sha256(t, strlen(t), gw->tokens[i].digest);
        memcpy(gw->tokens[i].tenant, tenant, tl + 1);
        gw->n_tokens++;
        cgw_ctx_add_secret(gw->ctx, t);
    }
    return CGW_OK;
}

static int copy_options(cgw_gateway_t *gw, const cgw_gateway_options_t *o, cgw_error_t *err)
{
    cgw_gateway_options_t d;
    cgw_gateway_options_init(&d);
    gw->store = o->store;
    gw->client = o->client;
    gw->mcp = o->mcp;
    gw->max_turns = o->max_turns;
#define OR_DEFAULT(field) (o->field != 0 ? o->field : d.field)
    gw->tool_timeout_ms = OR_DEFAULT(tool_timeout_ms);
    gw->approval_timeout_ms = OR_DEFAULT(approval_timeout_ms);
    gw->max_body = OR_DEFAULT(max_body_bytes);
    gw->max_headers = OR_DEFAULT(max_header_bytes);
    gw->max_sessions = OR_DEFAULT(max_sessions_per_tenant);
    gw->max_loaded = OR_DEFAULT(max_loaded_sessions);
    gw->max_runs = OR_DEFAULT(max_concurrent_runs);
    gw->max_streams_per_client = OR_DEFAULT(max_streams_per_client);
    gw->stream_cap = OR_DEFAULT(stream_buffer_bytes);
    gw->stall_ms = OR_DEFAULT(stream_stall_ms);
    gw->ping_ms = OR_DEFAULT(ping_interval_ms);
    gw->grace_ms = OR_DEFAULT(shutdown_grace_ms);
    gw->stub_delay_ms = OR_DEFAULT(stub_delay_ms);
#undef OR_DEFAULT
    gw->cancel_on_disconnect = o->cancel_on_disconnect;
    if ((o->model != NULL && (gw->model = cgw__strdup(o->model)) == NULL) ||
        (o->system_prompt != NULL && (gw->system_prompt = cgw__strdup(o->system_prompt)) == NULL)) {
        return CGW_ENOMEM;
    }
    if (o->n_approval_tools > 0) {
        gw->approval_tools = cgw__calloc(o->n_approval_tools, sizeof(char *));
        if (gw->approval_tools == NULL) {
            return CGW_ENOMEM;
        }
        for (size_t i = 0; i < o->n_approval_tools; i++) {
            if ((gw->approval_tools[i] = cgw__strdup(o->approval_tools[i])) == NULL) {
                return CGW_ENOMEM;
            }
            gw->n_approval_tools++;
        }
    }
    return copy_tokens(gw, o, err);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw__gw_streams_ping(arg);
}

/* Builds the entry recovery appends to a run that was in flight when a gateway died. */
static const char *interrupted_entry(const cgw_store_run_t *run, uint64_t seq, double ts,
                                     size_t *len, void *user)
{
    (void)run;
    cgw_buf_t *b = user;
    cgw_buf_reset(b);
    if (cgw_buf_appendf(b,
                        "{\"seq\":%llu,\"ts\":%.6f,\"event\":{\"type\":\"error\",\"error\":\"the "
                        "gateway stopped before this run ended\",\"code\":\"interrupted\"}}",
                        (unsigned long long)seq, ts) != CGW_OK) {
        return NULL;
    }
    *len = b->len;
    return b->data;
}

static int start(cgw_gateway_t *gw, const cgw_gateway_options_t *o, cgw_error_t *err)
{
    cgw_buf_t b = CGW_BUF_INIT;
    size_t n = 0;
    int rc = cgw_store_recover(gw->store, "error", interrupted_entry, &b, &n, err);
    cgw_buf_free(&b);
    if (rc != CGW_OK) {
        return rc;
    }
    if (n > 0) {
        CGW_WARN(gw->ctx, "gateway", "%zu run(s) were interrupted by the last stop", n);
    }
    gw->http = evhttp_new(cgw_ctx_base(gw->ctx));
    gw->ping_timer = event_new(cgw_ctx_base(gw->ctx), -1, EV_PERSIST, on_ping, gw);
    if (gw->http == NULL || gw->ping_timer == NULL) {
        return CGW_ENOMEM;
    }
    /* Bodies between our limit and evhttp's cap get our JSON 413; evhttp's own reply is only
     * for bodies far over the limit, which it refuses without buffering them. */
    evhttp_set_max_body_size(gw->http, (ev_ssize_t)(2 * gw->max_body + 64 * 1024));
    /* Same for headers: our JSON 431 up to twice the limit, evhttp's 400 beyond. */
    evhttp_set_max_headers_size(gw->http, (ev_ssize_t)(2 * gw->max_headers + 8 * 1024));
    evhttp_set_allowed_methods(gw->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                             EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(gw->http, on_request, gw);
    rc = cgw__http_bind(gw->http, o->listen != NULL ? o->listen : "127.0.0.1:8080", gw->address,
                        sizeof(gw->address), err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (gw->n_tokens == 0 && !is_loopback(gw->address)) {
        return cgw_error_set(err, CGW_EACCES,
                             "refusing to listen on %s without authentication: configure at "
                             "least one bearer token (\"tokens\" in the config file or "
                             "CGW_TOKENS) or listen on 127.0.0.1",
                             gw->address);
    }
    struct timeval tv = {gw->ping_ms / 1000, (gw->ping_ms % 1000) * 1000};
    event_add(gw->ping_timer, &tv);
    return CGW_OK;
}

int cgw_gateway_new(cgw_ctx_t *ctx, const cgw_gateway_options_t *opts, cgw_gateway_t **out,
                    cgw_error_t *err)
{
    if (ctx == NULL || opts == NULL || out == NULL || opts->store == NULL) {
        return cgw_error_set(err, CGW_EINVAL,
                             "a context, options with a store and out are "
                             "required");
    }
    cgw_gateway_t *gw = cgw__calloc(1, sizeof(*gw));
    if (gw == NULL) {
        return CGW_ENOMEM;
    }
    gw->ctx = ctx;
    int rc = copy_options(gw, opts, err);
    if (rc == CGW_OK) {
        rc = start(gw, opts, err);
    }
    if (rc != CGW_OK) {
        if (rc == CGW_ENOMEM) {
            cgw_error_set(err, rc, "out of memory");
        }
        cgw_gateway_free(gw);
        return rc;
    }
    CGW_INFO(ctx, "gateway", "listening on %s (store %s, %s)", gw->address,
             cgw_store_kind(gw->store), gw->n_tokens > 0 ? "bearer tokens" : "no authentication");
    *out = gw;
    return CGW_OK;
}

const char *cgw_gateway_address(const cgw_gateway_t *gw)
{
    return gw->address;
}

void cgw_gateway_set_mcp(cgw_gateway_t *gw, cgw_mcp_manager_t *mcp)
{
    gw->mcp = mcp;
}

bool cgw_gateway_mcp_in_use(const cgw_gateway_t *gw, const cgw_mcp_manager_t *mcp)
{
    for (size_t i = 0; i < gw->runs.cap; i++) {
        const gw_run_t *run = gw->runs.slots[i].value;
        if (gw->runs.slots[i].key != NULL && run->mcp == mcp) {
            return true;
        }
    }
    return false;
}

void cgw_gateway_stats(const cgw_gateway_t *gw, cgw_gateway_stats_t *out)
{
    out->sessions_loaded = gw->sessions.len;
    out->active_runs = gw->active_runs;
    out->open_streams = gw->n_streams;
    out->events = gw->metrics.events;
    out->streams_cut = gw->metrics.streams_cut;
}

/* ---- shutdown ---------------------------------------------------------------------------- */

struct bound_list {
    struct evhttp_bound_socket *items[16];
    size_t n;
};

static void collect_bound(struct evhttp_bound_socket *bs, void *arg)
{
    struct bound_list *l = arg;
    if (l->n < sizeof(l->items) / sizeof(l->items[0])) {
        l->items[l->n++] = bs;
    }
}

/* Closes the listening sockets: new connections are refused at once (a listener that is only
 * disabled would leave them waiting in the kernel's backlog). */
static void stop_listening(cgw_gateway_t *gw)
{
    struct bound_list l = {.n = 0};
    evhttp_foreach_bound_socket(gw->http, collect_bound, &l);
    for (size_t i = 0; i < l.n; i++) {
        evhttp_del_accept_socket(gw->http, l.items[i]);
    }
}

static void on_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cgw_gateway_t *gw = arg;
    if (gw->n_streams > 0 && cgw__now_ms() < gw->shutdown_deadline_ms) {
        struct timeval tv = {0, 20000};
        evtimer_add(gw->shutdown_timer, &tv);
        return;
    }
    if (gw->n_streams > 0) {
        CGW_WARN(gw->ctx, "gateway", "closing %zu stream(s) still open after the grace period",
                 gw->n_streams);
        cgw__gw_streams_close_all(gw);
    }
    if (gw->stopped_cb != NULL) {
        gw->stopped_cb(gw, gw->stopped_user);
    }
}

void cgw_gateway_shutdown(cgw_gateway_t *gw, cgw_gateway_stopped_cb done, void *user)
{
    if (gw->stopping) {
        return;
    }
    gw->stopping = true;
    gw->stopped_cb = done;
    gw->stopped_user = user;
    CGW_INFO(gw->ctx, "gateway", "shutting down: %zu run(s), %zu stream(s)", gw->active_runs,
             gw->n_streams);
    stop_listening(gw);
    cgw__gw_runs_abort(gw, "the gateway is shutting down", "shutdown");
    gw->shutdown_deadline_ms = cgw__now_ms() + gw->grace_ms;
    gw->shutdown_timer = evtimer_new(cgw_ctx_base(gw->ctx), on_shutdown_tick, gw);
    struct timeval tv = {0, 1000};
    evtimer_add(gw->shutdown_timer, &tv);
}

void cgw_gateway_free(cgw_gateway_t *gw)
{
    if (gw == NULL) {
        return;
    }
    cgw__gw_streams_close_all(gw);
    cgw__gw_sessions_free_all(gw);
    if (gw->http != NULL) {
        evhttp_free(gw->http);
    }
    if (gw->ping_timer != NULL) {
        event_free(gw->ping_timer);
    }
    if (gw->shutdown_timer != NULL) {
        event_free(gw->shutdown_timer);
    }
    for (size_t i = 0; i < gw->n_approval_tools; i++) {
        cgw_free(gw->approval_tools[i]);
    }
    cgw_free(gw->approval_tools);
    cgw_free(gw->tokens);
    cgw_free(gw->model);
    cgw_free(gw->system_prompt);
    cgw_free(gw->peers);
    cgw__map_free(&gw->sessions);
    cgw__map_free(&gw->runs);
    cgw_free(gw);
}
