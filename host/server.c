/*
 * server.c - listeners (see server.h).
 *
 * The supervisor binds every listening socket once, before it starts a
 * worker (up_listen_bind), and each worker serves the inherited
 * descriptors (up_server_listen): one socket per address, shared by the
 * workers of this supervisor and by nobody else.  No SO_REUSEPORT: with
 * it, the kernel lets any process of the same user join the port (it
 * checks the option on both sockets and the user id, nothing more), and a
 * second server started by mistake silently took most new connections.
 * Without it, a second bind of the address fails with EADDRINUSE, for
 * every process.  The workers all wait on the one socket; the kernel
 * wakes them and whichever is free first accepts.  With several workers
 * each accepts one connection at a time (uv_tcp_simultaneous_accepts off)
 * so that a burst is not taken whole by the first one awake
 * (bench/README.md gives the spreading measured against per-worker
 * SO_REUSEPORT sockets).
 *
 * SO_REUSEADDR is set (as every server does) so that a restart is not
 * refused for connections of the previous run still in TIME_WAIT or still
 * finishing their transaction in a stopping server: it does not let
 * anyone bind an address while a socket listens on it.
 *
 * Fails: an address that cannot be bound is logged with its reason ("cannot
 * listen on 127.0.0.1:25: Address already in use") and up_listen_bind
 * fails: upesi does not run half-listening, and exits 1 at start.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "server.h"
#include "session.h"


/* UP_LISTEN_PROXY when the listener was marked "proxy" */
static int proxy_flag(up_server *srv, uv_stream_t *listener)
{
    size_t i = (size_t)((uv_tcp_t *)listener - srv->listeners);
    return i < srv->n_listeners && srv->listener_proxy[i] ? UP_LISTEN_PROXY
                                                         : 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    up_server *srv = listener->data;
    if (status < 0) {
        up_log(NULL, UPESI_LOG_WARNING, "accept: %s", uv_strerror(status));
        return;
    }
    up_session_accept(srv, listener,
                      UP_LISTEN_PLAIN | proxy_flag(srv, listener));
}

/* an smtps_listen address: the handshake comes before the greeting */
static void on_connection_tls(uv_stream_t *listener, int status)
{
    up_server *srv = listener->data;
    if (status < 0) {
        up_log(NULL, UPESI_LOG_WARNING, "accept: %s", uv_strerror(status));
        return;
    }
    up_session_accept(srv, listener,
                      UP_LISTEN_SMTPS | proxy_flag(srv, listener));
}

/* a submission_listen address: MAIL needs AUTH first (docs/auth.md) */
static void on_connection_submission(uv_stream_t *listener, int status)
{
    up_server *srv = listener->data;
    if (status < 0) {
        up_log(NULL, UPESI_LOG_WARNING, "accept: %s", uv_strerror(status));
        return;
    }
    up_session_accept(srv, listener,
                      UP_LISTEN_SUBMISSION | proxy_flag(srv, listener));
}

/* one listening socket, bound and listening, close-on-exec (a plugin's
 * child process must not hold the port); -errno */
static int bind_socket(const up_listen_addr *la)
{
    int fd = socket(la->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (la->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)&la->addr, la->addrlen) != 0 ||
        listen(fd, 1024) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int bind_list(up_listen_set *set, const up_listen_addr *addrs,
                     size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        up_listen_socket *ls = &set->v[set->n];
        int fd = bind_socket(&addrs[i]);
        if (fd < 0) {
            up_log(NULL, UPESI_LOG_ERR, "cannot listen on %s: %s%s",
                   addrs[i].text, strerror(-fd),
                   fd == -EADDRINUSE ? " (is another server running on "
                                       "it?)" : "");
            return -1;
        }
        ls->fd = fd;
        ls->kind = kind;
        ls->proxy = addrs[i].proxy;
        memcpy(ls->text, addrs[i].text, sizeof ls->text);
        set->n++;
    }
    return 0;
}

int up_listen_bind(const up_config *cfg, up_listen_set *set)
{
    size_t n = cfg->n_listen + cfg->n_smtps_listen +
               cfg->n_submission_listen;
    set->n = 0;
    set->v = calloc(n ? n : 1, sizeof *set->v);
    if (set->v == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "cannot listen: out of memory");
        return -1;
    }
    if (bind_list(set, cfg->listen, cfg->n_listen, UP_LISTEN_PLAIN) != 0 ||
        bind_list(set, cfg->smtps_listen, cfg->n_smtps_listen,
                  UP_LISTEN_SMTPS) != 0 ||
        bind_list(set, cfg->submission_listen, cfg->n_submission_listen,
                  UP_LISTEN_SUBMISSION) != 0) {
        up_listen_close(set);
        return -1;
    }
    return 0;
}

