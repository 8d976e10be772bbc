/*
 * End-to-end cost per text delta of a streamed call through the client (curl multi on
 * libevent + SSE parser + accumulator + callbacks) against `claude-gateway mock-api` on
 * loopback, compared in the same run with the baseline of parsing + accumulating the very same
 * SSE bytes in memory (no I/O). The ratio is what transport and the loop add per delta.
 *
 * Usage: bench_stream_client [deltas=20000] [runs=5]
 * The binary is found through $CGW_GATEWAY_BIN, else ../claude-gateway next to this program.
 */
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "cgw.h"
#include "mock_proc.h"
#include "core/buf.h"
#include "proto/msg_accum.h"
#include "proto/sse_parser.h"

extern char **environ;

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/* ---- the client run ------------------------------------------------------------------------ */

struct run {
    int done;
    int code;
    long deltas;
    size_t bytes;
};

static void on_event(const cgw_llm_event_t *ev, void *user)
{
    struct run *r = user;
    if (ev->kind == CGW_LLM_TEXT_DELTA) {
        r->deltas++;
        r->bytes += ev->text.len;
    }
}

static void on_done(const cgw_llm_result_t *res, void *user)
{
    struct run *r = user;
    r->code = res->code;
    r->done = 1;
}

static int client_run(cgw_ctx_t *ctx, cgw_anthropic_t *client, cgw_conversation_t *conv,
                      struct run *r)
{
    cgw_anthropic_callbacks_t cbs = {on_event, NULL, on_done};
    cgw_anthropic_request_t req = {.conversation = conv};
    cgw_anthropic_call_t *call = NULL;
    if (cgw_anthropic_call_start(client, &req, &cbs, r, &call, NULL) != CGW_OK) {
        return -1;
    }
    while (!r->done) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_ONCE);
    }
    cgw_anthropic_call_free(call);
    return r->code;
}

/* ---- the baseline: the same bytes, parsed in memory ---------------------------------------- */

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    cgw_buf_append(arg, p, sz * n);
    return sz * n;
}

static int fetch_raw(const char *base, cgw_buf_t *out)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/v1/messages", base);
    struct curl_slist *h = curl_slist_append(NULL, "x-api-key: bench-key-0123456789");
    h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    h = curl_slist_append(h, "content-type: application/json");
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                     "{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":100,\"stream\":true,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    return rc == CURLE_OK ? 0 : -1;
}

static int count_delta(void *user, const cgw_msg_ev_t *ev, cgw_error_t *err)
{
    (void)err;
    long *n = user;
    *n += ev->kind == CGW_MSG_EV_TEXT_DELTA;
    return CGW_OK;
}

static long parse_in_memory(const cgw_buf_t *raw)
{
    long n = 0;
    cgw_msg_accum_options_t ao;
    cgw_msg_accum_options_init(&ao);
    ao.on_event = count_delta;
    ao.user = &n;
    cgw_msg_accum_t *acc = NULL;
    cgw_msg_accum_new(&ao, &acc);
    cgw_sse_parser_options_t so;
    cgw_sse_parser_options_init(&so);
    so.on_event = cgw_msg_accum_sse_cb;
    so.user = acc;
    cgw_sse_parser_t *p = NULL;
    cgw_sse_parser_new(&so, &p);
    /* 16 KB pieces, like socket reads. */
    for (size_t off = 0; off < raw->len; off += 16384) {
        size_t len = raw->len - off < 16384 ? raw->len - off : 16384;
        cgw_sse_parser_feed(p, raw->data + off, len, NULL);
    }
    cgw_sse_parser_finish(p, NULL);
    int rc = cgw_msg_accum_finish(acc, NULL);
    cgw_sse_parser_free(p);
    cgw_msg_accum_free(acc);
    return rc == CGW_OK ? n : -1;
}

