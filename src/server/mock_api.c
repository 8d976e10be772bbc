/* mock-api: routing, request checks, turn selection and bookkeeping.
 *
 * Order of the checks on POST /v1/messages, as the API does them: body size (413), credential
 * (401), anthropic-version (400), body (400: JSON, required fields, tool_result ids, thinking
 * signatures). Only a request that passes them consumes a turn.
 *
 * Turn selection: the first turn (in script order) whose `match` marker occurs in the text of
 * the last user message wins and does not move the position; otherwise the next turn without
 * a marker is served, and when those run out the script's `when_exhausted` rule applies. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "core/json.h"
#include "server/http_util.h"
#include "server/mock_api_int.h"
#include "server/mock_check.h"

/* /_mock/requests keeps the last MOCK_MAX_RECORDS requests, and fewer when their bodies add up
 * to more than MOCK_MAX_RECORD_BYTES, so that a long test run cannot grow the mock without
 * bound. */
#define MOCK_MAX_RECORDS 1000
#define MOCK_MAX_RECORD_BYTES ((json_int_t)64 * 1024 * 1024)
#define MOCK_DEFAULT_MAX_BODY ((size_t)32 * 1024 * 1024)

void cgw_mock_api_options_init(cgw_mock_api_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->listen = "127.0.0.1:0";
    opts->max_body_bytes = MOCK_DEFAULT_MAX_BODY;
}

const char *cgw_mock_api_address(const cgw_mock_api_t *mock)
{
    return mock->address;
}

/* ---- bookkeeping -------------------------------------------------------------------------- */

static void count(json_t *counters, const char *key)
{
    json_object_set_new(counters, key, json_integer(cgw_json_int(counters, key, 0) + 1));
}

static bool secret_header(const char *name)
{
    return strcasecmp(name, "x-api-key") == 0 || strcasecmp(name, "authorization") == 0 ||
           strcasecmp(name, "proxy-authorization") == 0 || strcasecmp(name, "cookie") == 0;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
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
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* Appends a record of `req` to /_mock/requests and returns it (borrowed) so that the status
 * and turn can be filled in once known. */
static json_t *record_request(cgw_mock_api_t *srv, struct evhttp_request *req, const char *path,
                              const char *request_id)
{
    json_t *headers = json_object();
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
    {
        char lower[256];
        snprintf(lower, sizeof(lower), "%s", h->key);
        for (char *c = lower; *c; c++) {
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        }
        json_object_set_new(headers, lower,
                            json_string(secret_header(lower) ? "[REDACTED]" : h->value));
    }
    size_t len = 0;
    const char *body = cgw__http_body(req, &len);
    json_t *parsed = body != NULL ? json_loadb(body, len, 0, NULL) : json_null();
    if (parsed == NULL) {
        /* Not JSON: kept as a string when it is UTF-8 (JSON cannot carry other bytes). */
        parsed = json_stringn(body, len);
    }
    if (parsed == NULL) {
        parsed = json_string("[body is not UTF-8]");
    }
    const char *method = method_name(evhttp_request_get_command(req));
    json_t *rec =
        json_pack("{s:I,s:s,s:s,s:s,s:o,s:o,s:n,s:n}", "seq", (json_int_t)srv->total, "request_id",
                  request_id, "method", method, "path", path, "headers", headers, "body",
                  parsed != NULL ? parsed : json_null(), "status", "turn");
    if (rec == NULL) {
        return NULL;
    }
    json_object_set_new(rec, "body_bytes", json_integer((json_int_t)len));
    srv->record_bytes += (json_int_t)len;
    while (json_array_size(srv->requests) > 0 &&
           (json_array_size(srv->requests) >= MOCK_MAX_RECORDS ||
            srv->record_bytes > MOCK_MAX_RECORD_BYTES)) {
        srv->record_bytes -= cgw_json_int(json_array_get(srv->requests, 0), "body_bytes", 0);
        json_array_remove(srv->requests, 0);
    }
    json_array_append_new(srv->requests, rec);
    return rec;
}

static void finish_record(cgw_mock_api_t *srv, json_t *rec, int status,
                          const cgw__mock_turn_t *turn)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", status);
    if (status > 0) { /* 0: a hang or cut before the headers sent none */
        count(srv->by_status, key);
    }
    if (turn != NULL) {
        count(srv->by_turn, turn->name);
    }
    if (rec != NULL) {
        json_object_set_new(rec, "status", status > 0 ? json_integer(status) : json_null());
        if (turn != NULL) {
            json_object_set_new(rec, "turn", json_string(turn->name));
        }
    }
}

/* ---- turn selection ----------------------------------------------------------------------- */

