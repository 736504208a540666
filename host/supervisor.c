/*
 * supervisor.c - start the workers, restart the ones that die, pass on
 * signals (see worker.h).
 *
 * The supervisor stays small on purpose: no event loop, no sessions, no
 * plugin calls after start.  It waits on a signalfd, so SIGCHLD, SIGHUP and
 * SIGTERM arrive as readable events and never interrupt anything.  A worker
 * is forked from it, so each starts from the configuration and plugins the
 * supervisor loaded, and the shared statistics table is inherited.
 * SIGHUP: the supervisor checks the configuration and, if it loads, sends
 * its workers SIGUSR1 (each reloads); a worker that gets SIGHUP itself
 * passes it here, so every worker and later ones share one generation.
 *
 * Restart policy: a worker that dies is started again after a backoff that
 * doubles from 1 s up to 30 s while workers keep dying young, and goes back
 * to 1 s once a worker lived a minute (a crash loop must not spin the CPU,
 * one crash must not cost a minute).
 *
 * The supervisor binds the listening sockets and the control socket
 * before the first fork, and every worker (a restarted one too) serves
 * those same descriptors: no other process can join them (server.c).
 *
 * Fails: if the control socket or a listening address cannot be bound,
 * upesi does not start (exit 1, the address and the reason logged).
 * SIGTERM: the supervisor closes its copies of the listening sockets and
 * of the control socket and removes the socket file at once (a new server
 * may start while this one drains), every worker gets SIGTERM (worker.c:
 * idle sessions end, transactions get stop_timeout); after stop_timeout
 * and a margin the rest get SIGKILL; the supervisor exits 0.
 */
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "server.h"
#include "stats.h"
#include "worker.h"

#define UP_WORKERS_MAX 256
#define UP_BACKOFF_MIN_MS 1000
#define UP_BACKOFF_MAX_MS 30000
#define UP_HEALTHY_MS 60000
/* after SIGTERM, a worker gets stop_timeout and this much more (its
 * plugins' goodbyes, the last 421s) before SIGKILL */
#define UP_STOP_MARGIN_MS 5000

typedef struct worker_slot {
    pid_t pid;                  /* 0 = not running                        */
    uint64_t started_ms;
    uint64_t restart_at_ms;     /* when to start again, 0 = not scheduled */
} worker_slot;

static worker_slot slots[UP_WORKERS_MAX];
static int n_workers;
static uint64_t backoff_ms = UP_BACKOFF_MIN_MS;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST)
        return 0;
    up_log(NULL, UPESI_LOG_ERR, "cannot create %s: %s", path,
           strerror(errno));
    return -1;
}

static pid_t supervisor_pid;

static up_listen_set listeners;  /* bound here, served by every worker */

static void start_worker(int i, up_config *cfg, const char *conf_dir,
                         int control_fd, const sigset_t *old_mask)
{
    pid_t pid = fork();
    if (pid < 0) {
        up_log(NULL, UPESI_LOG_ERR, "cannot start worker %d: %s", i,
               strerror(errno));
        slots[i].restart_at_ms = now_ms() + backoff_ms;
        return;
    }
    if (pid == 0) {
        /* a supervisor killed with SIGKILL must not leave orphan workers
         * serving the port with no control socket and no restarts */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != supervisor_pid)
            _exit(0);
        /* HUP and USR1 stay blocked until the worker's loop handles
         * them: a reload asked for in between is delivered then, and
         * does not kill a worker that has no handler yet */
        sigset_t wmask = *old_mask;
        sigaddset(&wmask, SIGHUP);
        sigaddset(&wmask, SIGUSR1);
        sigprocmask(SIG_SETMASK, &wmask, NULL);
        up_notify_worker_start();
        up_metrics_worker_start();
        _exit(up_worker_run(cfg, conf_dir, i, control_fd, &listeners));
    }
    slots[i].pid = pid;
    slots[i].started_ms = now_ms();
    slots[i].restart_at_ms = 0;
}

static void signal_workers(int sig)
{
    for (int i = 0; i < n_workers; i++)
        if (slots[i].pid > 0)
            kill(slots[i].pid, sig);
}

static int workers_alive(void)
{
    int n = 0;
    for (int i = 0; i < n_workers; i++)
        n += slots[i].pid > 0;
    return n;
}

