/* Fuzz target: MCP configuration documents and ${VAR} expansion. The input is merged as an
 * inline {"mcpServers": ...} document and also expanded as one string. Checks the entry
 * invariants the manager relies on: arrays are NULL-terminated and match their counts, an
 * error is set exactly when error_code is, and a usable stdio entry has a command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgw/mcp_config.h"

/* Variables whose name starts with 'A' are set (to their own name, or "" for "AE"). */
static const char *fuzz_getenv(const char *name, void *user)
{
    (void)user;
    if (strcmp(name, "AE") == 0) {
        return "";
    }
    return name[0] == 'A' ? name : NULL;
}

static void check_strings(const char *const *arr, size_t n)
{
    if (arr == NULL) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if (arr[i] == NULL) {
            abort();
        }
    }
    if (arr[n] != NULL) {
        abort();
    }
}

static void check_entry(const cgw_mcp_server_config_t *s)
{
    if (s->name == NULL || (s->error_code == CGW_OK) != (s->error == NULL)) {
        abort();
    }
    if (s->error_code != CGW_OK && s->error_code != CGW_ECONFIG && s->error_code != CGW_ENOTSUP) {
        abort();
    }
    check_strings(s->args, s->n_args);
    check_strings(s->env, s->n_env);
    if (s->headers == NULL) {
        abort();
    }
    for (size_t i = 0; i < s->n_headers; i++) {
        if (s->headers[i].name == NULL || s->headers[i].value == NULL ||
            strpbrk(s->headers[i].value, "\r\n") != NULL) {
            abort();
        }
    }
    if (s->transport == CGW_MCP_TRANSPORT_STDIO && s->error_code == CGW_OK &&
        (s->command == NULL || s->command[0] == '\0' || s->argv == NULL ||
         s->argv[0] != s->command)) {
        abort();
    }
    if (s->transport != CGW_MCP_TRANSPORT_STDIO && s->error_code == CGW_OK) {
        abort(); /* remote transports are never usable yet */
    }
    for (size_t i = 0; i < s->n_env; i++) {
        const char *eq = strchr(s->env[i], '=');
        if (eq == NULL || eq == s->env[i]) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cgw_mcp_config_options_t o;
    cgw_mcp_config_options_init(&o);
    o.getenv_fn = fuzz_getenv;
    cgw_mcp_config_t *c = NULL;
    if (cgw_mcp_config_new(&o, &c) != CGW_OK) {
        return 0;
    }
    cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, (const char *)data, size, "fuzz", NULL);
    /* merging the same document again replaces every entry in place */
    size_t n = cgw_mcp_config_count(c);
    cgw_mcp_config_add_json(c, CGW_MCP_SCOPE_INLINE, (const char *)data, size, "fuzz", NULL);
    if (cgw_mcp_config_count(c) != n) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        check_entry(cgw_mcp_config_at(c, i));
        if (cgw_mcp_config_find(c, cgw_mcp_config_at(c, i)->name) != cgw_mcp_config_at(c, i)) {
            abort();
        }
    }
    cgw_mcp_config_free(c);

    char *s = malloc(size + 1);
    if (s != NULL) {
        memcpy(s, data, size);
        s[size] = '\0';
        char *out = NULL;
        if (cgw_mcp_expand_vars(s, fuzz_getenv, NULL, &out, NULL) == CGW_OK) {
            cgw_free(out);
        } else if (out != NULL) {
            abort();
        }
        free(s);
    }
    return 0;
}
