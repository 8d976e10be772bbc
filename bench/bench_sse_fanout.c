/*
 * SSE fan-out of `claude-gateway serve`: many concurrent streams of one run, and the cost of
 * HTTP delivery per event against `claude-gateway run` measured in the same run.
 *
 *   (a) fan-out: STREAMS connections (default 10,000) all stream GET /v1/runs/{id}/events of
 *       one run whose model answer (mock-api) is EVENTS text deltas 100 ms apart, i.e. 10
 *       events/s per stream and STREAMS * 10 events/s in total. The streams connect while the
 *       run waits 3 s for its first delta. Reported: events delivered per second (from the
 *       first to the last frame received), loss (every stream must receive every frame, in
 *       order, and end after the terminal one), the gateway's CPU time and peak RSS (VmHWM).
 *   (b) per-event cost: one 100,000-delta answer without pauses, consumed (1) by
 *       `claude-gateway run --output jsonl` (the CLI printing each entry: process CPU via
 *       wait4, minus that of a one-delta run, so process start-up is not counted) and (2) by
 *       the gateway with one SSE client (the gateway's CPU during the run, from
 *       /proc/<pid>/stat). The difference per event is the HTTP gateway's overhead
 *       (sessions, the memory store, SSE framing and socket writes) over the bare agent loop.
 *
 * The gateway runs with the memory store (--memory), so (b) compares HTTP delivery, not disk.
 * The client is this process: one epoll loop, frames counted by their blank-line terminator.
 *
 *   build/bench/bench_sse_fanout [streams=10000] [events=150]
 * $CGW_GATEWAY_BIN overrides build/claude-gateway. RLIMIT_NOFILE is raised to its hard limit
 * (the gateway inherits it); each stream needs one descriptor on each side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *BIN = "build/claude-gateway";
static char TMP[] = "/tmp/cgw-fanout-XXXXXX";
#define FLOOD 100000 /* deltas of the per-event cost answer */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_sse_fanout: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---- child processes ----------------------------------------------------------------------- */

/* A NULL-terminated vector of copies of the arguments (up to 31; lives until exit). */
static char **vec(const char *first, ...)
{
    char **v = calloc(32, sizeof(char *));
    va_list ap;
    va_start(ap, first);
    int n = 0;
    for (const char *a = first; a != NULL && n < 31; a = va_arg(ap, const char *)) {
        v[n++] = strdup(a);
    }
    va_end(ap);
    return v;
}

/* Spawns argv with extra environment, stdout into a pipe; waits for "listening on HOST:PORT". */
static pid_t spawn_server(char **argv, char **env, char addr[64])
{
    int out[2];
    if (pipe(out) != 0) {
        die("pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, env) != 0) {
        die("posix_spawn");
    }
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char line[256];
    size_t n = 0;
    while (n < sizeof(line) - 1 && read(out[0], line + n, 1) == 1 && line[n] != '\n') {
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    if (sscanf(line, "listening on %63s", addr) != 1) {
        fprintf(stderr, "bench_sse_fanout: %s did not start\n", argv[0]);
        exit(1);
    }
    return pid;
}

/* utime + stime of a live process, in seconds. */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(buf, sizeof(buf), f) == NULL) {
        die("read /proc/<pid>/stat");
    }
    fclose(f);
    unsigned long ut = 0, st = 0;
    const char *p = strrchr(buf, ')');
    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmHWM of a live process in MiB. */
static double proc_hwm_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double kb = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmHWM: %lf kB", &kb) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb / 1024.0;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static int connect_to(const char *addr, bool nonblock)
{
    char host[64];
    int port = 0;
    snprintf(host, sizeof(host), "%s", addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    port = atoi(colon + 1);
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)) {
        die("connect");
    }
    return fd;
}

/* A blocking request with Connection: close; the response body (after the headers) into out. */
static void http(const char *addr, const char *method, const char *path, const char *body,
                 char *out, size_t cap)
{
    int fd = connect_to(addr, false);
    char req[1024];
    int n =
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                 method, path, strlen(body), body);
    if (write(fd, req, (size_t)n) != n) {
        die("write");
    }
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(fd, out + len, cap - 1 - len)) > 0) {
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fd);
    char *b = strstr(out, "\r\n\r\n");
    if (b != NULL) {
        memmove(out, b + 4, strlen(b + 4) + 1);
    }
}

/* The value of "key":"..." in a JSON text. */
static void json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL) {
        fprintf(stderr, "bench_sse_fanout: no %s in %s\n", key, json);
        exit(1);
    }
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
}

static void start_run(const char *addr, const char *prompt, char run_id[64])
{
    char buf[4096], sid[64], body[256];
    http(addr, "POST", "/v1/sessions", "{}", buf, sizeof(buf));
    json_str(buf, "session_id", sid, sizeof(sid));
    char path[128];
    snprintf(path, sizeof(path), "/v1/sessions/%s/messages", sid);
    snprintf(body, sizeof(body), "{\"content\":\"%s\"}", prompt);
    http(addr, "POST", path, body, buf, sizeof(buf));
    json_str(buf, "run_id", run_id, 64);
}

