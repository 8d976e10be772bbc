/* The SQLite store on real files: memory and SQLite agree on random operations; close and
 * reopen keeps everything; a writer killed with SIGKILL mid-stream loses no acknowledged event;
 * a reader process sees gap-free prefixes while the writer appends; group commit per loop
 * iteration; failed commits are retried; bad, damaged and locked files give clear errors;
 * allocation failures at every point leave a consistent store and no leak. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "store_fixture.h"

/* ---- memory and SQLite agree ---------------------------------------------------------------- */

/* A transcript of what reads returned, compared between the two stores. */
struct digest {
    char *p;
    size_t len, cap;
};

static void dig(struct digest *d, const char *fmt, ...) CGW_PRINTF(2, 3);
static void dig(struct digest *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->len + (size_t)n + 1) * 2;
        d->p = realloc(d->p, d->cap);
    }
    va_start(ap, fmt);
    vsnprintf(d->p + d->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    d->len += (size_t)n;
}

static int dig_event(const cgw_store_event_t *ev, void *user)
{
    dig(user, "e%llu/%s/%.3f/%.*s;", (unsigned long long)ev->seq, ev->type, ev->ts,
        (int)ev->json_len, ev->json);
    return CGW_OK;
}

static int dig_msg(uint64_t index, const char *json, size_t len, void *user)
{
    dig(user, "m%llu/%.*s;", (unsigned long long)index, (int)len, json);
    return CGW_OK;
}

static int dig_run(const cgw_store_run_t *r, void *user)
{
    dig(user, "r%s/%s/%s/%d/%llu;", r->id, r->session_id, r->tenant, (int)r->status,
        (unsigned long long)r->last_seq);
    return CGW_OK;
}

static int dig_session(const cgw_store_session_t *ss, void *user)
{
    dig(user, "s%s/%s/%.*s/%llu;", ss->id, ss->tenant, (int)ss->settings_len, ss->settings,
        (unsigned long long)ss->message_count);
    return CGW_OK;
}

/* One random operation on store `s`; returns its code and adds what it read to `d`. The same
 * `seed` gives the same operation on both stores. */
static int random_op(cgw_store_t *s, unsigned seed, struct digest *d)
{
    unsigned r = seed;
    const char *tenant = rand_r(&r) % 5 ? "a" : "b";
    char sid[16], rid[16], json[64];
    snprintf(sid, sizeof(sid), "s%d", rand_r(&r) % 6);
    snprintf(rid, sizeof(rid), "r%d", rand_r(&r) % 10);
    int k = (int)(rand_r(&r) % 1000);
    snprintf(json, sizeof(json), "{\"k\":%d}", k);
    uint64_t u = 0;
    cgw_store_run_t run;
    cgw_store_session_t ss;
    int rc;
    switch (rand_r(&r) % 14) {
    case 0:
        return cgw_store_session_create(s, tenant, sid, json, strlen(json), NULL, NULL);
    case 1:
    case 2:
        rc = cgw_store_message_append(s, tenant, sid, json, strlen(json), &u, NULL);
        dig(d, "i%llu;", (unsigned long long)u);
        return rc;
    case 3:
        return cgw_store_message_truncate(s, tenant, sid, (uint64_t)(k % 4), NULL);
    case 4:
        return cgw_store_run_create(s, tenant, sid, rid, NULL, NULL);
    case 5:
    case 6:
    case 7: {
        cgw_store_event_t evs[3];
        size_t n = 1 + (size_t)(k % 3);
        for (size_t i = 0; i < n; i++) {
            evs[i] = (cgw_store_event_t){k % 7 == 0 ? (uint64_t)(k % 5) : 0, k + 0.5, "text_delta",
                                         json, strlen(json)};
        }
        rc = cgw_store_event_append_batch(s, tenant, rid, evs, n, &u, NULL);
        dig(d, "f%llu;", rc == CGW_OK ? (unsigned long long)u : 0ULL);
        return rc;
    }
    case 8:
        return cgw_store_run_set_status(s, tenant, rid, (cgw_run_status_t)(k % 5), NULL);
    case 9: {
        cgw_store_event_t fin = {0, 9.0, "stream_complete", json, strlen(json)};
        return cgw_store_run_finish(s, tenant, rid, (cgw_run_status_t)(1 + k % 4),
                                    k % 2 ? &fin : NULL, &u, NULL);
    }
    case 10:
        return cgw_store_event_read(s, tenant, rid, (uint64_t)(k % 6), (size_t)(k % 4), dig_event,
                                    d, NULL);
    case 11:
        rc = cgw_store_run_get(s, tenant, rid, &run, NULL);
        if (rc == CGW_OK) {
            dig_run(&run, d);
        }
        rc = rc ? rc : cgw_store_run_list(s, tenant, run.session_id, dig_run, d, NULL);
        return rc ? rc : cgw_store_message_load(s, tenant, run.session_id, dig_msg, d, NULL);
    case 12:
        rc = cgw_store_session_get(s, tenant, sid, &ss, NULL);
        if (rc == CGW_OK) {
            dig_session(&ss, d);
            cgw_store_session_clear(&ss);
        }
        return rc ? rc
                  : cgw_store_session_list(s, tenant, (uint64_t)(k % 2), 0, dig_session, d, NULL);
    default:
        return k % 3 == 0 ? cgw_store_session_delete(s, tenant, sid, NULL)
                          : cgw_store_run_list_unfinished(s, dig_run, d, NULL);
    }
}

