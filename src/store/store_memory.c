/* The in-memory store: the same contract as SQLite, nothing on disk. Hash maps index sessions
 * and runs by id; each tenant keeps its sessions in creation order in a linked list; a run's
 * events sit in an array where event seq N is at index N-1 (seqs are dense from 1), so a
 * replay after seq is a direct index. Everything is freed with the store. */
#include <string.h>

#include "core/alloc.h"
#include "store/map.h"
#include "store/store_int.h"

struct mem_event {
    cgw_store_event_t ev; /* type and json point into `bytes` */
    char bytes[];         /* json, NUL, type, NUL */
};

struct mem_msg {
    char *json;
    size_t len;
};

struct mem_tenant {
    char name[CGW_STORE_TENANT_MAX];
    uint64_t count;
    struct mem_session *head, *tail;
};

struct mem_run {
    cgw_store_run_t rec;
    struct mem_event **events;
    size_t nevents, cap;
    struct mem_run *prev, *next; /* all runs in creation order */
};

struct mem_session {
    cgw_store_session_t rec; /* rec.settings owned; rec.message_count == nmsgs */
    struct mem_tenant *tenant;
    struct mem_session *prev, *next; /* the tenant's sessions in creation order */
    struct mem_msg *msgs;
    size_t msgs_cap;
    struct mem_run **runs;
    size_t nruns, runs_cap;
};

typedef struct mem_store {
    struct cgw_store base;
    cgw_map_t tenants, sessions, runs;
    struct mem_run *runs_head, *runs_tail;
} mem_store_t;

/* Grows `*arr` (elements of `size`) to hold at least `want`. CGW_OK or CGW_ENOMEM. */
static int grow_array(void **arr, size_t *cap, size_t want, size_t size)
{
    if (want <= *cap) {
        return CGW_OK;
    }
    size_t n = *cap ? *cap : 8;
    while (n < want) {
        n *= 2;
    }
    void *p = cgw__realloc(*arr, n * size);
    if (p == NULL) {
        return CGW_ENOMEM;
    }
    *arr = p;
    *cap = n;
    return CGW_OK;
}

static struct mem_session *find_session(mem_store_t *m, const char *tenant, const char *id)
{
    struct mem_session *s = cgw__map_get(&m->sessions, id);
    return (s != NULL && strcmp(s->tenant->name, tenant) == 0) ? s : NULL;
}

static struct mem_run *find_run(mem_store_t *m, const char *tenant, const char *id)
{
    struct mem_run *r = cgw__map_get(&m->runs, id);
    return (r != NULL && strcmp(r->rec.tenant, tenant) == 0) ? r : NULL;
}

static int copy_settings(cgw_store_session_t *out, const cgw_store_session_t *src)
{
    *out = *src;
    out->settings = cgw__memdup(src->settings, src->settings_len);
    return out->settings != NULL ? CGW_OK : CGW_ENOMEM;
}

/* ---- sessions ------------------------------------------------------------------------------- */

static struct mem_tenant *get_tenant(mem_store_t *m, const char *name)
{
    struct mem_tenant *t = cgw__map_get(&m->tenants, name);
    if (t != NULL) {
        return t;
    }
    t = cgw__calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    cgw__store_copy(t->name, sizeof(t->name), name);
    if (cgw__map_put(&m->tenants, t->name, t) != CGW_OK) {
        cgw_free(t);
        return NULL;
    }
    return t;
}

static int m_session_create(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                            double now, cgw_error_t *err)
{
    mem_store_t *m = (mem_store_t *)s;
    if (cgw__map_get(&m->sessions, id) != NULL) {
        return cgw_error_set(err, CGW_EEXIST, "session %s already exists", id);
    }
    struct mem_tenant *t = get_tenant(m, tenant);
    struct mem_session *ss = t ? cgw__calloc(1, sizeof(*ss)) : NULL;
    char *set = ss ? cgw__memdup(settings.ptr, settings.len) : NULL;
    if (set != NULL) {
        cgw__store_copy(ss->rec.id, sizeof(ss->rec.id), id);
    }
    if (set == NULL || cgw__map_put(&m->sessions, ss->rec.id, ss) != CGW_OK) {
        cgw_free(set);
        cgw_free(ss);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory creating a session");
    }
    cgw__store_copy(ss->rec.tenant, sizeof(ss->rec.tenant), tenant);
    ss->rec.created_at = ss->rec.updated_at = now;
    ss->rec.settings = set;
    ss->rec.settings_len = settings.len;
    ss->tenant = t;
    ss->prev = t->tail;
    if (t->tail != NULL) {
        t->tail->next = ss;
    } else {
        t->head = ss;
    }
    t->tail = ss;
    t->count++;
    return CGW_OK;
}

