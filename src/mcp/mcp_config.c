/* MCP configuration: which files to read, in which order, and how scopes merge
 * (rules in include/cgw/mcp_config.h). The fields of one entry are parsed in
 * mcp_config_entry.c.
 *
 * Merging is two-phase so that a failure (ENOMEM, a malformed file) leaves the config as it
 * was: a document is first parsed into a batch of entries, then the batch is committed
 * (each entry replaces the one of the same name in place, or is appended). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/json.h"
#include "mcp/mcp_config_int.h"

/* ~/.claude.json grows with Claude Code's history; anything past this is not a config. */
#define CONFIG_FILE_MAX (64u * 1024u * 1024u)

struct cgw_mcp_config {
    unsigned scopes;
    char *claude_json_path; /* resolved; NULL when HOME is unknown */
    char *project_dir;      /* resolved */
    char *mcp_json_path;    /* resolved */
    char *explicit_path;
    char **allowed; /* NULL = all */
    size_t n_allowed;
    cgw_mcp_timeout_override_t *overrides; /* server names owned */
    size_t n_overrides;
    uint32_t startup_timeout_ms;
    uint32_t tool_timeout_ms;
    cgw_mcp_getenv_fn getenv_fn;
    void *getenv_user;
    cgw__mcp_entry_t **items;
    size_t n, cap;
};

void cgw_mcp_config_options_init(cgw_mcp_config_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->scopes = CGW_MCP_SCOPES_DEFAULT;
    opts->startup_timeout_ms = CGW_MCP_STARTUP_TIMEOUT_MS_DEFAULT;
    opts->tool_timeout_ms = CGW_MCP_TOOL_TIMEOUT_MS_DEFAULT;
}

const char *cgw_mcp_scope_name(cgw_mcp_scope_t scope)
{
    switch (scope) {
    case CGW_MCP_SCOPE_USER:
        return "user";
    case CGW_MCP_SCOPE_PROJECT:
        return "project";
    case CGW_MCP_SCOPE_LOCAL:
        return "local";
    case CGW_MCP_SCOPE_EXPLICIT:
        return "explicit";
    case CGW_MCP_SCOPE_INLINE:
        return "inline";
    }
    return "?";
}

const char *cgw_mcp_transport_name(cgw_mcp_transport_t transport)
{
    switch (transport) {
    case CGW_MCP_TRANSPORT_STDIO:
        return "stdio";
    case CGW_MCP_TRANSPORT_HTTP:
        return "http";
    case CGW_MCP_TRANSPORT_SSE:
        return "sse";
    case CGW_MCP_TRANSPORT_UNKNOWN:
        break;
    }
    return "unknown";
}

static char *join_path(const char *dir, const char *file)
{
    size_t dl = strlen(dir);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    size_t n = dl + strlen(file) + 2;
    char *p = cgw__malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s%s%s", dir, slash ? "" : "/", file);
    }
    return p;
}

static int validate_options(const cgw_mcp_config_options_t *o)
{
    const unsigned all = CGW_MCP_SCOPES_DEFAULT | CGW_MCP_SCOPE_EXPLICIT | CGW_MCP_SCOPE_INLINE;
    if ((o->scopes & ~all) != 0 || o->startup_timeout_ms == 0 || o->tool_timeout_ms == 0 ||
        ((o->scopes & CGW_MCP_SCOPE_EXPLICIT) && o->explicit_path == NULL) ||
        (o->n_allowed_servers > 0 && o->allowed_servers == NULL) ||
        (o->n_timeout_overrides > 0 && o->timeout_overrides == NULL)) {
        return CGW_EINVAL;
    }
    for (size_t i = 0; i < o->n_allowed_servers; i++) {
        if (o->allowed_servers[i] == NULL) {
            return CGW_EINVAL;
        }
    }
    for (size_t i = 0; i < o->n_timeout_overrides; i++) {
        if (o->timeout_overrides[i].server == NULL ||
            o->timeout_overrides[i].tool_timeout_ms == 0) {
            return CGW_EINVAL;
        }
    }
    return CGW_OK;
}

