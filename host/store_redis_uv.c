/*
 * store_redis_uv.c - hiredis's event hooks on the worker's libuv loop, for
 * the store's Redis backend (store_redis.c).
 *
 * hiredis's own libuv adapter (hiredis/adapters/libuv.h) calls
 * uv_poll_start for every command queued and every write done, and each
 * uv_poll_start takes the socket out of epoll and puts it back: two
 * epoll_ctl calls per command, several per message, on the hottest path
 * of a worker that counts every MAIL and RCPT in Redis.  Here the socket
 * stays watched for reading from connect to close, and commands are
 * written together, once per turn of the loop, no epoll_ctl: the first
 * command queued arms a flush that runs after the loop's next poll (a
 * uv_check handle, the prepare handle telling that a poll began since),
 * and an idle handle keeps that poll from waiting.  So the sessions whose
 * commands arrived in that poll join the same write, as they did with
 * hiredis's adapter (its write waited for the next poll's "writable"):
 * one write() and one wake-up of Redis for all of them.  (Writing at once,
 * before the next poll, was measured: more writes, a task switch more per
 * message for the worker, bench/README.md.)  The socket is watched for
 * writing only while hiredis waits for the connect to finish or for room
 * in a full socket buffer.
 *
 * Fails: as hiredis's adapter, an attach that cannot allocate or watch the
 * socket returns REDIS_ERR; errors on the socket are hiredis's to report
 * (its read and write handlers disconnect and call back).
 */
#include <stdlib.h>

#include "store_redis_uv.h"

typedef struct rl_events {
    redisAsyncContext *ac;          /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    uv_prepare_t flush;             /* notes that a poll begins         */
    uv_check_t after;               /* the flush, after that poll       */
    uv_idle_t nowait;               /* ... which must not wait          */
    int state;                      /* 0 idle, 1 armed, 2 a poll began  */
    int events;                     /* what poll watches now            */
    int want;                       /* what hiredis wants watched       */
    int flushing;                   /* inside redisAsyncHandleWrite     */
    int closing;                    /* handles being closed             */
} rl_events;

static void rl_poll_cb(uv_poll_t *h, int status, int events);

/* Watch what hiredis wants, touching epoll only when that changed. */
static void rl_update(rl_events *p)
{
    if (p->closing || p->want == p->events)
        return;
    p->events = p->want;
    if (p->events)
        uv_poll_start(&p->poll, p->events, rl_poll_cb);
    else
        uv_poll_stop(&p->poll);
}

static void rl_poll_cb(uv_poll_t *h, int status, int events)
{
    rl_events *p = h->data;
    if (p->ac == NULL)
        return;
    /* an error on the socket: let hiredis's handlers find it (both read
     * and write report it and disconnect) */
    if (status < 0)
        events = p->want;
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

/* Before a poll: if a flush is armed, the poll about to run is the one
 * it waits for. */
static void rl_before_cb(uv_prepare_t *h)
{
    rl_events *p = h->data;
    if (p->state == 1)
        p->state = 2;
}

/* After a poll: write what was queued before it and during it. */
static void rl_after_cb(uv_check_t *h)
{
    rl_events *p = h->data;
    if (p->state != 2)
        return;
    p->state = 0;
    uv_prepare_stop(&p->flush);
    uv_check_stop(&p->after);
    uv_idle_stop(&p->nowait);
    if (p->ac == NULL)
        return;
    p->flushing = 1;
    redisAsyncHandleWrite(p->ac);   /* may disconnect: p->ac then NULL */
    p->flushing = 0;
}

/* Active while a flush is armed: the poll does not wait. */
static void rl_idle_cb(uv_idle_t *h)
{
    (void)h;
}

static void rl_add_read(void *privdata)
{
    rl_events *p = privdata;
    p->want |= UV_READABLE;
    rl_update(p);
}

static void rl_del_read(void *privdata)
{
    rl_events *p = privdata;
    p->want &= ~UV_READABLE;
    rl_update(p);
}

static void rl_add_write(void *privdata)
{
    rl_events *p = privdata;
    if (p->ac == NULL)
        return;
    if (!(p->ac->c.flags & REDIS_CONNECTED) || p->flushing ||
        (p->want & UV_WRITABLE)) {
        /* the connect's completion, or what did not fit in the socket
         * buffer: the socket tells when it can take more */
        p->want |= UV_WRITABLE;
        rl_update(p);
        return;
    }
    if (p->state == 0) {
        p->state = 1;
        uv_prepare_start(&p->flush, rl_before_cb);
        uv_check_start(&p->after, rl_after_cb);
        uv_idle_start(&p->nowait, rl_idle_cb);
    }
}

static void rl_del_write(void *privdata)
{
    rl_events *p = privdata;
    p->want &= ~UV_WRITABLE;
    rl_update(p);
}

static void rl_closed(uv_handle_t *h)
{
    rl_events *p = h->data;
    if (++p->closing == 5)          /* the four handles closed */
        free(p);
}

static void rl_cleanup(void *privdata)
{
    rl_events *p = privdata;
    p->ac = NULL;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->poll, rl_closed);
    uv_close((uv_handle_t *)&p->flush, rl_closed);
    uv_close((uv_handle_t *)&p->after, rl_closed);
    uv_close((uv_handle_t *)&p->nowait, rl_closed);
}

int up_store_redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    rl_events *p = calloc(1, sizeof *p);
    if (p == NULL)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    uv_prepare_init(loop, &p->flush);
    uv_unref((uv_handle_t *)&p->flush);
    uv_check_init(loop, &p->after);
    uv_unref((uv_handle_t *)&p->after);
    uv_idle_init(loop, &p->nowait);
    uv_unref((uv_handle_t *)&p->nowait);
    p->after.data = p;
    p->nowait.data = p;
    p->poll.data = p;
    p->flush.data = p;
    p->ac = ac;
    ac->ev.addRead = rl_add_read;
    ac->ev.delRead = rl_del_read;
    ac->ev.addWrite = rl_add_write;
    ac->ev.delWrite = rl_del_write;
    ac->ev.cleanup = rl_cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
