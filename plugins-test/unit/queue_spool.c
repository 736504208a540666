/*
 * queue_spool.c - unit test of plugins/queue_spool.so and
 * plugins/queue_discard.so against a fake host API on a libuv loop, so the
 * group commit, cancellation and failure paths can be driven one by one
 * (the end-to-end view is plugins-test/e2e/spool.t).  Prints TAP.
 *
 * Runs from the repository root; fails (Bail out!) if a plugin does not
 * load: `make test` builds them, so a plugin that will not dlopen (an
 * undefined symbol) is a defect, not a reason to skip.
 * Set QS_SMALLFS to a small, empty tmpfs to also test ENOSPC (452 4.3.1).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "upesi/plugin.h"
#include "durable.h"
#include "envelope.h"
#include "settings.h"

#define T_SPOOL_SO "plugins/queue_spool.so"
#define T_DISCARD_SO "plugins/queue_discard.so"

/* The fake host's call: what the plugin answered, and its cancel hook. */
struct upesi_call {
    const char *qid;
    char *msg;
    size_t msg_len;
    const char *helo;
    const char *sender;
    int in_handler;
    int cancelled;
    int resumed;
    upesi_verdict verdict;
    int code;
    char enh[16];
    char text[256];
    upesi_cancel_fn cancel_fn;
    void *cancel_arg;
};

static char t_spool[512];
static char t_base[256];
static void *t_settings;
static int t_count, t_failed;
static long long t_commits, t_messages, t_errors, t_discarded;

static void t_ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void t_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++t_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond)
        t_failed++;
}

/* -- the fake API ------------------------------------------------------ */

/* the fake host's plugin context */
struct upesi_ctx {
    const char *name;
};
static upesi_ctx t_spool_ctx = { "queue_spool" };
static upesi_ctx t_discard_ctx = { "queue_discard" };

static void t_vlog_call(upesi_call *c, upesi_log_level level,
                        const char *fmt, va_list ap)
{
    fprintf(stdout, "# log %d %s: ", (int)level, c ? c->qid : "-");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
}

static void t_log_call(upesi_call *c, upesi_log_level level,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    t_vlog_call(c, level, fmt, ap);
    va_end(ap);
}

static void t_vlog(upesi_ctx *ctx, upesi_log_level level, const char *fmt,
                   va_list ap)
{
    fprintf(stdout, "# log %d %s: ", (int)level, ctx ? ctx->name : "?");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
}

static void t_log(upesi_ctx *ctx, upesi_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    t_vlog(ctx, level, fmt, ap);
    va_end(ap);
}

static void t_free(void *p)
{
    free(p);
}

static void t_reply(upesi_call *c, int code, const char *enh,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->code = code;
    snprintf(c->enh, sizeof c->enh, "%s", enh ? enh : "");
    vsnprintf(c->text, sizeof c->text, fmt, ap);
    va_end(ap);
}

static void t_resume(upesi_call *c, upesi_verdict v)
{
    if (c->cancelled) {
        printf("# resume of a cancelled call %s\n", c->qid);
        t_failed++;
    }
    c->resumed++;
    c->verdict = v;
}

static void t_on_cancel(upesi_call *c, upesi_cancel_fn fn, void *arg)
{
    c->cancel_fn = fn;
    c->cancel_arg = arg;
}

static void t_cancel(upesi_call *c)
{
    c->cancelled = 1;
    c->cancel_fn(c, c->cancel_arg);
}

static upesi_hook t_hook(upesi_call *c)
{
    (void)c;
    return UPESI_HOOK_QUEUE;
}

static void *t_config(upesi_call *c)
{
    (void)c;
    return t_settings;
}

static upesi_conn_info t_conn_info = {
    .session_id = "S1", .remote_ip = "192.0.2.7", .remote_port = 40000,
    .local_ip = "127.0.0.1", .local_port = 2525, .esmtp = 1,
};

static const upesi_conn_info *t_conn(upesi_call *c)
{
    t_conn_info.helo = c->helo;
    return &t_conn_info;
}

