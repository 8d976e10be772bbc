/*
 * HTTP transfers on the context's loop: libcurl's multi-socket API driven by libevent.
 *
 * One CURLM per context (created on first use, kept in CGW_CTX_SLOT_CURLM and cleaned up when
 * the context is freed). curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when to wake it (CURLMOPT_TIMERFUNCTION); we map those onto libevent events and one timer,
 * and hand readiness back with curl_multi_socket_action. This is the pattern of curl's
 * hiperfifo example. Many transfers share one thread and, over HTTP/2, one connection.
 *
 * A cgw__xfer_t wraps one easy handle plus what curl must keep alive while it runs (header
 * list, request body). Its data/header/done callbacks run on the loop. Freeing a transfer
 * cancels it at once: no callback of it runs afterwards, even when the free happens inside
 * one of its own callbacks (curl forbids removing a handle while it is calling us, so the
 * removal is then finished as soon as curl returns, before the loop runs anything else).
 *
 * Generic on purpose: the Anthropic client and the MCP HTTP transport both use it.
 */
#ifndef CGW_CORE_CURL_MULTI_H
#define CGW_CORE_CURL_MULTI_H

#include <curl/curl.h>

#include "cgw/ctx.h"

typedef struct cgw__xfer cgw__xfer_t;

typedef struct cgw__xfer_cbs {
    /* One response header line (with its CRLF), including status lines. Return 0 to go on,
     * anything else aborts the transfer (on_done then gets CURLE_WRITE_ERROR). May be NULL. */
    int (*on_header)(const char *line, size_t len, void *user);
    /* A chunk of the response body. Same return convention as on_header. May be NULL. */
    int (*on_data)(const char *data, size_t len, void *user);
    /* The transfer ended (result is CURLE_OK or the failure). Runs once, on the loop, outside
     * curl, so the callee may free this transfer or start others. Required. */
    void (*on_done)(cgw__xfer_t *x, CURLcode result, void *user);
} cgw__xfer_cbs_t;

/* Creates a transfer with a fresh easy handle (not started). `cbs` is copied. Returns CGW_OK,
 * CGW_ENOMEM or CGW_EIO (curl could not be set up). */
int cgw__xfer_new(cgw_ctx_t *ctx, const cgw__xfer_cbs_t *cbs, void *user, cgw__xfer_t **out);

/* The easy handle, for curl_easy_setopt (URL, timeouts, ...) before start and curl_easy_getinfo
 * at any time. Do not set WRITE*, HEADER*, PRIVATE, HTTPHEADER or POSTFIELDS*: the transfer
 * owns those. Borrowed. */
CURL *cgw__xfer_easy(cgw__xfer_t *x);

/* Appends a request header ("Name: value"; "Name:" removes one curl would add). Copied.
 * Before start only. CGW_OK, CGW_ENOMEM or CGW_ESTATE. */
int cgw__xfer_add_header(cgw__xfer_t *x, const char *line);

/* Makes this a POST of `body` (`len` bytes), taking ownership of `body` (freed with cgw_free
 * even on failure). Before start only. CGW_OK or CGW_ESTATE. */
int cgw__xfer_set_body_take(cgw__xfer_t *x, char *body, size_t len);

/* Starts the transfer on the loop. Once only. CGW_OK, CGW_ESTATE or CGW_EIO. */
int cgw__xfer_start(cgw__xfer_t *x);

/* Cancels (if running) and frees the transfer. NULL is fine. Safe from any callback,
 * including this transfer's own. */
void cgw__xfer_free(cgw__xfer_t *x);

/* curl's readable detail for the last failure ("" if none). Borrowed from the transfer. */
const char *cgw__xfer_errmsg(cgw__xfer_t *x);

/* HTTP status of the response so far (0 before the status line). */
long cgw__xfer_status(cgw__xfer_t *x);

/* Number of transfers currently running on the context (for tests and metrics). */
size_t cgw__curlm_active(cgw_ctx_t *ctx);

#endif
