/*
 * actions.c - the message-action service (see actions.h).
 *
 * Files.  Each quarantine, journal or hold copy is written like a queue
 * file (docs/spool-format.md, version 1): open <spool_dir>/tmp/<id>.<kind>
 * O_EXCL, write envelope and message, fsync, rename to <spool_dir>/<kind>/
 * <id>, fsync <kind>/ (durable.c, the same calls plugins get in the ABI).
 * All of it runs on a libuv pool thread; the thread works on a snapshot (a
 * copy of the header block and of the in-memory data, a dup of the spill
 * file), so the session may go away meanwhile without pulling the message
 * from under it.
 *
 * Release.  `upesi release ID` works on the files, not through the server:
 * hold/ID is linked to queue/ID (link fails rather than overwrite), queue/
 * is fsynced, then hold/ID is unlinked and hold/ fsynced.  A crash between
 * the two leaves the same inode under both names, which a second release
 * recognises and finishes: at no point is the message in neither place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "actions.h"
#include "config.h"
#include "durable.h"
#include "envelope.h"
#include "log.h"
#include "simulate.h"
#include "session.h"
#include "smtp_ext.h"
#include "stats.h"

/* The host refuses RCPT past 1000 (session.c); copy_to may add a few. */
#define UP_ACTIONS_MAX_RCPTS 1100
#define UP_ACTIONS_CHUNK (64 * 1024)

static const char *const disposition_dir[] = {
    [UP_DISP_HOLD] = "hold", [UP_DISP_QUARANTINE] = "quarantine",
};

/* ---------------------------------------------------------------------- */
/* taking actions                                                          */

static int set_disposition(up_actions *a, up_disposition d,
                           const char *plugin, const char *arg)
{
    if (d < a->disposition)
        return 0;               /* a stronger one is already set */
    char *reason = NULL;
    if (arg && (reason = strdup(arg)) == NULL)
        return -ENOMEM;
    for (char *p = reason; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    free(a->reason);
    a->reason = reason;
    a->disposition = d;
    a->by = plugin;
    return 0;
}

/* An address for the envelope: <> optional, no controls, spaces, <, >;
 * something@something. */
static int copy_address(const char *arg, char *out, size_t outlen)
{
    size_t len = strlen(arg);
    if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>') {
        arg++;
        len -= 2;
    }
    if (len == 0 || len >= outlen || len > 256)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return -EINVAL;
    }
    memcpy(out, arg, len);
    out[len] = '\0';
    const char *at = strrchr(out, '@');
    if (at == NULL || at == out || at[1] == '\0')
        return -EINVAL;
    return 0;
}

static int add_recipient(up_session *s, const char *plugin, const char *arg)
{
    char addr[UP_MAX_ADDRESS];
    if (copy_address(arg, addr, sizeof addr) != 0)
        return -EINVAL;
    for (size_t i = 0; i < s->n_rcpts; i++)
        if (!strcasecmp(s->rcpts[i], addr))
            return 0;
    if (s->n_rcpts >= UP_ACTIONS_MAX_RCPTS)
        return -ENOSPC;
    if (s->n_rcpts == s->cap_rcpts) {
        size_t cap = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
        char **grown = realloc(s->rcpts, cap * sizeof *grown);
        if (grown == NULL)
            return -ENOMEM;
        s->rcpts = grown;
        s->cap_rcpts = cap;
    }
    if ((s->rcpts[s->n_rcpts] = up_packed_new(addr, NULL, NULL)) == NULL)
        return -ENOMEM;
    s->n_rcpts++;
    up_log(s->id, UPESI_LOG_INFO, "message %s: copy to <%s> added by %s",
           s->queue_id, addr, plugin);
    return 0;
}

