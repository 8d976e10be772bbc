/* The SQLite store: one connection (the only writer), WAL, cached statements, and a group
 * commit queue for event appends.
 *
 * Group commit. An append is checked (run exists, belongs to the tenant, seq is next) and
 * queued; the first append after a commit activates `commit_ev`, which libevent runs in the
 * same loop iteration after the callbacks already active, so every event appended by one
 * burst of callbacks is committed in one transaction (one WAL write). Anything that must see
 * or order against those events (any read, any other write, cgw_store_flush, closing) commits
 * the queue first, so readers always see every append that returned, and a run's status can
 * never be durable before its events. When the queue passes its caps, the append commits it
 * first. A failed deferred commit keeps the queue (it is retried by the next flush) and is
 * logged; a failed explicit flush returns the error. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "store/sqlite_int.h"

/* ---- binding and reading helpers ------------------------------------------------------------ */

static int bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
    return sqlite3_bind_text64(st, i, s, (sqlite3_uint64)len, SQLITE_STATIC, SQLITE_UTF8);
}

static int bind_str(sqlite3_stmt *st, int i, const char *s)
{
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Reports a failed bind (its code is sticky on the statement). */
static int bound(sq_store_t *sq, sqlite3_stmt *st, int rc, cgw_error_t *err)
{
    if (rc == SQLITE_OK) {
        return CGW_OK;
    }
    sqlite3_clear_bindings(st);
    return cgw__sq_fail(sq, rc, "bind", err);
}

static const char *col_str(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static void finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement expected to return at most one row: CGW_OK with a row, CGW_ENOENT with
 * none (no err message), or a mapped error. The caller reads the row, then calls finish(). */
static int step_row(sq_store_t *sq, sqlite3_stmt *st, const char *what, cgw_error_t *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        return CGW_OK;
    }
    if (rc == SQLITE_DONE) {
        finish(st);
        return CGW_ENOENT;
    }
    int code = cgw__sq_fail(sq, rc, what, err);
    finish(st);
    return code;
}

/* Runs `which` with ?1 = id and steps to its one row, which must belong to `tenant` (in column
 * `tenant_col`). CGW_OK with the row ready to read (then call finish), CGW_ENOENT ("no <what>
 * <id>") when there is no row or it is another tenant's, or a mapped error. */
static int fetch_owned(sq_store_t *sq, enum cgw_sqlite_stmt which, const char *id, int tenant_col,
                       const char *tenant, const char *what, sqlite3_stmt **out, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, which, &st, err);
    rc = rc ? rc : bound(sq, st, bind_str(st, 1, id), err);
    rc = rc ? rc : step_row(sq, st, what, err);
    if (rc == CGW_OK && strcmp(col_str(st, tenant_col), tenant) != 0) {
        finish(st);
        rc = CGW_ENOENT;
    }
    if (rc == CGW_ENOENT) {
        return cgw__store_enoent(err, what, id);
    }
    *out = st;
    return rc;
}

/* Steps a bound statement to its end, calling `fn` on each row, and resets it; stops at the
 * first value other than CGW_OK and returns it. The visitors below call the user's callbacks
 * while the statement is open: those cannot call into the store (the re-entry guard), so a
 * read stays one short statement and never holds a snapshot across other work. */
typedef int (*row_fn)(sqlite3_stmt *st, void *arg);

static int each_row(sq_store_t *sq, sqlite3_stmt *st, row_fn fn, void *arg, const char *what,
                    cgw_error_t *err)
{
    int rc = CGW_OK, step = SQLITE_DONE;
    while (rc == CGW_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(st, arg);
    }
    if (rc == CGW_OK && step != SQLITE_DONE) {
        rc = cgw__sq_fail(sq, step, what, err);
    }
    finish(st);
    return rc;
}

/* The user's callback for each_row's visitors. */
struct visit {
    union {
        cgw_store_event_cb event;
        cgw_store_session_cb session;
        cgw_store_run_cb run;
        cgw_store_message_cb message;
    } cb;
    void *user;
};

static void read_run(sqlite3_stmt *st, cgw_store_run_t *r)
{
    memset(r, 0, sizeof(*r));
    cgw__store_copy(r->id, sizeof(r->id), col_str(st, 0));
    cgw__store_copy(r->session_id, sizeof(r->session_id), col_str(st, 1));
    cgw__store_copy(r->tenant, sizeof(r->tenant), col_str(st, 2));
    (void)cgw_run_status_parse(col_str(st, 3), &r->status); /* CHECK constraint keeps it valid */
    r->created_at = sqlite3_column_double(st, 4);
    r->updated_at = sqlite3_column_double(st, 5);
    r->ended_at = sqlite3_column_double(st, 6);
    r->last_seq = (uint64_t)sqlite3_column_int64(st, 7);
}

