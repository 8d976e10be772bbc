#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/buf.h"
#include "mock_proc.h"

extern char **environ;

/* Reads one line from fd, a byte at a time so nothing after it is consumed. */
static void read_line(int fd, char *line, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && read(fd, line + n, 1) == 1 && line[n] != '\n') {
        n++;
    }
    line[n] = '\0';
}

pid_t cgw_test_mock_spawn(const char *bin, const char *opt, const char *val, char *base,
                          size_t cap)
{
    int out[2];
    pid_t pid = -1;
    if (pipe(out) != 0) {
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {(char *)bin, (char *)"mock-api", (char *)"--listen", (char *)"127.0.0.1:0",
                    (char *)opt, (char *)val, NULL};
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char line[256];
    line[0] = '\0';
    if (rc == 0) {
        read_line(out[0], line, sizeof(line));
    }
    close(out[0]);
    const char *addr = strstr(line, "listening on ");
    if (rc != 0 || addr == NULL) {
        cgw_test_mock_kill(rc == 0 ? pid : -1);
        return -1;
    }
    snprintf(base, cap, "http://%s", addr + strlen("listening on "));
    return pid;
}

void cgw_test_mock_kill(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

static size_t collect(char *p, size_t sz, size_t n, void *arg)
{
    return cgw_buf_append(arg, p, sz * n) == 0 ? sz * n : 0;
}

json_t *cgw_test_mock_http(const char *base, const char *path, const char *post_body,
                           long *status)
{
    char url[512];
    cgw_buf_t b = CGW_BUF_INIT;
    snprintf(url, sizeof(url), "%s%s", base, path);
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    if (post_body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, post_body);
    }
    CURLcode rc = curl_easy_perform(e);
    *status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    }
    curl_easy_cleanup(e);
    json_t *v = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    cgw_buf_free(&b);
    return v;
}