static void test_memory_and_sqlite_agree(void **state)
{
    struct st_fx *f = *state; /* SQLite with group commit */
    cgw_store_t *mem = NULL;
    assert_int_equal(cgw_store_open_memory(f->ctx, &mem), CGW_OK);
    struct digest dm = {0}, ds = {0};
    int ok = 0, eseq = 0, estate = 0, enoent = 0, eexist = 0;
    for (unsigned i = 0; i < 6000; i++) {
        unsigned seed = i * 2654435761u;
        int a = random_op(mem, seed, &dm);
        int b = random_op(f->store, seed, &ds);
        ok += a == CGW_OK;
        eseq += a == CGW_ESEQ;
        estate += a == CGW_ESTATE;
        enoent += a == CGW_ENOENT;
        eexist += a == CGW_EEXIST;
        if (a != b || dm.len != ds.len || memcmp(dm.p, ds.p, dm.len) != 0) {
            fprintf(stderr, "op %u: memory %s, sqlite %s\n  memory: %.*s\n  sqlite: %.*s\n", i,
                    cgw_err_name(a), cgw_err_name(b), (int)dm.len, dm.p, (int)ds.len, ds.p);
            fail();
        }
        dm.len = ds.len = 0;
        if (i % 7 == 0) {
            event_base_loop(cgw_ctx_base(f->ctx), EVLOOP_NONBLOCK); /* a group commit */
        }
    }
    /* The mix reached every outcome, mostly successes. */
    fprintf(stderr, "ops: %d ok, %d ENOENT, %d EEXIST, %d ESEQ, %d ESTATE\n", ok, enoent, eexist,
            eseq, estate);
    assert_true(ok > 1500 && enoent > 100 && eexist > 50 && eseq > 20 && estate > 50);
    free(dm.p);
    free(ds.p);
    cgw_store_free(mem);
}

/* ---- SQLite on real files ------------------------------------------------------------------- */

/* Child processes are this same binary started again (fork + exec of /proc/self/exe) in a
 * role, so that no SQLite or libevent state crosses a fork. */
