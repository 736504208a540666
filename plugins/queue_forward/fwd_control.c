/*
 * fwd_control.c - the queue's control commands.  `upesi queue list|show|
 * delete|hold|release|flush` is plugins/common/queue_tools.c; this file
 * adds what only this queue knows: from a message's retry state its
 * attempts, next attempt and last error in the list, a released message
 * made due at once, a deleted one's retry state removed.  `upesi flush` touches <spool_dir>/flush:
 * every message last tried before that stamp is due at once (fwd_queue.c),
 * and a scan is asked for now.
 *
 * Fails: a file that cannot be read or parsed is left out of the list;
 * no spool_dir, or a flush stamp that cannot be touched, is an error line
 * to the caller.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fwd_queue.h"
#include "../common/queue_tools.h"

/* ---------------------------------------------------------------------- */
/* control: queue (plugins/common/queue_tools.c), flush                   */

/* list: a message tried before is "deferred"; its attempts, next try and
 * last error from its retry state */
static void annotate(const char *spool, const char *id, const char **state,
                     char *more, size_t morelen)
{
    fwd_state st;
    if (fwd_state_read(spool, id, &st) != 0)
        return;
    long long now = fwd_now_ms();
    size_t at = 0;
    if (!strcmp(*state, "queued"))
        *state = "deferred";
    at += (size_t)snprintf(more, morelen, "attempts=%ld", st.attempts);
    if (at < morelen && st.next_ms > now && !strcmp(*state, "deferred"))
        at += (size_t)snprintf(more + at, morelen - at, "  next=%llds",
                               (st.next_ms - now + 999) / 1000);
    if (at < morelen && st.error[0])
        snprintf(more + at, morelen - at, "  last_error=%s", st.error);
}

/* a released message is due now, whatever its retry state said */
static void released(const char *spool, const char *id)
{
    fwd_state st;
    if (fwd_state_read(spool, id, &st) == 0) {
        st.next_ms = 0;
        fwd_state_write(spool, id, &st);
    }
    fwd_scan_schedule(0);
}

static void deleted(const char *spool, const char *id)
{
    fwd_state_remove(spool, id);
}

static void ctl_flush(const char *args, upesi_control *out, void *arg)
{
    (void)args;
    (void)arg;
    const char *spool = fwd_api->spool_dir(fwd_ctx);
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
            n += fwd_id_ok(e->d_name);
        closedir(d);
    }
    fwd_scan_schedule(0);
    fwd_api->log(fwd_ctx, UPESI_LOG_NOTICE, "flush: %d "
                 "message%s to retry now", n, n == 1 ? "" : "s");
    fwd_api->control_write(out, "flush: %d message%s in the queue will be "
                           "retried now\n", n, n == 1 ? "" : "s");
}

static const queue_tools_ops fwd_queue_ops = {
    .plugin = "queue_forward",
    .annotate = annotate,
    .released = released,
    .deleted = deleted,
    .flush = ctl_flush,
};

int fwd_queue_register_commands(void)
{
    int rc = queue_tools_register(fwd_api, fwd_ctx, &fwd_queue_ops);
    if (rc == 0)
        rc = fwd_api->control_register(fwd_ctx, "flush", ctl_flush, NULL);
    return rc;
}
