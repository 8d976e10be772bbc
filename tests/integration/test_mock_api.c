/* `claude-gateway mock-api` against a real client: the binary is started on 127.0.0.1:0, the
 * address read from its first stdout line, and every scripted case is driven with libcurl easy
 * over loopback. Each test loads its own script through POST /_mock/script (the first one
 * comes from --script); the replay and body-limit tests start their own servers. */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/json.h"
#include "testutil.h"

extern char **environ;

/* ---- the server process ------------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    char addr[128];
} server_t;

static server_t srv; /* the shared one of the group */

static int server_start(server_t *s, const char *const *extra)
{
    const char *argv[16] = {cgw_test_gateway_bin(), "mock-api", "--listen", "127.0.0.1:0"};
    int n = 4;
    for (; extra != NULL && *extra != NULL && n < 15; extra++) {
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    int rc = posix_spawn(&s->pid, argv[0], &fa, NULL, (char **)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    char line[256] = "";
    if (rc != 0 || out == NULL || fgets(line, sizeof(line), out) == NULL ||
        sscanf(line, "listening on %127s", s->addr) != 1) {
        if (out != NULL) {
            fclose(out);
        }
        return -1;
    }
    fclose(out);
    return 0;
}

/* Signals (SIGTERM or SIGINT), reaps, and returns the exit status (128+signal if killed). */
static int server_stop_with(server_t *s, int sig)
{
    int status = -1;
    kill(s->pid, sig);
    waitpid(s->pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int server_stop(server_t *s)
{
    return server_stop_with(s, SIGTERM);
}

/* ---- HTTP client -------------------------------------------------------------------------- */

typedef struct resp {
    CURLcode rc;
    long status;
    char headers[8192];
    size_t hlen;
    char *body;
    size_t len;
    int writes;      /* write callbacks, i.e. separate reads of the body */
    double first_ms; /* time of the first body byte since the start */
    double last_ms;
    double gap_ms_min; /* smallest gap between two writes */
    struct timespec t0;
} resp_t;

static double since_ms(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    resp_t *r = arg;
    double t = since_ms(&r->t0);
    if (r->writes == 0) {
        r->first_ms = t;
    } else if (t - r->last_ms < r->gap_ms_min) {
        r->gap_ms_min = t - r->last_ms;
    }
    r->last_ms = t;
    r->writes++;
    r->body = realloc(r->body, r->len + size * n + 1);
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    resp_t *r = arg;
    size_t k = size * n;
    if (r->hlen + k < sizeof(r->headers)) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = '\0';
    }
    return k;
}

static const char *const api_headers[] = {"x-api-key: sk-ant-test-0123456789",
                                          "anthropic-version: 2023-06-01",
                                          "content-type: application/json", NULL};

static resp_t *http(const char *method, const char *addr, const char *path, const char *body,
                    long body_len, const char *const *hdrs, long timeout_ms)
{
    resp_t *r = calloc(1, sizeof(*r));
    r->gap_ms_min = 1e9;
    r->body = calloc(1, 1);
    char url[512];
    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (; hdrs != NULL && *hdrs != NULL; hdrs++) {
        h = curl_slist_append(h, *hdrs);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len >= 0 ? body_len : (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 10000L);
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static void resp_free(resp_t *r)
{
    if (r != NULL) {
        free(r->body);
        free(r);
    }
}

/* A header's value (case-insensitive name) copied into a static buffer, or NULL. */
static const char *header(const resp_t *r, const char *name)
{
    static char val[512];
    size_t nl = strlen(name);
    for (const char *l = r->headers; l != NULL && *l;
         l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t n = strcspn(v, "\r\n");
            snprintf(val, sizeof(val), "%.*s", (int)n, v);
            return val;
        }
    }
    return NULL;
}

static resp_t *post_messages(const char *body, long timeout_ms)
{
    return http("POST", srv.addr, "/v1/messages", body, -1, api_headers, timeout_ms);
}

static void load_script(const char *script)
{
    resp_t *r = http("POST", srv.addr, "/_mock/script", script, -1, NULL, 0);
    assert_int_equal(r->rc, CURLE_OK);
    if (r->status != 200) {
        fail_msg("script refused: %s", r->body);
    }
    resp_free(r);
}

static json_t *body_json(const resp_t *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    assert_non_null(j);
    return j;
}

/* The error body of the API: checks its shape and that request_id matches the header. */
static void assert_api_error(const resp_t *r, long status, const char *type, const char *msg)
{
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, status);
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    if (msg != NULL) {
        assert_string_equal(json_string_value(json_object_get(e, "message")), msg);
    }
    const char *rid = header(r, "request-id");
    assert_non_null(rid);
    assert_true(strncmp(rid, "req_", 4) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
    json_decref(j);
}

/* ---- SSE ---------------------------------------------------------------------------------- */

typedef struct sse {
    size_t n;
    char name[256][32];
    json_t *data[256];
} sse_t;

/* Simple parse of our own well-formed output: frames split on blank lines. */
static sse_t *sse_parse(const char *body)
{
    sse_t *s = calloc(1, sizeof(*s));
    char *copy = strdup(body);
    char *save = NULL;
    for (char *f = strtok_r(copy, "\n", &save); f != NULL && s->n < 256;
         f = strtok_r(NULL, "\n", &save)) {
        if (strncmp(f, "event: ", 7) == 0) {
            snprintf(s->name[s->n], sizeof(s->name[0]), "%s", f + 7);
        } else if (strncmp(f, "data: ", 6) == 0) {
            s->data[s->n++] = json_loads(f + 6, 0, NULL);
        }
    }
    free(copy);
    return s;
}

static void sse_free(sse_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        json_decref(s->data[i]);
    }
    free(s);
}

static size_t count_events(const sse_t *s, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        n += strcmp(s->name[i], name) == 0;
    }
    return n;
}

/* Concatenates the `key` field of the deltas of block `index`. */
static void joined_deltas(const sse_t *s, long index, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        json_t *d = json_object_get(s->data[i], "delta");
        if (strcmp(s->name[i], "content_block_delta") == 0 &&
            json_integer_value(json_object_get(s->data[i], "index")) == index &&
            json_object_get(d, key) != NULL) {
            strncat(out, json_string_value(json_object_get(d, key)), cap - strlen(out) - 1);
        }
    }
}

static const char *stream_req = "{\"model\":\"claude-test\",\"max_tokens\":100,\"stream\":true,"
                                "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* ---- scripted turns ----------------------------------------------------------------------- */

static void test_text_deltas(void **state)
{
    (void)state;
    load_script("[{\"text\":\"Hello world, how are you?\",\"chunks\":4,\"delay_ms\":50,"
                "\"usage\":{\"input_tokens\":123,\"output_tokens\":45}}]");
    resp_t *r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "content-type"), "text/event-stream; charset=utf-8");
    assert_non_null(header(r, "request-id"));
    sse_t *s = sse_parse(r->body);
    const char *order[] = {"message_start",       "ping",
                           "content_block_start", "content_block_delta",
                           "content_block_delta", "content_block_delta",
                           "content_block_delta", "content_block_stop",
                           "message_delta",       "message_stop"};
    assert_int_equal(s->n, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(s->name[i], order[i]);
        assert_string_equal(json_string_value(json_object_get(s->data[i], "type")), order[i]);
    }
    char text[256];
    joined_deltas(s, 0, "text", text, sizeof(text));
    assert_string_equal(text, "Hello world, how are you?");
    /* The deltas were paced, so they reached the client as separate reads. */
    assert_true(r->writes >= 4);
    json_t *msg = json_object_get(s->data[0], "message");
    assert_string_equal(json_string_value(json_object_get(msg, "model")), "claude-test");
    json_t *u0 = json_object_get(msg, "usage");
    assert_int_equal(json_integer_value(json_object_get(u0, "input_tokens")), 123);
    assert_int_equal(json_integer_value(json_object_get(u0, "output_tokens")), 1);
    json_t *u1 = json_object_get(s->data[8], "usage");
    assert_int_equal(json_integer_value(json_object_get(u1, "input_tokens")), 123);
    assert_int_equal(json_integer_value(json_object_get(u1, "output_tokens")), 45);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(s->data[8], "delta"), "stop_reason")),
        "end_turn");
    sse_free(s);
    resp_free(r);
}

