/* Store benchmark: event appends per second and the replay of 50 events after a seq, for the
 * SQLite store (one transaction per append; group commit per loop iteration) against the
 * in-memory store measured in the same run as the baseline.
 *
 *   build/bench/bench_store [events] [runs] [dir]
 *
 * Events are ~190-byte text_delta entries spread round-robin over `runs` interleaved runs
 * (default 100, the shape of the measurements in c-stack.md §1.3). The database lives in a fresh
 * folder under `dir` (default /tmp) on the local disk, with WAL and synchronous=NORMAL, as the
 * gateway runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cgw.h"

#define MAX_RUNS 100

static int RUNS = 100; /* runs appended to round-robin (argv[2]) */
#define REPLAYS 5000

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall clock and this thread's CPU time (user + system). On a shared machine the CPU time is
 * the steadier figure: it is what the loop thread spends, whoever else runs. */
struct stamp {
    double wall, cpu;
};

static struct stamp stamp_now(void)
{
    struct stamp s = {clock_s(CLOCK_MONOTONIC), clock_s(CLOCK_THREAD_CPUTIME_ID)};
    return s;
}

static void die(const char *what, int rc, const cgw_error_t *err)
{
    fprintf(stderr, "bench_store: %s: %s %s\n", what, cgw_strerror(rc), err ? err->message : "");
    exit(1);
}

struct result {
    const char *name;
    double appends_per_s; /* wall clock */
    double append_cpu_us; /* CPU per append */
    double replay_us;     /* wall clock per replay of 50 */
    double replay_cpu_us;
};

/* Creates one session with RUNS runs. */
static void make_runs(cgw_store_t *s, char ids[MAX_RUNS][CGW_STORE_ID_MAX])
{
    cgw_store_session_t sess;
    cgw_error_t err;
    int rc = cgw_store_session_create(s, "bench", NULL, NULL, 0, &sess, &err);
    if (rc != CGW_OK) {
        die("session", rc, &err);
    }
    for (int i = 0; i < RUNS; i++) {
        cgw_store_run_t run;
        rc = cgw_store_run_create(s, "bench", sess.id, NULL, &run, &err);
        if (rc != CGW_OK) {
            die("run", rc, &err);
        }
        memcpy(ids[i], run.id, CGW_STORE_ID_MAX);
    }
    cgw_store_session_clear(&sess);
}

/* Appends `n` events round-robin over the runs. `per_iter` > 0 runs one loop iteration after
 * every `per_iter` appends, which is when group commit commits. */
static void append_events(cgw_ctx_t *ctx, cgw_store_t *s, char ids[MAX_RUNS][CGW_STORE_ID_MAX],
                          int n, int per_iter, struct result *r)
{
    char json[256];
    cgw_error_t err;
    struct stamp t0 = stamp_now();
    for (int i = 0; i < n; i++) {
        int len = snprintf(json, sizeof(json),
                           "{\"seq\":%d,\"ts\":1732540000.123456,\"type\":\"text_delta\",\"text\":"
                           "\"The quick brown fox jumps over the lazy dog, again and again, while "
                           "the gateway streams this delta number %08d to every subscriber.\"}",
                           i / RUNS + 1, i);
        cgw_store_event_t ev = {0, 1732540000.123456, "text_delta", json, (size_t)len};
        int rc = cgw_store_event_append(s, "bench", ids[i % RUNS], &ev, NULL, &err);
        if (rc != CGW_OK) {
            die("append", rc, &err);
        }
        if (per_iter > 0 && (i + 1) % per_iter == 0) {
            event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK);
        }
    }
    int rc = cgw_store_flush(s, &err);
    if (rc != CGW_OK) {
        die("flush", rc, &err);
    }
    struct stamp t1 = stamp_now();
    r->appends_per_s = (double)n / (t1.wall - t0.wall);
    r->append_cpu_us = (t1.cpu - t0.cpu) / n * 1e6;
}

static int count_event(const cgw_store_event_t *ev, void *user)
{
    (void)ev;
    (*(int *)user)++;
    return CGW_OK;
}

/* Mean time of a replay of 50 events after a random seq of a random run. */
static void replay_50(cgw_store_t *s, char ids[MAX_RUNS][CGW_STORE_ID_MAX], int per_run,
                      struct result *r)
{
    unsigned seed = 42;
    int got = 0;
    cgw_error_t err;
    struct stamp t0 = stamp_now();
    for (int i = 0; i < REPLAYS; i++) {
        int run = rand_r(&seed) % RUNS;
        uint64_t after = (uint64_t)(rand_r(&seed) % (per_run - 50));
        int rc = cgw_store_event_read(s, "bench", ids[run], after, 50, count_event, &got, &err);
        if (rc != CGW_OK) {
            die("read", rc, &err);
        }
    }
    if (got != REPLAYS * 50) {
        fprintf(stderr, "bench_store: replay returned %d events, expected %d\n", got, REPLAYS * 50);
        exit(1);
    }
    struct stamp t1 = stamp_now();
    r->replay_us = (t1.wall - t0.wall) / REPLAYS * 1e6;
    r->replay_cpu_us = (t1.cpu - t0.cpu) / REPLAYS * 1e6;
}

