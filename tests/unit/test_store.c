/* The store contract, run against every implementation (memory, SQLite with group commit,
 * SQLite with one transaction per append), then SQLite-only behaviour on real files: reopen,
 * a writer killed with SIGKILL mid-stream, a concurrent reader process, bad paths. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
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

#include "store/map.h"
#include "testutil.h"

enum kind { KIND_MEMORY, KIND_SQLITE_GROUP, KIND_SQLITE_DIRECT };

struct fx {
    enum kind kind;
    cgw_ctx_t *ctx;
    cgw_store_t *store;
    char dir[64];
    char path[128];
};

/* ---- fixture -------------------------------------------------------------------------------- */

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static int open_sqlite_at(cgw_ctx_t *ctx, const char *path, bool group, bool read_only,
                          cgw_store_t **out, cgw_error_t *err)
{
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    o.path = path;
    o.group_commit = group;
    o.read_only = read_only;
    o.sync = CGW_STORE_SYNC_NORMAL;
    return cgw_store_open_sqlite(ctx, &o, out, err);
}

static int setup_kind(void **state, enum kind kind)
{
    struct fx *f = calloc(1, sizeof(*f));
    f->kind = kind;
    f->ctx = cgw_test_ctx_new();
    snprintf(f->dir, sizeof(f->dir), "/tmp/cgw-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/gateway.db", f->dir);
    int rc = kind == KIND_MEMORY ? cgw_store_open_memory(f->ctx, &f->store)
                                 : open_sqlite_at(f->ctx, f->path, kind == KIND_SQLITE_GROUP, false,
                                                  &f->store, NULL);
    assert_int_equal(rc, CGW_OK);
    *state = f;
    return 0;
}

static int setup_memory(void **state)
{
    return setup_kind(state, KIND_MEMORY);
}

static int setup_sqlite_group(void **state)
{
    return setup_kind(state, KIND_SQLITE_GROUP);
}

static int setup_sqlite_direct(void **state)
{
    return setup_kind(state, KIND_SQLITE_DIRECT);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cgw_store_free(f->store);
    cgw_ctx_free(f->ctx);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static const char *new_session(cgw_store_t *s, const char *tenant, char *id_out)
{
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_create(s, tenant, NULL, "{\"model\":\"m\"}", 13, &rec, NULL),
                     CGW_OK);
    strcpy(id_out, rec.id);
    cgw_store_session_clear(&rec);
    return id_out;
}

static const char *new_run(cgw_store_t *s, const char *tenant, const char *sid, char *id_out)
{
    cgw_store_run_t run;
    assert_int_equal(cgw_store_run_create(s, tenant, sid, NULL, &run, NULL), CGW_OK);
    strcpy(id_out, run.id);
    return id_out;
}

/* A session of `tenant` with one run. */
static void session_and_run(cgw_store_t *s, const char *tenant, char *sid, char *rid)
{
    new_session(s, tenant, sid);
    new_run(s, tenant, sid, rid);
}

/* Two tenants: "t" with session s1 and runs a and c, "u" with session s2 and run b, created
 * in the order a, b, c. */
struct world {
    char s1[CGW_STORE_ID_MAX], s2[CGW_STORE_ID_MAX];
    char a[CGW_STORE_ID_MAX], b[CGW_STORE_ID_MAX], c[CGW_STORE_ID_MAX];
};

static void make_world(cgw_store_t *s, struct world *w)
{
    new_session(s, "t", w->s1);
    new_session(s, "u", w->s2);
    new_run(s, "t", w->s1, w->a);
    new_run(s, "u", w->s2, w->b);
    new_run(s, "t", w->s1, w->c);
}

static int append_text(cgw_store_t *s, const char *tenant, const char *run, uint64_t seq,
                       uint64_t *got)
{
    /* The JSON names the seq the event will get, so a reader can check each entry's bytes;
     * with seq 0 the store picks it, and we predict it from the last one. */
    uint64_t will = seq;
    if (seq == 0 && cgw_store_event_last_seq(s, tenant, run, &will, NULL) == CGW_OK) {
        will++;
    }
    char json[128];
    int n =
        snprintf(json, sizeof(json), "{\"seq\":%llu,\"type\":\"text_delta\",\"text\":\"t%llu\"}",
                 (unsigned long long)will, (unsigned long long)will);
    cgw_store_event_t ev = {seq, 1700000000.5 + (double)will, "text_delta", json, (size_t)n};
    return cgw_store_event_append(s, tenant, run, &ev, got, NULL);
}

struct collected {
    int n;
    uint64_t seqs[4096];
    char types[8][CGW_STORE_TYPE_MAX];
    char last_json[512];
    double last_ts;
    int stop_after; /* 0 = never */
};

static int collect_event(const cgw_store_event_t *ev, void *user)
{
    struct collected *c = user;
    if (c->n < 4096) {
        c->seqs[c->n] = ev->seq;
    }
    if (c->n < 8) {
        snprintf(c->types[c->n], sizeof(c->types[0]), "%s", ev->type);
    }
    snprintf(c->last_json, sizeof(c->last_json), "%.*s", (int)ev->json_len, ev->json);
    assert_int_equal(strlen(ev->json), ev->json_len); /* NUL-terminated on output */
    c->last_ts = ev->ts;
    c->n++;
    return (c->stop_after != 0 && c->n == c->stop_after) ? CGW_ECANCELED : CGW_OK;
}

static int read_all(cgw_store_t *s, const char *tenant, const char *run, uint64_t after,
                    size_t limit, struct collected *c)
{
    memset(c, 0, sizeof(*c));
    return cgw_store_event_read(s, tenant, run, after, limit, collect_event, c, NULL);
}

/* ---- the contract --------------------------------------------------------------------------- */

