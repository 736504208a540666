/*
 * fwd_queue.c - store and forward: the spool is the queue.
 *
 * Every worker runs a queue runner.  It scans <spool_dir>/queue/ every
 * scan_interval (and at once when a message was just committed, a
 * delivery ended, or `upesi flush` came) and claims a due message by
 * renaming it into <spool_dir>/active/<its pid>/: rename is atomic, so two
 * workers never deliver the same file.  A worker that dies leaves its
 * active/<pid>/ behind; the next scan of any worker whose pid check says
 * that process is gone (and every worker at its start, for its own pid)
 * renames those files back into queue/: delivered at least once, never
 * lost.
 *
 * A delivery groups the recipients by route, runs one job per downstream
 * (fwd_smtp.c), then: delivered recipients are done; refused ones (5xx, or
 * 4xx past max_queue_time) get a DSN, or for the null sender what
 * null_sender_dsn says; the rest stay queued.  When the set of recipients
 * changed, the file is rewritten (durably) with those left.  Retry state
 * lives beside the message in deferred/<id> (attempts, last/next attempt
 * in ms, last error); losing it only means an earlier retry.  Backoff:
 * retry_min doubling up to retry_max.  `flush` touches <spool_dir>/flush:
 * every message last tried before that stamp is due at once, whichever
 * worker looks first.
 *
 * Fails: a file that cannot be read or parsed is moved to dead/ with a
 * log line.  An error while reporting keeps the message queued as it
 * was: a duplicate later, never a loss.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "forward.h"

#define FWD_ENV_MAX (4 << 20)

static int fwd_running;             /* deliveries in flight here */
static int fwd_scanning;
static int fwd_rescan;              /* a scan was asked for meanwhile */
static upesi_timer *fwd_scan_timer;
static int fwd_started;             /* this process is a worker */

static long long now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int id_ok(const char *id)
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
/* retry state: deferred/<id>                                             */

typedef struct fwd_state {
    long attempts;
    long long last_ms, next_ms;
    char error[512];
} fwd_state;

static int state_read(const char *spool, const char *id, fwd_state *st)
{
    memset(st, 0, sizeof *st);
    char path[4200];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[700];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "Attempts: ", 10))
            st->attempts = atol(line + 10);
        else if (!strncmp(line, "Last-Attempt: ", 14))
            st->last_ms = atoll(line + 14);
        else if (!strncmp(line, "Next-Attempt: ", 14))
            st->next_ms = atoll(line + 14);
        else if (!strncmp(line, "Last-Error: ", 12))
            snprintf(st->error, sizeof st->error, "%s", line + 12);
    }
    fclose(f);
    return 0;
}

