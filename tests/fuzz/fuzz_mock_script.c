/* Fuzz target: mock-api script parsing, then rendering every turn both ways (SSE plan and
 * non-streamed Message). Replay paths are refused unless they name regular files. */
#include <stddef.h>
#include <stdint.h>

#include "server/mock_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    cgw__mock_script_t *s = NULL;
    if (doc != NULL && cgw__mock_script_parse(doc, "/nonexistent", &s, NULL) == 0) {
        for (size_t i = 0; i < s->nturns; i++) {
            cgw__mock_plan_t *p = NULL;
            if (cgw__mock_plan_stream(&s->turns[i], "m", "msg_1", &p) == 0) {
                cgw__mock_plan_free(p);
            }
            if (s->turns[i].replay == NULL && s->turns[i].status == 200) {
                json_decref(cgw__mock_turn_message(&s->turns[i], "m", "msg_1"));
            }
        }
        cgw__mock_script_free(s);
    }
    json_decref(doc);
    return 0;
}
