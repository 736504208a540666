/*
 * queue_spool.c - the queue hook that makes a message durable before the
 * 250 (DESIGN.md 7, "Nothing lost").
 *
 * Each message becomes <spool_dir>/tmp/<queue_id>: a text envelope, an
 * empty line, then the message exactly as the host stores it
 * (docs/spool-format.md).  A message of up to 64 KiB (nearly all mail) is
 * copied into memory by the hook and its file created and written by the
 * commit thread, so that the event loop, which serves every session of
 * the worker, never waits on the file system for it (a create can wait
 * for the journal, a write for dirty-page throttling); a larger one is
 * written by the hook, 64 KiB at a time, so that memory stays flat.  The
 * hook returns PENDING and the message waits for a commit batch, which
 * runs on a pool thread (api->queue_work): write the files it holds,
 * fsync them (one syncfs when the batch holds several), rename each to
 * <spool_dir>/queue/<queue_id>, fsync the queue directory once.  Only then
 * does the client get 250.  Messages written while a batch runs join the
 * next one, so concurrent sessions share the directory fsync and the wait
 * (group commit): the busier the server, the fewer fsyncs per message.
 *
 * Fails: a write, fsync or rename error removes the file and answers
 * 451 4.3.0 (452 4.3.1 when the disk or the quota is full); no half-written
 * file is ever visible in queue/, because only a whole, fsynced file is
 * renamed there.  If the directory fsync fails after the rename, the file
 * is unlinked again and the client told to retry: at worst a duplicate
 * after a crash, never a loss.  A call the host cancels (client gone,
 * plugin_timeout) while its message still waits for a batch is removed at
 * once; one cancelled while its batch runs is committed whole (the client
 * may send it again: a duplicate, which RFC 5321 6.1 prefers to a loss) and
 * is never resumed.  Errors are logged; success is the host's log line.
 *
 * One batcher per process: the host runs one event loop per worker
 * process, and every function here except spool_batch_work runs on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "upesi/plugin.h"
#include "../common/queue_tools.h"
#include "../common/settings.h"

#define SPOOL_CHUNK (64 * 1024)          /* message_read size          */
#define SPOOL_INLINE_MAX (64 * 1024)     /* written by the commit thread */
#define SPOOL_MAX_BATCH_LIMIT 65536

static const upesi_api *spool_api;
static upesi_ctx *spool_ctx;

/* ---------------------------------------------------------------------- */
/* Settings (conf/queue_spool.ini)                                        */

typedef struct spool_config {
    int fsync;          /* 0 breaks the promise of the 250: tests only  */
    int max_batch;      /* messages per commit batch                    */
} spool_config;

static void *spool_config_new(void)
{
    return calloc(1, sizeof(spool_config));  /* defaults: spool_settings */
}

