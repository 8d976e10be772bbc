/*
 * bench_mcp_call: what the MCP manager adds to a tools/call round trip.
 *
 * Two copies of server-everything run side by side. One is driven by a minimal raw client:
 * blocking write() of a request line and blocking read() until its answer line, on the same
 * kind of pipe, with no JSON parsing at all: the floor any client can reach. The other is
 * driven through cgw_mcp_manager_call (loop, NDJSON framing, JSON-RPC routing, result mapping,
 * callback). A third series sends the raw client's requests but waits for the answer with an
 * EV_READ event on the same loop, to separate the cost of being event-driven from the cost
 * of our code. Calls to `echo` alternate between the series in blocks so that machine noise
 * hits all alike. Reported: median and p99 of each, the median difference, and the median CPU
 * time this thread spent per call in each client.
 *
 * Usage: bench_mcp_call [calls]   (default 4000; run from the repository root, or set
 * CGW_NPM_DIR to the npm folder holding @modelcontextprotocol/server-everything)
 */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cgw.h"

extern char **environ;

#define BLOCK 100

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

/* ---- raw client ------------------------------------------------------------------------ */

typedef struct raw {
    pid_t pid;
    int in, out;
    char buf[1 << 16];
    size_t len;
} raw_t;

static int raw_spawn(raw_t *r, const char *entry)
{
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) != 0 || pipe2(b, O_CLOEXEC) != 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, a[0], 0);
    posix_spawn_file_actions_adddup2(&fa, b[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char node[] = "node";
    char *argv[] = {node, (char *)entry, NULL};
    int rc = posix_spawnp(&r->pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(a[0]);
    close(b[1]);
    r->in = a[1];
    r->out = b[0];
    r->len = 0;
    return rc == 0 ? 0 : -1;
}

static void raw_send(raw_t *r, const char *line)
{
    size_t n = strlen(line), off = 0;
    while (off < n) {
        ssize_t w = write(r->in, line + off, n - off);
        if (w <= 0) {
            exit(1);
        }
        off += (size_t)w;
    }
}

/* Reads lines until one contains `needle`. */
static void raw_wait(raw_t *r, const char *needle)
{
    for (;;) {
        char *nl;
        while ((nl = memchr(r->buf, '\n', r->len)) != NULL) {
            *nl = '\0';
            int hit = strstr(r->buf, needle) != NULL;
            size_t used = (size_t)(nl - r->buf) + 1;
            memmove(r->buf, nl + 1, r->len - used);
            r->len -= used;
            if (hit) {
                return;
            }
        }
        ssize_t n = read(r->out, r->buf + r->len, sizeof(r->buf) - r->len - 1);
        if (n <= 0) {
            fprintf(stderr, "raw client: server closed\n");
            exit(1);
        }
        r->len += (size_t)n;
    }
}

static void raw_init(raw_t *r)
{
    raw_send(
        r,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"raw\",\"version\":"
        "\"1\"}}}\n");
    raw_wait(r, "\"id\":1}");
    raw_send(r, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
}

static uint64_t raw_call(raw_t *r, int id, uint64_t *cpu)
{
    char line[256], needle[32];
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"echo\",\"arguments\":{\"message\":\"hello\"}}}\n",
             id);
    snprintf(needle, sizeof(needle), "\"id\":%d}", id);
    uint64_t c0 = cpu_ns(), t0 = now_ns();
    raw_send(r, line);
    raw_wait(r, needle);
    uint64_t t = now_ns() - t0;
    *cpu = cpu_ns() - c0;
    return t;
}

/* ---- the raw client, waiting on the event loop instead of in read() ---------------------- */

typedef struct loop_wait {
    raw_t *r;
    const char *needle;
    int done;
} loop_wait_t;

static int scan_lines(raw_t *r, const char *needle)
{
    char *nl;
    while ((nl = memchr(r->buf, '\n', r->len)) != NULL) {
        *nl = '\0';
        int hit = strstr(r->buf, needle) != NULL;
        size_t used = (size_t)(nl - r->buf) + 1;
        memmove(r->buf, nl + 1, r->len - used);
        r->len -= used;
        if (hit) {
            return 1;
        }
    }
    return 0;
}

static void loop_read_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    loop_wait_t *w = arg;
    ssize_t n = read(fd, w->r->buf + w->r->len, sizeof(w->r->buf) - w->r->len - 1);
    if (n <= 0) {
        exit(1);
    }
    w->r->len += (size_t)n;
    w->done = scan_lines(w->r, w->needle);
}

/* The same request over the same kind of pipe, but the answer is awaited with an EV_READ
 * event on the loop (as any event-driven client must), with no JSON work at all: the cost
 * of waiting on epoll instead of in read(). */
static uint64_t loop_call(cgw_ctx_t *ctx, raw_t *r, loop_wait_t *w, int id)
{
    char line[256], needle[32];
    snprintf(line, sizeof(line),
             "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"echo\",\"arguments\":{\"message\":\"hello\"}}}\n",
             id);
    snprintf(needle, sizeof(needle), "\"id\":%d}", id);
    w->r = r;
    w->needle = needle;
    w->done = 0;
    uint64_t t0 = now_ns();
    raw_send(r, line);
    while (!w->done) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_ONCE);
    }
    return now_ns() - t0;
}