/* Session row (id, tenant, settings, created, updated, count) with settings borrowed. */
static void read_session(sqlite3_stmt *st, cgw_store_session_t *s)
{
    memset(s, 0, sizeof(*s));
    cgw__store_copy(s->id, sizeof(s->id), col_str(st, 0));
    cgw__store_copy(s->tenant, sizeof(s->tenant), col_str(st, 1));
    s->settings = (char *)col_str(st, 2);
    s->settings_len = (size_t)sqlite3_column_bytes(st, 2);
    s->created_at = sqlite3_column_double(st, 3);
    s->updated_at = sqlite3_column_double(st, 4);
    s->message_count = (uint64_t)sqlite3_column_int64(st, 5);
}

static int event_row(sqlite3_stmt *st, void *arg)
{
    struct visit *v = arg;
    cgw_store_event_t ev = {(uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_double(st, 1),
                            col_str(st, 2), col_str(st, 3), (size_t)sqlite3_column_bytes(st, 3)};
    return v->cb.event(&ev, v->user);
}

static int session_row(sqlite3_stmt *st, void *arg)
{
    struct visit *v = arg;
    cgw_store_session_t rec;
    read_session(st, &rec);
    return v->cb.session(&rec, v->user);
}

static int run_row(sqlite3_stmt *st, void *arg)
{
    struct visit *v = arg;
    cgw_store_run_t r;
    read_run(st, &r);
    return v->cb.run(&r, v->user);
}

static int message_row(sqlite3_stmt *st, void *arg)
{
    struct visit *v = arg;
    return v->cb.message((uint64_t)sqlite3_column_int64(st, 0), col_str(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1), v->user);
}

/* ---- the run cache --------------------------------------------------------------------------- */

#define RUN_CACHE_MAX 4096

static void cache_clear(sq_store_t *sq)
{
    for (size_t i = 0; i < sq->runs.cap; i++) {
        cgw_free(sq->runs.slots[i].value);
    }
    cgw__map_free(&sq->runs);
}

static void cache_forget(sq_store_t *sq, const char *run_id)
{
    cgw_free(cgw__map_del(&sq->runs, run_id));
}

/* Looks up a run's status and last seq in the database. CGW_ENOENT for a missing run or
 * another tenant's. */
static int lookup_run(sq_store_t *sq, const char *tenant, const char *id, cgw_run_status_t *status,
                      uint64_t *last, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = fetch_owned(sq, ST_RUN_LOOKUP, id, 0, tenant, "run", &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (status != NULL) {
        (void)cgw_run_status_parse(col_str(st, 1), status);
    }
    *last = (uint64_t)sqlite3_column_int64(st, 2);
    finish(st);
    return CGW_OK;
}

static int commit_queue(sq_store_t *sq, cgw_error_t *err);

/* The cache entry of a run owned by `tenant`, loaded from the database on a miss. A full cache
 * is emptied, after committing the queue (whose seqs only the cache knows). */
static int cached_run(sq_store_t *sq, const char *tenant, const char *run_id,
                      struct run_entry **out, cgw_error_t *err)
{
    struct run_entry *re = cgw__map_get(&sq->runs, run_id);
    if (re != NULL) {
        *out = re;
        return strcmp(re->tenant, tenant) == 0 ? CGW_OK : cgw__store_enoent(err, "run", run_id);
    }
    if (sq->runs.len >= RUN_CACHE_MAX) {
        int rc = commit_queue(sq, err);
        if (rc != CGW_OK) {
            return rc;
        }
        cache_clear(sq);
    }
    uint64_t last = 0;
    int rc = lookup_run(sq, tenant, run_id, NULL, &last, err);
    if (rc != CGW_OK) {
        return rc;
    }
    re = cgw__calloc(1, sizeof(*re));
    if (re != NULL) {
        cgw__store_copy(re->id, sizeof(re->id), run_id);
        cgw__store_copy(re->tenant, sizeof(re->tenant), tenant);
        re->last_seq = last;
    }
    if (re == NULL || cgw__map_put(&sq->runs, re->id, re) != CGW_OK) {
        cgw_free(re);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory caching a run");
    }
    *out = re;
    return CGW_OK;
}

/* ---- the group-commit queue ----------------------------------------------------------------- */

static void drop_queue(sq_store_t *sq)
{
    for (size_t i = 0; i < sq->npend; i++) {
        cgw_free(sq->pend[i]);
    }
    sq->npend = 0;
    sq->pend_bytes = 0;
}

static int insert_event(sq_store_t *sq, const char *run_id, uint64_t seq, double ts,
                        const char *type, const char *json, size_t len, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, ST_EVENT_INSERT, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, run_id);
    b = b ? b : sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    b = b ? b : sqlite3_bind_double(st, 3, ts);
    b = b ? b : bind_str(st, 4, type);
    b = b ? b : bind_text(st, 5, json, len);
    rc = bound(sq, st, b, err);
    return rc != CGW_OK ? rc : cgw__sq_exec_stmt(sq, st, "append event", err);
}

/* Commits every queued event in one transaction. On failure the queue is kept. */
static int commit_queue(sq_store_t *sq, cgw_error_t *err)
{
    if (sq->npend == 0) {
        return CGW_OK;
    }
    int rc = cgw__sq_simple(sq, ST_BEGIN, err);
    if (rc != CGW_OK) {
        return rc;
    }
    for (size_t i = 0; rc == CGW_OK && i < sq->npend; i++) {
        struct pend_event *e = sq->pend[i];
        rc = insert_event(sq, e->run_id, e->seq, e->ts, e->type, e->bytes, e->json_len, err);
    }
    rc = cgw__sq_end(sq, rc, err);
    if (rc == CGW_OK) {
        drop_queue(sq);
    }
    return rc;
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sq_store_t *sq = arg;
    sq->commit_scheduled = false;
    cgw_error_t e;
    cgw_error_clear(&e);
    if (commit_queue(sq, &e) != CGW_OK) {
        CGW_ERROR(sq->base.ctx, "store", "group commit of %zu events failed (kept, will retry): %s",
                  sq->npend, e.message);
    }
}

static int sq_flush(cgw_store_t *s, cgw_error_t *err)
{
    return commit_queue((sq_store_t *)s, err);
}

/* Queues checked events. All or nothing: CGW_OK or CGW_ENOMEM. */
static int enqueue(sq_store_t *sq, const char *run_id, const cgw_store_event_t *evs,
                   const uint64_t *seqs, size_t n, cgw_error_t *err)
{
    size_t want = sq->npend + n;
    if (want > sq->pend_cap) {
        size_t cap = sq->pend_cap ? sq->pend_cap : 64;
        while (cap < want) {
            cap *= 2;
        }
        struct pend_event **p = cgw__realloc(sq->pend, cap * sizeof(*p));
        if (p == NULL) {
            return cgw_error_set(err, CGW_ENOMEM, "out of memory queueing events");
        }
        sq->pend = p;
        sq->pend_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        size_t tlen = strlen(evs[i].type);
        struct pend_event *e = cgw__malloc(sizeof(*e) + evs[i].json_len + tlen + 2);
        if (e == NULL) {
            for (size_t j = 0; j < i; j++) {
                cgw_free(sq->pend[sq->npend + j]);
            }
            return cgw_error_set(err, CGW_ENOMEM, "out of memory queueing events");
        }
        cgw__store_copy(e->run_id, sizeof(e->run_id), run_id);
        e->seq = seqs[i];
        e->ts = evs[i].ts;
        e->json_len = evs[i].json_len;
        memcpy(e->bytes, evs[i].json, evs[i].json_len);
        e->bytes[evs[i].json_len] = '\0';
        memcpy(e->bytes + evs[i].json_len + 1, evs[i].type, tlen + 1);
        e->type = e->bytes + evs[i].json_len + 1;
        sq->pend[sq->npend + i] = e;
        sq->pend_bytes += evs[i].json_len;
    }
    sq->npend += n;
    return CGW_OK;
}

static int append_queued(sq_store_t *sq, const char *tenant, const char *run_id,
                         const cgw_store_event_t *evs, size_t n, size_t bytes, uint64_t *seqs,
                         cgw_error_t *err)
{
    int rc = CGW_OK;
    if (sq->npend > 0 && (sq->npend + n > sq->max_pending_events ||
                          sq->pend_bytes + bytes > sq->max_pending_bytes)) {
        rc = commit_queue(sq, err);
    }
    struct run_entry *re = NULL;
    rc = rc ? rc : cached_run(sq, tenant, run_id, &re, err);
    rc = rc ? rc : cgw__store_assign_seqs(run_id, re->last_seq, evs, n, seqs, err);
    rc = rc ? rc : enqueue(sq, run_id, evs, seqs, n, err);
    if (rc != CGW_OK) {
        return rc;
    }
    re->last_seq = seqs[n - 1];
    if (!sq->commit_scheduled) {
        event_active(sq->commit_ev, EV_TIMEOUT, 0);
        sq->commit_scheduled = true;
    }
    return CGW_OK;
}

/* Inserts checked events inside the caller's transaction. */
static int insert_events(sq_store_t *sq, const char *run_id, const cgw_store_event_t *evs,
                         const uint64_t *seqs, size_t n, cgw_error_t *err)
{
    int rc = CGW_OK;
    for (size_t i = 0; rc == CGW_OK && i < n; i++) {
        rc = insert_event(sq, run_id, seqs[i], evs[i].ts, evs[i].type, evs[i].json, evs[i].json_len,
                          err);
    }
    return rc;
}

static int append_direct(sq_store_t *sq, const char *tenant, const char *run_id,
                         const cgw_store_event_t *evs, size_t n, uint64_t *seqs, cgw_error_t *err)
{
    struct run_entry *re = NULL;
    int rc = cached_run(sq, tenant, run_id, &re, err);
    rc = rc ? rc : cgw__store_assign_seqs(run_id, re->last_seq, evs, n, seqs, err);
    if (rc != CGW_OK) {
        return rc;
    }
    /* One event needs no explicit transaction: the INSERT commits on its own. */
    rc = n == 1 ? CGW_OK : cgw__sq_simple(sq, ST_BEGIN, err);
    if (rc != CGW_OK) {
        return rc;
    }
    rc = insert_events(sq, run_id, evs, seqs, n, err);
    rc = n == 1 ? rc : cgw__sq_end(sq, rc, err);
    if (rc == CGW_OK) {
        re->last_seq = seqs[n - 1];
    }
    return rc;
}

static int sq_event_append(cgw_store_t *s, const char *tenant, const char *run_id,
                           const cgw_store_event_t *events, size_t n, uint64_t *first_seq,
                           cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    if (sq->read_only) {
        /* Refused here: queued, it would only fail later, at commit. */
        return cgw_error_set(err, CGW_ESTORE, "%s is open read-only", sq->path);
    }
    uint64_t one, *seqs = n == 1 ? &one : cgw__calloc(n, sizeof(*seqs));
    if (seqs == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory appending events");
    }
    /* A batch larger than the queue's byte cap is written at once (after the queue): a
     * failure to write it (too big for SQLite) is then the caller's answer, and can never
     * leave a queue that no commit gets past. */
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += events[i].json_len;
    }
    bool queue = sq->group_commit && bytes <= sq->max_pending_bytes;
    int rc = queue ? CGW_OK : commit_queue(sq, err);
    if (rc == CGW_OK) {
        rc = queue ? append_queued(sq, tenant, run_id, events, n, bytes, seqs, err)
                   : append_direct(sq, tenant, run_id, events, n, seqs, err);
    }
    if (rc == CGW_OK) {
        *first_seq = seqs[0];
    }
    if (seqs != &one) {
        cgw_free(seqs);
    }
    return rc;
}