static void test_text_exact_deltas_utf8(void **state)
{
    (void)state;
    load_script(
        "[{\"content\":[{\"type\":\"text\",\"deltas\":[\"Gr\\u00fc\",\"\\u00dfe \",\"\\u2603\"]},"
        "{\"type\":\"text\",\"text\":\"\\u00e9\\u00e9\\u00e9\",\"chunks\":3}]}]");
    resp_t *r = post_messages(stream_req, 0);
    sse_t *s = sse_parse(r->body);
    assert_int_equal(count_events(s, "content_block_delta"), 6);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(s->data[3], "delta"), "text")),
        "Gr\xc3\xbc");
    char text[64];
    joined_deltas(s, 1, "text", text, sizeof(text));
    assert_string_equal(text, "\xc3\xa9\xc3\xa9\xc3\xa9"); /* split on characters, not bytes */
    sse_free(s);
    resp_free(r);
}

static void test_thinking_signature(void **state)
{
    (void)state;
    load_script("[{\"content\":[{\"type\":\"thinking\",\"thinking\":\"Let me think it over.\","
                "\"signature\":\"sig-abc\",\"chunks\":3},{\"type\":\"text\",\"text\":\"Yes.\"}]},"
                "{\"text\":\"ok\"},{\"text\":\"ok\"}]");
    resp_t *r = post_messages(stream_req, 0);
    sse_t *s = sse_parse(r->body);
    json_t *start = json_object_get(s->data[2], "content_block");
    assert_string_equal(json_string_value(json_object_get(start, "type")), "thinking");
    char thinking[128], sig[64];
    joined_deltas(s, 0, "thinking", thinking, sizeof(thinking));
    joined_deltas(s, 0, "signature", sig, sizeof(sig));
    assert_string_equal(thinking, "Let me think it over.");
    assert_string_equal(sig, "sig-abc");
    /* signature_delta is the last delta of the block, right before content_block_stop. */
    assert_string_equal(s->name[6], "content_block_delta");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(s->data[6], "delta"), "type")),
        "signature_delta");
    assert_string_equal(s->name[7], "content_block_stop");
    sse_free(s);
    resp_free(r);

    /* Sent back unchanged: accepted. */
#define tmpl                                                                                       \
    "{\"model\":\"m\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"    \
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"%s\","             \
    "\"signature\":\"%s\"},{\"type\":\"text\",\"text\":\"Yes.\"}]},"                               \
    "{\"role\":\"user\",\"content\":\"next\"}]}"
    char body[1024];
    snprintf(body, sizeof(body), tmpl, "Let me think it over.", "sig-abc");
    r = post_messages(body, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    /* Edited thinking, or a signature the mock never issued: the API's 400. */
    snprintf(body, sizeof(body), tmpl, "Let me think it over. ", "sig-abc");
    r = post_messages(body, 0);
    assert_api_error(r, 400, "invalid_request_error",
                     "messages.1.content.0: Invalid `signature` in `thinking` block");
    resp_free(r);
    snprintf(body, sizeof(body), tmpl, "Let me think it over.", "sig-forged");
    r = post_messages(body, 0);
    assert_api_error(r, 400, "invalid_request_error",
                     "messages.1.content.0: Invalid `signature` in `thinking` block");
    resp_free(r);
}

