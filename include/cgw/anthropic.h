/*
 * The Anthropic Messages API client: builds requests, streams the answer on the context's
 * loop, retries the way the official SDKs do, and reports one result per call.
 *
 * Three objects:
 *   - cgw_conversation_t: the messages of a conversation, each serialized to compact JSON once,
 *     when appended. Request bodies are assembled by splicing those bytes, so a turn costs
 *     O(new content), not O(history) (see docs/anthropic-client.md).
 *   - cgw_anthropic_t: a configured client (endpoint, credential, model defaults, betas,
 *     retry and timeout policy). Holds no connection itself: transfers share the context's
 *     curl multi handle, so many calls run at once on one thread, over HTTP/2 where offered.
 *   - cgw_anthropic_call_t: one streamed POST /v1/messages, retried as needed. Its callbacks
 *     run on the context's loop, never from inside cgw_anthropic_call_start.
 *
 * Identity: the client sends its own user-agent ("claude-gateway/<version>") and never
 * imitates Claude Code (no forged user-agent, x-app or identity system block).
 * Secrets: the API key or token is registered with cgw_ctx_add_secret, so it never reaches a
 * log line, and it is never copied into a cgw_error_t.
 *
 * Everything here belongs to the loop of the context it was made with and is not thread-safe.
 */
#ifndef CGW_ANTHROPIC_H
#define CGW_ANTHROPIC_H

#include "common.h"
#include "ctx.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct json_t; /* jansson's value type; include <jansson.h> to use it */

/* ---- conversation ------------------------------------------------------------------------ */

typedef struct cgw_conversation cgw_conversation_t;

/** Creates an empty conversation. CGW_OK, CGW_EINVAL (out NULL) or CGW_ENOMEM. */
CGW_EXTERN int cgw_conversation_new(cgw_conversation_t **out);

/** Frees it and every stored message. NULL is fine. */
CGW_EXTERN void cgw_conversation_free(cgw_conversation_t *conv);

/** Appends a message object ({"role":..., "content":...}; borrowed, serialized compactly now
 *  and never again). String content is kept byte-exact, so thinking blocks survive the round
 *  trip. CGW_OK; CGW_EINVAL when `msg` is not an object with a string "role" and a "content",
 *  or is nested deeper than 2048 levels; CGW_ENOMEM. */
CGW_EXTERN int cgw_conversation_append(cgw_conversation_t *conv, const struct json_t *msg);

/** Same, from JSON text (`len` bytes; strict: one object, valid UTF-8). The text is parsed once
 *  to validate it and stored in compact form. CGW_OK, CGW_EJSON (err gets line/column),
 *  CGW_EINVAL (not a message), CGW_ENOMEM. */
CGW_EXTERN int cgw_conversation_append_json(cgw_conversation_t *conv, const char *json, size_t len,
                                            cgw_error_t *err);

/** Appends {"role": role, "content": text} (both copied). CGW_OK, CGW_EINVAL, CGW_ENOMEM. */
CGW_EXTERN int cgw_conversation_append_text(cgw_conversation_t *conv, const char *role,
                                            const char *text);

/** Appends the assistant turn of a final Message as returned by a call (borrowed):
 *  {"role":"assistant","content": message.content}, content kept exactly as received (thinking
 *  signatures and redacted_thinking included), as the API requires when it is sent back.
 *  CGW_OK; CGW_EINVAL when `message` has no "content" array; CGW_ENOMEM. */
CGW_EXTERN int cgw_conversation_append_reply(cgw_conversation_t *conv,
                                             const struct json_t *message);

/** Number of messages. */
CGW_EXTERN size_t cgw_conversation_count(const cgw_conversation_t *conv);

/** The compact JSON of message `i` (borrowed until the message is removed or the
 *  conversation freed); {NULL, 0} when out of range. */
CGW_EXTERN cgw_str_t cgw_conversation_get(const cgw_conversation_t *conv, size_t i);

/** Keeps the first `n` messages and drops the rest (n >= count is a no-op). */
CGW_EXTERN void cgw_conversation_truncate(cgw_conversation_t *conv, size_t n);

/* ---- client ------------------------------------------------------------------------------ */

typedef enum cgw_auth_mode {
    CGW_AUTH_API = 0, /**< x-api-key: <api_key> */
    CGW_AUTH_OAUTH    /**< Authorization: Bearer <auth_token> + beta oauth-2025-04-20 */
} cgw_auth_mode_t;

