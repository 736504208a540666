/*
 * worker.c - one worker process (see worker.h).
 *
 * The worker owns its event loop: the listening sockets and the control
 * socket the supervisor bound (every worker waits on the same ones; the
 * kernel hands each connection to one), the resolver, and its signal
 * handlers: SIGUSR1 (from the supervisor, which has checked it) reloads
 * the configuration into a new generation; SIGHUP is passed to the
 * supervisor (an admin signalled the wrong pid).
 *
 * SIGTERM (docs/admin.md, "Stopping"): the listeners and the control
 * socket are closed at once; a session with no transaction in progress
 * gets 421 4.3.2 and is closed at once, one in a transaction finishes it
 * and is then closed the same way (session.c); sessions still open after
 * stop_timeout get 421 4.3.2 and are closed, and UP_CUT_GRACE_MS later
 * the loop stops whatever is left.  Then the plugins' stop callbacks run
 * and get up to UP_STOP_PLUGINS_MS of loop for what they start (a QUIT
 * and its 221) before the process exits.  A second SIGTERM stops the
 * loop at once, and the callbacks run without that wait.
 *
 * Fails: a listener that cannot be served ends the worker with status 1
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
#include "notify.h"
#include "plugins_list.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "worker.h"

/* Sessions cut at stop_timeout get this long to have their 421 written
 * and be closed. */
#define UP_CUT_GRACE_MS 500
/* Then the plugins' stop callbacks this long for their goodbyes: the
 * supervisor's margin past stop_timeout (5 s) covers both. */
#define UP_STOP_PLUGINS_MS 1000

static up_server server;
static uv_signal_t sig_hup, sig_reload, sig_term, sig_int;
static uv_timer_t shutdown_timer;
static uint64_t shutdown_started;
static uint64_t sessions_cut_at;    /* 0 = stop_timeout not reached yet */
static int stop_now;                /* a second SIGTERM: no more waiting */
static uv_check_t stop_check;
static uv_timer_t stop_timer;
static const char *worker_conf_dir;

static up_store_params store_params(const up_config *cfg, int index)
{
    up_store_params p = { .url = cfg->store, .timeout_ms = (uint64_t)cfg->store_timeout,
                          .size = cfg->store_size, .worker_index = index };
    return p;
}

void up_worker_sessions_stat(int index, char *name, size_t len)
{
    snprintf(name, len, "Upesi.Worker.%d.Sessions", index);
}

/* SIGHUP to a worker: an admin who took a worker's pid from a session's
 * log line.  Reloading only this worker would leave the others and the
 * supervisor (which starts later workers) on the old configuration, so
 * the signal is passed to the supervisor, which checks the configuration
 * and tells every worker (SIGUSR1). */
static void on_hup(uv_signal_t *handle, int signum)
{
    (void)handle;
    (void)signum;
    pid_t sup = getppid();
    if (sup <= 1 || kill(sup, SIGHUP) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "SIGHUP to worker %d (pid %d): cannot "
               "pass it to the supervisor (pid %d): %s", server.worker_index,
               (int)getpid(), (int)sup, strerror(errno));
        return;
    }
    up_log(NULL, UPESI_LOG_NOTICE, "SIGHUP to worker %d (pid %d): passed to "
           "the supervisor (pid %d), which reloads every worker; signal the "
           "supervisor next time", server.worker_index, (int)getpid(),
           (int)sup);
}

/* SIGUSR1 from the supervisor: it has checked the new configuration. */
static void on_reload(uv_signal_t *handle, int signum)
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
        up_notify_worker_reloaded();
        return;
    }
    up_log_set_level(cfg->log_level);
    up_dns_configure(&(up_dns_settings){ cfg->dns_servers, cfg->dns_timeout,
                                         cfg->dns_cache_size });
    up_store_params sp = store_params(cfg, server.worker_index);
    up_store_reload(&sp);
    up_server_reload(&server, cfg);
    up_config_commit(cfg);
    up_config_unref(cfg);
    up_log(NULL, UPESI_LOG_NOTICE, "reload done");
    up_notify_worker_reloaded();
}

static void on_shutdown_tick(uv_timer_t *timer)
{
    uint64_t now = uv_now(timer->loop);
    double limit_ms = server.config->stop_timeout * 1000;
    if (server.sessions == 0) {
        uv_stop(timer->loop);
    } else if (sessions_cut_at == 0 &&
               (double)(now - shutdown_started) >= limit_ms) {
        up_log(NULL, UPESI_LOG_WARNING, "shutdown: %d session%s still in a "
               "transaction after stop_timeout %gs; closing", server.sessions,
               server.sessions == 1 ? "" : "s", server.config->stop_timeout);
        sessions_cut_at = now;
        up_server_cut_sessions(&server);
    } else if (sessions_cut_at && now - sessions_cut_at >= UP_CUT_GRACE_MS) {
        up_log(NULL, UPESI_LOG_WARNING, "shutdown: %d session%s not closed "
               "%d ms after their 421; exiting", server.sessions,
               server.sessions == 1 ? "" : "s", UP_CUT_GRACE_MS);
        uv_stop(timer->loop);
    }
}