static int add_tag(up_session *s, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg)
        return -EINVAL;
    char name[128];
    size_t len = (size_t)(colon - arg);
    while (len > 0 && (arg[len - 1] == ' ' || arg[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof name)
        return -EINVAL;
    memcpy(name, arg, len);
    name[len] = '\0';
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return -EINVAL;
    int rc = up_message_prepend_header(&s->msg, name, value);
    return rc < 0 ? rc : 0;
}

int up_actions_take(up_session *s, const char *plugin, upesi_action action,
                    const char *arg)
{
    up_actions *a = &s->actions;
    if (s->state == UP_ST_CLOSING || s->queue_id[0] == '\0')
        return -EINVAL;
    switch (action) {
    case UPESI_ACTION_QUARANTINE:
        return set_disposition(a, UP_DISP_QUARANTINE, plugin, arg);
    case UPESI_ACTION_HOLD:
        return set_disposition(a, UP_DISP_HOLD, plugin, arg);
    case UPESI_ACTION_DROP:
        return set_disposition(a, UP_DISP_DROP, plugin, arg);
    case UPESI_ACTION_REJECT:
        return set_disposition(a, UP_DISP_REJECT, plugin,
                               arg && *arg ? arg : UP_ACTIONS_REJECT_TEXT);
    case UPESI_ACTION_JOURNAL:
        a->journal = 1;
        a->journal_by = plugin;
        return 0;
    case UPESI_ACTION_COPY_TO:
        return arg ? add_recipient(s, plugin, arg) : -EINVAL;
    case UPESI_ACTION_TAG:
        return arg ? add_tag(s, arg) : -EINVAL;
    }
    return -EINVAL;
}

int up_actions_envelope(up_session *s, char **out, size_t *out_len,
                        const char **bad_key)
{
    /* the reverse name is not in upesi_conn_info: the host
     * leaves it in a connection note once it has looked it up */
    up_envelope e = {
        .conn = &s->info,
        .queue_id = s->queue_id,
        .client_name = up_notes_get(&s->conn_notes, "remote.name"),
        .sender = s->sender,
        .rcpts = (const char *const *)s->rcpts,
        .n_rcpts = s->n_rcpts,
        .packed = 1,
    };
    return up_envelope_build(&e, out, out_len, bad_key);
}

/* ---------------------------------------------------------------------- */
/* writing the files, on a pool thread                                     */

struct up_actions_work {
    uv_work_t req;
    up_session *session;        /* NULL once the transaction went away */
    up_actions_done done;
    char *spool_dir;
    char queue_id[32];
    const char *kinds[2];       /* subdirectories to write             */
    int n_kinds;
    int committed;              /* how many of kinds are in place      */
    char *env;
    size_t env_len;
    char *head;                 /* snapshot of the message             */
    size_t head_len;
    char *mem;
    size_t mem_len;
    int fd;                     /* dup of the spill file, or -1        */
    uint64_t data_len;
    int error;                  /* errno, 0 = ok                       */
};

static void work_free(up_actions_work *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->spool_dir);
    free(w->env);
    free(w->head);
    free(w->mem);
    free(w);
}

static int write_copy(up_actions_work *w, int fd)
{
    struct iovec iov[3] = {
        { w->env, w->env_len }, { w->head, w->head_len },
        { w->mem, w->mem_len },
    };
    int rc = -up_durable_file_write(fd, iov, w->fd < 0 ? 3 : 2);
    if (rc != 0 || w->fd < 0)
        return rc;
    char *chunk = malloc(UP_ACTIONS_CHUNK);
    if (chunk == NULL)
        return ENOMEM;
    for (uint64_t off = 0; rc == 0 && off < w->data_len;) {
        size_t want = UP_ACTIONS_CHUNK;
        if (want > w->data_len - off)
            want = (size_t)(w->data_len - off);
        ssize_t n = pread(w->fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? errno : EIO;
            break;
        }
        iov[0] = (struct iovec){ chunk, (size_t)n };
        rc = -up_durable_file_write(fd, iov, 1);
        off += (uint64_t)n;
    }
    free(chunk);
    return rc;
}

static int commit_one(up_actions_work *w, const char *kind)
{
    char tmp_dir[4096], dir[4096], tmp[4200], final[4200];
    int rc;
    snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", w->spool_dir);
    snprintf(dir, sizeof dir, "%s/%s", w->spool_dir, kind);
    snprintf(tmp, sizeof tmp, "%s/%s.%s", tmp_dir, w->queue_id, kind);
    snprintf(final, sizeof final, "%s/%s", dir, w->queue_id);
    if ((rc = -up_durable_dir_make(tmp_dir)) != 0 ||
        (rc = -up_durable_dir_make(dir)) != 0)
        return rc;
    int fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    if ((rc = write_copy(w, fd)) != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    if ((rc = -up_durable_file_commit(fd, tmp, final, 1)) != 0)
        return rc;
    if ((rc = -up_durable_dir_sync(dir)) != 0)
        unlink(final);
    return rc;
}

static void work_run(uv_work_t *req)
{
    up_actions_work *w = req->data;
    for (int i = 0; i < w->n_kinds && w->error == 0; i++) {
        w->error = commit_one(w, w->kinds[i]);
        if (w->error == 0)
            w->committed++;
    }
    /* all or nothing: the client will be told to send it again */
    for (int i = 0; w->error != 0 && i < w->committed; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/%s", w->spool_dir, w->kinds[i],
                 w->queue_id);
        unlink(path);
    }
}