/* A cached statement for a read or write that must see (or follow) every queued event: the
 * queue is committed first. */
static int fresh_stmt(sq_store_t *sq, enum cgw_sqlite_stmt which, sqlite3_stmt **out,
                      cgw_error_t *err)
{
    int rc = commit_queue(sq, err);
    return rc ? rc : cgw__sq_stmt(sq, which, out, err);
}

/* Starts a write transaction, after committing the queue: a write must never become durable
 * before events appended earlier. End it with cgw__sq_end. */
static int begin_write(sq_store_t *sq, cgw_error_t *err)
{
    int rc = commit_queue(sq, err);
    return rc ? rc : cgw__sq_simple(sq, ST_BEGIN, err);
}

static int sq_event_read(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t after,
                         size_t limit, cgw_store_event_cb cb, void *user, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    struct run_entry *re = NULL;
    int rc = commit_queue(sq, err);
    rc = rc ? rc : cached_run(sq, tenant, run_id, &re, err);
    sqlite3_stmt *st = NULL;
    rc = rc ? rc : cgw__sq_stmt(sq, ST_EVENT_READ, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, run_id);
    b = b ? b : sqlite3_bind_int64(st, 2, (sqlite3_int64)(after > INT64_MAX ? INT64_MAX : after));
    b = b ? b : sqlite3_bind_int64(st, 3, limit == 0 ? -1 : (sqlite3_int64)limit);
    rc = bound(sq, st, b, err);
    struct visit v = {.cb.event = cb, .user = user};
    return rc ? rc : each_row(sq, st, event_row, &v, "read events", err);
}

