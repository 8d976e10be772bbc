/* Tool-name rules: builtin names win, the first server wins, and exposed names that always fit
 * the API's ^[A-Za-z0-9_-]{1,N}$ (rules in include/cgw/mcp_tools.h).
 *
 * Shortening uses a hash of the original (server, tool) pair rather than a counter so that a
 * tool keeps its exposed name across restarts and config edits that add unrelated servers;
 * a counter is mixed into the hash only to break a real clash. Lookups go through small
 * open-addressing tables keyed by byte strings that point into the entries themselves. */
#include <stdio.h>
#include <string.h>

#include "cgw/mcp_tools.h"
#include "core/alloc.h"
#include "core/buf.h"

#define HASH_HEX 8                /* hex digits appended when shortening */
#define SUFFIX_LEN (1 + HASH_HEX) /* "_" + digits */
#define SERVER_KEEP 16            /* server characters kept when shortening, at most */
#define MAX_ATTEMPTS 100000       /* clash-breaking rounds; unreachable in practice */

typedef struct entry {
    cgw_mcp_tool_ref_t ref;
    size_t pair_len; /* strlen(server) + 1 + strlen(tool) */
    char buf[];      /* server \0 tool \0 exposed \0 */
} entry_t;

typedef struct slot {
    const char *key; /* NULL = empty */
    size_t len;
    size_t val;
} slot_t;

typedef struct table {
    slot_t *slots;
    size_t cap, n; /* cap is a power of two, kept at most half full */
} table_t;

struct cgw_mcp_toolmap {
    cgw_mcp_naming_t naming;
    size_t max_len;
    char **builtins;
    size_t n_builtins;
    table_t builtin_tab; /* builtin name -> index into builtins */
    table_t exposed_tab; /* exposed -> entry */
    table_t pair_tab;    /* server \0 tool -> entry */
    table_t raw_tab;     /* tool -> entry (plain naming: first server wins) */
    entry_t **entries;
    size_t n, cap;
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

/* Finds the key a (alen bytes), or with b != NULL the pair key a "\0" b, whose FNV-1a hash
 * is h. Pairs are looked up without building the joined key, so lookups never allocate. */
static const slot_t *tab_find(const table_t *t, uint64_t h, const char *a, size_t alen,
                              const char *b, size_t blen)
{
    if (t->cap == 0) {
        return NULL;
    }
    size_t len = b != NULL ? alen + 1 + blen : alen;
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const slot_t *s = &t->slots[i];
        if (s->key == NULL) {
            return NULL;
        }
        if (s->len == len && memcmp(s->key, a, alen) == 0 &&
            (b == NULL || (s->key[alen] == '\0' && memcmp(s->key + alen + 1, b, blen) == 0))) {
            return s;
        }
    }
}

static const slot_t *tab_get(const table_t *t, const char *key, size_t len)
{
    return tab_find(t, fnv1a(FNV_OFFSET, key, len), key, len, NULL, 0);
}

static const slot_t *tab_get_pair(const table_t *t, const char *server, const char *tool)
{
    size_t sl = strlen(server), tl = strlen(tool);
    uint64_t h = fnv1a(fnv1a(FNV_OFFSET, server, sl + 1), tool, tl);
    return tab_find(t, h, server, sl, tool, tl);
}

static void tab_put_nogrow(table_t *t, const char *key, size_t len, size_t val)
{
    size_t mask = t->cap - 1;
    size_t i = fnv1a(FNV_OFFSET, key, len) & mask;
    while (t->slots[i].key != NULL) {
        i = (i + 1) & mask;
    }
    t->slots[i] = (slot_t){key, len, val};
    t->n++;
}

/* Makes room for one more key. CGW_OK or CGW_ENOMEM (table unchanged). */
static int tab_reserve(table_t *t)
{
    if ((t->n + 1) * 2 <= t->cap) {
        return CGW_OK;
    }
    size_t cap = t->cap != 0 ? t->cap * 2 : 16;
    slot_t *slots = cgw__calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return CGW_ENOMEM;
    }
    table_t grown = {slots, cap, 0};
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key != NULL) {
            tab_put_nogrow(&grown, t->slots[i].key, t->slots[i].len, t->slots[i].val);
        }
    }
    cgw_free(t->slots);
    *t = grown;
    return CGW_OK;
}

static bool tab_has(const table_t *t, const char *key)
{
    return tab_get(t, key, strlen(key)) != NULL;
}