static void on_term(uv_signal_t *handle, int signum)
{
    if (server.stopping) {
        stop_now = 1;
        uv_stop(handle->loop);
        return;
    }
    up_log(NULL, UPESI_LOG_INFO, "%s: worker stopping (no new sessions; "
           "transactions in progress may finish within stop_timeout %gs)",
           signum == SIGINT ? "SIGINT" : "SIGTERM",
           server.config->stop_timeout);
    up_server_stop_listening(&server);
    up_control_close();
    up_server_stop_sessions(&server);   /* the idle ones close now */
    shutdown_started = uv_now(handle->loop);
    uv_timer_init(handle->loop, &shutdown_timer);
    /* 0: a worker with nothing in progress stops on the next turn */
    uv_timer_start(&shutdown_timer, on_shutdown_tick, 0, 50);
}

static void on_stop_check(uv_check_t *check)
{
    if (up_api_watches_open() == 0)
        uv_stop(check->loop);
}

static void on_stop_timeout(uv_timer_t *timer)
{
    up_log(NULL, UPESI_LOG_NOTICE, "shutdown: plugins still watch %d "
           "descriptors after %d ms; exiting", up_api_watches_open(),
           UP_STOP_PLUGINS_MS);
    uv_stop(timer->loop);
}

/* The loop has stopped for good: the plugins' worker_stop callbacks,
 * then the loop again until their descriptor watches are gone (they
 * waited for a 221, a close) or UP_STOP_PLUGINS_MS passed.  The check
 * runs after every poll, so the exit follows the last unwatch at once. */
static void stop_plugins(uv_loop_t *loop)
{
    if (!server.stopping)
        return;                 /* only a stop stops the loop */
    uv_timer_stop(&shutdown_timer);
    if (up_plugin_stop_all() == 0 || stop_now ||
        up_api_watches_open() == 0)
        return;
    uv_check_init(loop, &stop_check);
    uv_check_start(&stop_check, on_stop_check);
    uv_timer_init(loop, &stop_timer);
    uv_timer_start(&stop_timer, on_stop_timeout, UP_STOP_PLUGINS_MS, 0);
    uv_run(loop, UV_RUN_DEFAULT);
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

static void ctl_plugins_line(const char *text, void *arg)
{
    up_control_write(arg, "%s\n", text);
}

/* control "plugins": the chain this worker runs now (the live one, after
 * the reloads it took) */
static void ctl_plugins(const char *args, up_control_reply *reply)
{
    (void)args;
    up_plugins_list(server.config, ctl_plugins_line, reply);
}

int up_worker_run(up_config *cfg, const char *conf_dir, int index,
                  int control_fd, const up_listen_set *listeners)
{
    worker_conf_dir = conf_dir;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    server.worker_index = index;
    up_worker_sessions_stat(index, server.sessions_stat,
                            sizeof server.sessions_stat);
    if (up_server_listen(&server, loop, cfg, listeners) != 0)
        return 1;
    if (drop_privileges(cfg) != 0)
        return 1;
    if (up_control_listen_fd(loop, control_fd) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "worker %d: cannot serve the control "
               "socket", index);
        return 1;
    }
    up_control_register("plugins", ctl_plugins);
    if (up_dns_init(loop, &(up_dns_settings){ cfg->dns_servers,
                                              cfg->dns_timeout,
                                              cfg->dns_cache_size }) != 0)
        return 1;
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    uv_signal_init(loop, &sig_reload);
    uv_signal_start(&sig_reload, on_reload, SIGUSR1);
    /* blocked since fork (supervisor.c): pending ones are handled now */
    sigset_t hup_usr1;
    sigemptyset(&hup_usr1);
    sigaddset(&hup_usr1, SIGHUP);
    sigaddset(&hup_usr1, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &hup_usr1, NULL);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_term, SIGINT);
    /* the store after the fork and as the final user: LMDB forbids an
     * environment carried across fork, and its files belong to `user` */
    up_store_params sp = store_params(cfg, index);
    up_store_worker_start(loop, &sp);
    up_log(NULL, UPESI_LOG_INFO, "worker %d started (pid %d)", index,
           (int)getpid());
    /* plugins' background work: the generation was committed in the
     * supervisor before the fork */
    up_api_set_loop(loop);
    up_plugin_set_running();
    for (size_t i = 0; i < cfg->n_plugins; i++)
        up_plugin_start(cfg->plugins[i].mod);
    up_notify_worker_listening();
    uv_run(loop, UV_RUN_DEFAULT);
    stop_plugins(loop);
    up_store_worker_stop();
    uv_run(loop, UV_RUN_NOWAIT);    /* the store's handles finish closing */
    up_dns_shutdown();
    up_control_close();
    up_log(NULL, UPESI_LOG_INFO, "worker %d stopped", index);
    return 0;
}
