/*
 * What the agent loop costs on top of the bare client. N concurrent sessions of a tool-using
 * conversation (turn 1: 20 text deltas + a tool_use; a local tool; turn 2: 20 text deltas)
 * against `claude-gateway mock-api` on loopback, two ways, interleaved, in the same process:
 *
 *   baseline: the two streamed calls per session made directly with cgw_anthropic_call (the
 *             reply appended to the conversation, the tool result written by hand, no events);
 *   agent:    one cgw_runner_t per session with its own EventLog (every delta, tool_use,
 *             tool_result, usage and stream_complete logged), a dispatcher with a local tool.
 *
 * Reported: wall time and this process's CPU time (user + system) per round, medians over the
 * rounds, and the agent/baseline ratios. The mock runs in its own process, so its CPU is not
 * counted.
 *
 * Usage: bench_agent [sessions=100] [rounds=5]
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

#include <event2/event.h>
#include <jansson.h>

#include "cgw.h"
#include "mock_proc.h"

extern char **environ;

#define SCRIPT                                                                                   \
    "[{\"match\":\"BENCH-Q\",\"content\":[{\"type\":\"text\",\"text\":\"Let me look that up "  \
    "for you, one moment while I call the tool.\",\"chunks\":20},{\"type\":\"tool_use\","      \
    "\"id\":\"toolu_bench\",\"name\":\"lookup\",\"input\":{\"q\":\"weather\"}}]},"              \
    "{\"match\":\"Sunny-21C\",\"text\":\"The weather is sunny with 21 degrees, a fine day for " \
    "a walk in the park.\",\"chunks\":20}]"

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


/* ---- baseline: bare calls --------------------------------------------------------------- */

typedef struct bare {
    cgw_anthropic_t *client;
    cgw_conversation_t *conv;
    cgw_anthropic_call_t *call;
    int step; /* 0: first call, 1: second call, 2: done */
    int failed;
    int *finished;
} bare_t;

static void bare_done(const cgw_llm_result_t *res, void *user);

static void bare_start(bare_t *b)
{
    static const cgw_anthropic_callbacks_t cbs = {NULL, NULL, bare_done};
    cgw_anthropic_request_t req = {.conversation = b->conv, .tools_json = "[]"};
    if (cgw_anthropic_call_start(b->client, &req, &cbs, b, &b->call, NULL) != CGW_OK) {
        b->failed = 1;
        b->step = 2;
        (*b->finished)++;
    }
}

static void bare_done(const cgw_llm_result_t *res, void *user)
{
    bare_t *b = user;
    cgw_anthropic_call_free(b->call);
    b->call = NULL;
    if (res->code != CGW_OK) {
        b->failed = 1;
        b->step = 2;
        (*b->finished)++;
        return;
    }
    cgw_conversation_append_reply(b->conv, res->message);
    if (b->step++ == 0) {
        json_t *tr = json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "role", "user", "content", "type",
                               "tool_result", "tool_use_id", "toolu_bench", "content",
                               "{\"forecast\": \"Sunny-21C\"}");
        cgw_conversation_append(b->conv, tr);
        json_decref(tr);
        bare_start(b);
        return;
    }
    (*b->finished)++;
}

static int run_baseline(cgw_ctx_t *ctx, cgw_anthropic_t *client, int n)
{
    bare_t *bs = calloc((size_t)n, sizeof(*bs));
    int finished = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        bs[i].client = client;
        bs[i].finished = &finished;
        cgw_conversation_new(&bs[i].conv);
        cgw_conversation_append_text(bs[i].conv, "user", "BENCH-Q what is the weather?");
        bare_start(&bs[i]);
    }
    while (finished < n) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_ONCE);
    }
    for (int i = 0; i < n; i++) {
        failed += bs[i].failed;
        cgw_conversation_free(bs[i].conv);
    }
    free(bs);
    return failed;
}

/* ---- agent: runners --------------------------------------------------------------------- */

typedef struct sess {
    cgw_eventlog_t *log;
    cgw_conversation_t *conv;
    cgw_runner_t *runner;
    int failed;
} sess_t;

static int g_finished;

static void run_done(cgw_runner_t *r, const cgw_run_result_t *res, void *user)
{
    (void)r;
    sess_t *s = user;
    s->failed = res->code != CGW_OK;
    g_finished++;
}

static json_t *lookup(const cgw_tool_call_t *call, json_t **error, void *user)
{
    (void)call;
    (void)error;
    (void)user;
    return json_pack("{s:s}", "forecast", "Sunny-21C");
}

