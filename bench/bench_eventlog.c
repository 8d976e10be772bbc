/*
 * EventLog benchmark: appended-and-delivered events per second with 1 and with 1,000
 * subscribers, and heap bytes per stored event against the event's JSON size.
 *
 * Events are text_delta objects of 150 bytes of compact JSON, the common case of a run.
 * Appends come in batches of BATCH, then one loop turn delivers them, as when a model stream
 * hands over a network read worth of deltas. Baselines measured in the same run:
 *   - json_dumps of the same event (what serializing once per event costs with jansson),
 *   - a memcpy of its 150 bytes into a growing vector (the floor for storing it at all),
 *   - json_deep_copy of the event (storing the event as a jansson object) for memory.
 *
 * Usage: bench_eventlog [events]   (default 2,000,000)
 */
#include <event2/event.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cgw.h"

#define BATCH 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_t *make_event(size_t *json_len)
{
    const char *text = "The quick brown fox jumps over the lazy dog, then keeps running "
                       "across the field until the sun sets behind the hills.";
    json_t *e = json_pack("{s:s,s:s}", "type", "text_delta", "text", text);
    char *s = json_dumps(e, JSON_COMPACT);
    *json_len = strlen(s);
    free(s);
    return e;
}

struct counter {
    size_t entries, bytes, finals;
};

static void count_cb(cgw_eventlog_sub_t *sub, const cgw_eventlog_entry_t *e, int status, void *user)
{
    (void)sub;
    (void)status;
    struct counter *c = user;
    if (e == NULL) {
        c->finals++;
        return;
    }
    c->entries++;
    c->bytes += e->frame.len + (unsigned char)e->frame.ptr[e->frame.len - 1];
}

/* Appends n events in batches of `batch` with nsubs subscribers and returns events/s. */
static double run_throughput(cgw_ctx_t *ctx, const json_t *ev, size_t n, int nsubs, int batch)
{
    cgw_eventlog_options_t o;
    cgw_eventlog_options_init(&o);
    o.max_entries = 1 << 16; /* keeps memory flat; subscribers keep up, so nothing is lost */
    cgw_eventlog_t *log;
    if (cgw_eventlog_new(ctx, &o, &log) != CGW_OK) {
        exit(1);
    }
    struct counter *c = calloc((size_t)nsubs, sizeof(*c));
    for (int i = 0; i < nsubs; i++) {
        cgw_eventlog_sub_t *sub;
        if (cgw_eventlog_subscribe(log, 0, count_cb, &c[i], &sub) != CGW_OK) {
            exit(1);
        }
    }
    struct event_base *base = cgw_ctx_base(ctx);
    double t0 = now_s();
    for (size_t done = 0; done < n;) {
        for (int b = 0; b < batch && done < n; b++, done++) {
            if (cgw_eventlog_append(log, ev, NULL) != CGW_OK) {
                exit(1);
            }
        }
        event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_ONCE);
    }
    double dt = now_s() - t0;
    for (int i = 0; i < nsubs; i++) {
        if (c[i].entries != n) {
            fprintf(stderr, "subscriber %d got %zu of %zu\n", i, c[i].entries, n);
            exit(1);
        }
    }
    cgw_eventlog_free(log);
    free(c);
    return (double)n / dt;
}

static double baseline_dumps(const json_t *ev, size_t n)
{
    size_t sink = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char *s = json_dumps(ev, JSON_COMPACT);
        sink += (unsigned char)s[0];
        free(s);
    }
    double dt = now_s() - t0;
    return sink == 0 ? 0 : (double)n / dt;
}

static double baseline_memcpy(const json_t *ev, size_t n)
{
    char *json = json_dumps(ev, JSON_COMPACT);
    size_t len = strlen(json), cap = 1 << 20, used = 0;
    char *vec = calloc(1, cap);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        if (used + len > cap) {
            used = 0; /* reuse, like a ring: measures the copy, not page faults */
        }
        memcpy(vec + used, json, len);
        used += len;
    }
    double dt = now_s() - t0;
    volatile char keep = vec[0];
    (void)keep;
    free(vec);
    free(json);
    return (double)n / dt;
}

/* Bytes in use on the heap, including blocks malloc served with mmap (the ring, once big). */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Heap bytes per stored event, before and after storing m events. */
static double bytes_per_event_log(cgw_ctx_t *ctx, const json_t *ev, size_t m)
{
    cgw_eventlog_t *log;
    if (cgw_eventlog_new(ctx, NULL, &log) != CGW_OK) {
        exit(1);
    }
    if (cgw_eventlog_append(log, ev, NULL) != CGW_OK) { /* scratch buffer, first ring */
        exit(1);
    }
    size_t before = heap_in_use();
    for (size_t i = 1; i < m; i++) {
        if (cgw_eventlog_append(log, ev, NULL) != CGW_OK) {
            exit(1);
        }
    }
    size_t after = heap_in_use();
    cgw_eventlog_free(log);
    return (double)(after - before) / (double)(m - 1);
}

static double bytes_per_event_jansson(const json_t *ev, size_t m)
{
    json_t **v = malloc(m * sizeof(*v));
    size_t before = heap_in_use();
    for (size_t i = 0; i < m; i++) {
        v[i] = json_deep_copy(ev);
    }
    size_t after = heap_in_use();
    for (size_t i = 0; i < m; i++) {
        json_decref(v[i]);
    }
    free(v);
    return (double)(after - before) / (double)m;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    cgw_ctx_options_t co;
    cgw_ctx_options_init(&co);
    co.log_level = CGW_LOG_WARN;
    cgw_ctx_t *ctx;
    if (cgw_ctx_new(&co, &ctx) != CGW_OK) {
        return 1;
    }
    size_t json_len;
    json_t *ev = make_event(&json_len);

    double dumps = baseline_dumps(ev, n / 4);
    double copy = baseline_memcpy(ev, n);
    double one = run_throughput(ctx, ev, n, 1, BATCH);
    double one_unbatched = run_throughput(ctx, ev, n / 4, 1, 1);
    size_t n1000 = n / 100 < 1000 ? 1000 : n / 100;
    double thousand = run_throughput(ctx, ev, n1000, 1000, BATCH);
    size_t m = 200000;
    double per_log = bytes_per_event_log(ctx, ev, m);
    double per_jansson = bytes_per_event_jansson(ev, m);

    printf("event: text_delta, %zu bytes of JSON, batches of %d appends per loop turn\n", json_len,
           BATCH);
    printf("baseline json_dumps (jansson)      %12.0f events/s\n", dumps);
    printf("baseline memcpy into a vector      %12.0f events/s\n", copy);
    printf("eventlog, 1 subscriber             %12.0f events/s  (%.2fx json_dumps)\n", one,
           one / dumps);
    printf("eventlog, 1 subscriber, 1 per turn %12.0f events/s  (%.2fx json_dumps)\n",
           one_unbatched, one_unbatched / dumps);
    printf("eventlog, 1000 subscribers         %12.0f events/s  (%.0f deliveries/s)\n", thousand,
           thousand * 1000);
    printf("memory per stored event, eventlog  %12.1f bytes  (%.2fx its JSON)\n", per_log,
           per_log / (double)json_len);
    printf("memory per event, json_deep_copy   %12.1f bytes  (%.2fx its JSON)\n", per_jansson,
           per_jansson / (double)json_len);
    json_decref(ev);
    cgw_ctx_free(ctx);
    int ok = one >= 1e6 && per_log < 2.0 * (double)json_len;
    printf("goals (>= 1,000,000 events/s to one subscriber, < 2x JSON per event): %s\n",
           ok ? "met" : "MISSED");
    return 0;
}