typedef enum cgw_thinking {
    CGW_THINKING_AUTO = 0, /**< by model family (see cgw_anthropic_thinking_for) */
    CGW_THINKING_OFF,      /**< no "thinking" field */
    CGW_THINKING_ADAPTIVE, /**< {"type":"adaptive"} */
    CGW_THINKING_ENABLED   /**< {"type":"enabled","budget_tokens":N} */
} cgw_thinking_t;

typedef struct cgw_anthropic_options {
    /** Endpoint root, e.g. "http://127.0.0.1:8080". NULL: env ANTHROPIC_BASE_URL, else
     *  "https://api.anthropic.com". Requests go to <base_url>/v1/messages. */
    const char *base_url;
    /** Default CGW_AUTH_API. Only one credential header is ever sent. */
    cgw_auth_mode_t auth_mode;
    /** API mode credential. NULL: env ANTHROPIC_API_KEY. */
    const char *api_key;
    /** OAuth mode credential. NULL: env ANTHROPIC_AUTH_TOKEN. */
    const char *auth_token;
    /** Default "claude-sonnet-4-6". */
    const char *model;
    /** Default 16000. */
    int max_tokens;
    /** Default CGW_THINKING_AUTO. */
    cgw_thinking_t thinking;
    /** Budget for CGW_THINKING_ENABLED (and AUTO when it picks "enabled"); 0 means
     *  min(10000, max_tokens - 1024). */
    int thinking_budget;
    /** Extra anthropic-beta flags (each may itself be a comma-separated list), merged with the
     *  client's own into one header, whole tokens deduplicated. Borrowed, copied by _new. */
    const char *const *betas;
    size_t nbetas;
    /** Extra request headers "Name: value", passed through (an "anthropic-beta" one is merged
     *  into the beta list). Credential headers (x-api-key, authorization) and the headers the
     *  client owns (anthropic-version, content-type) are refused with CGW_EINVAL. */
    const char *const *headers;
    size_t nheaders;
    /** A JSON object whose members are added to every request body (e.g.
     *  {"metadata":{"user_id":"u1"},"temperature":0.2}); they win over the client's own
     *  fields except "messages", "tools" and "stream", which are refused with CGW_EINVAL. */
    const char *extra_body;
    /** Retries after the first attempt. Default 2 (3 attempts). -1 keeps the default. */
    int max_retries;
    /** Stall watchdog: an attempt that receives no byte for this long fails with CGW_ESTALL
     *  and is retried. Default 60000; 0 disables it. */
    int stall_timeout_ms;
    /** Per-call timeout, counted from cgw_anthropic_call_start across all retries; CGW_ETIMEDOUT,
     *  never retried. Default 0 (none). */
    int turn_timeout_ms;
    /** TCP+TLS connect timeout per attempt. Default 5000. */
    int connect_timeout_ms;
} cgw_anthropic_options_t;

typedef struct cgw_anthropic cgw_anthropic_t;

/** Fills the defaults above (pointers NULL). */
CGW_EXTERN void cgw_anthropic_options_init(cgw_anthropic_options_t *opts);

/** Parses an auth mode the way the original does: "oauth" (trimmed, any case) is OAuth, any
 *  other value is API. */
CGW_EXTERN cgw_auth_mode_t cgw_auth_mode_parse(const char *s);

/** Creates a client on `ctx` (borrowed; must outlive the client). `opts` is borrowed and every
 *  string in it copied. The credential is registered as a secret of `ctx`.
 *  Returns CGW_OK; CGW_ENOCRED when the credential of the chosen mode is missing or empty
 *  (the caller decides what to do, e.g. the runner's stub answer); CGW_EINVAL for bad options
 *  (err says which); CGW_EJSON for an extra_body that is not a JSON object; CGW_ENOMEM. */
CGW_EXTERN int cgw_anthropic_new(cgw_ctx_t *ctx, const cgw_anthropic_options_t *opts,
                                 cgw_anthropic_t **out, cgw_error_t *err);

/** Frees the client. Every call made with it must be freed first. NULL is fine. */
CGW_EXTERN void cgw_anthropic_free(cgw_anthropic_t *client);

/** The default model (borrowed from the client). */
CGW_EXTERN const char *cgw_anthropic_model(const cgw_anthropic_t *client);

