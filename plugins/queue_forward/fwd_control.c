/*
 * fwd_control.c - the queue's control commands.  `upesi queue` lists
 * every message in queue/, active/<pid>/ and dead/: its age, state,
 * attempts, sender and recipients, and from its retry state the next
 * attempt and the last error.  `upesi flush` touches <spool_dir>/flush:
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
        if (!fwd_id_ok(e->d_name))
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
        int have_state = fwd_state_read(spool, e->d_name, &st) == 0;
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
    const char *spool = fwd_api->spool_dir(fwd_ctx);
    if (spool == NULL) {
        fwd_api->control_write(out, "error: no spool_dir\n");
        return;
    }
    long long now = fwd_now_ms();
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

int fwd_queue_register_commands(void)
{
    int rc = fwd_api->control_register(fwd_ctx, "queue", ctl_queue, NULL);
    if (rc == 0)
        rc = fwd_api->control_register(fwd_ctx, "flush", ctl_flush, NULL);
    return rc;
}