static void test_redacted_thinking(void **state)
{
    (void)state;
    load_script("[{\"content\":[{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgBEgy\"},"
                "{\"type\":\"text\",\"text\":\"Done.\"}]},{\"text\":\"ok\"}]");
    resp_t *r = post_messages(stream_req, 0);
    sse_t *s = sse_parse(r->body);
    json_t *cb = json_object_get(s->data[2], "content_block");
    assert_string_equal(json_string_value(json_object_get(cb, "data")), "EmwKAhgBEgy");
    assert_int_equal(count_events(s, "content_block_delta"), 1); /* only the text */
    sse_free(s);
    resp_free(r);
#undef tmpl
#define tmpl                                                                                       \
    "{\"model\":\"m\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"    \
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"redacted_thinking\",\"data\":\"%s\"}]},"     \
    "{\"role\":\"user\",\"content\":\"next\"}]}"
    char body[512];
    snprintf(body, sizeof(body), tmpl, "EmwKAhgBEgx");
    r = post_messages(body, 0);
    assert_api_error(r, 400, "invalid_request_error",
                     "messages.1.content.0: Invalid `data` in `redacted_thinking` block");
    resp_free(r);
    snprintf(body, sizeof(body), tmpl, "EmwKAhgBEgy");
    r = post_messages(body, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
}

static void test_multi_tool_use(void **state)
{
    (void)state;
    load_script(
        "[{\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\","
        "\"input\":{\"city\":\"Paris\",\"units\":\"c\"},\"chunks\":3},"
        "{\"type\":\"tool_use\",\"name\":\"get_time\",\"input_deltas\":[\"\",\"{\\\"tz\\\":\","
        "\"\\\"CET\\\"}\"]}],\"delay_ms\":5}]");
    resp_t *r = post_messages(stream_req, 0);
    sse_t *s = sse_parse(r->body);
    char json[256];
    joined_deltas(s, 1, "partial_json", json, sizeof(json));
    json_t *in = json_loads(json, 0, NULL);
    assert_non_null(in);
    assert_string_equal(json_string_value(json_object_get(in, "city")), "Paris");
    json_decref(in);
    size_t pieces1 = 0, pieces2 = 0;
    for (size_t i = 0; i < s->n; i++) {
        long idx = (long)json_integer_value(json_object_get(s->data[i], "index"));
        if (strcmp(s->name[i], "content_block_delta") == 0) {
            pieces1 += idx == 1;
            pieces2 += idx == 2;
        }
        if (strcmp(s->name[i], "content_block_start") == 0 && idx == 2) {
            json_t *cb = json_object_get(s->data[i], "content_block");
            assert_string_equal(json_string_value(json_object_get(cb, "id")), "toolu_mock_1_2");
            assert_string_equal(json_string_value(json_object_get(cb, "name")), "get_time");
            assert_int_equal(json_object_size(json_object_get(cb, "input")), 0);
        }
    }
    assert_int_equal(pieces1, 3);
    assert_int_equal(pieces2, 3);
    joined_deltas(s, 2, "partial_json", json, sizeof(json));
    assert_string_equal(json, "{\"tz\":\"CET\"}");
    json_t *md = s->data[s->n - 2];
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(md, "delta"), "stop_reason")),
        "tool_use");
    sse_free(s);
    resp_free(r);
}

static size_t count_sink(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += size * n;
    return size * n;
}

static void test_concurrent_streams(void **state)
{
    (void)state;
    /* 20 paced streams at once: served side by side, not one after the other. */
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"abcd\",\"chunks\":4,"
                "\"delay_ms\":100}]}");
    enum { N = 20 };
    CURLM *multi = curl_multi_init();
    CURL *easy[N];
    size_t got[N] = {0};
    char url[256];
    snprintf(url, sizeof(url), "http://%s/v1/messages", srv.addr);
    struct curl_slist *h = NULL;
    for (const char *const *p = api_headers; *p != NULL; p++) {
        h = curl_slist_append(h, *p);
    }
    for (int i = 0; i < N; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, stream_req);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, count_sink);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &got[i]);
        curl_multi_add_handle(multi, easy[i]);
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int running = N;
    while (running > 0 && since_ms(&t0) < 10000) {
        curl_multi_perform(multi, &running);
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double took = since_ms(&t0);
    int ok = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        ok += m->msg == CURLMSG_DONE && m->data.result == CURLE_OK;
    }
    for (int i = 0; i < N; i++) {
        assert_true(got[i] > 0 && got[i] == got[0]); /* the same answer, complete, for each */
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(h);
    assert_int_equal(ok, N);
    assert_true(took >= 400.0); /* four 100 ms pauses each */
    assert_true(took < 4000.0); /* one after the other would take 8 s */
}

static void test_pauses(void **state)
{
    (void)state;
    load_script("[{\"text\":\"abc\",\"chunks\":3,\"delay_ms\":150}]");
    resp_t *r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_OK);
    /* Three deltas, each after a 150 ms pause; the first frames arrive at once. */
    assert_true(r->last_ms - r->first_ms >= 400.0);
    assert_true(r->writes >= 4);
    resp_free(r);
}

static void test_http_errors(void **state)
{
    (void)state;
    load_script(
        "[{\"status\":429,\"headers\":{\"retry-after\":\"3\",\"retry-after-ms\":\"2500\"}},"
        "{\"status\":529},{\"status\":500},"
        "{\"status\":429,\"error\":{\"type\":\"rate_limit_error\",\"message\":\"spend cap\"},"
        "\"headers\":{\"x-should-retry\":\"false\"}},"
        "{\"status\":502,\"body\":\"<html>bad gateway</html>\",\"headers\":{\"content-type\":"
        "\"text/html\"}}]");
    resp_t *r = post_messages(stream_req, 0);
    assert_api_error(r, 429, "rate_limit_error", NULL);
    assert_string_equal(header(r, "retry-after"), "3");
    assert_string_equal(header(r, "retry-after-ms"), "2500");
    assert_string_equal(header(r, "x-should-retry"), "true");
    assert_string_equal(header(r, "content-type"), "application/json");
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_api_error(r, 529, "overloaded_error", "Overloaded");
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_api_error(r, 500, "api_error", "Internal server error");
    assert_string_equal(header(r, "x-should-retry"), "true");
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_api_error(r, 429, "rate_limit_error", "spend cap");
    assert_string_equal(header(r, "x-should-retry"), "false");
    assert_null(header(r, "retry-after"));
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_int_equal(r->status, 502);
    assert_string_equal(r->body, "<html>bad gateway</html>");
    assert_string_equal(header(r, "content-type"), "text/html");
    resp_free(r);
    /* Script exhausted: the default rule is a 500 that says so. */
    r = post_messages(stream_req, 0);
    assert_api_error(r, 500, "api_error", "mock-api: script exhausted after 5 turns");
    resp_free(r);
}

