/*
 * The retry policy of the official SDKs (anthropic-protocol.md §9.3), as pure functions:
 * which failures are retried and how long to wait.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cgw/anthropic.h"
#include "llm/llm_int.h"

bool cgw__retry_status(long status, int should_retry)
{
    if (should_retry >= 0) {
        return should_retry == 1;
    }
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

bool cgw__retry_event_type(const char *type)
{
    static const char *const retried[] = {"overloaded_error", "api_error", "rate_limit_error",
                                          "timeout_error"};
    for (size_t i = 0; type != NULL && i < sizeof(retried) / sizeof(retried[0]); i++) {
        if (strcmp(type, retried[i]) == 0) {
            return true;
        }
    }
    return false;
}

int64_t cgw_anthropic_backoff_ms(int retries_done, double random01)
{
    if (retries_done < 0) {
        retries_done = 0;
    }
    double base = retries_done >= 5 ? 8000.0 : fmin(500.0 * (double)(1 << retries_done), 8000.0);
    if (random01 < 0 || random01 >= 1) {
        random01 = 0;
    }
    return (int64_t)(base * (1.0 - 0.25 * random01));
}

/* A finite number made of the whole string (surrounding blanks allowed), else NAN. */
static double parse_number(const char *s)
{
    char *end = NULL;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (*s == '\0') {
        return NAN;
    }
    errno = 0;
    double v = strtod(s, &end);
    while (end != NULL && isspace((unsigned char)*end)) {
        end++;
    }
    if (errno != 0 || end == NULL || *end != '\0' || !isfinite(v)) {
        return NAN;
    }
    return v;
}

static int64_t within_cap(double ms)
{
    if (isnan(ms) || ms <= 0 || ms > CGW_RETRY_AFTER_MAX_MS) {
        return -1;
    }
    return (int64_t)ceil(ms); /* 0.4 ms is a (tiny) wait, not "none" */
}

int64_t cgw_anthropic_retry_after_ms(const char *retry_after_ms, const char *retry_after,
                                     int64_t now)
{
    /* As in the Python SDK: a parsable retry-after-ms decides alone, even when out of range. */
    double ms = retry_after_ms != NULL ? parse_number(retry_after_ms) : NAN;
    if (!isnan(ms)) {
        return within_cap(ms);
    }
    if (retry_after == NULL) {
        return -1;
    }
    double secs = parse_number(retry_after);
    if (!isnan(secs)) {
        return within_cap(secs * 1000.0);
    }
    /* An HTTP date ("Wed, 21 Oct 2015 07:28:00 GMT"); curl_getdate parses RFC 9110 forms. */
    time_t when = curl_getdate(retry_after, NULL);
    if (when == (time_t)-1) {
        return -1;
    }
    return within_cap(((double)when - (double)now) * 1000.0);
}