static void test_session_lifecycle(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    cgw_store_session_t a, b;
    cgw_error_t err;
    cgw_error_clear(&err);
    assert_int_equal(cgw_store_session_create(s, "t1", NULL, "{\"x\":1}", 7, &a, &err), CGW_OK);
    assert_int_equal(strncmp(a.id, "sess_", 5), 0);
    assert_int_equal(strlen(a.id), 5 + 22);
    assert_string_equal(a.tenant, "t1");
    assert_int_equal(a.settings_len, 7);
    assert_memory_equal(a.settings, "{\"x\":1}", 7);
    assert_true(a.created_at > 1.6e9 && a.updated_at == a.created_at);
    assert_int_equal(a.message_count, 0);

    /* Two generated ids never collide; a given id is kept; a taken id is refused. */
    assert_int_equal(cgw_store_session_create(s, "t1", "my-session_1", NULL, 0, &b, NULL), CGW_OK);
    assert_string_equal(b.id, "my-session_1");
    assert_string_equal(b.settings, "{}");
    assert_int_equal(cgw_store_session_create(s, "t1", "my-session_1", NULL, 0, NULL, &err),
                     CGW_EEXIST);
    assert_int_equal(cgw_store_session_create(s, "other", "my-session_1", NULL, 0, NULL, NULL),
                     CGW_EEXIST);
    assert_string_not_equal(a.id, b.id);

    cgw_store_session_t g;
    assert_int_equal(cgw_store_session_get(s, "t1", a.id, &g, NULL), CGW_OK);
    assert_string_equal(g.settings, "{\"x\":1}");
    cgw_store_session_clear(&g);
    const char upd[] = "{\"system\":\"be brief\",\"max_turns\":3}";
    assert_int_equal(cgw_store_session_update_settings(s, "t1", a.id, upd, strlen(upd), NULL),
                     CGW_OK);
    assert_int_equal(cgw_store_session_get(s, "t1", a.id, &g, NULL), CGW_OK);
    assert_string_equal(g.settings, upd);
    assert_true(g.updated_at >= g.created_at);
    cgw_store_session_clear(&g);

    uint64_t n = 99;
    assert_int_equal(cgw_store_session_count(s, "t1", &n, NULL), CGW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cgw_store_session_delete(s, "t1", a.id, NULL), CGW_OK);
    assert_int_equal(cgw_store_session_get(s, "t1", a.id, &g, &err), CGW_ENOENT);
    assert_non_null(strstr(err.message, a.id));
    assert_int_equal(cgw_store_session_delete(s, "t1", a.id, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_count(s, "t1", &n, NULL), CGW_OK);
    assert_int_equal(n, 1);
    cgw_store_session_clear(&a);
    cgw_store_session_clear(&b);
    cgw_store_session_clear(NULL);
}

struct ids {
    int n;
    char id[16][CGW_STORE_ID_MAX];
};

static int collect_session(const cgw_store_session_t *sess, void *user)
{
    struct ids *ids = user;
    assert_true(sess->settings != NULL && sess->settings_len > 0);
    strcpy(ids->id[ids->n++], sess->id);
    return ids->n == 16 ? CGW_ECANCELED : CGW_OK;
}

static void test_session_list_order_and_paging(void **state)
{
    struct fx *f = *state;
    char want[6][CGW_STORE_ID_MAX];
    for (int i = 0; i < 6; i++) {
        new_session(f->store, "lister", want[i]);
        char other[CGW_STORE_ID_MAX];
        new_session(f->store, "someone-else", other);
    }
    struct ids ids = {0};
    assert_int_equal(cgw_store_session_list(f->store, "lister", 0, 0, collect_session, &ids, NULL),
                     CGW_OK);
    assert_int_equal(ids.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(ids.id[i], want[i]);
    }
    memset(&ids, 0, sizeof(ids));
    assert_int_equal(cgw_store_session_list(f->store, "lister", 2, 3, collect_session, &ids, NULL),
                     CGW_OK);
    assert_int_equal(ids.n, 3);
    assert_string_equal(ids.id[0], want[2]);
    assert_string_equal(ids.id[2], want[4]);
    memset(&ids, 0, sizeof(ids));
    assert_int_equal(cgw_store_session_list(f->store, "nobody", 0, 0, collect_session, &ids, NULL),
                     CGW_OK);
    assert_int_equal(ids.n, 0);
}

struct msgs {
    int n;
    uint64_t idx[8];
    size_t len[8];
    char *big; /* copy of a large message */
    size_t big_len;
};

static int collect_msg(uint64_t index, const char *json, size_t len, void *user)
{
    struct msgs *m = user;
    if (len > 1000) {
        m->big = malloc(len);
        memcpy(m->big, json, len);
        m->big_len = len;
    }
    assert_int_equal(json[len], '\0');
    m->idx[m->n] = index;
    m->len[m->n] = len;
    m->n++;
    return CGW_OK;
}

static void test_conversation(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX];
    new_session(s, "t", sid);
    const char *m[] = {"{\"role\":\"user\",\"content\":\"hi\"}",
                       "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"yo\"}]}",
                       "{\"role\":\"user\",\"content\":\"\\u00e9t\\u00e9 \xc3\xa9\"}"};
    for (uint64_t i = 0; i < 3; i++) {
        uint64_t idx = 99;
        assert_int_equal(cgw_store_message_append(s, "t", sid, m[i], strlen(m[i]), &idx, NULL),
                         CGW_OK);
        assert_int_equal(idx, i);
    }
    uint64_t n = 0;
    assert_int_equal(cgw_store_message_count(s, "t", sid, &n, NULL), CGW_OK);
    assert_int_equal(n, 3);
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_get(s, "t", sid, &rec, NULL), CGW_OK);
    assert_int_equal(rec.message_count, 3);
    cgw_store_session_clear(&rec);
    struct msgs got = {0};
    assert_int_equal(cgw_store_message_load(s, "t", sid, collect_msg, &got, NULL), CGW_OK);
    assert_int_equal(got.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(got.idx[i], i);
        assert_int_equal(got.len[i], strlen(m[i]));
    }
    /* Rollback to one message, then the conversation grows from there. */
    assert_int_equal(cgw_store_message_truncate(s, "t", sid, 1, NULL), CGW_OK);
    assert_int_equal(cgw_store_message_count(s, "t", sid, &n, NULL), CGW_OK);
    assert_int_equal(n, 1);
    uint64_t idx = 0;
    assert_int_equal(cgw_store_message_append(s, "t", sid, m[2], strlen(m[2]), &idx, NULL), CGW_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(cgw_store_message_truncate(s, "t", sid, 10, NULL), CGW_OK);
    memset(&got, 0, sizeof(got));
    assert_int_equal(cgw_store_message_load(s, "t", sid, collect_msg, &got, NULL), CGW_OK);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.len[1], strlen(m[2]));
    assert_int_equal(cgw_store_message_truncate(s, "t", sid, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_message_count(s, "t", sid, &n, NULL), CGW_OK);
    assert_int_equal(n, 0);
}

struct big_check {
    const char *want;
    size_t len;
    int seen;
};

static int check_big(const cgw_store_event_t *ev, void *user)
{
    struct big_check *bc = user;
    assert_int_equal(ev->json_len, bc->len);
    assert_memory_equal(ev->json, bc->want, bc->len);
    assert_string_equal(ev->type, "tool_result");
    assert_true(ev->ts == 1.25);
    bc->seen++;
    return CGW_OK;
}