/* ---- the streaming clients ----------------------------------------------------------------- */

typedef struct conn {
    int fd;
    bool sent, done;
    char last; /* last byte seen, for a "\n\n" split across reads */
    uint64_t frames;
} conn_t;

/* Streams `n` connections of run `rid` to the end; returns total frames; fills first/last
 * frame times. Each conn's frame count goes into conns[i].frames. */
static uint64_t stream_all(const char *addr, const char *rid, conn_t *conns, int n, double *t_first,
                           double *t_last)
{
    int ep = epoll_create1(0);
    char req[256];
    int rl = snprintf(
        req, sizeof(req),
        "GET /v1/runs/%s/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n", rid);
    for (int i = 0; i < n; i++) {
        conns[i] = (conn_t){.fd = connect_to(addr, true)};
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    static char buf[65536];
    struct epoll_event evs[512];
    int open = n;
    uint64_t total = 0;
    *t_first = 0;
    double deadline = now_s() + 120;
    while (open > 0 && now_s() < deadline) {
        int k = epoll_wait(ep, evs, 512, 1000);
        for (int e = 0; e < k; e++) {
            conn_t *c = &conns[evs[e].data.u32];
            if (!c->sent && (evs[e].events & EPOLLOUT)) {
                if (write(c->fd, req, (size_t)rl) != rl) {
                    die("write request");
                }
                c->sent = true;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                continue;
            }
            ssize_t r;
            while ((r = read(c->fd, buf, sizeof(buf))) > 0) {
                for (ssize_t j = 0; j < r; j++) {
                    if (buf[j] == '\n' && c->last == '\n') {
                        c->frames++;
                        total++;
                    }
                    c->last = buf[j];
                }
                if (r >= 5 && memcmp(buf + r - 5, "0\r\n\r\n", 5) == 0) {
                    r = 0; /* the last chunk: the stream is over */
                    break;
                }
            }
            if (total > 0 && *t_first == 0) {
                *t_first = now_s();
            }
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                close(c->fd);
                c->done = true;
                open--;
                *t_last = now_s();
            }
        }
    }
    close(ep);
    return total;
}

/* ---- (b) claude-gateway run ---------------------------------------------------------------- */

