/* mock-api: what a scripted stream costs, per delta, against baselines measured in the same
 * run.
 *
 *   plan      rendering a turn of N text deltas into SSE frames (cgw__mock_plan_stream),
 *             against copying the same bytes (the least any server must do);
 *   serve     a client (libcurl over loopback) downloading the N-delta stream from the mock
 *             (a forked child running cgw_mock_api_t), against the same bytes as a recorded
 *             event-stream response (pre-rendered, one chunk per event) and as one flat body.
 *
 * Usage: bench_mock_api [N deltas, default 20000] [repetitions, default 5] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "cgw.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "server/mock_script.h"

#define DELTA_BYTES 150

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* The scripted turn: N deltas of DELTA_BYTES characters each. */
static json_t *scripted_turn(long n)
{
    char *text = malloc((size_t)n * DELTA_BYTES + 1);
    for (long i = 0; i < n * DELTA_BYTES; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[n * DELTA_BYTES] = '\0';
    json_t *t =
        json_pack("{s:s,s:s,s:I}", "match", "SCRIPTED", "text", text, "chunks", (json_int_t)n);
    free(text);
    return t;
}

/* Renders the turn once, returning the stream bytes; *per_delta_us gets the planning cost and
 * *copy_us the cost of copying the same bytes. */
static char *plan_cost(json_t *script, long n, int reps, double *per_delta_us, double *copy_us,
                       size_t *len)
{
    cgw__mock_script_t *s = NULL;
    if (cgw__mock_script_parse(script, NULL, &s, NULL) != CGW_OK) {
        return NULL;
    }
    cgw_buf_t out = CGW_BUF_INIT;
    double best = 1e30, best_copy = 1e30;
    for (int r = 0; r < reps; r++) {
        cgw__mock_plan_t *p = NULL;
        double t0 = now_us();
        cgw__mock_plan_stream(&s->turns[0], "m", "msg_1", &p);
        double t1 = now_us();
        cgw_buf_reset(&out);
        for (size_t i = 0; i < p->nframes; i++) {
            cgw_buf_append(&out, p->frames[i].bytes, p->frames[i].len);
        }
        double t2 = now_us();
        best = t1 - t0 < best ? t1 - t0 : best;
        best_copy = t2 - t1 < best_copy ? t2 - t1 : best_copy;
        cgw__mock_plan_free(p);
    }
    cgw__mock_script_free(s);
    *per_delta_us = best / (double)n;
    *copy_us = best_copy / (double)n;
    return cgw_buf_steal(&out, len);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    cgw_ctx_stop(arg);
}

static pid_t start_server(const char *script, char *addr, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        cgw_ctx_t *ctx = NULL;
        cgw_mock_api_t *m = NULL;
        if (cgw_ctx_new(NULL, &ctx) != CGW_OK || cgw_mock_api_new(ctx, NULL, &m, NULL) != 0 ||
            cgw_mock_api_load_script(m, script, strlen(script), NULL) != CGW_OK) {
            _exit(1);
        }
        struct event *ev = evsignal_new(cgw_ctx_base(ctx), SIGTERM, on_term, ctx);
        event_add(ev, NULL);
        dprintf(fds[1], "%s\n", cgw_mock_api_address(m));
        close(fds[1]);
        cgw_ctx_run(ctx);
        event_free(ev);
        cgw_mock_api_free(m);
        cgw_ctx_free(ctx);
        _exit(0);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    if (in == NULL || fgets(addr, (int)cap, in) == NULL) {
        return -1;
    }
    fclose(in);
    addr[strcspn(addr, "\n")] = '\0';
    return pid;
}

static size_t count_bytes(char *p, size_t s, size_t n, void *arg)
{
    (void)p;
    *(size_t *)arg += s * n;
    return s * n;
}

/* Best time of `reps` downloads of the answer chosen by `marker`, in µs; *got = bytes. */
static double fetch_us(const char *addr, const char *marker, int reps, size_t *got)
{
    char url[256], body[256];
    snprintf(url, sizeof(url), "http://%s/v1/messages", addr);
    snprintf(body, sizeof(body),
             "{\"model\":\"m\",\"max_tokens\":9,\"stream\":true,\"messages\":[{\"role\":\"user\","
             "\"content\":\"%s\"}]}",
             marker);
    struct curl_slist *h = curl_slist_append(NULL, "x-api-key: bench-key-0123");
    h = curl_slist_append(h, "anthropic-version: 2023-06-01");
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        CURL *c = curl_easy_init();
        *got = 0;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, count_bytes);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, got);
        double t0 = now_us();
        CURLcode rc = curl_easy_perform(c);
        double t = now_us() - t0;
        curl_easy_cleanup(c);
        if (rc != CURLE_OK) {
            fprintf(stderr, "fetch %s: %s\n", marker, curl_easy_strerror(rc));
            exit(1);
        }
        best = t < best ? t : best;
    }
    curl_slist_free_all(h);
    return best;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_t *turn = scripted_turn(n);
    json_t *one = json_pack("[O]", turn);
    double plan_us = 0, copy_us = 0;
    size_t len = 0;
    char *stream = plan_cost(one, n, reps, &plan_us, &copy_us, &len);
    json_decref(one);
    if (stream == NULL) {
        return 1;
    }
    printf("plan:  %.3f us per delta (%d-byte deltas, %ld of them); copying the bytes %.3f us "
           "(ratio %.1fx)\n",
           plan_us, DELTA_BYTES, n, copy_us, plan_us / copy_us);

    json_t *script =
        json_pack("[o,{s:s,s:{s:[[s,s]],s:s%}},{s:s,s:{s:[[s,s]],s:s%}}]", turn, "match",
                  "RECORDED", "response", "headers", "content-type", "text/event-stream", "body",
                  stream, len, "match", "FLAT", "response", "headers", "content-type",
                  "application/octet-stream", "body", stream, len);
    char *doc = json_dumps(script, JSON_COMPACT);
    json_decref(script);
    char addr[128];
    pid_t pid = start_server(doc, addr, sizeof(addr));
    free(doc);
    if (pid < 0) {
        return 1;
    }
    size_t a = 0, b = 0, c = 0;
    double scripted = fetch_us(addr, "SCRIPTED", reps, &a);
    double recorded = fetch_us(addr, "RECORDED", reps, &b);
    double flat = fetch_us(addr, "FLAT", reps, &c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("serve: scripted %.3f us per delta (%zu bytes), recorded %.3f us (%zu), flat body "
           "%.3f us (%zu)\n",
           scripted / (double)n, a, recorded / (double)n, b, flat / (double)n, c);
    printf("serve: scripted/recorded %.2fx, recorded/flat %.2fx, scripted %.0f MB/s\n",
           scripted / recorded, recorded / flat, (double)a / scripted);
    cgw_free(stream);
    curl_global_cleanup();
    return 0;
}