static pid_t spawn_self(const char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv("/proc/self/exe", (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

static int raw_query_int(const char *path, const char *sql, long long *out)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

static void test_sqlite_reopen_keeps_everything(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX], r2[CGW_STORE_ID_MAX];
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_create(s, "t", NULL, "{\"model\":\"x\"}", 13, &rec, NULL),
                     CGW_OK);
    strcpy(sid, rec.id);
    cgw_store_session_clear(&rec);
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{\"role\":\"user\"}", 15, NULL, NULL),
                     CGW_OK);
    st_new_run(s, "t", sid, r1);
    st_new_run(s, "t", sid, r2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(st_append_text(s, "t", r1, 0, NULL), CGW_OK);
    }
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_COMPLETED, NULL), CGW_OK);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(st_append_text(s, "t", r2, 0, NULL), CGW_OK);
    }
    /* No flush: closing commits the queue. */
    cgw_store_free(f->store);
    f->store = NULL;
    assert_int_equal(st_open_sqlite_at(f->ctx, f->path, true, false, &f->store, NULL), CGW_OK);
    s = f->store;
    assert_int_equal(cgw_store_session_get(s, "t", sid, &rec, NULL), CGW_OK);
    assert_string_equal(rec.settings, "{\"model\":\"x\"}");
    assert_int_equal(rec.message_count, 1);
    cgw_store_session_clear(&rec);
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_get(s, "t", r1, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_COMPLETED);
    assert_int_equal(r.last_seq, 20);
    assert_int_equal(cgw_store_run_get(s, "t", r2, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_RUNNING);
    struct st_collected c;
    assert_int_equal(st_read_all(s, "t", r2, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.last_json, "{\"seq\":7,\"type\":\"text_delta\",\"text\":\"t7\"}");
    /* The session continues where it was. */
    uint64_t idx = 0;
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{}", 2, &idx, NULL), CGW_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(st_append_text(s, "t", r2, 8, NULL), CGW_OK);

    /* On disk: WAL, STRICT tables, events clustered by (run_id, seq), schema version 1. */
    long long v = 0;
    assert_int_equal(raw_query_int(f->path, "SELECT max(version) FROM schema_version", &v),
                     SQLITE_OK);
    assert_int_equal(v, 1);
    assert_int_equal(
        raw_query_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%STRICT%'", &v),
        SQLITE_OK);
    assert_int_equal(v, 5);
    assert_int_equal(raw_query_int(f->path,
                                   "SELECT count(*) FROM sqlite_schema WHERE name = 'events'"
                                   " AND sql LIKE '%WITHOUT ROWID%'",
                                   &v),
                     SQLITE_OK);
    assert_int_equal(v, 1);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

struct in_loop {
    struct st_fx *f;
    cgw_store_t *reader;
    const char *rid;
    int done;
    int seen_next_iteration;
};

static void check_next_iteration(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct in_loop *il = arg;
    struct st_collected c;
    assert_int_equal(st_read_all(il->reader, "t", il->rid, 0, 0, &c), CGW_OK);
    il->seen_next_iteration = c.n;
    il->done = 1;
}

static void append_in_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct in_loop *il = arg;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(st_append_text(il->f->store, "t", il->rid, 0, NULL), CGW_OK);
    }
    struct timeval zero = {0, 0};
    event_base_once(cgw_ctx_base(il->f->ctx), -1, EV_TIMEOUT, check_next_iteration, il, &zero);
}

static void test_sqlite_group_commit_on_loop(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, rid);
    cgw_store_t *reader = NULL;
    assert_int_equal(st_open_sqlite_at(f->ctx, f->path, false, true, &reader, NULL), CGW_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    }
    /* Queued: the writer sees them, another connection does not yet. */
    struct st_collected c;
    uint64_t last = 0;
    assert_int_equal(cgw_store_event_last_seq(f->store, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 5);
    assert_int_equal(st_read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    /* One loop iteration commits them, in one transaction. */
    event_base_loop(cgw_ctx_base(f->ctx), EVLOOP_NONBLOCK);
    assert_int_equal(st_read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 5);
    /* An explicit flush does the same without the loop. */
    assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
    assert_int_equal(st_read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 6);
    /* Appends made by a loop callback are committed before the loop's next iteration. */
    struct in_loop il = {f, reader, rid, 0, -1};
    event_base_once(cgw_ctx_base(f->ctx), -1, EV_TIMEOUT, append_in_loop, &il, NULL);
    assert_true(cgw_test_run_until(f->ctx, &il.done, 5000));
    assert_int_equal(il.seen_next_iteration, 9);
    assert_int_equal(st_read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 9);

    /* The read-only store refuses writes with the database's reason. */
    cgw_error_t err;
    assert_int_equal(cgw_store_session_create(reader, "t", NULL, NULL, 0, NULL, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "readonly"));
    assert_int_equal(st_append_text(reader, "t", rid, 0, NULL), CGW_ESTORE);
    struct st_collected c2;
    assert_int_equal(st_read_all(reader, "t", rid, 0, 0, &c2), CGW_OK);
    assert_int_equal(c2.n, 9);
    cgw_store_free(reader);
}

/* Child role "writer": appends events to run_kill until killed, acknowledging on `fd` each
 * seq whose append is durable (after a flush in group mode, after the append otherwise). */
static int child_writer(const char *path, const char *mode, int fd)
{
    /* "direct": a commit per append, acknowledged when it returns; "group": group commit,
     * acknowledged after cgw_store_flush every 5; "loop": group commit, acknowledged after
     * the loop iteration that follows every 3 appends. */
    bool group = strcmp(mode, "direct") != 0;
    bool by_loop = strcmp(mode, "loop") == 0;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_store_t *s = NULL;
    if (ctx == NULL || st_open_sqlite_at(ctx, path, group, false, &s, NULL) != CGW_OK ||
        cgw_store_session_create(s, "t", "sess_kill", NULL, 0, NULL, NULL) != CGW_OK ||
        cgw_store_message_append(s, "t", "sess_kill", "{\"role\":\"user\"}", 15, NULL, NULL) !=
            CGW_OK ||
        cgw_store_run_create(s, "t", "sess_kill", "run_kill", NULL, NULL) != CGW_OK) {
        return 2;
    }
    for (uint64_t seq = 1;; seq++) {
        uint64_t got = 0;
        if (st_append_text(s, "t", "run_kill", 0, &got) != CGW_OK || got != seq) {
            return 3;
        }
        if (group && seq % (by_loop ? 3 : 5) != 0) {
            continue;
        }
        if (by_loop) {
            event_base_loop(cgw_ctx_base(ctx), EVLOOP_NONBLOCK);
        } else if (group && cgw_store_flush(s, NULL) != CGW_OK) {
            return 4;
        }
        char line[32];
        int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)seq);
        if (write(fd, line, (size_t)n) != n) {
            return 5;
        }
    }
}

