/*
 * cli.c - the table of plugins' command-line subcommands (see cli.h).
 *
 * Entries live for the life of the process, like the control commands.
 * Fails with -EINVAL for a bad or reserved name, -EEXIST for a name
 * taken, -ENOMEM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "plugin_loader.h"
#include "store.h"

typedef struct cli_cmd {
    char name[32];
    char *usage;
    const up_plugin_mod *mod;
    upesi_cli_fn fn;
    void *arg;
    struct cli_cmd *next;
} cli_cmd;

static cli_cmd *commands;

/* Words main itself answers, never a plugin's. */
static const char *const reserved[] = {"stat", "release", "plugins",
                                       "config", NULL};

static cli_cmd *find(const char *command)
{
    for (cli_cmd *c = commands; c; c = c->next)
        if (strcmp(c->name, command) == 0)
            return c;
    return NULL;
}

int up_cli_register(upesi_ctx *ctx, const char *command,
                    upesi_cli_fn fn, const char *usage, void *arg)
{
    size_t len = command ? strlen(command) : 0;
    if (fn == NULL || ctx == NULL || len == 0 || len >= 32)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!((command[i] >= 'a' && command[i] <= 'z') ||
              (command[i] >= '0' && command[i] <= '9') ||
              command[i] == '-' || command[i] == '_'))
            return -EINVAL;
    for (int i = 0; reserved[i]; i++)
        if (strcmp(reserved[i], command) == 0)
            return -EINVAL;
    if (find(command))
        return -EEXIST;
    cli_cmd *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    memcpy(c->name, command, len + 1);
    c->usage = strdup(usage ? usage : command);
    if (c->usage == NULL) {
        free(c);
        return -ENOMEM;
    }
    c->mod = ctx;
    c->fn = fn;
    c->arg = arg;
    cli_cmd **tail = &commands;
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;
    return 0;
}

int up_cli_has(const char *command)
{
    return command && find(command) != NULL;
}

/* The loop of a running command: where the store answers. */
static uv_loop_t *cli_loop;

static void keep_alive(uv_timer_t *t)
{
    (void)t;
}

int up_cli_wait(volatile int *done)
{
    if (cli_loop == NULL || done == NULL)
        return -EINVAL;
    /* the store's own handles do not hold a loop open (a worker's
     * listeners do): this timer does while we wait */
    uv_timer_t keep;
    uv_timer_init(cli_loop, &keep);
    uv_timer_start(&keep, keep_alive, 1000, 1000);
    while (!*done)
        uv_run(cli_loop, UV_RUN_ONCE);
    uv_timer_stop(&keep);
    uv_close((uv_handle_t *)&keep, NULL);
    uv_run(cli_loop, UV_RUN_NOWAIT);
    return 0;
}

static int run_with_loop(const up_config *cfg, cli_cmd *c, void *settings,
                         int argc, char **argv)
{
    static uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "upesi: %s: cannot make an event loop\n", argv[0]);
        return 1;
    }
    cli_loop = &loop;
    /* a worker's store, without the sweep of worker 0 */
    up_store_params sp = {.url = cfg->store,
                          .timeout_ms = (uint64_t)cfg->store_timeout,
                          .size = cfg->store_size, .worker_index = -1};
    up_store_worker_start(&loop, &sp);
    int rc = c->fn(settings, argc, argv, c->arg);
    up_store_worker_stop();
    uv_run(&loop, UV_RUN_NOWAIT);
    cli_loop = NULL;
    uv_loop_close(&loop);
    return rc;
}

int up_cli_run(const up_config *cfg, int argc, char **argv)
{
    cli_cmd *c = find(argv[0]);
    if (c == NULL)
        return 2;
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (cfg->plugins[i].mod == c->mod)
            return run_with_loop(cfg, c, cfg->plugins[i].settings, argc,
                                 argv);
    fprintf(stderr, "upesi: %s: plugin %s is not in conf/plugins\n",
            argv[0], c->mod->name);
    return 2;
}

void up_cli_usage(FILE *out)
{
    if (commands)
        fprintf(out, "commands:\n");
    for (cli_cmd *c = commands; c; c = c->next)
        fprintf(out, "  upesi [-c DIR] %s   (%s)\n", c->usage, c->mod->name);
}
