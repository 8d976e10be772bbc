/* Settings of `claude-gateway serve` from a JSON file, the environment and flags.
 *
 * One table drives all three sources, so a key has the same name everywhere: "max_body_bytes"
 * in the file is CGW_MAX_BODY_BYTES in the environment. Lists ("tokens", "approval_tools",
 * "allowed_servers") are JSON arrays in the file and comma-separated in the environment;
 * a token is {"token","tenant"} in the file and "tenant:token" in CGW_TOKENS. A value that
 * does not parse is an error that names the key and source, never the value (it may be a
 * secret). */
#include "cli/serve_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/json.h"

enum kind { K_STR, K_U64, K_BOOL, K_LIST, K_TOKENS };

typedef struct key {
    const char *name;
    enum kind kind;
    size_t off;
    const char *env; /* extra environment name (the Anthropic ones), or NULL */
} key_t_;

#define F(field) offsetof(serve_config_t, field)

static const key_t_ keys[] = {
    {"listen", K_STR, F(listen), NULL},
    {"data_dir", K_STR, F(data_dir), NULL},
    {"store", K_STR, F(store), NULL},
    {"log_level", K_STR, F(log_level), NULL},
    {"log_format", K_STR, F(log_format), NULL},
    {"api_key", K_STR, F(api_key), "ANTHROPIC_API_KEY"},
    {"auth_token", K_STR, F(auth_token), "ANTHROPIC_AUTH_TOKEN"},
    {"auth_mode", K_STR, F(auth_mode), NULL},
    {"base_url", K_STR, F(base_url), "ANTHROPIC_BASE_URL"},
    {"model", K_STR, F(model), NULL},
    {"system_prompt", K_STR, F(system_prompt), NULL},
    {"mcp_config", K_STR, F(mcp_config), NULL},
    {"claude_json", K_STR, F(claude_json), NULL},
    {"project", K_STR, F(project), NULL},
    {"strict_mcp_config", K_BOOL, F(strict_mcp_config), NULL},
    {"max_tokens", K_U64, F(max_tokens), NULL},
    {"max_turns", K_U64, F(max_turns), NULL},
    {"tool_timeout_ms", K_U64, F(tool_timeout_ms), NULL},
    {"approval_timeout_ms", K_U64, F(approval_timeout_ms), NULL},
    {"max_body_bytes", K_U64, F(max_body_bytes), NULL},
    {"max_header_bytes", K_U64, F(max_header_bytes), NULL},
    {"max_sessions_per_tenant", K_U64, F(max_sessions_per_tenant), NULL},
    {"max_concurrent_runs", K_U64, F(max_concurrent_runs), NULL},
    {"max_loaded_sessions", K_U64, F(max_loaded_sessions), NULL},
    {"max_streams_per_client", K_U64, F(max_streams_per_client), NULL},
    {"stream_buffer_bytes", K_U64, F(stream_buffer_bytes), NULL},
    {"stream_stall_ms", K_U64, F(stream_stall_ms), NULL},
    {"ping_interval_ms", K_U64, F(ping_interval_ms), NULL},
    {"shutdown_grace_ms", K_U64, F(shutdown_grace_ms), NULL},
    {"stub_delay_ms", K_U64, F(stub_delay_ms), NULL},
    {"cancel_on_disconnect", K_BOOL, F(cancel_on_disconnect), NULL},
    {"tokens", K_TOKENS, 0, NULL},
    {"approval_tools", K_LIST, F(approval_tools), NULL},
    {"allowed_servers", K_LIST, F(allowed_servers), NULL},
};

void serve_config_init(serve_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->listen = cgw__strdup("127.0.0.1:8080");
    c->data_dir = cgw__strdup("data");
    c->store = cgw__strdup("sqlite");
}

static void free_list(char **items, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        cgw_free(items[i]);
    }
    *n = 0;
}

void serve_config_free(serve_config_t *c)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].kind == K_STR) {
            char **p = (char **)((char *)c + keys[i].off);
            cgw_free(*p);
            *p = NULL;
        }
    }
    for (size_t i = 0; i < c->n_tokens; i++) {
        cgw_free(c->token_tenant[i]);
        cgw_free(c->token_value[i]);
    }
    c->n_tokens = 0;
    free_list(c->approval_tools, &c->n_approval_tools);
    free_list(c->allowed_servers, &c->n_allowed_servers);
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static int add_token(serve_config_t *c, const char *tenant, size_t tl, const char *token)
{
    if (c->n_tokens == SERVE_MAX_TOKENS) {
        return -1;
    }
    c->token_tenant[c->n_tokens] = cgw__strndup(tenant, tl);
    c->token_value[c->n_tokens] = cgw__strdup(token);
    c->n_tokens++;
    return 0;
}