/* Reads acknowledgement lines until `want` is acknowledged; returns the last one read. One
 * byte per read(): nothing past the line that satisfies `want` is consumed, so the next call
 * starts on a line boundary. */
static uint64_t read_acks(int fd, uint64_t want)
{
    uint64_t last = 0, cur = 0;
    while (last < want) {
        char ch;
        assert_int_equal(read(fd, &ch, 1), 1);
        if (ch == '\n') {
            last = cur;
            cur = 0;
        } else {
            cur = cur * 10 + (uint64_t)(ch - '0');
        }
    }
    return last;
}

static void kill_mid_stream(struct st_fx *f, const char *mode)
{
    cgw_store_free(f->store); /* the child is the only writer */
    f->store = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
    const char *argv[] = {"test_store", "child-writer", f->path, mode, fdarg, NULL};
    pid_t pid = spawn_self(argv);
    assert_true(pid > 0);
    close(fds[1]);
    uint64_t acked = read_acks(fds[0], 300);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Acks written after the last one we read are durable too; take the highest. */
    uint64_t more;
    char tail[4096];
    ssize_t n;
    while ((n = read(fds[0], tail, sizeof(tail) - 1)) > 0) {
        tail[n] = '\0';
        char *p = tail;
        for (char *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
            more = strtoull(p, NULL, 10);
            acked = more > acked ? more : acked;
        }
    }
    close(fds[0]);

    assert_int_equal(st_open_sqlite_at(f->ctx, f->path, true, false, &f->store, NULL), CGW_OK);
    struct st_collected c;
    assert_int_equal(st_read_all(f->store, "t", "run_kill", 0, 0, &c), CGW_OK);
    assert_true((uint64_t)c.n >= acked);
    for (int i = 0; i < c.n && i < 4096; i++) {
        assert_int_equal(c.seqs[i], i + 1); /* in order, no gap, no duplicate */
    }
    char want[128];
    snprintf(want, sizeof(want), "{\"seq\":%d,\"type\":\"text_delta\",\"text\":\"t%d\"}", c.n, c.n);
    assert_string_equal(c.last_json, want);
    struct st_runs rs = {0};
    assert_int_equal(cgw_store_run_list_unfinished(f->store, st_collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.r[0].id, "run_kill");
    assert_int_equal(rs.r[0].last_seq, (uint64_t)c.n);
    /* Recovery ends it with an error event after the last one. */
    struct st_builder bld = {0};
    size_t count = 0;
    assert_int_equal(cgw_store_recover(f->store, "error", st_build_error, &bld, &count, NULL),
                     CGW_OK);
    assert_int_equal(count, 1);
    struct st_collected tail_ev;
    assert_int_equal(st_read_all(f->store, "t", "run_kill", (uint64_t)c.n, 0, &tail_ev), CGW_OK);
    assert_int_equal(tail_ev.n, 1);
    assert_int_equal(tail_ev.seqs[0], (uint64_t)c.n + 1);
    assert_string_equal(tail_ev.types[0], "error");
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_get(f->store, "t", "run_kill", &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_INTERRUPTED);
    /* And the session continues. */
    uint64_t idx = 0;
    assert_int_equal(cgw_store_message_append(f->store, "t", "sess_kill", "{}", 2, &idx, NULL),
                     CGW_OK);
    assert_int_equal(idx, 1);
}

static void test_sqlite_kill_group_commit(void **state)
{
    kill_mid_stream(*state, "group");
}

static void test_sqlite_kill_group_commit_by_loop(void **state)
{
    kill_mid_stream(*state, "loop");
}

static void test_sqlite_kill_commit_per_append(void **state)
{
    kill_mid_stream(*state, "direct");
}

/* Child role "reader": polls the run's events through a read-only store until it has seen
 * `want`, checking every read is a gap-free prefix that never shrinks, and reporting on `fd`
 * each new count it sees. */
static int child_reader(const char *path, const char *run, uint64_t want, int fd)
{
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_store_t *s = NULL;
    if (ctx == NULL || st_open_sqlite_at(ctx, path, false, true, &s, NULL) != CGW_OK) {
        return 2;
    }
    static struct st_collected c;
    int prev = -1;
    for (int i = 0; i < 2000000; i++) {
        memset(&c, 0, sizeof(c));
        if (cgw_store_event_read(s, "t", run, 0, 0, st_collect_event, &c, NULL) != CGW_OK) {
            return 3;
        }
        for (int k = 0; k < c.n && k < 4096; k++) {
            if (c.seqs[k] != (uint64_t)k + 1) {
                return 4;
            }
        }
        if (c.n < prev) {
            return 5;
        }
        if (c.n != prev) {
            char line[32];
            int n = snprintf(line, sizeof(line), "%d\n", c.n);
            if (write(fd, line, (size_t)n) != n) {
                return 6;
            }
        }
        prev = c.n;
        if ((uint64_t)c.n >= want) {
            cgw_store_free(s);
            cgw_ctx_free(ctx);
            return 0;
        }
    }
    return 7;
}

static void test_sqlite_concurrent_reader(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, rid);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
    const char *argv[] = {"test_store", "child-reader", f->path, rid, "3000", fdarg, NULL};
    pid_t pid = spawn_self(argv);
    assert_true(pid > 0);
    close(fds[1]);
    for (uint64_t i = 1; i <= 3000; i++) {
        assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
        if (i % 25 == 0) {
            assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
        }
        /* Every 500 events, wait until the reader has seen them: its reads really do
         * interleave with the writes, whatever the scheduling. */
        if (i % 500 == 0) {
            assert_true(read_acks(fds[0], i) >= i);
        }
    }
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_sqlite_bad_paths(void **state)
{
    struct st_fx *f = *state;
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    cgw_store_t *s = NULL;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_EINVAL);
    assert_null(s);
    assert_int_equal(cgw_store_open_sqlite(NULL, &o, &s, &err), CGW_EINVAL);

    /* A file that is not a database. */
    char p[256];
    snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
    FILE *fp = fopen(p, "w");
    for (int i = 0; i < 1000; i++) {
        fputs("this is not a database ", fp);
    }
    fclose(fp);
    o.path = p;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_ECORRUPT);
    assert_non_null(strstr(err.message, "garbage.db"));
    assert_non_null(strstr(err.message, "not a database"));

    /* A folder that cannot exist: its parent is a regular file. */
    snprintf(p, sizeof(p), "%s/garbage.db/sub/x.db", f->dir);
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "cannot open"));
    o.path = NULL;
    snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
    o.data_dir = p;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "not a directory"));
    snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "cannot create data dir"));

    /* A missing data folder is created, private. */
    snprintf(p, sizeof(p), "%s/data", f->dir);
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_OK);
    assert_string_equal(cgw_store_kind(s), "sqlite");
    cgw_store_free(s);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char db[300];
    snprintf(db, sizeof(db), "%s/gateway.db", p);
    assert_int_equal(stat(db, &st), 0);
    unlink(db);
    rmdir(p);

    /* Read-only on a file that does not exist. */
    o.data_dir = NULL;
    snprintf(p, sizeof(p), "%s/absent.db", f->dir);
    o.path = p;
    o.read_only = true;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, &err), CGW_ESTORE);

    /* A database written by a newer version is refused, not downgraded. */
    long long ignored;
    assert_int_equal(raw_query_int(f->path,
                                   "INSERT INTO schema_version(version, applied_at) VALUES(99, 0)",
                                   &ignored),
                     SQLITE_OK);
    cgw_store_free(f->store);
    f->store = NULL;
    assert_int_equal(st_open_sqlite_at(f->ctx, f->path, true, false, &s, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "newer"));
    assert_string_equal(cgw_store_kind(NULL), "none");
}

