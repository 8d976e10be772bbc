/* The public store API: argument checks, ids, clock, re-entry guard, then the vtable.
 * See include/cgw/store.h for the contract and docs/store.md for the design. */
#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "core/alloc.h"
#include "core/ctx_int.h"
#include "store/store_int.h"

static const char *const status_names[CGW_RUN_STATUS_COUNT] = {
    "running", "completed", "failed", "cancelled", "interrupted",
};

const char *cgw_run_status_name(cgw_run_status_t status)
{
    unsigned i = (unsigned)status;
    return i < CGW_RUN_STATUS_COUNT ? status_names[i] : "unknown";
}

int cgw_run_status_parse(const char *name, cgw_run_status_t *out)
{
    for (unsigned i = 0; name != NULL && i < CGW_RUN_STATUS_COUNT; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (cgw_run_status_t)i;
            return CGW_OK;
        }
    }
    return CGW_EINVAL;
}

bool cgw_run_status_is_final(cgw_run_status_t status)
{
    return status != CGW_RUN_RUNNING;
}

void cgw_store_session_clear(cgw_store_session_t *s)
{
    if (s != NULL) {
        cgw_free(s->settings);
        memset(s, 0, sizeof(*s));
    }
}

/* ---- helpers shared with the implementations ------------------------------------------------ */

void cgw__store_init(cgw_store_t *s, const struct cgw_store_vtable *vt, cgw_ctx_t *ctx)
{
    s->vt = vt;
    s->ctx = ctx;
    s->busy = false;
}

int cgw__store_check_transition(const char *run_id, cgw_run_status_t cur, cgw_run_status_t next,
                                cgw_error_t *err)
{
    if (cur == next && next != CGW_RUN_RUNNING) {
        return CGW_OK;
    }
    if (cur != CGW_RUN_RUNNING || next == CGW_RUN_RUNNING) {
        return cgw_error_set(err, CGW_ESTATE, "run %s is %s and cannot become %s", run_id,
                             cgw_run_status_name(cur), cgw_run_status_name(next));
    }
    return CGW_OK;
}

int cgw__store_assign_seqs(const char *run_id, uint64_t last, const cgw_store_event_t *events,
                           size_t n, uint64_t *seqs, cgw_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t want = last + 1 + i;
        if (events[i].seq != 0 && events[i].seq != want) {
            return cgw_error_set(err, CGW_ESEQ, "run %s: event seq %llu, expected %llu", run_id,
                                 (unsigned long long)events[i].seq, (unsigned long long)want);
        }
        seqs[i] = want;
    }
    return CGW_OK;
}

int cgw__store_enoent(cgw_error_t *err, const char *what, const char *id)
{
    return cgw_error_set(err, CGW_ENOENT, "no %s %s", what, id);
}

void cgw__store_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int cgw__store_gen_id(const char *prefix, char *out)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    enum { NCHARS = 22 };
    size_t plen = strlen(prefix);
    size_t have = 0;
    unsigned char rnd[64];
    while (have < NCHARS) {
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            return CGW_EIO;
        }
        /* Rejection sampling: 248 = 4 * 62, so every character is equally likely. */
        for (size_t i = 0; i < sizeof(rnd) && have < NCHARS; i++) {
            if (rnd[i] < 248) {
                out[plen + have++] = alphabet[rnd[i] % 62];
            }
        }
    }
    memcpy(out, prefix, plen);
    out[plen + NCHARS] = '\0';
    return CGW_OK;
}

/* ---- argument checks ------------------------------------------------------------------------ */

