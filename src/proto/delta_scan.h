/* A fast path for the hottest events of a Messages API stream: content_block_delta carrying a
 * text_delta, thinking_delta or input_json_delta, in the exact shape the API sends:
 *
 *   {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"..."}}
 *
 * (trailing whitespace allowed). It decodes the string straight into a byte buffer without
 * building JSON values. Anything else (other field order, extra fields, invalid UTF-8, lone
 * surrogates, raw control characters) is declined, and the caller uses the general jansson
 * path, which then accepts or rejects it with a proper message. So the fast path never accepts
 * what jansson would reject, and decodes to the same bytes (checked by fuzz_msg_accum). */
#ifndef CGW_PROTO_DELTA_SCAN_H
#define CGW_PROTO_DELTA_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum { CGW_DELTA_TEXT, CGW_DELTA_THINKING, CGW_DELTA_INPUT } cgw_delta_kind_t;

typedef struct cgw_delta {
    cgw_delta_kind_t kind;
    uint32_t index;
} cgw_delta_t;

/* Returns 1 and fills *out, with the decoded string in `scratch` (reset first), when `data`
 * is such an event; 0 when the general path must handle it (also on allocation failure). */
int cgw__delta_scan(const char *data, size_t len, cgw_delta_t *out, cgw_buf_t *scratch);

#endif
