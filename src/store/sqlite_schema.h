/* The SQLite store's schema and statements, kept apart from the code that runs them.
 *
 * Migrations: schema_version holds one row per applied version. To change the schema, append
 * an entry to cgw__sqlite_migrations (never edit a published one); opening a database applies
 * the missing ones in one IMMEDIATE transaction, each optionally followed by a C hook for data
 * rewrites that SQL cannot express. A database whose version is newer than the build's is
 * refused, so an old binary never writes a schema it does not know. */
#ifndef CGW_STORE_SQLITE_SCHEMA_H
#define CGW_STORE_SQLITE_SCHEMA_H

#include <sqlite3.h>

#include "cgw/error.h"

struct cgw_sqlite_migration {
    int version;
    const char *sql;
    /* Optional: runs after `sql` inside the same transaction. CGW_OK or an error. */
    int (*hook)(sqlite3 *db, cgw_error_t *err);
};

extern const struct cgw_sqlite_migration cgw__sqlite_migrations[];
extern const int cgw__sqlite_schema_version;

/* Cached statements, prepared on first use (SQLITE_PREPARE_PERSISTENT). */
enum cgw_sqlite_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SESS_INSERT,
    ST_SESS_GET,
    ST_SESS_OWNER,
    ST_SESS_LIST,
    ST_SESS_COUNT,
    ST_SESS_UPDATE,
    ST_SESS_SET_COUNT,
    ST_SESS_DELETE,
    ST_EVENTS_DELETE_SESSION,
    ST_RUNS_DELETE_SESSION,
    ST_MSGS_DELETE_SESSION,
    ST_MSG_INSERT,
    ST_MSG_LOAD,
    ST_MSG_TRUNCATE,
    ST_RUN_INSERT,
    ST_RUN_GET,
    ST_RUN_LIST,
    ST_RUN_UNFINISHED,
    ST_RUN_SET_STATUS,
    ST_RUN_LOOKUP,
    ST_EVENT_INSERT,
    ST_EVENT_READ,
    ST_COUNT_
};

extern const char *const cgw__sqlite_sql[ST_COUNT_];

#endif