static int check_tenant(const char *tenant, cgw_error_t *err)
{
    size_t n = tenant ? strnlen(tenant, CGW_STORE_TENANT_MAX) : 0;
    if (n == 0 || n >= CGW_STORE_TENANT_MAX) {
        return cgw_error_set(err, CGW_EINVAL, "tenant must be 1 to %d bytes",
                             CGW_STORE_TENANT_MAX - 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (tenant[i] < 0x21 || tenant[i] > 0x7e) {
            return cgw_error_set(err, CGW_EINVAL, "tenant has a byte outside printable ASCII");
        }
    }
    return CGW_OK;
}

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static int check_id(const char *id, const char *what, cgw_error_t *err)
{
    size_t n = id ? strnlen(id, CGW_STORE_ID_MAX) : 0;
    bool ok = n > 0 && n < CGW_STORE_ID_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = id_char(id[i]);
    }
    if (!ok) {
        return cgw_error_set(err, CGW_EINVAL, "%s id must be 1 to %d characters of [A-Za-z0-9_-]",
                             what, CGW_STORE_ID_MAX - 1);
    }
    return CGW_OK;
}

static int check_bytes(const char *p, size_t len, bool may_be_empty, const char *what,
                       cgw_error_t *err)
{
    if ((p == NULL && len > 0) || (!may_be_empty && (p == NULL || len == 0))) {
        return cgw_error_set(err, CGW_EINVAL, "%s is empty or NULL", what);
    }
    return CGW_OK;
}

static int check_event(const cgw_store_event_t *ev, cgw_error_t *err)
{
    size_t n = ev->type ? strnlen(ev->type, CGW_STORE_TYPE_MAX) : 0;
    bool ok = n > 0 && n < CGW_STORE_TYPE_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = ev->type[i] >= 0x21 && ev->type[i] <= 0x7e;
    }
    if (!ok) {
        return cgw_error_set(err, CGW_EINVAL, "event type must be 1 to %d printable bytes",
                             CGW_STORE_TYPE_MAX - 1);
    }
    /* SQLite stores a NaN as NULL, which the NOT NULL column would refuse at commit time. */
    if (!isfinite(ev->ts)) {
        return cgw_error_set(err, CGW_EINVAL, "event ts is not a finite number");
    }
    return check_bytes(ev->json, ev->json_len, false, "event json", err);
}

