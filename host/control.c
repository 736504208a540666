/*
 * control.c - the control socket (smtp.ini control_socket), both ends.
 *
 * Server: a unix stream socket on the worker's loop, mode 0600 (whoever
 * can connect can read the statistics and, with later commands, flush or
 * release mail).  A client sends one line, "command [args]\n"; the handler
 * registered for the command (case-insensitive) writes the answer, and the
 * server sends it and closes.  "stat [PREFIX]" is built in.
 *
 * Client: `upesi stat` connects with a plain blocking socket, sends the
 * line and copies the answer to stdout until the server closes.
 *
 * Fails: up_control_listen refuses (-errno, and a log line saying why) a
 * path that is not a socket, a socket another server still answers on, or
 * a path too long for sun_path.  A request line over UP_CONTROL_LINE_MAX
 * bytes, a client silent for UP_CONTROL_REQUEST_MS, or one that does not
 * read its answer within UP_CONTROL_ANSWER_MS is closed without more.  The
 * client reports every failure on stderr and returns -errno.
 * The process must ignore SIGPIPE (main does), as for every libuv stream.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "stats.h"

#define UP_CONTROL_LINE_MAX 1024        /* request line, without "\r\n" */
#define UP_CONTROL_REQUEST_MS 5000
#define UP_CONTROL_ANSWER_MS 30000
#define UP_CONTROL_REPLY_MAX (16u << 20)
#define UP_CONTROL_MAX_CONNS 32
#define UP_CONTROL_COMMANDS 32
#define UP_CONTROL_NAME_MAX 32
#define UP_CONTROL_CLIENT_TIMEOUT_S 30

struct up_control_reply {
    char *buf;
    size_t len;
    size_t cap;
    int truncated;
};

typedef struct ctl_conn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    int open_handles;           /* freed when both handles are closed */
    int answering;              /* the answer is being written */
    int closing;
    struct ctl_conn *prev, *next;
    struct up_control_reply reply;
    uv_write_t write_req;
    size_t req_len;
    char req[UP_CONTROL_LINE_MAX + 3];  /* line, "\r\n", NUL */
} ctl_conn;

typedef struct ctl_command {
    char name[UP_CONTROL_NAME_MAX];
    up_control_fn fn;
    up_control_arg_fn arg_fn;   /* instead of fn, with arg */
    void *arg;
} ctl_command;

static void ctl_stat(const char *args, up_control_reply *reply);

static ctl_command ctl_commands[UP_CONTROL_COMMANDS] = {
    { .name = "stat", .fn = ctl_stat },
};

enum { CTL_IDLE, CTL_LISTENING, CTL_CLOSING };
static uv_pipe_t ctl_server;
static int ctl_state = CTL_IDLE;
static char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t ctl_owner;         /* only the process that bound it unlinks */
static ctl_conn *ctl_conns;
static int ctl_nconns;

/* -- answers and commands ---------------------------------------------- */

