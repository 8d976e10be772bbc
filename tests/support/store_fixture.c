/* The store tests' shared fixture; see store_fixture.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_fixture.h"

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

int st_open_sqlite_at(cgw_ctx_t *ctx, const char *path, bool group, bool read_only,
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

static int st_setup_kind(void **state, enum st_kind kind)
{
    struct st_fx *f = calloc(1, sizeof(*f));
    f->kind = kind;
    f->ctx = cgw_test_ctx_new();
    snprintf(f->dir, sizeof(f->dir), "/tmp/cgw-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/gateway.db", f->dir);
    int rc = kind == ST_KIND_MEMORY
                 ? cgw_store_open_memory(f->ctx, &f->store)
                 : st_open_sqlite_at(f->ctx, f->path, kind == ST_KIND_SQLITE_GROUP, false,
                                     &f->store, NULL);
    assert_int_equal(rc, CGW_OK);
    *state = f;
    return 0;
}

int st_setup_memory(void **state)
{
    return st_setup_kind(state, ST_KIND_MEMORY);
}

int st_setup_sqlite_group(void **state)
{
    return st_setup_kind(state, ST_KIND_SQLITE_GROUP);
}

int st_setup_sqlite_direct(void **state)
{
    return st_setup_kind(state, ST_KIND_SQLITE_DIRECT);
}

int st_teardown(void **state)
{
    struct st_fx *f = *state;
    cgw_store_free(f->store);
    cgw_ctx_free(f->ctx);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- helpers -------------------------------------------------------------------------------- */

const char *st_new_session(cgw_store_t *s, const char *tenant, char *id_out)
{
    cgw_store_session_t rec;
    assert_int_equal(cgw_store_session_create(s, tenant, NULL, "{\"model\":\"m\"}", 13, &rec, NULL),
                     CGW_OK);
    strcpy(id_out, rec.id);
    cgw_store_session_clear(&rec);
    return id_out;
}

const char *st_new_run(cgw_store_t *s, const char *tenant, const char *sid, char *id_out)
{
    cgw_store_run_t run;
    assert_int_equal(cgw_store_run_create(s, tenant, sid, NULL, &run, NULL), CGW_OK);
    strcpy(id_out, run.id);
    return id_out;
}

/* A session of `tenant` with one run. */
void st_session_and_run(cgw_store_t *s, const char *tenant, char *sid, char *rid)
{
    st_new_session(s, tenant, sid);
    st_new_run(s, tenant, sid, rid);
}

int st_append_text(cgw_store_t *s, const char *tenant, const char *run, uint64_t seq, uint64_t *got)
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

int st_collect_event(const cgw_store_event_t *ev, void *user)
{
    struct st_collected *c = user;
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

int st_read_all(cgw_store_t *s, const char *tenant, const char *run, uint64_t after, size_t limit,
                struct st_collected *c)
{
    memset(c, 0, sizeof(*c));
    return cgw_store_event_read(s, tenant, run, after, limit, st_collect_event, c, NULL);
}

int st_collect_run(const cgw_store_run_t *run, void *user)
{
    struct st_runs *rs = user;
    rs->r[rs->n++] = *run;
    return CGW_OK;
}

const char *st_build_error(const cgw_store_run_t *run, uint64_t seq, double ts, size_t *len,
                           void *user)
{
    struct st_builder *b = user;
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