static void test_sqlite_failed_commit_is_kept(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, rid);
    cgw_store_free(f->store);
    f->store = NULL;
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    o.path = f->path;
    o.busy_timeout_ms = 20;
    o.max_pending_events = 4;
    o.max_pending_bytes = 1000;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &f->store, NULL), CGW_OK);

    /* Past the cap, an append commits the queue itself. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    }
    long long n = 0;
    assert_int_equal(raw_query_int(f->path, "SELECT count(*) FROM events", &n), SQLITE_OK);
    assert_true(n >= 8 && n < 10);

    /* Another connection holds the write lock: the loop's commit fails and keeps the queue. */
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    event_base_loop(cgw_ctx_base(f->ctx), EVLOOP_NONBLOCK);
    cgw_error_t err;
    assert_int_equal(cgw_store_flush(f->store, &err), CGW_EBUSY);
    assert_non_null(strstr(err.message, "locked"));
    uint64_t last = 0;
    assert_int_equal(cgw_store_event_last_seq(f->store, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 11);
    /* Appends go on queueing meanwhile, with the right seqs. */
    uint64_t seq = 0;
    assert_int_equal(st_append_text(f->store, "t", rid, 0, &seq), CGW_OK);
    assert_int_equal(seq, 12);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* The lock is gone: the retry commits everything, once, in order. */
    assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
    struct st_collected c;
    assert_int_equal(st_read_all(f->store, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 12);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }

    /* An event larger than the queue's byte cap is written at once, after what was queued. */
    assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    char big[2000];
    memset(big, 'x', sizeof(big));
    cgw_store_event_t ev = {0, 3.5, "tool_result", big, sizeof(big)};
    assert_int_equal(cgw_store_event_append(f->store, "t", rid, &ev, &seq, NULL), CGW_OK);
    assert_int_equal(seq, 14);
    assert_int_equal(raw_query_int(f->path, "SELECT max(seq) FROM events", &n), SQLITE_OK);
    assert_int_equal(n, 14);
}