void up_control_write(up_control_reply *reply, const char *fmt, ...)
{
    if (reply->truncated)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(reply->buf ? reply->buf + reply->len : NULL,
                      reply->buf ? reply->cap - reply->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (reply->buf != NULL && (size_t)n < reply->cap - reply->len) {
        reply->len += (size_t)n;
        return;
    }
    size_t need = reply->len + (size_t)n + 1;
    size_t cap = reply->cap ? reply->cap : 4096;
    while (cap < need)
        cap *= 2;
    char *buf = need <= UP_CONTROL_REPLY_MAX ? realloc(reply->buf, cap) : NULL;
    if (buf == NULL) {
        /* the client sees an answer that stops early, and a last line
         * saying so if there is room for it */
        reply->truncated = 1;
        static const char cut[] = "error: answer truncated\n";
        if (reply->buf != NULL && reply->cap - reply->len > sizeof cut) {
            memcpy(reply->buf + reply->len, cut, sizeof cut);
            reply->len += sizeof cut - 1;
        }
        return;
    }
    reply->buf = buf;
    reply->cap = cap;
    va_start(ap, fmt);
    vsnprintf(reply->buf + reply->len, reply->cap - reply->len, fmt, ap);
    va_end(ap);
    reply->len += (size_t)n;
}

static void ctl_stat_line(const char *name, long long value, void *arg)
{
    up_control_write(arg, "%s = %lld\n", name, value);
}

static void ctl_stat(const char *args, up_control_reply *reply)
{
    up_stats_each(args, ctl_stat_line, reply);
}

static int ctl_register(const char *command, up_control_fn fn,
                        up_control_arg_fn arg_fn, void *arg)
{
    size_t len = command ? strlen(command) : 0;
    if (len == 0 || len >= UP_CONTROL_NAME_MAX ||
        (fn == NULL && arg_fn == NULL) || strpbrk(command, " \t\r\n") != NULL)
        return -EINVAL;
    ctl_command *slot = NULL;
    for (size_t i = 0; i < UP_CONTROL_COMMANDS; i++) {
        if (ctl_commands[i].fn == NULL && ctl_commands[i].arg_fn == NULL) {
            if (slot == NULL)
                slot = &ctl_commands[i];
        } else if (strcasecmp(ctl_commands[i].name, command) == 0) {
            slot = &ctl_commands[i];    /* a reload registers again */
            break;
        }
    }
    if (slot == NULL)
        return -ENOSPC;
    memcpy(slot->name, command, len + 1);
    slot->fn = fn;
    slot->arg_fn = arg_fn;
    slot->arg = arg;
    return 0;
}

int up_control_register(const char *command, up_control_fn fn)
{
    return fn ? ctl_register(command, fn, NULL, NULL) : -EINVAL;
}

int up_control_register_arg(const char *command, up_control_arg_fn fn,
                            void *arg)
{
    return fn ? ctl_register(command, NULL, fn, arg) : -EINVAL;
}

static const ctl_command *ctl_lookup(const char *command)
{
    for (size_t i = 0; i < UP_CONTROL_COMMANDS; i++)
        if ((ctl_commands[i].fn != NULL || ctl_commands[i].arg_fn != NULL) &&
            strcasecmp(ctl_commands[i].name, command) == 0)
            return &ctl_commands[i];
    return NULL;
}

/* -- one connection ------------------------------------------------------ */

static void ctl_conn_closed(uv_handle_t *handle)
{
    ctl_conn *c = handle->data;
    if (--c->open_handles > 0)
        return;
    free(c->reply.buf);
    free(c);
}

static void ctl_conn_close(ctl_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl_nconns--;
    uv_close((uv_handle_t *)&c->pipe, ctl_conn_closed);
    uv_close((uv_handle_t *)&c->timer, ctl_conn_closed);
}

static void ctl_on_timeout(uv_timer_t *timer)
{
    ctl_conn *c = timer->data;
    up_log(NULL, UPESI_LOG_WARNING, "control: client %s; closing",
           c->answering ? "did not read its answer" : "sent no request");
    ctl_conn_close(c);
}

static void ctl_on_written(uv_write_t *req, int status)
{
    ctl_conn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        up_log(NULL, UPESI_LOG_INFO, "control: answer not delivered: %s",
               uv_strerror(status));
    ctl_conn_close(c);
}

static void ctl_dispatch(ctl_conn *c, char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    char *command = line + strspn(line, " \t");
    char *args = command + strcspn(command, " \t");
    if (*args != '\0') {
        *args++ = '\0';
        args += strspn(args, " \t");
    }
    const ctl_command *cmd = *command ? ctl_lookup(command) : NULL;
    up_log(NULL, UPESI_LOG_DEBUG, "control: %s%s%s", command,
           *args ? " " : "", args);
    if (cmd != NULL && cmd->fn != NULL)
        cmd->fn(args, &c->reply);
    else if (cmd != NULL)
        cmd->arg_fn(args, &c->reply, cmd->arg);
    else
        up_control_write(&c->reply, "error: unknown request\n");

    if (c->reply.len == 0) {
        ctl_conn_close(c);
        return;
    }
    c->answering = 1;
    uv_timer_start(&c->timer, ctl_on_timeout, UP_CONTROL_ANSWER_MS, 0);
    uv_buf_t buf = uv_buf_init(c->reply.buf, (unsigned)c->reply.len);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->pipe, &buf, 1,
                      ctl_on_written);
    if (rc < 0) {
        up_log(NULL, UPESI_LOG_INFO, "control: cannot answer: %s",
               uv_strerror(rc));
        ctl_conn_close(c);
    }
}

static void ctl_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    ctl_conn *c = handle->data;
    (void)suggested;
    /* read straight into the line buffer: a request is one short line */
    buf->base = c->req + c->req_len;
    buf->len = sizeof c->req - 1 - c->req_len;
}