static int check_events(const cgw_store_event_t *evs, size_t n, cgw_error_t *err)
{
    if (evs == NULL || n == 0) {
        return cgw_error_set(err, CGW_EINVAL, "no events to append");
    }
    for (size_t i = 0; i < n; i++) {
        int rc = check_event(&evs[i], err);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int need(const void *p, const char *what, cgw_error_t *err)
{
    return p != NULL ? CGW_OK : cgw_error_set(err, CGW_EINVAL, "%s is NULL", what);
}

/* Enter/leave bracket every public call: a callback that calls back into its store would
 * otherwise re-use a statement or an array that the outer call is still walking. */
static int enter(cgw_store_t *s, cgw_error_t *err)
{
    if (s == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "store is NULL");
    }
    if (s->busy) {
        return cgw_error_set(err, CGW_EBUSY, "store called from one of its own callbacks");
    }
    s->busy = true;
    return CGW_OK;
}

static int leave(cgw_store_t *s, int rc)
{
    s->busy = false;
    return rc;
}

#define ENTER(s, err)                                                                              \
    do {                                                                                           \
        int enter_rc_ = enter((s), (err));                                                         \
        if (enter_rc_ != CGW_OK) {                                                                 \
            return enter_rc_;                                                                      \
        }                                                                                          \
    } while (0)

/* Runs the checks in order and leaves with the first failure. */
#define CHECK(s, expr)                                                                             \
    do {                                                                                           \
        int check_rc_ = (expr);                                                                    \
        if (check_rc_ != CGW_OK) {                                                                 \
            return leave((s), check_rc_);                                                          \
        }                                                                                          \
    } while (0)

static cgw_str_t settings_or_default(const char *settings, size_t len)
{
    cgw_str_t v = {settings, len};
    if (settings == NULL || len == 0) {
        v.ptr = "{}";
        v.len = 2;
    }
    return v;
}

/* ---- public API ----------------------------------------------------------------------------- */

void cgw_store_free(cgw_store_t *store)
{
    if (store != NULL) {
        store->vt->destroy(store);
    }
}

const char *cgw_store_kind(const cgw_store_t *store)
{
    return store != NULL ? store->vt->kind : "none";
}

int cgw_store_flush(cgw_store_t *store, cgw_error_t *err)
{
    ENTER(store, err);
    return leave(store, store->vt->flush(store, err));
}

int cgw_store_session_create(cgw_store_t *store, const char *tenant, const char *id,
                             const char *settings, size_t settings_len, cgw_store_session_t *out,
                             cgw_error_t *err)
{
    ENTER(store, err);
    if (out != NULL) {
        memset(out, 0, sizeof(*out)); /* clearing it is safe whatever happens next */
    }
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, id ? check_id(id, "session", err) : CGW_OK);
    CHECK(store, check_bytes(settings, settings_len, true, "settings", err));
    char gen[CGW_STORE_ID_MAX];
    if (id == NULL) {
        CHECK(store, cgw__store_gen_id("sess_", gen));
    }
    /* The caller's copy is made first, so that a session is created and described, or
     * neither: no ENOMEM after the fact. */
    cgw_str_t set = settings_or_default(settings, settings_len);
    char *copy = out != NULL ? cgw__memdup(set.ptr, set.len) : NULL;
    if (out != NULL && copy == NULL) {
        return leave(store, cgw_error_set(err, CGW_ENOMEM, "out of memory creating a session"));
    }
    double now = cgw__wall_time();
    const char *sid = id ? id : gen;
    int rc = store->vt->session_create(store, tenant, sid, set, now, err);
    if (rc != CGW_OK) {
        cgw_free(copy);
        return leave(store, rc);
    }
    if (out != NULL) {
        cgw__store_copy(out->id, sizeof(out->id), sid);
        cgw__store_copy(out->tenant, sizeof(out->tenant), tenant);
        out->created_at = out->updated_at = now;
        out->settings = copy;
        out->settings_len = set.len;
    }
    return leave(store, CGW_OK);
}

int cgw_store_session_get(cgw_store_t *store, const char *tenant, const char *id,
                          cgw_store_session_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(id, "session", err));
    CHECK(store, need(out, "out", err));
    return leave(store, store->vt->session_get(store, tenant, id, out, err));
}

int cgw_store_session_list(cgw_store_t *store, const char *tenant, uint64_t offset, uint64_t limit,
                           cgw_store_session_cb cb, void *user, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, need((void *)(uintptr_t)cb, "callback", err));
    return leave(store, store->vt->session_list(store, tenant, offset, limit, cb, user, err));
}

int cgw_store_session_count(cgw_store_t *store, const char *tenant, uint64_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, need(out, "out", err));
    return leave(store, store->vt->session_count(store, tenant, out, err));
}

int cgw_store_session_update_settings(cgw_store_t *store, const char *tenant, const char *id,
                                      const char *settings, size_t settings_len, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(id, "session", err));
    CHECK(store, check_bytes(settings, settings_len, true, "settings", err));
    int rc = store->vt->session_update(
        store, tenant, id, settings_or_default(settings, settings_len), cgw__wall_time(), err);
    return leave(store, rc);
}

int cgw_store_session_delete(cgw_store_t *store, const char *tenant, const char *id,
                             cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(id, "session", err));
    return leave(store, store->vt->session_delete(store, tenant, id, err));
}

int cgw_store_message_append(cgw_store_t *store, const char *tenant, const char *session_id,
                             const char *json, size_t len, uint64_t *index, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    CHECK(store, check_bytes(json, len, false, "message", err));
    cgw_str_t msg = {json, len};
    uint64_t idx = 0;
    int rc = store->vt->message_append(store, tenant, session_id, msg, cgw__wall_time(), &idx, err);
    if (rc == CGW_OK && index != NULL) {
        *index = idx;
    }
    return leave(store, rc);
}

