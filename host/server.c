/*
 * server.c - listeners (see server.h).
 *
 * Listening sockets get SO_REUSEPORT so that several worker processes can
 * each bind the same addresses and let the kernel spread connections.
 *
 * Fails: a listen address that cannot be bound is logged with its reason
 * and makes up_server_listen fail: upesi does not run half-listening.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

static int bind_one(up_server *srv, uv_tcp_t *tcp, const up_listen_addr *la,
                    uv_connection_cb on_accept)
{
    int rc = uv_tcp_init_ex(srv->loop, tcp, la->addr.ss_family);
    if (rc == 0) {
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)tcp, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        tcp->data = srv;
        rc = uv_tcp_bind(tcp, (const struct sockaddr *)&la->addr,
                         la->addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY
                                                         : 0);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 1024, on_accept);
    if (rc != 0) {
        up_log(NULL, UPESI_LOG_ERR, "cannot listen on %s: %s", la->text,
               uv_strerror(rc));
        return -1;
    }
    srv->listener_proxy[tcp - srv->listeners] = (unsigned char)la->proxy;
    up_log(NULL, UPESI_LOG_INFO, "listening on %s%s", la->text,
           on_accept == on_connection_tls ? " (implicit TLS)" :
           on_accept == on_connection_submission ? " (submission)" : "");
    return 0;
}

int up_server_listen(up_server *srv, uv_loop_t *loop, up_config *cfg)
{
    srv->loop = loop;
    srv->config = up_config_ref(cfg);
    srv->listeners = calloc(cfg->n_listen + cfg->n_smtps_listen +
                                cfg->n_submission_listen,
                            sizeof *srv->listeners);
    srv->listener_proxy = calloc(cfg->n_listen + cfg->n_smtps_listen +
                                     cfg->n_submission_listen + 1, 1);
    if (srv->listeners == NULL || srv->listener_proxy == NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (bind_one(srv, &srv->listeners[i], &cfg->listen[i],
                     on_connection) != 0)
            return -1;
        srv->n_listeners++;
    }
    for (size_t i = 0; i < cfg->n_smtps_listen; i++) {
        if (bind_one(srv, &srv->listeners[srv->n_listeners],
                     &cfg->smtps_listen[i], on_connection_tls) != 0)
            return -1;
        srv->n_listeners++;
    }
    for (size_t i = 0; i < cfg->n_submission_listen; i++) {
        if (bind_one(srv, &srv->listeners[srv->n_listeners],
                     &cfg->submission_listen[i],
                     on_connection_submission) != 0)
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
