/* Fuzz target: cgw_json_dump_buf must write every value jansson can parse exactly as
 * json_dumps(COMPACT | ENCODE_ANY) does. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v == NULL) {
        return 0;
    }
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_json_dump_buf(v, &b);
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    /* Our depth limit is jansson's parser limit, so every parsed value must write. */
    if (rc != CGW_OK || want == NULL || strlen(want) != b.len || memcmp(want, b.data, b.len) != 0) {
        abort();
    }
    free(want);
    cgw_buf_free(&b);
    json_decref(v);
    return 0;
}
