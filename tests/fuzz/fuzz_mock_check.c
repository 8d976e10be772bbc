/* Fuzz target: mock-api's request checks (body parsing, field checks, role merging,
 * tool_use/tool_result pairing, thinking signatures) and marker text extraction. */
#include <stddef.h>
#include <stdint.h>

#include "cgw/common.h"
#include "server/mock_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *issued = json_pack("{s:s,s:s}", "sig-1", "thought", "redacted:RD", "");
    json_t *parsed = NULL;
    cgw__mock_reject_t rej;
    /* Odd sizes also carry the interleaved-thinking beta, to reach both budget rules. */
    const char *betas = size % 2 ? "a, interleaved-thinking-2025-05-14 ,b" : NULL;
    if (cgw__mock_check_body((const char *)data, size, issued, betas, &parsed, &rej) == 0) {
        cgw_free(cgw__mock_last_user_text(parsed));
        json_decref(parsed);
    }
    json_decref(issued);
    return 0;
}
