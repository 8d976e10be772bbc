/* One entry of "mcpServers": type resolution, field checks and ${VAR} expansion.
 *
 * A problem with an entry is recorded in the entry (error_code + error) instead of failing
 * the whole load: one bad server must not hide the others, and the manager and the `tools`
 * command need the reason to report it. Inside this file, CGW_ECONFIG means "the error is
 * recorded, stop parsing this entry"; only CGW_ENOMEM leaves the file. JSON null is treated
 * as an absent field, as the original's `config.get(...)` did. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/json.h"
#include "mcp/mcp_config_int.h"

static const cgw_mcp_header_t no_headers[1];

static int fail(cgw__mcp_entry_t *e, int code, const char *fmt, ...) CGW_PRINTF(3, 4);

/* Records the entry's error (the first one wins) and returns CGW_ECONFIG to stop parsing. */
static int fail(cgw__mcp_entry_t *e, int code, const char *fmt, ...)
{
    if (e->pub.error != NULL) {
        return CGW_ECONFIG;
    }
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_appendf(&b, "MCP server \"%s\": ", e->pub.name);
    if (rc == CGW_OK) {
        va_list ap;
        va_start(ap, fmt);
        rc = cgw_buf_appendv(&b, fmt, ap);
        va_end(ap);
    }
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return CGW_ENOMEM;
    }
    e->pub.error = cgw_buf_steal(&b, NULL);
    e->pub.error_code = code;
    return CGW_ECONFIG;
}

/* A JSON scalar as a string (the original turned list items and env values into strings).
 * CGW_OK, CGW_ENOMEM, or CGW_EINVAL for null, arrays and objects. */
static int scalar_string(const json_t *v, char **out)
{
    char num[64];
    const char *s = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        /* jansson's shortest round-trip form ("1.5", not "1.500000"). */
        char *d = cgw_json_dump(v, NULL);
        if (d == NULL) {
            return CGW_ENOMEM;
        }
        snprintf(num, sizeof(num), "%s", d);
        cgw_free(d);
        s = num;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
    } else {
        return CGW_EINVAL;
    }
    *out = cgw__strdup(s);
    return *out != NULL ? CGW_OK : CGW_ENOMEM;
}

/* Expands `in` for field `what`; an expansion problem becomes the entry's error. */
static int expand(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const char *what,
                  const char *in, char **out)
{
    cgw_error_t err;
    cgw_error_clear(&err);
    int rc = cgw_mcp_expand_vars(in, pc->getenv_fn, pc->getenv_user, out, &err);
    if (rc == CGW_ECONFIG) {
        return fail(e, CGW_ECONFIG, "in %s: %s", what, err.message);
    }
    return rc;
}

/* Reads an optional string field, expanded or not. Absent or null leaves *out NULL. */
static int string_field(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *obj,
                        const char *key, bool do_expand, char **out)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        return CGW_OK;
    }
    if (!json_is_string(v)) {
        return fail(e, CGW_ECONFIG, "\"%s\" must be a string", key);
    }
    if (do_expand) {
        char what[64];
        snprintf(what, sizeof(what), "\"%s\"", key);
        return expand(e, pc, what, json_string_value(v), out);
    }
    *out = cgw__strdup(json_string_value(v));
    return *out != NULL ? CGW_OK : CGW_ENOMEM;
}

static void trim_in_place(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        s[--len] = '\0';
    }
    size_t lead = strspn(s, " \t\r\n\f\v");
    memmove(s, s + lead, len - lead + 1);
}

static int parse_command(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *v)
{
    if (json_object_get(v, "command") == NULL || json_is_null(json_object_get(v, "command"))) {
        return fail(e, CGW_ECONFIG, "has no \"command\"");
    }
    int rc = string_field(e, pc, v, "command", true, &e->argv[0]);
    if (rc != CGW_OK) {
        return rc;
    }
    trim_in_place(e->argv[0]);
    if (e->argv[0][0] == '\0') {
        return fail(e, CGW_ECONFIG, "\"command\" is empty");
    }
    e->pub.command = e->argv[0];
    return CGW_OK;
}

