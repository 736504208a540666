/*
 * store_redis_uv.h - hiredis's event hooks on a libuv loop, writing the
 * commands of a loop iteration together (store_redis_uv.c).
 */
#ifndef UPESI_STORE_REDIS_UV_H
#define UPESI_STORE_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* In place of hiredis's redisLibuvAttach: REDIS_OK or REDIS_ERR. */
int up_store_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