static void test_error_event_mid_stream(void **state)
{
    (void)state;
    load_script("[{\"text\":\"abcd\",\"chunks\":4,\"error_event\":{\"after\":2}},"
                "{\"text\":\"x\",\"error_event\":{\"after\":\"headers\",\"type\":\"api_error\","
                "\"message\":\"Internal server error\"}}]");
    resp_t *r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_OK); /* the reply ends normally after the error event */
    assert_int_equal(r->status, 200);
    sse_t *s = sse_parse(r->body);
    assert_int_equal(count_events(s, "content_block_delta"), 2);
    assert_string_equal(s->name[s->n - 1], "error");
    json_t *e = json_object_get(s->data[s->n - 1], "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "overloaded_error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "Overloaded");
    assert_int_equal(count_events(s, "message_stop"), 0);
    sse_free(s);
    resp_free(r);
    r = post_messages(stream_req, 0);
    s = sse_parse(r->body);
    assert_int_equal(s->n, 1); /* before message_start */
    assert_string_equal(s->name[0], "error");
    sse_free(s);
    resp_free(r);
}

static void test_hang(void **state)
{
    (void)state;
    load_script("[{\"text\":\"abcd\",\"chunks\":4,\"hang\":1},"
                "{\"text\":\"x\",\"hang\":\"request\"},{\"text\":\"after\"}]");
    resp_t *r = post_messages(stream_req, 600);
    assert_int_equal(r->rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r->status, 200);
    sse_t *s = sse_parse(r->body);
    assert_int_equal(count_events(s, "content_block_delta"), 1);
    sse_free(s);
    resp_free(r);
    r = post_messages(stream_req, 400);
    assert_int_equal(r->rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r->status, 0); /* not even headers */
    resp_free(r);
    /* The server still serves other requests. */
    r = post_messages(stream_req, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    /* Both hangs ended when their clients left (the one before the headers within ~100 ms). */
    long open = -1;
    for (int i = 0; i < 50 && open != 0; i++) {
        usleep(20 * 1000);
        r = http("GET", srv.addr, "/_mock/stats", NULL, 0, NULL, 0);
        json_t *st = body_json(r);
        open = (long)cgw_json_int(st, "open_streams", -1);
        json_decref(st);
        resp_free(r);
    }
    assert_int_equal(open, 0);
}

static void test_cut(void **state)
{
    (void)state;
    load_script("[{\"text\":\"abcdef\",\"chunks\":6,\"cut\":{\"after\":3},\"delay_ms\":10},"
                "{\"text\":\"x\",\"cut\":\"request\"},{\"text\":\"x\",\"cut\":\"headers\"}]");
    resp_t *r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_PARTIAL_FILE);
    sse_t *s = sse_parse(r->body);
    assert_int_equal(count_events(s, "content_block_delta"), 3);
    char text[16];
    joined_deltas(s, 0, "text", text, sizeof(text));
    assert_string_equal(text, "abc");
    sse_free(s);
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_GOT_NOTHING);
    resp_free(r);
    r = post_messages(stream_req, 0);
    assert_int_equal(r->rc, CURLE_PARTIAL_FILE);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->len, 0);
    resp_free(r);
}

static const char *ask(const char *text, bool stream)
{
    static char body[512];
    snprintf(body, sizeof(body),
             "{\"model\":\"m\",\"max_tokens\":10,\"stream\":%s,\"messages\":[{\"role\":\"user\","
             "\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}]}",
             stream ? "true" : "false", text);
    return body;
}

static const char *answer_text(const resp_t *r)
{
    static char text[128];
    json_t *j = body_json(r);
    snprintf(text, sizeof(text), "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(j, "content"), 0), "text")));
    json_decref(j);
    return text;
}

static void test_marker_selection(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"repeat_last\",\"turns\":["
                "{\"name\":\"first\",\"text\":\"one\"},"
                "{\"name\":\"weather\",\"match\":\"WEATHER\",\"text\":\"sunny\"},"
                "{\"name\":\"also\",\"match\":\"WEATHER\",\"text\":\"never: first match wins\"},"
                "{\"name\":\"second\",\"text\":\"two\"}]}");
    resp_t *r = post_messages(ask("hello", false), 0);
    assert_string_equal(answer_text(r), "one");
    resp_free(r);
    r = post_messages(ask("what is the WEATHER like", false), 0);
    assert_string_equal(answer_text(r), "sunny");
    resp_free(r);
    r = post_messages(ask("WEATHER again", false), 0);
    assert_string_equal(answer_text(r), "sunny");
    resp_free(r);
    r = post_messages(ask("hello", false), 0); /* the position did not move on markers */
    assert_string_equal(answer_text(r), "two");
    resp_free(r);
    r = post_messages(ask("hello", false), 0); /* repeat_last */
    assert_string_equal(answer_text(r), "two");
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/stats", NULL, 0, NULL, 0);
    json_t *st = body_json(r);
    json_t *by_turn = json_object_get(st, "by_turn");
    assert_int_equal(json_integer_value(json_object_get(by_turn, "weather")), 2);
    assert_int_equal(json_integer_value(json_object_get(by_turn, "second")), 2);
    assert_null(json_object_get(by_turn, "also"));
    json_decref(st);
    resp_free(r);
}

static void test_when_exhausted_cycle_and_repeat(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"a\",\"repeat\":2},"
                "{\"text\":\"b\"}]}");
    const char *want[] = {"a", "a", "b", "a", "a", "b"};
    for (size_t i = 0; i < 6; i++) {
        resp_t *r = post_messages(ask("go", false), 0);
        assert_string_equal(answer_text(r), want[i]);
        resp_free(r);
    }
    load_script("[]"); /* nothing to serve: every request is told so */
    resp_t *r = post_messages(ask("go", false), 0);
    assert_api_error(r, 500, "api_error", "mock-api: script exhausted after 0 turns");
    resp_free(r);
}

