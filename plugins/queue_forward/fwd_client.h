/*
 * fwd_client.h - the SMTP/LMTP client's insides, shared by its four
 * files (the rest of the plugin sees only fwd_job_start, fwd_job_abort,
 * fwd_pool_drain and fwd_pool_stop in forward.h):
 *
 *   fwd_smtp.c    the conversation: commands out, what replies mean
 *   fwd_body.c    the message out: DATA dot-stuffed, or BDAT chunks
 *   fwd_conn.c    a connection's socket, buffers, events, timer, failure
 *   fwd_pool.c    which connection a job runs on, and where it goes after
 *
 * All of it runs on the worker's loop.
 */
#ifndef FWD_CLIENT_H
#define FWD_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "forward.h"

#define FWD_BODY_CHUNK (64 * 1024)     /* a read of the message */
#define FWD_IN_MAX 8192             /* one reply line, and then some */
#define FWD_REPLY_TEXT 512
#define FWD_QUIT_WAIT_MS 500        /* for the 221 when the worker stops */

/* where a connection is; conn_timer_fired (fwd_conn.c) names each stage
 * in this order */
enum {
    ST_CONNECTING, ST_GREETING, ST_EHLO, ST_HELO, ST_ENVELOPE, ST_DATA,
    ST_BODY, ST_DOT, ST_RSET_AFTER, ST_IDLE, ST_QUIT, ST_STARTTLS,
    ST_HANDSHAKE, ST_BDAT_WAIT  /* BDAT without PIPELINING: a chunk's
                                   reply before the next chunk */
};

typedef struct fwd_conn {
    int fd;
    upesi_watch *watch;
    upesi_timer *timer;
    int watching;                   /* events asked for */
    int state;
    fwd_target target;
    fwd_config *cfg;                /* a reference */
    fwd_job *job;
    int reused;                     /* came from the pool */
    int pipelining, size_ext;
    int smtputf8_ext, dsn_ext;      /* the last EHLO offered SMTPUTF8, DSN */
    int starttls;                   /* the last EHLO offered STARTTLS */
    int chunking, binarymime_ext;   /* ... CHUNKING, BINARYMIME */
    fwd_tls *tls;                   /* NULL: in clear */
    int tls_verified;               /* the certificate was verified */
    int tls_want;                   /* handshake: what wolfSSL waits for;
                                       later WRITE when a read needs it */
    /* input */
    char in[FWD_IN_MAX];
    size_t in_len;
    int reply_code, reply_lines;
    char reply_text[FWD_REPLY_TEXT];
    /* output */
    char *out;
    size_t out_len, out_off, out_cap;
    /* envelope bookkeeping */
    size_t n_cmds, cmds_sent, replies;  /* [RSET] MAIL RCPT... */
    int has_rset;
    size_t n_accepted, final_seen;
    /* body */
    off_t body_off;
    int at_line_start;
    int pending_cr;             /* a CR ended the last chunk read      */
    int bdat;                   /* this transaction sends BDAT chunks  */
    size_t bdat_sent, bdat_acked;   /* chunks out, replies to them in  */
    char *chunk;
    int in_event;                   /* inside fwd_conn_on_event: free later */
    int dead;
    struct fwd_conn *next;          /* pool */
} fwd_conn;

/* ---------------------------------------------------------------------- */
/* the connection (fwd_conn.c)                                            */

/* (re)arm the stage's timer; 0 stops it */
void fwd_conn_timer(fwd_conn *c, unsigned ms);
/* ask for the events the state and the output call for */
void fwd_conn_watch(fwd_conn *c);
/* close and free; inside fwd_conn_on_event only marks it dead */
void fwd_conn_free(fwd_conn *c);
/* the output buffer: 0, or -1 when memory runs out */
int fwd_out_reserve(fwd_conn *c, size_t more);
int fwd_out_append(fwd_conn *c, const char *data, size_t len);
int fwd_out_printf(fwd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Write what can be written.  0, or -1 after fwd_conn_fail. */
int fwd_conn_flush(fwd_conn *c);
/* QUIT without waiting for room or the answer.  0 when it went out
 * whole, -1 when not (something else half-sent, no room, an error). */
int fwd_send_quit(fwd_conn *c);
/* The connection failed: its job's open recipients are TEMP (or the job
 * is retried once on a fresh connection), and c is gone. */
void fwd_conn_fail(fwd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* the fd_watch callback */
void fwd_conn_on_event(upesi_watch *w, int events, void *arg);

/* ---------------------------------------------------------------------- */
/* the conversation (fwd_smtp.c)                                          */

void fwd_rcpt_set(fwd_rcpt *r, int state, int code,
                  const char *enhanced, const char *text);
/* [RSET] MAIL and the RCPTs (all at once with PIPELINING).  0 or -1 after
 * fwd_conn_fail. */
int fwd_send_envelope(fwd_conn *c);
/* The next piece of the message into the output (fwd_body.c): dot-stuffed
 * for DATA, or the next BDAT chunk (c->bdat).  0 or -1 after
 * fwd_conn_fail. */
int fwd_body_fill(fwd_conn *c);
/* Drive the STARTTLS handshake.  When it is done: log, EHLO again.  -1
 * if c failed. */
int fwd_starttls_step(fwd_conn *c);
/* Take complete reply lines out of c->in: 1 after a whole reply was
 * handled (c may be pooled, serving another job, or gone), 0 when more
 * input is needed, -1 if c is gone. */
int fwd_parse_input(fwd_conn *c);

/* ---------------------------------------------------------------------- */
/* jobs and the pool (fwd_pool.c)                                         */

void fwd_pool_remove(fwd_conn *c);
/* The job is over: hand the connection to the pool or close it, then
 * tell the owner.  keep: the connection is in a clean state. */
void fwd_job_finish(fwd_conn *c, int keep);

#endif