static void log_outcome(up_session *s, int err)
{
    const up_actions *a = &s->actions;
    if (err) {
        up_log(s->id, UPESI_LOG_ERR, "message %s: cannot write its %s "
               "copy: %s", s->queue_id,
               a->journal && a->disposition < UP_DISP_HOLD ? "journal" :
               disposition_dir[a->disposition], strerror(err));
        up_stats_add("SMTP.Actions.Errors", 1);
        return;
    }
    if (a->journal) {
        up_log(s->id, UPESI_LOG_INFO, "message %s journaled by %s",
               s->queue_id, a->journal_by);
        up_stats_add("SMTP.Messages.Journaled", 1);
    }
    static const char *const verb[] = {
        [UP_DISP_DROP] = "dropped (not delivered)",
        [UP_DISP_HOLD] = "held in hold/",
        [UP_DISP_QUARANTINE] = "quarantined",
    };
    static const char *const stat[] = {
        [UP_DISP_DROP] = "SMTP.Messages.Dropped",
        [UP_DISP_HOLD] = "SMTP.Messages.Held",
        [UP_DISP_QUARANTINE] = "SMTP.Messages.Quarantined",
    };
    if (a->disposition == UP_DISP_DELIVER || a->disposition == UP_DISP_REJECT)
        return;
    up_log(s->id, UPESI_LOG_INFO, "message %s %s by %s%s%s from=<%s> "
           "nrcpt=%zu size=%lld", s->queue_id, verb[a->disposition], a->by,
           a->reason ? ": " : "", a->reason ? a->reason : "", s->sender,
           s->n_rcpts, (long long)up_message_size(&s->msg));
    up_stats_add(stat[a->disposition], 1);
}

static void work_after(uv_work_t *req, int status)
{
    up_actions_work *w = req->data;
    up_session *s = w->session;
    int err = status < 0 ? -status : w->error;
    if (s == NULL) {
        if (err == 0 && w->n_kinds)
            up_log(NULL, UPESI_LOG_WARNING, "message %s: client gone while "
                   "its %s copy was written; kept (the client may send it "
                   "again)", w->queue_id, w->kinds[w->n_kinds - 1]);
        work_free(w);
        return;
    }
    s->actions.work = NULL;
    up_actions_done done = w->done;
    work_free(w);
    log_outcome(s, err);
    done(s, err);
}

static int snapshot(up_actions_work *w, const up_message *m)
{
    w->fd = -1;
    if (m->head_len && (w->head = malloc(m->head_len)) == NULL)
        return ENOMEM;
    memcpy(w->head, m->head, m->head_len);
    w->head_len = m->head_len;
    w->data_len = m->data_len;
    if (m->fd >= 0) {
        w->fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
        return w->fd < 0 ? errno : 0;
    }
    if (m->mem_len && (w->mem = malloc(m->mem_len)) == NULL)
        return ENOMEM;
    if (m->mem_len)
        memcpy(w->mem, m->mem, m->mem_len);
    w->mem_len = m->mem_len;
    return 0;
}

void up_actions_run(up_session *s, up_actions_done done)
{
    up_actions *a = &s->actions;
    up_actions_work *w = calloc(1, sizeof *w);
    if (w == NULL) {
        done(s, ENOMEM);
        return;
    }
    w->fd = -1;
    if (a->journal && a->disposition != UP_DISP_REJECT)
        w->kinds[w->n_kinds++] = "journal";
    if (a->disposition == UP_DISP_HOLD || a->disposition == UP_DISP_QUARANTINE)
        w->kinds[w->n_kinds++] = disposition_dir[a->disposition];
    if (w->n_kinds == 0 || up_simulating()) {
        for (int i = 0; i < w->n_kinds; i++)
            up_simulate_trace("data_post: action %s -> not written (-bh)",
                              w->kinds[i]);
        work_free(w);
        if (!up_simulating())
            log_outcome(s, 0);
        done(s, 0);
        return;
    }
    int err = 0;
    snprintf(w->queue_id, sizeof w->queue_id, "%s", s->queue_id);
    if ((w->spool_dir = strdup(s->cfg->spool_dir)) == NULL)
        err = ENOMEM;
    if (err == 0) {
        const char *bad_key = NULL;
        int rc = up_actions_envelope(s, &w->env, &w->env_len, &bad_key);
        err = rc < 0 ? -rc : 0;
    }
    if (err == 0)
        err = snapshot(w, &s->msg);
    w->session = s;
    w->done = done;
    w->req.data = w;
    if (err == 0)
        err = -uv_queue_work(s->server->loop, &w->req, work_run, work_after);
    if (err != 0) {
        work_free(w);
        log_outcome(s, err);
        done(s, err);
        return;
    }
    a->work = w;
}