void up_listen_close(up_listen_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        close(set->v[i].fd);
    free(set->v);
    set->v = NULL;
    set->n = 0;
}

static int serve_one(up_server *srv, uv_tcp_t *tcp, const up_listen_socket *ls,
                     int set_shared)
{
    static const uv_connection_cb callbacks[] = {
        [UP_LISTEN_PLAIN] = on_connection,
        [UP_LISTEN_SMTPS] = on_connection_tls,
        [UP_LISTEN_SUBMISSION] = on_connection_submission,
    };
    int rc = uv_tcp_init(srv->loop, tcp);
    if (rc == 0) {
        tcp->data = srv;
        rc = uv_tcp_open(tcp, ls->fd);
        /* with other workers on the socket: accept one connection, yield,
         * then the next, instead of all that wait (libuv's own knob for
         * processes sharing a listener) */
        if (rc == 0 && set_shared)
            rc = uv_tcp_simultaneous_accepts(tcp, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)tcp, 1024, callbacks[ls->kind]);
        if (rc != 0)
            uv_close((uv_handle_t *)tcp, NULL);
    }
    if (rc != 0) {
        up_log(NULL, UPESI_LOG_ERR, "cannot listen on %s: %s", ls->text,
               uv_strerror(rc));
        return -1;
    }
    up_log(NULL, UPESI_LOG_INFO, "listening on %s%s", ls->text,
           ls->kind == UP_LISTEN_SMTPS ? " (implicit TLS)" :
           ls->kind == UP_LISTEN_SUBMISSION ? " (submission)" : "");
    return 0;
}

int up_server_listen(up_server *srv, uv_loop_t *loop, up_config *cfg,
                     const up_listen_set *set)
{
    srv->loop = loop;
    srv->config = up_config_ref(cfg);
    srv->listeners = calloc(set->n ? set->n : 1, sizeof *srv->listeners);
    srv->listener_proxy = calloc(set->n + 1, 1);
    if (srv->listeners == NULL || srv->listener_proxy == NULL)
        return -1;
    for (size_t i = 0; i < set->n; i++) {
        srv->listener_proxy[i] = (unsigned char)set->v[i].proxy;
        if (serve_one(srv, &srv->listeners[i], &set->v[i], set->shared) != 0)
            return -1;
        srv->n_listeners++;
    }
    return 0;
}

void up_server_reload(up_server *srv, up_config *cfg)
{
    int same = cfg->n_listen == srv->config->n_listen;
    for (size_t i = 0; same && i < cfg->n_listen; i++)
        same = !strcmp(cfg->listen[i].text, srv->config->listen[i].text);
    same = same && cfg->n_smtps_listen == srv->config->n_smtps_listen;
    for (size_t i = 0; same && i < cfg->n_smtps_listen; i++)
        same = !strcmp(cfg->smtps_listen[i].text,
                       srv->config->smtps_listen[i].text);
    same = same &&
           cfg->n_submission_listen == srv->config->n_submission_listen;
    for (size_t i = 0; same && i < cfg->n_submission_listen; i++)
        same = !strcmp(cfg->submission_listen[i].text,
                       srv->config->submission_listen[i].text);
    if (!same)
        up_log(NULL, UPESI_LOG_WARNING, "listen, smtps_listen or "
               "submission_listen changed: "
               "the new addresses take effect at the next restart");
    up_config_unref(srv->config);
    srv->config = up_config_ref(cfg);
}

void up_server_stop_listening(up_server *srv)
{
    for (size_t i = 0; i < srv->n_listeners; i++)
        uv_close((uv_handle_t *)&srv->listeners[i], NULL);
    srv->n_listeners = 0;
    srv->stopping = 1;
}

/* Sessions are freed only from their close callbacks, later in the loop:
 * the list holds while these walk it. */
void up_server_stop_sessions(up_server *srv)
{
    for (up_session *s = srv->session_list, *next; s != NULL; s = next) {
        next = s->srv_next;
        up_session_stop(s);
    }
}

void up_server_cut_sessions(up_server *srv)
{
    for (up_session *s = srv->session_list, *next; s != NULL; s = next) {
        next = s->srv_next;
        up_session_stop_cut(s);
    }
}
