/* Private parts of the SQLite store shared by its two files: sqlite_db.c (connection, statement
 * cache, transactions, error mapping, schema migration) and store_sqlite.c (the operations and
 * the group-commit queue). */
#ifndef CGW_STORE_SQLITE_INT_H
#define CGW_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "store/map.h"
#include "store/sqlite_schema.h"
#include "store/store_int.h"

struct event;

/* The run cache: owner and last seq (queued appends included) of runs recently appended to
 * or read, so the hot path (an append, a replay) checks tenant and seq without a query. The
 * store's connection is the database's only writer, which keeps the cache exact; it is
 * bounded by RUN_CACHE_MAX and emptied when sessions are deleted. */
struct run_entry {
    char id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    uint64_t last_seq;
};

struct pend_event {
    char run_id[CGW_STORE_ID_MAX];
    uint64_t seq;
    double ts;
    size_t json_len;
    const char *type; /* points into bytes, after the json */
    char bytes[];
};

typedef struct sq_store {
    struct cgw_store base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT_];
    bool group_commit;
    bool read_only;
    size_t max_pending_events, max_pending_bytes;

    /* group commit: events appended but not yet committed, in append order */
    struct pend_event **pend;
    size_t npend, pend_cap, pend_bytes;
    struct event *commit_ev;
    bool commit_scheduled;

    cgw_map_t runs; /* run id -> struct run_entry */
} sq_store_t;

/* The cached statement `which`, reset and ready for binding. CGW_OK or a mapped error. */
int cgw__sq_stmt(sq_store_t *sq, enum cgw_sqlite_stmt which, sqlite3_stmt **out, cgw_error_t *err);

/* Maps a SQLite result code to a cgw error (CGW_ECORRUPT, CGW_ENOMEM, CGW_EEXIST for a unique
 * key, CGW_ESTORE otherwise) and fills err with "<what>: <sqlite message>". */
int cgw__sq_fail(sq_store_t *sq, int rc, const char *what, cgw_error_t *err);

/* Steps a statement that returns no rows, then resets it. */
int cgw__sq_exec_stmt(sq_store_t *sq, sqlite3_stmt *st, const char *what, cgw_error_t *err);

/* Runs a cached no-argument statement (BEGIN IMMEDIATE, COMMIT, ROLLBACK). */
int cgw__sq_simple(sq_store_t *sq, enum cgw_sqlite_stmt which, cgw_error_t *err);

/* Ends a transaction: COMMIT when rc is CGW_OK (returning the commit's error), else ROLLBACK
 * (returning rc). */
int cgw__sq_end(sq_store_t *sq, int rc, cgw_error_t *err);

/* Opens the connection with the pragmas and brings the schema up to date. On failure the
 * connection is closed. */
int cgw__sq_open_db(sq_store_t *sq, const cgw_store_sqlite_options_t *opts, cgw_error_t *err);

/* Finalizes every cached statement and closes the connection. */
void cgw__sq_close_db(sq_store_t *sq);

#endif
