/* The store contract, run against every implementation: memory, SQLite with group commit,
 * SQLite with one transaction per append (test_store_sqlite.c has the SQLite-only behaviour:
 * reopen, kill -9, a concurrent reader, bad files, allocation failures). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/map.h"
#include "store_fixture.h"

/* Two tenants: "t" with session s1 and runs a and c, "u" with session s2 and run b, created
 * in the order a, b, c. */
struct world {
    char s1[CGW_STORE_ID_MAX], s2[CGW_STORE_ID_MAX];
    char a[CGW_STORE_ID_MAX], b[CGW_STORE_ID_MAX], c[CGW_STORE_ID_MAX];
};

static void make_world(cgw_store_t *s, struct world *w)
{
    st_new_session(s, "t", w->s1);
    st_new_session(s, "u", w->s2);
    st_new_run(s, "t", w->s1, w->a);
    st_new_run(s, "u", w->s2, w->b);
    st_new_run(s, "t", w->s1, w->c);
}

/* ---- the contract --------------------------------------------------------------------------- */

static void test_session_lifecycle(void **state)
{
    struct st_fx *f = *state;
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
    /* A failed create or get leaves the record zeroed: clearing it is always safe. */
    cgw_store_session_t z;
    memset(&z, 0x5a, sizeof(z));
    assert_int_equal(cgw_store_session_create(s, "t1", "my-session_1", NULL, 0, &z, NULL),
                     CGW_EEXIST);
    assert_null(z.settings);
    cgw_store_session_clear(&z);
    memset(&z, 0x5a, sizeof(z));
    assert_int_equal(cgw_store_session_get(s, "t1", "sess_none", &z, NULL), CGW_ENOENT);
    assert_null(z.settings);
    cgw_store_session_clear(&z);
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
    struct st_fx *f = *state;
    char want[6][CGW_STORE_ID_MAX];
    for (int i = 0; i < 6; i++) {
        st_new_session(f->store, "lister", want[i]);
        char other[CGW_STORE_ID_MAX];
        st_new_session(f->store, "someone-else", other);
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
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX];
    st_new_session(s, "t", sid);
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
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX];
    st_new_session(f->store, "t", sid);
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
    st_new_run(f->store, "t", sid, rid);
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
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX];
    st_session_and_run(s, "t", sid, r1);
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

