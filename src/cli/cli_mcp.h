/* The MCP configuration that the command-line flags of run/tools (and serve's config keys)
 * select: one place for how --mcp-config, --strict-mcp-config and --allowed-servers map onto
 * cgw_mcp_config_options_t. */
#ifndef CGW_CLI_MCP_H
#define CGW_CLI_MCP_H

#include <stdbool.h>

#include "cgw.h"

typedef struct cgw__cli_mcp_sel {
    const char *mcp_config;     /* --mcp-config FILE, or NULL */
    bool strict;                /* --strict-mcp-config: read only that file */
    const char *claude_json;    /* NULL: ~/.claude.json */
    const char *project;        /* NULL: the current directory */
    const char *const *allowed; /* --allowed-servers (borrowed) */
    size_t n_allowed;
    bool has_allowed; /* false: every server */
} cgw__cli_mcp_sel_t;

/* Loads the selected configuration into *cfg (free with cgw_mcp_config_free). Returns what
 * cgw_mcp_config_load returns, with err filled on failure. */
int cgw__cli_mcp_config_load(const cgw__cli_mcp_sel_t *sel, cgw_mcp_config_t **cfg,
                             cgw_error_t *err);

/* Splits the comma-separated --allowed-servers value into up to `max` names: *copy (freed
 * first, then replaced; free it with cgw_free) holds the names, out[0..*n) point into it.
 * Empty names are skipped. Returns CGW_OK, CGW_ENOMEM or CGW_E2BIG (more than max names). */
int cgw__cli_split_list(const char *list, char **copy, const char **out, size_t max, size_t *n);

#endif
