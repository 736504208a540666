/*
 * queue_tools.c - the `queue` control command of the queue plugins (see
 * queue_tools.h).
 *
 * A control command may reach any worker (the host's rule), so every
 * answer comes from the files, never from one worker's memory.  Moves are
 * renames within <spool_dir> (atomic), followed by an fsync of both
 * directories, so a held or released message is where the answer said
 * even after a crash.  queue_forward claims a message by renaming it from
 * queue/ to active/: whichever rename comes first wins, and the loser is
 * told "being delivered" (hold and delete never touch active/).
 *
 * Fails: see queue_tools.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue_tools.h"

static const upesi_api *qt_api;
static upesi_ctx *qt_ctx;
static const queue_tools_ops *qt_ops;

int queue_tools_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n < 64 && id[0] != '.' &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789._-") == n;
}

/* "Key: value" of an envelope (the text before the first empty line) */
typedef struct qt_summary {
    char sender[512];
    int rcpts;
    long long arrival;          /* epoch seconds, -1 unknown */
    long long size;
} qt_summary;

static long long parse_arrival(const char *v)
{
    struct tm tm = { 0 };
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end && (*end == '\0' || *end == '\n') ? (long long)timegm(&tm)
                                                 : -1;
}

/* The envelope is read whole, however long: 1,000 recipients of 60
 * characters are 75 KB.  Past QT_ENVELOPE_MAX it is no envelope of ours. */
#define QT_ENVELOPE_MAX (8 << 20)

static char *read_envelope(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        ssize_t got = pread(fd, buf + n, cap - 1 - n, (off_t)n);
        if (got <= 0)
            break;
        n += (size_t)got;
        buf[n] = '\0';
        if (strstr(buf + (n > (size_t)got + 1 ? n - (size_t)got - 1 : 0),
                   "\n\n"))
            break;
        if (n + 1 == cap) {
            char *more = cap < QT_ENVELOPE_MAX ? realloc(buf, cap * 2) : NULL;
            if (more == NULL) {
                free(buf);
                return NULL;
            }
            buf = more;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int summarize(const char *path, qt_summary *s)
{
    memset(s, 0, sizeof *s);
    s->arrival = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    size_t n = 0;
    char *buf = fstat(fd, &st) == 0 ? read_envelope(fd, &n) : NULL;
    close(fd);
    if (buf == NULL || n == 0) {
        free(buf);
        return -1;
    }
    char *end = strstr(buf, "\n\n");
    if (end == NULL || strncmp(buf, "Upesi-Spool: ", 13) != 0) {
        free(buf);
        return -1;
    }
    end[1] = '\0';
    s->size = (long long)st.st_size - (end + 2 - buf);
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!strncmp(line, "Sender: ", 8))
            snprintf(s->sender, sizeof s->sender, "%s", line + 8);
        else if (!strncmp(line, "Recipient: ", 11))
            s->rcpts++;
        else if (!strncmp(line, "Arrival: ", 9))
            s->arrival = parse_arrival(line + 9);
        line = nl ? nl + 1 : NULL;
    }
    if (s->arrival < 0)
        s->arrival = (long long)st.st_mtime;
    free(buf);
    return 0;
}

static void list_one(upesi_control *out, const char *spool, const char *dir,
                     const char *id, const char *state, int *count)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, id);
    qt_summary s;
    if (summarize(path, &s) != 0) {       /* shown, not hidden */
        qt_api->control_write(out, "%s  state=%s  (no envelope could be "
                              "read: not an upesi spool file?)\n", id, state);
        (*count)++;
        return;
    }
    char more[700] = "";
    if (qt_ops->annotate && (!strcmp(state, "queued") ||
                             !strcmp(state, "dead")))
        qt_ops->annotate(spool, id, &state, more, sizeof more);
    long long age = (long long)time(NULL) - s.arrival;
    qt_api->control_write(out, "%s  age=%llds  size=%lld  state=%s  rcpts=%d"
                          "  from=<%s>%s%s\n", id, age < 0 ? 0 : age, s.size,
                          state, s.rcpts,
                          strcmp(s.sender, "<>") ? s.sender : "",
                          more[0] ? "  " : "", more);
    (*count)++;
}

static void list_dir(upesi_control *out, const char *spool, const char *sub,
                     const char *state, int *count)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", spool, sub);
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        return;
    for (int i = 0; i < n; i++) {
        if (queue_tools_id_ok(names[i]->d_name))
            list_one(out, spool, dir, names[i]->d_name, state, count);
        free(names[i]);
    }
    free(names);
}

