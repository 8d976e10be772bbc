/*
 * cgw_mock_api_t: a scripted, Anthropic-compatible Messages API server for tests and demos
 * (`claude-gateway mock-api`). It answers POST /v1/messages from a script of turns (text,
 * thinking, tool_use, HTTP errors, mid-stream error events, hangs, cut connections) or from a
 * recorded response, checks requests the way the real API does, and exposes /_mock/stats,
 * /_mock/requests, /_mock/reset and /_mock/script. The script format is in docs/mock-api.md.
 *
 * The server runs on the context's event_base: every function here must be called from the
 * loop's thread, and the server does nothing unless that loop runs.
 */
#ifndef CGW_MOCK_API_H
#define CGW_MOCK_API_H

#include "ctx.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgw_mock_api cgw_mock_api_t;

typedef struct cgw_mock_api_options {
    /** "HOST:PORT" to listen on; port 0 picks a free port (see cgw_mock_api_address).
     *  Default "127.0.0.1:0". Borrowed during cgw_mock_api_new only. */
    const char *listen;
    /** Script file (JSON, docs/mock-api.md). NULL: no script. Borrowed. */
    const char *script_path;
    /** Recorded response served to every request: a bare .sse body or a raw `curl -D -`
     *  capture (status line + headers + body). Excludes script_path. NULL: none. Borrowed. */
    const char *replay_path;
    /** Bodies larger than this get 413 request_too_large. Default 32 MiB (the API's limit). */
    size_t max_body_bytes;
    /** When set, x-api-key (or Authorization: Bearer) must equal it, else 401. NULL: any
     *  non-empty credential is accepted. Borrowed. */
    const char *api_key;
} cgw_mock_api_options_t;

/** Fills `opts` with the defaults. */
CGW_EXTERN void cgw_mock_api_options_init(cgw_mock_api_options_t *opts);

/** Loads the script (or recording, or the built-in one-line text turn when neither is given),
 *  binds the listening socket and starts serving on ctx's loop. On success *out owns the
 *  server (free with cgw_mock_api_free). Returns CGW_OK, CGW_EINVAL (bad options or listen
 *  address), CGW_ECONFIG / CGW_EJSON (bad script or recording), CGW_ENOENT / CGW_EIO (a file
 *  could not be read, the address could not be bound) or CGW_ENOMEM; `err` (may be NULL) says
 *  which. */
CGW_EXTERN int cgw_mock_api_new(cgw_ctx_t *ctx, const cgw_mock_api_options_t *opts,
                                cgw_mock_api_t **out, cgw_error_t *err);

/** The bound address as "HOST:PORT" (port 0 resolved). Borrowed; valid while the server
 *  lives. */
CGW_EXTERN const char *cgw_mock_api_address(const cgw_mock_api_t *mock);

/** Replaces the script with the JSON document `json` (`len` bytes, borrowed) and resets the
 *  turn position and counters, as POST /_mock/script does. Relative replay paths are taken
 *  from the working directory. Returns CGW_OK, CGW_EJSON, CGW_ECONFIG, CGW_ENOENT, CGW_EIO or
 *  CGW_ENOMEM; on failure the old script stays. */
CGW_EXTERN int cgw_mock_api_load_script(cgw_mock_api_t *mock, const char *json, size_t len,
                                        cgw_error_t *err);

/** Resets the counters, the recorded requests and the turn position (POST /_mock/reset).
 *  Thinking signatures already issued stay valid. */
CGW_EXTERN void cgw_mock_api_reset(cgw_mock_api_t *mock);

/** Stops listening, drops every open connection (streams in progress are cut) and frees the
 *  server. NULL is fine. */
CGW_EXTERN void cgw_mock_api_free(cgw_mock_api_t *mock);

#ifdef __cplusplus
}
#endif
#endif
