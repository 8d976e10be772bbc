/* The gateway in-process (so the sanitizer pass covers it): a cgw_gateway_t with the memory
 * store and the runner's stub answer, driven over real loopback HTTP by libevent's HTTP client
 * on the same loop. The end-to-end suites against the binary are
 * tests/integration/gateway_*.mjs. */
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "core/buf.h"
#include "server/gateway_int.h"
#include "testutil.h"

typedef struct fixture {
    cgw_ctx_t *ctx;
    cgw_store_t *store;
    cgw_gateway_t *gw;
    char host[64];
    int port;
    struct evhttp_connection *conns[64]; /* client connections, freed at stop */
    size_t n_conns;
} fixture_t;

typedef struct reply {
    int done;
    int status;
    cgw_buf_t body;
} reply_t;

static const char *TOKEN = "tok-unit-0123456789abcdef";

static void start(fixture_t *f, const cgw_gateway_options_t *extra)
{
    memset(f, 0, sizeof(*f));
    f->ctx = cgw_test_ctx_new();
    assert_int_equal(cgw_store_open_memory(f->ctx, &f->store), CGW_OK);
    cgw_gateway_options_t o;
    if (extra != NULL) {
        o = *extra;
    } else {
        cgw_gateway_options_init(&o);
    }
    o.listen = "127.0.0.1:0";
    o.store = f->store;
    o.stub_delay_ms = o.stub_delay_ms == 50 ? 1 : o.stub_delay_ms;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_gateway_new(f->ctx, &o, &f->gw, &err), CGW_OK);
    const char *a = cgw_gateway_address(f->gw);
    const char *colon = strrchr(a, ':');
    snprintf(f->host, sizeof(f->host), "%.*s", (int)(colon - a), a);
    f->port = atoi(colon + 1);
}

static void stop(fixture_t *f)
{
    for (size_t i = 0; i < f->n_conns; i++) {
        evhttp_connection_free(f->conns[i]);
    }
    cgw_gateway_free(f->gw);
    cgw_store_free(f->store);
    cgw_ctx_free(f->ctx);
}

static void take_input(struct evhttp_request *req, reply_t *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    cgw_buf_reserve(&r->body, n);
    evbuffer_remove(in, r->body.data + r->body.len, n);
    r->body.len += n;
    r->body.data[r->body.len] = '\0';
}

static void on_chunk(struct evhttp_request *req, void *arg)
{
    take_input(req, arg);
}

static void on_done(struct evhttp_request *req, void *arg)
{
    reply_t *r = arg;
    if (req != NULL) {
        r->status = evhttp_request_get_response_code(req);
        take_input(req, r);
    }
    r->done = 1;
}

/* Sends a request and returns a reply that completes on the loop (not waited for). */
static reply_t *send_req(fixture_t *f, enum evhttp_cmd_type cmd, const char *path, const char *body,
                         const char *token)
{
    reply_t *r = calloc(1, sizeof(*r));
    struct evhttp_connection *c =
        evhttp_connection_base_new(cgw_ctx_base(f->ctx), NULL, f->host, (ev_uint16_t)f->port);
    assert_true(f->n_conns < sizeof(f->conns) / sizeof(f->conns[0]));
    f->conns[f->n_conns++] = c;
    struct evhttp_request *req = evhttp_request_new(on_done, r);
    evhttp_request_set_chunked_cb(req, on_chunk);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", "test");
    if (token != NULL) {
        char auth[128];
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
    }
    if (body != NULL) {
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    evhttp_make_request(c, req, cmd, path);
    return r;
}

static reply_t *wait_reply(fixture_t *f, reply_t *r)
{
    assert_true(cgw_test_run_until(f->ctx, &r->done, 10000));
    return r;
}

static reply_t *req(fixture_t *f, enum evhttp_cmd_type cmd, const char *path, const char *body,
                    const char *token)
{
    return wait_reply(f, send_req(f, cmd, path, body, token));
}

static void reply_free(reply_t *r)
{
    cgw_buf_free(&r->body);
    free(r);
}

/* The value of "key":"..." in a reply body. */
static void field(const reply_t *r, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(r->body.data, pat);
    assert_non_null(p);
    p += strlen(pat);
    snprintf(out, cap, "%.*s", (int)strcspn(p, "\""), p);
}

static void expect(fixture_t *f, enum evhttp_cmd_type cmd, const char *path, const char *body,
                   const char *token, int status, const char *needle)
{
    reply_t *r = req(f, cmd, path, body, token);
    if (r->status != status || (needle != NULL && strstr(r->body.data, needle) == NULL)) {
        fail_msg("%s: status %d body %s", path, r->status, r->body.data ? r->body.data : "");
    }
    reply_free(r);
}

static void new_session(fixture_t *f, const char *token, char sid[64])
{
    reply_t *r = req(f, EVHTTP_REQ_POST, "/v1/sessions", "{\"system\":\"be brief\"}", token);
    assert_int_equal(r->status, 201);
    field(r, "session_id", sid, 64);
    reply_free(r);
}

static void post_message(fixture_t *f, const char *sid, const char *token, char rid[64])
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
    reply_t *r = req(f, EVHTTP_REQ_POST, path, "{\"content\":\"hello gateway\"}", token);
    assert_int_equal(r->status, 202);
    field(r, "run_id", rid, 64);
    reply_free(r);
}

