/* Fuzz target: tools/call result and JSON-RPC error mapping. The input is parsed as JSON and
 * mapped both as a result and as an error. Checks that exactly one of result and error is
 * set, that error has code and message strings, and that every content block is one the
 * Messages API accepts (text, image with an accepted type, document). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "mcp/mcp_result.h"

static void check_block(const json_t *b)
{
    const char *type = cgw_json_str(b, "type", "");
    if (strcmp(type, "text") == 0) {
        if (cgw_json_str(b, "text", NULL) == NULL) {
            abort();
        }
        return;
    }
    const json_t *src = json_object_get(b, "source");
    const char *mt = cgw_json_str(src, "media_type", "");
    if (strcmp(type, "image") == 0) {
        if (strcmp(mt, "image/png") != 0 && strcmp(mt, "image/jpeg") != 0 &&
            strcmp(mt, "image/gif") != 0 && strcmp(mt, "image/webp") != 0) {
            abort();
        }
    } else if (strcmp(type, "document") != 0) {
        abort();
    }
    if (cgw_json_str(src, "data", NULL) == NULL) {
        abort();
    }
}

static void check(const cgw_mcp_outcome_t *o)
{
    if ((o->result == NULL) == (o->error == NULL)) {
        abort();
    }
    if (o->error != NULL && (cgw_json_str(o->error, "code", NULL) == NULL ||
                             cgw_json_str(o->error, "message", NULL) == NULL)) {
        abort();
    }
    if (o->content != NULL) {
        if (!json_is_array(o->content) || json_array_size(o->content) == 0) {
            abort();
        }
        size_t i;
        const json_t *b;
        json_array_foreach(o->content, i, b)
        {
            check_block(b);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    if (cgw_json_parse((const char *)data, size, &v, NULL) != CGW_OK) {
        return 0;
    }
    cgw_mcp_outcome_t o = CGW_MCP_OUTCOME_INIT;
    if (cgw__mcp_outcome_from_result(v, "fuzz", &o) == CGW_OK) {
        check(&o);
    }
    if (cgw__mcp_outcome_from_rpc_error(v, &o) == CGW_OK) {
        check(&o);
    }
    cgw__mcp_outcome_clear(&o);
    json_decref(v);
    return 0;
}