static void test_run_lists(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    struct world w;
    make_world(s, &w);
    const char *s1 = w.s1, *a = w.a, *b = w.b, *c = w.c;
    assert_int_equal(st_append_text(s, "t", c, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_set_status(s, "t", a, CGW_RUN_CANCELLED, NULL), CGW_OK);

    struct st_runs rs = {0};
    assert_int_equal(cgw_store_run_list(s, "t", s1, st_collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.r[0].id, a);
    assert_int_equal(rs.r[0].status, CGW_RUN_CANCELLED);
    assert_string_equal(rs.r[1].id, c);
    assert_int_equal(rs.r[1].last_seq, 1);

    memset(&rs, 0, sizeof(rs));
    assert_int_equal(cgw_store_run_list_unfinished(s, st_collect_run, &rs, NULL), CGW_OK);
    assert_int_equal(rs.n, 2); /* every tenant's */
    assert_string_equal(rs.r[0].id, b);
    assert_string_equal(rs.r[0].tenant, "u");
    assert_string_equal(rs.r[1].id, c);
}

static void test_events_append_read(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(s, "t", sid, rid);
    uint64_t seq = 0, last = 99;
    assert_int_equal(cgw_store_event_last_seq(s, "t", rid, &last, NULL), CGW_OK);
    assert_int_equal(last, 0);
    for (uint64_t i = 1; i <= 10; i++) {
        assert_int_equal(st_append_text(s, "t", rid, i % 2 ? 0 : i, &seq), CGW_OK);
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

    struct st_collected c;
    assert_int_equal(st_read_all(s, "t", rid, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 13);
    for (int i = 0; i < 13; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }
    assert_string_equal(c.types[0], "text_delta");
    assert_int_equal(st_read_all(s, "t", rid, 4, 3, &c), CGW_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.seqs[0], 5);
    assert_int_equal(c.seqs[2], 7);
    assert_string_equal(c.last_json, "{\"seq\":7,\"type\":\"text_delta\",\"text\":\"t7\"}");
    assert_true(c.last_ts == 1700000000.5 + 7);
    assert_int_equal(st_read_all(s, "t", rid, 10, 0, &c), CGW_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.last_json, "{}");
    assert_int_equal(st_read_all(s, "t", rid, 13, 0, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(st_read_all(s, "t", rid, 1000, 5, &c), CGW_OK);
    assert_int_equal(c.n, 0);
    /* A callback's stop value ends the read and comes back. */
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(cgw_store_event_read(s, "t", rid, 0, 0, st_collect_event, &c, NULL),
                     CGW_ECANCELED);
    assert_int_equal(c.n, 2);
}

static void test_many_events_in_order(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], r1[CGW_STORE_ID_MAX], r2[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, r1);
    st_new_run(f->store, "t", sid, r2);
    /* Interleaved runs, more than the group-commit queue holds. */
    for (uint64_t i = 1; i <= 3000; i++) {
        assert_int_equal(st_append_text(f->store, "t", i % 3 ? r1 : r2, 0, NULL), CGW_OK);
    }
    struct st_collected c;
    assert_int_equal(st_read_all(f->store, "t", r1, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 2000);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(c.seqs[i], i + 1);
    }
    assert_int_equal(st_read_all(f->store, "t", r2, 950, 50, &c), CGW_OK);
    assert_int_equal(c.n, 50);
    assert_int_equal(c.seqs[0], 951);
    assert_int_equal(c.seqs[49], 1000);
}

static void test_run_finish(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(s, "t", sid, rid);
    assert_int_equal(st_append_text(s, "t", rid, 0, NULL), CGW_OK);
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
    assert_int_equal(st_append_text(s, "t", rid, 3, &seq), CGW_OK);
    struct st_collected c;
    assert_int_equal(st_read_all(s, "t", rid, 1, 0, &c), CGW_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.types[0], "stream_complete");
    /* Without an event, finish is a status change. */
    char r2[CGW_STORE_ID_MAX];
    st_new_run(s, "t", sid, r2);
    assert_int_equal(cgw_store_run_finish(s, "t", r2, CGW_RUN_CANCELLED, NULL, &seq, NULL), CGW_OK);
    assert_int_equal(cgw_store_run_get(s, "t", r2, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_CANCELLED);
    assert_int_equal(r.last_seq, 0);
}

static void test_recover(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    struct world w;
    make_world(s, &w);
    const char *s1 = w.s1, *a = w.a, *b = w.b, *done = w.c;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st_append_text(s, "t", a, 0, NULL), CGW_OK);
    }
    assert_int_equal(cgw_store_run_set_status(s, "t", done, CGW_RUN_COMPLETED, NULL), CGW_OK);
    struct st_builder bld = {0};
    size_t count = 0;
    assert_int_equal(cgw_store_recover(s, "bad type", st_build_error, &bld, &count, NULL),
                     CGW_EINVAL);
    assert_int_equal(cgw_store_recover(s, "error", st_build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 2);
    assert_int_equal(bld.calls, 2);
    cgw_store_run_t r;
    assert_int_equal(cgw_store_run_get(s, "t", a, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_INTERRUPTED);
    assert_int_equal(r.last_seq, 5);
    assert_true(r.ended_at > 0);
    struct st_collected c;
    assert_int_equal(st_read_all(s, "t", a, 4, 0, &c), CGW_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.types[0], "error");
    assert_non_null(strstr(c.last_json, "\"seq\":5"));
    assert_int_equal(st_read_all(s, "u", b, 0, 0, &c), CGW_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(cgw_store_run_get(s, "t", done, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_COMPLETED);
    /* Nothing left to recover; a builder that gives no event still ends the run. */
    assert_int_equal(cgw_store_recover(s, "error", st_build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 0);
    char d[CGW_STORE_ID_MAX];
    st_new_run(s, "t", s1, d);
    bld.give_none = true;
    assert_int_equal(cgw_store_recover(s, "error", st_build_error, &bld, &count, NULL), CGW_OK);
    assert_int_equal(count, 1);
    assert_int_equal(cgw_store_run_get(s, "t", d, &r, NULL), CGW_OK);
    assert_int_equal(r.status, CGW_RUN_INTERRUPTED);
    assert_int_equal(r.last_seq, 0);
    assert_int_equal(cgw_store_recover(s, NULL, NULL, NULL, NULL, NULL), CGW_OK);
}

static void test_tenant_isolation(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(s, "alice", sid, rid);
    assert_int_equal(st_append_text(s, "alice", rid, 0, NULL), CGW_OK);
    const char *eve = "eve";
    cgw_store_session_t rec;
    cgw_store_run_t run;
    uint64_t n;
    struct msgs m = {0};
    struct st_runs rs = {0};
    struct st_collected c;
    cgw_store_event_t ev = {0, 1, "x", "{}", 2};
    assert_int_equal(cgw_store_session_get(s, eve, sid, &rec, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_update_settings(s, eve, sid, "{}", 2, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_session_delete(s, eve, sid, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_append(s, eve, sid, "{}", 2, NULL, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_load(s, eve, sid, collect_msg, &m, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_count(s, eve, sid, &n, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_message_truncate(s, eve, sid, 0, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_create(s, eve, sid, NULL, NULL, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_list(s, eve, sid, st_collect_run, &rs, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_get(s, eve, rid, &run, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_set_status(s, eve, rid, CGW_RUN_FAILED, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_finish(s, eve, rid, CGW_RUN_FAILED, &ev, NULL, NULL),
                     CGW_ENOENT);
    assert_int_equal(cgw_store_event_append(s, eve, rid, &ev, NULL, NULL), CGW_ENOENT);
    assert_int_equal(st_read_all(s, eve, rid, 0, 0, &c), CGW_ENOENT);
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
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    cgw_store_session_t rec;
    cgw_store_run_t run;
    uint64_t n;
    struct st_collected c;
    cgw_store_event_t ev = {0, 1, "x", "{}", 2};
    cgw_error_t err;
    assert_int_equal(cgw_store_session_get(s, "t", "sess_missing", &rec, &err), CGW_ENOENT);
    assert_int_equal(err.code, CGW_ENOENT);
    assert_int_equal(cgw_store_message_count(s, "t", "sess_missing", &n, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_run_get(s, "t", "run_missing", &run, NULL), CGW_ENOENT);
    assert_int_equal(cgw_store_event_append(s, "t", "run_missing", &ev, NULL, NULL), CGW_ENOENT);
    assert_int_equal(st_read_all(s, "t", "run_missing", 0, 0, &c), CGW_ENOENT);
    assert_int_equal(cgw_store_run_set_status(s, "t", "run_missing", CGW_RUN_FAILED, NULL),
                     CGW_ENOENT);
    assert_int_equal(cgw_store_event_last_seq(s, "t", "run_missing", &n, NULL), CGW_ENOENT);
}

static void test_session_delete_cascades(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX], keep[CGW_STORE_ID_MAX],
        keep_run[CGW_STORE_ID_MAX];
    st_new_session(s, "t", sid);
    st_new_session(s, "t", keep);
    st_new_run(s, "t", sid, rid);
    st_new_run(s, "t", keep, keep_run);
    assert_int_equal(cgw_store_message_append(s, "t", sid, "{}", 2, NULL, NULL), CGW_OK);
    assert_int_equal(st_append_text(s, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(st_append_text(s, "t", keep_run, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_session_delete(s, "t", sid, NULL), CGW_OK);
    cgw_store_run_t run;
    struct st_collected c;
    assert_int_equal(cgw_store_run_get(s, "t", rid, &run, NULL), CGW_ENOENT);
    assert_int_equal(st_read_all(s, "t", rid, 0, 0, &c), CGW_ENOENT);
    assert_int_equal(st_read_all(s, "t", keep_run, 0, 0, &c), CGW_OK);
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
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX];
    st_new_session(f->store, "t", sid);
    /* More runs than the SQLite run cache holds, each appended to twice, interleaved. */
    enum { N = 4200 };
    static char ids[N][CGW_STORE_ID_MAX];
    for (int i = 0; i < N; i++) {
        st_new_run(f->store, "t", sid, ids[i]);
    }
    for (int pass = 1; pass <= 2; pass++) {
        for (int i = 0; i < N; i++) {
            uint64_t seq = 0;
            assert_int_equal(st_append_text(f->store, "t", ids[i], 0, &seq), CGW_OK);
            assert_int_equal(seq, pass);
        }
    }
    struct st_collected c;
    for (int i = 0; i < N; i += 997) {
        assert_int_equal(st_read_all(f->store, "t", ids[i], 0, 0, &c), CGW_OK);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.last_json, "{\"seq\":2,\"type\":\"text_delta\",\"text\":\"t2\"}");
    }
}

static void test_bad_arguments(void **state)
{
    struct st_fx *f = *state;
    cgw_store_t *s = f->store;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(s, "t", sid, rid);
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
    struct st_fx *f = user;
    uint64_t n;
    (void)ev;
    cgw_error_t err;
    assert_int_equal(cgw_store_session_count(f->store, "t", &n, &err), CGW_EBUSY);
    assert_int_equal(st_append_text(f->store, "t", "run_x", 0, NULL), CGW_EBUSY);
    return CGW_OK;
}

static void test_reentry_refused(void **state)
{
    struct st_fx *f = *state;
    char sid[CGW_STORE_ID_MAX], rid[CGW_STORE_ID_MAX];
    st_session_and_run(f->store, "t", sid, rid);
    assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
    assert_int_equal(cgw_store_event_read(f->store, "t", rid, 0, 0, reenter_cb, f, NULL), CGW_OK);
    /* And the store works normally afterwards. */
    assert_int_equal(st_append_text(f->store, "t", rid, 0, NULL), CGW_OK);
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

#define CONTRACT(setup)                                                                            \
    cmocka_unit_test_setup_teardown(test_session_lifecycle, setup, st_teardown),                   \
        cmocka_unit_test_setup_teardown(test_session_list_order_and_paging, setup, st_teardown),   \
        cmocka_unit_test_setup_teardown(test_conversation, setup, st_teardown),                    \
        cmocka_unit_test_setup_teardown(test_large_message_byte_exact, setup, st_teardown),        \
        cmocka_unit_test_setup_teardown(test_runs, setup, st_teardown),                            \
        cmocka_unit_test_setup_teardown(test_run_lists, setup, st_teardown),                       \
        cmocka_unit_test_setup_teardown(test_events_append_read, setup, st_teardown),              \
        cmocka_unit_test_setup_teardown(test_many_events_in_order, setup, st_teardown),            \
        cmocka_unit_test_setup_teardown(test_run_finish, setup, st_teardown),                      \
        cmocka_unit_test_setup_teardown(test_recover, setup, st_teardown),                         \
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, st_teardown),                \
        cmocka_unit_test_setup_teardown(test_unknown_ids, setup, st_teardown),                     \
        cmocka_unit_test_setup_teardown(test_session_delete_cascades, setup, st_teardown),         \
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, st_teardown),                   \
        cmocka_unit_test_setup_teardown(test_many_runs, setup, st_teardown),                       \
        cmocka_unit_test_setup_teardown(test_reentry_refused, setup, st_teardown)

int main(void)
{
    const struct CMUnitTest memory[] = {
        CONTRACT(st_setup_memory), cmocka_unit_test(test_status_names), cmocka_unit_test(test_map)};
    const struct CMUnitTest sqlite_group[] = {CONTRACT(st_setup_sqlite_group)};
    const struct CMUnitTest sqlite_direct[] = {CONTRACT(st_setup_sqlite_direct)};
    int failed = cmocka_run_group_tests_name("store contract: memory", memory, NULL, NULL);
    failed += cmocka_run_group_tests_name("store contract: sqlite, group commit", sqlite_group,
                                          NULL, NULL);
    failed += cmocka_run_group_tests_name("store contract: sqlite, commit per append",
                                          sqlite_direct, NULL, NULL);
    return failed;
}