static int parse_args(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *v)
{
    const json_t *args = json_object_get(v, "args");
    if (args == NULL || json_is_null(args)) {
        return CGW_OK;
    }
    if (!json_is_array(args)) {
        return fail(e, CGW_ECONFIG, "\"args\" must be an array of strings");
    }
    size_t n = json_array_size(args);
    char **argv = cgw__realloc(e->argv, (n + 2) * sizeof(*argv));
    if (argv == NULL) {
        return CGW_ENOMEM;
    }
    e->argv = argv;
    memset(argv + 1, 0, (n + 1) * sizeof(*argv));
    for (size_t i = 0; i < n; i++) {
        char *raw = NULL;
        int rc = scalar_string(json_array_get(args, i), &raw);
        if (rc == CGW_EINVAL) {
            return fail(e, CGW_ECONFIG, "\"args[%zu]\" must be a string", i);
        }
        if (rc != CGW_OK) {
            return rc;
        }
        char what[48];
        snprintf(what, sizeof(what), "\"args[%zu]\"", i);
        rc = expand(e, pc, what, raw, &argv[i + 1]);
        cgw_free(raw);
        if (rc != CGW_OK) {
            return rc;
        }
        e->pub.n_args = i + 1;
    }
    return CGW_OK;
}

/* Checks a key of a string map ("env", "headers"); null values are skipped before this, as
 * the original did for env. */
typedef int (*key_check_fn)(cgw__mcp_entry_t *e, const char *field, const char *key);

static int key_env(cgw__mcp_entry_t *e, const char *field, const char *key)
{
    if (key[0] == '\0' || strchr(key, '=') != NULL) {
        return fail(e, CGW_ECONFIG, "\"%s\" has an invalid variable name \"%s\"", field, key);
    }
    return CGW_OK;
}

static int key_header(cgw__mcp_entry_t *e, const char *field, const char *key)
{
    /* RFC 9110 token characters only, so a header can never be split or smuggled. */
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (key[0] == '\0') {
        return fail(e, CGW_ECONFIG, "\"%s\" has an empty header name", field);
    }
    for (const char *p = key; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL) {
            return fail(e, CGW_ECONFIG, "\"%s\" has an invalid header name \"%s\"", field, key);
        }
    }
    return CGW_OK;
}

static int map_value(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const char *field,
                     const char *key, const json_t *val, char **out)
{
    char *raw = NULL;
    int rc = scalar_string(val, &raw);
    if (rc == CGW_EINVAL) {
        return fail(e, CGW_ECONFIG, "\"%s.%s\" must be a string", field, key);
    }
    if (rc != CGW_OK) {
        return rc;
    }
    char what[300];
    snprintf(what, sizeof(what), "\"%s.%s\"", field, key);
    rc = expand(e, pc, what, raw, out);
    cgw_free(raw);
    return rc;
}

static int env_alloc(cgw__mcp_entry_t *e, size_t n)
{
    char **arr = cgw__calloc(n + 1, sizeof(*arr));
    if (arr == NULL) {
        return CGW_ENOMEM;
    }
    cgw_free(e->env);
    e->env = arr;
    return CGW_OK;
}

static int env_store(cgw__mcp_entry_t *e, const char *key, char *value)
{
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_appendf(&b, "%s=%s", key, value);
    cgw_free(value);
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        return rc;
    }
    e->env[e->pub.n_env++] = cgw_buf_steal(&b, NULL);
    return CGW_OK;
}

static int headers_alloc(cgw__mcp_entry_t *e, size_t n)
{
    e->headers = cgw__calloc(n + 1, sizeof(*e->headers));
    return e->headers != NULL ? CGW_OK : CGW_ENOMEM;
}

