/* The SQLite store's connection: opening with the pragmas of docs/store.md (WAL, synchronous,
 * busy_timeout), the statement cache, transactions, error mapping and schema migration. */
#include <stdio.h>
#include <string.h>

#include "core/ctx_int.h"
#include "store/sqlite_int.h"

int cgw__sq_fail(sq_store_t *sq, int rc, const char *what, cgw_error_t *err)
{
    int code = CGW_ESTORE;
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        code = CGW_ECORRUPT;
        break;
    case SQLITE_NOMEM:
        code = CGW_ENOMEM;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        code = CGW_EBUSY;
        break;
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            code = CGW_EEXIST;
        }
        break;
    default:
        break;
    }
    const char *msg = sq->db != NULL ? sqlite3_errmsg(sq->db) : sqlite3_errstr(rc);
    return cgw_error_set(err, code, "sqlite %s: %s (%s)", what, msg, sqlite3_errstr(rc));
}

int cgw__sq_stmt(sq_store_t *sq, enum cgw_sqlite_stmt which, sqlite3_stmt **out, cgw_error_t *err)
{
    if (sq->st[which] == NULL) {
        int rc = sqlite3_prepare_v3(sq->db, cgw__sqlite_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &sq->st[which], NULL);
        if (rc != SQLITE_OK) {
            return cgw__sq_fail(sq, rc, "prepare", err);
        }
    }
    *out = sq->st[which];
    return CGW_OK;
}

int cgw__sq_exec_stmt(sq_store_t *sq, sqlite3_stmt *st, const char *what, cgw_error_t *err)
{
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? CGW_OK : cgw__sq_fail(sq, rc, what, err);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return out;
}

int cgw__sq_simple(sq_store_t *sq, enum cgw_sqlite_stmt which, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = cgw__sq_stmt(sq, which, &st, err);
    return rc != CGW_OK ? rc : cgw__sq_exec_stmt(sq, st, cgw__sqlite_sql[which], err);
}

int cgw__sq_end(sq_store_t *sq, int rc, cgw_error_t *err)
{
    if (rc == CGW_OK) {
        rc = cgw__sq_simple(sq, ST_COMMIT, err);
        if (rc == CGW_OK) {
            return CGW_OK;
        }
    }
    /* A failed COMMIT may leave the transaction open (SQLITE_BUSY); roll it back either way,
     * keeping the first error for the caller. */
    if (!sqlite3_get_autocommit(sq->db)) {
        (void)cgw__sq_simple(sq, ST_ROLLBACK, NULL);
    }
    return rc;
}

/* Runs SQL text with no result rows we need (pragmas, DDL). */
static int exec_sql(sq_store_t *sq, const char *sql, cgw_error_t *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(sq->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = cgw__sq_fail(sq, rc, "exec", err);
        if (msg != NULL) {
            cgw_error_set(err, code, "sqlite exec: %s (%s)", msg, sqlite3_errstr(rc));
        }
        sqlite3_free(msg);
        return code;
    }
    return CGW_OK;
}

/* One integer from a query of one row; `missing` when it returns no row. */
static int query_int(sq_store_t *sq, const char *sql, int64_t missing, int64_t *out,
                     cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return cgw__sq_fail(sq, rc, "prepare", err);
    }
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : missing;
    int code =
        (rc == SQLITE_ROW || rc == SQLITE_DONE) ? CGW_OK : cgw__sq_fail(sq, rc, "query", err);
    sqlite3_finalize(st);
    return code;
}

static int journal_wal(sq_store_t *sq, cgw_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sq->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    bool wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    int code = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? CGW_OK : cgw__sq_fail(sq, rc, "open", err);
    sqlite3_finalize(st);
    if (code == CGW_OK && !wal) {
        code = cgw_error_set(err, CGW_ESTORE, "sqlite: %s cannot use WAL mode", sq->path);
    }
    return code;
}

static int apply_migrations(sq_store_t *sq, int64_t from, cgw_error_t *err)
{
    for (int i = 0; i < cgw__sqlite_schema_version; i++) {
        const struct cgw_sqlite_migration *m = &cgw__sqlite_migrations[i];
        if (m->version <= from) {
            continue;
        }
        int rc = exec_sql(sq, m->sql, err);
        if (rc == CGW_OK && m->hook != NULL) {
            rc = m->hook(sq->db, err);
        }
        char ins[128];
        snprintf(ins, sizeof(ins),
                 "INSERT INTO schema_version(version, applied_at) VALUES(%d, %.6f)", m->version,
                 cgw__wall_time());
        if (rc == CGW_OK) {
            rc = exec_sql(sq, ins, err);
        }
        if (rc != CGW_OK) {
            return rc;
        }
        CGW_INFO(sq->base.ctx, "store", "%s: schema migrated to version %d", sq->path, m->version);
    }
    return CGW_OK;
}

/* Reads the schema version and applies what is missing, in one IMMEDIATE transaction so two
 * processes opening a fresh file at once do not both create the tables. */