static void test_sqlite_exclusive(void **state)
{
    struct st_fx *f = *state;
    cgw_store_free(f->store);
    f->store = NULL;
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    o.path = f->path;
    o.exclusive = true;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &f->store, NULL), CGW_OK);
    char sid[CGW_STORE_ID_MAX];
    st_new_session(f->store, "t", sid);
    /* Nobody else gets in while it is open, not even to read. */
    cgw_store_t *other = NULL;
    cgw_error_t err;
    o.exclusive = false;
    o.read_only = true;
    o.busy_timeout_ms = 10;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &other, &err), CGW_EBUSY);
    assert_null(other);
    assert_non_null(strstr(err.message, "locked"));
    cgw_store_free(f->store);
    f->store = NULL;
    /* Closed: the data is there for the next one. */
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &other, NULL), CGW_OK);
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_get(other, "t", sid, &rec, NULL), CGW_OK);
    cgw_store_session_clear(&rec);
    cgw_store_free(other);
}

static void test_sqlite_sync_modes_and_damage(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, rid);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    }
    cgw_store_free(f->store);
    f->store = NULL;
    /* Every synchronous mode opens the same file and sees the same data. */
    cgw_store_sync_t modes[] = {CGW_STORE_SYNC_FULL, CGW_STORE_SYNC_OFF, CGW_STORE_SYNC_NORMAL};
    for (size_t i = 0; i < 3; i++) {
        cgw_store_sqlite_options_t o;
        cgw_store_sqlite_options_init(&o);
        o.path = f->path;
        o.sync = modes[i];
        cgw_store_t *s = NULL;
        assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &s, NULL), CGW_OK);
        uint64_t seq = 0;
        assert_int_equal(st_append_text(s, "t", rid, 0, &seq), CGW_OK);
        assert_int_equal(seq, 301 + i);
        cgw_store_free(s);
    }
    /* Damage every page but the first (the store was closed, so the WAL is checkpointed into
     * the file): the damage is reported as such, at open or at the first read. */
    int fd = open(f->path, O_WRONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_size > 8192);
    char junk[4096];
    memset(junk, 0xA5, sizeof(junk));
    for (off_t off = 4096; off < st.st_size; off += (off_t)sizeof(junk)) {
        assert_int_equal(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
    }
    close(fd);
    cgw_error_t err;
    cgw_store_t *s = NULL;
    int rc = st_open_sqlite_at(f->ctx, f->path, true, false, &s, &err);
    if (rc == CGW_OK) {
        struct st_collected c;
        memset(&c, 0, sizeof(c));
        rc = cgw_store_event_read(s, "t", rid, 0, 0, st_collect_event, &c, &err);
        cgw_store_free(s);
    }
    assert_int_equal(rc, CGW_ECORRUPT);
    assert_non_null(strstr(err.message, "malformed"));
}

/* ---- allocation failures -------------------------------------------------------------------- */

/* Child role "alloc-fail": with allocator hooks that fail once a budget is spent, run the same
 * scenario for every budget from 0 up, and check after each that the store answered only
 * CGW_OK or CGW_ENOMEM, kept exactly what it acknowledged, and (under ASan) leaked nothing. The
 * hooks are process-wide and must be set before any allocation, hence a child process. */
static long alloc_budget = -1; /* -1: unlimited */
static int alloc_enomem;       /* CGW_ENOMEM answers seen by the current scenario */
static int alloc_refused;      /* allocations refused in the current scenario */