static int headers_store(cgw__mcp_entry_t *e, const char *key, char *value)
{
    cgw_mcp_header_t *h = &e->headers[e->pub.n_headers++];
    h->value = value;
    h->name = cgw__strdup(key);
    if (h->name == NULL) {
        return CGW_ENOMEM;
    }
    if (strpbrk(value, "\r\n") != NULL) {
        return fail(e, CGW_ECONFIG, "\"headers.%s\" contains a line break", key);
    }
    return CGW_OK;
}

/* A string map field ("env", "headers"): room for its pairs, a key check, and where an
 * expanded value goes (`store` owns the value from then on). */
typedef struct map_field {
    const char *name;
    key_check_fn check_key;
    int (*alloc)(cgw__mcp_entry_t *e, size_t n);
    int (*store)(cgw__mcp_entry_t *e, const char *key, char *value);
} map_field_t;

static const map_field_t env_field = {"env", key_env, env_alloc, env_store};
static const map_field_t headers_field = {"headers", key_header, headers_alloc, headers_store};

static int parse_map(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *v,
                     const map_field_t *f)
{
    const json_t *map = json_object_get(v, f->name);
    if (map == NULL || json_is_null(map)) {
        return CGW_OK;
    }
    if (!json_is_object(map)) {
        return fail(e, CGW_ECONFIG, "\"%s\" must be an object of strings", f->name);
    }
    if (f->alloc(e, json_object_size(map)) != CGW_OK) {
        return CGW_ENOMEM;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)map, key, val)
    {
        if (json_is_null(val)) {
            continue;
        }
        char *value = NULL;
        int rc = f->check_key(e, f->name, key);
        rc = rc != CGW_OK ? rc : map_value(e, pc, f->name, key, val, &value);
        rc = rc != CGW_OK ? rc : f->store(e, key, value);
        if (rc != CGW_OK) {
            return rc;
        }
    }
    return CGW_OK;
}

static int resolve_transport(cgw__mcp_entry_t *e, const json_t *v)
{
    const json_t *t = json_object_get(v, "type");
    if (t != NULL && !json_is_null(t)) {
        if (!json_is_string(t)) {
            return fail(e, CGW_ECONFIG, "\"type\" must be a string");
        }
        char *type = cgw__strdup(json_string_value(t));
        if (type == NULL) {
            return CGW_ENOMEM;
        }
        e->pub.type = type;
        char low[32];
        snprintf(low, sizeof(low), "%s", type);
        trim_in_place(low);
        for (char *p = low; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
        }
        if (strcmp(low, "stdio") == 0) {
            e->pub.transport = CGW_MCP_TRANSPORT_STDIO;
        } else if (strcmp(low, "http") == 0 || strcmp(low, "streamable-http") == 0) {
            e->pub.transport = CGW_MCP_TRANSPORT_HTTP;
        } else if (strcmp(low, "sse") == 0) {
            e->pub.transport = CGW_MCP_TRANSPORT_SSE;
        } else {
            e->pub.transport = CGW_MCP_TRANSPORT_UNKNOWN;
        }
        return CGW_OK;
    }
    const json_t *cmd = json_object_get(v, "command");
    const json_t *url = json_object_get(v, "url");
    bool has_cmd = cmd != NULL && !json_is_null(cmd);
    bool has_url = url != NULL && !json_is_null(url);
    e->pub.transport = !has_cmd && has_url ? CGW_MCP_TRANSPORT_HTTP : CGW_MCP_TRANSPORT_STDIO;
    return CGW_OK;
}

static int parse_stdio(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *v)
{
    int rc = parse_command(e, pc, v);
    if (rc == CGW_OK) {
        rc = parse_args(e, pc, v);
    }
    if (rc == CGW_OK) {
        rc = parse_map(e, pc, v, &env_field);
    }
    char *cwd = NULL;
    if (rc == CGW_OK) {
        rc = string_field(e, pc, v, "cwd", false, &cwd);
    }
    if (cwd != NULL && cwd[0] == '\0') {
        cgw_free(cwd);
        cwd = NULL;
    }
    e->pub.cwd = cwd;
    return rc;
}

