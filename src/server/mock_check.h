/* Request checks of mock-api, made the way the Messages API makes them and answered with its
 * wording (anthropic-protocol.md §6, §7, §9.1; the recorded 400 of the fixtures). Pure
 * functions over jansson values: no I/O, no loop. */
#ifndef CGW_SERVER_MOCK_CHECK_H
#define CGW_SERVER_MOCK_CHECK_H

#include <stddef.h>

#include <jansson.h>

/* Why a request is refused: HTTP status, the API's error.type and message. */
typedef struct cgw__mock_reject {
    int status;
    const char *type; /* static string */
    char message[512];
} cgw__mock_reject_t;

/* Parses and checks a /v1/messages body. `issued` holds the thinking signatures (signature ->
 * thinking text) and redacted_thinking data ("redacted:" + data -> "") the mock has handed out.
 * `betas` is the request's anthropic-beta header (NULL if none): interleaved thinking lifts the
 * budget_tokens < max_tokens rule. On success returns 0 and *parsed owns the body. On refusal
 * returns -1 with `rej` filled and *parsed NULL. */
int cgw__mock_check_body(const char *body, size_t len, const json_t *issued, const char *betas,
                         json_t **parsed, cgw__mock_reject_t *rej);

/* The text of the last user message (string content, text blocks and the text of tool_result
 * blocks, joined by LF), for marker selection. Caller frees with cgw_free; never NULL except
 * when out of memory. */
char *cgw__mock_last_user_text(const json_t *body);

#endif
