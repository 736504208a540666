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
    struct up_session *session_list; /* the same sessions, for a stop      */
    int worker_index;
    char sessions_stat[48];     /* Upesi.Worker.<index>.Sessions          */
    unsigned long next_session;
    int stopping;
    char read_buf[65536];       /* one read buffer for every session:
                                   input is copied into the session's line
                                   buffer at once                          */
} up_server;

/* The listening sockets, bound by the supervisor before any worker
 * starts and inherited by every worker (server.c says why). */
typedef struct up_listen_socket {
    int fd;
    int kind;                   /* UP_LISTEN_* (session.h)                 */
    int proxy;                  /* a PROXY header comes first              */
    char text[80];              /* the address as written, for logs        */
} up_listen_socket;
typedef struct up_listen_set {
    up_listen_socket *v;
    size_t n;
    int shared;                 /* more than one worker serves them        */
} up_listen_set;

/* Bind and listen on every address of listen, smtps_listen and
 * submission_listen, in that order.  0, or -1 with each failure logged
 * (nothing left open). */
int up_listen_bind(const up_config *cfg, up_listen_set *set);
/* Close this process's copies (the supervisor, when it stops). */
void up_listen_close(up_listen_set *set);

/* A worker: serve the inherited sockets of set.  0 or -1 (logged). */
int up_server_listen(up_server *srv, uv_loop_t *loop, up_config *cfg,
                     const up_listen_set *set);
/* Swap in a new generation. */
void up_server_reload(up_server *srv, up_config *cfg);
/* Stop accepting (graceful shutdown). */
void up_server_stop_listening(up_server *srv);
/* The stop begins: every session without a transaction in progress gets
 * 421 4.3.2 and is closed (up_session_stop). */
void up_server_stop_sessions(up_server *srv);
/* stop_timeout passed: every session gets 421 4.3.2 and is closed. */
void up_server_cut_sessions(up_server *srv);

#endif
