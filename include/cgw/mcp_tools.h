/*
 * MCP tool names: which server owns which tool, and the name the model sees.
 *
 * A cgw_mcp_toolmap_t is built by adding every (server, tool) pair in config order (servers
 * in cgw_mcp_config order, each server's tools in tools/list order). Rebuild it from scratch
 * whenever a server's tool list changes, so the first-wins rule stays the same.
 *
 * Rules, checked in this order for each pair added:
 *   0. An empty tool or server name is skipped (CGW_MCP_TOOL_SKIPPED_INVALID).
 *   1. Builtin (local) tools win: in plain naming a tool whose name equals a builtin name
 *      is skipped (CGW_MCP_TOOL_SKIPPED_BUILTIN); in prefixed naming the same holds for the
 *      unsanitized "mcp__<server>__<tool>".
 *   2. Plain naming (the original's): a tool name already added by an earlier server is
 *      skipped (CGW_MCP_TOOL_SKIPPED_DUPLICATE): the first server in config order wins. In
 *      prefixed naming only the same (server, tool) pair twice is a duplicate.
 *
 * Exposed names always match ^[A-Za-z0-9_-]{1,max_name_len}$ (default 64, the limit some
 * API paths still apply) and are unique within the map:
 *   - plain:    the tool name itself when it already matches; otherwise sanitized.
 *   - prefixed: "mcp__" + sanitize(server) + "__" + sanitize(tool) (Claude Code's form).
 *   sanitize() replaces every byte outside [A-Za-z0-9_-] with '_'.
 *   If that is longer than max_name_len, it is shortened deterministically: the tool part
 *   keeps as much as fits after min(16, server length) characters of the server part (at
 *   most half of what is left after "mcp__", "__" and the suffix), the server part takes
 *   any room the tool part leaves,
 *   and "_" + 8 lowercase hex digits of a 64-bit FNV-1a hash of server "\0" tool are
 *   appended, so the result has exactly max_name_len characters. In plain naming the server
 *   part is absent and the hash input is the tool name alone.
 *   If the resulting name is already taken (two names that sanitize alike, a hash clash, a
 *   builtin name reached by sanitizing), the later pair gets the shortened-and-hashed form
 *   (even when short enough) with "\0" n appended to the hash input, for n = 1, 2, ...
 *   until the name is free. A name therefore depends only on the pairs added before it.
 * Never parse an exposed name (a "__" inside a server name makes the split ambiguous): look
 * it up with cgw_mcp_toolmap_find.
 *
 * Pure data structure: no loop, no I/O, not thread-safe.
 */
#ifndef CGW_MCP_TOOLS_H
#define CGW_MCP_TOOLS_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cgw_mcp_naming {
    CGW_MCP_NAMING_PLAIN = 0, /**< tools keep their server's names (the original) */
    CGW_MCP_NAMING_PREFIXED   /**< mcp__<server>__<tool> (Claude Code) */
} cgw_mcp_naming_t;

/** The API's limits on a tool name, and the default used here. */
#define CGW_MCP_TOOL_NAME_MAX_DEFAULT 64u
#define CGW_MCP_TOOL_NAME_MAX_LIMIT 128u
#define CGW_MCP_TOOL_NAME_MAX_MIN 32u

typedef enum cgw_mcp_tool_status {
    CGW_MCP_TOOL_ADDED = 0,
    CGW_MCP_TOOL_SKIPPED_BUILTIN,
    CGW_MCP_TOOL_SKIPPED_DUPLICATE,
    CGW_MCP_TOOL_SKIPPED_INVALID
} cgw_mcp_tool_status_t;

/** One advertised tool. All strings are owned by the map and valid until it is freed. */
typedef struct cgw_mcp_tool_ref {
    const char *exposed; /**< the name the model sees */
    const char *server;  /**< the server name from the config */
    const char *tool;    /**< the name the server uses (send this in tools/call) */
    bool renamed;        /**< exposed differs from the plain tool name */
} cgw_mcp_tool_ref_t;

typedef struct cgw_mcp_toolmap_options {
    cgw_mcp_naming_t naming;          /**< default CGW_MCP_NAMING_PLAIN */
    const char *const *builtin_names; /**< names that win over MCP tools (copied) */
    size_t n_builtin_names;
    size_t max_name_len; /**< CGW_MCP_TOOL_NAME_MAX_MIN..._LIMIT, default 64 */
} cgw_mcp_toolmap_options_t;

typedef struct cgw_mcp_toolmap cgw_mcp_toolmap_t;

/** Fills `opts` with the defaults. */
CGW_EXTERN void cgw_mcp_toolmap_options_init(cgw_mcp_toolmap_options_t *opts);

/** A new, empty map (NULL opts = defaults; opts is copied). Returns CGW_OK, CGW_EINVAL
 *  (max_name_len out of range, unknown naming) or CGW_ENOMEM. */
CGW_EXTERN int cgw_mcp_toolmap_new(const cgw_mcp_toolmap_options_t *opts, cgw_mcp_toolmap_t **out);

/** Frees the map (NULL is fine). */
CGW_EXTERN void cgw_mcp_toolmap_free(cgw_mcp_toolmap_t *map);

/** Adds server's tool under the rules above; both strings are copied. *status (may be NULL)
 *  says whether it was added; *ref (may be NULL) is the new entry when added, the entry that
 *  won when a DUPLICATE was skipped, else NULL. Returns CGW_OK (also when skipped),
 *  CGW_EINVAL (NULL map/server/tool) or CGW_ENOMEM (map unchanged). */
CGW_EXTERN int cgw_mcp_toolmap_add(cgw_mcp_toolmap_t *map, const char *server, const char *tool,
                                   cgw_mcp_tool_status_t *status, const cgw_mcp_tool_ref_t **ref);

/** Number of tools added. */
CGW_EXTERN size_t cgw_mcp_toolmap_count(const cgw_mcp_toolmap_t *map);

/** The i-th tool added (borrowed), or NULL when i >= count. */
CGW_EXTERN const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_at(const cgw_mcp_toolmap_t *map, size_t i);

/** The tool the model calls `exposed` (borrowed), or NULL. O(1). */
CGW_EXTERN const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_find(const cgw_mcp_toolmap_t *map,
                                                          const char *exposed);

/** The entry for (server, tool) (borrowed), or NULL when not advertised. O(1). */
CGW_EXTERN const cgw_mcp_tool_ref_t *cgw_mcp_toolmap_lookup(const cgw_mcp_toolmap_t *map,
                                                            const char *server, const char *tool);

/** True when `name` matches ^[A-Za-z0-9_-]{1,max_len}$. */
CGW_EXTERN bool cgw_mcp_tool_name_valid(const char *name, size_t max_len);

/** "added", "builtin", "duplicate", "invalid" (static storage). */
CGW_EXTERN const char *cgw_mcp_tool_status_name(cgw_mcp_tool_status_t status);

#ifdef __cplusplus
}
#endif
#endif