static const upesi_setting spool_settings[] = {
    { "fsync", UPESI_SETTING_BOOL, offsetof(spool_config, fsync), 0, 0, NULL,
      NULL, "1", "off: no fsync before the 250 (a crash may lose accepted "
      "mail; for benchmarks only)" },
    { "max_batch", UPESI_SETTING_INT, offsetof(spool_config, max_batch), 1,
      SPOOL_MAX_BATCH_LIMIT, NULL, NULL, "256", "messages one group commit "
      "may make durable together" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static void spool_config_free(void *config)
{
    free(config);
}

/* ---------------------------------------------------------------------- */
/* The spool directories                                                  */

/* Create spool_dir, spool_dir/tmp and spool_dir/queue if missing.  When
 * anything is created, the new directory entries are made durable too
 * (api->dir_make), or the first committed message could vanish with its
 * directory.  No other API calls: the commit thread uses it too. */
static int spool_make_dirs(const char *spool_dir, char *err, size_t errlen)
{
    static const char *const subdirs[] = { "", "/tmp", "/queue" };
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", spool_dir, subdirs[i]);
        int rc = spool_api->dir_make(path);
        if (rc < 0) {
            snprintf(err, errlen, "spool directory %s: %s", path,
                     strerror(-rc));
            return -1;
        }
    }
    return 0;
}

static int spool_config_check(void *config, char *err, size_t errlen)
{
    const spool_config *cfg = config;
    const char *dir = spool_api ? spool_api->spool_dir(spool_ctx) : NULL;
    if (dir == NULL || dir[0] == '\0') {
        snprintf(err, errlen, "no spool_dir set in smtp.ini");
        return -1;
    }
    if (!cfg->fsync)
        spool_api->log(spool_ctx, UPESI_LOG_WARNING, "fsync = 0: "
                       "a crash can lose mail already answered 250; for "
                       "tests only");
    return spool_make_dirs(dir, err, errlen);
}

/* ---------------------------------------------------------------------- */
/* One message on its way to queue/                                       */

typedef struct spool_item {
    struct spool_item *prev, *next;     /* waiting list, then batch list */
    upesi_call *call;                   /* NULL once the host cancelled  */
    int in_batch;                       /* its batch is running          */
    int fd;                             /* the temp file, until fsynced  */
    char *data;                         /* or envelope + message, for    */
    size_t data_len;                    /* the batch to write (small)    */
    int do_fsync;                       /* settings of the message's     */
    int max_batch;                      /* config generation             */
    int error;                          /* errno from the batch, 0 = ok  */
    char *spool_dir;
    char *tmp_path;
    char *queue_path;
    char *queue_dir;
    char queue_id[64];
} spool_item;

typedef struct spool_batch {
    spool_item *head;
    size_t n;
} spool_batch;

/* Messages written and waiting for the next batch; at most one batch
 * runs at a time, so that everything written meanwhile shares the next. */
static struct {
    spool_item *head, *tail;
    size_t n;
    int running;
} spool_waiting;

static void spool_item_free(spool_item *item)
{
    if (item->fd >= 0)
        close(item->fd);
    free(item->data);
    free(item->spool_dir);
    free(item->tmp_path);
    free(item->queue_path);
    free(item->queue_dir);
    free(item);
}

static void spool_waiting_append(spool_item *item)
{
    item->prev = spool_waiting.tail;
    item->next = NULL;
    if (spool_waiting.tail)
        spool_waiting.tail->next = item;
    else
        spool_waiting.head = item;
    spool_waiting.tail = item;
    spool_waiting.n++;
}

static void spool_waiting_remove(spool_item *item)
{
    if (item->prev)
        item->prev->next = item->next;
    else
        spool_waiting.head = item->next;
    if (item->next)
        item->next->prev = item->prev;
    else
        spool_waiting.tail = item->prev;
    item->prev = item->next = NULL;
    spool_waiting.n--;
}

/* The reply for a failed write or commit: a full disk or quota is worth
 * telling apart (RFC 3463 4.3.1), anything else is a queue error. */
static void spool_reply_error(upesi_call *call, int err)
{
    if (err == ENOSPC || err == EDQUOT)
        spool_api->reply(call, 452, "4.3.1", "Insufficient system storage");
    else
        spool_api->reply(call, 451, "4.3.0",
                         "Error: queue file write error");
}

/* ---------------------------------------------------------------------- */
/* Group commit                                                           */

static int spool_open_tmp(const char *spool_dir, const char *path,
                          char *err, size_t errlen);

/* On a pool thread: create and write the temp file of a message the hook
 * kept in memory.  Leaves item->fd open, or sets item->error. */
static void spool_item_write(spool_item *item)
{
    char err[256];
    item->fd = spool_open_tmp(item->spool_dir, item->tmp_path, err,
                              sizeof err);
    if (item->fd < 0) {
        item->error = errno;
        return;
    }
    struct iovec iov = { item->data, item->data_len };
    int rc = spool_api->file_write(item->fd, &iov, 1);
    free(item->data);
    item->data = NULL;
    if (rc < 0) {
        item->error = -rc;
        close(item->fd);
        item->fd = -1;
        unlink(item->tmp_path);
    }
}

/* On a pool thread: of the API only the thread-safe file functions
 * (file_write, file_commit, dir_make, dir_sync).  Per-item errors are
 * recorded for spool_batch_done; a failed item's file is removed here. */
static void spool_batch_work(void *arg)
{
    spool_batch *batch = arg;
    spool_item *item;

    for (item = batch->head; item; item = item->next)
        if (item->data != NULL)
            spool_item_write(item);

    /* Several files: one syncfs writes them all with a single device
     * flush, where an fsync each would flush the device once per file (on
     * most disks the flush is the whole cost).  Only when they are all on
     * one file system (a reload may have moved spool_dir while messages
     * waited): syncfs flushes one.  If it fails we fall back to an fsync
     * per file, which tells which file failed. */
    int synced = 0, to_sync = 0, any_fd = -1, one_fs = 1;
    dev_t dev = 0;
    for (item = batch->head; item; item = item->next)
        if (item->do_fsync && item->error == 0) {
            struct stat st;
            if (fstat(item->fd, &st) != 0 || (to_sync && st.st_dev != dev))
                one_fs = 0;
            dev = st.st_dev;
            to_sync++;
            any_fd = item->fd;
        }
    if (to_sync > 1 && one_fs && syncfs(any_fd) == 0)
        synced = 1;

    for (item = batch->head; item; item = item->next) {
        if (item->fd < 0)       /* its write failed: removed already */
            continue;
        /* syncfs reports a write-back error only once, through the file
         * system, and not at all to a file opened after another caller
         * was told (nor before Linux 5.8): each file's own error is asked
         * for, without a device flush (sync_file_range waits for its pages
         * and reports their error, once: the message fails here) */
        if (item->do_fsync && synced &&
            sync_file_range(item->fd, 0, 0,
                            SYNC_FILE_RANGE_WAIT_BEFORE |
                                SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            item->error = errno;
            close(item->fd);
            item->fd = -1;
            unlink(item->tmp_path);
            continue;
        }
        /* fsync unless the syncfs did; close; rename; unlink on error */
        int rc = spool_api->file_commit(item->fd, item->tmp_path,
                                        item->queue_path,
                                        item->do_fsync && !synced);
        item->fd = -1;
        if (rc < 0)
            item->error = -rc;
    }

    /* One directory fsync per queue directory in the batch (there is one,
     * unless a reload changed spool_dir while messages were waiting). */
    for (item = batch->head; item; item = item->next) {
        if (item->error != 0 || !item->do_fsync)
            continue;
        spool_item *seen;
        for (seen = batch->head; seen != item; seen = seen->next)
            if (seen->error == 0 && seen->do_fsync
                && strcmp(seen->queue_dir, item->queue_dir) == 0)
                break;
        if (seen != item)
            continue;
        int rc = spool_api->dir_sync(item->queue_dir);
        if (rc == 0)
            continue;
        /* the renames may not survive a crash: take them back, the
         * clients will be told to retry */
        for (spool_item *same = item; same; same = same->next)
            if (same->error == 0 && same->do_fsync
                && strcmp(same->queue_dir, item->queue_dir) == 0) {
                same->error = -rc;
                unlink(same->queue_path);
            }
    }
}

static void spool_batch_start(void);

/* On the loop: answer every call in the batch, then start the next. */
static void spool_batch_done(void *arg, int status)
{
    spool_batch *batch = arg;

    if (status < 0)             /* the host could not run it: do it here */
        spool_batch_work(batch);
    spool_api->stat_add(spool_ctx, "SMTP.Spool.Commits", 1);

    spool_item *item = batch->head;
    while (item) {
        spool_item *next = item->next;
        if (item->error == 0) {
            spool_api->stat_add(spool_ctx, "SMTP.Spool.Messages", 1);
            if (item->call) {
                spool_api->reply(item->call, 250, "2.0.0",
                                 "Ok: queued as %s", item->queue_id);
                spool_api->resume(item->call, UPESI_OK);
            } else {
                spool_api->log(spool_ctx, UPESI_LOG_WARNING, "%s "
                               "committed after its session gave up on "
                               "it; the client may send it again",
                               item->queue_id);
            }
        } else {
            spool_api->stat_add(spool_ctx, "SMTP.Spool.Errors", 1);
            /* with a call the host names the session too */
            if (item->call)
                spool_api->log_call(item->call, UPESI_LOG_ERR, "%s: commit "
                                    "failed: %s", item->queue_id,
                                    strerror(item->error));
            else
                spool_api->log(spool_ctx, UPESI_LOG_ERR, "%s: commit failed: "
                               "%s", item->queue_id, strerror(item->error));
            if (item->call) {
                spool_reply_error(item->call, item->error);
                spool_api->resume(item->call, UPESI_DENYSOFT);
            }
        }
        spool_item_free(item);
        item = next;
    }
    free(batch);

    spool_waiting.running = 0;
    spool_batch_start();
}

/* Take up to max_batch waiting messages into one batch and hand it to the
 * pool.  Nothing to do while a batch runs: its done callback comes back. */
static void spool_batch_start(void)
{
    if (spool_waiting.running || spool_waiting.head == NULL)
        return;

    spool_batch *batch = calloc(1, sizeof *batch);
    if (batch == NULL) {
        /* the messages stay waiting, which loses nothing: the next
         * message retries the start, or plugin_timeout cancels them and
         * the cancel removes their files */
        spool_api->log(spool_ctx, UPESI_LOG_ERR, "out of memory "
                       "starting a commit batch");
        return;
    }
    size_t max = (size_t)spool_waiting.head->max_batch;
    spool_item *tail = NULL;
    while (spool_waiting.head && batch->n < max) {
        spool_item *item = spool_waiting.head;
        spool_waiting_remove(item);
        item->in_batch = 1;
        if (tail)
            tail->next = item;
        else
            batch->head = item;
        tail = item;
        batch->n++;
    }

    spool_waiting.running = 1;
    if (spool_api->queue_work(spool_ctx, spool_batch_work, spool_batch_done, batch) < 0)
        spool_batch_done(batch, -1);
}

/* The host gave up on the call: from now on the item must not touch it. */
static void spool_cancel(upesi_call *call, void *arg)
{
    spool_item *item = arg;
    (void)call;
    item->call = NULL;
    if (item->in_batch)         /* the batch commits it and frees it */
        return;
    spool_waiting_remove(item);
    if (item->fd >= 0) {        /* a large message, written by the hook */
        close(item->fd);
        item->fd = -1;
        unlink(item->tmp_path);
    }
    spool_item_free(item);
}

/* ---------------------------------------------------------------------- */
/* Writing the temp file                                                  */

/* Queue ids come from the host; they become file names, so be sure. */
static int spool_queue_id_ok(const char *id)
{
    if (id == NULL || id[0] == '\0' || id[0] == '.' || strlen(id) >= 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == '.'))
            return 0;
    return 1;
}

/* Read the message from the host and write envelope + message to fd.
 * 0 or -errno. */
static int spool_write_message(upesi_call *call, int fd, char *env,
                               size_t env_len)
{
    off_t size = spool_api->message_size(call);
    if (size < 0)
        return -EIO;
    char *chunk = malloc(SPOOL_CHUNK);
    if (chunk == NULL)
        return -ENOMEM;

    int rc = 0;
    off_t off = 0;
    do {
        size_t want = SPOOL_CHUNK;
        if ((off_t)want > size - off)
            want = (size_t)(size - off);
        size_t got = 0;
        while (got < want) {
            ssize_t n = spool_api->message_read(call, off + (off_t)got,
                                                chunk + got, want - got);
            if (n < 0) {
                rc = (int)n;
                goto out;
            }
            if (n == 0) {       /* shorter than message_size said */
                rc = -EIO;
                goto out;
            }
            got += (size_t)n;
        }
        struct iovec iov[2];
        int iovcnt = 0;
        if (env_len > 0) {      /* envelope and first chunk: one syscall */
            iov[iovcnt++] = (struct iovec){ env, env_len };
            env_len = 0;
        }
        if (got > 0)
            iov[iovcnt++] = (struct iovec){ chunk, got };
        if ((rc = spool_api->file_write(fd, iov, iovcnt)) < 0)
            goto out;
        off += (off_t)got;
    } while (off < size);
out:
    free(chunk);
    return rc;
}

/* Paths of the item, in spool_dir.  0 or -ENOMEM. */
static int spool_item_paths(spool_item *item, const char *spool_dir)
{
    if (asprintf(&item->tmp_path, "%s/tmp/%s", spool_dir,
                 item->queue_id) < 0) {
        item->tmp_path = NULL;
        return -ENOMEM;
    }
    if (asprintf(&item->queue_path, "%s/queue/%s", spool_dir,
                 item->queue_id) < 0) {
        item->queue_path = NULL;
        return -ENOMEM;
    }
    if (asprintf(&item->queue_dir, "%s/queue", spool_dir) < 0) {
        item->queue_dir = NULL;
        return -ENOMEM;
    }
    if ((item->spool_dir = strdup(spool_dir)) == NULL)
        return -ENOMEM;
    return 0;
}

/* Create the temp file; if tmp/ was removed under us, recreate the
 * directories first (err says why that failed).  An fd, or -1 with errno
 * set.  Of the API only the thread-safe file functions: the commit thread
 * uses it too. */
static int spool_open_tmp(const char *spool_dir, const char *path,
                          char *err, size_t errlen)
{
    err[0] = '\0';
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        if (spool_make_dirs(spool_dir, err, errlen) < 0) {
            errno = ENOENT;
            return -1;
        }
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    }
    return fd;
}

