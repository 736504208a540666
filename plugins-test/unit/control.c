/*
 * control.c - unit test of host/control.c: a forked child serves the
 * control socket on its own uv loop; the parent asks it with
 * up_control_request (stdout caught in a file) and with raw sockets for
 * the limits (over-long line, silent client).  The stats table is shared,
 * so counters the parent adds after the fork show up in the child's answer.
 *
 * Prints TAP (tap.h); a failure is a "not ok" line and a non-zero exit.
 * Takes ~5 s: the silent-client deadline is real.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "control.h"
#include "log.h"
#include "stats.h"
#include "tap.h"

static char dir[64], sock_path[100], out_path[128], err_path[128];

/* -- the server, in the child ------------------------------------------- */

static uv_timer_t quit_timer;

static void echo_cmd(const char *args, up_control_reply *reply)
{
    up_control_write(reply, "[%s]\n", args);
}

static void on_quit_timer(uv_timer_t *timer)
{
    up_control_close();
    uv_close((uv_handle_t *)timer, NULL);
}

static void quit_cmd(const char *args, up_control_reply *reply)
{
    (void)args;
    up_control_write(reply, "bye\n");
    /* after this answer is on its way: close from the loop */
    uv_timer_start(&quit_timer, on_quit_timer, 10, 0);
}

static void serve(int ready_fd)
{
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &quit_timer);
    int rc = up_control_register("quit", quit_cmd);
    if (rc == 0)
        rc = up_control_listen(loop, sock_path);
    if (write(ready_fd, &rc, sizeof rc) != sizeof rc)
        _exit(3);
    close(ready_fd);
    if (rc != 0)
        _exit(2);
    uv_run(loop, UV_RUN_DEFAULT);
    exit(uv_loop_close(loop) == 0 ? 0 : 4);
}

/* -- the client side ------------------------------------------------------ */

static char answer[65536];

static void slurp(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* up_control_request with stdout and stderr caught; the answer is left in
 * answer[], stderr's text in err[]. */
static int request(const char *req, char *err, size_t errsize)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, STDOUT_FILENO);
    dup2(errfd, STDERR_FILENO);
    close(out);
    close(errfd);
    int rc = up_control_request(sock_path, req);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    slurp(out_path, answer, sizeof answer);
    if (err != NULL)
        slurp(err_path, err, errsize);
    return rc;
}

static int raw_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send data raw; the answer's length, or -1 if the server closed at once
 * (EOF or reset with nothing said). */