static int sq_event_last_seq(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t *out,
                             cgw_error_t *err)
{
    /* The cache counts queued events too: no need to commit for this. */
    struct run_entry *re = NULL;
    int rc = cached_run((sq_store_t *)s, tenant, run_id, &re, err);
    if (rc == CGW_OK) {
        *out = re->last_seq;
    }
    return rc;
}

/* ---- sessions ------------------------------------------------------------------------------- */

/* Checks that session `id` exists and belongs to `tenant`; its message count to `count`. */
static int session_owner(sq_store_t *sq, const char *tenant, const char *id, uint64_t *count,
                         cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = fetch_owned(sq, ST_SESS_OWNER, id, 0, tenant, "session", &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    if (count != NULL) {
        *count = (uint64_t)sqlite3_column_int64(st, 1);
    }
    finish(st);
    return CGW_OK;
}

static int read_one_session(sq_store_t *sq, const char *tenant, const char *id,
                            cgw_store_session_t *out, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = fetch_owned(sq, ST_SESS_GET, id, 1, tenant, "session", &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    read_session(st, out);
    out->settings = cgw__memdup(out->settings, out->settings_len);
    finish(st);
    return out->settings ? CGW_OK : cgw_error_set(err, CGW_ENOMEM, "out of memory");
}

static int sq_session_create(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                             double now, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = fresh_stmt(sq, ST_SESS_INSERT, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, id);
    b = b ? b : bind_str(st, 2, tenant);
    b = b ? b : bind_text(st, 3, settings.ptr, settings.len);
    b = b ? b : sqlite3_bind_double(st, 4, now);
    rc = bound(sq, st, b, err);
    rc = rc ? rc : cgw__sq_exec_stmt(sq, st, "create session", err);
    if (rc == CGW_EEXIST) {
        return cgw_error_set(err, CGW_EEXIST, "session %s already exists", id);
    }
    return rc;
}

static int sq_session_get(cgw_store_t *s, const char *tenant, const char *id,
                          cgw_store_session_t *out, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = commit_queue(sq, err);
    return rc ? rc : read_one_session(sq, tenant, id, out, err);
}

static int sq_session_list(cgw_store_t *s, const char *tenant, uint64_t offset, uint64_t limit,
                           cgw_store_session_cb cb, void *user, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = fresh_stmt(sq, ST_SESS_LIST, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, tenant);
    b = b ? b
          : sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (sqlite3_int64)limit);
    b = b ? b : sqlite3_bind_int64(st, 3, offset > INT64_MAX ? INT64_MAX : (sqlite3_int64)offset);
    rc = bound(sq, st, b, err);
    struct visit v = {.cb.session = cb, .user = user};
    return rc ? rc : each_row(sq, st, session_row, &v, "list sessions", err);
}

static int sq_session_count(cgw_store_t *s, const char *tenant, uint64_t *out, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = fresh_stmt(sq, ST_SESS_COUNT, &st, err);
    rc = rc ? rc : bound(sq, st, bind_str(st, 1, tenant), err);
    rc = rc ? rc : step_row(sq, st, "count sessions", err);
    if (rc != CGW_OK) {
        return rc;
    }
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    finish(st);
    return CGW_OK;
}

static int sq_session_update(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                             double now, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    rc = session_owner(sq, tenant, id, NULL, err);
    rc = rc ? rc : cgw__sq_stmt(sq, ST_SESS_UPDATE, &st, err);
    if (rc == CGW_OK) {
        int b = bind_str(st, 1, id);
        b = b ? b : bind_text(st, 2, settings.ptr, settings.len);
        b = b ? b : sqlite3_bind_double(st, 3, now);
        rc = bound(sq, st, b, err);
        rc = rc ? rc : cgw__sq_exec_stmt(sq, st, "update session", err);
    }
    return cgw__sq_end(sq, rc, err);
}

/* Runs one of the "DELETE ... WHERE session_id = ?1" statements. */
static int delete_by_session(sq_store_t *sq, enum cgw_sqlite_stmt which, const char *id,
                             cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, which, &st, err);
    rc = rc ? rc : bound(sq, st, bind_str(st, 1, id), err);
    return rc ? rc : cgw__sq_exec_stmt(sq, st, "delete session", err);
}

