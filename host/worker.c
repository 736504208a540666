/*
 * worker.c - one worker process (see worker.h).
 *
 * The worker owns its event loop: listeners bound with SO_REUSEPORT (the
 * kernel spreads connections over workers), the shared control socket,
 * the resolver, and its signal handlers: SIGHUP reloads the configuration
 * into a new generation; SIGTERM stops accepting and lets open sessions
 * finish for up to UP_SHUTDOWN_GRACE_MS.
 *
 * Fails: a listener that cannot be bound ends the worker with status 1
 * (the supervisor logs it and retries with backoff); a failed reload is
 * logged and the running generation stays.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "control.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

/* Sessions get this long to finish after SIGTERM. */
#define UP_SHUTDOWN_GRACE_MS 30000

static up_server server;
static uv_signal_t sig_hup, sig_term, sig_int;
static uv_timer_t shutdown_timer;
static uint64_t shutdown_started;
static const char *worker_conf_dir;

void up_worker_sessions_stat(int index, char *name, size_t len)
{
    snprintf(name, len, "Upesi.Worker.%d.Sessions", index);
}

static void on_hup(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    up_log(NULL, UPESI_LOG_INFO, "SIGHUP: worker reloading %s",
           worker_conf_dir);
    up_config *cfg = up_config_load(worker_conf_dir);
    if (cfg == NULL) {
        /* the supervisor checked this configuration: only a race with
         * an edit gets here */
        up_log(NULL, UPESI_LOG_ERR, "worker reload failed; keeping the "
               "running configuration");
        up_stats_add("Upesi.Reload.WorkerFailed", 1);
        return;
    }
    up_log_set_level(cfg->log_level);
    up_dns_configure(&(up_dns_settings){ cfg->dns_servers, cfg->dns_timeout,
                                         cfg->dns_cache_size });
    up_server_reload(&server, cfg);
    up_config_unref(cfg);
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
    up_log(NULL, UPESI_LOG_INFO, "%s: worker stopping (no new sessions; "
           "open sessions may finish)", signum == SIGINT ? "SIGINT"
                                                         : "SIGTERM");
    up_server_stop_listening(&server);
    up_control_close();
    shutdown_started = uv_now(handle->loop);
    uv_timer_init(handle->loop, &shutdown_timer);
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 0, 100);
}

/* Bound to its ports, a worker started as root becomes `user` for good:
 * sessions, plugins and Lua never run as root. */
static int drop_privileges(const up_config *cfg)
{
    if (geteuid() != 0 || cfg->uid == (uid_t)-1)
        return 0;
    if (setgroups(1, &cfg->gid) != 0 || setgid(cfg->gid) != 0 ||
        setuid(cfg->uid) != 0) {
        up_log(NULL, UPESI_LOG_CRIT, "cannot become user %s: %s", cfg->user,
               strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {       /* must be impossible now */
        up_log(NULL, UPESI_LOG_CRIT, "privileges could not be dropped");
        return -1;
    }
    return 0;
}

int up_worker_run(up_config *cfg, const char *conf_dir, int index,
                  int control_fd)
{
    worker_conf_dir = conf_dir;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    server.worker_index = index;
    up_worker_sessions_stat(index, server.sessions_stat,
                            sizeof server.sessions_stat);
    if (up_server_listen(&server, loop, cfg) != 0)
        return 1;
    if (drop_privileges(cfg) != 0)
        return 1;
    if (up_control_listen_fd(loop, control_fd) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "worker %d: cannot serve the control "
               "socket", index);
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
    up_log(NULL, UPESI_LOG_INFO, "worker %d started (pid %d)", index,
           (int)getpid());
    up_api_worker_started();    /* plugins' background work */
    uv_run(loop, UV_RUN_DEFAULT);
    up_dns_shutdown();
    up_control_close();
    up_log(NULL, UPESI_LOG_INFO, "worker %d stopped", index);
    return 0;
}