static const char *t_sender(upesi_call *c)
{
    return c->sender;
}

static size_t t_rcpt_count(upesi_call *c)
{
    (void)c;
    return 2;
}

static const char *const t_rcpts[] = {
    "carol@example.com", "bob@example.com",
};

static const char *t_rcpt(upesi_call *c, size_t i)
{
    (void)c;
    return i < 2 ? t_rcpts[i] : NULL;
}

/* the host's own envelope builder, fed the fake call's fields */
static int t_spool_envelope(upesi_call *c, char **out, size_t *out_len,
                            const char **bad_key)
{
    up_envelope e = {
        .conn = t_conn(c), .queue_id = c->qid, .sender = c->sender,
        .rcpts = t_rcpts, .n_rcpts = 2,
    };
    *bad_key = NULL;
    return up_envelope_build(&e, out, out_len, bad_key);
}

static const char *t_queue_id(upesi_call *c)
{
    return c->qid;
}

static const char *t_note_get(upesi_call *c, upesi_scope s, const char *k)
{
    (void)c;
    (void)s;
    (void)k;
    return NULL;
}

static off_t t_message_size(upesi_call *c)
{
    return (off_t)c->msg_len;
}

/* short reads on purpose: a plugin must loop */
static ssize_t t_message_read(upesi_call *c, off_t off, void *buf, size_t len)
{
    if ((size_t)off >= c->msg_len)
        return 0;
    if (len > c->msg_len - (size_t)off)
        len = c->msg_len - (size_t)off;
    if (len > 5000)
        len = 5000;
    memcpy(buf, c->msg + off, len);
    return (ssize_t)len;
}

static void t_stat_add(upesi_ctx *ctx, const char *name, long long d)
{
    (void)ctx;
    if (strcmp(name, "SMTP.Spool.Commits") == 0)
        t_commits += d;
    else if (strcmp(name, "SMTP.Spool.Messages") == 0)
        t_messages += d;
    else if (strcmp(name, "SMTP.Spool.Errors") == 0)
        t_errors += d;
    else if (strcmp(name, "SMTP.Discard.Messages") == 0)
        t_discarded += d;
}

typedef struct t_work {
    uv_work_t req;
    upesi_work_fn work;
    upesi_done_fn done;
    void *arg;
} t_work;

static void t_work_cb(uv_work_t *req)
{
    t_work *w = (t_work *)req;
    w->work(w->arg);
}

static void t_done_cb(uv_work_t *req, int status)
{
    t_work *w = (t_work *)req;
    w->done(w->arg, status);
    free(w);
}

static int t_refuse_work;

static int t_queue_work(upesi_ctx *ctx, upesi_work_fn work,
                        upesi_done_fn done, void *arg)
{
    (void)ctx;
    if (t_refuse_work)
        return -EAGAIN;
    t_work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->work = work;
    w->done = done;
    w->arg = arg;
    return uv_queue_work(uv_default_loop(), &w->req, t_work_cb, t_done_cb);
}

/* the host's file_commit, counting the files left to one syncfs */
static long long t_unsynced;
static int t_file_commit(int fd, const char *tmp_path, const char *path,
                         int sync)
{
    if (!sync)
        t_unsynced++;
    return up_durable_file_commit(fd, tmp_path, path, sync);
}

static const char *t_spool_dir(upesi_ctx *ctx)
{
    (void)ctx;
    return t_spool;
}

/* queue_spool registers `upesi queue` at init (queue_tools.c); the
 * command itself is tested end to end (queue_tools.t) */
static int t_control_register(upesi_ctx *ctx, const char *command,
                              upesi_control_fn fn, void *arg)
{
    (void)ctx;
    (void)fn;
    (void)arg;
    return strcmp(command, "queue") == 0 ? 0 : -EINVAL;
}

