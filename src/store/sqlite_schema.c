/* Schema and SQL text of the SQLite store; see sqlite_schema.h and docs/store.md.
 *
 * Layout choices:
 * - events is WITHOUT ROWID with PRIMARY KEY(run_id, seq): rows are small and always read by
 *   that key range, so clustering them makes a replay one b-tree range scan.
 * - sessions and runs keep a rowid (`ord`, an INTEGER PRIMARY KEY) because listing "in creation
 *   order" needs a monotonic key: wall-clock timestamps can tie or step back.
 * - messages keep a rowid table: a message can be megabytes, and WITHOUT ROWID suits rows far
 *   smaller than a page.
 * - No FOREIGN KEY clauses: checking the parent on every event insert costs a lookup on the
 *   hot path; the store deletes children itself, in the same transaction. */
#include "store/sqlite_schema.h"

/* One column per line reads like the SQL it is. */
// clang-format off
static const char schema_v1[] =
    "CREATE TABLE sessions("
    " ord INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " tenant TEXT NOT NULL,"
    " settings TEXT NOT NULL,"
    " created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL,"
    " message_count INTEGER NOT NULL) STRICT;"
    "CREATE INDEX sessions_by_tenant ON sessions(tenant, ord);"
    "CREATE TABLE messages("
    " session_id TEXT NOT NULL,"
    " idx INTEGER NOT NULL,"
    " json TEXT NOT NULL,"
    " PRIMARY KEY(session_id, idx)) STRICT;"
    "CREATE TABLE runs("
    " ord INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " session_id TEXT NOT NULL,"
    " tenant TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN"
    "  ('running','completed','failed','cancelled','interrupted')),"
    " created_at REAL NOT NULL,"
    " updated_at REAL NOT NULL,"
    " ended_at REAL NOT NULL) STRICT;"
    "CREATE INDEX runs_by_session ON runs(session_id, ord);"
    "CREATE INDEX runs_running ON runs(ord) WHERE status = 'running';"
    "CREATE TABLE events("
    " run_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " ts REAL NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " PRIMARY KEY(run_id, seq)) STRICT, WITHOUT ROWID;";
// clang-format on

const struct cgw_sqlite_migration cgw__sqlite_migrations[] = {
    {1, schema_v1, NULL},
};

const int cgw__sqlite_schema_version =
    (int)(sizeof(cgw__sqlite_migrations) / sizeof(cgw__sqlite_migrations[0]));

#define RUN_COLS                                                                                   \
    "r.id, r.session_id, r.tenant, r.status, r.created_at, r.updated_at, r.ended_at,"              \
    " coalesce((SELECT max(e.seq) FROM events e WHERE e.run_id = r.id), 0)"

const char *const cgw__sqlite_sql[ST_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SESS_INSERT] = "INSERT INTO sessions(id, tenant, settings, created_at, updated_at,"
                       " message_count) VALUES(?1, ?2, ?3, ?4, ?4, 0)",
    [ST_SESS_GET] = "SELECT id, tenant, settings, created_at, updated_at, message_count"
                    " FROM sessions WHERE id = ?1",
    [ST_SESS_OWNER] = "SELECT tenant, message_count FROM sessions WHERE id = ?1",
    [ST_SESS_LIST] = "SELECT id, tenant, settings, created_at, updated_at, message_count"
                     " FROM sessions WHERE tenant = ?1 ORDER BY ord LIMIT ?2 OFFSET ?3",
    [ST_SESS_COUNT] = "SELECT count(*) FROM sessions WHERE tenant = ?1",
    [ST_SESS_UPDATE] = "UPDATE sessions SET settings = ?2, updated_at = ?3 WHERE id = ?1",
    [ST_SESS_SET_COUNT] = "UPDATE sessions SET message_count = ?2, updated_at = ?3 WHERE id = ?1",
    [ST_SESS_DELETE] = "DELETE FROM sessions WHERE id = ?1",
    [ST_EVENTS_DELETE_SESSION] =
        "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE session_id = ?1)",
    [ST_RUNS_DELETE_SESSION] = "DELETE FROM runs WHERE session_id = ?1",
    [ST_MSGS_DELETE_SESSION] = "DELETE FROM messages WHERE session_id = ?1",
    [ST_MSG_INSERT] = "INSERT INTO messages(session_id, idx, json) VALUES(?1, ?2, ?3)",
    [ST_MSG_LOAD] = "SELECT idx, json FROM messages WHERE session_id = ?1 ORDER BY idx",
    [ST_MSG_TRUNCATE] = "DELETE FROM messages WHERE session_id = ?1 AND idx >= ?2",
    [ST_RUN_INSERT] = "INSERT INTO runs(id, session_id, tenant, status, created_at, updated_at,"
                      " ended_at) VALUES(?1, ?2, ?3, 'running', ?4, ?4, 0)",
    [ST_RUN_GET] = "SELECT " RUN_COLS " FROM runs r WHERE r.id = ?1",
    [ST_RUN_LIST] = "SELECT " RUN_COLS " FROM runs r WHERE r.session_id = ?1 ORDER BY r.ord",
    [ST_RUN_UNFINISHED] =
        "SELECT " RUN_COLS " FROM runs r WHERE r.status = 'running' ORDER BY r.ord",
    [ST_RUN_SET_STATUS] =
        "UPDATE runs SET status = ?2, updated_at = ?3, ended_at = ?4 WHERE id = ?1",
    [ST_RUN_LOOKUP] = "SELECT tenant, status,"
                      " coalesce((SELECT max(seq) FROM events WHERE run_id = ?1), 0)"
                      " FROM runs WHERE id = ?1",
    [ST_EVENT_INSERT] =
        "INSERT INTO events(run_id, seq, ts, type, data) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_EVENT_READ] = "SELECT seq, ts, type, data FROM events WHERE run_id = ?1 AND seq > ?2"
                      " ORDER BY seq LIMIT ?3",
};