int cgw_store_message_load(cgw_store_t *store, const char *tenant, const char *session_id,
                           cgw_store_message_cb cb, void *user, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    CHECK(store, need((void *)(uintptr_t)cb, "callback", err));
    return leave(store, store->vt->message_load(store, tenant, session_id, cb, user, err));
}

int cgw_store_message_count(cgw_store_t *store, const char *tenant, const char *session_id,
                            uint64_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    CHECK(store, need(out, "out", err));
    return leave(store, store->vt->message_count(store, tenant, session_id, out, err));
}

int cgw_store_message_truncate(cgw_store_t *store, const char *tenant, const char *session_id,
                               uint64_t keep, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    int rc = store->vt->message_truncate(store, tenant, session_id, keep, cgw__wall_time(), err);
    return leave(store, rc);
}

int cgw_store_run_create(cgw_store_t *store, const char *tenant, const char *session_id,
                         const char *id, cgw_store_run_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    CHECK(store, id ? check_id(id, "run", err) : CGW_OK);
    char gen[CGW_STORE_ID_MAX];
    if (id == NULL) {
        CHECK(store, cgw__store_gen_id("run_", gen));
    }
    cgw_store_run_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    int rc = store->vt->run_create(store, tenant, session_id, id ? id : gen, cgw__wall_time(), &tmp,
                                   err);
    if (rc == CGW_OK && out != NULL) {
        *out = tmp;
    }
    return leave(store, rc);
}

int cgw_store_run_get(cgw_store_t *store, const char *tenant, const char *run_id,
                      cgw_store_run_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, need(out, "out", err));
    memset(out, 0, sizeof(*out));
    return leave(store, store->vt->run_get(store, tenant, run_id, out, err));
}

static int check_status(cgw_run_status_t status, bool final_only, cgw_error_t *err)
{
    if ((unsigned)status >= CGW_RUN_STATUS_COUNT ||
        (final_only && !cgw_run_status_is_final(status))) {
        return cgw_error_set(err, CGW_EINVAL, "run status %d is not %s", (int)status,
                             final_only ? "a final status" : "valid");
    }
    return CGW_OK;
}

int cgw_store_run_set_status(cgw_store_t *store, const char *tenant, const char *run_id,
                             cgw_run_status_t status, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, check_status(status, false, err));
    int rc =
        store->vt->run_set_status(store, tenant, run_id, status, NULL, cgw__wall_time(), NULL, err);
    return leave(store, rc);
}

int cgw_store_run_finish(cgw_store_t *store, const char *tenant, const char *run_id,
                         cgw_run_status_t status, const cgw_store_event_t *final_event,
                         uint64_t *seq, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, check_status(status, true, err));
    CHECK(store, final_event ? check_event(final_event, err) : CGW_OK);
    uint64_t s = 0;
    int rc = store->vt->run_set_status(store, tenant, run_id, status, final_event, cgw__wall_time(),
                                       &s, err);
    if (rc == CGW_OK && seq != NULL) {
        *seq = s;
    }
    return leave(store, rc);
}

int cgw_store_run_list(cgw_store_t *store, const char *tenant, const char *session_id,
                       cgw_store_run_cb cb, void *user, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(session_id, "session", err));
    CHECK(store, need((void *)(uintptr_t)cb, "callback", err));
    return leave(store, store->vt->run_list(store, tenant, session_id, cb, user, err));
}

int cgw_store_run_list_unfinished(cgw_store_t *store, cgw_store_run_cb cb, void *user,
                                  cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, need((void *)(uintptr_t)cb, "callback", err));
    return leave(store, store->vt->run_list_unfinished(store, cb, user, err));
}

int cgw_store_event_append_batch(cgw_store_t *store, const char *tenant, const char *run_id,
                                 const cgw_store_event_t *events, size_t n, uint64_t *first_seq,
                                 cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, check_events(events, n, err));
    uint64_t first = 0;
    int rc = store->vt->event_append(store, tenant, run_id, events, n, &first, err);
    if (rc == CGW_OK && first_seq != NULL) {
        *first_seq = first;
    }
    return leave(store, rc);
}