static upesi_api t_api = {
    .abi_major = UPESI_ABI_MAJOR, .abi_minor = UPESI_ABI_MINOR,
    .size = sizeof(upesi_api),
    .log = t_log, .vlog = t_vlog, .log_call = t_log_call,
    .vlog_call = t_vlog_call, .free = t_free, .reply = t_reply, .resume = t_resume,
    .on_cancel = t_on_cancel, .hook = t_hook, .config = t_config,
    .conn = t_conn, .sender = t_sender, .rcpt_count = t_rcpt_count,
    .rcpt = t_rcpt, .queue_id = t_queue_id, .note_get = t_note_get,
    .message_size = t_message_size, .message_read = t_message_read,
    .stat_add = t_stat_add, .queue_work = t_queue_work,
    .spool_dir = t_spool_dir, .control_register = t_control_register,
    /* the host's own durable-file functions (host/durable.c) */
    .file_write = up_durable_file_write,
    .file_commit = t_file_commit,
    .dir_make = up_durable_dir_make, .dir_sync = up_durable_dir_sync,
    .spool_envelope = t_spool_envelope,
};

/* -- helpers ----------------------------------------------------------- */

static const struct upesi_plugin *t_load(const char *path, upesi_ctx *ctx)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        printf("Bail out! %s\n", dlerror());
        exit(1);
    }
    const struct upesi_plugin *d = dlsym(h, UPESI_PLUGIN_SYMBOL);
    char err[256];
    if (d == NULL || d->init(ctx, &t_api, err, sizeof err) < 0) {
        printf("Bail out! %s: cannot init\n", path);
        exit(1);
    }
    return d;
}

static char *t_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        if (n + 65536 > cap) {
            cap = (cap + 65536) * 2;
            buf = realloc(buf, cap);
        }
        r = fread(buf + n, 1, 65536, f);
        n += r;
    } while (r > 0);
    fclose(f);
    *len = n;
    return buf;
}

static int t_count_dir(const char *sub)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", t_spool, sub);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int t_exists(const char *sub, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/%s", t_spool, sub, name);
    return access(path, F_OK) == 0;
}

static upesi_call *t_call(const char *qid, size_t len)
{
    upesi_call *c = calloc(1, sizeof *c);
    c->qid = qid;
    c->helo = "client.example";
    c->sender = "alice@example.org";
    c->msg_len = len;
    c->msg = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        c->msg[i] = (char)(i * 7 + len);
    c->verdict = (upesi_verdict)-1;
    return c;
}

static void t_call_free(upesi_call *c)
{
    free(c->msg);
    free(c);
}

static upesi_verdict t_run(const struct upesi_plugin *d, upesi_call *c)
{
    c->in_handler = 1;
    upesi_verdict v = d->hooks[UPESI_HOOK_QUEUE](c);
    c->in_handler = 0;
    return v;
}