static void test_run_and_replay(void **state)
{
    (void)state;
    fixture_t f;
    start(&f, NULL);
    char sid[64], rid[64], path[160];
    new_session(&f, NULL, sid);
    post_message(&f, sid, NULL, rid);
    snprintf(path, sizeof(path), "/v1/runs/%s/events", rid);
    reply_t *live = req(&f, EVHTTP_REQ_GET, path, NULL, NULL);
    assert_int_equal(live->status, 200);
    assert_non_null(strstr(live->body.data, "id: 1\nevent: text_delta\ndata: {\"seq\":1,"));
    assert_non_null(strstr(live->body.data, "\"text\":\"gateway"));
    assert_non_null(strstr(live->body.data, "event: stream_complete"));
    /* The finished run replays byte for byte from the store, and resumes after a seq. */
    reply_t *again = req(&f, EVHTTP_REQ_GET, path, NULL, NULL);
    assert_string_equal(again->body.data, live->body.data);
    snprintf(path, sizeof(path), "/v1/runs/%s/events?after=2", rid);
    reply_t *tail = req(&f, EVHTTP_REQ_GET, path, NULL, NULL);
    assert_non_null(strstr(tail->body.data, "id: 3\n"));
    assert_null(strstr(tail->body.data, "id: 2\n"));
    reply_free(live);
    reply_free(again);
    reply_free(tail);
    snprintf(path, sizeof(path), "/v1/runs/%s", rid);
    expect(&f, EVHTTP_REQ_GET, path, NULL, NULL, 200, "\"status\":\"completed\"");
    snprintf(path, sizeof(path), "/v1/sessions/%s", sid);
    expect(&f, EVHTTP_REQ_GET, path, NULL, NULL, 200, "\"message_count\":2");
    expect(&f, EVHTTP_REQ_GET, "/metrics", NULL, NULL, 200,
           "cgw_runs_finished_total{status=\"completed\"} 1");
    expect(&f, EVHTTP_REQ_GET, "/healthz", NULL, NULL, 200, "\"status\":\"ok\"");
    expect(&f, EVHTTP_REQ_GET, "/v1/tools", NULL, NULL, 200, "{\"tools\":[]}");
    expect(&f, EVHTTP_REQ_GET, "/v1/mcp/servers", NULL, NULL, 200, "{\"servers\":[]}");
    cgw_gateway_stats_t st;
    cgw_gateway_stats(f.gw, &st);
    assert_int_equal(st.active_runs, 0);
    assert_true(st.events > 5);
    stop(&f);
}

