/* curl multi-socket on the context's loop, against an evhttp server on the same loop:
 * completion, headers, POST bodies, many transfers at once, cancel from inside a callback,
 * start from inside a callback, misuse. */
#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "core/buf.h"
#include "core/curl_multi.h"
#include "testutil.h"

#define BIG (512 * 1024)

static cgw_ctx_t *g_ctx;
static struct evhttp *g_http;
static char g_url[128];

static void handle(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *out = evbuffer_new();
    const char *uri = evhttp_request_get_uri(req);
    if (strcmp(uri, "/big") == 0) {
        static char chunk[4096];
        memset(chunk, 'x', sizeof(chunk));
        for (int i = 0; i < BIG / (int)sizeof(chunk); i++) {
            evbuffer_add(out, chunk, sizeof(chunk));
        }
    } else if (strcmp(uri, "/echo") == 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "x-test");
        evbuffer_add_printf(out, "%s|", h ? h : "-");
        evbuffer_add_buffer(out, in);
    } else {
        evbuffer_add_printf(out, "hello");
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "x-reply", "yes");
    evhttp_send_reply(req, strcmp(uri, "/missing") == 0 ? 404 : 200, "OK", out);
    evbuffer_free(out);
}

static int setup(void **state)
{
    (void)state;
    /* The in-process server may write to a connection the client just dropped. */
    signal(SIGPIPE, SIG_IGN);
    g_ctx = cgw_test_ctx_new();
    g_http = evhttp_new(cgw_ctx_base(g_ctx));
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(g_http, "127.0.0.1", 0);
    if (s == NULL) {
        return -1;
    }
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sa, &sl);
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    evhttp_set_gencb(g_http, handle, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    evhttp_free(g_http);
    cgw_ctx_free(g_ctx);
    return 0;
}

struct got {
    cgw__xfer_t *x;
    cgw_buf_t body;
    int headers_seen;
    int done;
    CURLcode result;
    long status;
    int data_calls;
    int free_on_first_data;    /* cancel from inside on_data */
    struct got *start_on_data; /* start another transfer from inside on_data */
};

static int on_header(const char *line, size_t len, void *user)
{
    struct got *g = user;
    if (len >= 8 && strncasecmp(line, "x-reply:", 8) == 0) {
        g->headers_seen++;
    }
    return 0;
}

static int on_data(const char *data, size_t len, void *user)
{
    struct got *g = user;
    g->data_calls++;
    cgw_buf_append(&g->body, data, len);
    if (g->start_on_data != NULL) {
        assert_int_equal(cgw__xfer_start(g->start_on_data->x), CGW_OK);
        g->start_on_data = NULL;
    }
    if (g->free_on_first_data) {
        cgw__xfer_free(g->x);
        g->x = NULL;
        g->done = 1;
    }
    return 0;
}

static void on_done(cgw__xfer_t *x, CURLcode result, void *user)
{
    struct got *g = user;
    g->result = result;
    g->status = cgw__xfer_status(x);
    g->done = 1;
    cgw__xfer_free(x);
    g->x = NULL;
}

static const cgw__xfer_cbs_t g_cbs = {on_header, on_data, on_done};

static void make(struct got *g, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", g_url, path);
    assert_int_equal(cgw__xfer_new(g_ctx, &g_cbs, g, &g->x), CGW_OK);
    curl_easy_setopt(cgw__xfer_easy(g->x), CURLOPT_URL, url);
}

static void test_get_and_status(void **state)
{
    (void)state;
    struct got g = {0}, m = {0};
    make(&g, "/hello");
    make(&m, "/missing");
    assert_int_equal(cgw__xfer_start(g.x), CGW_OK);
    assert_int_equal(cgw__xfer_start(m.x), CGW_OK);
    assert_int_equal(cgw__curlm_active(g_ctx), 2);
    assert_true(cgw_test_run_until(g_ctx, &g.done, 5000));
    assert_true(cgw_test_run_until(g_ctx, &m.done, 5000));
    assert_int_equal(g.result, CURLE_OK);
    assert_int_equal(g.status, 200);
    assert_string_equal(g.body.data, "hello");
    assert_int_equal(g.headers_seen, 1);
    assert_int_equal(m.status, 404);
    assert_int_equal(cgw__curlm_active(g_ctx), 0);
    cgw_buf_free(&g.body);
    cgw_buf_free(&m.body);
}

