/*
 * server.h - the listeners of one worker and the sessions they accept.
 *
 * The server owns the current configuration generation; SIGHUP replaces it
 * (up_server_reload) while sessions keep the generation they started with.
 */
#ifndef UPESI_SERVER_H
#define UPESI_SERVER_H

#include <uv.h>

#include "config.h"

typedef struct up_server {
    uv_loop_t *loop;
    up_config *config;          /* current generation                     */
    uv_tcp_t *listeners;
    unsigned char *listener_proxy;  /* per listener: PROXY header expected */
    size_t n_listeners;
    int sessions;               /* open sessions in this worker           */
    int worker_index;
    char sessions_stat[48];     /* Upesi.Worker.<index>.Sessions          */
    unsigned long next_session;
    int stopping;
    char read_buf[65536];       /* one read buffer for every session:
                                   input is copied into the session's line
                                   buffer at once                          */
} up_server;

/* Bind and listen on every address of cfg->listen.  0 or -1 (logged). */
int up_server_listen(up_server *srv, uv_loop_t *loop, up_config *cfg);
/* Swap in a new generation. */
void up_server_reload(up_server *srv, up_config *cfg);
/* Stop accepting (graceful shutdown). */
void up_server_stop_listening(up_server *srv);

#endif