/* The request is c->req[0 .. len): check it and answer it. */
static void ctl_take_line(ctl_conn *c, size_t len)
{
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (len > 0 && c->req[len - 1] == '\r')
        len--;
    c->req[len] = '\0';
    if (len > UP_CONTROL_LINE_MAX || strlen(c->req) != len) {
        up_log(NULL, UPESI_LOG_WARNING, "control: request line over %d "
               "bytes or with a NUL; closing", UP_CONTROL_LINE_MAX);
        ctl_conn_close(c);
        return;
    }
    ctl_dispatch(c, c->req);
}

static void ctl_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    ctl_conn *c = stream->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->req_len > 0)
            ctl_take_line(c, c->req_len);   /* "stat", EOF: as good */
        else
            ctl_conn_close(c);
        return;
    }
    size_t old = c->req_len;
    c->req_len += (size_t)nread;
    char *nl = memchr(c->req + old, '\n', (size_t)nread);
    if (nl != NULL)
        ctl_take_line(c, (size_t)(nl - c->req));
    else if (c->req_len >= sizeof c->req - 1)
        ctl_take_line(c, c->req_len);       /* too long: refused there */
}

static void ctl_on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        up_log(NULL, UPESI_LOG_WARNING, "control: accept: %s",
               uv_strerror(status));
        return;
    }
    ctl_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "control: out of memory");
        return;     /* libuv calls again while the client waits */
    }
    uv_pipe_init(server->loop, &c->pipe, 0);
    uv_timer_init(server->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = ctl_conns;
    if (ctl_conns)
        ctl_conns->prev = c;
    ctl_conns = c;
    ctl_nconns++;

    int rc = uv_accept(server, (uv_stream_t *)&c->pipe);
    if (rc < 0) {
        up_log(NULL, UPESI_LOG_WARNING, "control: accept: %s",
               uv_strerror(rc));
        ctl_conn_close(c);
        return;
    }
    if (ctl_nconns > UP_CONTROL_MAX_CONNS) {
        up_log(NULL, UPESI_LOG_WARNING, "control: over %d clients; closing "
               "one", UP_CONTROL_MAX_CONNS);
        ctl_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, ctl_on_timeout, UP_CONTROL_REQUEST_MS, 0);
    rc = uv_read_start((uv_stream_t *)&c->pipe, ctl_alloc, ctl_on_read);
    if (rc < 0)
        ctl_conn_close(c);
}

/* -- the listener ----------------------------------------------------------- */

/* A socket at path: left over from a server that died (unlink it), or
 * answered by a live one (refuse: two servers must not share it). */
static int ctl_clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        up_log(NULL, UPESI_LOG_ERR, "control socket %s exists and is not a "
               "socket; not removing it", path);
        return -EEXIST;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    if (live) {
        up_log(NULL, UPESI_LOG_ERR, "control socket %s: another server is "
               "listening on it", path);
        return -EADDRINUSE;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static void ctl_server_closed(uv_handle_t *handle)
{
    (void)handle;
    ctl_state = CTL_IDLE;
}

int up_control_listen(uv_loop_t *loop, const char *path)
{
    if (ctl_state != CTL_IDLE)
        return -EBUSY;
    if (path == NULL || *path == '\0')
        return -EINVAL;
    if (strlen(path) >= sizeof ctl_path) {
        up_log(NULL, UPESI_LOG_ERR, "control socket %s: path longer than "
               "%zu bytes", path, sizeof ctl_path - 1);
        return -ENAMETOOLONG;
    }
    int rc = ctl_clear_stale(path);
    if (rc < 0) {
        if (rc != -EEXIST && rc != -EADDRINUSE)
            up_log(NULL, UPESI_LOG_ERR, "control socket %s: %s", path,
                   strerror(-rc));
        return rc;
    }
    rc = uv_pipe_init(loop, &ctl_server, 0);
    if (rc < 0)
        return rc;
    /* umask closes the window between bind and chmod */
    mode_t old_mask = umask(0077);
    rc = uv_pipe_bind(&ctl_server, path);
    umask(old_mask);
    if (rc == 0) {
        snprintf(ctl_path, sizeof ctl_path, "%s", path);
        ctl_owner = getpid();
        if (chmod(path, 0600) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl_server, 16, ctl_on_connection);
    if (rc < 0) {
        up_log(NULL, UPESI_LOG_ERR, "control socket %s: %s", path,
               uv_strerror(rc));
        if (ctl_owner == getpid() && ctl_path[0] != '\0')
            unlink(ctl_path);
        ctl_path[0] = '\0';
        ctl_state = CTL_CLOSING;
        uv_close((uv_handle_t *)&ctl_server, ctl_server_closed);
        return rc;
    }
    ctl_state = CTL_LISTENING;
    return 0;
}

int up_control_bind(const char *path)
{
    if (path == NULL || *path == '\0' || strlen(path) >= sizeof ctl_path)
        return -EINVAL;
    int rc = ctl_clear_stale(path);
    if (rc < 0)
        return rc;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    /* umask closes the window between bind and chmod */
    mode_t old_mask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old_mask);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
        rc = -errno;
        close(fd);
        unlink(path);
        up_log(NULL, UPESI_LOG_ERR, "control socket %s: %s", path,
               strerror(-rc));
        return rc;
    }
    return fd;
}

