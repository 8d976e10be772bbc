/* Internal: one parsed MCP server entry, shared by mcp_config.c (files, scopes, merging) and
 * mcp_config_entry.c (the fields of one entry). */
#ifndef CGW_MCP_CONFIG_INT_H
#define CGW_MCP_CONFIG_INT_H

#include <jansson.h>

#include "cgw/mcp_config.h"

/* The public view plus the storage behind it. Every string in `pub` is owned by the entry. */
typedef struct cgw__mcp_entry {
    cgw_mcp_server_config_t pub;
    char **argv;               /* [command-or-NULL, args..., NULL]; pub.args = argv + 1 */
    char **env;                /* n_env + NULL */
    cgw_mcp_header_t *headers; /* n_headers, strings owned */
} cgw__mcp_entry_t;

/* What an entry needs from its config while being parsed. */
typedef struct cgw__mcp_parse_ctx {
    cgw_mcp_getenv_fn getenv_fn; /* never NULL */
    void *getenv_user;
    cgw_mcp_scope_t scope;
    const char *source; /* copied into the entry; may be NULL */
    uint32_t startup_timeout_ms;
    uint32_t tool_timeout_ms; /* already resolved for this server */
} cgw__mcp_parse_ctx_t;

/* Parses the value of mcpServers[name]. Problems with the entry are recorded in its
 * pub.error_code / pub.error; only CGW_ENOMEM is returned as a failure (then *out is NULL). */
int cgw__mcp_entry_parse(const char *name, const json_t *value, const cgw__mcp_parse_ctx_t *pc,
                         cgw__mcp_entry_t **out);

void cgw__mcp_entry_free(cgw__mcp_entry_t *e);

/* The default getenv_fn (getenv(3)). */
const char *cgw__mcp_process_getenv(const char *name, void *user);

#endif