static int parse_remote(cgw__mcp_entry_t *e, const cgw__mcp_parse_ctx_t *pc, const json_t *v)
{
    char *url = NULL;
    int rc = string_field(e, pc, v, "url", true, &url);
    e->pub.url = url;
    if (rc == CGW_OK) {
        rc = parse_map(e, pc, v, &headers_field);
    }
    if (rc != CGW_OK) {
        return rc;
    }
    if (e->pub.transport == CGW_MCP_TRANSPORT_UNKNOWN) {
        return fail(e, CGW_ENOTSUP, "unknown transport type \"%s\"", e->pub.type);
    }
    if (url == NULL || url[0] == '\0') {
        return fail(e, CGW_ECONFIG, "has no \"url\"");
    }
    return fail(e, CGW_ENOTSUP, "transport \"%s\" is not supported yet",
                cgw_mcp_transport_name(e->pub.transport));
}

static void publish_arrays(cgw__mcp_entry_t *e)
{
    e->pub.args = (const char *const *)(e->argv + 1);
    e->pub.argv = e->argv[0] != NULL ? (const char *const *)e->argv : NULL;
    e->pub.env = (const char *const *)e->env;
    e->pub.headers = e->headers != NULL ? e->headers : no_headers;
}

int cgw__mcp_entry_parse(const char *name, const json_t *value, const cgw__mcp_parse_ctx_t *pc,
                         cgw__mcp_entry_t **out)
{
    *out = NULL;
    cgw__mcp_entry_t *e = cgw__calloc(1, sizeof(*e));
    if (e == NULL) {
        return CGW_ENOMEM;
    }
    e->pub.name = cgw__strdup(name);
    e->pub.source = pc->source != NULL ? cgw__strdup(pc->source) : NULL;
    e->argv = cgw__calloc(2, sizeof(*e->argv));
    e->env = cgw__calloc(1, sizeof(*e->env));
    e->pub.scope = pc->scope;
    e->pub.startup_timeout_ms = pc->startup_timeout_ms;
    e->pub.tool_timeout_ms = pc->tool_timeout_ms;
    int rc = CGW_ENOMEM;
    if (e->pub.name != NULL && (pc->source == NULL || e->pub.source != NULL) && e->argv != NULL &&
        e->env != NULL) {
        if (!json_is_object(value)) {
            rc = fail(e, CGW_ECONFIG, "entry must be a JSON object");
        } else {
            rc = resolve_transport(e, value);
            if (rc == CGW_OK) {
                rc = e->pub.transport == CGW_MCP_TRANSPORT_STDIO ? parse_stdio(e, pc, value)
                                                                 : parse_remote(e, pc, value);
            }
        }
    }
    if (rc == CGW_ENOMEM) {
        cgw__mcp_entry_free(e);
        return CGW_ENOMEM;
    }
    publish_arrays(e);
    *out = e;
    return CGW_OK;
}

void cgw__mcp_entry_free(cgw__mcp_entry_t *e)
{
    if (e == NULL) {
        return;
    }
    if (e->argv != NULL) {
        cgw_free(e->argv[0]); /* the command; may be NULL while args follow */
        for (char **p = e->argv + 1; *p != NULL; p++) {
            cgw_free(*p);
        }
        cgw_free(e->argv);
    }
    for (size_t i = 0; e->env != NULL && e->env[i] != NULL; i++) {
        cgw_free(e->env[i]);
    }
    cgw_free(e->env);
    for (size_t i = 0; e->headers != NULL && i < e->pub.n_headers; i++) {
        cgw_free((void *)e->headers[i].name);
        cgw_free((void *)e->headers[i].value);
    }
    cgw_free(e->headers);
    cgw_free((void *)e->pub.name);
    cgw_free((void *)e->pub.type);
    cgw_free((void *)e->pub.cwd);
    cgw_free((void *)e->pub.url);
    cgw_free((void *)e->pub.source);
    cgw_free((void *)e->pub.error);
    cgw_free(e);
}
