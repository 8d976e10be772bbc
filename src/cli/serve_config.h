/* Settings of `claude-gateway serve`: one table of keys, each read from the JSON config file,
 * then from the environment (CGW_<KEY in upper case>, and ANTHROPIC_API_KEY /
 * ANTHROPIC_AUTH_TOKEN / ANTHROPIC_BASE_URL for the credential), then from flags: flag > env >
 * file (ARCHITECTURE.md §4.3). docs/server.md lists every key. */
#ifndef CGW_CLI_SERVE_CONFIG_H
#define CGW_CLI_SERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cgw.h"

#define SERVE_MAX_TOKENS 64
#define SERVE_MAX_LIST 64

typedef struct serve_config {
    /* strings are owned (cgw_free) */
    char *listen, *data_dir, *store, *log_level, *log_format;
    char *api_key, *auth_token, *auth_mode, *base_url, *model, *system_prompt;
    char *mcp_config, *claude_json, *project;
    bool strict_mcp_config;
    uint64_t max_tokens, max_turns, tool_timeout_ms, approval_timeout_ms;
    uint64_t max_body_bytes, max_header_bytes, max_sessions_per_tenant, max_concurrent_runs;
    uint64_t max_loaded_sessions;
    uint64_t max_streams_per_client, stream_buffer_bytes, ping_interval_ms, shutdown_grace_ms;
    uint64_t stub_delay_ms, stream_stall_ms;
    bool cancel_on_disconnect;
    /* tokens: "tenant:token" pairs */
    char *token_tenant[SERVE_MAX_TOKENS];
    char *token_value[SERVE_MAX_TOKENS];
    size_t n_tokens;
    char *approval_tools[SERVE_MAX_LIST];
    size_t n_approval_tools;
    char *allowed_servers[SERVE_MAX_LIST];
    size_t n_allowed_servers;
    bool has_allowed_servers;
} serve_config_t;

/* Fills the defaults (listen 127.0.0.1:8080, data_dir "data", store "sqlite"). */
void serve_config_init(serve_config_t *c);
void serve_config_free(serve_config_t *c);

/* Reads `path` (a JSON object of the keys). Returns 0, or -1 with a sentence in `why`. */
int serve_config_file(serve_config_t *c, const char *path, char *why, size_t cap);
/* Applies the environment. Returns 0, or -1 with a sentence in `why`. */
int serve_config_env(serve_config_t *c, char *why, size_t cap);
/* Sets one key from a string (flags and env use this). Returns 0, or -1 with `why`. */
int serve_config_set(serve_config_t *c, const char *key, const char *value, char *why, size_t cap);

#endif
