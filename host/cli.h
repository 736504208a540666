/*
 * cli.h - command-line subcommands that plugins register (api->cli_register,
 * ABI 2.1): `upesi -c DIR bayes learn ...`.  The host knows no plugin by
 * name; main asks this table.
 */
#ifndef UPESI_CLI_H
#define UPESI_CLI_H

#include "config.h"
#include "upesi/plugin.h"

int up_cli_register(upesi_ctx *ctx, const char *command,
                    upesi_cli_fn fn, const char *usage, void *arg);
/* Is command a plugin's subcommand?  1 or 0. */
int up_cli_has(const char *command);
/* Run it against cfg: the plugin's exit status, or 2 when the plugin that
 * registered it is not in cfg's conf/plugins. */
int up_cli_run(const up_config *cfg, int argc, char **argv);
/* api->cli_wait: run the command's loop until *done (-EINVAL when no
 * command runs). */
int up_cli_wait(volatile int *done);
/* One "upesi [-c DIR] <usage>" line per command (`upesi plugins`). */
void up_cli_usage(FILE *out);

#endif
