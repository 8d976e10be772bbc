/* Fuzz target: recorded responses for mock-api replays (raw HTTP captures, bare SSE), SSE
 * framing and signature harvesting, and recorded exchange lists when the input is JSON. */
#include <stddef.h>
#include <stdint.h>

#include "cgw/common.h"
#include "server/mock_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cgw__mock_capture_t *c = NULL;
    if (cgw__mock_capture_parse((const char *)data, size, &c, NULL) == 0) {
        size_t *ends = NULL;
        if (cgw__mock_sse_frames(c->body, c->body_len, &ends) >= 0) {
            cgw_free(ends);
        }
        json_t *issued = json_object();
        cgw__mock_sse_harvest(c->body, c->body_len, issued);
        json_decref(issued);
        cgw__mock_capture_free(c);
    }
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    json_t *script = cgw__mock_exchanges_script(doc);
    cgw__mock_script_t *s = NULL;
    if (script != NULL && cgw__mock_script_parse(script, NULL, &s, NULL) == 0) {
        cgw__mock_script_free(s);
    }
    json_decref(script);
    json_decref(doc);
    return 0;
}
