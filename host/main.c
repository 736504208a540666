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
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "control.h"
#include "dns.h"
#include "log.h"
#include "plugin_loader.h"
#include "server.h"
#include "stats.h"
#include "version.h"

#ifndef UPESI_CONF_DIR
#define UPESI_CONF_DIR "/etc/upesi"
#endif

/* Sessions get this long to finish after SIGTERM. */
#define UP_SHUTDOWN_GRACE_MS 30000

static up_server server;
static uv_signal_t sig_hup, sig_term, sig_int;
static uv_timer_t shutdown_timer;
static uint64_t shutdown_started;
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

static void on_hup(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    up_log(NULL, UPESI_LOG_NOTICE, "SIGHUP: reloading %s", conf_dir);
    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "reload failed; keeping the running "
               "configuration");
        up_stats_add("Upesi.Reload.Failed", 1);
        return;
    }
    up_log_set_level(cfg->log_level);
    up_dns_configure(&(up_dns_settings){ cfg->dns_servers, cfg->dns_timeout,
                                         cfg->dns_cache_size });
    up_server_reload(&server, cfg);
    up_config_unref(cfg);
    up_stats_add("Upesi.Reload.Done", 1);
    up_log(NULL, UPESI_LOG_NOTICE, "reload done");
}

static void on_shutdown_tick(uv_timer_t *timer)
{
    if (server.sessions == 0 ||
        uv_now(timer->loop) - shutdown_started > UP_SHUTDOWN_GRACE_MS) {
        if (server.sessions)
            up_log(NULL, UPESI_LOG_WARNING, "shutdown: %d sessions still "
                   "open after %ds; closing", server.sessions,
                   UP_SHUTDOWN_GRACE_MS / 1000);
        uv_stop(timer->loop);
    }
}

static void on_term(uv_signal_t *handle, int signum)
{
    if (server.stopping) {
        uv_stop(handle->loop);
        return;
    }
    up_log(NULL, UPESI_LOG_NOTICE, "%s: stopping (no new sessions; open "
           "sessions may finish)", signum == SIGINT ? "SIGINT" : "SIGTERM");
    up_server_stop_listening(&server);
    up_control_close();
    shutdown_started = uv_now(handle->loop);
    uv_timer_init(handle->loop, &shutdown_timer);
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 0, 100);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    up_log(NULL, UPESI_LOG_ERR, "cannot create %s: %s", path,
           strerror(errno));
    return -1;
}

static int run_server(up_config *cfg)
{
    if (cfg->workers != 1)
        up_log(NULL, UPESI_LOG_WARNING, "workers = %d: this build runs one "
               "worker", cfg->workers);
    if (make_dir(cfg->spool_dir) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    if (up_server_listen(&server, loop, cfg) != 0)
        return 1;
    if (up_control_listen(loop, cfg->control_socket) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "cannot listen on control socket %s",
               cfg->control_socket);
        return 1;
    }
    if (up_dns_init(loop, &(up_dns_settings){ cfg->dns_servers,
                                              cfg->dns_timeout,
                                              cfg->dns_cache_size }) != 0)
        return 1;
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_term, SIGINT);
    up_log(NULL, UPESI_LOG_NOTICE, "upesi started (pid %d, conf %s)",
           (int)getpid(), conf_dir);
    uv_run(loop, UV_RUN_DEFAULT);
    up_dns_shutdown();
    up_control_close();
    up_log(NULL, UPESI_LOG_NOTICE, "upesi stopped");
    return 0;
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
        rc = run_server(cfg);
    }
    up_config_unref(cfg);
    up_plugin_unload_all();
    return rc;
}