static int m_session_get(cgw_store_t *s, const char *tenant, const char *id,
                         cgw_store_session_t *out, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, id);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", id);
    }
    return copy_settings(out, &ss->rec) == CGW_OK
               ? CGW_OK
               : cgw_error_set(err, CGW_ENOMEM, "out of memory reading a session");
}

static int m_session_list(cgw_store_t *s, const char *tenant, uint64_t offset, uint64_t limit,
                          cgw_store_session_cb cb, void *user, cgw_error_t *err)
{
    (void)err;
    struct mem_tenant *t = cgw__map_get(&((mem_store_t *)s)->tenants, tenant);
    uint64_t skipped = 0, sent = 0;
    for (struct mem_session *ss = t ? t->head : NULL; ss != NULL; ss = ss->next) {
        if (skipped < offset) {
            skipped++;
            continue;
        }
        if (limit != 0 && sent == limit) {
            break;
        }
        sent++;
        int rc = cb(&ss->rec, user);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int m_session_count(cgw_store_t *s, const char *tenant, uint64_t *out, cgw_error_t *err)
{
    (void)err;
    struct mem_tenant *t = cgw__map_get(&((mem_store_t *)s)->tenants, tenant);
    *out = t ? t->count : 0;
    return CGW_OK;
}

static int m_session_update(cgw_store_t *s, const char *tenant, const char *id, cgw_str_t settings,
                            double now, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, id);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", id);
    }
    char *set = cgw__memdup(settings.ptr, settings.len);
    if (set == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory updating settings");
    }
    cgw_free(ss->rec.settings);
    ss->rec.settings = set;
    ss->rec.settings_len = settings.len;
    ss->rec.updated_at = now;
    return CGW_OK;
}

static void free_run(mem_store_t *m, struct mem_run *r)
{
    cgw__map_del(&m->runs, r->rec.id);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        m->runs_head = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    } else {
        m->runs_tail = r->prev;
    }
    for (size_t i = 0; i < r->nevents; i++) {
        cgw_free(r->events[i]);
    }
    cgw_free(r->events);
    cgw_free(r);
}

static void free_session(mem_store_t *m, struct mem_session *ss)
{
    struct mem_tenant *t = ss->tenant;
    cgw__map_del(&m->sessions, ss->rec.id);
    if (ss->prev != NULL) {
        ss->prev->next = ss->next;
    } else {
        t->head = ss->next;
    }
    if (ss->next != NULL) {
        ss->next->prev = ss->prev;
    } else {
        t->tail = ss->prev;
    }
    t->count--;
    for (size_t i = 0; i < ss->nruns; i++) {
        free_run(m, ss->runs[i]);
    }
    for (uint64_t i = 0; i < ss->rec.message_count; i++) {
        cgw_free(ss->msgs[i].json);
    }
    cgw_free(ss->runs);
    cgw_free(ss->msgs);
    cgw_free(ss->rec.settings);
    cgw_free(ss);
}

static int m_session_delete(cgw_store_t *s, const char *tenant, const char *id, cgw_error_t *err)
{
    mem_store_t *m = (mem_store_t *)s;
    struct mem_session *ss = find_session(m, tenant, id);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", id);
    }
    free_session(m, ss);
    return CGW_OK;
}

/* ---- conversation --------------------------------------------------------------------------- */

static int m_message_append(cgw_store_t *s, const char *tenant, const char *sid, cgw_str_t json,
                            double now, uint64_t *index, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    size_t n = (size_t)ss->rec.message_count;
    char *copy = cgw__memdup(json.ptr, json.len);
    if (copy == NULL ||
        grow_array((void **)&ss->msgs, &ss->msgs_cap, n + 1, sizeof(*ss->msgs)) != CGW_OK) {
        cgw_free(copy);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory appending a message");
    }
    ss->msgs[n].json = copy;
    ss->msgs[n].len = json.len;
    ss->rec.message_count++;
    ss->rec.updated_at = now;
    *index = n;
    return CGW_OK;
}

