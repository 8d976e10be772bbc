#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cgw/error.h"

#define CGW_ERR_CASE_MSG_(name, value, msg)                                                        \
    case CGW_##name:                                                                               \
        return msg;
#define CGW_ERR_CASE_NAME_(name, value, msg)                                                       \
    case CGW_##name:                                                                               \
        return #name;

const char *cgw_strerror(int code)
{
    switch (code) {
    case CGW_OK:
        return "success";
        CGW_ERRNO_MAP(CGW_ERR_CASE_MSG_)
        CGW_OWN_ERROR_MAP(CGW_ERR_CASE_MSG_)
    default:
        return "unknown error";
    }
}

const char *cgw_err_name(int code)
{
    switch (code) {
    case CGW_OK:
        return "OK";
        CGW_ERRNO_MAP(CGW_ERR_CASE_NAME_)
        CGW_OWN_ERROR_MAP(CGW_ERR_CASE_NAME_)
    default:
        return "UNKNOWN";
    }
}

void cgw_error_clear(cgw_error_t *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}

int cgw_error_set(cgw_error_t *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}
