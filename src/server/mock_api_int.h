/* Internals shared by mock_api.c (routing, checks, turn selection, bookkeeping) and
 * mock_stream.c (sending a planned answer over time). */
#ifndef CGW_SERVER_MOCK_API_INT_H
#define CGW_SERVER_MOCK_API_INT_H

#include <stdint.h>

#include <jansson.h>

#include "cgw/mock_api.h"
#include "server/mock_script.h"

struct evhttp;
struct evhttp_request;
struct cgw__mock_stream;

struct cgw_mock_api {
    cgw_ctx_t *ctx;
    struct evhttp *http;
    char address[128];
    size_t max_body;
    char *api_key;
    cgw__mock_script_t *script;
    size_t next_turn;        /* position among the turns without a marker */
    json_t *issued;          /* every thinking signature / redacted data handed out */
    uint64_t total;          /* requests outside /_mock/ */
    json_t *by_status;       /* "429" -> count */
    json_t *by_turn;         /* turn name -> count */
    json_t *requests;        /* recorded requests, oldest first (bounded, see mock_api.c) */
    json_int_t record_bytes; /* sum of their body sizes */
    uint64_t messages;       /* for msg_mock_<n> ids */
    struct cgw__mock_stream *streams; /* answers in progress */
};

/* Sends `plan` (taken) as the answer to `req`, over time, on the server's loop. The stream is
 * freed when it ends, when the client goes away, or by cgw__mock_streams_free. */
void cgw__mock_stream_start(cgw_mock_api_t *srv, struct evhttp_request *req,
                            cgw__mock_plan_t *plan);

/* Number of answers in progress (streaming, hanging, about to be cut). */
size_t cgw__mock_streams_count(const cgw_mock_api_t *srv);

/* Drops every answer in progress (their connections are left to evhttp_free). */
void cgw__mock_streams_free(cgw_mock_api_t *srv);

#endif
