/*
 * fwd_store.c - spool files in queue_spool's format (docs/spool-format.md),
 * written durably with group commit.
 *
 * A file is written to <spool_dir>/tmp/<id> on the loop; it then joins the
 * next commit batch, which runs on a pool thread: fsync each file, rename
 * it into its directory (queue/ or dead/), one fsync per directory for the
 * whole batch.  Only then does the caller's done run (with 0).  Files
 * written while a batch runs wait for the next: the busier, the fewer
 * fsyncs per message.
 *
 * Directories under spool_dir: tmp/ queue/ (queue_spool's), active/<pid>/
 * (a worker's claimed messages), deferred/<id> (retry state), dead/.
 *
 * Fails: a write, fsync or rename error removes the file and done gets the
 * errno; a failed directory fsync takes the renames back (unlink), so a
 * caller that answers 4xx on error never loses mail, at worst duplicates.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "forward.h"

#define FWD_CHUNK (64 * 1024)

/* ---------------------------------------------------------------------- */
/* envelopes                                                              */

void fwd_env_free(fwd_env *env)
{
    char **fields[] = { &env->queue_id, &env->arrival, &env->client_ip,
                        &env->client_port, &env->client_name, &env->helo,
                        &env->protocol, &env->tls, &env->auth,
                        &env->sender };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        free(*fields[i]);
        *fields[i] = NULL;
    }
    for (size_t i = 0; i < env->n_rcpts; i++) {
        free(env->rcpts[i]);
        if (env->rcpt_params)
            free(env->rcpt_params[i]);
    }
    free(env->rcpts);
    free(env->rcpt_params);
    free(env->mail_params);
    env->rcpts = NULL;
    env->rcpt_params = NULL;
    env->mail_params = NULL;
    env->n_rcpts = 0;
}

int fwd_env_add_rcpt_params(fwd_env *env, const char *rcpt,
                            const char *params)
{
    char **r = realloc(env->rcpts, (env->n_rcpts + 1) * sizeof *r);
    if (r == NULL)
        return -1;
    env->rcpts = r;
    char **p = realloc(env->rcpt_params, (env->n_rcpts + 1) * sizeof *p);
    if (p == NULL)
        return -1;
    env->rcpt_params = p;
    p[env->n_rcpts] = NULL;
    if ((r[env->n_rcpts] = strdup(rcpt)) == NULL)
        return -1;
    if (params && params[0] && (p[env->n_rcpts] = strdup(params)) == NULL) {
        free(r[env->n_rcpts]);
        return -1;
    }
    env->n_rcpts++;
    return 0;
}

int fwd_env_add_rcpt(fwd_env *env, const char *rcpt)
{
    return fwd_env_add_rcpt_params(env, rcpt, NULL);
}

int fwd_param_get(const char *list, const char *keyword, char *out,
                  size_t outlen)
{
    size_t kl = strlen(keyword);
    for (const char *p = list; p && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len >= kl && !strncasecmp(p, keyword, kl) &&
            (len == kl || p[kl] == '=')) {
            const char *v = len == kl ? p + len : p + kl + 1;
            snprintf(out, outlen, "%.*s", (int)(p + len - v), v);
            return 1;
        }
        p += len;
    }
    if (outlen)
        out[0] = '\0';
    return 0;
}

int fwd_binarymime(const char *mail_params)
{
    char v[16];
    return fwd_param_get(mail_params, "BODY", v, sizeof v) &&
           !strcasecmp(v, "BINARYMIME");
}

unsigned fwd_notify_bits(const char *rcpt_params)
{
    char v[64];
    if (!fwd_param_get(rcpt_params, "NOTIFY", v, sizeof v))
        return FWD_NOTIFY_FAILURE;
    unsigned bits = 0;
    for (char *save = NULL, *w = strtok_r(v, ",", &save); w;
         w = strtok_r(NULL, ",", &save))
        bits |= !strcasecmp(w, "NEVER") ? FWD_NOTIFY_NEVER
              : !strcasecmp(w, "SUCCESS") ? FWD_NOTIFY_SUCCESS
              : !strcasecmp(w, "FAILURE") ? FWD_NOTIFY_FAILURE
              : !strcasecmp(w, "DELAY") ? FWD_NOTIFY_DELAY : 0;
    return bits;
}

