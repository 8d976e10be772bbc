/*
 * The store: durable sessions, conversations, runs and run event streams.
 *
 * A cgw_store_t hides one implementation behind a vtable: an in-memory store (tests, users who
 * want no disk), a SQLite store (WAL, the embedded default) and, later, a Redis Streams store.
 * docs/store.md has the schema, the durability guarantees and the recovery procedure.
 *
 * Data model. A tenant owns sessions. A session has settings (a JSON blob kept as given), a
 * conversation (ordered messages, each kept as the exact bytes handed in, numbered from 0) and
 * runs. A run belongs to one session and has a status and an event stream: entries numbered
 * by seq from 1, each with a wall-clock ts, a type and the entry's JSON bytes (kept exact).
 *
 * Calling model. Every call is synchronous: it has done its work when it returns, and it runs
 * on the thread of the context's loop (a store is loop-affine and not thread-safe, like every
 * cgw object). The SQLite calls block the loop for tens of microseconds (docs/benchmarks.md).
 * A networked store (Redis) will implement the same calls over a connection with a short
 * timeout; an asynchronous variant (`..._async(store, ..., cb, user)`, completion on the loop)
 * may be added beside each call without changing these. See docs/store.md, "Redis".
 *
 * Tenants. Every call that names a session or a run takes the tenant, and returns CGW_ENOENT
 * when the object does not exist or belongs to another tenant (the two are indistinguishable).
 *
 * Iteration. Calls that return many records take a callback. Records passed to it are
 * borrowed and valid only during the call. The callback returns CGW_OK to go on; any other
 * value stops the iteration and is returned by the call. A callback must not call into the
 * same store (the call would return CGW_EBUSY).
 *
 * Errors common to every call: CGW_EINVAL (NULL store, bad tenant, malformed id, NULL data
 * with a length), CGW_ENOMEM, CGW_EBUSY (called from one of the store's own callbacks),
 * CGW_ESTORE (the backend failed; err->message has its message), CGW_ECORRUPT (the database
 * is damaged or not a database). `err` is optional and filled on failure.
 */
#ifndef CGW_STORE_H
#define CGW_STORE_H

#include "ctx.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgw_store cgw_store_t;

/** Ids are at most 63 bytes of [A-Za-z0-9_-]; generated ids are "sess_" or "run_" followed by
 *  22 random characters of [A-Za-z0-9] (131 bits). */
#define CGW_STORE_ID_MAX 64
/** Tenants are 1 to 127 bytes of printable ASCII (0x21-0x7e). */
#define CGW_STORE_TENANT_MAX 128
/** Event types are 1 to 63 bytes of printable ASCII. */
#define CGW_STORE_TYPE_MAX 64

typedef enum cgw_run_status {
    CGW_RUN_RUNNING = 0,
    CGW_RUN_COMPLETED,
    CGW_RUN_FAILED,
    CGW_RUN_CANCELLED,
    CGW_RUN_INTERRUPTED /**< was running when the gateway stopped; set by recovery */
} cgw_run_status_t;

/** "running", "completed", "failed", "cancelled", "interrupted"; "unknown" otherwise. */
CGW_EXTERN const char *cgw_run_status_name(cgw_run_status_t status);
/** Parses a name of cgw_run_status_name. Returns CGW_OK or CGW_EINVAL. */
CGW_EXTERN int cgw_run_status_parse(const char *name, cgw_run_status_t *out);
/** True for every status but CGW_RUN_RUNNING. */
CGW_EXTERN bool cgw_run_status_is_final(cgw_run_status_t status);

/** A session. As an output of get/create it owns `settings` (release with
 *  cgw_store_session_clear; get and create zero it first, so clearing it is safe even after
 *  a failure); passed to a list callback it is borrowed. */
typedef struct cgw_store_session {
    char id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    double created_at;      /**< Unix seconds */
    double updated_at;      /**< last settings change or message append/truncate */
    uint64_t message_count; /**< messages in the conversation */
    char *settings;         /**< JSON bytes as stored, NUL-terminated after settings_len */
    size_t settings_len;
} cgw_store_session_t;

/** Frees what a session record owns and zeroes it (NULL is fine). */
CGW_EXTERN void cgw_store_session_clear(cgw_store_session_t *s);

