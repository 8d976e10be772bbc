/* Subcommands of the claude-gateway binary. Each lives in src/cli/cmd_<name>.c and gets
 * argv with argv[0] set to the subcommand's name. Returns the process exit status. */
#ifndef CGW_CLI_H
#define CGW_CLI_H

int cgw__cmd_version(int argc, char **argv);
int cgw__cmd_mock_api(int argc, char **argv);
int cgw__cmd_tools(int argc, char **argv);
int cgw__cmd_serve(int argc, char **argv);
int cgw__cmd_run(int argc, char **argv);

#endif