static void test_marker_in_tool_result(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"plain\"},"
                "{\"match\":\"RESULT-42\",\"text\":\"saw it\"}]}");
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"go\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_9\","
        "\"name\":\"t\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":"
        "\"tool_result\",\"tool_use_id\":\"toolu_9\",\"content\":[{\"type\":\"text\","
        "\"text\":\"RESULT-42\"}]}]}]}";
    resp_t *r = post_messages(body, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(answer_text(r), "saw it");
    resp_free(r);
}

static void test_non_streaming_message(void **state)
{
    (void)state;
    load_script(
        "[{\"id\":\"msg_fixed\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
        "\"signature\":\"s1\"},{\"type\":\"text\",\"text\":\"Hi\",\"chunks\":2},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_x\",\"name\":\"f\",\"input\":{\"a\":[1,2]}}],"
        "\"usage\":{\"output_tokens\":7}},"
        "{\"text\":\"x\",\"error_event\":{\"after\":0,\"type\":\"overloaded_error\"}}]");
    resp_t *r = post_messages(ask("hi", false), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "content-type"), "application/json");
    json_t *m = body_json(r);
    json_t *want = json_loads(
        "{\"id\":\"msg_fixed\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\","
        "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\",\"signature\":\"s1\"},"
        "{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"tool_use\",\"id\":\"toolu_x\","
        "\"name\":\"f\",\"input\":{\"a\":[1,2]}}],\"stop_reason\":\"tool_use\","
        "\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,"
        "\"cache_read_input_tokens\":0,\"output_tokens\":7}}",
        0, NULL);
    assert_true(json_equal(m, want));
    json_decref(m);
    json_decref(want);
    resp_free(r);
    /* An error event becomes the matching HTTP error when not streaming. */
    r = post_messages(ask("hi", false), 0);
    assert_api_error(r, 529, "overloaded_error", "Overloaded");
    resp_free(r);
}

/* ---- request checks ----------------------------------------------------------------------- */

static void test_auth_and_version(void **state)
{
    (void)state;
    load_script("[{\"text\":\"ok\"}]");
    const char *no_key[] = {"anthropic-version: 2023-06-01", NULL};
    resp_t *r = http("POST", srv.addr, "/v1/messages", stream_req, -1, no_key, 0);
    assert_api_error(r, 401, "authentication_error", "x-api-key header is required");
    resp_free(r);
    const char *no_version[] = {"x-api-key: sk-ant-test-0123456789", NULL};
    r = http("POST", srv.addr, "/v1/messages", stream_req, -1, no_version, 0);
    assert_api_error(r, 400, "invalid_request_error", "anthropic-version: header is required");
    assert_string_equal(header(r, "x-should-retry"), "false");
    resp_free(r);
    const char *bearer[] = {"authorization: Bearer tok-0123456789", "anthropic-version: 2023-06-01",
                            NULL};
    r = http("POST", srv.addr, "/v1/messages?beta=true", stream_req, -1, bearer, 0);
    assert_int_equal(r->status, 200); /* Bearer works too; the query is ignored */
    resp_free(r);
}

static void test_body_checks(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"ok\"}]}");
    static const struct {
        const char *body;
        const char *message; /* NULL: only the prefix below is checked */
    } cases[] = {
        {"{\"model\": ", NULL},
        {"\x01\x02garbage", NULL},
        {"", NULL},
        {"[1,2]", NULL},
        {"{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "model: Field required"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "max_tokens: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":1}", "messages: Field required"},
        {"{\"model\":7,\"max_tokens\":1,\"messages\":[]}", "model: Input should be a valid string"},
        {"{\"model\":\"m\",\"max_tokens\":\"9\",\"messages\":[]}",
         "max_tokens: Input should be a valid integer"},
        {"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[]}",
         "max_tokens: Input should be greater than or equal to 1"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":{}}",
         "messages: Input should be a valid list"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}",
         "messages: at least one message is required"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
         "messages.0.role: Input should be 'user' or 'assistant'"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\"}]}",
         "messages.0.content: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{}]}]}",
         "messages.0.content.0.type: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":1,\"stream\":\"yes\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"x\"}]}",
         "stream: Input should be a valid boolean"},
        {"{\"model\":\"m\",\"max_tokens\":4000,\"thinking\":{\"type\":\"on\"},\"messages\":"
         "[{\"role\":\"user\",\"content\":\"x\"}]}",
         "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'"},
        {"{\"model\":\"m\",\"max_tokens\":4000,\"thinking\":{\"type\":\"enabled\"},\"messages\":"
         "[{\"role\":\"user\",\"content\":\"x\"}]}",
         "thinking.enabled.budget_tokens: Field required"},
        {"{\"model\":\"m\",\"max_tokens\":4000,\"thinking\":{\"type\":\"enabled\","
         "\"budget_tokens\":512},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"},
        {"{\"model\":\"m\",\"max_tokens\":2048,\"thinking\":{\"type\":\"enabled\","
         "\"budget_tokens\":2048},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
         "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
         "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
         "#max-tokens-and-context-window-size"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        resp_t *r = post_messages(cases[i].body, 0);
        assert_api_error(r, 400, "invalid_request_error", cases[i].message);
        if (cases[i].message == NULL) {
            json_t *j = body_json(r);
            const char *m =
                json_string_value(json_object_get(json_object_get(j, "error"), "message"));
            assert_true(strncmp(m, "The request body is not valid JSON: ", 36) == 0);
            json_decref(j);
        }
        resp_free(r);
    }
}

static void test_thinking_budget_with_interleaved_beta(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"ok\"}]}");
    const char *body =
        "{\"model\":\"m\",\"max_tokens\":2048,\"thinking\":{\"type\":\"enabled\","
        "\"budget_tokens\":8000},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    /* The budget may exceed max_tokens with interleaved thinking, matched as a whole token. */
    const char *interleaved[] = {"x-api-key: k-0123456789", "anthropic-version: 2023-06-01",
                                 "anthropic-beta: oauth-2025-04-20,interleaved-thinking-2025-05-14",
                                 NULL};
    resp_t *r = http("POST", srv.addr, "/v1/messages", body, -1, interleaved, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    const char *lookalike[] = {"x-api-key: k-0123456789", "anthropic-version: 2023-06-01",
                               "anthropic-beta: interleaved-thinking-2025-05-14b", NULL};
    r = http("POST", srv.addr, "/v1/messages", body, -1, lookalike, 0);
    assert_api_error(r, 400, "invalid_request_error", NULL);
    resp_free(r);
    const char *adaptive = "{\"model\":\"m\",\"max_tokens\":10,\"thinking\":{\"type\":"
                           "\"adaptive\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    r = post_messages(adaptive, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
}

