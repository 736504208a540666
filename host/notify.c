/*
 * notify.c - systemd notification (see notify.h).
 *
 * The messages are sd_notify's: nothing here writes the protocol by hand.
 * READY=1 waits for a byte from each started worker, sent once its
 * listeners and control socket are served, so `systemctl start` returns
 * when mail can be delivered.  A reload is RELOADING=1 with MONOTONIC_USEC
 * (systemd 253 matches the two), then READY=1 once every worker alive at
 * the signal has reloaded, or after UP_NOTIFY_RELOAD_WAIT_MS, or at once
 * when the supervisor refused the configuration.
 *
 * Fails: quietly.  A notification that cannot be sent is logged once at
 * debug level; without NOTIFY_SOCKET sd_notify does nothing; a worker
 * that cannot write its byte only delays READY (systemd's start timeout
 * then reports it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

#define UP_NOTIFY_RELOAD_WAIT_MS 10000
#define UP_NOTIFY_LISTENING 'L'
#define UP_NOTIFY_RELOADED 'R'

static int pipe_fd[2] = { -1, -1 };
static int started_ready;           /* READY=1 sent once              */
static int listening;               /* workers that said they listen */
static int reloading;               /* waiting for reloaded workers  */
static int reload_expect, reload_done;
static uint64_t reload_deadline_ms;
static uint64_t watchdog_ms;        /* ping interval, 0 = none      */
static uint64_t watchdog_next_ms;
static int expected_at_start;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void notify(const char *state)
{
    /* logged first, so the log line is there when systemd acts on it */
    if (getenv("NOTIFY_SOCKET") && strncmp(state, "WATCHDOG", 8) != 0)
        up_log(NULL, UPESI_LOG_INFO, "telling systemd %.*s",
               (int)strcspn(state, "\n"), state);
    int rc = sd_notify(0, state);
    if (rc < 0)
        up_log(NULL, UPESI_LOG_DEBUG, "sd_notify(%s): %s", state,
               strerror(-rc));
}

int up_notify_open(void)
{
    if (pipe2(pipe_fd, O_CLOEXEC) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_ms = usec / 2000;
        if (watchdog_ms == 0)
            watchdog_ms = 1;
        up_log(NULL, UPESI_LOG_INFO, "systemd watchdog: a ping every "
               "%llu ms", (unsigned long long)watchdog_ms);
    }
    return 0;
}

int up_notify_fd(void)
{
    return pipe_fd[0];
}

static void reload_finished(void)
{
    reloading = 0;
    notify("READY=1\nSTATUS=running");
}

void up_notify_read(int expected_workers)
{
    if (expected_at_start == 0)
        expected_at_start = expected_workers;
    char buf[256];
    ssize_t n;
    while ((n = read(pipe_fd[0], buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == UP_NOTIFY_LISTENING)
                listening++;
            else if (buf[i] == UP_NOTIFY_RELOADED)
                reload_done++;
        }
    if (!started_ready && listening >= expected_at_start) {
        started_ready = 1;
        notify("READY=1\nSTATUS=running");
    }
    if (reloading && reload_done >= reload_expect)
        reload_finished();
}

void up_notify_reloading(int expected_workers)
{
    /* systemd 253 wants the time of the request with RELOADING=1 */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = (unsigned long long)ts.tv_sec * 1000000ULL +
                              (unsigned long long)ts.tv_nsec / 1000;
    if (getenv("NOTIFY_SOCKET"))
        up_log(NULL, UPESI_LOG_INFO, "telling systemd RELOADING=1");
    int rc = sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\n"
                           "MONOTONIC_USEC=%llu", usec);
    if (rc < 0)
        up_log(NULL, UPESI_LOG_DEBUG, "sd_notify(RELOADING=1): %s",
               strerror(-rc));
    reloading = 1;
    reload_expect = expected_workers;
    reload_done = 0;
    reload_deadline_ms = mono_ms() + UP_NOTIFY_RELOAD_WAIT_MS;
    if (expected_workers == 0)
        reload_finished();
}

void up_notify_reload_refused(void)
{
    if (reloading)
        reload_finished();
}

void up_notify_stopping(void)
{
    notify("STOPPING=1\nSTATUS=stopping");
}

int up_notify_tick(uint64_t now_ms, int workers_alive)
{
    int wait = -1;
    if (reloading) {
        if (now_ms >= reload_deadline_ms) {
            up_log(NULL, UPESI_LOG_WARNING, "reload: %d of %d workers "
                   "confirmed after %ds; telling systemd it is done",
                   reload_done, reload_expect,
                   UP_NOTIFY_RELOAD_WAIT_MS / 1000);
            reload_finished();
        } else {
            wait = (int)(reload_deadline_ms - now_ms);
        }
    }
    if (watchdog_ms == 0)
        return wait;
    if (now_ms >= watchdog_next_ms) {
        /* a supervisor whose workers are all dead (restarting in a
         * crash loop) stops pinging: systemd's watchdog then acts */
        if (workers_alive > 0)
            notify("WATCHDOG=1");
        watchdog_next_ms = now_ms + watchdog_ms;
    }
    int left = (int)(watchdog_next_ms - now_ms);
    return wait < 0 || left < wait ? left : wait;
}

void up_notify_close(void)
{
    for (int i = 0; i < 2; i++)
        if (pipe_fd[i] >= 0) {
            close(pipe_fd[i]);
            pipe_fd[i] = -1;
        }
}

void up_notify_worker_start(void)
{
    if (pipe_fd[0] >= 0) {
        close(pipe_fd[0]);
        pipe_fd[0] = -1;
    }
    /* the supervisor speaks for the service; a worker's message would
     * be one from a process systemd does not expect */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

static void worker_say(char c)
{
    if (pipe_fd[1] >= 0 && write(pipe_fd[1], &c, 1) != 1)
        up_log(NULL, UPESI_LOG_DEBUG, "cannot tell the supervisor: %s",
               strerror(errno));
}

void up_notify_worker_listening(void)
{
    worker_say(UP_NOTIFY_LISTENING);
}

void up_notify_worker_reloaded(void)
{
    worker_say(UP_NOTIFY_RELOADED);
}