int up_control_listen_fd(uv_loop_t *loop, int fd)
{
    if (ctl_state != CTL_IDLE)
        return -EBUSY;
    int rc = uv_pipe_init(loop, &ctl_server, 0);
    if (rc < 0)
        return rc;
    rc = uv_pipe_open(&ctl_server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl_server, 64, ctl_on_connection);
    if (rc < 0) {
        ctl_state = CTL_CLOSING;
        uv_close((uv_handle_t *)&ctl_server, ctl_server_closed);
        return rc;
    }
    ctl_path[0] = '\0';        /* the binding process owns the path */
    ctl_state = CTL_LISTENING;
    return 0;
}

void up_control_close(void)
{
    if (ctl_state == CTL_LISTENING) {
        ctl_state = CTL_CLOSING;
        uv_close((uv_handle_t *)&ctl_server, ctl_server_closed);
        /* a forked worker closing its copy must not remove the socket */
        if (ctl_owner == getpid() && ctl_path[0] != '\0')
            unlink(ctl_path);
        ctl_path[0] = '\0';
    }
    /* clients still sending get nothing; answers on their way finish */
    for (ctl_conn *c = ctl_conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->answering)
            ctl_conn_close(c);
    }
}

/* -- the client --------------------------------------------------------- */

static int ctl_write_all(int fd, const char *buf, size_t len, int sock)
{
    while (len > 0) {
        ssize_t w = sock ? send(fd, buf, len, MSG_NOSIGNAL)
                         : write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int up_control_request(const char *path, const char *request)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (path == NULL || strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "upesi: control socket path too long: %s\n",
                path ? path : "(none)");
        return -ENAMETOOLONG;
    }
    if (request == NULL || strpbrk(request, "\r\n") != NULL ||
        strlen(request) > UP_CONTROL_LINE_MAX) {
        fprintf(stderr, "upesi: bad control request (one line of at most "
                "%d bytes)\n", UP_CONTROL_LINE_MAX);
        return -EINVAL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "upesi: socket: %s\n", strerror(e));
        return -e;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        fprintf(stderr, "upesi: cannot connect to control socket %s: %s%s\n",
                path, strerror(e),
                e == ENOENT || e == ECONNREFUSED ? " (is upesi running?)" : "");
        close(fd);
        return -e;
    }
    /* a server that hangs must not hang the admin's shell */
    struct timeval tv = { .tv_sec = UP_CONTROL_CLIENT_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    size_t rlen = strlen(request);
    char line[UP_CONTROL_LINE_MAX + 2];
    memcpy(line, request, rlen);
    line[rlen] = '\n';
    int rc = ctl_write_all(fd, line, rlen + 1, 1);
    if (rc < 0) {
        fprintf(stderr, "upesi: control socket %s: cannot send: %s\n", path,
                strerror(-rc));
        close(fd);
        return rc;
    }

    fflush(stdout);     /* whatever the caller printed comes first */
    char buf[8192];
    int first = 1, refused = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            break;
        if (n > 0 && first)
            refused = n >= 6 && !memcmp(buf, "error:", 6);
        first = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
            if (rc == -ETIMEDOUT)
                fprintf(stderr, "upesi: control socket %s: no answer within "
                        "%ds\n", path, UP_CONTROL_CLIENT_TIMEOUT_S);
            else
                fprintf(stderr, "upesi: control socket %s: %s\n", path,
                        strerror(-rc));
            break;
        }
        rc = ctl_write_all(STDOUT_FILENO, buf, (size_t)n, 0);
        if (rc < 0) {
            fprintf(stderr, "upesi: cannot write to stdout: %s\n",
                    strerror(-rc));
            break;
        }
    }
    close(fd);
    return rc == 0 && refused ? 1 : rc;
}