static cgw_store_t *open_store(cgw_ctx_t *ctx, const char *dir, const char *name, bool sqlite,
                               bool group, bool exclusive, char *path, size_t cap)
{
    cgw_store_t *s = NULL;
    cgw_error_t err;
    int rc;
    if (!sqlite) {
        rc = cgw_store_open_memory(ctx, &s);
    } else {
        static int serial;
        (void)name;
        snprintf(path, cap, "%s/bench-%d.db", dir, ++serial);
        cgw_store_sqlite_options_t o;
        cgw_store_sqlite_options_init(&o);
        o.path = path;
        o.group_commit = group;
        o.exclusive = exclusive;
        rc = cgw_store_open_sqlite(ctx, &o, &s, &err);
    }
    if (rc != CGW_OK) {
        die("open", rc, &err);
    }
    return s;
}

static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static struct result run_once(cgw_ctx_t *ctx, const char *dir, const char *name, bool sqlite,
                              bool group, bool exclusive, int per_iter, int n)
{
    static char ids[MAX_RUNS][CGW_STORE_ID_MAX];
    char path[512] = "";
    cgw_store_t *s = open_store(ctx, dir, name, sqlite, group, exclusive, path, sizeof(path));
    make_runs(s, ids);
    struct result r = {name, 0, 0, 0, 0};
    append_events(ctx, s, ids, n, per_iter, &r);
    replay_50(s, ids, n / RUNS, &r);
    cgw_store_free(s);
    if (sqlite) {
        remove_db(path);
    }
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median3(double a, double b, double c)
{
    double v[3] = {a, b, c};
    qsort(v, 3, sizeof(v[0]), cmp_double);
    return v[1];
}

/* Each figure is the median of three runs, each on a fresh database. */
static struct result run_case(cgw_ctx_t *ctx, const char *dir, const char *name, bool sqlite,
                              bool group, bool exclusive, int per_iter, int n)
{
    struct result r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = run_once(ctx, dir, name, sqlite, group, exclusive, per_iter, n);
    }
    struct result m = {name, median3(r[0].appends_per_s, r[1].appends_per_s, r[2].appends_per_s),
                       median3(r[0].append_cpu_us, r[1].append_cpu_us, r[2].append_cpu_us),
                       median3(r[0].replay_us, r[1].replay_us, r[2].replay_us),
                       median3(r[0].replay_cpu_us, r[1].replay_cpu_us, r[2].replay_cpu_us)};
    return m;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    RUNS = argc > 2 ? atoi(argv[2]) : 100;
    const char *base = argc > 3 ? argv[3] : "/tmp";
    if (RUNS < 1 || RUNS > MAX_RUNS) {
        fprintf(stderr, "bench_store: runs must be 1 to %d\n", MAX_RUNS);
        return 1;
    }
    if (n < RUNS * 60) {
        n = RUNS * 60;
    }
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/cgw-bench-store-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    cgw_ctx_options_t copts;
    cgw_ctx_options_init(&copts);
    copts.log_level = CGW_LOG_WARN;
    cgw_ctx_t *ctx = NULL;
    if (cgw_ctx_new(&copts, &ctx) != CGW_OK) {
        return 1;
    }
    struct result res[] = {
        run_case(ctx, dir, "memory", false, false, false, 0, n),
        run_case(ctx, dir, "sqlite, commit per append", true, false, false, 0, n),
        run_case(ctx, dir, "sqlite, group commit, 1 append/iteration", true, true, false, 1, n),
        run_case(ctx, dir, "sqlite, group commit, 10 appends/iteration", true, true, false, 10, n),
        run_case(ctx, dir, "sqlite, group commit, 100 appends/iteration", true, true, false, 100,
                 n),
        run_case(ctx, dir, "sqlite, group commit, 100/iter., exclusive", true, true, true, 100, n),
    };
    printf("store benchmark: %d events (~190 B) over %d runs; replay = 50 events after a random "
           "seq (mean of %d); medians of 3 runs; cpu = this thread's user+sys time\n\n",
           n, RUNS, REPLAYS);
    printf("| %-44s | %10s | %10s | %9s | %11s | %9s |\n", "store", "appends/s", "cpu/append",
           "vs memory", "replay 50", "vs memory");
    printf("|%s|%s|%s|%s|%s|%s|\n", "----------------------------------------------",
           "-----------:", "-----------:", "----------:", "------------:", "----------:");
    for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
        printf("| %-44s | %10.0f | %7.2f µs | %8.1fx | %8.2f µs | %8.1fx |\n", res[i].name,
               res[i].appends_per_s, res[i].append_cpu_us,
               res[i].append_cpu_us / res[0].append_cpu_us, res[i].replay_cpu_us,
               res[i].replay_cpu_us / res[0].replay_cpu_us);
    }
    cgw_ctx_free(ctx);
    rmdir(dir);
    return 0;
}
