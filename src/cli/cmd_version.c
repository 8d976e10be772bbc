#include <stdio.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "cgw.h"
#include "cli/cli.h"

int cgw__cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("claude-gateway %s (libevent %s, %s, jansson %s, sqlite %s)\n", cgw_version(),
           event_get_version(), curl_version(), JANSSON_VERSION, sqlite3_libversion());
    return 0;
}