/* A message of at most SPOOL_INLINE_MAX bytes is copied into memory here
 * and the commit thread creates and writes its file: the loop then spends
 * no time in the file system (creating a file is most of a small
 * message's cost on the loop).  A larger one is written here, 64 KiB at a
 * time, so that memory stays flat whatever the size.  0 or -errno. */
static int spool_read_whole(upesi_call *call, spool_item *item, char *env,
                            size_t env_len, off_t size)
{
    char *data = malloc(env_len + (size_t)size);
    if (data == NULL)
        return -ENOMEM;
    memcpy(data, env, env_len);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = spool_api->message_read(call, (off_t)got,
                                            data + env_len + got,
                                            (size_t)size - got);
        if (n <= 0) {           /* error, or shorter than message_size */
            free(data);
            return n < 0 ? (int)n : -EIO;
        }
        got += (size_t)n;
    }
    item->data = data;
    item->data_len = env_len + (size_t)size;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The queue hook                                                         */

static upesi_verdict spool_queue(upesi_call *call)
{
    const upesi_api *api = spool_api;
    const spool_config *cfg = api->config(call);
    const char *queue_id = api->queue_id(call);
    const char *spool_dir = api->spool_dir(spool_ctx);
    int err;

    if (!spool_queue_id_ok(queue_id)) {
        api->log_call(call, UPESI_LOG_ERR, "unusable queue id '%s'",
                 queue_id ? queue_id : "(none)");
        api->stat_add(spool_ctx, "SMTP.Spool.Errors", 1);
        spool_reply_error(call, EINVAL);
        return UPESI_DENYSOFT;
    }

    char *env;
    size_t env_len;
    const char *bad_key = NULL;
    int rc = api->spool_envelope(call, &env, &env_len, &bad_key);
    if (rc < 0) {
        if (bad_key)
            api->log_call(call, UPESI_LOG_ERR, "%s: refused: CR or "
                     "LF in the %s envelope field", queue_id, bad_key);
        else
            api->log_call(call, UPESI_LOG_ERR, "%s: envelope: %s", queue_id,
                     strerror(-rc));
        api->stat_add(spool_ctx, "SMTP.Spool.Errors", 1);
        spool_reply_error(call, EINVAL);
        return UPESI_DENYSOFT;
    }

    spool_item *item = calloc(1, sizeof *item);
    if (item == NULL) {
        api->free(env);
        err = ENOMEM;
        goto fail;
    }
    item->fd = -1;
    item->call = call;
    item->do_fsync = cfg ? cfg->fsync : 1;
    item->max_batch = cfg ? cfg->max_batch : 256;
    snprintf(item->queue_id, sizeof item->queue_id, "%s", queue_id);
    if (spool_item_paths(item, spool_dir) < 0) {
        api->free(env);
        spool_item_free(item);
        err = ENOMEM;
        goto fail;
    }

    off_t size = api->message_size(call);
    if (size >= 0 && size <= SPOOL_INLINE_MAX) {
        rc = spool_read_whole(call, item, env, env_len, size);
        api->free(env);
        if (rc < 0) {
            err = -rc;
            api->log_call(call, UPESI_LOG_ERR, "%s: reading the message: %s",
                     queue_id, strerror(err));
            spool_item_free(item);
            goto fail;
        }
    } else {
        char dir_err[256];
        item->fd = spool_open_tmp(spool_dir, item->tmp_path, dir_err,
                                  sizeof dir_err);
        if (item->fd < 0) {
            err = errno;
            api->log_call(call, UPESI_LOG_ERR, "%s: open %s: %s%s%s",
                     queue_id, item->tmp_path, strerror(err),
                     dir_err[0] ? "; " : "", dir_err);
            api->free(env);
            spool_item_free(item);
            goto fail;
        }
        rc = spool_write_message(call, item->fd, env, env_len);
        api->free(env);
        if (rc < 0) {
            err = -rc;
            api->log_call(call, UPESI_LOG_ERR, "%s: write %s: %s",
                     queue_id, item->tmp_path, strerror(err));
            unlink(item->tmp_path);
            spool_item_free(item);
            goto fail;
        }
    }

    spool_waiting_append(item);
    api->on_cancel(call, spool_cancel, item);
    spool_batch_start();
    return UPESI_PENDING;

fail:
    api->stat_add(spool_ctx, "SMTP.Spool.Errors", 1);
    spool_reply_error(call, err);
    return UPESI_DENYSOFT;
}

/* ---------------------------------------------------------------------- */

static const queue_tools_ops spool_queue_ops = {
    .plugin = "queue_spool",
};

static int spool_init(upesi_ctx *ctx, const upesi_api *api, char *err,
                      size_t errlen)
{
    spool_ctx = ctx;
    spool_api = api;
    /* `upesi queue ...`: queue/ and hold/ are this plugin's to show */
    int rc = queue_tools_register(api, ctx, &spool_queue_ops);
    if (rc < 0) {
        snprintf(err, errlen, "cannot register the queue command: %s",
                 api->strerror(rc));
        return -1;
    }
    return 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER,
    .name = "queue_spool",
    .version = "1.0",
    .init = spool_init,
    .config_new = spool_config_new,
    .settings = spool_settings,
    .config_check = spool_config_check,
    .config_free = spool_config_free,
    .hooks = {
        [UPESI_HOOK_QUEUE] = spool_queue,
    },
};