static int run_agent(cgw_ctx_t *ctx, cgw_anthropic_t *client, cgw_dispatcher_t *disp, int n)
{
    sess_t *ss = calloc((size_t)n, sizeof(*ss));
    int failed = 0;
    g_finished = 0;
    for (int i = 0; i < n; i++) {
        cgw_eventlog_new(ctx, NULL, &ss[i].log);
        cgw_conversation_new(&ss[i].conv);
        cgw_conversation_append_text(ss[i].conv, "user", "BENCH-Q what is the weather?");
        cgw_runner_options_t o;
        cgw_runner_options_init(&o);
        o.client = client;
        o.dispatcher = disp;
        o.log = ss[i].log;
        if (cgw_runner_new(ctx, &o, &ss[i].runner, NULL) != CGW_OK ||
            cgw_runner_run(ss[i].runner, ss[i].conv, run_done, &ss[i]) != CGW_OK) {
            ss[i].failed = 1;
            g_finished++;
        }
    }
    while (g_finished < n) {
        event_base_loop(cgw_ctx_base(ctx), EVLOOP_ONCE);
    }
    for (int i = 0; i < n; i++) {
        failed += ss[i].failed || cgw_eventlog_last_seq(ss[i].log) != 45;
        cgw_runner_free(ss[i].runner);
        cgw_eventlog_free(ss[i].log);
        cgw_conversation_free(ss[i].conv);
    }
    free(ss);
    return failed;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (n <= 0 || rounds <= 0 || rounds > 50) {
        fprintf(stderr, "usage: %s [sessions=100] [rounds=5]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char bin[1200];
    const char *env = getenv("CGW_GATEWAY_BIN");
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[sl > 0 ? sl : 0] = '\0';
    snprintf(bin, sizeof(bin), "%s", env ? env : "");
    if (env == NULL) {
        snprintf(bin, sizeof(bin), "%s/../claude-gateway", dirname(self));
    }
    char script[] = "/tmp/cgw-bench-agent-XXXXXX";
    int fd = mkstemp(script);
    if (fd < 0 || write(fd, SCRIPT, strlen(SCRIPT)) != (ssize_t)strlen(SCRIPT)) {
        return 1;
    }
    close(fd);
    char base[128];
    pid_t mock = cgw_test_mock_spawn(bin, "--script", script, base, sizeof(base));
    if (mock < 0) {
        fprintf(stderr, "could not start %s mock-api\n", bin);
        unlink(script);
        return 1;
    }
    cgw_ctx_t *ctx = NULL;
    cgw_ctx_new(NULL, &ctx);
    cgw_anthropic_options_t ao;
    cgw_anthropic_options_init(&ao);
    ao.base_url = base;
    ao.api_key = "bench-key-0123456789";
    cgw_anthropic_t *client = NULL;
    cgw_anthropic_new(ctx, &ao, &client, NULL);
    cgw_dispatcher_t *disp = NULL;
    cgw_dispatcher_new(ctx, NULL, &disp);
    cgw_dispatcher_add_sync(disp, "lookup", lookup, NULL);

    double bw[50], bc[50], aw[50], ac[50];
    int failures = run_baseline(ctx, client, n) + run_agent(ctx, client, disp, n); /* warm-up */
    for (int r = 0; r < rounds; r++) {
        double w0 = wall_s(), c0 = cpu_s();
        failures += run_baseline(ctx, client, n);
        bw[r] = wall_s() - w0;
        bc[r] = cpu_s() - c0;
        w0 = wall_s();
        c0 = cpu_s();
        failures += run_agent(ctx, client, disp, n);
        aw[r] = wall_s() - w0;
        ac[r] = cpu_s() - c0;
    }
    double mbw = median(bw, rounds), mbc = median(bc, rounds);
    double maw = median(aw, rounds), mac = median(ac, rounds);
    printf("%d sessions x (2 streamed calls of 20 deltas + 1 tool), %d rounds, medians:\n", n,
           rounds);
    printf("  baseline (bare client calls): wall %.1f ms, CPU %.1f ms (%.0f us/session)\n",
           mbw * 1e3, mbc * 1e3, mbc * 1e6 / n);
    printf("  agent (runner + EventLog + dispatcher): wall %.1f ms, CPU %.1f ms (%.0f us/session)\n",
           maw * 1e3, mac * 1e3, mac * 1e6 / n);
    printf("  ratio agent/baseline: wall %.2fx, CPU %.2fx; failures %d\n", maw / mbw, mac / mbc,
           failures);
    cgw_dispatcher_free(disp);
    cgw_anthropic_free(client);
    cgw_ctx_free(ctx);
    cgw_test_mock_kill(mock);
    unlink(script);
    return failures == 0 ? 0 : 1;
}