static int migrate(sq_store_t *sq, bool read_only, cgw_error_t *err)
{
    int64_t have = 0;
    int rc = CGW_OK;
    if (!read_only) {
        rc = exec_sql(sq,
                      "CREATE TABLE IF NOT EXISTS schema_version("
                      "version INTEGER PRIMARY KEY, applied_at REAL NOT NULL) STRICT;"
                      "BEGIN IMMEDIATE",
                      err);
    }
    if (rc == CGW_OK) {
        rc = query_int(sq, "SELECT coalesce(max(version), 0) FROM schema_version", 0, &have, err);
    }
    if (rc == CGW_OK && have > cgw__sqlite_schema_version) {
        rc =
            cgw_error_set(err, CGW_ESTORE, "%s has schema version %lld, newer than this build's %d",
                          sq->path, (long long)have, cgw__sqlite_schema_version);
    } else if (rc == CGW_OK && read_only && have != cgw__sqlite_schema_version) {
        rc = cgw_error_set(err, CGW_ESTORE, "%s has schema version %lld, expected %d", sq->path,
                           (long long)have, cgw__sqlite_schema_version);
    } else if (rc == CGW_OK && !read_only) {
        rc = apply_migrations(sq, have, err);
    }
    if (!read_only && !sqlite3_get_autocommit(sq->db)) {
        rc = rc == CGW_OK ? exec_sql(sq, "COMMIT", err) : rc;
        if (rc != CGW_OK && !sqlite3_get_autocommit(sq->db)) {
            (void)exec_sql(sq, "ROLLBACK", NULL);
        }
    }
    return rc;
}

static const char *sync_pragma(cgw_store_sync_t sync)
{
    switch (sync) {
    case CGW_STORE_SYNC_FULL:
        return "PRAGMA synchronous=FULL";
    case CGW_STORE_SYNC_OFF:
        return "PRAGMA synchronous=OFF";
    default:
        return "PRAGMA synchronous=NORMAL";
    }
}

int cgw__sq_open_db(sq_store_t *sq, const cgw_store_sqlite_options_t *opts, cgw_error_t *err)
{
    int flags =
        SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE |
        (opts->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(sq->path, &sq->db, flags, NULL);
    if (rc != SQLITE_OK) {
        cgw_error_set(err, CGW_ESTORE, "sqlite: cannot open %s: %s", sq->path,
                      sq->db ? sqlite3_errmsg(sq->db) : sqlite3_errstr(rc));
        cgw__sq_close_db(sq);
        return CGW_ESTORE;
    }
    sqlite3_busy_timeout(sq->db, opts->busy_timeout_ms);
    /* Must come before the first access: in exclusive mode WAL keeps its index in heap memory
     * instead of the shared -shm file. */
    int code = opts->exclusive ? exec_sql(sq, "PRAGMA locking_mode=EXCLUSIVE", err) : CGW_OK;
    if (code == CGW_OK && !opts->read_only) {
        code = journal_wal(sq, err);
    }
    if (code == CGW_OK) {
        code = exec_sql(sq, sync_pragma(opts->sync), err);
    }
    if (code == CGW_OK) {
        /* 16 MiB of page cache (SQLite's default is 2 MB): replays of recent runs and the
         * interior pages of the events b-tree stay in memory instead of being re-read. */
        code = exec_sql(sq, "PRAGMA cache_size=-16384", err);
    }
    if (code == CGW_OK && !opts->read_only) {
        /* After a checkpoint the WAL file keeps its largest size unless told otherwise: cap
         * what a burst leaves on disk at 64 MiB. */
        code = exec_sql(sq, "PRAGMA journal_size_limit=67108864", err);
    }
    if (code == CGW_OK) {
        code = migrate(sq, opts->read_only, err);
    }
    if (code != CGW_OK) {
        /* Name the file: sqlite's own message ("file is not a database") does not. */
        if (err != NULL) {
            char msg[sizeof(err->message)];
            snprintf(msg, sizeof(msg), "%s", err->message);
            cgw_error_set(err, code, "%s: %s", sq->path, msg);
        }
        cgw__sq_close_db(sq);
    }
    return code;
}

void cgw__sq_close_db(sq_store_t *sq)
{
    if (sq->db != NULL && !sq->read_only) {
        /* SQLite's advice for long-lived connections: refresh the planner's statistics where
         * they are stale, at close. Best effort. */
        (void)sqlite3_exec(sq->db, "PRAGMA optimize", NULL, NULL, NULL);
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        sqlite3_finalize(sq->st[i]);
        sq->st[i] = NULL;
    }
    if (sq->db != NULL) {
        int rc = sqlite3_close(sq->db);
        if (rc != SQLITE_OK) {
            CGW_ERROR(sq->base.ctx, "store", "closing %s: %s", sq->path, sqlite3_errstr(rc));
        }
        sq->db = NULL;
    }
}
