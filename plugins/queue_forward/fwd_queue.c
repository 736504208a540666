/*
 * fwd_queue.c - store and forward: the spool is the queue, and this is
 * its runner.
 *
 * Every worker runs a queue runner.  It scans <spool_dir>/queue/ every
 * scan_interval (and at once when a message was just committed, a
 * delivery ended, or `upesi flush` came) and claims a due message by
 * renaming it into <spool_dir>/active/<its pid>/: rename is atomic, so two
 * workers never deliver the same file.  A worker that dies leaves its
 * active/<pid>/ behind; the next scan of any worker whose pid check says
 * that process is gone (and every worker at its start, for its own pid)
 * renames those files back into queue/: delivered at least once, never
 * lost.  A message is due when it has no retry state (fwd_retry.c), its
 * next attempt has come, or it was last tried before the stamp of
 * <spool_dir>/flush (`flush`, fwd_control.c), whichever worker looks
 * first.  What a claimed message becomes is fwd_delivery.c's.  When the
 * worker stops (fwd_queue_worker_stop) the runner scans no more and
 * starts no delivery; those in flight go on while the worker lasts.
 *
 * Fails: a scan the thread pool cannot take runs on the loop; one that
 * cannot get memory claims nothing (the next scan will); a file another
 * worker claimed first is left to it.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fwd_queue.h"

static int fwd_scanning;
static int fwd_rescan;              /* a scan was asked for meanwhile */
static upesi_timer *fwd_scan_timer;
static int fwd_started;             /* this process is a worker that has
                                       not begun to stop */

long long fwd_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int fwd_id_ok(const char *id)
{
    if (id[0] == '\0' || id[0] == '.' || strlen(id) >= 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
            *p != '.')
            return 0;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* scanning and claiming (pool thread)                                    */

typedef struct scan_req {
    char *spool;
    pid_t pid;
    int startup;
    int slots;
    char only[64];                  /* claim this id only ("" = scan) */
    size_t n;
    char (*ids)[64];
    int recovered;
} scan_req;

/* The worker that claimed into active/<pid>/ is gone: no such process,
 * a zombie nobody reaped yet, or the pid now belongs to another program. */
static int pid_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;                   /* no /proc: trust kill() */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    if (paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'))
        return 1;
    char mine[4096], theirs[4096];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t a = readlink("/proc/self/exe", mine, sizeof mine - 1);
    ssize_t b = readlink(path, theirs, sizeof theirs - 1);
    if (a > 0 && b > 0) {
        mine[a] = theirs[b] = '\0';
        return strcmp(mine, theirs) != 0;
    }
    return 0;
}

/* active/<pid>/ of a dead process (or our own at start): back to queue/ */
static void recover_active(scan_req *req)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/active", req->spool);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end || pid <= 0)
            continue;
        if (!(pid == req->pid ? req->startup : pid_gone((pid_t)pid)))
            continue;
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        DIR *sd = opendir(sub);
        if (sd == NULL)
            continue;
        struct dirent *f;
        int n = 0;
        while ((f = readdir(sd)) != NULL) {
            if (f->d_name[0] == '.')
                continue;
            char from[4700], to[4300];
            snprintf(from, sizeof from, "%s/%s", sub, f->d_name);
            snprintf(to, sizeof to, "%s/queue/%s", req->spool, f->d_name);
            if (rename(from, to) == 0)
                n++;
        }
        closedir(sd);
        if (pid != req->pid)
            rmdir(sub);
        req->recovered += n;
    }
    closedir(d);
}

static long long flush_stamp(const char *spool)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/flush", spool);
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    return (long long)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

static int claim(scan_req *req, const char *id)
{
    char from[4200], to[4300];
    snprintf(from, sizeof from, "%s/queue/%s", req->spool, id);
    snprintf(to, sizeof to, "%s/active/%d/%s", req->spool, (int)req->pid, id);
    if (rename(from, to) < 0)
        return -1;
    snprintf(req->ids[req->n++], 64, "%s", id);
    return 0;
}