/** A run. Owns nothing: copy it freely. */
typedef struct cgw_store_run {
    char id[CGW_STORE_ID_MAX];
    char session_id[CGW_STORE_ID_MAX];
    char tenant[CGW_STORE_TENANT_MAX];
    cgw_run_status_t status;
    double created_at;
    double updated_at; /**< last status change */
    double ended_at;   /**< when it reached a final status, 0 while running */
    uint64_t last_seq; /**< seq of its last event, 0 if none */
} cgw_store_run_t;

/** One event entry. As input it is borrowed for the duration of the call; in a read
 *  callback it is valid only during the callback. `json` need not be NUL-terminated on input;
 *  on output it is. */
typedef struct cgw_store_event {
    uint64_t seq;     /**< from 1 per run; on append 0 means "the next one" */
    double ts;        /**< Unix seconds */
    const char *type; /**< "text_delta", "error", ... (NUL-terminated) */
    const char *json; /**< the whole entry's compact JSON bytes */
    size_t json_len;
} cgw_store_event_t;

typedef int (*cgw_store_session_cb)(const cgw_store_session_t *session, void *user);
typedef int (*cgw_store_run_cb)(const cgw_store_run_t *run, void *user);
typedef int (*cgw_store_event_cb)(const cgw_store_event_t *event, void *user);
/** A conversation message: its index (from 0) and exact bytes (NUL-terminated after len). */
typedef int (*cgw_store_message_cb)(uint64_t index, const char *json, size_t len, void *user);

/* ---- opening -------------------------------------------------------------------------------- */

typedef enum cgw_store_sync {
    CGW_STORE_SYNC_NORMAL = 0, /**< WAL + synchronous=NORMAL: survives process crashes; a power
                                    loss may drop the last commits (default) */
    CGW_STORE_SYNC_FULL,       /**< fsync on every commit: survives power loss, ~7x slower */
    CGW_STORE_SYNC_OFF         /**< no fsync at all: for tests and throwaway data */
} cgw_store_sync_t;

typedef struct cgw_store_sqlite_options {
    /** Database file. If NULL, `data_dir` must be set and the file is data_dir/gateway.db. */
    const char *path;
    /** Folder for gateway.db, created (mode 0700, one level) if missing. Ignored with `path`. */
    const char *data_dir;
    cgw_store_sync_t sync;
    /** Group commit (default true): event appends are queued and committed together once per
     *  loop iteration, or when the queue passes its caps, or by cgw_store_flush, any other
     *  write, any read, or cgw_store_free. false: every append is its own transaction. */
    bool group_commit;
    size_t max_pending_events; /**< queue cap in events (default 1024) */
    size_t max_pending_bytes;  /**< queue cap in JSON bytes (default 4 MiB); a batch larger
                                    than this is written at once instead of queued */
    /** How long a statement waits for another connection's lock (default 5000 ms). */
    int busy_timeout_ms;
    /** Open read-only (inspection tools, a second process reading); writes fail. */
    bool read_only;
    /** locking_mode=EXCLUSIVE: no other connection or process can open the file while the
     *  store is open (not even to read); saves the file-lock system calls every transaction
     *  and every read otherwise makes. Default false. */
    bool exclusive;
} cgw_store_sqlite_options_t;

/** Fills `opts` with the defaults (no path, NORMAL, group commit, caps, 5 s busy timeout). */
CGW_EXTERN void cgw_store_sqlite_options_init(cgw_store_sqlite_options_t *opts);

/** Opens an in-memory store on `ctx` (borrowed; must outlive the store). Nothing survives
 *  cgw_store_free. Returns CGW_OK, CGW_EINVAL or CGW_ENOMEM. */
CGW_EXTERN int cgw_store_open_memory(cgw_ctx_t *ctx, cgw_store_t **out);

/** Opens (creating if needed) a SQLite store: WAL mode, schema created or migrated to the
 *  current version. `ctx` is borrowed and must outlive the store; `opts` is borrowed (its
 *  strings are copied). Group commits run on ctx's loop. Returns CGW_OK,
 *  CGW_EINVAL (no path), CGW_ESTORE (cannot create the folder, open or migrate the file, or
 *  the file was written by a newer version), CGW_ECORRUPT (not a database or damaged),
 *  CGW_EBUSY (another process holds the file locked past busy_timeout_ms, e.g. an
 *  `exclusive` store), CGW_ENOMEM. */
CGW_EXTERN int cgw_store_open_sqlite(cgw_ctx_t *ctx, const cgw_store_sqlite_options_t *opts,
                                     cgw_store_t **out, cgw_error_t *err);

