/*
 * main.c - the upesi command line (DESIGN.md section 5).
 *
 *   upesi [-c DIR]                  run in the foreground
 *   upesi [-c DIR] -t               check the configuration and exit
 *   upesi [-c DIR] stat [PREFIX]    statistics of the running server
 *
 * Fails: a configuration error exits 1 after logging every error with its
 * file and line; a running server keeps its configuration when a SIGHUP
 * reload fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "plugin_loader.h"
#include "stats.h"
#include "version.h"
#include "worker.h"

#ifndef UPESI_CONF_DIR
#define UPESI_CONF_DIR "/etc/upesi"
#endif

static const char *conf_dir = "conf";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: upesi [-c DIR]                run the server\n"
            "       upesi [-c DIR] -t             check the configuration\n"
            "       upesi [-c DIR] stat [PREFIX]  show statistics\n"
            "  -c DIR  configuration directory (default: %s)\n",
            UPESI_CONF_DIR);
}

int main(int argc, char **argv)
{
    int check_only = 0, opt;
    if (access("conf/smtp.ini", F_OK) != 0)
        conf_dir = UPESI_CONF_DIR;
    while ((opt = getopt(argc, argv, "+c:thV")) != -1) {
        switch (opt) {
        case 'c':
            conf_dir = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("upesi %s (plugin ABI %d.%d)\n", UPESI_VERSION,
                   UPESI_ABI_MAJOR, UPESI_ABI_MINOR);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *command = optind < argc ? argv[optind] : NULL;
    if (command && strcmp(command, "stat") != 0) {
        fprintf(stderr, "upesi: unknown command '%s'\n", command);
        usage(stderr);
        return 2;
    }
    up_log_init("upesi", UPESI_LOG_INFO, 0);
    if (up_stats_init(16384) != 0)
        up_fatal("cannot create the statistics table");

    if (command) {
        char request[300];
        snprintf(request, sizeof request, "stat%s%s",
                 optind + 1 < argc ? " " : "",
                 optind + 1 < argc ? argv[optind + 1] : "");
        char *sock = up_config_control_socket(conf_dir);
        int rc = sock && up_control_request(sock, request) == 0 ? 0 : 1;
        free(sock);
        return rc;
    }

    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL) {
        fprintf(stderr, "upesi: configuration %s has errors\n", conf_dir);
        return 1;
    }
    up_log_set_level(cfg->log_level);
    int rc = 0;
    if (check_only) {
        fprintf(stderr, "upesi: configuration %s ok (%zu plugins)\n",
                conf_dir, cfg->n_plugins);
    } else {
        rc = up_supervisor_run(cfg, conf_dir);
    }
    up_config_unref(cfg);
    up_plugin_unload_all();
    return rc;
}