void up_actions_clear(up_actions *a)
{
    if (a->work)
        a->work->session = NULL;
    free(a->reason);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------- */
/* release                                                                 */

static int spool_dir_key(void *arg, const char *section, const char *key,
                         const char *value, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    char **out = arg;
    if (section[0] == '\0' && !strcmp(key, "spool_dir")) {
        free(*out);
        if ((*out = strdup(value)) == NULL)
            return -1;
    }
    return 0;
}

static int release_fail(const char *what, const char *path, int err)
{
    fprintf(stderr, "upesi: release: %s %s: %s\n", what, path,
            strerror(err));
    return 1;
}

int up_actions_release(const char *conf_dir, const char *queue_id)
{
    size_t idlen = strlen(queue_id);
    if (idlen == 0 || idlen >= 32 ||
        strspn(queue_id, "0123456789ABCDEFabcdefGHIJKLMNOPQRSTUVWXYZ"
                         "ghijklmnopqrstuvwxyz") != idlen) {
        fprintf(stderr, "upesi: release: '%s' is not a queue id\n",
                queue_id);
        return 1;
    }
    char *value = NULL;
    char *ini = up_config_path(conf_dir, "smtp.ini");
    if (ini == NULL || up_ini_parse(ini, spool_dir_key, &value) != 0) {
        free(ini);
        free(value);
        return 1;
    }
    char *spool = up_config_path(conf_dir, value ? value : "spool");
    free(ini);
    free(value);
    if (spool == NULL)
        return 1;
    char hold_dir[4096], queue_dir[4096], held[4200], queued[4200];
    snprintf(hold_dir, sizeof hold_dir, "%s/hold", spool);
    snprintf(queue_dir, sizeof queue_dir, "%s/queue", spool);
    snprintf(held, sizeof held, "%s/%s", hold_dir, queue_id);
    snprintf(queued, sizeof queued, "%s/%s", queue_dir, queue_id);

    int rc = 1, err;
    int fd = open(held, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = release_fail("cannot open", held, errno);
        goto out;
    }
    char magic[16] = "";
    ssize_t n = read(fd, magic, 15);
    int synced = fsync(fd);
    err = errno;
    close(fd);
    /* version 1, or 2 (SMTPUTF8, DSN or BINARYMIME parameters: a hold
     * action keeps them, docs/spool-format.md) */
    if (n != 15 || (memcmp(magic, "Upesi-Spool: 1\n", 15) != 0 &&
                    memcmp(magic, "Upesi-Spool: 2\n", 15) != 0)) {
        fprintf(stderr, "upesi: release: %s is not a spool file of "
                "version 1 or 2\n", held);
        goto out;
    }
    if (synced < 0) {
        rc = release_fail("cannot fsync", held, err);
        goto out;
    }
    if ((err = -up_durable_dir_make(queue_dir)) != 0) {
        rc = release_fail("cannot create", queue_dir, err);
        goto out;
    }
    if (link(held, queued) < 0) {
        struct stat a, b;
        err = errno;
        if (err != EEXIST || stat(held, &a) != 0 || stat(queued, &b) != 0
            || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            rc = release_fail("cannot link to", queued, err);
            goto out;
        }
        /* an earlier release stopped half way: finish it */
    }
    if ((err = -up_durable_dir_sync(queue_dir)) != 0) {
        unlink(queued);
        rc = release_fail("cannot fsync", queue_dir, err);
        goto out;
    }
    if (unlink(held) < 0) {
        rc = release_fail("cannot unlink", held, errno);
        goto out;
    }
    if ((err = -up_durable_dir_sync(hold_dir)) != 0) {
        rc = release_fail("cannot fsync", hold_dir, err);
        goto out;
    }
    printf("released %s: %s -> %s\n", queue_id, held, queued);
    rc = 0;
out:
    free(spool);
    return rc;
}