/** The merged anthropic-beta value ("a,b,c"), or NULL when no beta flag is sent. Borrowed. */
CGW_EXTERN const char *cgw_anthropic_beta_header(const cgw_anthropic_t *client);

/** The thinking setting CGW_THINKING_AUTO resolves to (the original's rule): with
 *  max_tokens >= 2048, models containing "sonnet-4-6", "opus-4-6" or "opus-4-7" get
 *  ADAPTIVE; "sonnet-4-5", "opus-4-5" or "sonnet-4" get ENABLED with budget
 *  min(10000, max_tokens - 1024); anything else OFF. */
CGW_EXTERN cgw_thinking_t cgw_anthropic_thinking_for(const char *model, int max_tokens);

/* ---- requests ---------------------------------------------------------------------------- */

typedef struct cgw_anthropic_request {
    /** Required; borrowed only during the call that takes the request (the body is built
     *  then). */
    const cgw_conversation_t *conversation;
    /** A string system prompt: sent as one text block with cache_control ephemeral.
     *  NULL or "" = no system field. */
    const char *system;
    /** Alternatively, a JSON array of system blocks, spliced verbatim (wins over `system`).
     *  Not validated: it must be valid JSON. */
    const char *system_json;
    /** A JSON array of tool definitions, spliced verbatim (not validated). NULL = []: the
     *  field is always sent. */
    const char *tools_json;
    /** Per-request overrides; NULL / 0 = the client's. The thinking rule is applied to the
     *  effective model and max_tokens. */
    const char *model;
    int max_tokens;
    /** A streamed tool input that does not parse at content_block_stop (max_tokens cut it)
     *  becomes {} in the final message instead of failing the call; the consumer sees the
     *  fragments (CGW_LLM_INPUT_DELTA) and decides. Default false. */
    bool lenient_tool_input;
} cgw_anthropic_request_t;

/** Builds the request body: {"model","max_tokens","stream":true,"system"?,"thinking"?,
 *  extra_body members..., "tools":[...], "messages":[m1,...]} with the messages spliced from
 *  the conversation's stored bytes. On success *body (free with cgw_free) holds `*len` bytes
 *  plus a NUL. CGW_OK, CGW_EINVAL (no conversation, or a model or system prompt that is not
 *  valid UTF-8), CGW_ENOMEM. */
CGW_EXTERN int cgw_anthropic_build_body(const cgw_anthropic_t *client,
                                        const cgw_anthropic_request_t *req, char **body,
                                        size_t *len, cgw_error_t *err);

/* ---- streaming calls --------------------------------------------------------------------- */

/** What a stream event is (the increments of the message accumulator, forwarded). */
typedef enum cgw_llm_event_kind {
    CGW_LLM_MESSAGE_START,  /**< raw = the message_start event */
    CGW_LLM_BLOCK_START,    /**< index, block_type, block = content_block as received */
    CGW_LLM_TEXT_DELTA,     /**< index, text */
    CGW_LLM_THINKING_DELTA, /**< index, text */
    CGW_LLM_SIGNATURE,      /**< index, text = the signature */
    CGW_LLM_INPUT_DELTA,    /**< index, text = a partial_json fragment of a tool input */
    CGW_LLM_CITATION,       /**< index, block = the citation */
    CGW_LLM_OTHER_DELTA,    /**< index, block = the delta object */
    CGW_LLM_BLOCK_STOP,     /**< index, block_type, block = the completed block */
    CGW_LLM_MESSAGE_DELTA,  /**< raw = the message_delta event */
    CGW_LLM_MESSAGE_STOP,   /**< the message is complete (on_done follows) */
    CGW_LLM_UNKNOWN         /**< an unknown event type; name, raw (NULL if not JSON) */
} cgw_llm_event_kind_t;

/** One stream event. Everything is borrowed and valid only during the callback. */
typedef struct cgw_llm_event {
    cgw_llm_event_kind_t kind;
    int attempt;                /**< 0 for the first attempt, +1 per retry */
    size_t index;               /**< block index for block events */
    const char *block_type;     /**< for block events, else NULL */
    cgw_str_t text;             /**< delta bytes (not NUL-terminated) */
    const struct json_t *block; /**< see the kinds */
    const struct json_t *raw;   /**< the decoded event */
    cgw_str_t name;             /**< the SSE event name */
} cgw_llm_event_t;

