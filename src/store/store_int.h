/* The store's vtable: what an implementation (memory, SQLite, later Redis) provides.
 *
 * store.c owns the public functions. It validates every argument (tenant, ids, event types,
 * lengths), generates ids, takes the clock, rejects re-entry from callbacks, and only then
 * calls the implementation, so an implementation receives clean input and checks only what
 * needs its data: existence, tenant ownership, sequence numbers, status transitions. */
#ifndef CGW_STORE_INT_H
#define CGW_STORE_INT_H

#include "cgw/store.h"

struct cgw_store_vtable {
    const char *kind;
    void (*destroy)(cgw_store_t *s);
    int (*flush)(cgw_store_t *s, cgw_error_t *err);

    /* The record for the caller is built by store.c from what it passed. */
    int (*session_create)(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                          double now, cgw_error_t *err);
    int (*session_get)(cgw_store_t *s, const char *tenant, const char *id, cgw_store_session_t *out,
                       cgw_error_t *err);
    int (*session_list)(cgw_store_t *s, const char *tenant, uint64_t offset, uint64_t limit,
                        cgw_store_session_cb cb, void *user, cgw_error_t *err);
    int (*session_count)(cgw_store_t *s, const char *tenant, uint64_t *out, cgw_error_t *err);
    int (*session_update)(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                          double now, cgw_error_t *err);
    int (*session_delete)(cgw_store_t *s, const char *tenant, const char *id, cgw_error_t *err);

    int (*message_append)(cgw_store_t *s, const char *tenant, const char *sid, cgw_str_t json,
                          double now, uint64_t *index, cgw_error_t *err);
    int (*message_load)(cgw_store_t *s, const char *tenant, const char *sid,
                        cgw_store_message_cb cb, void *user, cgw_error_t *err);
    int (*message_count)(cgw_store_t *s, const char *tenant, const char *sid, uint64_t *out,
                         cgw_error_t *err);
    int (*message_truncate)(cgw_store_t *s, const char *tenant, const char *sid, uint64_t keep,
                            double now, cgw_error_t *err);

    int (*run_create)(cgw_store_t *s, const char *tenant, const char *sid, const char *id,
                      double now, cgw_store_run_t *out, cgw_error_t *err);
    int (*run_get)(cgw_store_t *s, const char *tenant, const char *id, cgw_store_run_t *out,
                   cgw_error_t *err);
    /* Status change, with an optional event appended in the same transaction (final_event
     * NULL: none). The transition is checked with cgw__store_check_transition. */
    int (*run_set_status)(cgw_store_t *s, const char *tenant, const char *id,
                          cgw_run_status_t status, const cgw_store_event_t *final_event, double now,
                          uint64_t *seq, cgw_error_t *err);
    int (*run_list)(cgw_store_t *s, const char *tenant, const char *sid, cgw_store_run_cb cb,
                    void *user, cgw_error_t *err);
    int (*run_list_unfinished)(cgw_store_t *s, cgw_store_run_cb cb, void *user, cgw_error_t *err);

    /* Sequence numbers are checked with cgw__store_assign_seqs. */
    int (*event_append)(cgw_store_t *s, const char *tenant, const char *run_id,
                        const cgw_store_event_t *events, size_t n, uint64_t *first_seq,
                        cgw_error_t *err);
    int (*event_read)(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t after,
                      size_t limit, cgw_store_event_cb cb, void *user, cgw_error_t *err);
    int (*event_last_seq)(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t *out,
                          cgw_error_t *err);
};

/* Every implementation's object starts with this. */
struct cgw_store {
    const struct cgw_store_vtable *vt;
    cgw_ctx_t *ctx;
    bool busy; /* inside a call: a callback calling back in gets CGW_EBUSY */
};

/* Sets the common part. */
void cgw__store_init(cgw_store_t *s, const struct cgw_store_vtable *vt, cgw_ctx_t *ctx);

/* CGW_OK if a run in status `cur` may move to `next`, else CGW_ESTATE with a message. */
int cgw__store_check_transition(const char *run_id, cgw_run_status_t cur, cgw_run_status_t next,
                                cgw_error_t *err);

/* Checks the seqs of a batch against the run's last seq: each must be 0 (assigned here, into
 * `seqs`) or exactly the next one. `seqs` has room for n. CGW_OK or CGW_ESEQ. */
int cgw__store_assign_seqs(const char *run_id, uint64_t last, const cgw_store_event_t *events,
                           size_t n, uint64_t *seqs, cgw_error_t *err);

/* The standard "not found" answer (also for another tenant's object). */
int cgw__store_enoent(cgw_error_t *err, const char *what, const char *id);

/* Bounded copy into a fixed record field (the inputs were validated to fit). */
void cgw__store_copy(char *dst, size_t cap, const char *src);

/* A fresh id: prefix + 22 random [A-Za-z0-9]. `out` has CGW_STORE_ID_MAX bytes.
 * CGW_OK or CGW_EIO (no randomness available). */
int cgw__store_gen_id(const char *prefix, char *out);

/* Status name <-> value, shared by the SQLite schema. */
#define CGW_RUN_STATUS_COUNT 5

#endif