/* "a,b,c" into a list (replacing it). Tokens: "tenant:token,...". */
static int set_list(serve_config_t *c, const key_t_ *k, const char *v)
{
    char **items = k->kind == K_TOKENS ? NULL : (char **)((char *)c + k->off);
    size_t *n = k->off == F(approval_tools) ? &c->n_approval_tools : &c->n_allowed_servers;
    if (k->kind == K_TOKENS) {
        for (size_t i = 0; i < c->n_tokens; i++) {
            cgw_free(c->token_tenant[i]);
            cgw_free(c->token_value[i]);
        }
        c->n_tokens = 0;
    } else {
        free_list(items, n);
        c->has_allowed_servers = c->has_allowed_servers || k->off == F(allowed_servers);
    }
    while (*v != '\0') {
        const char *end = strchr(v, ',');
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
        if (len > 0 && k->kind == K_TOKENS) {
            const char *colon = memchr(v, ':', len);
            char *tok =
                colon != NULL ? cgw__strndup(colon + 1, len - (size_t)(colon - v) - 1) : NULL;
            int rc = tok != NULL ? add_token(c, v, (size_t)(colon - v), tok) : -1;
            cgw_free(tok);
            if (rc != 0) {
                return -1;
            }
        } else if (len > 0) {
            if (*n == SERVE_MAX_LIST) {
                return -1;
            }
            items[(*n)++] = cgw__strndup(v, len);
        }
        v += len + (end != NULL);
    }
    return 0;
}

int serve_config_set(serve_config_t *c, const char *name, const char *value, char *why, size_t cap)
{
    const key_t_ *k = find_key(name);
    if (k == NULL) {
        snprintf(why, cap, "unknown setting '%s'", name);
        return -1;
    }
    void *field = (char *)c + k->off;
    char *end = NULL;
    switch (k->kind) {
    case K_STR:
        cgw_free(*(char **)field);
        *(char **)field = cgw__strdup(value);
        return 0;
    case K_U64: {
        unsigned long long n = strtoull(value, &end, 10);
        if (!isdigit((unsigned char)*value) || *end != '\0') {
            snprintf(why, cap, "setting '%s' wants a non-negative integer", name);
            return -1;
        }
        *(uint64_t *)field = n;
        return 0;
    }
    case K_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
            *(bool *)field = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
            *(bool *)field = false;
        } else {
            snprintf(why, cap, "setting '%s' wants true or false", name);
            return -1;
        }
        return 0;
    default:
        if (set_list(c, k, value) != 0) {
            snprintf(why, cap, "setting '%s': too many entries, or a token without 'tenant:'",
                     name);
            return -1;
        }
        return 0;
    }
}

/* One file value: strings/numbers/bools as their text; arrays joined with commas. */
static int file_value(serve_config_t *c, const key_t_ *k, const json_t *v, char *why, size_t cap)
{
    char num[32];
    if (k->kind == K_TOKENS || k->kind == K_LIST) {
        if (!json_is_array(v)) {
            snprintf(why, cap, "'%s' must be an array", k->name);
            return -1;
        }
        cgw_buf_t b = CGW_BUF_INIT;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            const char *t =
                k->kind == K_TOKENS ? cgw_json_str(e, "tenant", NULL) : json_string_value(e);
            const char *tok = cgw_json_str(e, "token", NULL);
            if (t == NULL || (k->kind == K_TOKENS && tok == NULL) || strchr(t, ',') != NULL ||
                strchr(t, ':') != NULL) {
                cgw_buf_free(&b);
                snprintf(why, cap, "'%s' entry %zu is malformed", k->name, i + 1);
                return -1;
            }
            cgw_buf_appendf(&b, "%s%s%s%s", i > 0 ? "," : "", t, k->kind == K_TOKENS ? ":" : "",
                            k->kind == K_TOKENS ? tok : "");
        }
        int rc = serve_config_set(c, k->name, b.data != NULL ? b.data : "", why, cap);
        cgw_buf_free(&b);
        return rc;
    }
    if (json_is_string(v)) {
        return serve_config_set(c, k->name, json_string_value(v), why, cap);
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return serve_config_set(c, k->name, num, why, cap);
    }
    if (json_is_boolean(v)) {
        return serve_config_set(c, k->name, json_is_true(v) ? "true" : "false", why, cap);
    }
    snprintf(why, cap, "'%s' has the wrong type", k->name);
    return -1;
}

int serve_config_file(serve_config_t *c, const char *path, char *why, size_t cap)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(why, cap, "%s: %s (line %d, column %d)", path, je.text, je.line, je.column);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(why, cap, "%s: the top level must be an object", path);
        rc = -1;
    }
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v)
    {
        const key_t_ *k = find_key(name);
        if (rc == 0 && k == NULL) {
            snprintf(why, cap, "%s: unknown setting '%s'", path, name);
            rc = -1;
        } else if (rc == 0) {
            rc = file_value(c, k, v, why, cap);
        }
    }
    json_decref(root);
    return rc;
}

int serve_config_env(serve_config_t *c, char *why, size_t cap)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char env[64] = "CGW_";
        for (size_t j = 0; keys[i].name[j] != '\0' && j + 5 < sizeof(env); j++) {
            env[4 + j] = (char)toupper((unsigned char)keys[i].name[j]);
        }
        const char *v = getenv(env);
        if (v == NULL && keys[i].env != NULL) {
            v = getenv(keys[i].env);
        }
        if (v != NULL && serve_config_set(c, keys[i].name, v, why, cap) != 0) {
            size_t n = strlen(why);
            snprintf(why + n, cap - n, " (from the environment)");
            return -1;
        }
    }
    return 0;
}