static bool name_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool cgw_mcp_tool_name_valid(const char *name, size_t max_len)
{
    if (name == NULL || name[0] == '\0') {
        return false;
    }
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        if (i >= max_len || !name_char_ok(name[i])) {
            return false;
        }
    }
    return true;
}

const char *cgw_mcp_tool_status_name(cgw_mcp_tool_status_t status)
{
    switch (status) {
    case CGW_MCP_TOOL_ADDED:
        return "added";
    case CGW_MCP_TOOL_SKIPPED_BUILTIN:
        return "builtin";
    case CGW_MCP_TOOL_SKIPPED_DUPLICATE:
        return "duplicate";
    case CGW_MCP_TOOL_SKIPPED_INVALID:
        return "invalid";
    }
    return "?";
}

void cgw_mcp_toolmap_options_init(cgw_mcp_toolmap_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->naming = CGW_MCP_NAMING_PLAIN;
    opts->max_name_len = CGW_MCP_TOOL_NAME_MAX_DEFAULT;
}

void cgw_mcp_toolmap_free(cgw_mcp_toolmap_t *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        cgw_free(m->entries[i]);
    }
    cgw_free(m->entries);
    for (size_t i = 0; i < m->n_builtins; i++) {
        cgw_free(m->builtins[i]);
    }
    cgw_free(m->builtins);
    cgw_free(m->builtin_tab.slots);
    cgw_free(m->exposed_tab.slots);
    cgw_free(m->pair_tab.slots);
    cgw_free(m->raw_tab.slots);
    cgw_free(m);
}

static int copy_builtins(cgw_mcp_toolmap_t *m, const cgw_mcp_toolmap_options_t *o)
{
    if (o->n_builtin_names == 0) {
        return CGW_OK;
    }
    m->builtins = cgw__calloc(o->n_builtin_names, sizeof(*m->builtins));
    if (m->builtins == NULL) {
        return CGW_ENOMEM;
    }
    for (size_t i = 0; i < o->n_builtin_names; i++) {
        if (o->builtin_names[i] == NULL) {
            return CGW_EINVAL;
        }
        char *s = cgw__strdup(o->builtin_names[i]);
        if (s == NULL) {
            return CGW_ENOMEM;
        }
        m->builtins[m->n_builtins++] = s;
        if (!tab_has(&m->builtin_tab, s)) {
            if (tab_reserve(&m->builtin_tab) != CGW_OK) {
                return CGW_ENOMEM;
            }
            tab_put_nogrow(&m->builtin_tab, s, strlen(s), i);
        }
    }
    return CGW_OK;
}

int cgw_mcp_toolmap_new(const cgw_mcp_toolmap_options_t *opts, cgw_mcp_toolmap_t **out)
{
    cgw_mcp_toolmap_options_t defaults;
    if (opts == NULL) {
        cgw_mcp_toolmap_options_init(&defaults);
        opts = &defaults;
    }
    if (out == NULL ||
        (opts->naming != CGW_MCP_NAMING_PLAIN && opts->naming != CGW_MCP_NAMING_PREFIXED) ||
        opts->max_name_len < CGW_MCP_TOOL_NAME_MAX_MIN ||
        opts->max_name_len > CGW_MCP_TOOL_NAME_MAX_LIMIT ||
        (opts->n_builtin_names > 0 && opts->builtin_names == NULL)) {
        return CGW_EINVAL;
    }
    cgw_mcp_toolmap_t *m = cgw__calloc(1, sizeof(*m));
    if (m == NULL) {
        return CGW_ENOMEM;
    }
    m->naming = opts->naming;
    m->max_len = opts->max_name_len;
    int rc = copy_builtins(m, opts);
    if (rc != CGW_OK) {
        cgw_mcp_toolmap_free(m);
        return rc;
    }
    *out = m;
    return CGW_OK;
}

