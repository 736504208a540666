/*
 * api.c - the host functions plugins call (upesi/plugin.h), each a thin
 * view of the session behind a call.
 *
 * Every function tolerates a call the host has given up on (session NULL):
 * it does nothing and returns NULL/0/-EINVAL, so a plugin that misuses a
 * cancelled call cannot corrupt a session.  Calls outside a hook take the
 * plugin's context (plugin_loader.h); the loop they run on is handed in
 * by the worker (up_api_set_loop), the settings they read are the
 * generation being loaded or the committed one (config.c): api.c knows no
 * server.
 */
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actions.h"
#include "api.h"
#include "cli.h"
#include "control.h"
#include "dns.h"
#include "dns_answer.h"
#include "durable.h"
#include "hooks.h"
#include "log.h"
#include "plugin_loader.h"
#include "session.h"
#include "smtp_ext.h"
#include "stats.h"
#include "store.h"

static uv_loop_t *api_loop;        /* NULL in the supervisor */

void up_api_set_loop(uv_loop_t *loop)
{
    api_loop = loop;
}

static up_session *session_of(upesi_call *call)
{
    return call ? call->session : NULL;
}

/* -- errors, memory, the plugin's context */

static const char *api_strerror(int err)
{
    return strerror(err < 0 ? -err : err);
}

static void api_free(void *ptr)
{
    free(ptr);
}

static upesi_ctx *api_ctx(upesi_call *call)
{
    return call ? call->ctx : NULL;
}

static const char *api_plugin_name(upesi_ctx *ctx)
{
    return ctx ? ctx->name : NULL;
}

static void *api_settings(upesi_ctx *ctx)
{
    return ctx ? ctx->settings : NULL;
}

static const char *api_hook_name(upesi_hook hook)
{
    return (unsigned)hook < UPESI_HOOK_COUNT ? up_hook_name(hook) : NULL;
}

static int api_hook_find(const char *name)
{
    for (int h = 0; name && h < UPESI_HOOK_COUNT; h++)
        if (!strcmp(up_hook_name((upesi_hook)h), name))
            return h;
    return -ENOENT;
}

/* -- logging: the host writes the plugin's name */

static void api_vlog(upesi_ctx *ctx, upesi_log_level level, const char *fmt,
                     va_list ap)
{
    char text[2048];
    vsnprintf(text, sizeof text, fmt, ap);
    up_log(NULL, (int)level, "%s: %s", ctx ? ctx->name : "(plugin)", text);
}

static void api_log(upesi_ctx *ctx, upesi_log_level level, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    api_vlog(ctx, level, fmt, ap);
    va_end(ap);
}

static void api_vlog_call(upesi_call *call, upesi_log_level level,
                          const char *fmt, va_list ap)
{
    char text[2048];
    vsnprintf(text, sizeof text, fmt, ap);
    up_session *s = session_of(call);
    up_log(s ? s->id : NULL, (int)level, "%s: %s",
           call ? call->ctx->name : "(plugin)", text);
}

static void api_log_call(upesi_call *call, upesi_log_level level,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    api_vlog_call(call, level, fmt, ap);
    va_end(ap);
}

static void api_stat_add(upesi_ctx *ctx, const char *name, long long delta)
{
    (void)ctx;                  /* counters are named by the plugin */
    up_stats_add(name, delta);
}

static void api_stat_set(upesi_ctx *ctx, const char *name, long long value)
{
    (void)ctx;
    up_stats_set(name, value);
}

static void api_reply(upesi_call *call, int code, const char *enhanced,
                      const char *fmt, ...)
{
    if (call == NULL)
        return;
    call->code = (code >= 200 && code <= 599) ? code : 0;
    call->enhanced[0] = '\0';
    if (enhanced)
        snprintf(call->enhanced, sizeof call->enhanced, "%s", enhanced);
    free(call->text);
    call->text = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&call->text, fmt, ap) < 0)
            call->text = NULL;
        va_end(ap);
        /* a reply is ours to frame: no CR, and no control bytes */
        for (char *p = call->text; p && *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\n')
                *p = ' ';
    }
}

static void api_resume(upesi_call *call, upesi_verdict v)
{
    if (call)
        up_hook_resume(call, v);
}

static void api_on_cancel(upesi_call *call, upesi_cancel_fn fn, void *arg)
{
    if (call == NULL)
        return;
    call->cancel_fn = fn;
    call->cancel_arg = arg;
}

