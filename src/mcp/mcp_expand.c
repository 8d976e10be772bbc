/* ${VAR} and ${VAR:-default} expansion for MCP server entries (rules in cgw/mcp_config.h).
 *
 * Claude Code documents exactly these two forms; it does not expand bare $VAR, so neither do
 * we (a literal "$1" or "$HOME" in an argument must survive). A set-but-empty variable keeps
 * its empty value, matching Claude Code's `process.env[name] ?? default` rather than the
 * shell's ":-" (which would also replace an empty value). */
#include <stdlib.h>
#include <string.h>

#include "cgw/mcp_config.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "mcp/mcp_config_int.h"

const char *cgw__mcp_process_getenv(const char *name, void *user)
{
    (void)user;
    return getenv(name);
}

static bool name_valid(const char *s, size_t len)
{
    if (len == 0 ||
        !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return true;
}

/* Expands one "${...}" whose inner text is body[0..len). `at` is the offset of the "${" for
 * error reporting. */
static int expand_one(const char *body, size_t len, size_t at, cgw_mcp_getenv_fn fn, void *user,
                      cgw_buf_t *out, cgw_error_t *err)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] == ':' && body[i + 1] == '-') {
            sep = body + i;
            break;
        }
    }
    size_t name_len = sep != NULL ? (size_t)(sep - body) : len;
    if (!name_valid(body, name_len)) {
        if (err != NULL) {
            err->column = (int)at + 1;
        }
        return cgw_error_set(err, CGW_ECONFIG, "invalid variable name \"${%.*s}\"", (int)len, body);
    }
    char name[256];
    if (name_len >= sizeof(name)) {
        if (err != NULL) {
            err->column = (int)at + 1;
        }
        return cgw_error_set(err, CGW_ECONFIG, "variable name too long in \"${\" at offset %zu",
                             at);
    }
    memcpy(name, body, name_len);
    name[name_len] = '\0';
    const char *value = fn(name, user);
    if (value != NULL) {
        return cgw_buf_append_str(out, value);
    }
    if (sep != NULL) {
        return cgw_buf_append(out, sep + 2, len - name_len - 2);
    }
    if (err != NULL) {
        err->column = (int)at + 1;
    }
    return cgw_error_set(err, CGW_ECONFIG, "environment variable %s is not set and has no default",
                         name);
}

int cgw_mcp_expand_vars(const char *in, cgw_mcp_getenv_fn getenv_fn, void *user, char **out,
                        cgw_error_t *err)
{
    if (in == NULL || out == NULL) {
        return cgw_error_set(err, CGW_EINVAL, "cgw_mcp_expand_vars: NULL argument");
    }
    cgw_mcp_getenv_fn fn = getenv_fn != NULL ? getenv_fn : cgw__mcp_process_getenv;
    cgw_buf_t b = CGW_BUF_INIT;
    int rc = cgw_buf_reserve(&b, strlen(in));
    const char *p = in;
    while (rc == CGW_OK) {
        const char *start = strstr(p, "${");
        const char *end = start != NULL ? strchr(start + 2, '}') : NULL;
        if (end == NULL) {
            /* No (complete) reference left: an unterminated "${" stays as written. */
            rc = cgw_buf_append_str(&b, p);
            break;
        }
        rc = cgw_buf_append(&b, p, (size_t)(start - p));
        if (rc == CGW_OK) {
            rc = expand_one(start + 2, (size_t)(end - start - 2), (size_t)(start - in), fn, user,
                            &b, err);
        }
        p = end + 1;
    }
    if (rc != CGW_OK) {
        cgw_buf_free(&b);
        if (rc == CGW_ENOMEM) {
            cgw_error_set(err, rc, "out of memory expanding variables");
        }
        return rc;
    }
    *out = cgw_buf_steal(&b, NULL);
    return *out != NULL ? CGW_OK : cgw_error_set(err, CGW_ENOMEM, "out of memory");
}