static void test_errors(void **state)
{
    (void)state;
    cgw_gateway_options_t o;
    cgw_gateway_options_init(&o);
    cgw_gateway_token_t tok = {TOKEN, "unit"};
    o.tokens = &tok;
    o.n_tokens = 1;
    o.max_body_bytes = 256;
    o.stub_delay_ms = 100;
    fixture_t f;
    start(&f, &o);
    expect(&f, EVHTTP_REQ_GET, "/v1/tools", NULL, NULL, 401, "authentication_error");
    expect(&f, EVHTTP_REQ_GET, "/v1/tools", NULL, "tok-wrong-0123456789", 401, NULL);
    expect(&f, EVHTTP_REQ_GET, "/v1/other", NULL, TOKEN, 404, "not_found_error");
    expect(&f, EVHTTP_REQ_PUT, "/v1/sessions", NULL, TOKEN, 405, NULL);
    expect(&f, EVHTTP_REQ_POST, "/v1/sessions", "{\"system\":", TOKEN, 400, "not valid JSON");
    expect(&f, EVHTTP_REQ_POST, "/v1/sessions", "[]", TOKEN, 400, "JSON object");
    expect(&f, EVHTTP_REQ_POST, "/v1/sessions", "{\"max_turns\":-1}", TOKEN, 400, "max_turns");
    char big[400];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect(&f, EVHTTP_REQ_POST, "/v1/sessions", big, TOKEN, 413, "request_too_large");
    char sid[64], rid[64], path[160];
    new_session(&f, TOKEN, sid);
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
    expect(&f, EVHTTP_REQ_POST, path, "{\"content\":[]}", TOKEN, 400, NULL);
    expect(&f, EVHTTP_REQ_POST, path, "{\"content\":\"x\",\"extra\":1}", TOKEN, 400, NULL);
    post_message(&f, sid, TOKEN, rid);
    expect(&f, EVHTTP_REQ_POST, path, "{\"content\":\"again\"}", TOKEN, 409, "conflict_error");
    snprintf(path, sizeof(path), "/v1/runs/%s/approvals", rid);
    expect(&f, EVHTTP_REQ_POST, path, "{\"tool_call_id\":\"t\",\"nonce\":\"n\",\"approved\":true}",
           TOKEN, 404, "tool_call_id");
    expect(&f, EVHTTP_REQ_POST, path, "{\"tool_call_id\":\"t\"}", TOKEN, 400, NULL);
    snprintf(path, sizeof(path), "/v1/runs/%s/events?after=x", rid);
    expect(&f, EVHTTP_REQ_GET, path, NULL, TOKEN, 400, NULL);
    snprintf(path, sizeof(path), "/v1/runs/%s/cancel", rid);
    expect(&f, EVHTTP_REQ_POST, path, NULL, TOKEN, 202, "cancelling");
    snprintf(path, sizeof(path), "/v1/runs/%s/events", rid);
    expect(&f, EVHTTP_REQ_GET, path, NULL, TOKEN, 200, "\"code\":\"cancelled\"");
    snprintf(path, sizeof(path), "/v1/runs/%s/cancel", rid);
    expect(&f, EVHTTP_REQ_POST, path, NULL, TOKEN, 409, "cancelled");
    expect(&f, EVHTTP_REQ_GET, "/v1/runs/run_none/events", NULL, TOKEN, 404, NULL);
    stop(&f);
}

static void on_stopped(cgw_gateway_t *gw, void *user)
{
    (void)gw;
    *(int *)user = 1;
}

/* Starts a gateway whose stub runs are slow, begins a run and opens its event stream, then
 * turns the loop for 300 ms so that the stream is live. Returns the stream's unfinished reply. */
static reply_t *start_with_open_stream(fixture_t *f)
{
    cgw_gateway_options_t o;
    cgw_gateway_options_init(&o);
    o.stub_delay_ms = 200;
    start(f, &o);
    char sid[64], rid[64], path[160];
    new_session(f, NULL, sid);
    post_message(f, sid, NULL, rid);
    snprintf(path, sizeof(path), "/v1/runs/%s/events", rid);
    reply_t *s = send_req(f, EVHTTP_REQ_GET, path, NULL, NULL);
    int never = 0;
    cgw_test_run_until(f->ctx, &never, 300);
    return s;
}

static void test_shutdown_ends_streams(void **state)
{
    (void)state;
    fixture_t f;
    reply_t *s = start_with_open_stream(&f);
    int stopped = 0;
    cgw_gateway_shutdown(f.gw, on_stopped, &stopped);
    cgw_gateway_shutdown(f.gw, on_stopped, &stopped); /* a no-op */
    /* New connections are refused at once. */
    reply_t *late = wait_reply(&f, send_req(&f, EVHTTP_REQ_GET, "/healthz", NULL, NULL));
    assert_int_equal(late->status, 0);
    reply_free(late);
    wait_reply(&f, s);
    assert_non_null(strstr(s->body.data, "\"code\":\"shutdown\""));
    assert_true(cgw_test_run_until(f.ctx, &stopped, 5000));
    reply_free(s);
    stop(&f);
}