static int copy_lists(cgw_mcp_config_t *c, const cgw_mcp_config_options_t *o)
{
    if (o->allowed_servers != NULL) {
        c->allowed = cgw__calloc(o->n_allowed_servers + 1, sizeof(*c->allowed));
        if (c->allowed == NULL) {
            return CGW_ENOMEM;
        }
        for (size_t i = 0; i < o->n_allowed_servers; i++, c->n_allowed++) {
            if ((c->allowed[i] = cgw__strdup(o->allowed_servers[i])) == NULL) {
                return CGW_ENOMEM;
            }
        }
    }
    if (o->n_timeout_overrides > 0) {
        c->overrides = cgw__calloc(o->n_timeout_overrides, sizeof(*c->overrides));
        if (c->overrides == NULL) {
            return CGW_ENOMEM;
        }
        for (size_t i = 0; i < o->n_timeout_overrides; i++, c->n_overrides++) {
            c->overrides[i].tool_timeout_ms = o->timeout_overrides[i].tool_timeout_ms;
            if ((c->overrides[i].server = cgw__strdup(o->timeout_overrides[i].server)) == NULL) {
                return CGW_ENOMEM;
            }
        }
    }
    return CGW_OK;
}

/* Resolves the default paths; a NULL claude_json_path result means "no HOME": skip it. */
static int resolve_paths(cgw_mcp_config_t *c, const cgw_mcp_config_options_t *o)
{
    if (o->claude_json_path != NULL) {
        c->claude_json_path = cgw__strdup(o->claude_json_path);
        if (c->claude_json_path == NULL) {
            return CGW_ENOMEM;
        }
    } else {
        const char *home = c->getenv_fn("HOME", c->getenv_user);
        if (home != NULL && home[0] != '\0' &&
            (c->claude_json_path = join_path(home, ".claude.json")) == NULL) {
            return CGW_ENOMEM;
        }
    }
    if (o->project_dir != NULL) {
        c->project_dir = cgw__strdup(o->project_dir);
    } else {
        char buf[PATH_MAX];
        if (getcwd(buf, sizeof(buf)) == NULL) {
            return -errno;
        }
        c->project_dir = cgw__strdup(buf);
    }
    if (c->project_dir == NULL) {
        return CGW_ENOMEM;
    }
    c->mcp_json_path = o->mcp_json_path != NULL ? cgw__strdup(o->mcp_json_path)
                                                : join_path(c->project_dir, ".mcp.json");
    if (c->mcp_json_path == NULL) {
        return CGW_ENOMEM;
    }
    if (o->explicit_path != NULL && (c->explicit_path = cgw__strdup(o->explicit_path)) == NULL) {
        return CGW_ENOMEM;
    }
    return CGW_OK;
}

/* Claude Code's MCP_TIMEOUT / MCP_TOOL_TIMEOUT: a positive number of milliseconds. Unset
 * leaves *ms alone; anything else is CGW_ECONFIG. */
static int env_timeout(const cgw_mcp_config_t *c, const char *name, uint32_t *ms)
{
    const char *v = c->getenv_fn(name, c->getenv_user);
    if (v == NULL) {
        return CGW_OK;
    }
    uint64_t n = 0;
    for (const char *p = v; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || (n = n * 10 + (uint64_t)(*p - '0')) > UINT32_MAX) {
            return CGW_ECONFIG;
        }
    }
    if (n == 0) {
        return CGW_ECONFIG;
    }
    *ms = (uint32_t)n;
    return CGW_OK;
}

