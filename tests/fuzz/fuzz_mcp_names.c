/* Fuzz target: MCP tool names. The first byte picks the naming and the length limit; the rest
 * is split at newlines into server/tool pairs. Every added name must match
 * ^[A-Za-z0-9_-]{1,max}$, be unique, and be found both ways. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgw/mcp_tools.h"

static char *next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl != NULL ? nl : end;
    size_t len = (size_t)(stop - *p);
    char *s = malloc(len + 1);
    if (s != NULL) {
        memcpy(s, *p, len);
        s[len] = '\0';
    }
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const char *builtins[] = {"echo", "mcp__s__t", "read_file"};
    cgw_mcp_toolmap_options_t o;
    cgw_mcp_toolmap_options_init(&o);
    o.naming = (data[0] & 1) ? CGW_MCP_NAMING_PREFIXED : CGW_MCP_NAMING_PLAIN;
    o.max_name_len = CGW_MCP_TOOL_NAME_MAX_MIN +
                     (data[0] >> 1) % (CGW_MCP_TOOL_NAME_MAX_LIMIT - CGW_MCP_TOOL_NAME_MAX_MIN + 1);
    o.builtin_names = builtins;
    o.n_builtin_names = 3;
    cgw_mcp_toolmap_t *m = NULL;
    if (cgw_mcp_toolmap_new(&o, &m) != CGW_OK) {
        return 0;
    }
    const uint8_t *p = data + 1, *end = data + size;
    while (p < end) {
        char *server = next_line(&p, end);
        char *tool = next_line(&p, end);
        if (server != NULL && tool != NULL) {
            cgw_mcp_tool_status_t st;
            const cgw_mcp_tool_ref_t *r = NULL;
            if (cgw_mcp_toolmap_add(m, server, tool, &st, &r) == CGW_OK &&
                st == CGW_MCP_TOOL_ADDED &&
                (!cgw_mcp_tool_name_valid(r->exposed, o.max_name_len) ||
                 cgw_mcp_toolmap_find(m, r->exposed) != r ||
                 cgw_mcp_toolmap_lookup(m, server, tool) != r)) {
                abort();
            }
        }
        free(server);
        free(tool);
    }
    for (size_t i = 0; i < cgw_mcp_toolmap_count(m); i++) {
        const cgw_mcp_tool_ref_t *r = cgw_mcp_toolmap_at(m, i);
        if (cgw_mcp_toolmap_find(m, r->exposed) != r) {
            abort(); /* a later add took over an earlier name */
        }
        for (size_t j = 0; j < 3; j++) {
            if (strcmp(r->exposed, builtins[j]) == 0) {
                abort();
            }
        }
    }
    cgw_mcp_toolmap_free(m);
    return 0;
}
