/* A `claude-gateway mock-api` child process for tests and benchmarks (no cmocka here, so the
 * benchmarks link it too). */
#ifndef CGW_TEST_MOCK_PROC_H
#define CGW_TEST_MOCK_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Starts `bin mock-api --listen 127.0.0.1:0 [opt val]` (opt NULL: no extra option), waits for
 * its "listening on HOST:PORT" line and writes "http://HOST:PORT" into base. Returns the pid,
 * or -1 (nothing left running). */
pid_t cgw_test_mock_spawn(const char *bin, const char *opt, const char *val, char *base,
                          size_t cap);

/* SIGTERM, then reaps it. pid <= 0 is ignored. */
void cgw_test_mock_kill(pid_t pid);

/* Blocking HTTP to one of the mock's control endpoints (GET, or POST when post_body is not
 * NULL). Returns the parsed JSON answer (new reference) or NULL; *status gets the HTTP status
 * (0 when the request failed). */
json_t *cgw_test_mock_http(const char *base, const char *path, const char *post_body,
                           long *status);

#endif