static const cgw__mock_turn_t *pick_turn(cgw_mock_api_t *srv, const json_t *body)
{
    cgw__mock_script_t *s = srv->script;
    char *text = cgw__mock_last_user_text(body);
    for (size_t i = 0; text != NULL && i < s->nturns; i++) {
        if (s->turns[i].match != NULL && strstr(text, s->turns[i].match) != NULL) {
            cgw_free(text);
            return &s->turns[i];
        }
    }
    cgw_free(text);
    const cgw__mock_turn_t *last = NULL;
    for (int pass = 0; pass < 2; pass++) {
        for (; srv->next_turn < s->nturns; srv->next_turn++) {
            if (s->turns[srv->next_turn].match == NULL) {
                return &s->turns[srv->next_turn++];
            }
        }
        for (size_t i = 0; i < s->nturns; i++) {
            last = s->turns[i].match == NULL ? &s->turns[i] : last;
        }
        if (s->when_exhausted != CGW_MOCK_EXHAUSTED_CYCLE || last == NULL) {
            break;
        }
        srv->next_turn = 0;
    }
    return s->when_exhausted == CGW_MOCK_EXHAUSTED_REPEAT_LAST ? last : NULL;
}

/* ---- answers ------------------------------------------------------------------------------ */

static void reply_error_turn(struct evhttp_request *req, const cgw__mock_turn_t *t,
                             const char *request_id)
{
    bool retry = t->status == 408 || t->status == 409 || t->status == 429 || t->status >= 500;
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-should-retry",
                      retry ? "true" : "false");
    cgw__http_set_headers(req, t->headers);
    if (t->raw_body != NULL) {
        cgw__http_reply_raw(req, t->status, NULL, t->raw_body, strlen(t->raw_body));
    } else {
        cgw__http_reply_error(req, t->status, t->error_type, t->error_message, request_id);
    }
}

static bool capture_is_sse(const cgw__mock_capture_t *c)
{
    size_t i;
    const json_t *pair;
    json_array_foreach(c->headers, i, pair)
    {
        if (strcasecmp(json_string_value(json_array_get(pair, 0)), "content-type") == 0) {
            return strstr(json_string_value(json_array_get(pair, 1)), "event-stream") != NULL;
        }
    }
    return c->status == 0;
}

static void reply_capture(struct evhttp_request *req, const cgw__mock_turn_t *t)
{
    cgw__http_set_headers(req, t->replay->headers);
    cgw__http_set_headers(req, t->headers);
    cgw__http_reply_raw(req, t->replay->status, NULL, t->replay->body, t->replay->body_len);
}

/* A non-streamed request: the accumulated Message, or the fault as a plain HTTP failure. */
static int reply_message(cgw_mock_api_t *srv, struct evhttp_request *req, const cgw__mock_turn_t *t,
                         const char *model, const char *msg_id, const char *request_id)
{
    if (t->error_at.kind != CGW_MOCK_AT_NONE) {
        int status = cgw__mock_error_status(t->error_type);
        cgw__http_reply_error(req, status, t->error_type, t->error_message, request_id);
        return status;
    }
    if (t->hang_at.kind != CGW_MOCK_AT_NONE || t->cut_at.kind != CGW_MOCK_AT_NONE) {
        cgw__mock_plan_t *plan = cgw__calloc(1, sizeof(*plan));
        if (plan != NULL) {
            plan->before_headers = true;
            plan->end = t->hang_at.kind != CGW_MOCK_AT_NONE ? CGW_MOCK_END_HANG : CGW_MOCK_END_CUT;
            cgw__mock_stream_start(srv, req, plan);
            return 0;
        }
    }
    json_t *msg = cgw__mock_turn_message(t, model, msg_id);
    cgw__http_set_headers(req, t->headers);
    cgw__http_reply_json(req, 200, msg);
    json_decref(msg);
    return 200;
}

/* Serves turn `t`; returns the HTTP status sent (0 when none is sent: hang or cut). */
static int serve_turn(cgw_mock_api_t *srv, struct evhttp_request *req, const cgw__mock_turn_t *t,
                      const json_t *body, const char *request_id)
{
    json_object_update(srv->issued, t->issued);
    if (t->replay != NULL && !capture_is_sse(t->replay)) {
        reply_capture(req, t);
        return t->replay->status;
    }
    if (t->replay == NULL && t->status != 200) {
        reply_error_turn(req, t, request_id);
        return t->status;
    }
    char msg_id[48];
    snprintf(msg_id, sizeof(msg_id), "msg_mock_%06llu", (unsigned long long)++srv->messages);
    const char *model = cgw_json_str(body, "model", "claude-mock");
    if (t->replay == NULL && !cgw_json_bool(body, "stream", 0)) {
        return reply_message(srv, req, t, model, msg_id, request_id);
    }
    cgw__mock_plan_t *plan = NULL;
    if (cgw__mock_plan_stream(t, model, msg_id, &plan) != CGW_OK) {
        cgw__http_reply_error(req, 500, "api_error", "mock-api: out of memory", request_id);
        return 500;
    }
    int status = plan->before_headers ? 0 : plan->status;
    cgw__mock_stream_start(srv, req, plan);
    return status;
}