static int sq_session_delete(cgw_store_t *s, const char *tenant, const char *id, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    rc = session_owner(sq, tenant, id, NULL, err);
    static const enum cgw_sqlite_stmt steps[] = {ST_EVENTS_DELETE_SESSION, ST_RUNS_DELETE_SESSION,
                                                 ST_MSGS_DELETE_SESSION, ST_SESS_DELETE};
    for (size_t i = 0; rc == CGW_OK && i < sizeof(steps) / sizeof(steps[0]); i++) {
        rc = delete_by_session(sq, steps[i], id, err);
    }
    cache_clear(sq); /* its runs are gone, and their ids may be reused */
    return cgw__sq_end(sq, rc, err);
}

/* ---- conversation --------------------------------------------------------------------------- */

static int set_message_count(sq_store_t *sq, const char *id, uint64_t count, double now,
                             cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, ST_SESS_SET_COUNT, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, id);
    b = b ? b : sqlite3_bind_int64(st, 2, (sqlite3_int64)count);
    b = b ? b : sqlite3_bind_double(st, 3, now);
    rc = bound(sq, st, b, err);
    return rc ? rc : cgw__sq_exec_stmt(sq, st, "update session", err);
}

static int sq_message_append(cgw_store_t *s, const char *tenant, const char *sid, cgw_str_t json,
                             double now, uint64_t *index, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    uint64_t n = 0;
    sqlite3_stmt *st = NULL;
    rc = session_owner(sq, tenant, sid, &n, err);
    rc = rc ? rc : cgw__sq_stmt(sq, ST_MSG_INSERT, &st, err);
    if (rc == CGW_OK) {
        int b = bind_str(st, 1, sid);
        b = b ? b : sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
        b = b ? b : bind_text(st, 3, json.ptr, json.len);
        rc = bound(sq, st, b, err);
        rc = rc ? rc : cgw__sq_exec_stmt(sq, st, "append message", err);
    }
    rc = rc ? rc : set_message_count(sq, sid, n + 1, now, err);
    rc = cgw__sq_end(sq, rc, err);
    if (rc == CGW_OK) {
        *index = n;
    }
    return rc;
}

