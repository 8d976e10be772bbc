/* The store tests' shared fixture (tests/unit/test_store.c runs the contract suite against
 * every implementation, tests/unit/test_store_sqlite.c the SQLite-only behaviour): a context,
 * a store of one kind in a fresh temporary folder, and helpers that create objects and collect
 * what reads return. Helpers fail the running cmocka test on unexpected answers. */
#ifndef CGW_STORE_FIXTURE_H
#define CGW_STORE_FIXTURE_H

#include "testutil.h"

enum st_kind { ST_KIND_MEMORY, ST_KIND_SQLITE_GROUP, ST_KIND_SQLITE_DIRECT };

/* The cmocka state of every store test. */
struct st_fx {
    enum st_kind kind;
    cgw_ctx_t *ctx;
    cgw_store_t *store; /* tests may free and replace it; set NULL when freed */
    char dir[64];       /* fresh temporary folder, removed by st_teardown */
    char path[128];     /* dir/gateway.db */
};

/* cmocka setups (one per kind) and the teardown that frees store, context and folder. */
int st_setup_memory(void **state);
int st_setup_sqlite_group(void **state);
int st_setup_sqlite_direct(void **state);
int st_teardown(void **state);

/* Opens a SQLite store at `path` with default options but these. */
int st_open_sqlite_at(cgw_ctx_t *ctx, const char *path, bool group, bool read_only,
                      cgw_store_t **out, cgw_error_t *err);

/* Creates a session (generated id, small settings) / a run of it; the id goes to id_out
 * (CGW_STORE_ID_MAX bytes), which is also returned. */
const char *st_new_session(cgw_store_t *s, const char *tenant, char *id_out);
const char *st_new_run(cgw_store_t *s, const char *tenant, const char *sid, char *id_out);
void st_session_and_run(cgw_store_t *s, const char *tenant, char *sid, char *rid);

/* Appends a text_delta whose JSON names the seq it gets: {"seq":N,"type":"text_delta",
 * "text":"tN"}, ts 1700000000.5 + N. `seq` 0 lets the store pick. Returns the store's code. */
int st_append_text(cgw_store_t *s, const char *tenant, const char *run, uint64_t seq,
                   uint64_t *got);

/* What an event read returned. */
struct st_collected {
    int n;
    uint64_t seqs[4096];
    char types[8][CGW_STORE_TYPE_MAX];
    char last_json[512];
    double last_ts;
    int stop_after; /* 0 = never; else return CGW_ECANCELED after this many */
};

int st_collect_event(const cgw_store_event_t *ev, void *user);
/* Clears `c` and reads the run's events after `after` into it. */
int st_read_all(cgw_store_t *s, const char *tenant, const char *run, uint64_t after, size_t limit,
                struct st_collected *c);

/* What a run list returned (up to 8). */
struct st_runs {
    int n;
    cgw_store_run_t r[8];
};

int st_collect_run(const cgw_store_run_t *run, void *user);

/* A cgw_store_recover builder: {"seq":N,"ts":T,"event":{"type":"error",...}}, or NULL when
 * give_none is set. */
struct st_builder {
    int calls;
    char buf[256];
    bool give_none;
};

const char *st_build_error(const cgw_store_run_t *run, uint64_t seq, double ts, size_t *len,
                           void *user);

#endif