static void *budget_malloc(size_t n)
{
    if (alloc_budget == 0) {
        alloc_refused++;
        return NULL;
    }
    alloc_budget -= alloc_budget > 0;
    return malloc(n);
}

static void *budget_realloc(void *p, size_t n)
{
    if (alloc_budget == 0) {
        alloc_refused++;
        return NULL;
    }
    alloc_budget -= alloc_budget > 0;
    return realloc(p, n);
}

#define ALLOC_OK(rc) ((rc) == CGW_OK || ((rc) == CGW_ENOMEM && ++alloc_enomem))

/* What the scenario was told succeeded. */
struct alloc_log {
    uint64_t acked, msgs;
    bool session[12], run[12];
    int bad; /* an answer other than CGW_OK or CGW_ENOMEM */
};

/* Every kind of write, under the budget: event batches, messages, sessions (with the caller's
 * record), runs, and a recovery with its final events. */
static void alloc_ops(cgw_store_t *s, struct alloc_log *log)
{
    for (int i = 0; i < 12; i++) {
        cgw_store_event_t evs[2] = {{0, 1, "text_delta", "{\"a\":1}", 7},
                                    {0, 2, "text_delta", "{\"b\":2}", 7}};
        size_t n = 1 + (size_t)(i % 2);
        int rc = cgw_store_event_append_batch(s, "t", "run_a", evs, n, NULL, NULL);
        log->bad |= !ALLOC_OK(rc);
        log->acked += rc == CGW_OK ? n : 0;
        rc = cgw_store_message_append(s, "t", "sess_a", "{\"m\":1}", 7, NULL, NULL);
        log->bad |= !ALLOC_OK(rc);
        log->msgs += rc == CGW_OK;
        char id[16];
        snprintf(id, sizeof(id), "sess_%d", i);
        cgw_store_session_t rec;
        rc = cgw_store_session_create(s, "t", id, "{}", 2, &rec, NULL);
        log->bad |= !ALLOC_OK(rc) || (rc == CGW_OK && strcmp(rec.id, id) != 0);
        log->session[i] = rc == CGW_OK;
        cgw_store_session_clear(&rec);
        snprintf(id, sizeof(id), "run_%d", i);
        rc = cgw_store_run_create(s, "t", "sess_a", id, NULL, NULL);
        log->bad |= !ALLOC_OK(rc);
        log->run[i] = rc == CGW_OK;
    }
    struct st_builder bld = {0};
    int rc = cgw_store_recover(s, "error", st_build_error, &bld, NULL, NULL);
    log->bad |= !ALLOC_OK(rc);
}

/* With no budget: everything acknowledged is there, nothing else, and a recovery finishes
 * what the limited one did not, each run ending with exactly one final event. */
static int alloc_check(cgw_store_t *s, const struct alloc_log *log)
{
    uint64_t count = 0;
    if (log->bad || cgw_store_flush(s, NULL) != CGW_OK ||
        cgw_store_message_count(s, "t", "sess_a", &count, NULL) != CGW_OK || count != log->msgs) {
        return 13;
    }
    for (int i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof(id), "sess_%d", i);
        cgw_store_run_t r;
        if ((cgw_store_message_count(s, "t", id, &count, NULL) == CGW_OK) != log->session[i]) {
            return 18;
        }
        snprintf(id, sizeof(id), "run_%d", i);
        if ((cgw_store_run_get(s, "t", id, &r, NULL) == CGW_OK) != log->run[i]) {
            return 19;
        }
    }
    struct st_builder bld = {0};
    cgw_store_run_t r;
    static struct st_collected c;
    if (cgw_store_recover(s, "error", st_build_error, &bld, NULL, NULL) != CGW_OK ||
        cgw_store_run_get(s, "t", "run_a", &r, NULL) != CGW_OK || r.status != CGW_RUN_INTERRUPTED ||
        r.last_seq != log->acked + 1 || st_read_all(s, "t", "run_a", 0, 0, &c) != CGW_OK ||
        (uint64_t)c.n != log->acked + 1) {
        return 14;
    }
    for (int k = 0; k < c.n; k++) {
        if (c.seqs[k] != (uint64_t)k + 1) {
            return 15;
        }
    }
    return 0;
}