int cgw_store_event_append(cgw_store_t *store, const char *tenant, const char *run_id,
                           const cgw_store_event_t *event, uint64_t *seq, cgw_error_t *err)
{
    return cgw_store_event_append_batch(store, tenant, run_id, event, event ? 1 : 0, seq, err);
}

int cgw_store_event_read(cgw_store_t *store, const char *tenant, const char *run_id,
                         uint64_t after_seq, size_t limit, cgw_store_event_cb cb, void *user,
                         cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, need((void *)(uintptr_t)cb, "callback", err));
    int rc = store->vt->event_read(store, tenant, run_id, after_seq, limit, cb, user, err);
    return leave(store, rc);
}

int cgw_store_event_last_seq(cgw_store_t *store, const char *tenant, const char *run_id,
                             uint64_t *out, cgw_error_t *err)
{
    ENTER(store, err);
    CHECK(store, check_tenant(tenant, err));
    CHECK(store, check_id(run_id, "run", err));
    CHECK(store, need(out, "out", err));
    return leave(store, store->vt->event_last_seq(store, tenant, run_id, out, err));
}

/* ---- recovery ------------------------------------------------------------------------------- */

struct run_vec {
    cgw_store_run_t *v;
    size_t n, cap;
};

static int collect_run(const cgw_store_run_t *run, void *user)
{
    struct run_vec *rv = user;
    if (rv->n == rv->cap) {
        size_t cap = rv->cap ? rv->cap * 2 : 16;
        cgw_store_run_t *v = cgw__realloc(rv->v, cap * sizeof(*v));
        if (v == NULL) {
            return CGW_ENOMEM;
        }
        rv->v = v;
        rv->cap = cap;
    }
    rv->v[rv->n++] = *run;
    return CGW_OK;
}

/* Ends one interrupted run with its final event, in one transaction. */
static int recover_one(cgw_store_t *store, const cgw_store_run_t *run, const char *final_type,
                       cgw_store_final_event_fn build, void *user, cgw_error_t *err)
{
    double now = cgw__wall_time();
    cgw_store_event_t ev = {run->last_seq + 1, now, final_type, NULL, 0};
    if (build != NULL) {
        ev.json = build(run, ev.seq, now, &ev.json_len, user);
        if (ev.json != NULL) {
            int rc = check_event(&ev, err);
            if (rc != CGW_OK) {
                return rc;
            }
        }
    }
    return store->vt->run_set_status(store, run->tenant, run->id, CGW_RUN_INTERRUPTED,
                                     ev.json != NULL ? &ev : NULL, now, NULL, err);
}

int cgw_store_recover(cgw_store_t *store, const char *final_type, cgw_store_final_event_fn build,
                      void *user, size_t *count, cgw_error_t *err)
{
    ENTER(store, err);
    if (build != NULL) {
        cgw_store_event_t probe = {0, 0, final_type, "{}", 2};
        CHECK(store, check_event(&probe, err));
    }
    /* Collect first: the implementation's list must be finished before we write. */
    struct run_vec rv = {NULL, 0, 0};
    int rc = store->vt->run_list_unfinished(store, collect_run, &rv, err);
    size_t ended = 0;
    for (size_t i = 0; rc == CGW_OK && i < rv.n; i++) {
        rc = recover_one(store, &rv.v[i], final_type, build, user, err);
        if (rc == CGW_ESTATE) {
            rc = CGW_OK; /* ended meanwhile by another process sharing the store */
        } else if (rc == CGW_OK) {
            ended++;
            CGW_WARN(store->ctx, "store", "run %s (session %s) was interrupted; marked so",
                     rv.v[i].id, rv.v[i].session_id);
        }
    }
    cgw_free(rv.v);
    if (count != NULL) {
        *count = ended;
    }
    return leave(store, rc);
}