static void t_loop(void)
{
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

/* queue/<id> is the envelope, an empty line, then the message exactly */
static int t_committed(const upesi_call *c, const char *want_env)
{
    char path[600];
    size_t len;
    snprintf(path, sizeof path, "%s/queue/%s", t_spool, c->qid);
    char *buf = t_slurp(path, &len);
    if (buf == NULL)
        return 0;
    char *sep = memmem(buf, len, "\n\n", 2);
    int good = sep != NULL
        && (size_t)(buf + len - (sep + 2)) == c->msg_len
        && memcmp(sep + 2, c->msg, c->msg_len) == 0
        && strncmp(buf, "Upesi-Spool: 1\nQueue-Id: ", 25) == 0;
    if (good && want_env) {
        /* everything but Arrival, which is the clock's */
        char *arrival = strstr(buf, "Arrival: ");
        char *eol = arrival ? strchr(arrival, '\n') : NULL;
        good = eol != NULL;
        if (good) {
            memmove(arrival + 9, eol, (size_t)(buf + len - eol));
            sep = strstr(buf, "\n\n");
            good = (size_t)(sep + 2 - buf) == strlen(want_env)
                && memcmp(buf, want_env, strlen(want_env)) == 0;
            for (char *line = buf; !good && line < sep;) {
                char *end = strchr(line, '\n');
                printf("# got: %.*s\n", (int)(end - line), line);
                line = end + 1;
            }
        }
    }
    free(buf);
    return good;
}

/* -- the tests --------------------------------------------------------- */

/* a key of queue_spool.ini as the host applies it: through the plugin's
 * settings table (host/settings.c) */
static int t_set(const struct upesi_plugin *d, const char *key,
                 const char *value, char *err, size_t errlen)
{
    const upesi_setting *s = up_setting_find(d->settings, key);
    if (s == NULL) {
        snprintf(err, errlen, "unknown key '%s'", key);
        return -1;
    }
    return up_setting_apply(s, t_settings, ".", value, err, errlen);
}

static void t_settings_tests(const struct upesi_plugin *d)
{
    char err[256] = "";
    t_settings = d->config_new();
    t_ok(d->settings != NULL && d->config_set == NULL,
         "queue_spool describes its keys in a settings table");
    t_ok(up_settings_defaults(d->settings, t_settings, ".", err,
                              sizeof err) == 0, "the table's defaults apply");
    t_ok(t_set(d, "bogus", "1", err, sizeof err) == -1
         && strcmp(err, "unknown key 'bogus'") == 0, "unknown key: %s", err);
    t_ok(t_set(d, "max_batch", "0", err, sizeof err) == -1,
         "max_batch = 0 refused: %s", err);
    t_ok(t_set(d, "fsync", "2", err, sizeof err) == -1,
         "fsync = 2 refused: %s", err);
    t_ok(t_set(d, "max_batch", "16", err, sizeof err) == 0, "max_batch = 16");
    t_ok(d->config_check(t_settings, err, sizeof err) == 0,
         "config_check creates the spool directories");
    t_ok(t_count_dir("tmp") == 0 && t_count_dir("queue") == 0,
         "tmp/ and queue/ exist and are empty");
}

static void t_one_message(const struct upesi_plugin *d)
{
    upesi_call *c = t_call("Q1", 200000);
    t_ok(t_run(d, c) == UPESI_PENDING, "a message waits for its commit");
    t_loop();
    t_ok(c->resumed == 1 && c->verdict == UPESI_OK && c->code == 250
         && strcmp(c->enh, "2.0.0") == 0
         && strcmp(c->text, "Ok: queued as Q1") == 0,
         "resumed OK: %d %s %s", c->code, c->enh, c->text);
    t_ok(t_committed(c, "Upesi-Spool: 1\nQueue-Id: Q1\nArrival: \n"
                     "Client-IP: 192.0.2.7\nClient-Port: 40000\n"
                     "Client-Name: unknown\nHelo: client.example\n"
                     "Protocol: ESMTP\nTLS: none\nAuth: none\n"
                     "Sender: alice@example.org\n"
                     "Recipient: carol@example.com\n"
                     "Recipient: bob@example.com\n\n"),
         "queue/Q1: envelope, then the message byte-exact");
    t_call_free(c);
}

static void t_group_commit(const struct upesi_plugin *d)
{
    enum { N = 50 };
    upesi_call *calls[N];
    char ids[N][16];
    long long commits = t_commits, unsynced = t_unsynced;

    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "M%02d", i);
        calls[i] = t_call(ids[i], (size_t)i * 997);
        t_run(d, calls[i]);
    }
    t_loop();
    int all = 1;
    for (int i = 0; i < N; i++) {
        all &= calls[i]->resumed == 1 && calls[i]->verdict == UPESI_OK
            && t_committed(calls[i], NULL);
        t_call_free(calls[i]);
    }
    t_ok(all, "%d messages at once: all resumed OK, all whole", N);
    commits = t_commits - commits;
    /* the first goes alone, the other 49 in batches of max_batch 16 */
    t_ok(commits == 5, "%lld commit batches for %d messages", commits, N);
    /* the first and the last go alone, with an fsync */
    t_ok(t_unsynced - unsynced == N - 2, "one syncfs a batch on one file "
         "system, no fsync each (%lld of %d)", t_unsynced - unsynced, N);
    t_ok(t_count_dir("tmp") == 0, "nothing left in tmp/");
}

