/* Helpers shared by the tests: where things are, reading files, running the loop with a
 * deadline, picking a free loopback port. */
#ifndef CGW_TESTUTIL_H
#define CGW_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cgw.h"

/* ../shared of the repository (env CGW_SHARED_DIR wins). */
const char *cgw_test_shared_dir(void);
/* The repository root, the build folder, the claude-gateway binary, the npm cache folder. */
const char *cgw_test_source_dir(void);
const char *cgw_test_binary_dir(void);
const char *cgw_test_gateway_bin(void);
const char *cgw_test_npm_dir(void);

/* Reads a whole file; returns a malloc'd NUL-terminated buffer (free with free()) or NULL. */
char *cgw_test_read_file(const char *path, size_t *len);

/* Runs the loop until *flag becomes non-zero or timeout_ms passes. Returns 1 if the flag was
 * set, 0 on timeout. */
int cgw_test_run_until(cgw_ctx_t *ctx, const int *flag, int timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int cgw_test_free_port(void);

/* A fresh context with logging at WARN (or CGW_TEST_LOG=debug). */
cgw_ctx_t *cgw_test_ctx_new(void);

#endif