static void find_bin(const char *argv0, char *bin, size_t cap)
{
    const char *env = getenv("CGW_GATEWAY_BIN");
    if (env != NULL) {
        snprintf(bin, cap, "%s", env);
        return;
    }
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(bin, cap, "%s/../claude-gateway", n > 0 ? dirname(self) : argv0);
}

int main(int argc, char **argv)
{
    long ndeltas = argc > 1 ? atol(argv[1]) : 20000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    signal(SIGPIPE, SIG_IGN);
    char bin[1200], script[] = "/tmp/cgw-bench-stream-XXXXXX", base[160];
    find_bin(argv[0], bin, sizeof(bin));
    int fd = mkstemp(script);
    /* 150-byte deltas, as in the per-delta goal. */
    char *text = malloc((size_t)ndeltas * 150 + 1);
    for (long i = 0; i < ndeltas * 150; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[ndeltas * 150] = '\0';
    json_t *doc = json_pack("{s:s, s:[{s:s, s:i, s:b}]}", "when_exhausted", "repeat_last",
                            "turns", "text", text, "chunks", (int)ndeltas, "ping", 0);
    json_dumpfd(doc, fd, JSON_COMPACT);
    close(fd);
    json_decref(doc);
    free(text);
    pid_t mock = cgw_test_mock_spawn(bin, "--script", script, base, sizeof(base));
    if (mock < 0) {
        fprintf(stderr, "could not start %s mock-api\n", bin);
        unlink(script);
        return 1;
    }
    cgw_ctx_t *ctx = NULL;
    cgw_anthropic_t *client = NULL;
    cgw_conversation_t *conv = NULL;
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_ERROR;
    cgw_anthropic_options_t o;
    cgw_anthropic_options_init(&o);
    o.base_url = base;
    o.api_key = "bench-key-0123456789";
    cgw_ctx_new(&co, &ctx);
    cgw_anthropic_new(ctx, &o, &client, NULL);
    cgw_conversation_new(&conv);
    cgw_conversation_append_text(conv, "user", "x");

    double best_client = 1e9, best_wall = 1e9, best_parse = 1e9;
    size_t raw_len = 0;
    for (int i = 0; i < runs; i++) {
        struct run r = {0};
        double c0 = cpu_s(), w0 = wall_s();
        if (client_run(ctx, client, conv, &r) != CGW_OK || r.deltas != ndeltas) {
            fprintf(stderr, "client run failed (code %d, %ld deltas)\n", r.code, r.deltas);
            break;
        }
        double c = cpu_s() - c0, w = wall_s() - w0;
        best_client = c < best_client ? c : best_client;
        best_wall = w < best_wall ? w : best_wall;
        cgw_buf_t raw = CGW_BUF_INIT;
        fetch_raw(base, &raw);
        raw_len = raw.len;
        double p0 = cpu_s();
        long n = parse_in_memory(&raw);
        double p = cpu_s() - p0;
        best_parse = p < best_parse ? p : best_parse;
        cgw_buf_free(&raw);
        if (n != ndeltas) {
            fprintf(stderr, "baseline parse saw %ld deltas\n", n);
            break;
        }
    }
    printf("stream of %ld text deltas of 150 bytes (%zu SSE bytes), best of %d\n", ndeltas,
           raw_len, runs);
    printf("  baseline parse+accumulate in memory: %6.2f us/delta (CPU)\n",
           best_parse * 1e6 / (double)ndeltas);
    printf("  client over loopback (curl+loop):    %6.2f us/delta (CPU), wall %.0f ms, %.0f MB/s\n",
           best_client * 1e6 / (double)ndeltas, best_wall * 1e3,
           (double)raw_len / best_wall / 1e6);
    printf("  ratio client/baseline:               %6.2fx\n", best_client / best_parse);
    cgw_conversation_free(conv);
    cgw_anthropic_free(client);
    cgw_ctx_free(ctx);
    cgw_test_mock_kill(mock);
    unlink(script);
    return 0;
}
