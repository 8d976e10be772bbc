/*
 * libFuzzer target for the header values the Anthropic client parses from the network and from
 * configuration: retry-after-ms / retry-after (numbers and HTTP dates) and anthropic-beta lists.
 * Input: "<retry-after-ms>\n<retry-after>\n<beta list>" (missing parts are absent headers).
 * Checked invariants: a wait is -1 or within (0, 60 s]; a merged beta list has no empty,
 * padded or repeated token, and merging it again changes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "llm/llm_int.h"

static char *part(const uint8_t **p, const uint8_t *end)
{
    if (*p > end) {
        return NULL;
    }
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    char *s = malloc((size_t)(stop - *p) + 1);
    memcpy(s, *p, (size_t)(stop - *p));
    s[stop - *p] = '\0';
    *p = nl ? nl + 1 : end + 1;
    return s;
}

static void check_betas(const char *list)
{
    cgw_buf_t b = CGW_BUF_INIT, again = CGW_BUF_INIT;
    if (cgw__beta_merge(&b, list) != CGW_OK) {
        abort();
    }
    const char *s = b.data ? b.data : "";
    size_t n = strlen(s);
    if (n > 0 && (s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,") != NULL)) {
        abort();
    }
    /* Every token once: merging the result into itself adds nothing. */
    cgw__beta_merge(&again, s);
    cgw__beta_merge(&again, s);
    if (strcmp(again.data ? again.data : "", s) != 0) {
        abort();
    }
    cgw_buf_free(&b);
    cgw_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *ms = part(&p, end);
    char *ra = part(&p, end);
    char *betas = part(&p, end);
    int64_t wait = cgw_anthropic_retry_after_ms(ms, ra, 1700000000);
    if (wait != -1 && (wait <= 0 || wait > 60000)) {
        abort();
    }
    if (betas != NULL) {
        check_betas(betas);
    }
    free(ms);
    free(ra);
    free(betas);
    return 0;
}