static void test_post_body_and_headers(void **state)
{
    (void)state;
    struct got g = {0};
    make(&g, "/echo");
    assert_int_equal(cgw__xfer_add_header(g.x, "x-test: 42"), CGW_OK);
    assert_int_equal(cgw__xfer_add_header(g.x, "expect:"), CGW_OK);
    char *body = strdup("{\"a\":1}");
    assert_int_equal(cgw__xfer_set_body_take(g.x, body, 7), CGW_OK);
    assert_int_equal(cgw__xfer_start(g.x), CGW_OK);
    /* Misuse after start is refused; a body handed over is still freed. */
    cgw__xfer_t *x = g.x;
    assert_int_equal(cgw__xfer_start(x), CGW_ESTATE);
    assert_int_equal(cgw__xfer_add_header(x, "x-late: 1"), CGW_ESTATE);
    assert_int_equal(cgw__xfer_set_body_take(x, strdup("late"), 4), CGW_ESTATE);
    assert_true(cgw_test_run_until(g_ctx, &g.done, 5000));
    assert_string_equal(g.body.data, "42|{\"a\":1}");
    cgw_buf_free(&g.body);
}

static void test_many_at_once(void **state)
{
    (void)state;
    enum { N = 25 };
    struct got g[N];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < N; i++) {
        make(&g[i], i % 2 ? "/big" : "/hello");
        assert_int_equal(cgw__xfer_start(g[i].x), CGW_OK);
    }
    for (int i = 0; i < N; i++) {
        assert_true(cgw_test_run_until(g_ctx, &g[i].done, 10000));
        assert_int_equal(g[i].result, CURLE_OK);
        assert_int_equal(g[i].body.len, i % 2 ? (size_t)BIG : 5u);
        cgw_buf_free(&g[i].body);
    }
    assert_int_equal(cgw__curlm_active(g_ctx), 0);
}

static int g_never;

static void test_free_inside_on_data_and_start_inside(void **state)
{
    (void)state;
    struct got a = {0}, b = {0};
    make(&a, "/big");
    make(&b, "/hello");
    a.free_on_first_data = 1;
    a.start_on_data = &b; /* curl is on the stack: the start is deferred, not refused */
    assert_int_equal(cgw__xfer_start(a.x), CGW_OK);
    assert_true(cgw_test_run_until(g_ctx, &a.done, 5000));
    assert_int_equal(a.data_calls, 1); /* nothing delivered after the free */
    assert_true(cgw_test_run_until(g_ctx, &b.done, 5000));
    assert_string_equal(b.body.data, "hello");
    cgw_test_run_until(g_ctx, &g_never, 100);
    assert_int_equal(a.data_calls, 1);
    assert_int_equal(cgw__curlm_active(g_ctx), 0);
    cgw_buf_free(&a.body);
    cgw_buf_free(&b.body);
}

static void test_free_before_and_while_running(void **state)
{
    (void)state;
    struct got a = {0}, b = {0};
    make(&a, "/big");
    cgw__xfer_free(a.x); /* never started */
    make(&b, "/big");
    assert_int_equal(cgw__xfer_start(b.x), CGW_OK);
    cgw__xfer_free(b.x); /* running, outside curl: removed at once */
    assert_int_equal(cgw__curlm_active(g_ctx), 0);
    cgw_test_run_until(g_ctx, &g_never, 100);
    assert_int_equal(b.done, 0);
    assert_int_equal(b.data_calls, 0);
    cgw__xfer_free(NULL);
    cgw__xfer_t *x = NULL;
    cgw__xfer_cbs_t none = {0};
    assert_int_equal(cgw__xfer_new(g_ctx, &none, NULL, &x), CGW_EINVAL);
    assert_null(x);
}

static void test_connection_refused(void **state)
{
    (void)state;
    struct got g = {0};
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", cgw_test_free_port());
    assert_int_equal(cgw__xfer_new(g_ctx, &g_cbs, &g, &g.x), CGW_OK);
    curl_easy_setopt(cgw__xfer_easy(g.x), CURLOPT_URL, url);
    assert_int_equal(cgw__xfer_start(g.x), CGW_OK);
    assert_true(cgw_test_run_until(g_ctx, &g.done, 5000));
    assert_int_equal(g.result, CURLE_COULDNT_CONNECT);
    assert_int_equal(g.status, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_status),
        cmocka_unit_test(test_post_body_and_headers),
        cmocka_unit_test(test_many_at_once),
        cmocka_unit_test(test_free_inside_on_data_and_start_inside),
        cmocka_unit_test(test_free_before_and_while_running),
        cmocka_unit_test(test_connection_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