/* the envelope with rcpts[i] / params[i] (params NULL or entries NULL) */
static char *env_format(const fwd_env *env, char *const *rcpts,
                        const char *const *params, size_t n_rcpts,
                        size_t *len)
{
    int v2 = env->mail_params && env->mail_params[0];
    for (size_t i = 0; params && i < n_rcpts; i++)
        v2 |= params[i] && params[i][0];
    struct { const char *key, *value; } lines[] = {
        { "Upesi-Spool", v2 ? "2" : "1" },
        { "Queue-Id", env->queue_id },
        { "Arrival", env->arrival },
        { "Client-IP", env->client_ip },
        { "Client-Port", env->client_port },
        { "Client-Name", env->client_name },
        { "Helo", env->helo },
        { "Protocol", env->protocol },
        { "TLS", env->tls },
        { "Auth", env->auth },
        { "Sender", env->sender },
    };
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL)
        return NULL;
    int bad = 0;
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        const char *v = lines[i].value ? lines[i].value : "";
        bad |= strpbrk(v, "\r\n") != NULL;
        fprintf(f, "%s: %s\n", lines[i].key, v);
    }
    if (env->mail_params && env->mail_params[0]) {
        bad |= strpbrk(env->mail_params, "\r\n") != NULL;
        fprintf(f, "Mail-Params: %s\n", env->mail_params);
    }
    for (size_t i = 0; i < n_rcpts; i++) {
        bad |= strpbrk(rcpts[i], "\r\n") != NULL;
        fprintf(f, "Recipient: %s\n", rcpts[i]);
        if (params && params[i] && params[i][0]) {
            bad |= strpbrk(params[i], "\r\n") != NULL;
            fprintf(f, "Rcpt-Params: %s\n", params[i]);
        }
    }
    fputc('\n', f);
    if (fclose(f) != 0 || bad) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

char *fwd_env_format(const fwd_env *env, size_t *len)
{
    return env_format(env, env->rcpts, (const char *const *)env->rcpt_params,
                      env->n_rcpts, len);
}

char *fwd_env_format_rcpts(const fwd_env *env, fwd_rcpt *const *rcpts,
                           size_t n, size_t *len)
{
    char **addrs = calloc(n + 1, sizeof *addrs);
    const char **params = calloc(n + 1, sizeof *params);
    char *text = NULL;
    if (addrs && params) {
        for (size_t i = 0; i < n; i++) {
            addrs[i] = rcpts[i]->addr;
            params[i] = rcpts[i]->params;
        }
        text = env_format(env, addrs, params, n, len);
    }
    free(addrs);
    free(params);
    return text;
}

int fwd_env_parse(const char *text, size_t len, fwd_env *env)
{
    memset(env, 0, sizeof *env);
    struct { const char *key; char **field; } keys[] = {
        { "Queue-Id", &env->queue_id }, { "Arrival", &env->arrival },
        { "Client-IP", &env->client_ip }, { "Client-Port", &env->client_port },
        { "Client-Name", &env->client_name }, { "Helo", &env->helo },
        { "Protocol", &env->protocol }, { "TLS", &env->tls },
        { "Auth", &env->auth }, { "Sender", &env->sender },
    };
    int version_ok = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        if (nl == p)
            break;                      /* the empty line */
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (colon == NULL || colon + 1 >= nl || colon[1] != ' ') {
            if (colon && colon + 1 == nl) {     /* "Helo:" without space */
            } else if (colon == NULL)
                goto bad;
        }
        size_t klen = (size_t)(colon - p);
        const char *v = colon + 1 < nl && colon[1] == ' ' ? colon + 2
                                                           : colon + 1;
        /* not strndup: text need not hold a NUL anywhere (the runner
         * reads the file's first 16 KiB, the message right after the
         * envelope), and strndup may look for one past nl */
        char *value = malloc((size_t)(nl - v) + 1);
        if (value == NULL)
            goto bad;
        memcpy(value, v, (size_t)(nl - v));
        value[nl - v] = '\0';
        if (klen == 11 && !memcmp(p, "Upesi-Spool", 11)) {
            version_ok = !strcmp(value, "1") || !strcmp(value, "2");
            free(value);
        } else if (klen == 11 && !memcmp(p, "Rcpt-Params", 11)) {
            /* belongs to the Recipient line before it */
            if (env->n_rcpts == 0 || env->rcpt_params[env->n_rcpts - 1]) {
                free(value);
                goto bad;
            }
            env->rcpt_params[env->n_rcpts - 1] = value;
        } else if (klen == 11 && !memcmp(p, "Mail-Params", 11)) {
            free(env->mail_params);
            env->mail_params = value;
        } else if (klen == 9 && !memcmp(p, "Recipient", 9)) {
            int rc = fwd_env_add_rcpt(env, value);
            free(value);
            if (rc < 0)
                goto bad;
        } else {
            size_t i;
            for (i = 0; i < sizeof keys / sizeof *keys; i++)
                if (strlen(keys[i].key) == klen &&
                    !memcmp(p, keys[i].key, klen))
                    break;
            if (i < sizeof keys / sizeof *keys) {
                free(*keys[i].field);
                *keys[i].field = value;
            } else {
                free(value);            /* a key of a later version */
            }
        }
        p = nl + 1;
    }
    if (!version_ok || env->sender == NULL || env->queue_id == NULL)
        goto bad;
    return 0;