static void cmd_list(upesi_control *out, const char *spool)
{
    int queued = 0, held = 0, active = 0, dead = 0;
    list_dir(out, spool, "queue", "queued", &queued);
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
            list_dir(out, spool, sub, "active", &active);
        }
        closedir(d);
    }
    list_dir(out, spool, "hold", "held", &held);
    list_dir(out, spool, "dead", "dead", &dead);
    qt_api->control_write(out, "-- %d message%s: %d queued, %d active, "
                          "%d held, %d dead\n", queued + active + held + dead,
                          queued + active + held + dead == 1 ? "" : "s",
                          queued, active, held, dead);
}

/* where is ID?  its directory ("queue", "hold", "dead", "active/PID") */
static int find(const char *spool, const char *id, char *sub, size_t n)
{
    static const char *const dirs[] = { "queue", "hold", "dead", NULL };
    char path[4800];
    struct stat st;
    for (int i = 0; dirs[i]; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", spool, dirs[i], id);
        if (stat(path, &st) == 0) {
            snprintf(sub, n, "%s", dirs[i]);
            return 0;
        }
    }
    char adir[4200];
    snprintf(adir, sizeof adir, "%s/active", spool);
    DIR *d = opendir(adir);
    int found = -1;
    if (d) {
        struct dirent *e;
        while (found < 0 && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s/%s", adir, e->d_name, id);
            if (stat(path, &st) == 0) {
                snprintf(sub, n, "active/%s", e->d_name);
                found = 0;
            }
        }
        closedir(d);
    }
    return found;
}

static void cmd_show(upesi_control *out, const char *spool, const char *id)
{
    char sub[300], path[4600];
    if (find(spool, id, sub, sizeof sub) != 0) {
        qt_api->control_write(out, "error: no message %s in the queue\n", id);
        return;
    }
    snprintf(path, sizeof path, "%s/%s/%s", spool, sub, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        qt_api->control_write(out, "error: %s: %s\n", path, strerror(errno));
        return;
    }
    qt_api->control_write(out, "File: %s\n", path);
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        qt_api->control_write(out, "%.*s", (int)n, buf);
    close(fd);
}

