/*
 * MCP server configuration, read the way Claude Code writes it.
 *
 * Scopes, lowest precedence first (a later scope replaces an earlier entry of the same
 * name; see "Order" below):
 *
 *   user      top-level "mcpServers" of ~/.claude.json
 *   project   "mcpServers" of <project_dir>/.mcp.json
 *   local     "projects" -> "<project_dir>" -> "mcpServers" of ~/.claude.json
 *   explicit  "mcpServers" of a file the caller names (the CLI's --mcp-config FILE)
 *   inline    documents added with cgw_mcp_config_add_json (tests, embedders)
 *
 * This is Claude Code's precedence (local beats project beats user, see
 * ../shared/docs/mcp-client.md §2.1). The original Python package read only the user scope.
 *
 * Order: the list keeps the position where a name first appeared (user file order, then new
 * names from .mcp.json, then new names from the local scope, ...). An override replaces the
 * entry's contents in place, so it never changes which server wins a tool-name collision
 * (the first server in this order wins, see mcp_tools.h).
 *
 * Missing files: an absent ~/.claude.json, project entry or .mcp.json is not an error (the
 * scope simply contributes nothing); an absent explicit file is CGW_ENOENT. A file that
 * exists but is not valid JSON fails the whole load with CGW_EJSON (line/column set); a file
 * whose top level or "mcpServers" is not an object fails with CGW_ECONFIG. Unknown keys are
 * ignored everywhere (~/.claude.json is also Claude Code's state file).
 *
 * Per-server problems never fail the load: the server stays in the list with `error_code`
 * and `error` set, so it can be reported, and the other servers are unaffected. They are:
 * wrong field types (CGW_ECONFIG), a missing command (CGW_ECONFIG), an unset ${VAR} without
 * default (CGW_ECONFIG), and a transport that is not implemented yet — "http", "sse", an
 * entry with "url" and no "command", or an unknown type (CGW_ENOTSUP).
 *
 * Expansion: `${VAR}` and `${VAR:-default}` are expanded in command, args, env values, url
 * and header values. A variable that is set, even to "", uses its value; `default` is used
 * only when VAR is unset. VAR must match [A-Za-z_][A-Za-z0-9_]*. Bare `$VAR`, a lone `$`
 * and an unterminated `${` are left as written. There is no escape and no nesting.
 * The other fields (name, cwd, type, header names, env keys) are not expanded.
 *
 * Everything here is pure and synchronous (file reads only); no loop is involved. A
 * cgw_mcp_config_t is not thread-safe; read-only use from several threads is fine.
 */
#ifndef CGW_MCP_CONFIG_H
#define CGW_MCP_CONFIG_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where an entry came from. Values are bits so that they can be combined in
 *  cgw_mcp_config_options_t.scopes and cgw_mcp_server_config_t.shadowed. */
typedef enum cgw_mcp_scope {
    CGW_MCP_SCOPE_USER = 1u << 0,
    CGW_MCP_SCOPE_PROJECT = 1u << 1,
    CGW_MCP_SCOPE_LOCAL = 1u << 2,
    CGW_MCP_SCOPE_EXPLICIT = 1u << 3,
    CGW_MCP_SCOPE_INLINE = 1u << 4
} cgw_mcp_scope_t;

/** The scopes cgw_mcp_config_options_init selects: user, project and local. */
#define CGW_MCP_SCOPES_DEFAULT (CGW_MCP_SCOPE_USER | CGW_MCP_SCOPE_PROJECT | CGW_MCP_SCOPE_LOCAL)

typedef enum cgw_mcp_transport {
    CGW_MCP_TRANSPORT_STDIO = 0, /**< "stdio", or no type with a command */
    CGW_MCP_TRANSPORT_HTTP,      /**< "http" / "streamable-http", or no type with a url */
    CGW_MCP_TRANSPORT_SSE,       /**< "sse" (legacy HTTP+SSE) */
    CGW_MCP_TRANSPORT_UNKNOWN    /**< any other type; see `type` for what was written */
} cgw_mcp_transport_t;

/** Defaults (the original's): 15 s to start and list tools, 30 s per tool call. */
#define CGW_MCP_STARTUP_TIMEOUT_MS_DEFAULT 15000u
#define CGW_MCP_TOOL_TIMEOUT_MS_DEFAULT 30000u

/** A name/value pair (HTTP header). Both strings are owned by the config. */
typedef struct cgw_mcp_header {
    const char *name;
    const char *value; /**< expanded */
} cgw_mcp_header_t;