static long raw_exchange(const char *data, size_t len, double *seconds)
{
    int fd = raw_connect();
    if (fd < 0)
        return -2;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (len > 0 && send(fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) {
        close(fd);
        return -3;
    }
    long total = 0;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += n;
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (seconds)
        *seconds = (double)(b.tv_sec - a.tv_sec) +
                   (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    close(fd);
    return total ? total : -1;
}

static void test_client_errors(void)
{
    char err[1024];
    int rc = request("stat", err, sizeof err);
    is_int(rc, -ENOENT, "no server: -ENOENT");
    ok(strstr(err, "upesi: cannot connect to control socket ") != NULL &&
         strstr(err, sock_path) != NULL &&
         strstr(err, "No such file or directory (is upesi running?)") != NULL,
         "no server: a clear message on stderr");
    is_int(request("stat\nquit", err, sizeof err), -EINVAL,
         "a request with a newline is refused");
}

static void test_listen_refusals(void)
{
    char path[160];
    snprintf(path, sizeof path, "%s/plain", dir);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    is_int(up_control_listen(uv_default_loop(), path), -EEXIST,
         "a regular file at the path is not removed");
    ok(access(path, F_OK) == 0, "and is still there");
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    is_int(up_control_listen(uv_default_loop(), longp), -ENAMETOOLONG,
         "a path too long for sun_path");
}

/* A socket file nobody listens on, as a crashed server leaves it. */
static int make_stale_socket(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return rc;
}

static void test_server(void)
{
    char err[1024];
    struct stat st;

    is_int(request("stat", NULL, 0), 0, "stat: rc 0");
    is_str(answer,
             "Other.Thing = 1\n"
             "SMTP.Command.DATA = 2\n"
             "SMTP.Command.MAIL = 3\n"
             "SMTP.Sessions.Peak = 5\n"
             "Upesi.Stats.Dropped = 0\n", "stat: all counters, sorted");

    is_int(request("stat smtp", NULL, 0), 0, "stat smtp: rc 0");
    is_str(answer,
             "SMTP.Command.DATA = 2\n"
             "SMTP.Command.MAIL = 3\n"
             "SMTP.Sessions.Peak = 5\n", "stat smtp: prefix, any case");
    request("STAT SMTP.Command.", NULL, 0);
    is_str(answer,
             "SMTP.Command.DATA = 2\n"
             "SMTP.Command.MAIL = 3\n", "STAT SMTP.Command.: command in caps");
    request("stat   SMTP.Sessions  ", NULL, 0);
    is_str(answer, "SMTP.Sessions.Peak = 5\n", "blanks around the prefix");
    is_int(request("stat Nothing.", NULL, 0), 0, "no match: rc 0");
    is_str(answer, "", "no match: empty answer");

    up_stats_add("SMTP.Command.MAIL", 10);      /* the shared table */
    request("stat SMTP.Command.MAIL", NULL, 0);
    is_str(answer, "SMTP.Command.MAIL = 13\n",
             "a counter added after the fork shows");

    is_int(request("frobnicate now", err, sizeof err), 1,
           "unknown: rc 1 (the server refused)");
    is_str(answer, "error: unknown request\n", "unknown request");
    request("", NULL, 0);
    is_str(answer, "error: unknown request\n", "empty request");
    request("echo  hello world", NULL, 0);
    is_str(answer, "[hello world]\n", "a registered command gets its args");

    char line[1100];
    memset(line, 'x', sizeof line);
    memcpy(line, "echo ", 5);
    line[1024] = '\0';                          /* exactly 1 KiB */
    request(line, NULL, 0);
    is_int((long long)strlen(answer), 1019 + 3, "a 1024-byte line is answered");
    line[1024] = 'x';
    line[1025] = '\n';
    is_int(raw_exchange(line, 1026, NULL), -1,
         "a 1025-byte line: closed without an answer");
    line[1025] = 'x';
    is_int(raw_exchange(line, sizeof line, NULL), -1,
         "1100 bytes, no newline: closed without an answer");
    {   /* "stat ..." then EOF, no newline: as good as a line */
        int fd = raw_connect();
        long got = -2;
        if (fd >= 0) {
            send(fd, "stat smtp.sessions\r", 19, MSG_NOSIGNAL);
            shutdown(fd, SHUT_WR);
            char buf[256];
            ssize_t n = read(fd, buf, sizeof buf - 1);
            got = n;
            if (n > 0) {
                buf[n] = '\0';
                got = strcmp(buf, "SMTP.Sessions.Peak = 5\n") == 0 ? 1 : -4;
            }
            close(fd);
        }
        is_int(got, 1, "a line ended by EOF (and a CR) is answered");
    }

    double secs = 0;
    long silent = raw_exchange("", 0, &secs);
    ok(silent == -1 && secs > 4.5 && secs < 8,
         "a silent client is closed after 5 s");
    if (silent != -1 || secs <= 4.5 || secs >= 8)
        diag("answer %ld after %.2f s", silent, secs);

    ok(stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
         (st.st_mode & 07777) == 0600, "the socket is mode 0600");
    is_int(up_control_listen(uv_default_loop(), sock_path), -EADDRINUSE,
         "a second server on a live socket is refused");

    request("quit", NULL, 0);
    is_str(answer, "bye\n", "quit answered");
}

int main(void)
{
    plan(34);
    up_log_init("upesi-test", UPESI_LOG_CRIT, 0);   /* warnings are expected */

    snprintf(dir, sizeof dir, "/tmp/upesi-control-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(sock_path, sizeof sock_path, "%s/control.sock", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    snprintf(err_path, sizeof err_path, "%s/err", dir);

    is_int(up_stats_init(64), 0, "stats table");
    up_stats_add("SMTP.Command.MAIL", 3);
    up_stats_add("SMTP.Command.DATA", 2);
    up_stats_max("SMTP.Sessions.Peak", 5);
    up_stats_add("Other.Thing", 1);
    is_int(up_control_register("echo", echo_cmd), 0, "register echo");
    is_int(up_control_register("two words", echo_cmd), -EINVAL,
         "a command name with a blank is refused");

    test_client_errors();
    test_listen_refusals();
    is_int(make_stale_socket(), 0, "a stale socket left at the path");

    int ready[2];
    if (pipe(ready) != 0) {
        printf("Bail out! pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        serve(ready[1]);
    }
    close(ready[1]);
    int rc = -1;
    if (pid < 0 || read(ready[0], &rc, sizeof rc) != sizeof rc)
        rc = -1;
    close(ready[0]);
    if (!ok(rc == 0, "the child listens, over the stale socket")) {
        printf("Bail out! up_control_listen: %d\n", rc);
        return 1;
    }

    test_server();

    int status = -1;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
         "the child's loop ended cleanly after up_control_close");
    ok(access(sock_path, F_OK) != 0, "and the socket is gone");

    unlink(out_path);
    unlink(err_path);
    char plain[160];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    unlink(plain);
    rmdir(dir);
    up_stats_free();
    return done_testing();
}