static void state_write(const char *spool, const char *id,
                        const fwd_state *st)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    snprintf(tmp, sizeof tmp, "%s/deferred/.%s.%d", spool, id, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return;
    char err[512];
    snprintf(err, sizeof err, "%s", st->error);
    for (char *p = err; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    fprintf(f, "Attempts: %ld\nLast-Attempt: %lld\nNext-Attempt: %lld\n"
               "Last-Error: %s\n", st->attempts, st->last_ms, st->next_ms,
            err);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

static void state_remove(const char *spool, const char *id)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/deferred/%s", spool, id);
    unlink(path);
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
    long long flush = flush_stamp(req->spool), now = now_ms();
    snprintf(dir, sizeof dir, "%s/queue", req->spool);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while (req->n < (size_t)req->slots && (e = readdir(d)) != NULL) {
        if (!id_ok(e->d_name))
            continue;
        fwd_state st;
        if (state_read(req->spool, e->d_name, &st) == 0 &&
            st.next_ms > now && st.last_ms >= flush)
            continue;
        claim(req, e->d_name);
    }
    closedir(d);
}

static void deliver_start(const char *spool, const char *id);
static void scan_schedule(unsigned ms);

static void scan_done(void *arg, int status)
{
    scan_req *req = arg;
    if (status < 0)
        scan_work(req);
    if (!req->only[0])
        fwd_scanning = 0;
    if (req->recovered)
        fwd_api->log(NULL, UPESI_LOG_NOTICE, "queue_forward: %d message%s "
                     "of a worker that is gone put back into the queue",
                     req->recovered, req->recovered == 1 ? "" : "s");
    for (size_t i = 0; i < req->n; i++)
        deliver_start(req->spool, req->ids[i]);
    free(req->ids);
    free(req->spool);
    free(req);
    if (fwd_rescan && !fwd_scanning) {
        fwd_rescan = 0;
        scan_schedule(0);
    }
}

static void scan_start(const char *only, int startup)
{
    fwd_config *cfg = fwd_config_latest();
    const char *spool = fwd_api->spool_dir();
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
    if (fwd_api->queue_work(scan_work, scan_done, req) < 0)
        scan_done(req, -1);
}

static void scan_tick(void *arg)
{
    (void)arg;
    fwd_scan_timer = NULL;
    scan_start(NULL, 0);
    fwd_config *cfg = fwd_config_latest();
    scan_schedule(cfg ? cfg->scan_interval_ms : 10000);
}

static void scan_schedule(unsigned ms)
{
    if (!fwd_started)
        return;
    if (ms == 0) {
        scan_start(NULL, 0);
        return;
    }
    if (fwd_scan_timer)
        fwd_api->timer_stop(fwd_scan_timer);
    fwd_scan_timer = fwd_api->timer_start(ms, scan_tick, NULL);
}

void fwd_queue_worker_start(void *arg)
{
    (void)arg;
    fwd_started = 1;
    scan_start(NULL, 1);
    fwd_config *cfg = fwd_config_latest();
    scan_schedule(cfg ? cfg->scan_interval_ms : 10000);
}

void fwd_queue_kick(const char *queue_id)
{
    if (!fwd_started)
        return;
    fwd_config *cfg = fwd_config_latest();
    if (cfg && fwd_running < cfg->max_deliveries)
        scan_start(queue_id, 0);
}

/* ---------------------------------------------------------------------- */
/* one delivery                                                           */

typedef struct fwd_delivery {
    fwd_config *cfg;
    char *spool;
    char id[64];
    char path[4300];
    int fd;
    off_t msg_off;
    fwd_env env;
    fwd_state state;
    fwd_rcpt *rcpts;
    fwd_rcpt **ptrs;
    size_t n;
    fwd_job *jobs;
    size_t n_jobs, jobs_left;
    fwd_rcpt **temp;                /* what is left, for the rewrite */
    size_t n_temp;
    int remaining_changed;
} fwd_delivery;

static ssize_t delivery_read(void *arg, off_t off, void *buf, size_t len)
{
    fwd_delivery *d = arg;
    for (;;) {
        ssize_t n = pread(d->fd, buf, len, d->msg_off + off);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : n;
    }
}

static void delivery_free(fwd_delivery *d)
{
    if (d->fd >= 0)
        close(d->fd);
    fwd_env_free(&d->env);
    free(d->rcpts);
    free(d->ptrs);
    free(d->temp);
    free(d->jobs);
    free(d->spool);
    fwd_config_unref(d->cfg);
    free(d);
    fwd_running--;
    scan_schedule(0);       /* a slot is free: more may be due */
}

/* Move the claimed file somewhere (queue/ or dead/), or remove it. */
static void delivery_release(fwd_delivery *d, const char *where)
{
    if (where == NULL) {
        unlink(d->path);
        state_remove(d->spool, d->id);
        return;
    }
    char to[4300];
    snprintf(to, sizeof to, "%s/%s/%s", d->spool, where, d->id);
    if (rename(d->path, to) < 0)
        fwd_api->log(NULL, UPESI_LOG_ERR, "queue_forward: %s: rename to "
                     "%s: %s", d->id, to, strerror(errno));
}

static void delivery_rewritten(void *arg, int error)
{
    fwd_delivery *d = arg;
    if (error) {
        /* the old file goes back whole: delivered recipients will get it
         * again, which beats losing the others */
        fwd_api->log(NULL, UPESI_LOG_ERR, "queue_forward: %s: rewriting the "
                     "queue file failed (%s); requeued with all recipients",
                     d->id, strerror(error));
        delivery_release(d, "queue");
    } else {
        unlink(d->path);
    }
    delivery_free(d);
}

/* The refusals are reported (or could not be): keep what is left. */
static void delivery_reported(void *arg, int error)
{
    fwd_delivery *d = arg;
    if (error) {
        fwd_api->log(NULL, UPESI_LOG_ERR, "queue_forward: %s: cannot write "
                     "the delivery report (%s); the message stays queued",
                     d->id, strerror(error));
        d->state.next_ms = now_ms() + 1000LL * d->cfg->retry_min_s;
        state_write(d->spool, d->id, &d->state);
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    if (d->n_temp == 0) {
        delivery_release(d, NULL);
        delivery_free(d);
        return;
    }
    state_write(d->spool, d->id, &d->state);
    if (!d->remaining_changed) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    /* rewrite with the recipients left: tmp/<id> -> queue/<id>, then the
     * claimed copy goes */
    fwd_env env = d->env;
    char **left = calloc(d->n_temp, sizeof *left);
    if (left == NULL) {
        delivery_rewritten(d, ENOMEM);
        return;
    }
    for (size_t i = 0; i < d->n_temp; i++)
        left[i] = d->temp[i]->addr;
    env.rcpts = left;
    env.n_rcpts = d->n_temp;
    size_t len;
    char *text = fwd_env_format(&env, &len);
    free(left);
    struct stat st;
    int rc = text == NULL ? -ENOMEM
           : fstat(d->fd, &st) < 0 ? -errno : 0;
    if (rc == 0) {
        fwd_src src = { delivery_read, d, st.st_size - d->msg_off };
        rc = fwd_store_write("queue", d->id, text, len, NULL, 0, &src,
                             d->cfg->fsync, delivery_rewritten, d);
    }
    free(text);
    if (rc < 0)
        delivery_rewritten(d, -rc);
}

static void delivery_finish(fwd_delivery *d)
{
    long long now = now_ms();
    long long arrival = fwd_parse_arrival(d->env.arrival);
    int expired = arrival > 0 &&
                  now / 1000 - arrival > (long long)d->cfg->max_queue_time_s;
    fwd_rcpt **failed = calloc(d->n + 1, sizeof *failed);
    d->temp = calloc(d->n + 1, sizeof *d->temp);
    if (failed == NULL || d->temp == NULL) {
        free(failed);
        delivery_reported(d, ENOMEM);
        return;
    }
    size_t n_failed = 0, n_ok = 0;
    const char *last_error = NULL;
    for (size_t i = 0; i < d->n; i++) {
        fwd_rcpt *r = &d->rcpts[i];
        const char *relay = fwd_route_for(d->cfg, r->addr)
                                ? fwd_route_for(d->cfg, r->addr)->name : "none";
        const char *what = r->state == FWD_RCPT_OK ? "sent"
                         : r->state == FWD_RCPT_PERM ? "bounced"
                         : expired ? "expired" : "deferred";
        fwd_api->log(NULL, r->state == FWD_RCPT_OK ? UPESI_LOG_INFO
                                                   : UPESI_LOG_NOTICE,
                     "queue_forward: %s: to=<%s> relay=%s status=%s (%s)",
                     d->id, r->addr, relay, what, r->text);
        if (r->state == FWD_RCPT_OK) {
            n_ok++;
            fwd_api->stat_add("SMTP.Forward.Delivered", 1);
        } else if (r->state == FWD_RCPT_PERM || expired) {
            failed[n_failed++] = r;
            fwd_api->stat_add("SMTP.Forward.Bounced", 1);
        } else {
            d->temp[d->n_temp++] = r;
            last_error = r->text;
            fwd_api->stat_add("SMTP.Forward.Deferred", 1);
        }
    }
    d->remaining_changed = d->n_temp != d->n;
    d->state.attempts++;
    d->state.last_ms = now;
    unsigned long long delay = d->cfg->retry_min_s;
    for (long i = 1; i < d->state.attempts && delay < d->cfg->retry_max_s;
         i++)
        delay *= 2;
    if (delay > d->cfg->retry_max_s)
        delay = d->cfg->retry_max_s;
    d->state.next_ms = now + (long long)delay * 1000;
    if (last_error)
        snprintf(d->state.error, sizeof d->state.error, "%s", last_error);
    int pending = 0;
    if (n_failed) {
        fwd_src src = { delivery_read, d, 0 };
        struct stat st;
        if (fstat(d->fd, &st) == 0)
            src.size = st.st_size - d->msg_off;
        int rc = fwd_report_failures(d->cfg, &d->env, failed, n_failed, &src,
                                     delivery_reported, d, &pending);
        if (rc < 0) {
            free(failed);
            delivery_reported(d, -rc);
            return;
        }
    }
    free(failed);
    if (!pending)
        delivery_reported(d, 0);
}

static void delivery_job_done(fwd_job *job, void *arg)
{
    fwd_delivery *d = arg;
    (void)job;
    if (--d->jobs_left == 0)
        delivery_finish(d);
}

/* Read the envelope of the claimed file.  0 or -1. */
static int delivery_load(fwd_delivery *d)
{
    d->fd = open(d->path, O_RDONLY | O_CLOEXEC);
    if (d->fd < 0)
        return -1;
    size_t cap = 16384, len = 0;
    char *buf = NULL;
    for (;;) {
        char *nb = realloc(buf, cap);
        if (nb == NULL)
            break;
        buf = nb;
        ssize_t n = pread(d->fd, buf + len, cap - len, (off_t)len);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *end = memmem(buf, len, "\n\n", 2);
        if (end) {
            d->msg_off = (off_t)(end - buf) + 2;
            int rc = fwd_env_parse(buf, (size_t)(end - buf) + 1, &d->env);
            free(buf);
            return rc;
        }
        if (len < cap)
            break;
        if (cap >= FWD_ENV_MAX)
            break;
        cap *= 2;
    }
    free(buf);
    return -1;
}

static void deliver_start(const char *spool, const char *id)
{
    fwd_delivery *d = calloc(1, sizeof *d);
    if (d == NULL)
        return;                     /* stays in active/: recovered later */
    fwd_running++;
    d->fd = -1;
    d->cfg = fwd_config_ref(fwd_config_latest());
    d->spool = strdup(spool);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s/active/%d/%s", spool,
             (int)getpid(), id);
    if (d->spool == NULL || d->cfg == NULL) {
        delivery_free(d);
        return;
    }
    if (delivery_load(d) < 0) {
        fwd_api->log(NULL, UPESI_LOG_ERR, "queue_forward: %s: not a "
                     "readable spool file; moved to dead/", id);
        delivery_release(d, "dead");
        delivery_free(d);
        return;
    }
    state_read(spool, id, &d->state);
    d->n = d->env.n_rcpts;
    d->rcpts = calloc(d->n + 1, sizeof *d->rcpts);
    d->ptrs = calloc(d->n + 1, sizeof *d->ptrs);
    d->jobs = calloc(d->n + 1, sizeof *d->jobs);
    if (d->rcpts == NULL || d->ptrs == NULL || d->jobs == NULL) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    struct stat st;
    off_t size = fstat(d->fd, &st) == 0 ? st.st_size - d->msg_off : 0;
    const char *sender = strcmp(d->env.sender, "<>") ? d->env.sender : "";

    /* group by downstream: recipients of one target are contiguous in
     * ptrs, one job each */
    const fwd_target **targets = calloc(d->n + 1, sizeof *targets);
    if (targets == NULL) {
        delivery_release(d, "queue");
        delivery_free(d);
        return;
    }
    size_t placed = 0;
    for (size_t i = 0; i < d->n; i++) {
        d->rcpts[i].addr = d->env.rcpts[i];
        targets[i] = fwd_route_for(d->cfg, d->rcpts[i].addr);
        if (targets[i] == NULL) {
            d->rcpts[i].state = FWD_RCPT_PERM;
            d->rcpts[i].code = 550;
            snprintf(d->rcpts[i].enhanced, sizeof d->rcpts[i].enhanced,
                     "5.4.4");
            snprintf(d->rcpts[i].text, sizeof d->rcpts[i].text,
                     "550 5.4.4 no route for this domain");
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        if (targets[i] == NULL)
            continue;
        size_t j;
        for (j = 0; j < i; j++)
            if (targets[j] && !strcmp(targets[j]->name, targets[i]->name))
                break;
        if (j < i)
            continue;               /* its job exists */
        fwd_job *job = &d->jobs[d->n_jobs++];
        job->cfg = d->cfg;
        job->target = targets[i];
        job->sender = sender;
        job->rcpts = d->ptrs + placed;
        for (size_t k = i; k < d->n; k++)
            if (targets[k] && !strcmp(targets[k]->name, targets[i]->name))
                d->ptrs[placed++] = &d->rcpts[k];
        job->n_rcpts = (size_t)(d->ptrs + placed - job->rcpts);
        job->src = (fwd_src){ delivery_read, d, size };
        snprintf(job->id, sizeof job->id, "%s", d->id);
        job->done = delivery_job_done;
        job->done_arg = d;
    }
    free(targets);
    d->jobs_left = d->n_jobs;
    if (d->n_jobs == 0) {
        delivery_finish(d);
        return;
    }
    size_t n_jobs = d->n_jobs;
    for (size_t i = 0; i < n_jobs; i++)
        fwd_job_start(&d->jobs[i]);
}

/* ---------------------------------------------------------------------- */
/* reports: DSN, or dead/ for the null sender                             */

typedef struct report_ctx {
    fwd_commit_fn done;
    void *arg;
} report_ctx;

static void report_committed(void *arg, int error)
{
    report_ctx *r = arg;
    r->done(r->arg, error);
    free(r);
}

int fwd_report_failures(const fwd_config *cfg, const fwd_env *env,
                        fwd_rcpt *const *failed, size_t n_failed,
                        const fwd_src *msg, fwd_commit_fn done, void *arg,
                        int *pending)
{
    *pending = 0;
    const char *host = fwd_api->hostname();
    if (host == NULL || host[0] == '\0')
        host = "localhost";
    char postmaster[300];
    if (cfg->postmaster[0])
        snprintf(postmaster, sizeof postmaster, "%s", cfg->postmaster);
    else
        snprintf(postmaster, sizeof postmaster, "postmaster@%s", host);
    int null_sender = !strcmp(env->sender, "<>") || env->sender[0] == '\0';
    const char *to = env->sender;
    int dead = 0;
    if (null_sender) {
        int to_postmaster = 0;
        for (size_t i = 0; i < n_failed; i++)
            to_postmaster |= !strcasecmp(failed[i]->addr, postmaster);
        if (cfg->null_sender_dsn == 2) {
            fwd_api->log(NULL, UPESI_LOG_NOTICE, "queue_forward: %s: "
                         "undeliverable message from <>: no report "
                         "(null_sender_dsn = 2)", env->queue_id);
            return 0;
        }
        if (cfg->null_sender_dsn == 0 || to_postmaster)
            dead = 1;               /* a report to the postmaster about a
                                       report to the postmaster: no loop */
        to = postmaster;
    }
    report_ctx *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->done = done;
    r->arg = arg;
    int rc;
    if (dead) {
        fwd_env copy = *env;
        char **addrs = calloc(n_failed, sizeof *addrs);
        if (addrs == NULL) {
            free(r);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n_failed; i++)
            addrs[i] = failed[i]->addr;
        copy.rcpts = addrs;
        copy.n_rcpts = n_failed;
        size_t len;
        char *text = fwd_env_format(&copy, &len);
        free(addrs);
        char id[80];
        snprintf(id, sizeof id, "%s", env->queue_id);
        rc = text ? fwd_store_write("dead", id, text, len, NULL, 0, msg,
                                    cfg->fsync, report_committed, r)
                  : -ENOMEM;
        free(text);
        if (rc == 0)
            fwd_api->log(NULL, UPESI_LOG_NOTICE, "queue_forward: %s: "
                         "undeliverable message from <>: kept in dead/ "
                         "(null_sender_dsn = %d)", env->queue_id,
                         cfg->null_sender_dsn);
    } else {
        char id[64];
        fwd_make_queue_id(id, sizeof id);
        size_t body_len, env_len;
        char *body = fwd_dsn_build(env, failed, n_failed, msg, to, host,
                                   &body_len);
        fwd_env denv;
        char *etext = NULL;
        if (body && fwd_env_local(&denv, id, "", to) == 0) {
            etext = fwd_env_format(&denv, &env_len);
            fwd_env_free(&denv);
        }
        rc = etext ? fwd_store_write("queue", id, etext, env_len, body,
                                     body_len, NULL, cfg->fsync,
                                     report_committed, r)
                   : -ENOMEM;
        if (rc == 0) {
            fwd_api->log(NULL, UPESI_LOG_NOTICE, "queue_forward: %s: "
                         "sender non-delivery notification: %s (to <%s>)",
                         env->queue_id, id, to);
            fwd_api->stat_add("SMTP.Forward.DSN", 1);
        }
        free(body);
        free(etext);
    }
    if (rc < 0) {
        free(r);
        return rc;
    }
    *pending = 1;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* control: queue, flush                                                  */

static void list_dir(upesi_control *out, const char *spool, const char *sub,
                     const char *state_name, long long now, int *count)
{
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/%s", spool, sub);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!id_ok(e->d_name))
            continue;
        char path[4700];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char buf[65536];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *end = strstr(buf, "\n\n");
        fwd_env env;
        if (end == NULL || fwd_env_parse(buf, (size_t)(end - buf) + 1,
                                         &env) < 0)
            continue;
        fwd_state st;
        int have_state = state_read(spool, e->d_name, &st) == 0;
        const char *state = state_name;
        if (!strcmp(state_name, "queued") && have_state)
            state = "deferred";
        long long arrival = fwd_parse_arrival(env.arrival);
        long long age = arrival > 0 ? now / 1000 - arrival : 0;
        fwd_api->control_write(out, "%s  age=%llds  state=%s  attempts=%ld"
                               "  from=<%s>  to=", e->d_name, age, state,
                               have_state ? st.attempts : 0L,
                               strcmp(env.sender, "<>") ? env.sender : "");
        for (size_t i = 0; i < env.n_rcpts; i++)
            fwd_api->control_write(out, "%s<%s>", i ? "," : "", env.rcpts[i]);
        if (have_state && st.next_ms > now && !strcmp(state, "deferred"))
            fwd_api->control_write(out, "  next=%llds",
                                   (st.next_ms - now + 999) / 1000);
        if (have_state && st.error[0])
            fwd_api->control_write(out, "  last_error=%s", st.error);
        fwd_api->control_write(out, "\n");
        fwd_env_free(&env);
        (*count)++;
    }
    closedir(d);
}

static void ctl_queue(const char *args, upesi_control *out, void *arg)
{
    (void)args;
    (void)arg;
    const char *spool = fwd_api->spool_dir();
    if (spool == NULL) {
        fwd_api->control_write(out, "error: no spool_dir\n");
        return;
    }
    long long now = now_ms();
    int queued = 0, active = 0, dead = 0;
    list_dir(out, spool, "queue", "queued", now, &queued);
    char adir[4200];
    snprintf(adir, sizeof adir, "%s/active", spool);
    DIR *d = opendir(adir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char sub[300];
            snprintf(sub, sizeof sub, "active/%s", e->d_name);
            list_dir(out, spool, sub, "active", now, &active);
        }
        closedir(d);
    }
    list_dir(out, spool, "dead", "dead", now, &dead);
    fwd_api->control_write(out, "-- %d message%s in the queue (%d active), "
                           "%d dead\n", queued + active,
                           queued + active == 1 ? "" : "s", active, dead);
}

static void ctl_flush(const char *args, upesi_control *out, void *arg)
{
    (void)args;
    (void)arg;
    const char *spool = fwd_api->spool_dir();
    if (spool == NULL) {
        fwd_api->control_write(out, "error: no spool_dir\n");
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/flush", spool);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || futimens(fd, NULL) < 0) {
        fwd_api->control_write(out, "error: %s: %s\n", path,
                               strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    int n = 0;
    snprintf(path, sizeof path, "%s/queue", spool);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            n += id_ok(e->d_name);
        closedir(d);
    }
    scan_schedule(0);
    fwd_api->log(NULL, UPESI_LOG_NOTICE, "queue_forward: flush: %d "
                 "message%s to retry now", n, n == 1 ? "" : "s");
    fwd_api->control_write(out, "flush: %d message%s in the queue will be "
                           "retried now\n", n, n == 1 ? "" : "s");
}

int fwd_queue_register_commands(void)
{
    int rc = fwd_api->control_register("queue", ctl_queue, NULL);
    if (rc == 0)
        rc = fwd_api->control_register("flush", ctl_flush, NULL);
    return rc;
}