/* A reload moved spool_dir to another file system while messages waited:
 * one syncfs flushes one file system, so each file of that batch is
 * fsync'd.  /dev/shm is the other file system where there is one. */
static void t_two_filesystems(const struct upesi_plugin *d)
{
    char other[512], keep[512], path[600];
    snprintf(other, sizeof other, "/dev/shm/upesi-spool-unit-%d",
             (int)getpid());
    mkdir(other, 0700);
    snprintf(path, sizeof path, "%s/tmp", other);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/queue", other);
    mkdir(path, 0700);
    struct stat here, there;
    if (stat(t_spool, &here) != 0 || stat(other, &there) != 0 ||
        here.st_dev == there.st_dev) {
        printf("ok %d # skip no second file system at /dev/shm\n",
               ++t_count);
        return;
    }
    char err[256];
    t_set(d, "fsync", "1", err, sizeof err);
    upesi_call *a = t_call("D1", 100), *b = t_call("D2", 100),
               *c = t_call("D3", 100);
    t_run(d, a);                /* a batch of its own */
    t_run(d, b);                /* waits, in spool_dir */
    snprintf(keep, sizeof keep, "%s", t_spool);
    snprintf(t_spool, sizeof t_spool, "%s", other);
    t_run(d, c);                /* waits with it, in the other one */
    long long unsynced = t_unsynced;
    t_loop();
    snprintf(t_spool, sizeof t_spool, "%s", keep);
    t_ok(a->verdict == UPESI_OK && b->verdict == UPESI_OK &&
         c->verdict == UPESI_OK && t_unsynced == unsynced,
         "a batch over two file systems: each file fsync'd (%lld left to "
         "one syncfs)", t_unsynced - unsynced);
    t_call_free(a);
    t_call_free(b);
    t_call_free(c);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", other);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", other);
}

static void t_cancellation(const struct upesi_plugin *d)
{
    upesi_call *a = t_call("C1", 100), *b = t_call("C2", 100);
    t_run(d, a);        /* starts a batch */
    t_run(d, b);        /* waits for the next */
    t_cancel(b);
    t_ok(!t_exists("tmp", "C2"),
         "cancelled while waiting: temp file removed at once");
    t_cancel(a);
    t_loop();
    t_ok(a->resumed == 0 && b->resumed == 0, "cancelled calls not resumed");
    t_ok(t_committed(a, NULL), "cancelled while its batch ran: committed");
    t_ok(!t_exists("queue", "C2"), "cancelled while waiting: not queued");
    t_ok(t_count_dir("tmp") == 0, "nothing left in tmp/");
    t_call_free(a);
    t_call_free(b);
}

static void t_failures(const struct upesi_plugin *d)
{
    int queued = t_count_dir("queue");
    long long errors = t_errors;

    upesi_call *c = t_call("H1", 10);
    c->helo = "evil\r\nRecipient: x@y";
    upesi_verdict v = t_run(d, c);
    t_ok(v == UPESI_DENYSOFT && c->code == 451 && !strcmp(c->enh, "4.3.0"),
         "CR/LF in a value refused: %d %s %s", c->code, c->enh, c->text);
    t_ok(!t_exists("tmp", "H1") && t_count_dir("queue") == queued,
         "nothing written for it");
    t_call_free(c);

    /* a write error half way: RLIMIT_FSIZE turns it into EFBIG */
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit small = { 100000, rl.rlim_max };
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    c = t_call("E1", 300000);
    v = t_run(d, c);
    setrlimit(RLIMIT_FSIZE, &rl);
    t_ok(v == UPESI_DENYSOFT && c->code == 451 && !strcmp(c->enh, "4.3.0")
         && !strcmp(c->text, "Error: queue file write error"),
         "write error: %d %s %s", c->code, c->enh, c->text);
    t_ok(t_count_dir("tmp") == 0 && t_count_dir("queue") == queued
         && t_errors == errors + 2, "no half-written file anywhere");
    t_call_free(c);

    /* the host cannot run work: the batch runs inline, resumed at once */
    t_refuse_work = 1;
    c = t_call("I1", 1000);
    t_run(d, c);
    t_refuse_work = 0;
    t_ok(c->resumed == 1 && c->verdict == UPESI_OK && t_committed(c, NULL),
         "inline commit when queue_work fails");
    t_call_free(c);

    /* someone removed the spool directories */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/tmp' '%s/queue'", t_spool, t_spool);
    t_ok(system(cmd) == 0, "spool directories removed");
    c = t_call("R1", 10);
    t_run(d, c);
    t_loop();
    t_ok(c->verdict == UPESI_OK && t_committed(c, NULL),
         "spool directories recreated on use");
    t_call_free(c);
}