/** One server, read-only, owned by its cgw_mcp_config_t (valid until the config is freed;
 *  cgw_mcp_config_add_json may replace an entry, so do not keep pointers across it).
 *  String arrays are also NULL-terminated, so they can go straight to posix_spawn. */
typedef struct cgw_mcp_server_config {
    const char *name; /**< the key in "mcpServers", never NULL */
    cgw_mcp_transport_t transport;
    const char *type; /**< "type" as written, NULL when absent */
    /* stdio (NULL / 0 for other transports) */
    const char *command;     /**< expanded; NULL when missing (then error is set) */
    const char *const *args; /**< expanded, n_args entries + NULL, never NULL */
    size_t n_args;
    const char *const *argv; /**< command followed by args + NULL; NULL if no command */
    const char *const *env;  /**< "KEY=VALUE" (value expanded) to overlay on the
                                  parent environment, file order, n_env + NULL */
    size_t n_env;
    const char *cwd; /**< working directory as written, NULL = inherit */
    /* http / sse (parsed and expanded even though not supported yet) */
    const char *url;                 /**< NULL when absent */
    const cgw_mcp_header_t *headers; /**< n_headers entries, never NULL */
    size_t n_headers;
    /* timeouts after options and overrides */
    uint32_t startup_timeout_ms; /**< initialize + each tools/list page */
    uint32_t tool_timeout_ms;    /**< per tools/call: timeout_overrides or the default */
    /* provenance */
    cgw_mcp_scope_t scope; /**< scope of the entry that won */
    unsigned shadowed;     /**< scopes whose entry of this name was overridden */
    const char *source;    /**< file it came from, or the add_json origin */
    /* problems */
    int error_code;    /**< CGW_OK, CGW_ECONFIG or CGW_ENOTSUP */
    const char *error; /**< NULL, or one sentence naming the server and field */
} cgw_mcp_server_config_t;

/** Environment lookup used for ${VAR} expansion and for $HOME. Returns the value (borrowed,
 *  must stay valid until the call that asked returns) or NULL when `name` is unset. */
typedef const char *(*cgw_mcp_getenv_fn)(const char *name, void *user);

/** A per-server tool-call timeout (the original's timeout_overrides, in ms). */
typedef struct cgw_mcp_timeout_override {
    const char *server;
    uint32_t tool_timeout_ms;
} cgw_mcp_timeout_override_t;

typedef struct cgw_mcp_config_options {
    /** CGW_MCP_SCOPE_* bits to read. Default CGW_MCP_SCOPES_DEFAULT. INLINE needs no bit. */
    unsigned scopes;
    /** Claude Code's state file. NULL = "$HOME/.claude.json" (HOME through getenv_fn); if
     *  HOME is unset the user and local scopes are skipped. */
    const char *claude_json_path;
    /** The project: its absolute path is the key under "projects" and .mcp.json lives in it.
     *  NULL = the current working directory. The key is looked up as given, then by its
     *  realpath(3). */
    const char *project_dir;
    /** NULL = "<project_dir>/.mcp.json". */
    const char *mcp_json_path;
    /** The file for CGW_MCP_SCOPE_EXPLICIT (required when that bit is set, else ignored). */
    const char *explicit_path;
    /** The original's allowed_servers: NULL = every server; otherwise only these
     *  `n_allowed_servers` names are kept (others are left out of the list entirely). */
    const char *const *allowed_servers;
    size_t n_allowed_servers;
    /** Per-server tool timeouts; a server not listed gets tool_timeout_ms. */
    const cgw_mcp_timeout_override_t *timeout_overrides;
    size_t n_timeout_overrides;
    /** Defaults CGW_MCP_STARTUP_TIMEOUT_MS_DEFAULT and CGW_MCP_TOOL_TIMEOUT_MS_DEFAULT. */
    uint32_t startup_timeout_ms;
    uint32_t tool_timeout_ms;
    /** Claude Code parity: also read MCP_TIMEOUT (start-up) and MCP_TOOL_TIMEOUT (tool
     *  calls), in milliseconds, through getenv_fn. When set they replace startup_timeout_ms
     *  and tool_timeout_ms; timeout_overrides still win. A value that is not a positive
     *  integer fails with CGW_ECONFIG. Default false. */
    bool claude_env_timeouts;
    /** Variable lookup; NULL = getenv(3) (the process environment). */
    cgw_mcp_getenv_fn getenv_fn;
    void *getenv_user;
} cgw_mcp_config_options_t;