bad:
    fwd_env_free(env);
    return -1;
}

void fwd_make_queue_id(char *out, size_t len)
{
    static unsigned counter;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    /* the host's shape, with an F: never equal to a host-made id */
    snprintf(out, len, "%08lX%05lX%05X%02XF", (unsigned long)tv.tv_sec,
             (unsigned long)tv.tv_usec, (unsigned)getpid() & 0xFFFFF,
             counter++ & 0xFF);
}

int fwd_env_local(fwd_env *env, const char *queue_id, const char *sender,
                  const char *rcpt)
{
    memset(env, 0, sizeof *env);
    char arrival[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(arrival, sizeof arrival, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *host = fwd_api->hostname(fwd_ctx);
    env->queue_id = strdup(queue_id);
    env->arrival = strdup(arrival);
    env->client_ip = strdup("127.0.0.1");
    env->client_port = strdup("0");
    env->client_name = strdup("localhost");
    env->helo = strdup(host ? host : "localhost");
    env->protocol = strdup("ESMTP");
    env->tls = strdup("none");
    env->auth = strdup("none");
    env->sender = strdup(sender && sender[0] ? sender : "<>");
    if (!env->queue_id || !env->arrival || !env->client_ip ||
        !env->client_port || !env->client_name || !env->helo ||
        !env->protocol || !env->tls || !env->auth || !env->sender ||
        fwd_env_add_rcpt(env, rcpt) < 0) {
        fwd_env_free(env);
        return -1;
    }
    return 0;
}

long long fwd_parse_arrival(const char *arrival)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (arrival == NULL)
        return -1;
    const char *end = strptime(arrival, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end)
        return -1;
    return (long long)timegm(&tm);
}

/* ---------------------------------------------------------------------- */
/* directories                                                            */

int fwd_store_make_dirs(const char *spool_dir, char *err, size_t errlen)
{
    static const char *const subdirs[] = { "", "/tmp", "/queue", "/active",
                                           "/deferred", "/dead" };
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", spool_dir, subdirs[i]);
        int rc = fwd_api->dir_make(path);
        if (rc < 0) {
            snprintf(err, errlen, "spool directory %s: %s", path,
                     strerror(-rc));
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* durable writes, group commit                                           */

typedef struct fwd_item {
    int fd;
    int error;
    int do_fsync;
    char *tmp_path, *final_path, *final_dir;
    fwd_commit_fn done;
    void *arg;
    struct fwd_item *next;
} fwd_item;

static struct {
    fwd_item *head, *tail;
    int running;
} fwd_waiting;

static void item_free(fwd_item *it)
{
    if (it->fd >= 0)
        close(it->fd);
    free(it->tmp_path);
    free(it->final_path);
    free(it->final_dir);
    free(it);
}

static void batch_work(void *arg)
{
    fwd_item *head = arg;
    for (fwd_item *it = head; it; it = it->next) {
        int rc = fwd_api->file_commit(it->fd, it->tmp_path, it->final_path,
                                      it->do_fsync);
        it->fd = -1;
        if (rc < 0)
            it->error = -rc;
    }
    for (fwd_item *it = head; it; it = it->next) {
        if (it->error || !it->do_fsync)
            continue;
        fwd_item *seen;
        for (seen = head; seen != it; seen = seen->next)
            if (!seen->error && seen->do_fsync &&
                !strcmp(seen->final_dir, it->final_dir))
                break;
        if (seen != it)
            continue;
        int rc = fwd_api->dir_sync(it->final_dir);
        if (rc == 0)
            continue;
        for (fwd_item *same = it; same; same = same->next)
            if (!same->error && same->do_fsync &&
                !strcmp(same->final_dir, it->final_dir)) {
                same->error = -rc;
                unlink(same->final_path);
            }
    }
}

static void batch_start(void);

static void batch_done(void *arg, int status)
{
    fwd_item *it = arg;
    if (status < 0)
        batch_work(it);
    fwd_api->stat_add(fwd_ctx, "SMTP.Forward.Commits", 1);
    while (it) {
        fwd_item *next = it->next;
        it->done(it->arg, it->error);
        item_free(it);
        it = next;
    }
    fwd_waiting.running = 0;
    batch_start();
}

static void batch_start(void)
{
    if (fwd_waiting.running || fwd_waiting.head == NULL)
        return;
    fwd_item *head = fwd_waiting.head;
    fwd_waiting.head = fwd_waiting.tail = NULL;
    fwd_waiting.running = 1;
    if (fwd_api->queue_work(fwd_ctx, batch_work, batch_done, head) < 0)
        batch_done(head, -1);
}

int fwd_store_write(const char *dir, const char *queue_id, const char *env,
                    size_t env_len, const char *body, size_t body_len,
                    const fwd_src *src, int do_fsync, fwd_commit_fn done,
                    void *arg)
{
    const char *spool = fwd_api->spool_dir(fwd_ctx);
    fwd_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        return -ENOMEM;
    it->fd = -1;
    it->do_fsync = do_fsync;
    it->done = done;
    it->arg = arg;
    if (asprintf(&it->tmp_path, "%s/tmp/%s", spool, queue_id) < 0 ||
        asprintf(&it->final_path, "%s/%s/%s", spool, dir, queue_id) < 0 ||
        asprintf(&it->final_dir, "%s/%s", spool, dir) < 0) {
        item_free(it);
        return -ENOMEM;
    }
    it->fd = open(it->tmp_path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
                  0600);
    if (it->fd < 0 && errno == ENOENT) {
        char err[256];
        if (fwd_store_make_dirs(spool, err, sizeof err) == 0)
            it->fd = open(it->tmp_path,
                          O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    }
    if (it->fd < 0) {
        int e = errno;
        item_free(it);
        return -e;
    }
    struct iovec iov[2] = { { (void *)env, env_len },
                            { (void *)body, body_len } };
    int rc = fwd_api->file_write(it->fd, iov, body ? 2 : 1);
    if (rc == 0 && src) {
        char *chunk = malloc(FWD_CHUNK);
        if (chunk == NULL)
            rc = -ENOMEM;
        for (off_t off = 0; rc == 0 && off < src->size;) {
            size_t want = FWD_CHUNK;
            if ((off_t)want > src->size - off)
                want = (size_t)(src->size - off);
            ssize_t n = src->read(src->arg, off, chunk, want);
            if (n <= 0) {
                rc = n < 0 ? (int)n : -EIO;
                break;
            }
            iov[0] = (struct iovec){ chunk, (size_t)n };
            rc = fwd_api->file_write(it->fd, iov, 1);
            off += n;
        }
        free(chunk);
    }
    if (rc < 0) {
        unlink(it->tmp_path);
        item_free(it);
        return rc;
    }
    if (fwd_waiting.tail)
        fwd_waiting.tail->next = it;
    else
        fwd_waiting.head = it;
    fwd_waiting.tail = it;
    batch_start();
    return 0;
}