static void test_tool_result_check(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"text\":\"ok\"}]}");
    /* The recorded exchange of the fixtures: a user text message, then a user message with a
     * tool_result; the API merges them and reports messages.0.content.1. */
    const char *recorded =
        "{\"max_tokens\":1024,\"messages\":[{\"role\":\"user\",\"content\":\"What's the weather "
        "in SF in Celsius?\"},{\"role\":\"user\",\"content\":[{\"tool_use_id\":"
        "\"toolu_01GHndag5wQmbzNihYmV2UBj\",\"content\":\"The weather in San Francisco, CA is "
        "currently sunny.\",\"type\":\"tool_result\"}]}],\"model\":\"claude-haiku-4-5\"}";
    resp_t *r = post_messages(recorded, 0);
    assert_api_error(r, 400, "invalid_request_error",
                     "messages.0.content.1: unexpected `tool_use_id` found in `tool_result` "
                     "blocks: toolu_01GHndag5wQmbzNihYmV2UBj. Each `tool_result` block must have "
                     "a corresponding `tool_use` block in the previous message.");
    assert_string_equal(header(r, "x-should-retry"), "false");
    resp_free(r);
    /* A tool_use two messages back does not count: it must be in the previous message. */
    const char *stale =
        "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
        "\"name\":\"t\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"toolu_1\",\"content\":\"r\"}]},{\"role\":\"assistant\",\"content\":"
        "\"fine\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"again\"}]}]}";
    r = post_messages(stale, 0);
    assert_api_error(r, 400, "invalid_request_error", NULL);
    json_t *j = body_json(r);
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    assert_true(strncmp(m, "messages.4.content.1: unexpected `tool_use_id`", 46) == 0);
    json_decref(j);
    resp_free(r);
    /* The converse: tool_use blocks left unanswered by the next message. */
    const char *unanswered =
        "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
        "\"name\":\"t\",\"input\":{}},{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"t\","
        "\"input\":{}},{\"type\":\"tool_use\",\"id\":\"toolu_3\",\"name\":\"t\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\","
        "\"content\":\"r\"}]}]}";
    r = post_messages(unanswered, 0);
    assert_api_error(r, 400, "invalid_request_error",
                     "messages.1: `tool_use` ids were found without `tool_result` blocks "
                     "immediately after: toolu_1, toolu_3. Each `tool_use` block must have a "
                     "corresponding `tool_result` block in the next message.");
    resp_free(r);
}

static void test_routes(void **state)
{
    (void)state;
    resp_t *r = http("GET", srv.addr, "/v1/models", NULL, 0, api_headers, 0);
    assert_api_error(r, 404, "not_found_error", "Not found");
    resp_free(r);
    r = http("GET", srv.addr, "/v1/messages", NULL, 0, api_headers, 0);
    assert_api_error(r, 405, "invalid_request_error", NULL);
    resp_free(r);
    r = http("DELETE", srv.addr, "/v1/messages", NULL, 0, api_headers, 0);
    assert_int_equal(r->status, 405);
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/requests", NULL, 0, NULL, 0);
    json_t *reqs = body_json(r);
    json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
    assert_string_equal(cgw_json_str(last, "method", ""), "DELETE");
    assert_int_equal(cgw_json_int(last, "status", 0), 405);
    json_decref(reqs);
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/nothing", NULL, 0, NULL, 0);
    assert_int_equal(r->status, 404);
    resp_free(r);
    r = http("POST", srv.addr, "/_mock/script", "{\"turns\": 3}", -1, NULL, 0);
    assert_int_equal(r->status, 400);
    resp_free(r);
    r = http("POST", srv.addr, "/_mock/script", "[{\"status\":200,\"cut\":\"sometime\"}]", -1, NULL,
             0);
    assert_int_equal(r->status, 400);
    resp_free(r);
}

static void test_stats_requests_reset(void **state)
{
    (void)state;
    load_script("{\"when_exhausted\":\"cycle\",\"turns\":[{\"name\":\"t1\",\"text\":\"a\"},"
                "{\"name\":\"t2\",\"status\":429}]}");
    resp_free(post_messages(ask("one", true), 0));
    resp_free(post_messages(ask("two", true), 0));
    resp_free(post_messages(ask("three", false), 0));
    resp_free(post_messages("nope", 0));
    resp_t *r = http("GET", srv.addr, "/_mock/stats", NULL, 0, NULL, 0);
    json_t *st = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(st, "total")), 4);
    json_t *bs = json_object_get(st, "by_status");
    assert_int_equal(json_integer_value(json_object_get(bs, "200")), 2);
    assert_int_equal(json_integer_value(json_object_get(bs, "429")), 1);
    assert_int_equal(json_integer_value(json_object_get(bs, "400")), 1);
    json_t *bt = json_object_get(st, "by_turn");
    assert_int_equal(json_integer_value(json_object_get(bt, "t1")), 2);
    assert_int_equal(json_integer_value(json_object_get(bt, "t2")), 1);
    json_decref(st);
    resp_free(r);

    r = http("GET", srv.addr, "/_mock/requests", NULL, 0, NULL, 0);
    json_t *reqs = body_json(r);
    assert_int_equal(json_array_size(reqs), 4);
    json_t *first = json_array_get(reqs, 0);
    json_t *msgs = json_object_get(json_object_get(first, "body"), "messages");
    const char *text = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(msgs, 0), "content"), 0), "text"));
    assert_string_equal(text, "one");
    json_t *h = json_object_get(first, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "x-api-key")), "[REDACTED]");
    assert_string_equal(json_string_value(json_object_get(h, "anthropic-version")), "2023-06-01");
    assert_null(strstr(r->body, "sk-ant-test")); /* the secret never shows */
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 200);
    assert_string_equal(json_string_value(json_object_get(first, "turn")), "t1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 3), "body")),
                        "nope");
    json_decref(reqs);
    resp_free(r);

    r = http("POST", srv.addr, "/_mock/reset", "", 0, NULL, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/stats", NULL, 0, NULL, 0);
    st = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(st, "total")), 0);
    assert_int_equal(json_object_size(json_object_get(st, "by_status")), 0);
    json_decref(st);
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/requests", NULL, 0, NULL, 0);
    assert_string_equal(r->body, "[]");
    resp_free(r);
    r = post_messages(ask("after reset", false), 0); /* back at the first turn */
    assert_string_equal(answer_text(r), "a");
    resp_free(r);
}

