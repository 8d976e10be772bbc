/*
 * JSON-RPC 2.0 message classification and building, with no I/O.
 *
 * MCP uses JSON-RPC 2.0 in both directions with separate id spaces: the client numbers its
 * requests, the server numbers its own (server-everything starts at 0). So a message is routed
 * by what it is — a response (has "result" or "error") goes to our pending table, a request
 * (has "method" and "id") is for us to answer — never by the id value alone.
 *
 * Ids are strings or integers; null, fractions, booleans, arrays and objects are invalid.
 * Batches (arrays) were allowed only in 2025-03-26 and are reported as invalid.
 */
#ifndef CGW_PROTO_JSONRPC_H
#define CGW_PROTO_JSONRPC_H

#include <jansson.h>

#include "cgw/error.h"
#include "core/buf.h"

typedef enum cgw__rpc_kind {
    CGW_RPC_INVALID = 0,
    CGW_RPC_REQUEST,      /* method + id: the peer expects an answer */
    CGW_RPC_NOTIFICATION, /* method, no id */
    CGW_RPC_RESULT,       /* id + result */
    CGW_RPC_ERROR         /* id (possibly null) + error{code, message, data?} */
} cgw__rpc_kind_t;

/* The parts of a classified message. Every pointer is borrowed from the json_t that was
 * classified and lives as long as it. */
typedef struct cgw__rpc_msg {
    cgw__rpc_kind_t kind;
    const char *method;  /* requests and notifications */
    json_t *id;          /* requests and responses; NULL for an error response with id null */
    json_t *params;      /* may be NULL */
    json_t *result;      /* CGW_RPC_RESULT */
    json_int_t err_code; /* CGW_RPC_ERROR */
    const char *err_message;
    json_t *err_data; /* may be NULL */
} cgw__rpc_msg_t;

/* Classifies `msg`. Returns CGW_OK with *out filled, or CGW_EPROTO with out->kind ==
 * CGW_RPC_INVALID and a reason in err (may be NULL). Never allocates. */
int cgw__rpc_classify(json_t *msg, cgw__rpc_msg_t *out, cgw_error_t *err);

/* True when `id` is a valid JSON-RPC id (string or integer). */
int cgw__rpc_id_valid(const json_t *id);

/* Reads an integer id. Returns 1 and sets *out when `id` is an integer, else 0 (string ids are
 * never ours: this client numbers its requests with integers). */
int cgw__rpc_id_int(const json_t *id, json_int_t *out);

/* Appends one serialized message plus "\n" to `b`. `params`/`result`/`id` are borrowed and
 * may be NULL where the kind allows it (params NULL = omitted). CGW_OK, CGW_ENOMEM or
 * CGW_E2BIG. */
int cgw__rpc_write_request(cgw_buf_t *b, json_int_t id, const char *method, const json_t *params);
int cgw__rpc_write_notification(cgw_buf_t *b, const char *method, const json_t *params);
int cgw__rpc_write_result(cgw_buf_t *b, const json_t *id, const json_t *result);
int cgw__rpc_write_error(cgw_buf_t *b, const json_t *id, json_int_t code, const char *message);

/* Appends `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":` so that a caller can
 * write the params object itself (the hot tools/call path) and close with "}\n". */
int cgw__rpc_write_request_head(cgw_buf_t *b, json_int_t id, const char *method);

/* Appends `s` as a JSON string literal (quoted, escaped). */
int cgw__rpc_append_string(cgw_buf_t *b, const char *s);

/* Appends the decimal form of `v`. */
int cgw__rpc_append_int(cgw_buf_t *b, json_int_t v);

/* Looks for the top-level integer "id" of a message when only its first and last bytes are
 * known (an oversize line): `{"jsonrpc":"2.0","id":N` at the start or `"id":N}` at the end,
 * the two places a top-level id can be recognised without parsing the middle. Returns 1 and
 * sets *out when found. */
int cgw__rpc_sniff_id(const char *head, size_t head_len, const char *tail, size_t tail_len,
                      json_int_t *out);

/* Standard codes. */
#define CGW_RPC_PARSE_ERROR (-32700)
#define CGW_RPC_INVALID_REQUEST (-32600)
#define CGW_RPC_METHOD_NOT_FOUND (-32601)
#define CGW_RPC_INVALID_PARAMS (-32602)
#define CGW_RPC_INTERNAL_ERROR (-32603)

#endif
