/* Internal view of the Anthropic client, shared by the files of src/llm/. */
#ifndef CGW_LLM_INT_H
#define CGW_LLM_INT_H

#include "cgw/anthropic.h"
#include "core/buf.h"

#define CGW_ANTHROPIC_DEFAULT_URL "https://api.anthropic.com"
#define CGW_ANTHROPIC_VERSION "2023-06-01"
#define CGW_OAUTH_BETA "oauth-2025-04-20"
#define CGW_DEFAULT_MODEL "claude-sonnet-4-6"
#define CGW_DEFAULT_MAX_TOKENS 16000
#define CGW_RETRY_AFTER_MAX_MS 60000

struct cgw_anthropic {
    cgw_ctx_t *ctx;
    char *url; /* <base>/v1/messages */
    cgw_auth_mode_t auth_mode;
    char *auth_line; /* "x-api-key: ..." or "Authorization: Bearer ..." */
    char *model;
    int max_tokens;
    cgw_thinking_t thinking;
    int thinking_budget;
    char *beta;     /* merged anthropic-beta value, NULL if none */
    char **headers; /* extra "Name: value" lines */
    size_t nheaders;
    struct json_t *extra_body; /* object or NULL */
    int max_retries;
    int stall_timeout_ms;
    int turn_timeout_ms;
    int connect_timeout_ms;
};

/* Appends "[m1,m2,...]" from the conversation's stored bytes. */
int cgw__conversation_splice(const cgw_conversation_t *conv, cgw_buf_t *b);

/* Merges comma-separated beta lists into `out` ("a,b"), dropping empty and duplicate whole
 * tokens (trimmed; exact, case-sensitive comparison as the SDK does). */
int cgw__beta_merge(cgw_buf_t *out, const char *list);

/* Whether an HTTP status is retried, given the x-should-retry header (-1 absent, 0 false,
 * 1 true), which wins when present. */
bool cgw__retry_status(long status, int should_retry);

/* Whether an API error type seen in an `error` event of a 200 stream is worth retrying. */
bool cgw__retry_event_type(const char *type);

#endif