/* CPU seconds of `claude-gateway run` streaming the answer to `prompt`; *lines = jsonl lines. */
static double cli_run(const char *mock, const char *mcp, const char *prompt, uint64_t *lines)
{
    char url[128];
    snprintf(url, sizeof(url), "http://%s", mock);
    char **argv = vec(BIN, "run", "--prompt", prompt, "--base-url", url, "--strict-mcp-config",
                      "--mcp-config", mcp, "--output", "jsonl", NULL);
    setenv("ANTHROPIC_API_KEY", "sk-ant-bench-0123456789", 1);
    int out[2];
    if (pipe(out) != 0) {
        die("pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    pid_t pid;
    if (posix_spawn(&pid, BIN, &fa, NULL, argv, environ) != 0) {
        die("spawn run");
    }
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    static char buf[65536];
    ssize_t r;
    *lines = 0;
    while ((r = read(out[0], buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            *lines += buf[i] == '\n';
        }
    }
    close(out[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0) {
        die(path);
    }
    fclose(f);
}

/* The mock's script: "fanout" waits 3 s then sends `events` deltas 100 ms apart; "flood" sends
 * 100,000 deltas at once. */
static void write_script(const char *path, int events)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        die(path);
    }
    fprintf(f,
            "{\"when_exhausted\":\"cycle\",\"turns\":[{\"match\":\"fanout\",\"content\":["
            "{\"type\":\"text\",\"text\":\"Here \",\"delay_ms\":3000},"
            "{\"type\":\"text\",\"chunks\":%d,\"delay_ms\":100,\"text\":\"",
            events);
    for (int i = 0; i < events; i++) {
        fprintf(f, "word%04d ", i);
    }
    fprintf(f, "\"}]},{\"match\":\"flood\",\"text\":\"");
    for (int i = 0; i < FLOOD; i++) {
        fprintf(f, "tok%05d ", i);
    }
    fprintf(f, "\",\"chunks\":%d},{\"match\":\"tiny\",\"text\":\"ok\"}]}", FLOOD);
    fclose(f);
}

int main(int argc, char **argv)
{
    int streams = argc > 1 ? atoi(argv[1]) : 10000;
    int events = argc > 2 ? atoi(argv[2]) : 150;
    if (getenv("CGW_GATEWAY_BIN") != NULL) {
        BIN = getenv("CGW_GATEWAY_BIN");
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)streams + 100 > rl.rlim_cur) {
        int fit = rl.rlim_cur > 200 ? (int)rl.rlim_cur - 100 : 100;
        fprintf(stderr,
                "bench_sse_fanout: RLIMIT_NOFILE is %llu: %d streams instead of %d (raise the "
                "hard limit for the full figure)\n",
                (unsigned long long)rl.rlim_cur, fit, streams);
        streams = fit;
    }
    if (mkdtemp(TMP) == NULL) {
        die("mkdtemp");
    }
    char script[128], mcp[128], mock_addr[64], gw_addr[64], url[128], caps[64];
    snprintf(script, sizeof(script), "%s/script.json", TMP);
    snprintf(mcp, sizeof(mcp), "%s/mcp.json", TMP);
    write_script(script, events);
    write_file(mcp, "{\"mcpServers\":{}}");
    char **mock_argv = vec(BIN, "mock-api", "--script", script, NULL);
    pid_t mock = spawn_server(mock_argv, environ, mock_addr);
    snprintf(url, sizeof(url), "ANTHROPIC_BASE_URL=http://%s", mock_addr);
    snprintf(caps, sizeof(caps), "max_streams_per_client=%d", streams + 10);
    char **env = vec(url, "ANTHROPIC_API_KEY=sk-ant-bench-0123456789", "HOME=/nonexistent", NULL);
    char mcpset[160];
    snprintf(mcpset, sizeof(mcpset), "mcp_config=%s", mcp);
    char **gw_argv = vec(BIN, "serve", "--listen", "127.0.0.1:0", "--memory", "--log-level", "warn",
                         "--set", caps, "--set", mcpset, "--set", "strict_mcp_config=true", NULL);
    pid_t gw = spawn_server(gw_argv, env, gw_addr);

    /* (a) fan-out */
    char rid[64];
    start_run(gw_addr, "fanout", rid);
    conn_t *conns = calloc((size_t)streams, sizeof(*conns));
    double cpu0 = proc_cpu(gw), t_first = 0, t_last = 0;
    uint64_t total = stream_all(gw_addr, rid, conns, streams, &t_first, &t_last);
    double cpu_fan = proc_cpu(gw) - cpu0, hwm = proc_hwm_mib(gw);
    uint64_t expect = conns[0].frames, short_streams = 0, unfinished = 0;
    for (int i = 0; i < streams; i++) {
        short_streams += conns[i].frames != expect;
        unfinished += !conns[i].done;
    }
    double span = t_last - t_first;
    printf("== (a) fan-out: %d streams x %llu events (%d deltas 100 ms apart)\n", streams,
           (unsigned long long)expect, events);
    printf("delivered %llu frames in %.2f s: %.0f events/s; streams with a different count: "
           "%llu, unfinished: %llu\n",
           (unsigned long long)total, span, (double)total / span, (unsigned long long)short_streams,
           (unsigned long long)unfinished);
    printf("gateway CPU %.2f s (%.2f us per delivered event), peak RSS %.1f MiB\n", cpu_fan,
           cpu_fan * 1e6 / (double)total, hwm);
    free(conns);

    /* (b) per-event cost: the CLI, then the gateway with one stream */
    /* The CLI's cost per event: the flood run minus a one-delta run (process start, MCP
     * config, client setup), so both sides count only the streaming. */
    uint64_t lines = 0, tiny_lines = 0;
    double cli_cpu = cli_run(mock_addr, mcp, "flood please", &lines);
    double tiny_cpu = cli_run(mock_addr, mcp, "tiny please", &tiny_lines);
    start_run(gw_addr, "flood", rid);
    conn_t one;
    cpu0 = proc_cpu(gw);
    uint64_t frames = stream_all(gw_addr, rid, &one, 1, &t_first, &t_last);
    double gw_cpu = proc_cpu(gw) - cpu0;
    double cli_us = (cli_cpu - tiny_cpu) * 1e6 / (double)(lines - tiny_lines);
    double gw_us = gw_cpu * 1e6 / (double)frames;
    printf("== (b) one 100,000-delta answer\n");
    printf("claude-gateway run: %llu events, CPU %.3f s (a 1-delta run: %.3f s), %.2f us/event\n",
           (unsigned long long)lines, cli_cpu, tiny_cpu, cli_us);
    printf("gateway, 1 SSE stream: %llu events, CPU %.3f s, %.2f us/event\n",
           (unsigned long long)frames, gw_cpu, gw_us);
    printf("HTTP gateway overhead: %+.2f us/event (x%.2f of run)\n", gw_us - cli_us,
           gw_us / cli_us);

    kill(gw, SIGTERM);
    kill(mock, SIGTERM);
    waitpid(gw, NULL, 0);
    waitpid(mock, NULL, 0);
    unlink(script);
    unlink(mcp);
    rmdir(TMP);
    return short_streams == 0 && unfinished == 0 ? 0 : 1;
}