int cgw_mcp_config_new(const cgw_mcp_config_options_t *opts, cgw_mcp_config_t **out)
{
    cgw_mcp_config_options_t defaults;
    if (opts == NULL) {
        cgw_mcp_config_options_init(&defaults);
        opts = &defaults;
    }
    if (out == NULL || validate_options(opts) != CGW_OK) {
        return CGW_EINVAL;
    }
    cgw_mcp_config_t *c = cgw__calloc(1, sizeof(*c));
    if (c == NULL) {
        return CGW_ENOMEM;
    }
    c->scopes = opts->scopes;
    c->startup_timeout_ms = opts->startup_timeout_ms;
    c->tool_timeout_ms = opts->tool_timeout_ms;
    c->getenv_fn = opts->getenv_fn != NULL ? opts->getenv_fn : cgw__mcp_process_getenv;
    c->getenv_user = opts->getenv_user;
    int rc = copy_lists(c, opts);
    if (rc == CGW_OK) {
        rc = resolve_paths(c, opts);
    }
    if (rc == CGW_OK && opts->claude_env_timeouts) {
        rc = env_timeout(c, "MCP_TIMEOUT", &c->startup_timeout_ms);
        rc = rc != CGW_OK ? rc : env_timeout(c, "MCP_TOOL_TIMEOUT", &c->tool_timeout_ms);
    }
    if (rc != CGW_OK) {
        cgw_mcp_config_free(c);
        return rc;
    }
    *out = c;
    return CGW_OK;
}

void cgw_mcp_config_free(cgw_mcp_config_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        cgw__mcp_entry_free(c->items[i]);
    }
    cgw_free(c->items);
    for (size_t i = 0; i < c->n_allowed; i++) {
        cgw_free(c->allowed[i]);
    }
    cgw_free(c->allowed);
    for (size_t i = 0; i < c->n_overrides; i++) {
        cgw_free((void *)c->overrides[i].server);
    }
    cgw_free(c->overrides);
    cgw_free(c->claude_json_path);
    cgw_free(c->project_dir);
    cgw_free(c->mcp_json_path);
    cgw_free(c->explicit_path);
    cgw_free(c);
}

static bool allowed(const cgw_mcp_config_t *c, const char *name)
{
    if (c->allowed == NULL) {
        return true;
    }
    for (size_t i = 0; i < c->n_allowed; i++) {
        if (strcmp(c->allowed[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static uint32_t tool_timeout_for(const cgw_mcp_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_overrides; i++) {
        if (strcmp(c->overrides[i].server, name) == 0) {
            return c->overrides[i].tool_timeout_ms;
        }
    }
    return c->tool_timeout_ms;
}

static ssize_t index_of(const cgw_mcp_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->items[i]->pub.name, name) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* Commits a parsed batch; cannot fail because room was reserved beforehand. */
static void commit_batch(cgw_mcp_config_t *c, cgw__mcp_entry_t **batch, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ssize_t at = index_of(c, batch[i]->pub.name);
        if (at < 0) {
            c->items[c->n++] = batch[i];
            continue;
        }
        cgw__mcp_entry_t *old = c->items[at];
        batch[i]->pub.shadowed = old->pub.shadowed | (unsigned)old->pub.scope;
        cgw__mcp_entry_free(old);
        c->items[at] = batch[i];
    }
}

/* Merges the object `servers` (the value of some "mcpServers") as `scope`. */
static int merge_servers(cgw_mcp_config_t *c, const json_t *servers, cgw_mcp_scope_t scope,
                         const char *source)
{
    size_t want = c->n + json_object_size(servers);
    if (want > c->cap) {
        cgw__mcp_entry_t **items = cgw__realloc(c->items, want * sizeof(*items));
        if (items == NULL) {
            return CGW_ENOMEM;
        }
        c->items = items;
        c->cap = want;
    }
    cgw__mcp_entry_t **batch = cgw__calloc(json_object_size(servers) + 1, sizeof(*batch));
    if (batch == NULL) {
        return CGW_ENOMEM;
    }
    size_t n = 0;
    int rc = CGW_OK;
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)servers, name, value)
    {
        if (!allowed(c, name)) {
            continue;
        }
        cgw__mcp_parse_ctx_t pc = {c->getenv_fn, c->getenv_user,        scope,
                                   source,       c->startup_timeout_ms, tool_timeout_for(c, name)};
        if ((rc = cgw__mcp_entry_parse(name, value, &pc, &batch[n])) != CGW_OK) {
            break;
        }
        n++;
    }
    if (rc == CGW_OK) {
        commit_batch(c, batch, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            cgw__mcp_entry_free(batch[i]);
        }
    }
    cgw_free(batch);
    return rc;
}

/* Merges doc["mcpServers"] when present. `where` names the object for messages. */
static int merge_document(cgw_mcp_config_t *c, const json_t *doc, cgw_mcp_scope_t scope,
                          const char *source, const char *where, cgw_error_t *err)
{
    if (!json_is_object(doc)) {
        return cgw_error_set(err, CGW_ECONFIG, "%s: %s is not a JSON object", source, where);
    }
    const json_t *servers = json_object_get(doc, "mcpServers");
    if (servers == NULL || json_is_null(servers)) {
        return CGW_OK;
    }
    if (!json_is_object(servers)) {
        return cgw_error_set(err, CGW_ECONFIG, "%s: \"mcpServers\" of %s is not a JSON object",
                             source, where);
    }
    int rc = merge_servers(c, servers, scope, source);
    return rc == CGW_OK ? rc : cgw_error_set(err, rc, "out of memory merging %s", source);
}

int cgw_mcp_config_add_json(cgw_mcp_config_t *c, cgw_mcp_scope_t scope, const char *text,
                            size_t len, const char *origin, cgw_error_t *err)
{
    if (c == NULL || text == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "cgw_mcp_config_add_json: NULL argument");
    }
    json_t *doc = NULL;
    int rc = cgw_json_parse(text, len, &doc, err);
    if (rc == CGW_OK) {
        rc = merge_document(c, doc, scope, origin != NULL ? origin : "inline", "the document", err);
        json_decref(doc);
    }
    return rc;
}