/* Switches the raw client's stdout pipe between blocking reads and the loop (per block, so
 * that neither series pays for the other's setup). */
static void loop_mode(raw_t *r, struct event *ev, int on)
{
    int fl = fcntl(r->out, F_GETFL);
    fcntl(r->out, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
    if (on) {
        event_add(ev, NULL);
    } else {
        event_del(ev);
    }
}

/* ---- through the manager ----------------------------------------------------------------- */

typedef struct mgr_state {
    int done;
    int started;
    int failed;
} mgr_state_t;

static void on_started(cgw_mcp_manager_t *m, size_t ready, size_t failed, void *user)
{
    (void)m;
    (void)ready;
    mgr_state_t *s = user;
    s->started = 1;
    s->failed = failed > 0;
}

static void on_done(const cgw_mcp_call_result_t *r, void *user)
{
    mgr_state_t *s = user;
    if (r->status != CGW_OK || r->error != NULL) {
        s->failed = 1;
    }
    s->done = 1;
}

static void run_until(cgw_ctx_t *ctx, const int *flag)
{
    while (!*flag) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_ONCE);
    }
}

static uint64_t mgr_call(cgw_ctx_t *ctx, cgw_mcp_manager_t *m, json_t *input, mgr_state_t *s,
                         uint64_t *cpu)
{
    s->done = 0;
    uint64_t c0 = cpu_ns(), t0 = now_ns();
    if (cgw_mcp_manager_call(m, "echo", input, NULL, on_done, s, NULL) != CGW_OK) {
        exit(1);
    }
    run_until(ctx, &s->done);
    uint64_t t = now_ns() - t0;
    *cpu = cpu_ns() - c0;
    return t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 4000;
    n = (n + 2 * BLOCK - 1) / (2 * BLOCK) * 2 * BLOCK;
    const char *npm = getenv("CGW_NPM_DIR") != NULL ? getenv("CGW_NPM_DIR") : ".cache/npm";
    char entry[1024];
    snprintf(entry, sizeof(entry),
             "%s/node_modules/@modelcontextprotocol/server-everything/dist/"
             "index.js",
             npm);
    if (access(entry, R_OK) != 0) {
        fprintf(stderr,
                "bench_mcp_call: %s not found (run from the repository root after "
                "make setup, or set CGW_NPM_DIR)\n",
                entry);
        return 1;
    }
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_ERROR;
    cgw_ctx_t *ctx = NULL;
    cgw_ctx_new(&co, &ctx);
    char json[1400];
    snprintf(json, sizeof(json),
             "{\"mcpServers\":{\"everything\":{\"command\":\"node\",\"args\":[\"%s\"]}}}", entry);
    cgw_mcp_config_t *cfg = NULL;
    cgw_mcp_config_options_t cfo;
    cgw_mcp_config_options_init(&cfo);
    cfo.scopes = 0;
    cgw_mcp_config_new(&cfo, &cfg);
    cgw_mcp_config_add_json(cfg, CGW_MCP_SCOPE_INLINE, json, strlen(json), "bench", NULL);
    cgw_mcp_manager_options_t mo;
    cgw_mcp_manager_options_init(&mo);
    mo.config = cfg;
    cgw_mcp_manager_t *m = NULL;
    mgr_state_t s = {0};
    if (cgw_mcp_manager_new(ctx, &mo, &m, NULL) != CGW_OK ||
        cgw_mcp_manager_start(m, on_started, &s) != CGW_OK) {
        return 1;
    }
    run_until(ctx, &s.started);
    raw_t raw;
    if (s.failed || raw_spawn(&raw, entry) != 0) {
        fprintf(stderr, "bench_mcp_call: server did not start\n");
        return 1;
    }
    raw_init(&raw);

    json_t *input = json_pack("{s:s}", "message", "hello");
    uint64_t *rv = calloc(n / 2, sizeof(uint64_t)), *mv = calloc(n / 2, sizeof(uint64_t));
    uint64_t *rc = calloc(n / 2, sizeof(uint64_t)), *mc = calloc(n / 2, sizeof(uint64_t));
    uint64_t *lv = calloc(n / 2, sizeof(uint64_t));
    loop_wait_t lw = {0};
    struct event *lev =
        event_new(cgw_ctx_base(ctx), raw.out, EV_READ | EV_PERSIST, loop_read_cb, &lw);
    int id = 100;
    for (int w = 0; w < 300; w++) { /* warm-up: JIT of the servers, caches, allocator */
        raw_call(&raw, id++, rc);
        mgr_call(ctx, m, input, &s, mc);
    }
    size_t k = 0;
    for (size_t done = 0; done < n; done += 2 * BLOCK) {
        for (size_t i = 0; i < BLOCK; i++) {
            rv[k + i] = raw_call(&raw, id++, &rc[k + i]);
        }
        for (size_t i = 0; i < BLOCK; i++) {
            mv[k + i] = mgr_call(ctx, m, input, &s, &mc[k + i]);
        }
        loop_mode(&raw, lev, 1);
        for (size_t i = 0; i < BLOCK; i++) {
            lv[k + i] = loop_call(ctx, &raw, &lw, id++);
        }
        loop_mode(&raw, lev, 0);
        k += BLOCK;
    }
    if (s.failed) {
        fprintf(stderr, "bench_mcp_call: a call failed\n");
        return 1;
    }
    double rmed = pct(rv, k, 0.5), rp99 = pct(rv, k, 0.99);
    double mmed = pct(mv, k, 0.5), mp99 = pct(mv, k, 0.99);
    double lmed = pct(lv, k, 0.5), lp99 = pct(lv, k, 0.99);
    printf("MCP tools/call round trip, echo on server-everything, %zu calls each\n", k);
    printf("  raw blocking client   median %8.1f us   p99 %8.1f us\n", rmed, rp99);
    printf("  raw client on a loop  median %8.1f us   p99 %8.1f us\n", lmed, lp99);
    printf("  cgw_mcp_manager_call  median %8.1f us   p99 %8.1f us\n", mmed, mp99);
    printf("  added at the median   %8.1f us (ratio %.3f); over the loop-based raw client "
           "%.1f us\n",
           mmed - rmed, mmed / rmed, mmed - lmed);
    /* CPU time of this thread per call (user + system): what the client itself spends, as
     * opposed to waiting for the server and for the scheduler. */
    double rcpu = pct(rc, k, 0.5), mcpu = pct(mc, k, 0.5);
    printf("  client CPU per call   raw %.1f us, manager %.1f us (median)\n", rcpu, mcpu);
    json_decref(input);
    free(rv);
    free(mv);
    free(rc);
    free(mc);
    free(lv);
    event_free(lev);
    close(raw.in);
    close(raw.out);
    waitpid(raw.pid, NULL, 0);
    cgw_mcp_manager_free(m);
    cgw_mcp_config_free(cfg);
    cgw_ctx_free(ctx);
    return 0;
}