static void test_large_message_byte_exact(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX];
    new_session(f->store, "t", sid);
    size_t len = 1u << 20;
    char *big = malloc(len);
    /* Every byte value but NUL, in a pattern that is not valid UTF-8 either: the store must
     * not validate, transcode or trim anything. */
    for (size_t i = 0; i < len; i++) {
        big[i] = (char)(1 + (i * 131 + i / 977) % 255);
    }
    assert_int_equal(cgw_store_message_append(f->store, "t", sid, "{}", 2, NULL, NULL), CGW_OK);
    assert_int_equal(cgw_store_message_append(f->store, "t", sid, big, len, NULL, NULL), CGW_OK);
    struct msgs got = {0};
    assert_int_equal(cgw_store_message_load(f->store, "t", sid, collect_msg, &got, NULL), CGW_OK);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.big_len, len);
    assert_memory_equal(got.big, big, len);
    free(got.big);

    /* The same for an event entry. */
    char rid[CGW_STORE_ID_MAX];
    new_run(f->store, "t", sid, rid);
    cgw_store_event_t ev = {0, 1.25, "tool_result", big, len};
    assert_int_equal(cgw_store_event_append(f->store, "t", rid, &ev, NULL, NULL), CGW_OK);
    assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
    struct big_check bc = {big, len, 0};
    assert_int_equal(cgw_store_event_read(f->store, "t", rid, 0, 0, check_big, &bc, NULL), CGW_OK);
    assert_int_equal(bc.seen, 1);
    free(big);
}

static void test_runs(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX];
    session_and_run(s, "t", sid, r1);
    assert_int_equal(strncmp(r1, "run_", 4), 0);
    assert_int_equal(strlen(r1), 4 + 22);
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_create(s, "t", sid, "run-given", &r, NULL), CGW_OK);
    assert_string_equal(r.id, "run-given");
    assert_string_equal(r.session_id, sid);
    assert_string_equal(r.tenant, "t");
    assert_int_equal(r.status, CGW_RUN_RUNNING);
    assert_true(r.created_at > 0 && r.ended_at == 0 && r.last_seq == 0);
    assert_int_equal(cgw_store_run_create(s, "t", sid, "run-given", NULL, NULL), CGW_EEXIST);
    assert_int_equal(cgw_store_run_create(s, "t", "sess_nope", NULL, NULL, NULL), CGW_ENOENT);

    cgw_error_t err;
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_COMPLETED, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_get(s, "t", r1, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_COMPLETED);
    assert_true(r.ended_at > 0 && r.updated_at >= r.created_at);
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_COMPLETED, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_FAILED, &err), CGW_ESTATE);
    assert_non_null(strstr(err.message, "completed"));
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_RUNNING, NULL), CGW_ESTATE);
    assert_int_equal(cgw_store_run_set_status(s, "t", "run-given", CGW_RUN_RUNNING, NULL),
                     CGW_ESTATE);
}

struct runs {
    int n;
    cgw_store_run_t r[8];
};

static int collect_run(const cgw_store_run_t *run, void *user)
{
    struct runs *rs = user;
    rs->r[rs->n++] = *run;
    return CGW_OK;
}