static void scan_work(void *arg)
{
    scan_req *req = arg;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/active/%d", req->spool, (int)req->pid);
    mkdir(dir, 0700);
    if (req->slots <= 0)
        return;
    req->ids = calloc((size_t)req->slots, sizeof *req->ids);
    if (req->ids == NULL)
        return;
    if (req->only[0]) {
        claim(req, req->only);
        return;
    }
    recover_active(req);
    long long flush = flush_stamp(req->spool), now = fwd_now_ms();
    snprintf(dir, sizeof dir, "%s/queue", req->spool);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while (req->n < (size_t)req->slots && (e = readdir(d)) != NULL) {
        if (!fwd_id_ok(e->d_name))
            continue;
        fwd_state st;
        if (fwd_state_read(req->spool, e->d_name, &st) == 0 &&
            st.next_ms > now && st.last_ms >= flush)
            continue;
        claim(req, e->d_name);
    }
    closedir(d);
}


static void scan_done(void *arg, int status)
{
    scan_req *req = arg;
    if (status < 0)
        scan_work(req);
    if (!req->only[0])
        fwd_scanning = 0;
    if (req->recovered)
        fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "%d message%s "
                     "of a worker that is gone put back into the queue",
                     req->recovered, req->recovered == 1 ? "" : "s");
    for (size_t i = 0; fwd_started && i < req->n; i++)
        fwd_deliver_start(req->spool, req->ids[i]);
    free(req->ids);
    free(req->spool);
    free(req);
    if (fwd_rescan && !fwd_scanning) {
        fwd_rescan = 0;
        fwd_scan_schedule(0);
    }
}

static void scan_start(const char *only, int startup)
{
    fwd_config *cfg = fwd_config_latest();
    const char *spool = fwd_api->spool_dir(fwd_ctx);
    if (cfg == NULL || spool == NULL)
        return;
    if (only == NULL && fwd_scanning) {
        fwd_rescan = 1;
        return;
    }
    int slots = cfg->max_deliveries - fwd_running;
    if (slots <= 0 && !startup)
        return;
    scan_req *req = calloc(1, sizeof *req);
    if (req == NULL || (req->spool = strdup(spool)) == NULL) {
        free(req);
        return;
    }
    req->pid = getpid();
    req->startup = startup;
    req->slots = slots > 0 ? slots : 0;
    if (only)
        snprintf(req->only, sizeof req->only, "%s", only);
    else
        fwd_scanning = 1;
    if (fwd_api->queue_work(fwd_ctx, scan_work, scan_done, req) < 0)
        scan_done(req, -1);
}

static void scan_tick(void *arg)
{
    (void)arg;
    fwd_scan_timer = NULL;
    scan_start(NULL, 0);
    fwd_config *cfg = fwd_config_latest();
    fwd_scan_schedule(cfg ? cfg->scan_interval_ms : 10000);
}

void fwd_scan_schedule(unsigned ms)
{
    if (!fwd_started)
        return;
    if (ms == 0) {
        scan_start(NULL, 0);
        return;
    }
    if (fwd_scan_timer)
        fwd_api->timer_stop(fwd_scan_timer);
    fwd_scan_timer = fwd_api->timer_start(fwd_ctx, ms, scan_tick, NULL);
}

void fwd_queue_worker_start(upesi_ctx *ctx)
{
    fwd_api->log(ctx, UPESI_LOG_DEBUG, "queue runner started");
    fwd_started = 1;
    scan_start(NULL, 1);
    fwd_config *cfg = fwd_config_latest();
    fwd_scan_schedule(cfg ? cfg->scan_interval_ms : 10000);
}

void fwd_queue_worker_stop(void)
{
    fwd_started = 0;
    if (fwd_scan_timer)
        fwd_api->timer_stop(fwd_scan_timer);
    fwd_scan_timer = NULL;
}

void fwd_queue_kick(const char *queue_id)
{
    if (!fwd_started)
        return;
    fwd_config *cfg = fwd_config_latest();
    if (cfg && fwd_running < cfg->max_deliveries)
        scan_start(queue_id, 0);
}
