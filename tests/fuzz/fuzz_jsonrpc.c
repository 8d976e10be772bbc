/* Fuzz target: JSON-RPC classification of whatever JSON the input parses to, a round trip of
 * valid messages through the writers, and id sniffing on the raw bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/jsonrpc.h"

static void round_trip(const cgw__rpc_msg_t *m)
{
    cgw_buf_t b = CGW_BUF_INIT;
    json_int_t id;
    int rc = CGW_OK;
    switch (m->kind) {
    case CGW_RPC_REQUEST:
        if (cgw__rpc_id_int(m->id, &id)) {
            rc = cgw__rpc_write_request(&b, id, m->method, m->params);
        }
        break;
    case CGW_RPC_NOTIFICATION:
        rc = cgw__rpc_write_notification(&b, m->method, m->params);
        break;
    case CGW_RPC_RESULT:
        rc = cgw__rpc_write_result(&b, m->id, m->result);
        break;
    case CGW_RPC_ERROR:
        rc = cgw__rpc_write_error(&b, m->id, m->err_code, m->err_message);
        break;
    default:
        break;
    }
    if (rc == CGW_OK && b.len > 0) {
        json_t *again = json_loadb(b.data, b.len - 1, 0, NULL);
        cgw__rpc_msg_t m2;
        if (again == NULL || cgw__rpc_classify(again, &m2, NULL) != CGW_OK || m2.kind != m->kind) {
            abort();
        }
        json_decref(again);
    }
    cgw_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_int_t id;
    size_t half = size / 2;
    cgw__rpc_sniff_id((const char *)data, half, (const char *)data + half, size - half, &id);
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        return 0;
    }
    cgw__rpc_msg_t m;
    cgw_error_t err;
    if (cgw__rpc_classify(v, &m, &err) == CGW_OK) {
        round_trip(&m);
    } else if (m.kind != CGW_RPC_INVALID) {
        abort();
    }
    json_decref(v);
    return 0;
}