/* Past max_loaded_sessions idle sessions are unloaded, and read back from the store when used. */
static void test_sessions_unloaded(void **state)
{
    (void)state;
    cgw_gateway_options_t o;
    cgw_gateway_options_init(&o);
    o.max_loaded_sessions = 8;
    fixture_t f;
    start(&f, &o);
    char sids[12][64], rid[64], path[160];
    for (int i = 0; i < 12; i++) {
        new_session(&f, NULL, sids[i]);
        post_message(&f, sids[i], NULL, rid);
        snprintf(path, sizeof(path), "/v1/runs/%s/events", rid);
        reply_free(req(&f, EVHTTP_REQ_GET, path, NULL, NULL));
        cgw_gateway_stats_t st;
        cgw_gateway_stats(f.gw, &st);
        assert_true(st.sessions_loaded <= 8);
    }
    post_message(&f, sids[0], NULL, rid); /* unloaded long ago: read back */
    snprintf(path, sizeof(path), "/v1/runs/%s/events", rid);
    reply_free(req(&f, EVHTTP_REQ_GET, path, NULL, NULL));
    snprintf(path, sizeof(path), "/v1/sessions/%s", sids[0]);
    expect(&f, EVHTTP_REQ_GET, path, NULL, NULL, 200, "\"message_count\":4");
    stop(&f);
}

/* Freeing the gateway with a run in progress and a stream open (teardown without shutdown). */
static void test_free_with_stream_open(void **state)
{
    (void)state;
    fixture_t f;
    reply_t *s = start_with_open_stream(&f);
    cgw_gateway_stats_t st;
    cgw_gateway_stats(f.gw, &st);
    assert_int_equal(st.open_streams, 1);
    assert_int_equal(st.active_runs, 1);
    stop(&f);
    reply_free(s);
}

/* Label sets past a counter's capacity fold into one "other" row; nothing overflows. */
static void test_counter_capacity(void **state)
{
    (void)state;
    gw_counter_t *c = calloc(1, sizeof(*c));
    char name[16];
    for (int i = 0; i < 3 * GW_COUNTER_ROWS; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        cgw__gw_count(c, name, "ok", 1);
    }
    cgw__gw_count(c, "s0", "ok", 5); /* a known row still counts as itself */
    assert_int_equal(c->n, GW_COUNTER_ROWS);
    assert_string_equal(c->rows[0].a, "s0");
    assert_int_equal(c->rows[0].value, 6);
    assert_string_equal(c->rows[GW_COUNTER_ROWS - 1].a, "other");
    assert_int_equal(c->rows[GW_COUNTER_ROWS - 1].value,
                     3 * GW_COUNTER_ROWS - (GW_COUNTER_ROWS - 1));
    gw_hist_t h;
    memset(&h, 0, sizeof(h));
    cgw__gw_observe(&h, 0.001);
    cgw__gw_observe(&h, 1000);
    assert_int_equal(h.counts[0], 1);
    assert_int_equal(h.counts[GW_HIST_BUCKETS], 1);
    assert_int_equal(h.n, 2);
    free(c);
}

static void test_new_refusals(void **state)
{
    (void)state;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_store_t *store = NULL;
    assert_int_equal(cgw_store_open_memory(ctx, &store), CGW_OK);
    cgw_gateway_options_t o;
    cgw_gateway_options_init(&o);
    o.store = store;
    o.listen = "0.0.0.0:0";
    cgw_gateway_t *gw = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_gateway_new(ctx, &o, &gw, &err), CGW_EACCES);
    assert_non_null(strstr(err.message, "without authentication"));
    cgw_gateway_token_t tok = {"short", "t"};
    o.tokens = &tok;
    o.n_tokens = 1;
    assert_int_equal(cgw_gateway_new(ctx, &o, &gw, &err), CGW_EINVAL);
    o.n_tokens = 0;
    o.listen = "nonsense";
    assert_int_equal(cgw_gateway_new(ctx, &o, &gw, &err), CGW_EINVAL);
    o.store = NULL;
    assert_int_equal(cgw_gateway_new(ctx, &o, &gw, &err), CGW_EINVAL);
    assert_null(gw);
    cgw_store_free(store);
    cgw_ctx_free(ctx);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_replay),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_shutdown_ends_streams),
        cmocka_unit_test(test_free_with_stream_open),
        cmocka_unit_test(test_sessions_unloaded),
        cmocka_unit_test(test_counter_capacity),
        cmocka_unit_test(test_new_refusals),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