typedef struct cgw_mcp_config cgw_mcp_config_t;

/** Fills `opts` with the defaults above. */
CGW_EXTERN void cgw_mcp_config_options_init(cgw_mcp_config_options_t *opts);

/** Reads every scope selected in opts->scopes (NULL opts = defaults) and merges them.
 *  `opts` and everything it points to is copied, except getenv_user, which must outlive the
 *  config if cgw_mcp_config_add_json is called later. On success *out owns a new config
 *  (free with cgw_mcp_config_free). Returns CGW_OK, CGW_EJSON (a file is not valid JSON;
 *  err has line/column and the path in the message), CGW_ECONFIG (a file's top level,
 *  "mcpServers" or "projects" entry is not an object; a bad MCP_TIMEOUT / MCP_TOOL_TIMEOUT
 *  with claude_env_timeouts), CGW_ENOENT (explicit file missing),
 *  another -errno when a file exists but cannot be read (e.g. CGW_EACCES) or the working
 *  directory cannot be determined, CGW_EINVAL (bad options, or a path that is a directory
 *  or a file over 64 MiB) or CGW_ENOMEM. On failure *out is untouched. `err` may be NULL. */
CGW_EXTERN int cgw_mcp_config_load(const cgw_mcp_config_options_t *opts, cgw_mcp_config_t **out,
                                   cgw_error_t *err);

/** An empty config with these options (for cgw_mcp_config_add_json). Same copying rules as
 *  cgw_mcp_config_load; no file is read. Returns CGW_OK, CGW_EINVAL, CGW_ENOMEM, CGW_ECONFIG
 *  (claude_env_timeouts and a bad MCP_TIMEOUT / MCP_TOOL_TIMEOUT), or -errno when
 *  project_dir is NULL and the working directory cannot be determined. */
CGW_EXTERN int cgw_mcp_config_new(const cgw_mcp_config_options_t *opts, cgw_mcp_config_t **out);

/** Merges a JSON document of the form {"mcpServers": {...}} (borrowed, `len` bytes) with
 *  scope `scope` (normally CGW_MCP_SCOPE_INLINE) above everything already in `cfg`, applying
 *  the allow-list, timeouts and expansion. `origin` (may be NULL) is copied into `source`.
 *  Returns CGW_OK, CGW_EJSON, CGW_ECONFIG (the document or its "mcpServers" is not an
 *  object), CGW_EINVAL (NULL cfg or json) or CGW_ENOMEM; on error `cfg` is unchanged. */
CGW_EXTERN int cgw_mcp_config_add_json(cgw_mcp_config_t *cfg, cgw_mcp_scope_t scope,
                                       const char *json, size_t len, const char *origin,
                                       cgw_error_t *err);

/** Frees the config and every entry (NULL is fine). */
CGW_EXTERN void cgw_mcp_config_free(cgw_mcp_config_t *cfg);

/** Number of servers, including those with an error. */
CGW_EXTERN size_t cgw_mcp_config_count(const cgw_mcp_config_t *cfg);

/** The i-th server in list order (borrowed), or NULL when i >= count. */
CGW_EXTERN const cgw_mcp_server_config_t *cgw_mcp_config_at(const cgw_mcp_config_t *cfg, size_t i);

/** The server called `name` (borrowed), or NULL. */
CGW_EXTERN const cgw_mcp_server_config_t *cgw_mcp_config_find(const cgw_mcp_config_t *cfg,
                                                              const char *name);

/** "user", "project", "local", "explicit", "inline", or "?" (static storage). */
CGW_EXTERN const char *cgw_mcp_scope_name(cgw_mcp_scope_t scope);

/** "stdio", "http", "sse", "unknown" (static storage). */
CGW_EXTERN const char *cgw_mcp_transport_name(cgw_mcp_transport_t transport);

/** Expands ${VAR} and ${VAR:-default} in `in` with the rules above, using `getenv_fn` (NULL =
 *  getenv(3)). On success *out is a new string (free with cgw_free). Returns CGW_OK,
 *  CGW_ECONFIG (unset variable without default, or a bad variable name; err->message names
 *  the variable and err->column is the 1-based offset of its "${") or CGW_ENOMEM. */
CGW_EXTERN int cgw_mcp_expand_vars(const char *in, cgw_mcp_getenv_fn getenv_fn, void *user,
                                   char **out, cgw_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