static int sq_message_load(cgw_store_t *s, const char *tenant, const char *sid,
                           cgw_store_message_cb cb, void *user, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = commit_queue(sq, err);
    rc = rc ? rc : session_owner(sq, tenant, sid, NULL, err);
    rc = rc ? rc : cgw__sq_stmt(sq, ST_MSG_LOAD, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    rc = bound(sq, st, bind_str(st, 1, sid), err);
    struct visit v = {.cb.message = cb, .user = user};
    return rc ? rc : each_row(sq, st, message_row, &v, "load messages", err);
}

static int sq_message_count(cgw_store_t *s, const char *tenant, const char *sid, uint64_t *out,
                            cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = commit_queue(sq, err);
    return rc ? rc : session_owner(sq, tenant, sid, out, err);
}

static int sq_message_truncate(cgw_store_t *s, const char *tenant, const char *sid, uint64_t keep,
                               double now, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    uint64_t n = 0;
    sqlite3_stmt *st = NULL;
    rc = session_owner(sq, tenant, sid, &n, err);
    if (rc == CGW_OK && keep < n) {
        rc = cgw__sq_stmt(sq, ST_MSG_TRUNCATE, &st, err);
        if (rc == CGW_OK) {
            int b = bind_str(st, 1, sid);
            b = b ? b : sqlite3_bind_int64(st, 2, (sqlite3_int64)keep);
            rc = bound(sq, st, b, err);
            rc = rc ? rc : cgw__sq_exec_stmt(sq, st, "truncate messages", err);
        }
        rc = rc ? rc : set_message_count(sq, sid, keep, now, err);
    }
    return cgw__sq_end(sq, rc, err);
}

/* ---- runs ----------------------------------------------------------------------------------- */

static int read_one_run(sq_store_t *sq, const char *tenant, const char *id, cgw_store_run_t *out,
                        cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = fetch_owned(sq, ST_RUN_GET, id, 2, tenant, "run", &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    read_run(st, out);
    finish(st);
    return CGW_OK;
}

static int sq_run_create(cgw_store_t *s, const char *tenant, const char *sid, const char *id,
                         double now, cgw_store_run_t *out, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    rc = session_owner(sq, tenant, sid, NULL, err);
    rc = rc ? rc : cgw__sq_stmt(sq, ST_RUN_INSERT, &st, err);
    if (rc == CGW_OK) {
        int b = bind_str(st, 1, id);
        b = b ? b : bind_str(st, 2, sid);
        b = b ? b : bind_str(st, 3, tenant);
        b = b ? b : sqlite3_bind_double(st, 4, now);
        rc = bound(sq, st, b, err);
        rc = rc ? rc : cgw__sq_exec_stmt(sq, st, "create run", err);
        if (rc == CGW_EEXIST) {
            cgw_error_set(err, CGW_EEXIST, "run %s already exists", id);
        }
    }
    rc = rc ? rc : read_one_run(sq, tenant, id, out, err);
    return cgw__sq_end(sq, rc, err);
}

static int sq_run_get(cgw_store_t *s, const char *tenant, const char *id, cgw_store_run_t *out,
                      cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = commit_queue(sq, err);
    return rc ? rc : read_one_run(sq, tenant, id, out, err);
}

static int write_status(sq_store_t *sq, const char *id, cgw_run_status_t status, double now,
                        cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, ST_RUN_SET_STATUS, &st, err);
    if (rc != CGW_OK) {
        return rc;
    }
    int b = bind_str(st, 1, id);
    b = b ? b : bind_str(st, 2, cgw_run_status_name(status));
    b = b ? b : sqlite3_bind_double(st, 3, now);
    b = b ? b : sqlite3_bind_double(st, 4, cgw_run_status_is_final(status) ? now : 0);
    rc = bound(sq, st, b, err);
    return rc ? rc : cgw__sq_exec_stmt(sq, st, "set run status", err);
}

static int sq_run_set_status(cgw_store_t *s, const char *tenant, const char *id,
                             cgw_run_status_t status, const cgw_store_event_t *final_event,
                             double now, uint64_t *seq, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    int rc = begin_write(sq, err);
    if (rc != CGW_OK) {
        return rc;
    }
    cgw_run_status_t cur = CGW_RUN_RUNNING;
    uint64_t last = 0, fseq = 0;
    rc = lookup_run(sq, tenant, id, &cur, &last, err);
    rc = rc ? rc : cgw__store_check_transition(id, cur, status, err);
    if (rc == CGW_OK && final_event != NULL) {
        rc = cur != CGW_RUN_RUNNING ? cgw_error_set(err, CGW_ESTATE, "run %s already ended", id)
                                    : cgw__store_assign_seqs(id, last, final_event, 1, &fseq, err);
        rc = rc ? rc : insert_events(sq, id, final_event, &fseq, 1, err);
    }
    if (rc == CGW_OK && cur != status) {
        rc = write_status(sq, id, status, now, err);
    }
    rc = cgw__sq_end(sq, rc, err);
    cache_forget(sq, id); /* reloaded with the final event's seq on next use */
    if (rc == CGW_OK && seq != NULL) {
        *seq = fseq;
    }
    return rc;
}

/* Calls `cb` for each row of a bound run query. */
static int each_run(sq_store_t *sq, sqlite3_stmt *st, cgw_store_run_cb cb, void *user,
                    cgw_error_t *err)
{
    struct visit v = {.cb.run = cb, .user = user};
    return each_row(sq, st, run_row, &v, "list runs", err);
}

static int sq_run_list(cgw_store_t *s, const char *tenant, const char *sid, cgw_store_run_cb cb,
                       void *user, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = commit_queue(sq, err);
    rc = rc ? rc : session_owner(sq, tenant, sid, NULL, err);
    rc = rc ? rc : cgw__sq_stmt(sq, ST_RUN_LIST, &st, err);
    rc = rc ? rc : bound(sq, st, bind_str(st, 1, sid), err);
    return rc ? rc : each_run(sq, st, cb, user, err);
}

static int sq_run_list_unfinished(cgw_store_t *s, cgw_store_run_cb cb, void *user, cgw_error_t *err)
{
    sq_store_t *sq = (sq_store_t *)s;
    sqlite3_stmt *st = NULL;
    int rc = fresh_stmt(sq, ST_RUN_UNFINISHED, &st, err);
    return rc ? rc : each_run(sq, st, cb, user, err);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void sq_destroy(cgw_store_t *s)
{
    sq_store_t *sq = (sq_store_t *)s;
    cgw_error_t e;
    cgw_error_clear(&e);
    if (sq->db != NULL && commit_queue(sq, &e) != CGW_OK) {
        CGW_ERROR(s->ctx, "store", "closing %s: %zu queued events were not committed: %s", sq->path,
                  sq->npend, e.message);
    }
    drop_queue(sq);
    cache_clear(sq);
    cgw_free(sq->pend);
    if (sq->commit_ev != NULL) {
        event_free(sq->commit_ev);
    }
    cgw__sq_close_db(sq);
    cgw_free(sq->path);
    cgw_free(sq);
}

static const struct cgw_store_vtable sq_vtable = {
    .kind = "sqlite",
    .destroy = sq_destroy,
    .flush = sq_flush,
    .session_create = sq_session_create,
    .session_get = sq_session_get,
    .session_list = sq_session_list,
    .session_count = sq_session_count,
    .session_update = sq_session_update,
    .session_delete = sq_session_delete,
    .message_append = sq_message_append,
    .message_load = sq_message_load,
    .message_count = sq_message_count,
    .message_truncate = sq_message_truncate,
    .run_create = sq_run_create,
    .run_get = sq_run_get,
    .run_set_status = sq_run_set_status,
    .run_list = sq_run_list,
    .run_list_unfinished = sq_run_list_unfinished,
    .event_append = sq_event_append,
    .event_read = sq_event_read,
    .event_last_seq = sq_event_last_seq,
};

void cgw_store_sqlite_options_init(cgw_store_sqlite_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->sync = CGW_STORE_SYNC_NORMAL;
    opts->group_commit = true;
    opts->max_pending_events = 1024;
    opts->max_pending_bytes = 4u << 20;
    opts->busy_timeout_ms = 5000;
}

/* data_dir/gateway.db, creating data_dir (one level, 0700) when it is missing. */
static int resolve_path(const cgw_store_sqlite_options_t *opts, char **out, cgw_error_t *err)
{
    if (opts->path != NULL && opts->path[0] != '\0') {
        *out = cgw__strdup(opts->path);
        return *out ? CGW_OK : CGW_ENOMEM;
    }
    if (opts->data_dir == NULL || opts->data_dir[0] == '\0') {
        return cgw_error_set(err, CGW_EINVAL, "sqlite store needs a path or a data_dir");
    }
    if (mkdir(opts->data_dir, 0700) != 0 && errno != EEXIST) {
        return cgw_error_set(err, CGW_ESTORE, "cannot create data dir %s: %s", opts->data_dir,
                             strerror(errno));
    }
    struct stat stt;
    if (stat(opts->data_dir, &stt) != 0 || !S_ISDIR(stt.st_mode)) {
        return cgw_error_set(err, CGW_ESTORE, "data dir %s is not a directory", opts->data_dir);
    }
    size_t n = strlen(opts->data_dir) + sizeof("/gateway.db");
    *out = cgw__malloc(n);
    if (*out == NULL) {
        return CGW_ENOMEM;
    }
    snprintf(*out, n, "%s/gateway.db", opts->data_dir);
    return CGW_OK;
}

int cgw_store_open_sqlite(cgw_ctx_t *ctx, const cgw_store_sqlite_options_t *opts, cgw_store_t **out,
                          cgw_error_t *err)
{
    if (ctx == NULL || opts == NULL || out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "ctx, opts and out are required");
    }
    sq_store_t *sq = cgw__calloc(1, sizeof(*sq));
    if (sq == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory opening the store");
    }
    cgw__store_init(&sq->base, &sq_vtable, ctx);
    sq->group_commit = opts->group_commit;
    sq->read_only = opts->read_only;
    sq->max_pending_events = opts->max_pending_events ? opts->max_pending_events : 1;
    sq->max_pending_bytes = opts->max_pending_bytes ? opts->max_pending_bytes : 1;
    int rc = resolve_path(opts, &sq->path, err);
    if (rc == CGW_OK) {
        sq->commit_ev = event_new(cgw_ctx_base(ctx), -1, 0, commit_cb, sq);
        rc = sq->commit_ev ? CGW_OK : cgw_error_set(err, CGW_ENOMEM, "event_new failed");
    }
    rc = rc ? rc : cgw__sq_open_db(sq, opts, err);
    if (rc != CGW_OK) {
        sq_destroy(&sq->base);
        return rc;
    }
    CGW_DEBUG(ctx, "store", "sqlite store at %s (group commit %s)", sq->path,
              sq->group_commit ? "on" : "off");
    *out = &sq->base;
    return CGW_OK;
}