static int m_message_load(cgw_store_t *s, const char *tenant, const char *sid,
                          cgw_store_message_cb cb, void *user, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    for (uint64_t i = 0; i < ss->rec.message_count; i++) {
        int rc = cb(i, ss->msgs[i].json, ss->msgs[i].len, user);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int m_message_count(cgw_store_t *s, const char *tenant, const char *sid, uint64_t *out,
                           cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    *out = ss->rec.message_count;
    return CGW_OK;
}

static int m_message_truncate(cgw_store_t *s, const char *tenant, const char *sid, uint64_t keep,
                              double now, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    if (keep >= ss->rec.message_count) {
        return CGW_OK;
    }
    for (uint64_t i = keep; i < ss->rec.message_count; i++) {
        cgw_free(ss->msgs[i].json);
    }
    ss->rec.message_count = keep;
    ss->rec.updated_at = now;
    return CGW_OK;
}

/* ---- runs ----------------------------------------------------------------------------------- */

static int m_run_create(cgw_store_t *s, const char *tenant, const char *sid, const char *id,
                        double now, cgw_store_run_t *out, cgw_error_t *err)
{
    mem_store_t *m = (mem_store_t *)s;
    struct mem_session *ss = find_session(m, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    if (cgw__map_get(&m->runs, id) != NULL) {
        return cgw_error_set(err, CGW_EEXIST, "run %s already exists", id);
    }
    struct mem_run *r = cgw__calloc(1, sizeof(*r));
    if (r != NULL) {
        cgw__store_copy(r->rec.id, sizeof(r->rec.id), id);
    }
    if (r == NULL ||
        grow_array((void **)&ss->runs, &ss->runs_cap, ss->nruns + 1, sizeof(*ss->runs)) != CGW_OK ||
        cgw__map_put(&m->runs, r->rec.id, r) != CGW_OK) {
        cgw_free(r);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory creating a run");
    }
    cgw__store_copy(r->rec.session_id, sizeof(r->rec.session_id), sid);
    cgw__store_copy(r->rec.tenant, sizeof(r->rec.tenant), tenant);
    r->rec.status = CGW_RUN_RUNNING;
    r->rec.created_at = r->rec.updated_at = now;
    ss->runs[ss->nruns++] = r;
    r->prev = m->runs_tail;
    if (m->runs_tail != NULL) {
        m->runs_tail->next = r;
    } else {
        m->runs_head = r;
    }
    m->runs_tail = r;
    *out = r->rec;
    return CGW_OK;
}

static int m_run_get(cgw_store_t *s, const char *tenant, const char *id, cgw_store_run_t *out,
                     cgw_error_t *err)
{
    struct mem_run *r = find_run((mem_store_t *)s, tenant, id);
    if (r == NULL) {
        return cgw__store_enoent(err, "run", id);
    }
    *out = r->rec;
    return CGW_OK;
}

/* Appends already-checked events with their seqs. All or nothing. */
static int push_events(struct mem_run *r, const cgw_store_event_t *evs, const uint64_t *seqs,
                       size_t n, cgw_error_t *err)
{
    if (grow_array((void **)&r->events, &r->cap, r->nevents + n, sizeof(*r->events)) != CGW_OK) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory appending events");
    }
    for (size_t i = 0; i < n; i++) {
        size_t tlen = strlen(evs[i].type);
        struct mem_event *e = cgw__malloc(sizeof(*e) + evs[i].json_len + tlen + 2);
        if (e == NULL) {
            for (size_t j = 0; j < i; j++) {
                cgw_free(r->events[r->nevents + j]);
            }
            return cgw_error_set(err, CGW_ENOMEM, "out of memory appending events");
        }
        memcpy(e->bytes, evs[i].json, evs[i].json_len);
        e->bytes[evs[i].json_len] = '\0';
        memcpy(e->bytes + evs[i].json_len + 1, evs[i].type, tlen + 1);
        e->ev.seq = seqs[i];
        e->ev.ts = evs[i].ts;
        e->ev.json = e->bytes;
        e->ev.json_len = evs[i].json_len;
        e->ev.type = e->bytes + evs[i].json_len + 1;
        r->events[r->nevents + i] = e;
    }
    r->nevents += n;
    r->rec.last_seq = seqs[n - 1];
    return CGW_OK;
}

static int append_checked(struct mem_run *r, const cgw_store_event_t *evs, size_t n,
                          uint64_t *first, cgw_error_t *err)
{
    uint64_t one, *seqs = n == 1 ? &one : cgw__calloc(n, sizeof(*seqs));
    if (seqs == NULL) {
        return cgw_error_set(err, CGW_ENOMEM, "out of memory appending events");
    }
    int rc = cgw__store_assign_seqs(r->rec.id, r->rec.last_seq, evs, n, seqs, err);
    if (rc == CGW_OK) {
        rc = push_events(r, evs, seqs, n, err);
    }
    if (rc == CGW_OK && first != NULL) {
        *first = seqs[0];
    }
    if (seqs != &one) {
        cgw_free(seqs);
    }
    return rc;
}

static int m_run_set_status(cgw_store_t *s, const char *tenant, const char *id,
                            cgw_run_status_t status, const cgw_store_event_t *final_event,
                            double now, uint64_t *seq, cgw_error_t *err)
{
    struct mem_run *r = find_run((mem_store_t *)s, tenant, id);
    if (r == NULL) {
        return cgw__store_enoent(err, "run", id);
    }
    int rc = cgw__store_check_transition(id, r->rec.status, status, err);
    if (rc == CGW_OK && final_event != NULL) {
        if (r->rec.status != CGW_RUN_RUNNING) {
            return cgw_error_set(err, CGW_ESTATE, "run %s already ended", id);
        }
        rc = append_checked(r, final_event, 1, seq, err);
    }
    if (rc != CGW_OK || r->rec.status == status) {
        return rc;
    }
    r->rec.status = status;
    r->rec.updated_at = now;
    r->rec.ended_at = cgw_run_status_is_final(status) ? now : 0;
    return CGW_OK;
}

static int m_run_list(cgw_store_t *s, const char *tenant, const char *sid, cgw_store_run_cb cb,
                      void *user, cgw_error_t *err)
{
    struct mem_session *ss = find_session((mem_store_t *)s, tenant, sid);
    if (ss == NULL) {
        return cgw__store_enoent(err, "session", sid);
    }
    for (size_t i = 0; i < ss->nruns; i++) {
        int rc = cb(&ss->runs[i]->rec, user);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int m_run_list_unfinished(cgw_store_t *s, cgw_store_run_cb cb, void *user, cgw_error_t *err)
{
    (void)err;
    for (struct mem_run *r = ((mem_store_t *)s)->runs_head; r != NULL; r = r->next) {
        if (r->rec.status == CGW_RUN_RUNNING) {
            int rc = cb(&r->rec, user);
            if (rc != CGW_OK) {
                return rc;
            }
        }
    }
    return CGW_OK;
}

/* ---- events --------------------------------------------------------------------------------- */

static int m_event_append(cgw_store_t *s, const char *tenant, const char *run_id,
                          const cgw_store_event_t *events, size_t n, uint64_t *first_seq,
                          cgw_error_t *err)
{
    struct mem_run *r = find_run((mem_store_t *)s, tenant, run_id);
    if (r == NULL) {
        return cgw__store_enoent(err, "run", run_id);
    }
    return append_checked(r, events, n, first_seq, err);
}

static int m_event_read(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t after,
                        size_t limit, cgw_store_event_cb cb, void *user, cgw_error_t *err)
{
    struct mem_run *r = find_run((mem_store_t *)s, tenant, run_id);
    if (r == NULL) {
        return cgw__store_enoent(err, "run", run_id);
    }
    /* Seqs are dense from 1: event `after + 1` sits at index `after`. */
    for (uint64_t i = after, sent = 0; i < r->nevents && (limit == 0 || sent < limit);
         i++, sent++) {
        int rc = cb(&r->events[i]->ev, user);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int m_event_last_seq(cgw_store_t *s, const char *tenant, const char *run_id, uint64_t *out,
                            cgw_error_t *err)
{
    struct mem_run *r = find_run((mem_store_t *)s, tenant, run_id);
    if (r == NULL) {
        return cgw__store_enoent(err, "run", run_id);
    }
    *out = r->rec.last_seq;
    return CGW_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static int m_flush(cgw_store_t *s, cgw_error_t *err)
{
    (void)s;
    (void)err;
    return CGW_OK; /* nothing is ever queued */
}

static void m_destroy(cgw_store_t *s)
{
    mem_store_t *m = (mem_store_t *)s;
    for (size_t i = 0; i < m->tenants.cap; i++) {
        struct mem_tenant *t = m->tenants.slots[i].value;
        while (t != NULL && t->head != NULL) {
            free_session(m, t->head);
        }
        cgw_free(t);
    }
    cgw__map_free(&m->tenants);
    cgw__map_free(&m->sessions);
    cgw__map_free(&m->runs);
    cgw_free(m);
}

static const struct cgw_store_vtable mem_vtable = {
    .kind = "memory",
    .destroy = m_destroy,
    .flush = m_flush,
    .session_create = m_session_create,
    .session_get = m_session_get,
    .session_list = m_session_list,
    .session_count = m_session_count,
    .session_update = m_session_update,
    .session_delete = m_session_delete,
    .message_append = m_message_append,
    .message_load = m_message_load,
    .message_count = m_message_count,
    .message_truncate = m_message_truncate,
    .run_create = m_run_create,
    .run_get = m_run_get,
    .run_set_status = m_run_set_status,
    .run_list = m_run_list,
    .run_list_unfinished = m_run_list_unfinished,
    .event_append = m_event_append,
    .event_read = m_event_read,
    .event_last_seq = m_event_last_seq,
};

int cgw_store_open_memory(cgw_ctx_t *ctx, cgw_store_t **out)
{
    if (ctx == NULL || out == NULL) {
        return CGW_EINVAL;
    }
    mem_store_t *m = cgw__calloc(1, sizeof(*m));
    if (m == NULL) {
        return CGW_ENOMEM;
    }
    cgw__store_init(&m->base, &mem_vtable, ctx);
    *out = &m->base;
    return CGW_OK;
}