/* A worker ended: log why, clean its statistics, plan its restart. */
static void reap(int stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int i = 0;
        while (i < n_workers && slots[i].pid != pid)
            i++;
        if (i == n_workers)
            continue;
        slots[i].pid = 0;
        char name[64];
        up_worker_sessions_stat(i, name, sizeof name);
        long long open = up_stats_get(name);
        if (open) {             /* its sessions died with it */
            up_stats_add("SMTP.Sessions.Current", -open);
            up_stats_set(name, 0);
        }
        if (stopping)
            continue;
        if (WIFSIGNALED(status))
            up_log(NULL, UPESI_LOG_CRIT, "worker %d (pid %d) killed by "
                   "signal %d (%s)", i, (int)pid, WTERMSIG(status),
                   strsignal(WTERMSIG(status)));
        else
            up_log(NULL, UPESI_LOG_ERR, "worker %d (pid %d) exited with "
                   "status %d", i, (int)pid, WEXITSTATUS(status));
        uint64_t lived = now_ms() - slots[i].started_ms;
        if (lived >= UP_HEALTHY_MS)
            backoff_ms = UP_BACKOFF_MIN_MS;
        slots[i].restart_at_ms = now_ms() + backoff_ms;
        up_log(NULL, UPESI_LOG_NOTICE, "worker %d restarts in %.1fs", i,
               (double)backoff_ms / 1000);
        up_stats_add("Upesi.Workers.Restarts", 1);
        if (lived < UP_HEALTHY_MS && backoff_ms < UP_BACKOFF_MAX_MS)
            backoff_ms = backoff_ms * 2 > UP_BACKOFF_MAX_MS
                             ? UP_BACKOFF_MAX_MS : backoff_ms * 2;
    }
}

static uid_t tree_uid;
static gid_t tree_gid;

static int chown_one(const char *path, const struct stat *st, int type,
                     struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return lchown(path, tree_uid, tree_gid);
}

/* The spool (made by plugins' config checks, run as root) belongs to the
 * workers' account. */
static int chown_tree(const char *path, uid_t uid, gid_t gid)
{
    tree_uid = uid;
    tree_gid = gid;
    return nftw(path, chown_one, 16, FTW_PHYS);
}

/* What the supervisor's loop keeps between signals. */
typedef struct supervisor {
    up_config *current;         /* the generation new workers start from */
    const char *conf_dir;
    const char *control_path;   /* removed at stop */
    int control_fd;             /* -1 once stopping */
    sigset_t old_mask;          /* the mask a worker starts from */
    int stopping;
    uint64_t stop_deadline;     /* SIGKILL to the rest then */
} supervisor;

static int workers_wanted(const up_config *cfg)
{
    int n = cfg->workers;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    return n > UP_WORKERS_MAX ? UP_WORKERS_MAX : n;
}

/* Everything a start can fail on before the first fork: the spool, the
 * control socket, the listening addresses, the workers' ownership of the
 * spool.  The control socket's descriptor, or -1 (logged, all undone). */
static int bind_everything(up_config *cfg)
{
    if (make_dir(cfg->spool_dir) != 0)
        return -1;
    /* the control socket outlives reloads: its path is read at start */
    int control_fd = up_control_bind(cfg->control_socket);
    if (control_fd < 0)
        return -1;
    /* before any fork: a port in use ends the start here, and only our
     * workers ever hold these sockets */
    listeners.shared = n_workers > 1;
    if (up_listen_bind(cfg, &listeners) != 0)
        goto unbind_control;
    if (geteuid() == 0) {
        if (cfg->uid == (uid_t)-1) {
            up_log(NULL, UPESI_LOG_WARNING, "running as root: set user = "
                   "(and group =) in smtp.ini so that workers drop to an "
                   "unprivileged account after binding");
        } else if (chown(cfg->control_socket, cfg->uid, cfg->gid) != 0 ||
                   chown_tree(cfg->spool_dir, cfg->uid, cfg->gid) != 0) {
            /* the workers run as user: they must own the spool and be
             * the ones that answer on the socket (still mode 0600) */
            up_log(NULL, UPESI_LOG_ERR, "cannot hand the spool or control "
                   "socket to user %s: %s", cfg->user, strerror(errno));
            up_listen_close(&listeners);
            goto unbind_control;
        }
    }
    return control_fd;
unbind_control:
    close(control_fd);
    unlink(cfg->control_socket);
    return -1;
}

/* Block the signals the loop reads from a signalfd (old: the mask
 * before, which workers start from).  The signalfd, or -1 (logged). */
static int open_signals(sigset_t *old)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0)
        up_log(NULL, UPESI_LOG_ERR, "signalfd: %s", strerror(errno));
    return sfd;
}

/* Start the workers whose restart is due, SIGKILL the ones still there
 * past the stop deadline; the poll timeout until the next such event,
 * a notify watchdog tick or a metrics deadline (ms). */
static int run_timers(supervisor *sv)
{
    int timeout = 1000;
    uint64_t now = now_ms();
    for (int i = 0; i < n_workers && !sv->stopping; i++)
        if (slots[i].pid == 0 && slots[i].restart_at_ms) {
            if (slots[i].restart_at_ms <= now)
                start_worker(i, sv->current, sv->conf_dir, sv->control_fd,
                             &sv->old_mask);
            else if (slots[i].restart_at_ms - now < (uint64_t)timeout)
                timeout = (int)(slots[i].restart_at_ms - now);
        }
    if (sv->stopping && now >= sv->stop_deadline) {
        up_log(NULL, UPESI_LOG_WARNING, "workers still running %gs "
               "after SIGTERM (stop_timeout %gs); killing them",
               sv->current->stop_timeout + UP_STOP_MARGIN_MS / 1000.0,
               sv->current->stop_timeout);
        signal_workers(SIGKILL);
        sv->stop_deadline = now + UP_STOP_MARGIN_MS;
    }
    int wait = up_notify_tick(now, workers_alive());
    if (wait >= 0 && wait < timeout)
        timeout = wait;
    wait = up_metrics_timeout(now);
    if (wait >= 0 && wait < timeout)
        timeout = wait;
    return timeout;
}