static int append_sanitized(cgw_buf_t *b, const char *s, size_t max)
{
    for (size_t i = 0; s[i] != '\0' && i < max; i++) {
        int rc = cgw_buf_append_char(b, name_char_ok(s[i]) ? s[i] : '_');
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

/* The unshortened name: the tool, or mcp__<server>__<tool>, sanitized. */
static int full_name(const cgw_mcp_toolmap_t *m, const char *server, const char *tool, cgw_buf_t *b)
{
    int rc = CGW_OK;
    if (m->naming == CGW_MCP_NAMING_PREFIXED) {
        rc = cgw_buf_append_str(b, "mcp__");
        rc = rc != CGW_OK ? rc : append_sanitized(b, server, SIZE_MAX);
        rc = rc != CGW_OK ? rc : cgw_buf_append_str(b, "__");
    }
    return rc != CGW_OK ? rc : append_sanitized(b, tool, SIZE_MAX);
}

/* The shortened form: kept prefix + "_" + 8 hex digits of the hash of the original names
 * (plus `attempt` when breaking a clash). At most max_len characters. */
static int short_name(const cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                      unsigned attempt, cgw_buf_t *b)
{
    size_t avail = m->max_len - SUFFIX_LEN;
    uint64_t h = FNV_OFFSET;
    size_t tl = strlen(tool);
    int rc = CGW_OK;
    if (m->naming == CGW_MCP_NAMING_PREFIXED) {
        size_t sl = strlen(server);
        size_t budget = avail - 7; /* "mcp__" + "__" */
        size_t keep_s = sl < SERVER_KEEP ? sl : SERVER_KEEP;
        keep_s = keep_s < budget / 2 ? keep_s : budget / 2;
        size_t keep_t = tl + keep_s <= budget ? tl : budget - keep_s;
        keep_s = budget - keep_t < sl ? budget - keep_t : sl;
        rc = cgw_buf_append_str(b, "mcp__");
        rc = rc != CGW_OK ? rc : append_sanitized(b, server, keep_s);
        rc = rc != CGW_OK ? rc : cgw_buf_append_str(b, "__");
        rc = rc != CGW_OK ? rc : append_sanitized(b, tool, keep_t);
        h = fnv1a(fnv1a(h, server, sl + 1), tool, tl);
    } else {
        rc = append_sanitized(b, tool, avail);
        h = fnv1a(h, tool, tl);
    }
    if (attempt > 0) {
        char n[16];
        int nl = snprintf(n, sizeof(n), "%u", attempt);
        h = fnv1a(fnv1a(h, "", 1), n, (size_t)nl);
    }
    unsigned folded = (unsigned)((h ^ (h >> 32)) & 0xffffffffu);
    return rc != CGW_OK ? rc : cgw_buf_appendf(b, "_%08x", folded);
}

static bool name_taken(const cgw_mcp_toolmap_t *m, const char *name)
{
    return tab_has(&m->exposed_tab, name) || tab_has(&m->builtin_tab, name);
}

/* Chooses the exposed name into `b`. */
static int choose_name(const cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                       cgw_buf_t *b)
{
    int rc = full_name(m, server, tool, b);
    if (rc != CGW_OK || (b->len <= m->max_len && !name_taken(m, b->data))) {
        return rc;
    }
    /* Too long, or it clashes: the long form is used from the first clash on. */
    for (unsigned attempt = b->len <= m->max_len ? 1 : 0; attempt < MAX_ATTEMPTS; attempt++) {
        cgw_buf_reset(b);
        if ((rc = short_name(m, server, tool, attempt, b)) != CGW_OK) {
            return rc;
        }
        if (!name_taken(m, b->data)) {
            return CGW_OK;
        }
    }
    return CGW_EINTERNAL;
}

/* The builtin and duplicate rules; returns true when the pair must be skipped. */
static bool skip_pair(const cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                      cgw_mcp_tool_status_t *st, const cgw_mcp_tool_ref_t **ref)
{
    const slot_t *dup;
    if (m->naming == CGW_MCP_NAMING_PLAIN) {
        if (tab_has(&m->builtin_tab, tool)) {
            *st = CGW_MCP_TOOL_SKIPPED_BUILTIN;
            return true;
        }
        dup = tab_get(&m->raw_tab, tool, strlen(tool));
    } else {
        char raw[CGW_MCP_TOOL_NAME_MAX_LIMIT + 1];
        int n = snprintf(raw, sizeof(raw), "mcp__%s__%s", server, tool);
        if (n > 0 && (size_t)n < sizeof(raw) && tab_has(&m->builtin_tab, raw)) {
            *st = CGW_MCP_TOOL_SKIPPED_BUILTIN;
            return true;
        }
        dup = tab_get_pair(&m->pair_tab, server, tool);
    }
    if (dup != NULL) {
        *st = CGW_MCP_TOOL_SKIPPED_DUPLICATE;
        *ref = &m->entries[dup->val]->ref;
        return true;
    }
    return false;
}

static int reserve_all(cgw_mcp_toolmap_t *m)
{
    if (m->n == m->cap) {
        size_t cap = m->cap != 0 ? m->cap * 2 : 16;
        entry_t **e = cgw__realloc(m->entries, cap * sizeof(*e));
        if (e == NULL) {
            return CGW_ENOMEM;
        }
        m->entries = e;
        m->cap = cap;
    }
    if (tab_reserve(&m->exposed_tab) != CGW_OK || tab_reserve(&m->pair_tab) != CGW_OK ||
        tab_reserve(&m->raw_tab) != CGW_OK) {
        return CGW_ENOMEM;
    }
    return CGW_OK;
}

static entry_t *entry_new(const char *server, const char *tool, const cgw_buf_t *exposed)
{
    size_t sl = strlen(server), tl = strlen(tool);
    entry_t *e = cgw__malloc(sizeof(*e) + sl + tl + exposed->len + 3);
    if (e == NULL) {
        return NULL;
    }
    memcpy(e->buf, server, sl + 1);
    memcpy(e->buf + sl + 1, tool, tl + 1);
    memcpy(e->buf + sl + tl + 2, exposed->data, exposed->len + 1);
    e->pair_len = sl + 1 + tl;
    e->ref.server = e->buf;
    e->ref.tool = e->buf + sl + 1;
    e->ref.exposed = e->buf + sl + tl + 2;
    e->ref.renamed = strcmp(e->ref.exposed, tool) != 0;
    return e;
}

static int add_new(cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                   const cgw_mcp_tool_ref_t **ref)
{
    cgw_buf_t name = CGW_BUF_INIT;
    int rc = reserve_all(m);
    rc = rc != CGW_OK ? rc : choose_name(m, server, tool, &name);
    entry_t *e = rc == CGW_OK ? entry_new(server, tool, &name) : NULL;
    cgw_buf_free(&name);
    if (e == NULL) {
        return rc != CGW_OK ? rc : CGW_ENOMEM;
    }
    size_t idx = m->n;
    m->entries[m->n++] = e;
    tab_put_nogrow(&m->exposed_tab, e->ref.exposed, strlen(e->ref.exposed), idx);
    tab_put_nogrow(&m->pair_tab, e->buf, e->pair_len, idx);
    if (m->naming == CGW_MCP_NAMING_PLAIN) {
        tab_put_nogrow(&m->raw_tab, e->ref.tool, strlen(e->ref.tool), idx);
    }
    *ref = &e->ref;
    return CGW_OK;
}

int cgw_mcp_toolmap_add(cgw_mcp_toolmap_t *m, const char *server, const char *tool,
                        cgw_mcp_tool_status_t *status, const cgw_mcp_tool_ref_t **ref)
{
    cgw_mcp_tool_status_t st_local;
    const cgw_mcp_tool_ref_t *ref_local;
    status = status != NULL ? status : &st_local;
    ref = ref != NULL ? ref : &ref_local;
    *ref = NULL;
    if (m == NULL || server == NULL || tool == NULL) {
        return CGW_EINVAL;
    }
    if (server[0] == '\0' || tool[0] == '\0') {
        *status = CGW_MCP_TOOL_SKIPPED_INVALID;
        return CGW_OK;
    }
    if (skip_pair(m, server, tool, status, ref)) {
        return CGW_OK;
    }
    int rc = add_new(m, server, tool, ref);
    if (rc == CGW_OK) {
        *status = CGW_MCP_TOOL_ADDED;
    }
    return rc;
}

size_t cgw_mcp_toolmap_count(const cgw_mcp_toolmap_t *m)
{
    return m != NULL ? m->n : 0;
}

const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_at(const cgw_mcp_toolmap_t *m, size_t i)
{
    return m != NULL && i < m->n ? &m->entries[i]->ref : NULL;
}

const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_find(const cgw_mcp_toolmap_t *m, const char *exposed)
{
    const slot_t *s =
        m != NULL && exposed != NULL ? tab_get(&m->exposed_tab, exposed, strlen(exposed)) : NULL;
    return s != NULL ? &m->entries[s->val]->ref : NULL;
}

const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_lookup(const cgw_mcp_toolmap_t *m, const char *server,
                                                 const char *tool)
{
    if (m == NULL || server == NULL || tool == NULL) {
        return NULL;
    }
    const slot_t *s = tab_get_pair(&m->pair_tab, server, tool);
    return s != NULL ? &m->entries[s->val]->ref : NULL;
}
