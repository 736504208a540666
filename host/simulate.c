/*
 * simulate.c - `upesi -bh IP [HELO]`, the session simulation (see
 * simulate.h).
 *
 * The session is the real one: this process listens on an ephemeral
 * loopback port with the configuration's whole chain, and a client
 * thread connects to it, feeds it stdin's lines and copies the replies to
 * stdout.  The session takes the client to be IP (session.c asks
 * up_simulate_ip), so every plugin decides as it would for that client,
 * DNS lookups included (the configured servers, for real).  The client
 * sends one command and waits for its reply, as a client without
 * PIPELINING does; after a 354 it sends the lines up to a "." line as the
 * message (dot-stuff them yourself, as on the wire).  At the end of stdin
 * it sends QUIT if the session is still open.
 *
 * No plugin background work runs (no queue runner: nothing in the spool
 * moves), the control socket is not served, the statistics are this
 * process's.  STARTTLS and AUTH exchanges that need a real client are not
 * simulated (the reply shows, the client goes on in clear).
 *
 * Fails: a configuration that cannot listen on loopback, or a thread that
 * cannot start, exits 1 with the reason; a session that stops answering
 * ends the simulation after plugin_timeout + 30 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "dns.h"
#include "log.h"
#include "server.h"
#include "simulate.h"
#include "store.h"
#include "worker.h"

/* ------------------------------------------------------------------ */
/* the client thread                                                    */

typedef struct sim_client {
    int port;
    const char *helo;
    int timeout_s;
    uv_async_t done;
    int fd;
    char buf[65536];
    size_t len;
} sim_client;

/* Read one whole reply (through the line "NNN "), copy it to stdout.
 * Returns its code, or -1 when the server closed or went silent. */
static int read_reply(sim_client *c)
{
    int code = -1;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl == NULL) {
            if (c->len == sizeof c->buf)
                c->len = 0;     /* a line too long: drop it */
            ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (n <= 0)
                return -1;
            c->len += (size_t)n;
            continue;
        }
        size_t l = (size_t)(nl - c->buf);
        size_t shown = l && c->buf[l - 1] == '\r' ? l - 1 : l;
        fwrite(c->buf, 1, shown, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        int last = l >= 4 && c->buf[3] == ' ';
        if (l >= 3)
            code = atoi(c->buf);
        memmove(c->buf, nl + 1, c->len - l - 1);
        c->len -= l + 1;
        if (last || l < 4)
            return code;
    }
}

static int send_line(sim_client *c, const char *line)
{
    size_t n = strlen(line);
    char out[8192];
    if (n + 2 > sizeof out)
        n = sizeof out - 2;
    memcpy(out, line, n);
    memcpy(out + n, "\r\n", 2);
    return send(c->fd, out, n + 2, MSG_NOSIGNAL) == (ssize_t)(n + 2) ? 0 : -1;
}

static void *client_main(void *arg)
{
    sim_client *c = arg;
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)c->port) };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "upesi: -bh: cannot connect to the session: %s\n",
                strerror(errno));
        uv_async_send(&c->done);
        return NULL;
    }
    struct timeval tv = { .tv_sec = c->timeout_s };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int open = read_reply(c) > 0;       /* the greeting */
    if (open && c->helo) {
        char line[600];
        snprintf(line, sizeof line, "EHLO %s", c->helo);
        open = send_line(c, line) == 0 && read_reply(c) > 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int in_data = 0, quit = 0;
    while (open && (n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (send_line(c, line) != 0)
            break;
        if (in_data) {
            if (strcmp(line, ".") != 0)
                continue;
            in_data = 0;
        }
        int code = read_reply(c);
        if (code < 0 || code == 221 || code == 421)
            open = 0;
        if (code == 354)
            in_data = 1;
        quit = !strncasecmp(line, "QUIT", 4);
    }
    free(line);
    if (open && !quit && !in_data && send_line(c, "QUIT") == 0)
        read_reply(c);
    /* wait for the server's close: its disconnect hook has run then */
    char drain[256];
    while (read(c->fd, drain, sizeof drain) > 0)
        ;
    close(c->fd);
    uv_async_send(&c->done);
    return NULL;
}

static up_server sim_server;

static void on_client_done(uv_async_t *a)
{
    up_server_stop_listening(&sim_server);
    uv_close((uv_handle_t *)a, NULL);
    uv_stop(a->loop);
}

int up_simulate_run(up_config *cfg, const char *ip, const char *helo,
                    int write_store)
{
    unsigned char bin[16];
    if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1) {
        fprintf(stderr, "upesi: -bh: '%s' is not an IP address\n", ip);
        return 2;
    }
    up_simulate_begin(ip, write_store);

    /* one listener, on loopback, on a port the kernel picks */
    up_listen_addr *la = calloc(1, sizeof *la);
    if (la == NULL)
        return 1;
    struct sockaddr_in *sin = (struct sockaddr_in *)&la->addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    la->addrlen = sizeof *sin;
    snprintf(la->text, sizeof la->text, "127.0.0.1:0 (-bh)");
    free(cfg->listen);
    cfg->listen = la;
    cfg->n_listen = 1;
    cfg->n_smtps_listen = 0;
    cfg->n_submission_listen = 0;

    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    /* the loop plugins' timers and work run on; no plugin background
     * work is started (up_plugin_start): the forward queue stays put */
    up_api_set_loop(loop);
    up_worker_sessions_stat(0, sim_server.sessions_stat,
                            sizeof sim_server.sessions_stat);
    static up_listen_set set;
    if (up_listen_bind(cfg, &set) != 0 || set.n != 1 ||
        up_server_listen(&sim_server, loop, cfg, &set) != 0)
        return 1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(set.v[0].fd, (struct sockaddr *)&ss, &len) != 0)
        return 1;
    /* the store, as a worker that does no upkeep (no sweep: -1); writes
     * are not made without --write (store.c asks up_simulate_store_writes) */
    up_store_params sp = { .url = cfg->store,
                           .timeout_ms = (uint64_t)cfg->store_timeout,
                           .size = cfg->store_size, .worker_index = -1 };
    up_store_worker_start(loop, &sp);
    if (up_dns_init(loop, &(up_dns_settings){ cfg->dns_servers,
                                              cfg->dns_timeout,
                                              cfg->dns_cache_size }) != 0)
        return 1;
    static sim_client client;
    client.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    client.helo = helo;
    client.timeout_s = (int)cfg->plugin_timeout + 30;
    uv_async_init(loop, &client.done, on_client_done);
    pthread_t th;
    if (pthread_create(&th, NULL, client_main, &client) != 0) {
        fprintf(stderr, "upesi: -bh: cannot start the client thread\n");
        return 1;
    }
    fprintf(stderr, "upesi: -bh: a session from %s through %zu plugin%s "
            "(nothing is queued%s)\n", ip, cfg->n_plugins,
            cfg->n_plugins == 1 ? "" : "s",
            write_store ? "; the store is written" : ", the store is not "
                                                     "written");
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    up_dns_shutdown();
    return 0;
}
