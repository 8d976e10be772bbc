#include <string.h>

#include "cli/cli_mcp.h"
#include "core/alloc.h"

int cgw__cli_mcp_config_load(const cgw__cli_mcp_sel_t *sel, cgw_mcp_config_t **cfg,
                             cgw_error_t *err)
{
    cgw_mcp_config_options_t o;
    cgw_mcp_config_options_init(&o);
    o.claude_json_path = sel->claude_json;
    o.project_dir = sel->project;
    if (sel->mcp_config != NULL) {
        o.explicit_path = sel->mcp_config;
        o.scopes = sel->strict ? CGW_MCP_SCOPE_EXPLICIT : o.scopes | CGW_MCP_SCOPE_EXPLICIT;
    }
    if (sel->has_allowed) {
        o.allowed_servers = sel->allowed;
        o.n_allowed_servers = sel->n_allowed;
    }
    return cgw_mcp_config_load(&o, cfg, err);
}

int cgw__cli_split_list(const char *list, char **copy, const char **out, size_t max, size_t *n)
{
    cgw_free(*copy);
    *n = 0;
    if ((*copy = cgw__strdup(list)) == NULL) {
        return CGW_ENOMEM;
    }
    char *save = NULL;
    for (char *t = strtok_r(*copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (*n == max) {
            return CGW_E2BIG;
        }
        out[(*n)++] = t;
    }
    return CGW_OK;
}