/** Commits anything queued, then closes the store (NULL is fine). A failing final commit is
 *  logged at ERROR; call cgw_store_flush first to see it. */
CGW_EXTERN void cgw_store_free(cgw_store_t *store);

/** "memory" or "sqlite" ("none" for NULL). Static storage. */
CGW_EXTERN const char *cgw_store_kind(const cgw_store_t *store);

/** Makes every queued event append durable now (commits the group-commit queue). A no-op for
 *  stores without a queue. Returns CGW_OK or the commit's error; the queue is kept on error
 *  so a later flush can retry. */
CGW_EXTERN int cgw_store_flush(cgw_store_t *store, cgw_error_t *err);

/* ---- sessions ------------------------------------------------------------------------------- */

/** Creates a session for `tenant` with `settings` (JSON bytes kept as given; NULL/0 stores
 *  "{}"). `id` NULL generates "sess_..."; a given id must be unused by every tenant. On success
 *  fills `out` if not NULL (clear it after). Returns CGW_OK, CGW_EEXIST or a common error. */
CGW_EXTERN int cgw_store_session_create(cgw_store_t *store, const char *tenant, const char *id,
                                        const char *settings, size_t settings_len,
                                        cgw_store_session_t *out, cgw_error_t *err);

/** Reads a session into `out` (clear it after). CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_session_get(cgw_store_t *store, const char *tenant, const char *id,
                                     cgw_store_session_t *out, cgw_error_t *err);

/** Calls `cb` for the tenant's sessions in creation order, skipping `offset`, at most `limit`
 *  (0 = no limit). Returns CGW_OK, the callback's stop value or a common error. */
CGW_EXTERN int cgw_store_session_list(cgw_store_t *store, const char *tenant, uint64_t offset,
                                      uint64_t limit, cgw_store_session_cb cb, void *user,
                                      cgw_error_t *err);

/** Number of sessions the tenant owns. */
CGW_EXTERN int cgw_store_session_count(cgw_store_t *store, const char *tenant, uint64_t *out,
                                       cgw_error_t *err);

/** Replaces a session's settings. CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_session_update_settings(cgw_store_t *store, const char *tenant,
                                                 const char *id, const char *settings,
                                                 size_t settings_len, cgw_error_t *err);

/** Deletes a session with its conversation, runs and their events, in one transaction.
 *  CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_session_delete(cgw_store_t *store, const char *tenant, const char *id,
                                        cgw_error_t *err);

/* ---- conversation --------------------------------------------------------------------------- */

/** Appends one message (exact bytes, len > 0) to the session's conversation; its index (from
 *  0) goes to `index` if not NULL. Durable on return. CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_message_append(cgw_store_t *store, const char *tenant,
                                        const char *session_id, const char *json, size_t len,
                                        uint64_t *index, cgw_error_t *err);

/** Calls `cb` for every message in order. CGW_OK, CGW_ENOENT, the callback's stop value or a
 *  common error. */
CGW_EXTERN int cgw_store_message_load(cgw_store_t *store, const char *tenant,
                                      const char *session_id, cgw_store_message_cb cb, void *user,
                                      cgw_error_t *err);

/** Number of messages. CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_message_count(cgw_store_t *store, const char *tenant,
                                       const char *session_id, uint64_t *out, cgw_error_t *err);

/** Rolls the conversation back to its first `keep` messages (a no-op if it has no more).
 *  CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_message_truncate(cgw_store_t *store, const char *tenant,
                                          const char *session_id, uint64_t keep, cgw_error_t *err);

/* ---- runs ----------------------------------------------------------------------------------- */

/** Creates a run of the session, status running. `id` NULL generates "run_..."; a given id
 *  must be unused. Fills `out` if not NULL. CGW_OK, CGW_ENOENT (session), CGW_EEXIST or a
 *  common error. One-run-at-a-time is the caller's policy, not enforced here. */
CGW_EXTERN int cgw_store_run_create(cgw_store_t *store, const char *tenant, const char *session_id,
                                    const char *id, cgw_store_run_t *out, cgw_error_t *err);

/** Reads a run. CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_run_get(cgw_store_t *store, const char *tenant, const char *run_id,
                                 cgw_store_run_t *out, cgw_error_t *err);

/** Changes a running run's status (setting the current status again is a no-op). Returns
 *  CGW_OK, CGW_ENOENT, CGW_ESTATE (the run already has another final status; CGW_RUN_RUNNING
 *  cannot be set again) or a common error. Queued events are committed first. */
