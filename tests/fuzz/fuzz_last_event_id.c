/* Fuzz target: the resume-position parser (Last-Event-ID header, ?after= value).
 * Oracle: an accepted input is exactly the canonical decimal of the value it produced, and
 * every canonical decimal up to INT64_MAX is accepted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgw.h"

static int canonical(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 19 || (data[0] == '0' && size > 1)) {
        return 0;
    }
    for (size_t i = 0; i < size; i++) {
        if (data[i] < '0' || data[i] > '9') {
            return 0;
        }
    }
    char tmp[20];
    memcpy(tmp, data, size);
    tmp[size] = '\0';
    return strtoull(tmp, NULL, 10) <= (unsigned long long)INT64_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t v = 0;
    int rc = cgw_eventlog_parse_seq((cgw_str_t){(const char *)data, size}, &v);
    if (rc == CGW_OK) {
        char back[24];
        int n = snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
        if ((size_t)n != size || memcmp(back, data, size) != 0 || v > (uint64_t)INT64_MAX) {
            abort();
        }
    } else if (rc != CGW_EINVAL || canonical(data, size)) {
        abort();
    }
    return 0;
}