/** Told before each retry. */
typedef struct cgw_llm_retry {
    int attempt;                /**< the attempt that failed (0-based); the next is attempt+1 */
    const cgw_error_t *error;   /**< why it failed */
    bool content_was_forwarded; /**< content events of the failed attempt reached on_event:
                                     the consumer must discard them (stream_retry) */
    int64_t delay_ms;           /**< wait before the next attempt */
} cgw_llm_retry_t;

/** The one outcome of a call. */
typedef struct cgw_llm_result {
    int code;                     /**< CGW_OK or the failure */
    const cgw_error_t *error;     /**< on failure: code, http_status, type, message,
                                       request_id when the API gave one; else NULL */
    const struct json_t *message; /**< on success: the final Message (as the non-streaming
                                       API returns it); else NULL */
    const struct json_t *usage;   /**< on success: message.usage (running totals) */
    const char *stop_reason;      /**< on success, else NULL */
    const char *request_id;       /**< the last attempt's request-id header, or NULL */
    int attempts;                 /**< attempts made (1 = no retry) */
} cgw_llm_result_t;

typedef struct cgw_anthropic_callbacks {
    /** Each event as it arrives. Optional. */
    void (*on_event)(const cgw_llm_event_t *ev, void *user);
    /** Before each retry. Optional. */
    void (*on_retry)(const cgw_llm_retry_t *info, void *user);
    /** Exactly once, last (unless the call is freed first). Required. The result and what it
     *  points to are valid only during the callback (json_incref the message to keep it). */
    void (*on_done)(const cgw_llm_result_t *result, void *user);
} cgw_anthropic_callbacks_t;

typedef struct cgw_anthropic_call cgw_anthropic_call_t;

/** Starts a streamed call. `req` is borrowed for the duration of this function only; `cbs`
 *  is copied; `client` must outlive the call. All callbacks run later, on the loop; any of
 *  them may free the call (or start others).
 *  Retries (like the SDKs): HTTP 408, 409, 429, 5xx (529 included) and connection failures,
 *  stalls and streams cut before message_stop; an `x-should-retry: true|false` response
 *  header overrides the status rule; the wait is retry-after-ms, else retry-after (seconds
 *  or an HTTP date) when 0 < wait <= 60 s, else min(0.5 s * 2^n, 8 s) * (1 - 0.25 * random).
 *  An `error` event inside a 200 stream whose type is overloaded_error, api_error,
 *  rate_limit_error or timeout_error is retried too, whether or not content was forwarded
 *  (on_retry says which).
 *  Failure codes (result.code / error.code): CGW_EAPI (the API said no, e.g. 400, or an
 *  error event), CGW_EHTTP (an HTTP error without an API error body), CGW_ESTALL,
 *  CGW_ECONNREFUSED / CGW_EIO (transport), CGW_EPROTO / CGW_EJSON (a malformed stream),
 *  CGW_ETIMEDOUT (turn timeout), CGW_ERETRIES (retryable failures until retries ran out;
 *  http_status, type and message are those of the last attempt).
 *  Returns CGW_OK (*out owns the call: free it with cgw_anthropic_call_free, at the latest
 *  after on_done), CGW_EINVAL, CGW_ENOMEM or CGW_EIO; on error no callback ever runs. */
CGW_EXTERN int cgw_anthropic_call_start(cgw_anthropic_t *client, const cgw_anthropic_request_t *req,
                                        const cgw_anthropic_callbacks_t *cbs, void *user,
                                        cgw_anthropic_call_t **out, cgw_error_t *err);

/** Cancels the call if it is still running (the HTTP transfer is dropped at once, no further
 *  callback runs) and frees it. NULL is fine. Safe from inside the call's own callbacks. */
CGW_EXTERN void cgw_anthropic_call_free(cgw_anthropic_call_t *call);

/** The jittered backoff of the SDKs for retry number `retries_done` (0-based) with `random01`
 *  in [0,1): min(500 * 2^n, 8000) * (1 - 0.25 * random01) milliseconds. */
CGW_EXTERN int64_t cgw_anthropic_backoff_ms(int retries_done, double random01);

/** The server-requested wait from retry-after-ms / retry-after header values (either may be
 *  NULL), in ms rounded up; -1 when absent, unparsable, <= 0 or above 60 s (backoff then).
 *  `now` is the current Unix time, used for HTTP-date values. */
CGW_EXTERN int64_t cgw_anthropic_retry_after_ms(const char *retry_after_ms, const char *retry_after,
                                                int64_t now);

#ifdef __cplusplus
}
#endif
#endif