static upesi_hook api_hook(upesi_call *call)
{
    return call ? call->hook : UPESI_HOOK_COUNT;
}

static void *api_config(upesi_call *call)
{
    return call && call->session ? call->settings : NULL;
}

static const upesi_conn_info *api_conn(upesi_call *call)
{
    up_session *s = session_of(call);
    return s ? &s->info : NULL;
}

static const char *api_command_line(upesi_call *call)
{
    up_session *s = session_of(call);
    return s ? s->line : NULL;
}

static upesi_line_end api_line_end(upesi_call *call)
{
    up_session *s = session_of(call);
    return s ? s->line_end : UPESI_LINE_CRLF;
}

static const char *api_address(upesi_call *call)
{
    up_session *s = session_of(call);
    if (s == NULL)
        return NULL;
    switch (call->hook) {
    case UPESI_HOOK_MAIL:
    case UPESI_HOOK_RCPT:
        return s->path.mailbox;
    case UPESI_HOOK_HELO:
    case UPESI_HOOK_VRFY:
        return s->cmd.arg;
    default:
        return NULL;
    }
}

static const char *api_param(upesi_call *call, const char *keyword)
{
    up_session *s = session_of(call);
    if (s == NULL ||
        (call->hook != UPESI_HOOK_MAIL && call->hook != UPESI_HOOK_RCPT))
        return NULL;
    return up_path_param(&s->path, keyword);
}

static const char *api_sender(upesi_call *call)
{
    up_session *s = session_of(call);
    return s && s->have_mail ? s->sender : NULL;
}

static size_t api_rcpt_count(upesi_call *call)
{
    up_session *s = session_of(call);
    return s ? s->n_rcpts : 0;
}

static const char *api_rcpt(upesi_call *call, size_t index)
{
    up_session *s = session_of(call);
    return s && index < s->n_rcpts ? s->rcpts[index] : NULL;
}

static const char *api_queue_id(upesi_call *call)
{
    up_session *s = session_of(call);
    return s && s->queue_id[0] ? s->queue_id : NULL;
}

static int api_spool_envelope(upesi_call *call, char **out, size_t *out_len,
                              const char **bad_key)
{
    up_session *s = session_of(call);
    *bad_key = NULL;
    if (s == NULL || !s->have_mail)
        return -EINVAL;
    return up_actions_envelope(s, out, out_len, bad_key);
}

static const char *api_txn_param(upesi_call *call, const char *keyword)
{
    up_session *s = session_of(call);
    if (s == NULL || !s->have_mail || s->sender == NULL || keyword == NULL)
        return NULL;
    return up_packed_param(s->sender, keyword);
}

static const char *api_rcpt_param(upesi_call *call, size_t index,
                                  const char *keyword)
{
    up_session *s = session_of(call);
    if (s == NULL || index >= s->n_rcpts || keyword == NULL)
        return NULL;
    return up_packed_param(s->rcpts[index], keyword);
}

static int api_domain_to_ascii(const char *domain, char *out, size_t outlen)
{
    if (domain == NULL || out == NULL)
        return -EINVAL;
    return up_domain_to_ascii(domain, out, outlen) == 0 ? 0 : -EINVAL;
}

static int api_is_local_domain(upesi_call *call, const char *address)
{
    up_session *s = session_of(call);
    return s && address ? up_config_is_local(s->cfg, address) : 0;
}

static up_notes *notes_of(upesi_call *call, upesi_scope scope)
{
    up_session *s = session_of(call);
    if (s == NULL)
        return NULL;
    return scope == UPESI_SCOPE_TXN ? &s->txn_notes : &s->conn_notes;
}

static int api_note_set(upesi_call *call, upesi_scope scope, const char *key,
                        const char *value)
{
    up_notes *n = notes_of(call, scope);
    if (n == NULL || key == NULL || value == NULL)
        return -EINVAL;
    return up_notes_set(n, key, value) == 0 ? 0 : -ENOMEM;
}

static const char *api_note_get(upesi_call *call, upesi_scope scope,
                                const char *key)
{
    up_notes *n = notes_of(call, scope);
    return n && key ? up_notes_get(n, key) : NULL;
}

static int api_note_set_int(upesi_call *call, upesi_scope scope,
                            const char *key, long long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", value);
    return api_note_set(call, scope, key, buf);
}

