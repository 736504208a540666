/*
 * control.h - the control socket (smtp.ini control_socket): a unix stream
 * socket, mode 0600, over which `upesi -c DIR stat [PREFIX]` asks the running
 * server for its statistics.
 *
 * Protocol: the client sends one line, "stat [PREFIX]\n"; the server answers
 * with "Name = value\n" lines, sorted, and closes.  An unknown request gets
 * "error: unknown request\n".  Other requests (queue, flush, release) are
 * added by registering a handler.  A request line over 1024 bytes, or a
 * client silent for 5 s, is closed without an answer.
 */
#ifndef UPESI_CONTROL_H
#define UPESI_CONTROL_H

#include <uv.h>

/* A request handler: write the answer with up_control_write and return;
 * the server closes the connection after the handler returns. */
typedef struct up_control_reply up_control_reply;
typedef void (*up_control_fn)(const char *args, up_control_reply *reply);
void up_control_write(up_control_reply *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* command: one word, matched case-insensitively; registering a name again
 * replaces its handler.  0, -EINVAL or -ENOSPC (32 commands). */
int up_control_register(const char *command, up_control_fn fn);
/* The same with an argument handed back to fn (plugins' commands, through
 * api->control_register). */
typedef void (*up_control_arg_fn)(const char *args, up_control_reply *reply,
                                  void *arg);
int up_control_register_arg(const char *command, up_control_arg_fn fn,
                            void *arg);

/* Listen on path (unlinking a stale socket first).  0 or -errno, logged:
 * -EEXIST if path is not a socket, -EADDRINUSE if a server answers on it.
 * up_control_close stops listening and unlinks path (in the process that
 * bound it only); answers being written still finish.  Both are safe to
 * call twice. */
int up_control_listen(uv_loop_t *loop, const char *path);

/* Pre-fork servers: the supervisor binds the socket (mode 0600) and every
 * worker serves the same listening descriptor, so any worker can answer.
 * up_control_bind returns the descriptor or -errno (logged); the caller
 * unlinks path when it exits. */
int up_control_bind(const char *path);
int up_control_listen_fd(uv_loop_t *loop, int fd);
void up_control_close(void);

/* Client side, for the command line: send "request\n", copy the answer to
 * stdout.  Returns 0, or -errno (with a message on stderr); an
 * "error: ..." answer is still 0 (it went to stdout). */
int up_control_request(const char *path, const char *request);
/* (returns 1 when the server answered "error: ...") */

#endif