/* SIGHUP: check first, so that a broken configuration reaches no worker.
 * Workers then reload themselves; the supervisor keeps the new
 * generation for workers it starts later. */
static void reload(supervisor *sv)
{
    up_log(NULL, UPESI_LOG_NOTICE, "SIGHUP: reloading %s", sv->conf_dir);
    up_notify_reloading(workers_alive());
    up_config *next = up_config_load(sv->conf_dir);
    if (next == NULL) {
        up_notify_reload_refused();
        up_log(NULL, UPESI_LOG_ERR, "reload failed; keeping the running "
               "configuration");
        up_stats_add("Upesi.Reload.Failed", 1);
        return;
    }
    up_config_commit(next);
    up_config_unref(sv->current);
    sv->current = next;
    up_log_set_level(sv->current->log_level);
    up_stats_add("Upesi.Reload.Done", 1);
    /* USR1, not HUP: a worker takes HUP as an admin's mistake and passes
     * it back here (worker.c) */
    signal_workers(SIGUSR1);
}

/* SIGTERM or SIGINT: the first starts the drain, a second kills. */
static void stop(supervisor *sv, int signo)
{
    if (sv->stopping) {
        signal_workers(SIGKILL);
        return;
    }
    up_log(NULL, UPESI_LOG_NOTICE, "%s: stopping (no new sessions; "
           "transactions in progress may finish within stop_timeout %gs)",
           signo == SIGINT ? "SIGINT" : "SIGTERM", sv->current->stop_timeout);
    sv->stopping = 1;
    up_notify_stopping();
    up_metrics_close();
    sv->stop_deadline = now_ms() +
                        (uint64_t)(sv->current->stop_timeout * 1000) +
                        UP_STOP_MARGIN_MS;
    signal_workers(SIGTERM);
    /* the address and the control socket are free at once: a new server
     * may start while this one drains (its workers close their copies as
     * they take the signal) */
    up_listen_close(&listeners);
    close(sv->control_fd);
    sv->control_fd = -1;
    unlink(sv->control_path);
}

static void on_signal(supervisor *sv, int signo)
{
    switch (signo) {
    case SIGCHLD:
        reap(sv->stopping);
        break;
    case SIGHUP:
        reload(sv);
        break;
    case SIGUSR1:
        /* the supervisor's own order to its workers; sent here it means
         * nothing */
        up_log(NULL, UPESI_LOG_WARNING, "SIGUSR1 ignored: send SIGHUP to "
               "reload");
        break;
    default:
        stop(sv, signo);
        break;
    }
}

int up_supervisor_run(up_config *cfg, const char *conf_dir)
{
    n_workers = workers_wanted(cfg);
    supervisor sv = { .conf_dir = conf_dir,
                      .control_path = cfg->control_socket };
    sv.control_fd = bind_everything(cfg);
    if (sv.control_fd < 0)
        return 1;
    int sfd = open_signals(&sv.old_mask);
    if (sfd < 0 || up_notify_open() != 0 || up_metrics_open(cfg) != 0) {
        close(sv.control_fd);
        unlink(cfg->control_socket);
        up_listen_close(&listeners);
        return 1;
    }
    /* the pid an admin signals: the workers' pids appear on every
     * session's log line, so the start line says which one is in charge */
    up_log(NULL, UPESI_LOG_NOTICE, "upesi started: supervisor pid %d (send "
           "it HUP to reload, TERM to stop), conf %s, %d worker%s",
           (int)getpid(), conf_dir, n_workers, n_workers == 1 ? "" : "s");
    up_stats_set("Upesi.Workers", n_workers);
    supervisor_pid = getpid();
    for (int i = 0; i < n_workers; i++)
        start_worker(i, cfg, conf_dir, sv.control_fd, &sv.old_mask);

    sv.current = up_config_ref(cfg);
    while (!sv.stopping || workers_alive() > 0) {
        int timeout = run_timers(&sv);
        struct pollfd pfd[2 + UP_METRICS_POLLFDS] = {
            { .fd = sfd, .events = POLLIN },
            { .fd = up_notify_fd(), .events = POLLIN },
        };
        int nm = up_metrics_pollfds(pfd + 2, UP_METRICS_POLLFDS);
        if (poll(pfd, (nfds_t)2 + (nfds_t)nm, timeout) <= 0)
            continue;
        if (pfd[1].revents)
            up_notify_read(n_workers);
        if (nm)
            up_metrics_poll(pfd + 2, nm, now_ms());
        struct signalfd_siginfo si;
        if ((pfd[0].revents & POLLIN) &&
            read(sfd, &si, sizeof si) == sizeof si)
            on_signal(&sv, (int)si.ssi_signo);
    }
    close(sfd);
    up_notify_close();
    up_metrics_close();
    up_config_unref(sv.current);
    up_log(NULL, UPESI_LOG_NOTICE, "upesi stopped");
    return 0;
}
