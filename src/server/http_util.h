/* Small helpers over libevent's evhttp shared by the HTTP servers of the project (mock-api and
 * the gateway): binding "host:port", JSON and Anthropic-style error replies, request ids,
 * and chunked Server-Sent-Events replies.
 *
 * Everything here runs on the loop thread that owns the evhttp. A `struct evhttp_request *`
 * passed in is borrowed; these helpers never keep it.
 *
 * SSE note: evhttp closes a connection that is idle for its timeout (50 s by default). A stream
 * that pauses (model thinking, a hang test) must survive that, so cgw__http_sse_start() turns
 * the per-connection timeouts off for the stream's connection. */
#ifndef CGW_SERVER_HTTP_UTIL_H
#define CGW_SERVER_HTTP_UTIL_H

#include <stddef.h>

#include <jansson.h>

#include "cgw/error.h"

struct evhttp;
struct evhttp_request;
struct evhttp_connection;

/* Room for "req_" + 24 base62 characters + NUL. */
#define CGW_HTTP_REQUEST_ID_LEN 32

/* Binds `http` to `listen` ("127.0.0.1:8080", "[::1]:0", "localhost:0"; port 0 picks a free
 * one) and writes the bound address as "host:port" into `out` (capacity `cap`). Returns CGW_OK,
 * CGW_EINVAL (malformed address) or CGW_EIO (bind failed; err says why). */
int cgw__http_bind(struct evhttp *http, const char *listen, char *out, size_t cap,
                   cgw_error_t *err);

/* The usual reason phrase for `status`, including the non-standard 529 "Overloaded". Static
 * storage; never NULL. */
const char *cgw__http_reason(int status);

/* Fills `out` with a fresh id in the API's style, "req_" followed by 24 random base62
 * characters. */
void cgw__http_request_id(char out[CGW_HTTP_REQUEST_ID_LEN]);

/* The path part of the request URI, without query or fragment, copied into `out` (capacity
 * `cap`, truncated if longer). "" when the URI does not parse. */
void cgw__http_path(struct evhttp_request *req, char *out, size_t cap);

/* The request body as one contiguous range (borrowed; valid while `req` lives). *len gets its
 * length; the pointer is NULL when the body is empty. */
const char *cgw__http_body(struct evhttp_request *req, size_t *len);

/* Sends a complete reply with `len` bytes of `body` and the given content type (NULL keeps a
 * content type the caller already set). */
void cgw__http_reply_raw(struct evhttp_request *req, int status, const char *content_type,
                         const char *body, size_t len);

/* Sends a complete reply whose body is the compact serialization of `body` (borrowed), with
 * content-type application/json. */
void cgw__http_reply_json(struct evhttp_request *req, int status, const json_t *body);

/* The API's error object: {"type":"error","error":{"type":..,"message":..},"request_id":..}.
 * `request_id` may be NULL (then the member is left out). Returns a new reference, NULL only
 * when out of memory. */
json_t *cgw__http_error_json(const char *type, const char *message, const char *request_id);

/* Sends cgw__http_error_json() as a complete reply with status `status`. */
void cgw__http_reply_error(struct evhttp_request *req, int status, const char *type,
                           const char *message, const char *request_id);

/* Sets response headers from `headers` (borrowed): an object {name: value} or an array of
 * [name, value] pairs. Each replaces a header of the same name; a null value only removes it. */
void cgw__http_set_headers(struct evhttp_request *req, const json_t *headers);

/* Turns the per-connection read/write timeouts off for `req`'s connection, so that a long
 * silent response is not cut by evhttp. */
void cgw__http_disable_timeouts(struct evhttp_request *req);

/* Bytes queued on `evcon` that the kernel has not taken yet (0 when there is no connection).
 * A streaming server uses it for backpressure, or to wait until a reply has gone out. */
size_t cgw__http_pending_output(struct evhttp_connection *evcon);

/* Starts a chunked reply with status `status` for a Server-Sent-Events stream: sets
 * content-type text/event-stream (unless already set) and cache-control no-cache, sends the
 * headers and disables the connection's timeouts. */
void cgw__http_sse_start(struct evhttp_request *req, int status);

/* Sends one SSE frame "id: <id>\nevent: <event>\ndata: <data>\n\n" as one chunk. `id` and
 * `event` may be NULL (no such line); `data` must hold no newline. Returns CGW_OK or
 * CGW_ENOMEM. */
int cgw__http_sse_send(struct evhttp_request *req, const char *id, const char *event,
                       const char *data, size_t len);

/* Sends `len` raw bytes as one chunk of a reply started with evhttp_send_reply_start or
 * cgw__http_sse_start. Returns CGW_OK or CGW_ENOMEM. */
int cgw__http_send_chunk(struct evhttp_request *req, const char *data, size_t len);

#endif