static long long api_note_get_int(upesi_call *call, upesi_scope scope,
                                  const char *key, long long fallback)
{
    const char *v = api_note_get(call, scope, key);
    if (v == NULL)
        return fallback;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return errno || end == v || *end ? fallback : n;
}

static int api_header_add(upesi_call *call, const char *name,
                          const char *value)
{
    up_session *s = session_of(call);
    if (s == NULL || name == NULL || value == NULL)
        return -EINVAL;
    return up_message_prepend_header(&s->msg, name, value);
}

static off_t api_message_size(upesi_call *call)
{
    up_session *s = session_of(call);
    return s ? up_message_size(&s->msg) : 0;
}

static ssize_t api_message_read(upesi_call *call, off_t offset, void *buf,
                                size_t len)
{
    up_session *s = session_of(call);
    return s ? up_message_read(&s->msg, offset, buf, len) : -EINVAL;
}

/* -- blocking work on libuv's thread pool */

typedef struct work_req {
    uv_work_t req;
    upesi_work_fn work;
    upesi_done_fn done;
    void *arg;
} work_req;

static void work_run(uv_work_t *req)
{
    work_req *w = req->data;
    w->work(w->arg);
}

static void work_after(uv_work_t *req, int status)
{
    work_req *w = req->data;
    w->done(w->arg, status);
    free(w);
}

static int api_queue_work(upesi_ctx *ctx, upesi_work_fn work,
                          upesi_done_fn done, void *arg)
{
    (void)ctx;
    if (api_loop == NULL)
        return -EAGAIN;
    if (work == NULL || done == NULL)
        return -EINVAL;
    work_req *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->work = work;
    w->done = done;
    w->arg = arg;
    w->req.data = w;
    int rc = uv_queue_work(api_loop, &w->req, work_run,
                           work_after);
    if (rc != 0)
        free(w);
    return rc;
}

/* -- one-shot timers */

struct upesi_timer {
    uv_timer_t handle;
    upesi_timer_fn fn;
    void *arg;
};