static int check_headers(cgw_mock_api_t *srv, struct evhttp_request *req, cgw__mock_reject_t *rej)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *key = evhttp_find_header(in, "x-api-key");
    const char *auth = evhttp_find_header(in, "authorization");
    rej->status = 401;
    rej->type = "authentication_error";
    if ((key == NULL || *key == '\0') && (auth == NULL || *auth == '\0')) {
        snprintf(rej->message, sizeof(rej->message), "x-api-key header is required");
        return -1;
    }
    if (srv->api_key != NULL) {
        bool ok = key != NULL
                      ? strcmp(key, srv->api_key) == 0
                      : strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, srv->api_key) == 0;
        if (!ok) {
            snprintf(rej->message, sizeof(rej->message), "invalid x-api-key");
            return -1;
        }
    }
    if (evhttp_find_header(in, "anthropic-version") == NULL) {
        rej->status = 400;
        rej->type = "invalid_request_error";
        snprintf(rej->message, sizeof(rej->message), "anthropic-version: header is required");
        return -1;
    }
    return 0;
}

static void handle_messages(cgw_mock_api_t *srv, struct evhttp_request *req, json_t *rec,
                            const char *request_id)
{
    cgw__mock_reject_t rej = {0, NULL, ""};
    size_t len = 0;
    const char *data = cgw__http_body(req, &len);
    json_t *body = NULL;
    if (len > srv->max_body) {
        rej.status = 413;
        rej.type = "request_too_large";
        snprintf(rej.message, sizeof(rej.message), "%s", cgw__mock_default_error_message(413));
    } else if (check_headers(srv, req, &rej) == 0) {
        const char *betas =
            evhttp_find_header(evhttp_request_get_input_headers(req), "anthropic-beta");
        cgw__mock_check_body(data, len, srv->issued, betas, &body, &rej);
    }
    if (body == NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "x-should-retry", "false");
        cgw__http_reply_error(req, rej.status, rej.type, rej.message, request_id);
        finish_record(srv, rec, rej.status, NULL);
        return;
    }
    const cgw__mock_turn_t *t = pick_turn(srv, body);
    if (t == NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "mock-api: script exhausted after %zu turns",
                 srv->script->nturns);
        cgw__http_reply_error(req, 500, "api_error", msg, request_id);
        finish_record(srv, rec, 500, NULL);
    } else {
        finish_record(srv, rec, serve_turn(srv, req, t, body, request_id), t);
    }
    json_decref(body);
}

/* ---- /_mock endpoints --------------------------------------------------------------------- */

static void reply_stats(cgw_mock_api_t *srv, struct evhttp_request *req)
{
    json_t *s = json_pack("{s:I,s:O,s:O,s:I,s:I,s:I}", "total", (json_int_t)srv->total, "by_status",
                          srv->by_status, "by_turn", srv->by_turn, "turn_position",
                          (json_int_t)srv->next_turn, "turns", (json_int_t)srv->script->nturns,
                          "open_streams", (json_int_t)cgw__mock_streams_count(srv));
    cgw__http_reply_json(req, 200, s);
    json_decref(s);
}

void cgw_mock_api_reset(cgw_mock_api_t *mock)
{
    mock->total = 0;
    mock->next_turn = 0;
    json_object_clear(mock->by_status);
    json_object_clear(mock->by_turn);
    json_array_clear(mock->requests);
    mock->record_bytes = 0;
}

int cgw_mock_api_load_script(cgw_mock_api_t *mock, const char *json, size_t len, cgw_error_t *err)
{
    json_t *doc = NULL;
    cgw__mock_script_t *s = NULL;
    int rc = cgw_json_parse(json, len, &doc, err);
    rc = rc == CGW_OK ? cgw__mock_script_parse(doc, NULL, &s, err) : rc;
    json_decref(doc);
    if (rc == CGW_OK) {
        cgw__mock_script_free(mock->script);
        mock->script = s;
        cgw_mock_api_reset(mock);
    }
    return rc;
}