/* Runs the scenario under `budget`; returns 0 when every answer and the final state agree. */
static int alloc_scenario(cgw_ctx_t *ctx, const char *path, long budget)
{
    cgw_store_t *s = NULL;
    if (path != NULL) {
        unlink(path);
        if (st_open_sqlite_at(ctx, path, true, false, &s, NULL) != CGW_OK) {
            return 10;
        }
    } else if (cgw_store_open_memory(ctx, &s) != CGW_OK) {
        return 11;
    }
    if (cgw_store_session_create(s, "t", "sess_a", NULL, 0, NULL, NULL) != CGW_OK ||
        cgw_store_run_create(s, "t", "sess_a", "run_a", NULL, NULL) != CGW_OK) {
        return 12;
    }
    struct alloc_log log;
    memset(&log, 0, sizeof(log));
    alloc_budget = budget;
    alloc_ops(s, &log);
    alloc_budget = -1;
    int rc = alloc_check(s, &log);
    cgw_store_free(s);
    return rc;
}

static int child_alloc_fail(const char *kind, const char *path)
{
    if (cgw_set_allocator(budget_malloc, budget_realloc, free) != CGW_OK) {
        return 2;
    }
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    if (ctx == NULL) {
        return 3;
    }
    cgw_ctx_set_log_level(ctx, CGW_LOG_OFF); /* a failed group commit would log */
    /* Every budget until one is large enough for the whole scenario (no allocation refused):
     * each smaller one failed the allocations from that point on, and each answer and the
     * state after were checked. */
    long budget = 0;
    int answered_enomem = 0;
    for (;; budget++) {
        alloc_enomem = alloc_refused = 0;
        int rc = alloc_scenario(ctx, strcmp(kind, "sqlite") == 0 ? path : NULL, budget);
        if (rc != 0) {
            fprintf(stderr, "alloc-fail %s: budget %ld: failure %d\n", kind, budget, rc);
            return rc;
        }
        if (alloc_refused == 0) {
            break;
        }
        answered_enomem += alloc_enomem > 0;
        if (budget > 5000) {
            return 17;
        }
    }
    fprintf(stderr, "alloc-fail %s: %ld allocations; %d of the %ld smaller budgets got ENOMEM\n",
            kind, budget, answered_enomem, budget);
    if (budget < 20 || answered_enomem != budget) {
        return 16;
    }
    cgw_ctx_free(ctx);
    return 0;
}

static void run_alloc_child(struct st_fx *f, const char *kind)
{
    const char *argv[] = {"test_store", "alloc-fail", kind, f->path, NULL};
    pid_t pid = spawn_self(argv);
    assert_true(pid > 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_alloc_failures_memory(void **state)
{
    run_alloc_child(*state, "memory");
}

static void test_alloc_failures_sqlite(void **state)
{
    struct st_fx *f = *state;
    cgw_store_free(f->store); /* the child opens the file */
    f->store = NULL;
    run_alloc_child(f, "sqlite");
}

#define SQLITE_TESTS                                                                               \
    cmocka_unit_test_setup_teardown(test_memory_and_sqlite_agree, st_setup_sqlite_group,           \
                                    st_teardown),                                                  \
        cmocka_unit_test_setup_teardown(test_sqlite_reopen_keeps_everything,                       \
                                        st_setup_sqlite_group, st_teardown),                       \
        cmocka_unit_test_setup_teardown(test_sqlite_group_commit_on_loop, st_setup_sqlite_group,   \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_kill_group_commit, st_setup_sqlite_group,      \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_kill_group_commit_by_loop,                     \
                                        st_setup_sqlite_group, st_teardown),                       \
        cmocka_unit_test_setup_teardown(test_sqlite_kill_commit_per_append,                        \
                                        st_setup_sqlite_direct, st_teardown),                      \
        cmocka_unit_test_setup_teardown(test_sqlite_concurrent_reader, st_setup_sqlite_group,      \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_failed_commit_is_kept, st_setup_sqlite_group,  \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_exclusive, st_setup_sqlite_group,              \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_sync_modes_and_damage, st_setup_sqlite_group,  \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_alloc_failures_memory, st_setup_sqlite_group,         \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_alloc_failures_sqlite, st_setup_sqlite_group,         \
                                        st_teardown),                                              \
        cmocka_unit_test_setup_teardown(test_sqlite_bad_paths, st_setup_sqlite_group, st_teardown)

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "child-writer") == 0) {
        return child_writer(argv[2], argv[3], atoi(argv[4]));
    }
    if (argc == 4 && strcmp(argv[1], "alloc-fail") == 0) {
        return child_alloc_fail(argv[2], argv[3]);
    }
    if (argc == 6 && strcmp(argv[1], "child-reader") == 0) {
        return child_reader(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
    }
    const struct CMUnitTest tests[] = {SQLITE_TESTS};
    return cmocka_run_group_tests_name("store: sqlite files", tests, NULL, NULL);
}