static void test_run_lists(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    struct world w;
    make_world(s, &w);
    const char *s1 = w.s1, *a = w.a, *b = w.b, *c = w.c;
    assert_int_equal(append_text(s, "t", c, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_set_status(s, "t", a, CGW_RUN_CANCELLED, NULL), CGW_OK);

    struct runs rs = {0};
    assert_int_equal(cgw_store_run_list(s, "t", s1, collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].id, a);
    assert_int_equal(rs.r[0].status, CGW_RUN_CANCELLED);
    assert_string_equal(rs.r[1].id, c);
    assert_int_equal(rs.r[1].last_seq, 1);

    memset(&rs, 0, sizeof(rs));
    assert_int_equal(cgw_store_run_list_unfinished(s, collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 2); /* every tenant's */
    assert_string_equal(rs.r[0].id, b);
    assert_string_equal(rs.r[0].tenant, "u");
    assert_string_equal(rs.r[1].id, c);
}

static void test_events_append_read(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(s, "t", sid, rid);
    uint64_t seq = 0, last = 99;
    assert_int_equal(cgw_store_event_last_seq(s, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 0);
    for (uint64_t i = 1; i <= 10; i++) {
        assert_int_equal(append_text(s, "t", rid, i % 2 ? 0 : i, &seq), CGW_OK);
        assert_int_equal(seq, i);
    }
    cgw_error_t err;
    /* A duplicate or a gap is refused and changes nothing. */
    cgw_store_event_t dup = {10, 1, "x", "{}", 2};
    assert_int_equal(cgw_store_event_append(s, "t", rid, &dup, NULL, &err), CGW_ESEQ);
    assert_non_null(strstr(err.message, "expected 11"));
    dup.seq = 12;
    assert_int_equal(cgw_store_event_append(s, "t", rid, &dup, NULL, NULL), CGW_ESEQ);
    /* A batch is all or nothing. */
    cgw_store_event_t batch[3] = {
        {0, 2, "a", "{\"a\":1}", 7}, {12, 2, "b", "{}", 2}, {0, 2, "c", "{}", 2}};
    assert_int_equal(cgw_store_event_append_batch(s, "t", rid, batch, 3, NULL, NULL), CGW_OK);
    assert_int_equal(cgw_store_event_last_seq(s, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 13);
    batch[1].seq = 99;
    assert_int_equal(cgw_store_event_append_batch(s, "t", rid, batch, 3, &seq, NULL), CGW_ESEQ);
    assert_int_equal(cgw_store_event_last_seq(s, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 13);

    struct collected c;
    assert_int_equal(read_all(s, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 13);
    for (int i = 0; i < 13; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }
    assert_string_equal(c.types[0], "text_delta");
    assert_int_equal(read_all(s, "t", rid, 4, 3, &c), CGW_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seqs[0], 5);
    assert_int_equal(c.seqs[2], 7);
    assert_string_equal(c.last_json, "{\"seq\":7,\"type\":\"text_delta\",\"text\":\"t7\"}");
    assert_true(c.last_ts == 1700000000.5 + 7);
    assert_int_equal(read_all(s, "t", rid, 10, 0, &c), CGW_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.last_json, "{}");
    assert_int_equal(read_all(s, "t", rid, 13, 0, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(read_all(s, "t", rid, 1000, 5, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    /* A callback's stop value ends the read and comes back. */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(cgw_store_event_read(s, "t", rid, 0, 0, collect_event, &c, NULL),
                     CGW_ECANCELED);
    assert_int_equal(c.n, 2);
}

static void test_many_events_in_order(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX], r2[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, r1);
    new_run(f->store, "t", sid, r2);
    /* Interleaved runs, more than the group-commit queue holds. */
    for (uint64_t i = 1; i <= 3000; i++) {
        assert_int_equal(append_text(f->store, "t", i % 3 ? r1 : r2, 0, NULL), CGW_OK);
    }
    struct collected c;
    assert_int_equal(read_all(f->store, "t", r1, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 2000);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }
    assert_int_equal(read_all(f->store, "t", r2, 950, 50, &c), CGW_OK);
    assert_int_equal(c.n, 50);
    assert_int_equal(c.seqs[0], 951);
    assert_int_equal(c.seqs[49], 1000);
}

static void test_run_finish(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(s, "t", sid, rid);
    assert_int_equal(append_text(s, "t", rid, 0, NULL), CGW_OK);
    const char *done = "{\"type\":\"stream_complete\",\"stop_reason\":\"end_turn\"}";
    cgw_store_event_t fin = {0, 5.0, "stream_complete", done, strlen(done)};
    uint64_t seq = 0;
    assert_int_equal(cgw_store_run_finish(s, "t", rid, CGW_RUN_RUNNING, &fin, &seq, NULL),
                     CGW_EINVAL);
    assert_int_equal(cgw_store_run_finish(s, "t", rid, CGW_RUN_COMPLETED, &fin, &seq, NULL),
                     CGW_OK);
    assert_int_equal(seq, 2);
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_get(s, "t", rid, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_COMPLETED);
    assert_int_equal(r.last_seq, 2);
    /* Finishing twice is refused and appends nothing. */
    assert_int_equal(cgw_store_run_finish(s, "t", rid, CGW_RUN_COMPLETED, &fin, &seq, NULL),
                     CGW_ESTATE);
    assert_int_equal(cgw_store_run_finish(s, "t", rid, CGW_RUN_FAILED, NULL, NULL, NULL),
                     CGW_ESTATE);
    /* A late event to an ended run is still accepted (it must not be lost). */
    assert_int_equal(append_text(s, "t", rid, 3, &seq), CGW_OK);
    struct collected c;
    assert_int_equal(read_all(s, "t", rid, 1, 0, &c), CGW_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.types[0], "stream_complete");
    /* Without an event, finish is a status change. */
    char r2[CGW_STORE_ID_MAX];
    new_run(s, "t", sid, r2);
    assert_int_equal(cgw_store_run_finish(s, "t", r2, CGW_RUN_CANCELLED, NULL, &seq, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_get(s, "t", r2, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_CANCELLED);
    assert_int_equal(r.last_seq, 0);
}

struct builder {
    int calls;
    char buf[256];
    bool give_none;
};

static const char *build_error(const cgw_store_run_t *run, uint64_t seq, double ts, size_t *len,
                               void *user)
{
    struct builder *b = user;
    b->calls++;
    if (b->give_none) {
        return NULL;
    }
    assert_true(ts > 1.6e9);
    int n = snprintf(b->buf, sizeof(b->buf),
                     "{\"seq\":%llu,\"ts\":%.6f,\"event\":{\"type\":\"error\",\"error\":"
                     "\"interrupted: %s\",\"code\":\"interrupted\"}}",
                     (unsigned long long)seq, ts, run->id);
    *len = (size_t)n;
    return b->buf;
}

static void test_recover(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    struct world w;
    make_world(s, &w);
    const char *s1 = w.s1, *a = w.a, *b = w.b, *done = w.c;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(append_text(s, "t", a, 0, NULL), CGW_OK);
    }
    assert_int_equal(cgw_store_run_set_status(s, "t", done, CGW_RUN_COMPLETED, NULL), CGW_OK);
    struct builder bld = {0};
    size_t count = 0;
    assert_int_equal(cgw_store_recover(s, "bad type", build_error, &bld, &count, NULL), CGW_EINVAL);
    assert_int_equal(cgw_store_recover(s, "error", build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 2);
    assert_int_equal(bld.calls, 2);
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_get(s, "t", a, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_INTERRUPTED);
    assert_int_equal(r.last_seq, 5);
    assert_true(r.ended_at > 0);
    struct collected c;
    assert_int_equal(read_all(s, "t", a, 4, 0, &c), CGW_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.types[0], "error");
    assert_non_null(strstr(c.last_json, "\"seq\":5"));
    assert_int_equal(read_all(s, "u", b, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(cgw_store_run_get(s, "t", done, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_COMPLETED);
    /* Nothing left to recover; a builder that gives no event still ends the run. */
    assert_int_equal(cgw_store_recover(s, "error", build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 0);
    char d[CGW_STORE_ID_MAX];
    new_run(s, "t", s1, d);
    bld.give_none = true;
    assert_int_equal(cgw_store_recover(s, "error", build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 1);
    assert_int_equal(cgw_store_run_get(s, "t", d, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_INTERRUPTED);
    assert_int_equal(r.last_seq, 0);
    assert_int_equal(cgw_store_recover(s, NULL, NULL, NULL, NULL, NULL), CGW_OK);
}

static void test_tenant_isolation(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(s, "alice", sid, rid);
    assert_int_equal(append_text(s, "alice", rid, 0, NULL), CGW_OK);
    const char *eve = "eve";
    cgw_store_session_t rec;
    cgw_store_run_t run;
    uint64_t n;
    struct msgs m = {0};
    struct runs rs = {0};
    struct collected c;
    cgw_store_event_t ev = {0, 1, "x", "{}", 2};
    assert_int_equal(cgw_store_session_get(s, eve, sid, &rec, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_update_settings(s, eve, sid, "{}", 2, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_delete(s, eve, sid, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_append(s, eve, sid, "{}", 2, NULL, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_load(s, eve, sid, collect_msg, &m, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_count(s, eve, sid, &n, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_truncate(s, eve, sid, 0, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_create(s, eve, sid, NULL, NULL, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_list(s, eve, sid, collect_run, &rs, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_get(s, eve, rid, &run, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_set_status(s, eve, rid, CGW_RUN_FAILED, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_finish(s, eve, rid, CGW_RUN_FAILED, &ev, NULL, NULL),
                     CGW_ENOENT);
    assert_int_equal(cgw_store_event_append(s, eve, rid, &ev, NULL, NULL), CGW_ENOENT);
    assert_int_equal(read_all(s, eve, rid, 0, 0, &c), CGW_ENOENT);
    assert_int_equal(cgw_store_event_last_seq(s, eve, rid, &n, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_count(s, eve, &n, NULL), CGW_OK);
    assert_int_equal(n, 0);
    /* Nothing of alice's changed. */
    assert_int_equal(cgw_store_run_get(s, "alice", rid, &run, NULL), CGW_OK);
    assert_int_equal(run.status, CGW_RUN_RUNNING);
    assert_int_equal(run.last_seq, 1);
    assert_int_equal(cgw_store_session_count(s, "alice", &n, NULL), CGW_OK);
    assert_int_equal(n, 1);
}

static void test_unknown_ids(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    cgw_store_session_t rec;
    cgw_store_run_t run;
    uint64_t n;
    struct collected c;
    cgw_store_event_t ev = {0, 1, "x", "{}", 2};
    cgw_error_t err;
    assert_int_equal(cgw_store_session_get(s, "t", "sess_missing", &rec, &err), CGW_ENOENT);
    assert_int_equal(err.code, CGW_ENOENT);
    assert_int_equal(cgw_store_message_count(s, "t", "sess_missing", &n, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_get(s, "t", "run_missing", &run, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_event_append(s, "t", "run_missing", &ev, NULL, NULL), CGW_ENOENT);
    assert_int_equal(read_all(s, "t", "run_missing", 0, 0, &c), CGW_ENOENT);
    assert_int_equal(cgw_store_run_set_status(s, "t", "run_missing", CGW_RUN_FAILED, NULL),
                     CGW_ENOENT);
    assert_int_equal(cgw_store_event_last_seq(s, "t", "run_missing", &n, NULL), CGW_ENOENT);
}

static void test_session_delete_cascades(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX], keep[CGW_STORE_ID_MAX],
        keep_run[CGW_STORE_ID_MAX];
    new_session(s, "t", sid);
    new_session(s, "t", keep);
    new_run(s, "t", sid, rid);
    new_run(s, "t", keep, keep_run);
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{}", 2, NULL, NULL), CGW_OK);
    assert_int_equal(append_text(s, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(append_text(s, "t", keep_run, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_session_delete(s, "t", sid, NULL), CGW_OK);
    cgw_store_run_t run;
    struct collected c;
    assert_int_equal(cgw_store_run_get(s, "t", rid, &run, NULL), CGW_ENOENT);
    assert_int_equal(read_all(s, "t", rid, 0, 0, &c), CGW_ENOENT);
    assert_int_equal(read_all(s, "t", keep_run, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 1);
    /* The ids are free again. */
    assert_int_equal(cgw_store_session_create(s, "t", sid, NULL, 0, NULL, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_create(s, "t", sid, rid, NULL, NULL), CGW_OK);
    uint64_t last = 9;
    assert_int_equal(cgw_store_event_last_seq(s, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 0);
}

static void test_many_runs(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX];
    new_session(f->store, "t", sid);
    /* More runs than the SQLite run cache holds, each appended to twice, interleaved. */
    enum { N = 4200 };
    static char ids[N][CGW_STORE_ID_MAX];
    for (int i = 0; i < N; i++) {
        new_run(f->store, "t", sid, ids[i]);
    }
    for (int pass = 1; pass <= 2; pass++) {
        for (int i = 0; i < N; i++) {
            uint64_t seq = 0;
            assert_int_equal(append_text(f->store, "t", ids[i], 0, &seq), CGW_OK);
            assert_int_equal(seq, pass);
        }
    }
    struct collected c;
    for (int i = 0; i < N; i += 997) {
        assert_int_equal(read_all(f->store, "t", ids[i], 0, 0, &c), CGW_OK);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.last_json, "{\"seq\":2,\"type\":\"text_delta\",\"text\":\"t2\"}");
    }
}

static void test_bad_arguments(void **state)
{
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(s, "t", sid, rid);
    cgw_store_session_t rec;
    cgw_error_t err;
    char long_tenant[200];
    memset(long_tenant, 'a', sizeof(long_tenant) - 1);
    long_tenant[sizeof(long_tenant) - 1] = '\0';
    char long_id[80];
    memset(long_id, 'b', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(cgw_store_session_get(NULL, "t", sid, &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, NULL, sid, &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, "", sid, &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, "a b", sid, &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, long_tenant, sid, &rec, &err), CGW_EINVAL);
    assert_non_null(strstr(err.message, "tenant"));
    assert_int_equal(cgw_store_session_get(s, "t", "../etc", &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, "t", long_id, &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, "t", "", &rec, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_get(s, "t", sid, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_create(s, "t", "a'b", NULL, 0, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_create(s, "t", NULL, NULL, 5, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_session_list(s, "t", 0, 0, NULL, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_message_append(s, "t", sid, "", 0, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_message_append(s, "t", sid, NULL, 0, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_run_set_status(s, "t", rid, (cgw_run_status_t)42, &err), CGW_EINVAL);
    cgw_store_event_t bad[] = {{0, 1, "", "{}", 2},
                               {0, 1, NULL, "{}", 2},
                               {0, 1, "x", NULL, 2},
                               {0, 1, "x", "{}", 0},
                               {0, 1, "has space", "{}", 2}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cgw_store_event_append(s, "t", rid, &bad[i], NULL, &err), CGW_EINVAL);
    }
    cgw_store_event_t odd_ts[] = {{0, NAN, "x", "{}", 2}, {0, INFINITY, "x", "{}", 2}};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(cgw_store_event_append(s, "t", rid, &odd_ts[i], NULL, &err), CGW_EINVAL);
        assert_non_null(strstr(err.message, "finite"));
    }
    assert_int_equal(cgw_store_event_append(s, "t", rid, NULL, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_event_append_batch(s, "t", rid, bad, 0, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_event_read(s, "t", rid, 0, 0, NULL, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_run_list_unfinished(s, NULL, NULL, &err), CGW_EINVAL);
    assert_int_equal(cgw_store_open_memory(NULL, &s), CGW_EINVAL);
    assert_int_equal(cgw_store_flush(NULL, NULL), CGW_EINVAL);
    cgw_store_free(NULL);
    uint64_t last = 9;
    assert_int_equal(cgw_store_event_last_seq(f->store, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 0);
}

static int reenter_cb(const cgw_store_event_t *ev, void *user)
{
    struct fx *f = user;
    uint64_t n;
    (void)ev;
    cgw_error_t err;
    assert_int_equal(cgw_store_session_count(f->store, "t", &n, &err), CGW_EBUSY);
    assert_int_equal(append_text(f->store, "t", "run_x", 0, NULL), CGW_EBUSY);
    return CGW_OK;
}

static void test_reentry_refused(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, rid);
    assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_event_read(f->store, "t", rid, 0, 0, reenter_cb, f, NULL), CGW_OK);
    /* And the store works normally afterwards. */
    assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
}

static void test_map(void **state)
{
    (void)state;
    /* The index under the memory store and the run cache: inserts, replaces, deletes that
     * shift clusters back, and lookups of what is left. */
    enum { N = 5000 };
    static char keys[N][16];
    cgw_map_t m = CGW_MAP_INIT;
    assert_null(cgw__map_get(&m, "x"));
    assert_null(cgw__map_del(&m, "x"));
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        assert_int_equal(cgw__map_put(&m, keys[i], (void *)(intptr_t)(i + 1)), CGW_OK);
    }
    assert_int_equal(m.len, N);
    assert_int_equal(cgw__map_put(&m, keys[7], (void *)(intptr_t)-7), CGW_OK);
    assert_int_equal(m.len, N);
    assert_true(cgw__map_get(&m, "k7") == (void *)(intptr_t)-7);
    for (int i = 0; i < N; i += 3) {
        assert_non_null(cgw__map_del(&m, keys[i]));
    }
    for (int i = 0; i < N; i++) {
        void *v = cgw__map_get(&m, keys[i]);
        if (i % 3 == 0) {
            assert_null(v);
        } else {
            assert_true(v == (void *)(intptr_t)(i == 7 ? -7 : i + 1));
        }
    }
    for (int i = 0; i < N; i++) {
        cgw__map_del(&m, keys[i]);
    }
    assert_int_equal(m.len, 0);
    assert_int_equal(cgw__map_put(&m, keys[1], keys[1]), CGW_OK);
    assert_ptr_equal(cgw__map_get(&m, "k1"), keys[1]);
    cgw__map_free(&m);
    cgw__map_free(&m);
}

static void test_status_names(void **state)
{
    (void)state;
    cgw_run_status_t st;
    for (int i = 0; i <= CGW_RUN_INTERRUPTED; i++) {
        assert_int_equal(cgw_run_status_parse(cgw_run_status_name((cgw_run_status_t)i), &st),
                         CGW_OK);
        assert_int_equal(st, i);
    }
    assert_string_equal(cgw_run_status_name(CGW_RUN_INTERRUPTED), "interrupted");
    assert_string_equal(cgw_run_status_name((cgw_run_status_t)77), "unknown");
    assert_int_equal(cgw_run_status_parse("paused", &st), CGW_EINVAL);
    assert_false(cgw_run_status_is_final(CGW_RUN_RUNNING));
    assert_true(cgw_run_status_is_final(CGW_RUN_CANCELLED));
    assert_string_equal(cgw_strerror(CGW_ESEQ), "event out of sequence");
    assert_string_equal(cgw_err_name(CGW_ECORRUPT), "ECORRUPT");
}

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
    struct fx *f = *state; /* SQLite with group commit */
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
    struct fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX], r2[CGW_STORE_ID_MAX];
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_create(s, "t", NULL, "{\"model\":\"x\"}", 13, &rec, NULL),
                     CGW_OK);
    strcpy(sid, rec.id);
    cgw_store_session_clear(&rec);
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{\"role\":\"user\"}", 15, NULL, NULL),
                     CGW_OK);
    new_run(s, "t", sid, r1);
    new_run(s, "t", sid, r2);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(append_text(s, "t", r1, 0, NULL), CGW_OK);
    }
    assert_int_equal(cgw_store_run_set_status(s, "t", r1, CGW_RUN_COMPLETED, NULL), CGW_OK);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(append_text(s, "t", r2, 0, NULL), CGW_OK);
    }
    /* No flush: closing commits the queue. */
    cgw_store_free(f->store);
    f->store = NULL;
    assert_int_equal(open_sqlite_at(f->ctx, f->path, true, false, &f->store, NULL), CGW_OK);
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
    struct collected c;
    assert_int_equal(read_all(s, "t", r2, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.last_json, "{\"seq\":7,\"type\":\"text_delta\",\"text\":\"t7\"}");
    /* The session continues where it was. */
    uint64_t idx = 0;
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{}", 2, &idx, NULL), CGW_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(append_text(s, "t", r2, 8, NULL), CGW_OK);

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
    struct fx *f;
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
    struct collected c;
    assert_int_equal(read_all(il->reader, "t", il->rid, 0, 0, &c), CGW_OK);
    il->seen_next_iteration = c.n;
    il->done = 1;
}

static void append_in_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct in_loop *il = arg;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(append_text(il->f->store, "t", il->rid, 0, NULL), CGW_OK);
    }
    struct timeval zero = {0, 0};
    event_base_once(cgw_ctx_base(il->f->ctx), -1, EV_TIMEOUT, check_next_iteration, il, &zero);
}

static void test_sqlite_group_commit_on_loop(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, rid);
    cgw_store_t *reader = NULL;
    assert_int_equal(open_sqlite_at(f->ctx, f->path, false, true, &reader, NULL), CGW_OK);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    }
    /* Queued: the writer sees them, another connection does not yet. */
    struct collected c;
    uint64_t last = 0;
    assert_int_equal(cgw_store_event_last_seq(f->store, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 5);
    assert_int_equal(read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    /* One loop iteration commits them, in one transaction. */
    event_base_loop(cgw_ctx_base(f->ctx), EVLOOP_NONBLOCK);
    assert_int_equal(read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 5);
    /* An explicit flush does the same without the loop. */
    assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
    assert_int_equal(read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 6);
    /* Appends made by a loop callback are committed before the loop's next iteration. */
    struct in_loop il = {f, reader, rid, 0, -1};
    event_base_once(cgw_ctx_base(f->ctx), -1, EV_TIMEOUT, append_in_loop, &il, NULL);
    assert_true(cgw_test_run_until(f->ctx, &il.done, 5000));
    assert_int_equal(il.seen_next_iteration, 9);
    assert_int_equal(read_all(reader, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 9);

    /* The read-only store refuses writes with the database's reason. */
    cgw_error_t err;
    assert_int_equal(cgw_store_session_create(reader, "t", NULL, NULL, 0, NULL, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "readonly"));
    assert_int_equal(append_text(reader, "t", rid, 0, NULL), CGW_ESTORE);
    struct collected c2;
    assert_int_equal(read_all(reader, "t", rid, 0, 0, &c2), CGW_OK);
    assert_int_equal(c2.n, 9);
    cgw_store_free(reader);
}

/* Child role "writer": appends events to run_kill until killed, acknowledging on `fd` each
 * seq whose append is durable (after a flush in group mode, after the append otherwise). */
static int child_writer(const char *path, const char *mode, int fd)
{
    bool group = strcmp(mode, "group") == 0;
    cgw_ctx_t *ctx = cgw_test_ctx_new();
    cgw_store_t *s = NULL;
    if (ctx == NULL || open_sqlite_at(ctx, path, group, false, &s, NULL) != CGW_OK ||
        cgw_store_session_create(s, "t", "sess_kill", NULL, 0, NULL, NULL) != CGW_OK ||
        cgw_store_message_append(s, "t", "sess_kill", "{\"role\":\"user\"}", 15, NULL, NULL) !=
            CGW_OK ||
        cgw_store_run_create(s, "t", "sess_kill", "run_kill", NULL, NULL) != CGW_OK) {
        return 2;
    }
    for (uint64_t seq = 1;; seq++) {
        uint64_t got = 0;
        if (append_text(s, "t", "run_kill", 0, &got) != CGW_OK || got != seq) {
            return 3;
        }
        if (group && seq % 5 != 0) {
            continue;
        }
        if (group && cgw_store_flush(s, NULL) != CGW_OK) {
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

static void kill_mid_stream(struct fx *f, const char *mode)
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

    assert_int_equal(open_sqlite_at(f->ctx, f->path, true, false, &f->store, NULL), CGW_OK);
    struct collected c;
    assert_int_equal(read_all(f->store, "t", "run_kill", 0, 0, &c), CGW_OK);
    assert_true((uint64_t)c.n >= acked);
    for (int i = 0; i < c.n && i < 4096; i++) {
        assert_int_equal(c.seqs[i], i + 1); /* in order, no gap, no duplicate */
    }
    char want[128];
    snprintf(want, sizeof(want), "{\"seq\":%d,\"type\":\"text_delta\",\"text\":\"t%d\"}", c.n, c.n);
    assert_string_equal(c.last_json, want);
    struct runs rs = {0};
    assert_int_equal(cgw_store_run_list_unfinished(f->store, collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.r[0].id, "run_kill");
    assert_int_equal(rs.r[0].last_seq, (uint64_t)c.n);
    /* Recovery ends it with an error event after the last one. */
    struct builder bld = {0};
    size_t count = 0;
    assert_int_equal(cgw_store_recover(f->store, "error", build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 1);
    struct collected tail_ev;
    assert_int_equal(read_all(f->store, "t", "run_kill", (uint64_t)c.n, 0, &tail_ev), CGW_OK);
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
    if (ctx == NULL || open_sqlite_at(ctx, path, false, true, &s, NULL) != CGW_OK) {
        return 2;
    }
    static struct collected c;
    int prev = -1;
    for (int i = 0; i < 2000000; i++) {
        memset(&c, 0, sizeof(c));
        if (cgw_store_event_read(s, "t", run, 0, 0, collect_event, &c, NULL) != CGW_OK) {
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
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, rid);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
    const char *argv[] = {"test_store", "child-reader", f->path, rid, "3000", fdarg, NULL};
    pid_t pid = spawn_self(argv);
    assert_true(pid > 0);
    close(fds[1]);
    for (uint64_t i = 1; i <= 3000; i++) {
        assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
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
    struct fx *f = *state;
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
    assert_int_equal(open_sqlite_at(f->ctx, f->path, true, false, &s, &err), CGW_ESTORE);
    assert_non_null(strstr(err.message, "newer"));
    assert_string_equal(cgw_store_kind(NULL), "none");
}

static void test_sqlite_failed_commit_is_kept(void **state)
{
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, rid);
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
        assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    }
    long long n = 0;
    assert_int_equal(raw_query_int(f->path, "SELECT count(*) FROM events", &n), SQLITE_OK);
    assert_true(n >= 8 && n < 10);

    /* Another connection holds the write lock: the loop's commit fails and keeps the queue. */
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    event_base_loop(cgw_ctx_base(f->ctx), EVLOOP_NONBLOCK);
    cgw_error_t err;
    assert_int_equal(cgw_store_flush(f->store, &err), CGW_EBUSY);
    assert_non_null(strstr(err.message, "locked"));
    uint64_t last = 0;
    assert_int_equal(cgw_store_event_last_seq(f->store, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 11);
    /* Appends go on queueing meanwhile, with the right seqs. */
    uint64_t seq = 0;
    assert_int_equal(append_text(f->store, "t", rid, 0, &seq), CGW_OK);
    assert_int_equal(seq, 12);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    /* The lock is gone: the retry commits everything, once, in order. */
    assert_int_equal(cgw_store_flush(f->store, NULL), CGW_OK);
    struct collected c;
    assert_int_equal(read_all(f->store, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 12);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }

    /* An event larger than the queue's byte cap is written at once, after what was queued. */
    assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
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
    struct fx *f = *state;
    cgw_store_free(f->store);
    f->store = NULL;
    cgw_store_sqlite_options_t o;
    cgw_store_sqlite_options_init(&o);
    o.path = f->path;
    o.exclusive = true;
    assert_int_equal(cgw_store_open_sqlite(f->ctx, &o, &f->store, NULL), CGW_OK);
    char sid[CGW_STORE_ID_MAX];
    new_session(f->store, "t", sid);
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
    struct fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    session_and_run(f->store, "t", sid, rid);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(append_text(f->store, "t", rid, 0, NULL), CGW_OK);
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
        assert_int_equal(append_text(s, "t", rid, 0, &seq), CGW_OK);
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
    int rc = open_sqlite_at(f->ctx, f->path, true, false, &s, &err);
    if (rc == CGW_OK) {
        struct collected c;
        memset(&c, 0, sizeof(c));
        rc = cgw_store_event_read(s, "t", rid, 0, 0, collect_event, &c, &err);
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

static void *budget_malloc(size_t n)
{
    if (alloc_budget == 0) {
        return NULL;
    }
    alloc_budget -= alloc_budget > 0;
    return malloc(n);
}

static void *budget_realloc(void *p, size_t n)
{
    if (alloc_budget == 0) {
        return NULL;
    }
    alloc_budget -= alloc_budget > 0;
    return realloc(p, n);
}

#define ALLOC_OK(rc) ((rc) == CGW_OK || ((rc) == CGW_ENOMEM && ++alloc_enomem))

/* Runs the scenario under `budget`; returns 0 when every answer and the final state agree. */
static int alloc_scenario(cgw_ctx_t *ctx, const char *path, long budget)
{
    cgw_store_t *s = NULL;
    if (path != NULL) {
        unlink(path);
        if (open_sqlite_at(ctx, path, true, false, &s, NULL) != CGW_OK) {
            return 10;
        }
    } else if (cgw_store_open_memory(ctx, &s) != CGW_OK) {
        return 11;
    }
    if (cgw_store_session_create(s, "t", "sess_a", NULL, 0, NULL, NULL) != CGW_OK ||
        cgw_store_run_create(s, "t", "sess_a", "run_a", NULL, NULL) != CGW_OK) {
        return 12;
    }
    alloc_budget = budget;
    uint64_t acked = 0, msgs = 0;
    int bad = 0;
    for (int i = 0; i < 12; i++) {
        cgw_store_event_t evs[2] = {{0, 1, "text_delta", "{\"a\":1}", 7},
                                    {0, 2, "text_delta", "{\"b\":2}", 7}};
        size_t n = 1 + (size_t)(i % 2);
        int rc = cgw_store_event_append_batch(s, "t", "run_a", evs, n, NULL, NULL);
        bad |= !ALLOC_OK(rc);
        acked += rc == CGW_OK ? n : 0;
        rc = cgw_store_message_append(s, "t", "sess_a", "{\"m\":1}", 7, NULL, NULL);
        bad |= !ALLOC_OK(rc);
        msgs += rc == CGW_OK;
        char id[16];
        snprintf(id, sizeof(id), "sess_%d", i);
        cgw_store_session_t rec;
        rc = cgw_store_session_create(s, "t", id, "{}", 2, &rec, NULL);
        bad |= !ALLOC_OK(rc);
        cgw_store_session_clear(&rec);
    }
    cgw_store_session_t rec;
    int rc = cgw_store_session_get(s, "t", "sess_a", &rec, NULL);
    bad |= !ALLOC_OK(rc);
    cgw_store_session_clear(&rec);
    alloc_budget = -1;
    uint64_t last = 0, count = 0;
    if (bad || cgw_store_flush(s, NULL) != CGW_OK ||
        cgw_store_event_last_seq(s, "t", "run_a", &last, NULL) != CGW_OK || last != acked ||
        cgw_store_message_count(s, "t", "sess_a", &count, NULL) != CGW_OK || count != msgs) {
        return 13;
    }
    static struct collected c;
    if (read_all(s, "t", "run_a", 0, 0, &c) != CGW_OK || (uint64_t)c.n != acked) {
        return 14;
    }
    for (int k = 0; k < c.n; k++) {
        if (c.seqs[k] != (uint64_t)k + 1) {
            return 15;
        }
    }
    cgw_store_free(s);
    return 0;
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
    /* Every budget until one is large enough for the whole scenario: each smaller one failed
     * some allocation, and each answer was checked. */
    long budget = 0;
    int failing = 0;
    for (;; budget++) {
        alloc_enomem = 0;
        int rc = alloc_scenario(ctx, strcmp(kind, "sqlite") == 0 ? path : NULL, budget);
        if (rc != 0) {
            fprintf(stderr, "alloc-fail %s: budget %ld: failure %d\n", kind, budget, rc);
            return rc;
        }
        if (alloc_enomem == 0) {
            break;
        }
        failing++;
        if (budget > 5000) {
            return 17;
        }
    }
    fprintf(stderr, "alloc-fail %s: %d budgets failed an allocation\n", kind, failing);
    if (failing < 20) {
        return 16;
    }
    cgw_ctx_free(ctx);
    return 0;
}

static void run_alloc_child(struct fx *f, const char *kind)
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
    struct fx *f = *state;
    cgw_store_free(f->store); /* the child opens the file */
    f->store = NULL;
    run_alloc_child(f, "sqlite");
}

#define SQLITE_TESTS                                                                               \
    cmocka_unit_test_setup_teardown(test_memory_and_sqlite_agree, setup_sqlite_group, teardown),   \
        cmocka_unit_test_setup_teardown(test_sqlite_reopen_keeps_everything, setup_sqlite_group,   \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_group_commit_on_loop, setup_sqlite_group,      \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_kill_group_commit, setup_sqlite_group,         \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_kill_commit_per_append, setup_sqlite_direct,   \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_concurrent_reader, setup_sqlite_group,         \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_failed_commit_is_kept, setup_sqlite_group,     \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_sqlite_exclusive, setup_sqlite_group, teardown),      \
        cmocka_unit_test_setup_teardown(test_sqlite_sync_modes_and_damage, setup_sqlite_group,     \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_alloc_failures_memory, setup_sqlite_group, teardown), \
        cmocka_unit_test_setup_teardown(test_alloc_failures_sqlite, setup_sqlite_group, teardown), \
        cmocka_unit_test_setup_teardown(test_sqlite_bad_paths, setup_sqlite_group, teardown)

#define CONTRACT(setup)                                                                            \
    cmocka_unit_test_setup_teardown(test_session_lifecycle, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_session_list_order_and_paging, setup, teardown),      \
        cmocka_unit_test_setup_teardown(test_conversation, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_large_message_byte_exact, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(test_run_lists, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_events_append_read, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_many_events_in_order, setup, teardown),               \
        cmocka_unit_test_setup_teardown(test_run_finish, setup, teardown),                         \
        cmocka_unit_test_setup_teardown(test_recover, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_unknown_ids, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_session_delete_cascades, setup, teardown),            \
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(test_many_runs, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_reentry_refused, setup, teardown)

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
    const struct CMUnitTest memory[] = {CONTRACT(setup_memory), cmocka_unit_test(test_status_names),
                                        cmocka_unit_test(test_map)};
    const struct CMUnitTest sqlite_group[] = {CONTRACT(setup_sqlite_group)};
    const struct CMUnitTest sqlite_direct[] = {CONTRACT(setup_sqlite_direct)};
    const struct CMUnitTest sqlite_only[] = {SQLITE_TESTS};
    int failed = cmocka_run_group_tests_name("store contract: memory", memory, NULL, NULL);
    failed += cmocka_run_group_tests_name("store contract: sqlite, group commit", sqlite_group,
                                          NULL, NULL);
    failed += cmocka_run_group_tests_name("store contract: sqlite, commit per append",
                                          sqlite_direct, NULL, NULL);
    failed += cmocka_run_group_tests_name("store: sqlite files", sqlite_only, NULL, NULL);
    return failed;
}
