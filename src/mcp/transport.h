/*
 * The MCP transport interface: how an MCP session (mcp_client.c) talks to one server,
 * whatever carries the bytes. stdio_transport.c implements it over a child's pipes; a later
 * Streamable HTTP transport implements the same vtable.
 *
 * A transport delivers parsed JSON values (one per message) and reports problems that concern
 * one message without dropping the connection (a non-JSON line, an oversize line). It reports
 * the end of the connection once, through on_closed. All callbacks run on the ctx loop.
 */
#ifndef CGW_MCP_TRANSPORT_H
#define CGW_MCP_TRANSPORT_H

#include <jansson.h>

#include "cgw/ctx.h"
#include "cgw/error.h"
#include "core/buf.h"

typedef struct cgw__mcp_transport cgw__mcp_transport_t;

typedef struct cgw__mcp_transport_cbs {
    /* One message. `msg` is borrowed for the call (incref to keep it). */
    void (*on_message)(void *user, json_t *msg);
    /* A message that could not be delivered: CGW_ELINETOOLONG (then has_id/id tell which of
     * our requests it answered, when that could be recognised) or CGW_EJSON (skipped line). */
    void (*on_bad_message)(void *user, int code, int has_id, json_int_t id, const char *detail);
    /* The connection is gone (the server exited or closed its output). `code` is
     * CGW_ESERVERDIED or CGW_EPIPE; `detail` says how (exit status, signal). Fires once; no
     * callback follows. The transport must still be freed. */
    void (*on_closed)(void *user, int code, const char *detail);
    void *user;
} cgw__mcp_transport_cbs_t;

typedef struct cgw__mcp_transport_vt {
    /* Queues one serialized message (ending in "\n"). CGW_OK, CGW_ECLOSED, CGW_ENOMEM. */
    int (*send)(cgw__mcp_transport_t *t, const char *data, size_t len);
    /* Starts an orderly, asynchronous shutdown and detaches the transport from its owner: no
     * callback runs after this, and the transport releases itself once the peer is gone. */
    void (*close)(cgw__mcp_transport_t *t);
    /* Shuts down now (bounded wait, then force) and frees. Used on manager teardown. */
    void (*free)(cgw__mcp_transport_t *t);
    /* Diagnostic text the peer produced (the stdio child's stderr tail); "" if none. Borrowed
     * until the next loop iteration. */
    const char *(*diag)(cgw__mcp_transport_t *t);
    /* Process id for status (0 when not a process). */
    int (*pid)(cgw__mcp_transport_t *t);
} cgw__mcp_transport_vt_t;

struct cgw__mcp_transport {
    const cgw__mcp_transport_vt_t *vt;
    cgw__mcp_transport_cbs_t cbs;
};

/* What a stdio server needs. Everything is borrowed for the duration of the call. */
typedef struct cgw__stdio_params {
    const char *name;        /* server name, for logs */
    const char *command;     /* a name without '/' is looked up on the gateway's own PATH (not
                                an env overlay's, as posix_spawnp); a relative path is taken
                                from cwd */
    const char *const *args; /* NULL-terminated, without argv[0]; may be NULL */
    const char *const *env;  /* "KEY=VALUE" overlays on the parent environment; NULL-terminated */
    const char *cwd;         /* NULL = inherit */
    size_t max_line;         /* 0 = CGW_NDJSON_DEFAULT_MAX_LINE */
    size_t stderr_cap;       /* bytes of stderr kept; 0 = 8 KiB */
    int term_grace_ms;       /* wait after closing stdin before SIGTERM, and after SIGTERM
                                before SIGKILL; 0 = 2000 */
} cgw__stdio_params_t;

/* Spawns the server and wires its pipes to the loop. On success *out is a transport owned by
 * the caller (vt->free or vt->close). Errors: -errno of the command lookup or posix_spawn
 * (CGW_ENOENT for a missing command or cwd), CGW_ENOMEM, CGW_EIO; err gets a sentence. */
int cgw__stdio_transport_new(cgw_ctx_t *ctx, const cgw__stdio_params_t *p,
                             const cgw__mcp_transport_cbs_t *cbs, cgw__mcp_transport_t **out,
                             cgw_error_t *err);

/* Builds the child's environment: every entry of `base` (e.g. environ) whose key is not in
 * `overlay`, then every overlay entry. Returns a NULL-terminated array in one allocation
 * (free with cgw_free) or NULL on ENOMEM. Exposed for the tests. */
char **cgw__env_overlay(const char *const *base, const char *const *overlay);

#endif