static void t_null_sender(const struct upesi_plugin *d)
{
    char err[256];
    t_set(d, "fsync", "0", err, sizeof err);
    upesi_call *c = t_call("N1", 0);
    c->sender = "";
    t_run(d, c);
    t_loop();
    char path[600];
    size_t len;
    snprintf(path, sizeof path, "%s/queue/N1", t_spool);
    char *buf = t_slurp(path, &len);
    t_ok(c->verdict == UPESI_OK && t_committed(c, NULL) && buf
         && strstr(buf, "\nSender: <>\n") != NULL,
         "empty message, null sender written <>, fsync = 0");
    free(buf);
    t_call_free(c);
}

static void t_disk_full(const struct upesi_plugin *d, const char *smallfs)
{
    char saved[sizeof t_spool];
    memcpy(saved, t_spool, sizeof t_spool);
    snprintf(t_spool, sizeof t_spool, "%s/spool", smallfs);
    upesi_call *c = t_call("F1", 400000);
    upesi_verdict v = t_run(d, c);
    t_ok(v == UPESI_DENYSOFT && c->code == 452 && !strcmp(c->enh, "4.3.1")
         && !strcmp(c->text, "Insufficient system storage"),
         "ENOSPC: %d %s %s", c->code, c->enh, c->text);
    t_ok(t_count_dir("tmp") == 0 && t_count_dir("queue") == 0,
         "nothing left on the full disk");
    t_call_free(c);
    memcpy(t_spool, saved, sizeof t_spool);
}

static void t_discard(const struct upesi_plugin *d)
{
    upesi_call *c = NULL;
    upesi_verdict v = UPESI_CONT;
    for (int i = 0; i < 1000; i++) {
        if (c)
            t_call_free(c);
        c = t_call("D1", 1);
        v = t_run(d, c);
    }
    t_ok(v == UPESI_OK && c->code == 250 && !strcmp(c->enh, "2.0.0")
         && !strcmp(c->text, "Ok: discarded as D1") && t_discarded == 1000,
         "queue_discard: %s, counted %lld", c->text, t_discarded);
    t_call_free(c);
}

int main(void)
{
    const struct upesi_plugin *spool = t_load(T_SPOOL_SO, &t_spool_ctx);
    const struct upesi_plugin *discard = t_load(T_DISCARD_SO, &t_discard_ctx);

    snprintf(t_base, sizeof t_base, "/tmp/upesi-spool-unit-XXXXXX");
    if (mkdtemp(t_base) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(t_spool, sizeof t_spool, "%s/a/spool", t_base);

    t_settings_tests(spool);
    t_one_message(spool);
    t_group_commit(spool);
    t_cancellation(spool);
    t_failures(spool);
    t_null_sender(spool);
    if (getenv("QS_SMALLFS"))
        t_disk_full(spool, getenv("QS_SMALLFS"));
    t_ok(t_messages == 55 && t_errors == 2 + (getenv("QS_SMALLFS") != NULL),
         "statistics: %lld messages, %lld errors, %lld commits",
         t_messages, t_errors, t_commits);
    t_two_filesystems(spool);
    t_discard(discard);

    spool->config_free(t_settings);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_base);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", t_base);
    uv_loop_close(uv_default_loop());
    printf("1..%d\n", t_count);
    return t_failed != 0;
}