static void handle_mock(cgw_mock_api_t *srv, struct evhttp_request *req, const char *path)
{
    bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
    if (strcmp(path, "/_mock/stats") == 0 && !post) {
        reply_stats(srv, req);
    } else if (strcmp(path, "/_mock/requests") == 0 && !post) {
        cgw__http_reply_json(req, 200, srv->requests);
    } else if (strcmp(path, "/_mock/reset") == 0 && post) {
        cgw_mock_api_reset(srv);
        cgw__http_reply_raw(req, 200, "application/json", "{\"ok\":true}", 11);
    } else if (strcmp(path, "/_mock/script") == 0 && post) {
        size_t len = 0;
        const char *body = cgw__http_body(req, &len);
        cgw_error_t err;
        cgw_error_clear(&err);
        if (cgw_mock_api_load_script(srv, body != NULL ? body : "", len, &err) != CGW_OK) {
            cgw__http_reply_error(req, 400, "invalid_request_error", err.message, NULL);
        } else {
            cgw__http_reply_raw(req, 200, "application/json", "{\"ok\":true}", 11);
        }
    } else {
        cgw__http_reply_error(req, 404, "not_found_error", "Not found", NULL);
    }
}

static void on_request(struct evhttp_request *req, void *arg)
{
    cgw_mock_api_t *srv = arg;
    char path[1024];
    cgw__http_path(req, path, sizeof(path));
    if (strncmp(path, "/_mock/", 7) == 0) {
        handle_mock(srv, req, path);
        return;
    }
    char request_id[CGW_HTTP_REQUEST_ID_LEN];
    cgw__http_request_id(request_id);
    srv->total++;
    json_t *rec = record_request(srv, req, path, request_id);
    evhttp_add_header(evhttp_request_get_output_headers(req), "request-id", request_id);
    CGW_DEBUG(srv->ctx, "mock-api", "%s %s", request_id, path);
    if (strcmp(path, "/v1/messages") != 0) {
        cgw__http_reply_error(req, 404, "not_found_error", "Not found", request_id);
        finish_record(srv, rec, 404, NULL);
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        cgw__http_reply_error(req, 405, "invalid_request_error", "Method Not Allowed", request_id);
        finish_record(srv, rec, 405, NULL);
    } else {
        handle_messages(srv, req, rec, request_id);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int load_turns(cgw_mock_api_t *srv, const cgw_mock_api_options_t *o, cgw_error_t *err)
{
    if (o->script_path != NULL && o->replay_path != NULL) {
        return cgw_error_set(err, CGW_EINVAL, "--script and --replay exclude each other");
    }
    if (o->script_path != NULL) {
        return cgw__mock_script_load(o->script_path, &srv->script, err);
    }
    if (o->replay_path != NULL) {
        return cgw__mock_script_replay(o->replay_path, &srv->script, err);
    }
    return cgw__mock_script_default(&srv->script, err);
}

int cgw_mock_api_new(cgw_ctx_t *ctx, const cgw_mock_api_options_t *opts, cgw_mock_api_t **out,
                     cgw_error_t *err)
{
    cgw_mock_api_options_t defaults;
    if (opts == NULL) {
        cgw_mock_api_options_init(&defaults);
        opts = &defaults;
    }
    if (ctx == NULL || out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "ctx and out are required");
    }
    cgw_mock_api_t *srv = cgw__calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    srv->ctx = ctx;
    srv->max_body = opts->max_body_bytes > 0 ? opts->max_body_bytes : MOCK_DEFAULT_MAX_BODY;
    srv->issued = json_object();
    srv->by_status = json_object();
    srv->by_turn = json_object();
    srv->requests = json_array();
    srv->http = evhttp_new(cgw_ctx_base(ctx));
    int rc = CGW_OK;
    if (srv->issued == NULL || srv->by_status == NULL || srv->by_turn == NULL ||
        srv->requests == NULL || srv->http == NULL ||
        (opts->api_key != NULL && (srv->api_key = cgw__strdup(opts->api_key)) == NULL)) {
        rc = cgw_error_set(err, CGW_ENOMEM, "out of memory");
    }
    rc = rc == CGW_OK ? load_turns(srv, opts, err) : rc;
    rc = rc == CGW_OK
             ? cgw__http_bind(srv->http, opts->listen != NULL ? opts->listen : "127.0.0.1:0",
                              srv->address, sizeof(srv->address), err)
             : rc;
    if (rc != CGW_OK) {
        cgw_mock_api_free(srv);
        return rc;
    }
    /* Bodies between our limit and evhttp's get our JSON 413; evhttp's own (HTML) 413 only
     * protects the process from absurd uploads. */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)(2 * srv->max_body + 1024 * 1024));
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(srv->http, on_request, srv);
    *out = srv;
    return CGW_OK;
}

void cgw_mock_api_free(cgw_mock_api_t *mock)
{
    if (mock == NULL) {
        return;
    }
    cgw__mock_streams_free(mock);
    if (mock->http != NULL) {
        evhttp_free(mock->http);
    }
    cgw__mock_script_free(mock->script);
    json_decref(mock->issued);
    json_decref(mock->by_status);
    json_decref(mock->by_turn);
    json_decref(mock->requests);
    cgw_free(mock->api_key);
    cgw_free(mock);
}