static void timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void timer_fired(uv_timer_t *handle)
{
    upesi_timer *t = handle->data;
    t->fn(t->arg);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static upesi_timer *api_timer_start(upesi_ctx *ctx, uint64_t ms,
                                    upesi_timer_fn fn, void *arg)
{
    (void)ctx;
    if (api_loop == NULL)
        return NULL;
    upesi_timer *t = calloc(1, sizeof *t);
    if (t == NULL || fn == NULL) {
        free(t);
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->handle.data = t;
    uv_timer_init(api_loop, &t->handle);
    uv_timer_start(&t->handle, timer_fired, ms, 0);
    return t;
}

static void api_timer_stop(upesi_timer *t)
{
    if (t == NULL)
        return;
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

/* While a generation loads, its plugins' config callbacks see it; after,
 * the committed one. */
static const up_config *active_config(void)
{
    const up_config *cfg = up_config_loading();
    return cfg ? cfg : up_config_committed();
}

static int api_plugin_position(upesi_ctx *ctx, const char *name)
{
    (void)ctx;
    const up_config *cfg = active_config();
    for (size_t i = 0; cfg && name && i < cfg->n_plugins; i++)
        if (!strcmp(cfg->plugins[i].mod->name, name))
            return (int)i;
    return -ENOENT;
}

static char *api_config_path(upesi_ctx *ctx, const char *path)
{
    (void)ctx;
    const up_config *cfg = active_config();
    return path ? up_config_path(cfg ? cfg->dir : ".", path) : NULL;
}

static const char *api_spool_dir(upesi_ctx *ctx)
{
    (void)ctx;
    const up_config *cfg = active_config();
    return cfg ? cfg->spool_dir : NULL;
}

static const char *api_hostname(upesi_ctx *ctx)
{
    (void)ctx;
    const up_config *cfg = active_config();
    return cfg ? cfg->hostname : NULL;
}

/* -- DNS queries belong to the call's session */

static void *dns_session_of(upesi_call *call, int *ok)
{
    up_session *s = session_of(call);
    *ok = call == NULL || (s != NULL && s->state != UP_ST_CLOSING);
    return s;
}

static upesi_dns_query *api_dns_lookup(upesi_ctx *ctx, upesi_call *call,
                                       int type, const char *name,
                                       upesi_dns_fn fn, void *arg)
{
    (void)ctx;
    if (api_loop == NULL)
        return NULL;
    int ok;
    void *s = dns_session_of(call, &ok);
    return ok ? up_dns_lookup(s, type, name, fn, arg) : NULL;
}

static upesi_dns_query *api_reverse_name(upesi_call *call, upesi_dns_fn fn,
                                         void *arg)
{
    int ok;
    up_session *s = dns_session_of(call, &ok);
    return ok && s ? up_dns_reverse(s, s->remote_ip, fn, arg) : NULL;
}

/* -- message actions host/actions.c */

static int api_message_action(upesi_call *call, upesi_action action,
                              const char *arg)
{
    up_session *s = session_of(call);
    if (s == NULL || call->hook != UPESI_HOOK_DATA_POST)
        return -EINVAL;
    return up_actions_take(s, call->ctx->name, action, arg);
}

/* -- descriptor watches uv_poll on the worker's loop.  The
 *    handle is freed in its close callback, so fd_unwatch from inside fn
 *    is safe: libuv does not touch the handle after fn returns. */

struct upesi_watch {
    uv_poll_t handle;
    upesi_watch_fn fn;
    void *arg;
};

/* the watches not yet unwatched: a worker that stops waits for them */
static int watches_open;

int up_api_watches_open(void)
{
    return watches_open;
}

static int watch_uv_events(int events)
{
    return ((events & UPESI_WATCH_READ) ? UV_READABLE : 0) |
           ((events & UPESI_WATCH_WRITE) ? UV_WRITABLE : 0);
}

static void watch_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void watch_ready(uv_poll_t *handle, int status, int uv_events)
{
    upesi_watch *w = handle->data;
    int events = status < 0 ? UPESI_WATCH_ERROR
                            : ((uv_events & UV_READABLE) ? UPESI_WATCH_READ : 0) |
                              ((uv_events & UV_WRITABLE) ? UPESI_WATCH_WRITE : 0) |
                              ((uv_events & UV_DISCONNECT) ? UPESI_WATCH_READ : 0);
    w->fn(w, events, w->arg);
}

static upesi_watch *api_fd_watch(upesi_ctx *ctx, int fd, int events,
                                 upesi_watch_fn fn, void *arg)
{
    (void)ctx;
    if (api_loop == NULL || fd < 0 || fn == NULL)
        return NULL;
    upesi_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->fn = fn;
    w->arg = arg;
    w->handle.data = w;
    if (uv_poll_init(api_loop, &w->handle, fd) != 0) {
        free(w);
        return NULL;
    }
    if (events && uv_poll_start(&w->handle, watch_uv_events(events),
                                watch_ready) != 0) {
        uv_close((uv_handle_t *)&w->handle, watch_closed);
        return NULL;
    }
    watches_open++;
    return w;
}

static int api_fd_watch_update(upesi_watch *w, int events)
{
    if (w == NULL)
        return -EINVAL;
    if (events == 0)
        return uv_poll_stop(&w->handle);
    return uv_poll_start(&w->handle, watch_uv_events(events), watch_ready);
}

static void api_fd_unwatch(upesi_watch *w)
{
    if (w == NULL || uv_is_closing((uv_handle_t *)&w->handle))
        return;
    watches_open--;
    uv_close((uv_handle_t *)&w->handle, watch_closed);
}

/* -- control socket commands */

/* One entry per command name for the life of the process, like the
 * command table: a reload that registers a command again updates its
 * entry instead of leaving the old one behind. */
typedef struct control_cmd {
    struct control_cmd *next;
    char name[32];
    upesi_control_fn fn;
    void *arg;
} control_cmd;

static control_cmd *control_cmds;

static void control_trampoline(const char *args, up_control_reply *reply,
                               void *arg)
{
    control_cmd *c = arg;
    c->fn(args, (upesi_control *)reply, c->arg);
}

static int api_control_register(upesi_ctx *ctx, const char *command,
                                upesi_control_fn fn, void *arg)
{
    (void)ctx;
    if (fn == NULL || command == NULL || strlen(command) >= 32)
        return -EINVAL;
    control_cmd *c = control_cmds;
    while (c && strcasecmp(c->name, command) != 0)
        c = c->next;
    if (c) {
        c->fn = fn;
        c->arg = arg;
        return up_control_register_arg(command, control_trampoline, c);
    }
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    memcpy(c->name, command, strlen(command) + 1);
    c->fn = fn;
    c->arg = arg;
    int rc = up_control_register_arg(command, control_trampoline, c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->next = control_cmds;
    control_cmds = c;
    return rc;
}

static void api_control_write(upesi_control *out, const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n >= 0 && out)
        up_control_write((up_control_reply *)out, "%s", text);
    free(n >= 0 ? text : NULL);
}

/* -- header fields host/message.c */

static const char *api_header_get(upesi_call *call, const char *name,
                                  size_t index)
{
    up_session *s = session_of(call);
    return s ? up_message_header_get(&s->msg, name, index) : NULL;
}

static int api_header_remove(upesi_call *call, const char *name)
{
    up_session *s = session_of(call);
    if (s == NULL || name == NULL)
        return -EINVAL;
    return up_message_header_remove(&s->msg, name);
}

/* -- SMTP AUTH the exchange is session.c's, docs/auth.md */

/* Keywords the host itself offers: a plugin cannot add them again. */
static const char *const host_ehlo_keywords[] = {
    "PIPELINING", "SIZE", "VRFY", "STARTTLS", "8BITMIME",
    "ENHANCEDSTATUSCODES",
};

static int api_ehlo_extension(upesi_call *call, const char *line)
{
    up_session *s = session_of(call);
    if (s == NULL || call->hook != UPESI_HOOK_HELO || line == NULL)
        return -EINVAL;
    size_t len = strlen(line), kw = strcspn(line, " ");
    if (len == 0 || len > 200 || kw == 0 || line[len - 1] == ' ')
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = line[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9');
        if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e ||
            (i < kw && !alnum && (c != '-' || i == 0)))
            return -EINVAL;
    }
    for (size_t i = 0; i < sizeof host_ehlo_keywords /
                               sizeof *host_ehlo_keywords; i++)
        if (strlen(host_ehlo_keywords[i]) == kw &&
            !strncasecmp(line, host_ehlo_keywords[i], kw))
            return -EINVAL;
    char *copy = strdup(line);
    if (copy == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_ehlo_ext; i++) {
        const char *old = s->ehlo_ext[i];
        if (strcspn(old, " ") == kw && !strncasecmp(old, line, kw)) {
            free(s->ehlo_ext[i]);
            s->ehlo_ext[i] = copy;
            return 0;
        }
    }
    if (s->n_ehlo_ext >= UP_MAX_EHLO_EXT) {
        free(copy);
        return -ENOSPC;
    }
    s->ehlo_ext[s->n_ehlo_ext++] = copy;
    return 0;
}

static up_session *auth_session_of(upesi_call *call)
{
    up_session *s = session_of(call);
    return s && call->hook == UPESI_HOOK_AUTH && s->auth_try_user ? s : NULL;
}

static const char *api_auth_mechanism(upesi_call *call)
{
    up_session *s = auth_session_of(call);
    if (s == NULL)
        return NULL;
    return s->auth_mech == UP_AUTH_LOGIN ? "LOGIN" : "PLAIN";
}

static const char *api_auth_user(upesi_call *call)
{
    up_session *s = auth_session_of(call);
    return s ? s->auth_try_user : NULL;
}

static const char *api_auth_password(upesi_call *call)
{
    up_session *s = auth_session_of(call);
    return s ? s->auth_secret : NULL;
}

/* -- the store (ABI 2.1): the plugin's name is the key prefix */

static const char *store_owner(upesi_ctx *ctx)
{
    return ctx ? ctx->name : NULL;
}

static upesi_store_op *api_store_get(upesi_ctx *ctx, const char *key,
                                     upesi_store_fn fn, void *arg)
{
    return up_store_get(store_owner(ctx), key, fn, arg);
}

static upesi_store_op *api_store_mget(upesi_ctx *ctx,
                                      const char *const *keys, size_t n,
                                      upesi_store_fn fn, void *arg)
{
    return up_store_mget(store_owner(ctx), keys, n, fn, arg);
}

static upesi_store_op *api_store_set(upesi_ctx *ctx, const char *key,
                                     const void *data, size_t len,
                                     long long ttl_ms, upesi_store_fn fn,
                                     void *arg)
{
    return up_store_set(store_owner(ctx), key, data, len, ttl_ms, fn, arg);
}

static upesi_store_op *api_store_del(upesi_ctx *ctx, const char *key,
                                     upesi_store_fn fn, void *arg)
{
    return up_store_del(store_owner(ctx), key, fn, arg);
}

static upesi_store_op *api_store_incr(upesi_ctx *ctx,
                                      const char *key, long long by,
                                      long long ttl_ms, upesi_store_fn fn,
                                      void *arg)
{
    return up_store_incr(store_owner(ctx), key, by, ttl_ms, fn, arg);
}

static upesi_store_op *api_store_mincr(upesi_ctx *ctx,
                                       const char *const *keys,
                                       const long long *by, size_t n,
                                       long long ttl_ms, upesi_store_fn fn,
                                       void *arg)
{
    return up_store_mincr(store_owner(ctx), keys, by, n, ttl_ms, fn, arg);
}

static upesi_store_op *api_store_expire(upesi_ctx *ctx,
                                        const char *key, long long ttl_ms,
                                        upesi_store_fn fn, void *arg)
{
    return up_store_expire(store_owner(ctx), key, ttl_ms, fn, arg);
}

static upesi_store_op *api_store_ttl(upesi_ctx *ctx, const char *key,
                                     upesi_store_fn fn, void *arg)
{
    return up_store_ttl(store_owner(ctx), key, fn, arg);
}

static upesi_store_op *api_store_count(upesi_ctx *ctx,
                                       upesi_store_fn fn, void *arg)
{
    return up_store_count(store_owner(ctx), fn, arg);
}

static const upesi_api api_table = {
    .abi_major = UPESI_ABI_MAJOR,
    .abi_minor = UPESI_ABI_MINOR,
    .size = sizeof(upesi_api),
    .strerror = api_strerror,
    .free = api_free,
    .ctx = api_ctx,
    .plugin_name = api_plugin_name,
    .settings = api_settings,
    .plugin_position = api_plugin_position,
    .hook_name = api_hook_name,
    .hook_find = api_hook_find,
    .log = api_log,
    .vlog = api_vlog,
    .log_call = api_log_call,
    .vlog_call = api_vlog_call,
    .stat_add = api_stat_add,
    .stat_set = api_stat_set,
    .reply = api_reply,
    .resume = api_resume,
    .on_cancel = api_on_cancel,
    .hook = api_hook,
    .config = api_config,
    .conn = api_conn,
    .command_line = api_command_line,
    .line_end = api_line_end,
    .address = api_address,
    .param = api_param,
    .sender = api_sender,
    .rcpt_count = api_rcpt_count,
    .rcpt = api_rcpt,
    .queue_id = api_queue_id,
    .is_local_domain = api_is_local_domain,
    .note_set = api_note_set,
    .note_get = api_note_get,
    .note_set_int = api_note_set_int,
    .note_get_int = api_note_get_int,
    .header_add = api_header_add,
    .header_get = api_header_get,
    .header_remove = api_header_remove,
    .message_size = api_message_size,
    .message_read = api_message_read,
    .message_action = api_message_action,
    .spool_envelope = api_spool_envelope,
    .ehlo_extension = api_ehlo_extension,
    .auth_mechanism = api_auth_mechanism,
    .auth_user = api_auth_user,
    .auth_password = api_auth_password,
    .config_path = api_config_path,
    .spool_dir = api_spool_dir,
    .hostname = api_hostname,
    .queue_work = api_queue_work,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .fd_watch = api_fd_watch,
    .fd_watch_update = api_fd_watch_update,
    .fd_unwatch = api_fd_unwatch,
    .control_register = api_control_register,
    .control_write = api_control_write,
    .dns_lookup = api_dns_lookup,
    .dns_cancel = up_dns_cancel,
    .reverse_name = api_reverse_name,
    .dns_ip_name = up_dns_ip_name,
    .file_write = up_durable_file_write,
    .file_commit = up_durable_file_commit,
    .dir_make = up_durable_dir_make,
    .dir_sync = up_durable_dir_sync,
    .store_get = api_store_get,
    .store_mget = api_store_mget,
    .store_set = api_store_set,
    .store_del = api_store_del,
    .store_incr = api_store_incr,
    .store_mincr = api_store_mincr,
    .store_expire = api_store_expire,
    .store_ttl = api_store_ttl,
    .store_cancel = up_store_cancel,
    .store_count = api_store_count,
    .cli_register = up_cli_register,
    .cli_wait = up_cli_wait,
    .txn_param = api_txn_param,
    .rcpt_param = api_rcpt_param,
    .domain_to_ascii = api_domain_to_ascii,
};

const upesi_api *up_api_table(void)
{
    return &api_table;
}