/* rename spool/from/id to spool/to/id and make both entries durable */
static int move(const char *spool, const char *from, const char *to,
                const char *id, char *err, size_t errlen)
{
    char a[4400], b[4400], dir_a[4300], dir_b[4300];
    snprintf(dir_a, sizeof dir_a, "%s/%s", spool, from);
    snprintf(dir_b, sizeof dir_b, "%s/%s", spool, to);
    snprintf(a, sizeof a, "%s/%s", dir_a, id);
    snprintf(b, sizeof b, "%s/%s", dir_b, id);
    int rc = qt_api->dir_make(dir_b);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", dir_b, strerror(-rc));
        return -1;
    }
    /* never over a message of the same id (checked and renamed in one
     * step: a check first would leave a window); link + unlink where the
     * file system has no RENAME_NOREPLACE */
    int moved = renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) == 0;
    if (!moved && (errno == EINVAL || errno == ENOSYS) && link(a, b) == 0) {
        unlink(a);
        moved = 1;
    }
    if (!moved) {
        if (errno == EEXIST)
            snprintf(err, errlen, "%s exists already", b);
        else
            snprintf(err, errlen, "%s: %s", a, strerror(errno));
        return errno == ENOENT ? -2 : -1;
    }
    if ((rc = qt_api->dir_sync(dir_b)) < 0 ||
        (rc = qt_api->dir_sync(dir_a)) < 0) {
        snprintf(err, errlen, "moved, but fsync: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

static void cmd_hold(upesi_control *out, const char *spool, const char *id)
{
    char sub[300], err[9000];
    if (find(spool, id, sub, sizeof sub) != 0) {
        qt_api->control_write(out, "error: no message %s in the queue\n", id);
        return;
    }
    if (strcmp(sub, "queue") != 0) {
        qt_api->control_write(out, "error: %s is %s, not waiting in the "
                              "queue: only a waiting message can be held%s\n",
                              id, !strcmp(sub, "hold") ? "held already" : sub,
                              !strncmp(sub, "active", 6)
                                  ? " (it is being delivered; try again "
                                    "after the attempt)" : "");
        return;
    }
    int rc = move(spool, "queue", "hold", id, err, sizeof err);
    if (rc == -2) {
        qt_api->control_write(out, "error: %s left the queue meanwhile (a "
                              "delivery took it); try again after the "
                              "attempt\n", id);
        return;
    }
    if (rc < 0) {
        qt_api->control_write(out, "error: hold %s: %s\n", id, err);
        return;
    }
    qt_api->log(qt_ctx, UPESI_LOG_NOTICE, "%s held by the administrator",
                id);
    qt_api->control_write(out, "held %s: it stays in hold/ until `upesi "
                          "queue release %s`\n", id, id);
}

static void cmd_release(upesi_control *out, const char *spool, const char *id)
{
    char err[9000], sub[300];
    if (find(spool, id, sub, sizeof sub) != 0 || strcmp(sub, "hold") != 0) {
        qt_api->control_write(out, "error: no held message %s\n", id);
        return;
    }
    int rc = move(spool, "hold", "queue", id, err, sizeof err);
    if (rc == -2) {
        qt_api->control_write(out, "error: no held message %s\n", id);
        return;
    }
    if (rc < 0) {
        qt_api->control_write(out, "error: release %s: %s\n", id, err);
        return;
    }
    if (qt_ops->released)
        qt_ops->released(spool, id);
    qt_api->log(qt_ctx, UPESI_LOG_NOTICE, "%s released by the "
                "administrator", id);
    qt_api->control_write(out, "released %s: back in the queue\n", id);
}

static void cmd_delete(upesi_control *out, const char *spool, const char *id)
{
    char sub[300], path[4600], dir[4400];
    if (find(spool, id, sub, sizeof sub) != 0) {
        qt_api->control_write(out, "error: no message %s in the queue\n", id);
        return;
    }
    if (!strncmp(sub, "active", 6)) {
        qt_api->control_write(out, "error: %s is being delivered; delete it "
                              "after the attempt\n", id);
        return;
    }
    snprintf(dir, sizeof dir, "%s/%s", spool, sub);
    snprintf(path, sizeof path, "%s/%s", dir, id);
    qt_summary s;
    int have = summarize(path, &s) == 0;
    if (unlink(path) != 0) {
        qt_api->control_write(out, "error: %s: %s\n", path, strerror(errno));
        return;
    }
    int rc = qt_api->dir_sync(dir);
    if (rc < 0)
        qt_api->control_write(out, "warning: %s: %s: the deletion may not "
                              "survive a crash\n", dir, strerror(-rc));
    if (qt_ops->deleted)
        qt_ops->deleted(spool, id);
    /* a message given up by hand: the log keeps who it was */
    qt_api->log(qt_ctx, UPESI_LOG_NOTICE, "%s deleted by the "
                "administrator from %s/ (from=<%s>, %d recipient%s)",
                id, sub,
                !have ? "?" : strcmp(s.sender, "<>") ? s.sender : "",
                have ? s.rcpts : 0, have && s.rcpts == 1 ? "" : "s");
    qt_api->control_write(out, "deleted %s (from %s/)\n", id, sub);
}

static void ctl_queue(const char *args, upesi_control *out, void *arg)
{
    const char *spool = qt_api->spool_dir(qt_ctx);
    if (spool == NULL) {
        qt_api->control_write(out, "error: no spool_dir\n");
        return;
    }
    char verb[16] = "", id[128] = "", extra[8] = "";
    int n = args ? sscanf(args, "%15s %127s %7s", verb, id, extra) : 0;
    if (n <= 0 || !strcmp(verb, "list")) {
        if (n > 1)
            qt_api->control_write(out, "error: usage: queue list\n");
        else
            cmd_list(out, spool);
        return;
    }
    if (!strcmp(verb, "flush")) {
        if (qt_ops->flush)
            qt_ops->flush(NULL, out, arg);
        else
            qt_api->control_write(out, "flush: %s delivers nothing itself "
                                  "(another program reads queue/); "
                                  "nothing to retry\n", qt_ops->plugin);
        return;
    }
    int is_show = !strcmp(verb, "show"), is_hold = !strcmp(verb, "hold"),
        is_release = !strcmp(verb, "release"),
        is_delete = !strcmp(verb, "delete");
    if (!is_show && !is_hold && !is_release && !is_delete) {
        qt_api->control_write(out, "error: unknown queue command '%s' (list, "
                              "show ID, delete ID, hold ID, release ID, "
                              "flush)\n", verb);
        return;
    }
    if (n != 2) {
        qt_api->control_write(out, "error: usage: queue %s ID\n", verb);
        return;
    }
    if (!queue_tools_id_ok(id)) {
        qt_api->control_write(out, "error: '%s' is not a queue id\n", id);
        return;
    }
    if (is_show)
        cmd_show(out, spool, id);
    else if (is_hold)
        cmd_hold(out, spool, id);
    else if (is_release)
        cmd_release(out, spool, id);
    else
        cmd_delete(out, spool, id);
}

int queue_tools_register(const upesi_api *api, upesi_ctx *ctx,
                         const queue_tools_ops *ops)
{
    qt_api = api;
    qt_ctx = ctx;
    qt_ops = ops;
    return api->control_register(ctx, "queue", ctl_queue, NULL);
}
