/* claude-gateway: one binary, several subcommands. This file only dispatches. */
#include <stdio.h>
#include <string.h>

#include "cgw.h"
#include "cli/cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"version", cgw__cmd_version, "print the version and exit"},
    {"mock-api", cgw__cmd_mock_api, "run a scripted Anthropic-compatible API server"},
    {"tools", cgw__cmd_tools, "start the MCP servers and list their tools"},
    {"run", cgw__cmd_run, "run the agent loop on one prompt, print its events"},
    {"serve", cgw__cmd_serve, "run the HTTP gateway (sessions, SSE, approvals, metrics)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: claude-gateway <command> [options]\n\n"
                 "Streaming Claude agents with MCP tools (libcgw %s).\n\ncommands:\n",
            cgw_version());
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nRun 'claude-gateway <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return cgw__cmd_version(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "claude-gateway: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
