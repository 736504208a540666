/*
 * store_redis_uv.c - hiredis's event hooks on the worker's libuv loop, for
 * the store's Redis backend (store_redis.c).
 *
 * hiredis's own libuv adapter (hiredis/adapters/libuv.h) calls
 * uv_poll_start for every command queued and every write done, and each
 * uv_poll_start takes the socket out of epoll and puts it back: two
 * epoll_ctl calls per command, several per message, on the hottest path
 * of a worker that counts every MAIL and RCPT in Redis.  Here the socket
 * stays watched for reading from connect to close, and the commands of a
 * loop iteration are written together just before the loop waits again
 * (a uv_prepare handle): one write() for all the sessions that asked
 * something in that iteration, no epoll_ctl.  The socket is watched for
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
    uv_prepare_t flush;
    int events;                     /* what poll watches now */
    int want;                       /* what hiredis wants watched */
    int flushing;                   /* inside redisAsyncHandleWrite */
    int closing;                    /* handles being closed */
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

/* Before the loop waits: write what this iteration queued. */
static void rl_flush_cb(uv_prepare_t *h)
{
    rl_events *p = h->data;
    uv_prepare_stop(h);
    if (p->ac == NULL)
        return;
    p->flushing = 1;
    redisAsyncHandleWrite(p->ac);   /* may disconnect: p->ac then NULL */
    p->flushing = 0;
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
    uv_prepare_start(&p->flush, rl_flush_cb);
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
    if (++p->closing == 3)          /* both handles closed */
        free(p);
}

static void rl_cleanup(void *privdata)
{
    rl_events *p = privdata;
    p->ac = NULL;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->poll, rl_closed);
    uv_close((uv_handle_t *)&p->flush, rl_closed);
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