CGW_EXTERN int cgw_store_run_set_status(cgw_store_t *store, const char *tenant, const char *run_id,
                                        cgw_run_status_t status, cgw_error_t *err);

/** Ends a run atomically: appends `final_event` (if not NULL; seq 0 = next) and sets the final
 *  `status`, in one transaction, so a crash leaves either both or neither. The event's seq
 *  goes to `seq` if not NULL. Returns CGW_OK, CGW_EINVAL (status not final), CGW_ENOENT,
 *  CGW_ESTATE (already final), CGW_ESEQ or a common error. */
CGW_EXTERN int cgw_store_run_finish(cgw_store_t *store, const char *tenant, const char *run_id,
                                    cgw_run_status_t status, const cgw_store_event_t *final_event,
                                    uint64_t *seq, cgw_error_t *err);

/** Calls `cb` for the session's runs in creation order. CGW_OK, CGW_ENOENT (session), the
 *  callback's stop value or a common error. */
CGW_EXTERN int cgw_store_run_list(cgw_store_t *store, const char *tenant, const char *session_id,
                                  cgw_store_run_cb cb, void *user, cgw_error_t *err);

/** Calls `cb` for every run of every tenant whose status is still running, in creation order.
 *  At startup these are the runs that were in flight when the process died. */
CGW_EXTERN int cgw_store_run_list_unfinished(cgw_store_t *store, cgw_store_run_cb cb, void *user,
                                             cgw_error_t *err);

/** Builds the final event of an interrupted run for cgw_store_recover: `seq` and `ts` are the
 *  entry's. Returns the entry's JSON bytes (length in *len), borrowed: they must stay valid
 *  until the next call of the builder or the end of cgw_store_recover. NULL: no event. */
typedef const char *(*cgw_store_final_event_fn)(const cgw_store_run_t *run, uint64_t seq, double ts,
                                                size_t *len, void *user);

/** Startup recovery: every run still running is ended, one run per transaction, with status
 *  interrupted and, if `build` is not NULL, a final event of type `final_type` (e.g. "error")
 *  whose bytes `build` returns. Safe to repeat after a crash halfway: a run is either still
 *  running or ended with its event. The number of runs ended goes to `count` if not NULL. */
CGW_EXTERN int cgw_store_recover(cgw_store_t *store, const char *final_type,
                                 cgw_store_final_event_fn build, void *user, size_t *count,
                                 cgw_error_t *err);

/* ---- events --------------------------------------------------------------------------------- */

/** Appends `n` events (n >= 1) to a run, all or none. A seq of 0 takes the next number;
 *  otherwise it must be exactly the run's last seq + 1 (CGW_ESEQ). Appending to a run with a
 *  final status is allowed (a late terminal event). The first seq appended goes to
 *  `first_seq` if not NULL. With group commit the events are queued: visible to every read
 *  at once, durable after the current loop iteration or cgw_store_flush. Returns CGW_OK,
 *  CGW_ENOENT (run), CGW_ESEQ, CGW_EINVAL (bad type, empty json, ts not finite) or a common
 *  error (including the error of a queued commit that failed). */
CGW_EXTERN int cgw_store_event_append_batch(cgw_store_t *store, const char *tenant,
                                            const char *run_id, const cgw_store_event_t *events,
                                            size_t n, uint64_t *first_seq, cgw_error_t *err);

/** cgw_store_event_append_batch with one event; its seq goes to `seq` if not NULL. */
CGW_EXTERN int cgw_store_event_append(cgw_store_t *store, const char *tenant, const char *run_id,
                                      const cgw_store_event_t *event, uint64_t *seq,
                                      cgw_error_t *err);

/** Calls `cb` for the run's events with seq > after_seq in order, at most `limit` (0 = all).
 *  Returns CGW_OK, CGW_ENOENT (run), the callback's stop value or a common error. */
CGW_EXTERN int cgw_store_event_read(cgw_store_t *store, const char *tenant, const char *run_id,
                                    uint64_t after_seq, size_t limit, cgw_store_event_cb cb,
                                    void *user, cgw_error_t *err);

/** The run's last seq (0 if it has no event). CGW_OK, CGW_ENOENT or a common error. */
CGW_EXTERN int cgw_store_event_last_seq(cgw_store_t *store, const char *tenant, const char *run_id,
                                        uint64_t *out, cgw_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