/* Reads and parses a whole file. CGW_ENOENT when it does not exist (callers decide whether
 * that matters). */
static int read_json_file(const char *path, json_t **out, cgw_error_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno == ENOTDIR ? ENOENT : errno;
        return cgw_error_set(err, -e, "%s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONFIG_FILE_MAX) {
        close(fd);
        return cgw_error_set(err, CGW_EINVAL, "%s: not a regular file of at most %u bytes", path,
                             CONFIG_FILE_MAX);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = cgw__malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return cgw_error_set(err, CGW_ENOMEM, "out of memory reading %s", path);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            close(fd);
            cgw_free(buf);
            return cgw_error_set(err, -e, "%s: read failed: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    cgw_error_t jerr;
    cgw_error_clear(&jerr);
    /* A UTF-8 byte order mark (Windows editors) is not JSON; skip it rather than fail. */
    size_t bom = size >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int rc = cgw_json_parse(buf + bom, size - bom, out, &jerr);
    cgw_free(buf);
    if (rc != CGW_OK && err != NULL) {
        err->line = jerr.line;
        err->column = jerr.column;
    }
    return rc == CGW_OK ? rc : cgw_error_set(err, rc, "%s: %s", path, jerr.message);
}

/* Finds projects[<project_dir>] by the path as given, without a trailing slash, and by its
 * realpath, because Claude Code keys it by the absolute working directory. */
static const json_t *project_entry(const cgw_mcp_config_t *c, const json_t *projects)
{
    const json_t *p = json_object_get(projects, c->project_dir);
    if (p != NULL) {
        return p;
    }
    size_t len = strlen(c->project_dir);
    if (len > 1 && c->project_dir[len - 1] == '/') {
        char *trimmed = cgw__strndup(c->project_dir, len - 1);
        p = trimmed != NULL ? json_object_get(projects, trimmed) : NULL;
        cgw_free(trimmed);
        if (p != NULL) {
            return p;
        }
    }
    char real[PATH_MAX];
    if (realpath(c->project_dir, real) != NULL) {
        return json_object_get(projects, real);
    }
    return NULL;
}

static int merge_local(cgw_mcp_config_t *c, const json_t *doc, cgw_error_t *err)
{
    const char *path = c->claude_json_path;
    const json_t *projects = json_object_get(doc, "projects");
    if (projects == NULL || json_is_null(projects)) {
        return CGW_OK;
    }
    if (!json_is_object(projects)) {
        return cgw_error_set(err, CGW_ECONFIG, "%s: \"projects\" is not a JSON object", path);
    }
    const json_t *proj = project_entry(c, projects);
    if (proj == NULL || json_is_null(proj)) {
        return CGW_OK;
    }
    char where[PATH_MAX + 32];
    snprintf(where, sizeof(where), "projects[\"%s\"]", c->project_dir);
    return merge_document(c, proj, CGW_MCP_SCOPE_LOCAL, path, where, err);
}

/* Loads one optional or required file as `scope`. */
static int load_file(cgw_mcp_config_t *c, const char *path, cgw_mcp_scope_t scope, bool required,
                     cgw_error_t *err)
{
    json_t *doc = NULL;
    int rc = read_json_file(path, &doc, err);
    if (rc == CGW_ENOENT && !required) {
        return CGW_OK;
    }
    if (rc == CGW_OK) {
        rc = merge_document(c, doc, scope, path, "the top level", err);
        json_decref(doc);
    }
    return rc;
}

static int load_scopes(cgw_mcp_config_t *c, cgw_error_t *err)
{
    int rc = CGW_OK;
    json_t *claude = NULL;
    bool want_claude = (c->scopes & (CGW_MCP_SCOPE_USER | CGW_MCP_SCOPE_LOCAL)) != 0 &&
                       c->claude_json_path != NULL;
    if (want_claude) {
        rc = read_json_file(c->claude_json_path, &claude, err);
        if (rc == CGW_ENOENT) {
            rc = CGW_OK;
        } else if (rc == CGW_OK && !json_is_object(claude)) {
            rc = cgw_error_set(err, CGW_ECONFIG, "%s: the top level is not a JSON object",
                               c->claude_json_path);
        }
    }
    if (rc == CGW_OK && claude != NULL && (c->scopes & CGW_MCP_SCOPE_USER)) {
        rc = merge_document(c, claude, CGW_MCP_SCOPE_USER, c->claude_json_path, "the top level",
                            err);
    }
    if (rc == CGW_OK && (c->scopes & CGW_MCP_SCOPE_PROJECT)) {
        rc = load_file(c, c->mcp_json_path, CGW_MCP_SCOPE_PROJECT, false, err);
    }
    if (rc == CGW_OK && claude != NULL && (c->scopes & CGW_MCP_SCOPE_LOCAL)) {
        rc = merge_local(c, claude, err);
    }
    if (rc == CGW_OK && (c->scopes & CGW_MCP_SCOPE_EXPLICIT)) {
        rc = load_file(c, c->explicit_path, CGW_MCP_SCOPE_EXPLICIT, true, err);
    }
    json_decref(claude);
    return rc;
}

int cgw_mcp_config_load(const cgw_mcp_config_options_t *opts, cgw_mcp_config_t **out,
                        cgw_error_t *err)
{
    if (out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "cgw_mcp_config_load: NULL out");
    }
    cgw_mcp_config_t *c = NULL;
    int rc = cgw_mcp_config_new(opts, &c);
    if (rc == CGW_ECONFIG) {
        return cgw_error_set(err, rc,
                             "MCP_TIMEOUT and MCP_TOOL_TIMEOUT must be positive "
                             "numbers of milliseconds");
    }
    if (rc != CGW_OK) {
        return cgw_error_set(err, rc, "invalid MCP configuration options: %s", cgw_strerror(rc));
    }
    rc = load_scopes(c, err);
    if (rc != CGW_OK) {
        cgw_mcp_config_free(c);
        return rc;
    }
    *out = c;
    return CGW_OK;
}

size_t cgw_mcp_config_count(const cgw_mcp_config_t *c)
{
    return c != NULL ? c->n : 0;
}

const cgw_mcp_server_config_t *cgw_mcp_config_at(const cgw_mcp_config_t *c, size_t i)
{
    return c != NULL && i < c->n ? &c->items[i]->pub : NULL;
}

const cgw_mcp_server_config_t *cgw_mcp_config_find(const cgw_mcp_config_t *c, const char *name)
{
    ssize_t at = c != NULL && name != NULL ? index_of(c, name) : -1;
    return at >= 0 ? &c->items[at]->pub : NULL;
}