static void test_request_log_bounded(void **state)
{
    (void)state;
    resp_free(http("POST", srv.addr, "/_mock/reset", "", 0, NULL, 0));
    for (int i = 0; i < 1005; i++) {
        resp_free(post_messages("x", 0)); /* refused, but recorded */
    }
    resp_t *r = http("GET", srv.addr, "/_mock/requests", NULL, 0, NULL, 0);
    json_t *reqs = body_json(r);
    assert_int_equal(json_array_size(reqs), 1000); /* the oldest went first */
    assert_int_equal(cgw_json_int(json_array_get(reqs, 0), "seq", 0), 6);
    assert_int_equal(cgw_json_int(json_array_get(reqs, 999), "body_bytes", 0), 1);
    json_decref(reqs);
    resp_free(r);
    r = http("GET", srv.addr, "/_mock/stats", NULL, 0, NULL, 0);
    json_t *st = body_json(r);
    assert_int_equal(cgw_json_int(st, "total", 0), 1005);
    json_decref(st);
    resp_free(r);
}

/* Bodies that are not JSON are logged as strings, and bytes that are not UTF-8 (which JSON
 * cannot carry) are replaced by a note, so /_mock/requests stays valid JSON. */
static void test_request_log_non_json_bodies(void **state)
{
    (void)state;
    resp_free(http("POST", srv.addr, "/_mock/reset", "", 0, NULL, 0));
    resp_free(http("POST", srv.addr, "/v1/messages", "plain words", -1, api_headers, 0));
    resp_free(http("POST", srv.addr, "/v1/messages", "\xff\xfe raw", 6, api_headers, 0));
    resp_t *r = http("GET", srv.addr, "/_mock/requests", NULL, 0, NULL, 0);
    json_t *reqs = body_json(r);
    assert_non_null(reqs);
    assert_int_equal(json_array_size(reqs), 2);
    assert_string_equal(cgw_json_str(json_array_get(reqs, 0), "body", ""), "plain words");
    assert_string_equal(cgw_json_str(json_array_get(reqs, 1), "body", ""), "[body is not UTF-8]");
    json_decref(reqs);
    resp_free(r);
}

/* ---- servers of their own ----------------------------------------------------------------- */

static const char *fixture_path(const char *rel)
{
    static char path[1024];
    snprintf(path, sizeof(path), "%s/fixtures/anthropic-sse/%s", cgw_test_shared_dir(), rel);
    return path;
}

static char *fixture(const char *rel, size_t *len)
{
    char *data = cgw_test_read_file(fixture_path(rel), len);
    assert_non_null(data);
    return data;
}

/* A server of its own serving the recording `rel` of the fixtures. */
static void start_replay(server_t *s, const char *rel)
{
    const char *args[] = {"--replay", fixture_path(rel), NULL};
    assert_int_equal(server_start(s, args), 0);
}

static void test_replay_sse(void **state)
{
    (void)state;
    const char *rel = "anthropic-sdk-python/tests/lib/streaming/fixtures/basic_response.txt";
    server_t s;
    start_replay(&s, rel);
    size_t len = 0;
    char *want = fixture(rel, &len);
    for (int i = 0; i < 2; i++) { /* served again and again */
        resp_t *r = http("POST", s.addr, "/v1/messages", stream_req, -1, api_headers, 0);
        assert_int_equal(r->rc, CURLE_OK);
        assert_int_equal(r->status, 200);
        assert_string_equal(header(r, "content-type"), "text/event-stream; charset=utf-8");
        assert_int_equal(r->len, len);
        assert_memory_equal(r->body, want, len); /* byte for byte */
        resp_free(r);
    }
    free(want);
    assert_int_equal(server_stop(&s), 0);
}

static void test_replay_capture(void **state)
{
    (void)state;
    const char *rel = "anthropic-sdk-php/fixtures/ga/thinking.txt";
    server_t s;
    start_replay(&s, rel);
    size_t len = 0;
    char *capture = fixture(rel, &len);
    const char *body =
        strstr(capture, "\r\n\r\n") ? strstr(capture, "\r\n\r\n") + 4 : strstr(capture, "\n\n") + 2;
    resp_t *r = http("POST", s.addr, "/v1/messages", stream_req, -1, api_headers, 0);
    assert_int_equal(r->rc, CURLE_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "request-id"), "req_011CSHxVbcaBpQ8exampleAAAA");
    assert_non_null(header(r, "anthropic-ratelimit-requests-remaining"));
    assert_int_equal(r->len, len - (size_t)(body - capture));
    assert_memory_equal(r->body, body, r->len);

    /* The thinking it served can be sent back; an edited copy cannot. */
    sse_t *ev = sse_parse(r->body);
    char thinking[1024], sig[1024];
    joined_deltas(ev, 0, "thinking", thinking, sizeof(thinking));
    joined_deltas(ev, 0, "signature", sig, sizeof(sig));
    sse_free(ev);
    resp_free(r);
    json_t *req = json_pack("{s:s,s:i,s:[{s:s,s:s},{s:s,s:[{s:s,s:s,s:s}]},{s:s,s:s}]}", "model",
                            "m", "max_tokens", 10, "messages", "role", "user", "content", "q",
                            "role", "assistant", "content", "type", "thinking", "thinking",
                            thinking, "signature", sig, "role", "user", "content", "more");
    char *ok = json_dumps(req, 0);
    r = http("POST", s.addr, "/v1/messages", ok, -1, api_headers, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    free(ok);
    strcat(thinking, "!");
    json_object_set_new(
        json_array_get(
            json_object_get(json_array_get(json_object_get(req, "messages"), 1), "content"), 0),
        "thinking", json_string(thinking));
    char *bad = json_dumps(req, 0);
    r = http("POST", s.addr, "/v1/messages", bad, -1, api_headers, 0);
    assert_int_equal(r->status, 400);
    resp_free(r);
    free(bad);
    json_decref(req);
    free(capture);
    assert_int_equal(server_stop(&s), 0);
}

static void test_replay_exchanges(void **state)
{
    (void)state;
    /* The SDK's recorded retry run: 429, 429, then a 200 stream; served in that order. */
    server_t s;
    start_replay(&s, "anthropic-sdk-python/tests/lib/_parse/__inline_snapshot__/test_messages/"
                     "TestAsyncStream/a8b7dbb8-2321-4624-abdb-7ba2136b5c38.json");
    for (int i = 0; i < 2; i++) {
        resp_t *r = http("POST", s.addr, "/v1/messages", stream_req, -1, api_headers, 0);
        assert_int_equal(r->status, 429);
        assert_string_equal(header(r, "x-should-retry"), "true");
        json_t *j = body_json(r);
        assert_string_equal(cgw_json_str(json_object_get(j, "error"), "type", ""),
                            "rate_limit_error");
        assert_true(strncmp(cgw_json_str(j, "request_id", ""), "req_011CYK5n", 12) == 0);
        json_decref(j);
        resp_free(r);
    }
    resp_t *r = http("POST", s.addr, "/v1/messages", stream_req, -1, api_headers, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(header(r, "content-type"), "text/event-stream; charset=utf-8");
    sse_t *ev = sse_parse(r->body);
    assert_string_equal(ev->name[0], "message_start");
    assert_string_equal(ev->name[ev->n - 1], "message_stop");
    sse_free(ev);
    resp_free(r);
    r = http("GET", s.addr, "/_mock/stats", NULL, 0, NULL, 0);
    json_t *st = body_json(r);
    assert_int_equal(cgw_json_int(json_object_get(st, "by_turn"), "exchange-3", 0), 1);
    json_decref(st);
    resp_free(r);
    assert_int_equal(server_stop(&s), 0);
}

static void test_oversized_body(void **state)
{
    (void)state;
    const char *args[] = {"--max-body", "2000", "--api-key", "sk-ant-test-0123456789", NULL};
    server_t s;
    assert_int_equal(server_start(&s, args), 0);
    char *big = malloc(4001);
    memset(big, ' ', 4000);
    memcpy(big, "{\"model\":\"m\",", 13);
    big[4000] = '\0';
    resp_t *r = http("POST", s.addr, "/v1/messages", big, -1, api_headers, 0);
    assert_api_error(r, 413, "request_too_large",
                     "Request exceeds the maximum allowed number of bytes.");
    resp_free(r);
    free(big);
    /* --api-key: the right key passes, another one is refused. */
    r = http("POST", s.addr, "/v1/messages", stream_req, -1, api_headers, 0);
    assert_int_equal(r->status, 200);
    resp_free(r);
    const char *wrong[] = {"x-api-key: sk-ant-other", "anthropic-version: 2023-06-01", NULL};
    r = http("POST", s.addr, "/v1/messages", stream_req, -1, wrong, 0);
    assert_api_error(r, 401, "authentication_error", "invalid x-api-key");
    resp_free(r);
    assert_int_equal(server_stop_with(&s, SIGINT), 0); /* Ctrl-C ends it cleanly too */
}

static void test_bad_command_lines(void **state)
{
    (void)state;
    server_t s;
    const char *missing[] = {"--script", "/nonexistent/script.json", NULL};
    assert_int_not_equal(server_start(&s, missing), 0);
    waitpid(s.pid, NULL, 0);
    const char *both[] = {"--script", "a", "--replay", "b", NULL};
    assert_int_not_equal(server_start(&s, both), 0);
    waitpid(s.pid, NULL, 0);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static char script_path[256];

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(script_path, sizeof(script_path), "/tmp/cgw-mock-api-test-%d.json", (int)getpid());
    FILE *f = fopen(script_path, "w");
    if (f == NULL) {
        return -1;
    }
    fputs("[{\"text\":\"from the script file\"}]", f);
    fclose(f);
    const char *args[] = {"--script", script_path, NULL};
    return server_start(&srv, args);
}

static int group_teardown(void **state)
{
    (void)state;
    int status = server_stop(&srv);
    unlink(script_path);
    curl_global_cleanup();
    return status == 0 ? 0 : -1; /* SIGTERM must end it cleanly */
}

static void test_script_file(void **state)
{
    (void)state;
    resp_t *r = post_messages(ask("hi", false), 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(answer_text(r), "from the script file");
    resp_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_file),
        cmocka_unit_test(test_text_deltas),
        cmocka_unit_test(test_text_exact_deltas_utf8),
        cmocka_unit_test(test_thinking_signature),
        cmocka_unit_test(test_redacted_thinking),
        cmocka_unit_test(test_multi_tool_use),
        cmocka_unit_test(test_pauses),
        cmocka_unit_test(test_concurrent_streams),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_error_event_mid_stream),
        cmocka_unit_test(test_hang),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_marker_selection),
        cmocka_unit_test(test_when_exhausted_cycle_and_repeat),
        cmocka_unit_test(test_marker_in_tool_result),
        cmocka_unit_test(test_non_streaming_message),
        cmocka_unit_test(test_auth_and_version),
        cmocka_unit_test(test_body_checks),
        cmocka_unit_test(test_thinking_budget_with_interleaved_beta),
        cmocka_unit_test(test_tool_result_check),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_stats_requests_reset),
        cmocka_unit_test(test_request_log_bounded),
        cmocka_unit_test(test_request_log_non_json_bodies),
        cmocka_unit_test(test_replay_sse),
        cmocka_unit_test(test_replay_capture),
        cmocka_unit_test(test_replay_exchanges),
        cmocka_unit_test(test_oversized_body),
        cmocka_unit_test(test_bad_command_lines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
