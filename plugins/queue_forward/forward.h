/*
 * forward.h - queue_forward's parts and how they talk (internal to the
 * plugin; the host sees only the descriptor in fwd_main.c).
 *
 *   fwd_config.c    settings (queue_forward.ini) and routes
 *   fwd_smtp.c      the SMTP/LMTP client (one job = one transaction to one
 *                   downstream): commands and what the replies mean
 *   fwd_body.c      the message on the wire: DATA dot-stuffed, or BDAT
 *                   chunks when the downstream offers CHUNKING
 *   fwd_conn.c      the client's connection: socket, buffers, events,
 *                   timeouts, failure
 *   fwd_pool.c      the client's connections for jobs: pooled or new,
 *                   given back or closed (the three share fwd_client.h)
 *   fwd_store.c     spool files: envelope text, durable writes with group
 *                   commit, the queue directories
 *   fwd_queue.c     store-and-forward: the runner (scan, claim, recover)
 *   fwd_delivery.c  one claimed message: deliver, then done, requeued,
 *                   rewritten or dead
 *   fwd_retry.c     retry state beside a queued message
 *   fwd_report.c    DSN or dead/ for refused recipients
 *   fwd_control.c   the `queue` and `flush` control commands
 *                   (the queue's files share fwd_queue.h)
 *   fwd_dsn.c       RFC 3464 delivery status notifications
 *   fwd_tls.c       STARTTLS to the downstream: wolfSSL on the client's
 *                   non-blocking socket
 *   fwd_mx.c        route = mx: MX lookups, the hosts in order
 *   fwd_main.c      the descriptor, the queue hook (direct and spool mode)
 *
 * Everything runs on the worker's loop except the *_work functions handed
 * to api->queue_work.
 */
#ifndef FWD_FORWARD_H
#define FWD_FORWARD_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "upesi/plugin.h"

/* Paths and reply texts are cut to their buffers on purpose (a reply text
 * is for humans, a path that long fails at open). */
#pragma GCC diagnostic ignored "-Wformat-truncation"

extern const upesi_api *fwd_api;
extern upesi_ctx *fwd_ctx;

/* A log line about a delivery: with its session id when a client waits
 * for it (call), else as the runner's (the host adds the plugin name). */
void fwd_log(upesi_call *call, upesi_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------------- */
/* settings                                                               */

enum { FWD_MODE_DIRECT = 0, FWD_MODE_SPOOL };
/* downstream_tls: 0, 1 (STARTTLS when offered), required */
enum { FWD_TLS_OFF = 0, FWD_TLS_MAY, FWD_TLS_REQUIRED };

typedef struct fwd_target {
    int mx;                     /* "mx": the recipient domain's MX hosts,
                                   looked up for each job (fwd_mx.c) */
    int lmtp;
    int family;                 /* AF_INET, AF_INET6, AF_UNIX */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[300];             /* as configured: "lmtp:127.0.0.1:24" */
} fwd_target;

typedef struct fwd_route {
    char *domain;               /* lower case; "" never */
    fwd_target target;
} fwd_route;

typedef struct fwd_config {
    int refs;
    int mode;
    int have_downstream;
    fwd_target downstream;
    fwd_route *routes;
    size_t n_routes;
    unsigned connect_timeout_ms, greeting_timeout_ms, command_timeout_ms,
             data_timeout_ms;
    int pool_size;              /* idle connections kept per downstream */
    int mx_port;                /* the port of MX hosts (25; tests) */
    unsigned pool_idle_ms;
    unsigned retry_min_s, retry_max_s, max_queue_time_s;
    unsigned delay_warning_s;   /* a delay DSN (NOTIFY=DELAY) once queued
                                   this long; 0: at the first deferral */
    unsigned scan_interval_ms;
    /* the durations as the settings table parses them (seconds);
     * fwd_config_check derives the _ms / _s fields above from them */
    double connect_timeout, greeting_timeout, command_timeout, data_timeout,
           pool_idle, retry_min, retry_max, max_queue_time, scan_interval,
           delay_warning;
    int max_deliveries;         /* background deliveries per worker */
    int null_sender_dsn;        /* RouterDSNForNULLReversePath 0/1/2 */
    char postmaster[256];       /* "" = postmaster@<hostname> */
    char helo[256];             /* "" = smtp.ini hostname */
    int fsync;
    int tls;                    /* downstream_tls: FWD_TLS_* */
    int tls_verify;             /* downstream_tls_verify */
    char *tls_ca;               /* downstream_tls_ca, absolute; or NULL */
    char tls_name[256];         /* downstream_tls_name: SNI, verified name */
    void *tls_ctx;              /* WOLFSSL_CTX, built by config_check */
} fwd_config;

void *fwd_config_new(void);
/* the keys at the top of queue_forward.ini (fwd_config.c) */
extern const upesi_setting fwd_settings[];
/* [routes] */
int fwd_config_set(void *config, const char *section, const char *key,
                   const char *value, char *err, size_t errlen);
int fwd_config_check(void *config, char *err, size_t errlen);
void fwd_config_commit(upesi_ctx *ctx, void *config);
void fwd_config_free(void *config);
fwd_config *fwd_config_ref(fwd_config *cfg);
void fwd_config_unref(fwd_config *cfg);
/* the newest generation that passed config_check (the runner's) */
fwd_config *fwd_config_latest(void);
void fwd_config_release_latest(void);   /* at exit */
/* where mail for address goes; NULL if no route and no downstream */
const fwd_target *fwd_route_for(const fwd_config *cfg, const char *address);
/* Do two recipients go in one job: the same target, and for an MX target
 * the same domain (ASCII case-insensitive)? */
int fwd_same_job(const fwd_target *a, const char *addr_a,
                 const fwd_target *b, const char *addr_b);

/* ---------------------------------------------------------------------- */
/* reading a message                                                      */

typedef ssize_t (*fwd_read_fn)(void *arg, off_t offset, void *buf,
                               size_t len);
typedef struct fwd_src {
    fwd_read_fn read;
    void *arg;
    off_t size;
} fwd_src;

/* ---------------------------------------------------------------------- */
/* the client                                                             */

enum {
    FWD_RCPT_PENDING = 0,
    FWD_RCPT_OK,                /* delivered (the downstream's 250)      */
    FWD_RCPT_TEMP,              /* try again later                      */
    FWD_RCPT_PERM               /* refused for good                     */
};

typedef struct fwd_rcpt {
    char *addr;
    const char *params;         /* its DSN parameters as in Rcpt-Params
                                   ("NOTIFY=SUCCESS ORCPT=rfc822;a@b"),
                                   or NULL; the owner's string */
    int dsn_passed;             /* they went to a downstream that offers
                                   DSN: later reports are its job */
    int final_hop;              /* that downstream speaks LMTP: a 250 is
                                   final delivery, not a relay */
    int state;
    int accepted;               /* RCPT got 2xx */
    int code;                   /* the downstream's code, 0 = none came */
    char enhanced[16];
    char text[512];             /* the reply, or what went wrong */
} fwd_rcpt;

typedef struct fwd_job fwd_job;
typedef void (*fwd_job_done_fn)(fwd_job *job, void *arg);

struct fwd_job {
    fwd_config *cfg;            /* a reference */
    const fwd_target *target;   /* inside cfg */
    const char *sender;         /* "" = null sender */
    const char *mail_params;    /* as in Mail-Params ("SMTPUTF8 RET=HDRS
                                   ENVID=x"), or NULL; the owner's */
    fwd_rcpt **rcpts;
    size_t n_rcpts;
    fwd_src src;
    char id[64];                /* for log lines */
    upesi_call *call;           /* log prefix; NULL in the background */
    int defer_all_on_temp;      /* a 4xx RCPT: no DATA, all deferred */
    fwd_job_done_fn done;
    void *done_arg;
    /* the client's */
    void *conn;
    int data_started;           /* DATA's 354 came: body on the wire */
    int binarymime;             /* BODY=BINARYMIME: only BDAT to a
                                   downstream that offers BINARYMIME */
    int dot_sent;               /* the end of data went out */
    int retried;                /* a pooled connection failed: once */
    char last_reply[512];       /* the final reply, for the 250's text */
    void *mx;                   /* an MX target's lookups (fwd_mx.c) */
    fwd_target mx_used;         /* the MX address being (last) tried;
                                   target points here meanwhile */
};

/* An MX target (fwd_mx.c): look up the MX hosts of the job's domain
 * (RFC 5321 5.1: no MX, its A/AAAA; a null MX, RFC 7505: 556 5.1.10 at
 * once), then run the job on each address in preference order, random
 * among equal preferences, until one takes it.  done runs once, later. */
void fwd_mx_start(fwd_job *job);
/* Give the lookups up (fwd_job_abort). */
void fwd_mx_abort(fwd_job *job);

/* Start the job; job->done runs later (never from inside this call).
 * The job must stay valid until done or fwd_job_abort. */
void fwd_job_start(fwd_job *job);
/* Give up: the connection is closed without the end of data, done never
 * runs.  Only before done ran. */
void fwd_job_abort(fwd_job *job);
/* Close every pooled connection at once (process exit; tests). */
void fwd_pool_drain(void);
/* The worker stops: QUIT to every pooled connection (each closes on the
 * 221, the downstream's close or FWD_QUIT_WAIT_MS), and from now on a
 * connection whose job ends is closed, not pooled. */
void fwd_pool_stop(void);

/* ---------------------------------------------------------------------- */
/* TLS to the downstream (fwd_tls.c)                                      */

typedef struct fwd_tls fwd_tls;

/* A client context: TLS 1.2+, verifying against ca_file when verify.
 * NULL with err on failure. */
void *fwd_tls_ctx_new(const char *ca_file, int verify, char *err,
                      size_t errlen);
void fwd_tls_ctx_free(void *ctx);
/* wolfSSL on fd (non-blocking); name for SNI and, with verify, the name
 * the certificate must carry.  NULL with err on failure. */
fwd_tls *fwd_tls_new(void *ctx, int fd, const char *name, int verify,
                     char *err, size_t errlen);
/* 1 established, 0 again once *want (UPESI_WATCH_*) is ready, -1 err */
int fwd_tls_handshake(fwd_tls *t, int *want, char *err, size_t errlen);
/* >0 bytes, 0 closed (close_notify), -1 again (*want: also wait for
 * this; 0 = just READ), -2 error with err */
ssize_t fwd_tls_read(fwd_tls *t, void *buf, size_t len, int *want,
                     char *err, size_t errlen);
ssize_t fwd_tls_write(fwd_tls *t, const void *buf, size_t len, int *want,
                      char *err, size_t errlen);
const char *fwd_tls_version(const fwd_tls *t);
const char *fwd_tls_cipher(const fwd_tls *t);
/* close_notify (when the session is healthy), then free; no waiting */
void fwd_tls_free(fwd_tls *t);

/* ---------------------------------------------------------------------- */
/* spool files                                                            */

typedef struct fwd_env {
    char *queue_id, *arrival, *client_ip, *client_port, *client_name,
         *helo, *protocol, *tls, *auth, *sender;    /* "<>" = null */
    char **rcpts;
    size_t n_rcpts;
    char *mail_params;          /* version 2: Mail-Params, or NULL */
    char **rcpt_params;         /* version 2: Rcpt-Params of rcpts[i], or
                                   NULL (the array too may be NULL) */
} fwd_env;

/* A parameter of a Mail-Params / Rcpt-Params list ("K=V K2"): 1 and its
 * value in out ("" for a bare keyword), 0 when absent (or list NULL). */
int fwd_param_get(const char *list, const char *keyword, char *out,
                  size_t outlen);
/* NOTIFY of a recipient as UP-style bits: FWD_NOTIFY_* (absent: FAILURE,
 * RFC 3461 4.1 lets the MTA choose between FAILURE and FAILURE,DELAY) */
#define FWD_NOTIFY_NEVER   1
#define FWD_NOTIFY_SUCCESS 2
#define FWD_NOTIFY_FAILURE 4
#define FWD_NOTIFY_DELAY   8
unsigned fwd_notify_bits(const char *rcpt_params);

/* Mail-Params has BODY=BINARYMIME (RFC 3030 3): 1, else 0 */
int fwd_binarymime(const char *mail_params);

void fwd_env_free(fwd_env *env);
/* the text of docs/spool-format.md; NULL on a CR/LF in a value or OOM */
char *fwd_env_format(const fwd_env *env, size_t *len);
/* parse an envelope (up to the empty line); 0 or -1 */
int fwd_env_parse(const char *text, size_t len, fwd_env *env);
/* an envelope for a message this server makes (DSN) */
int fwd_env_local(fwd_env *env, const char *queue_id, const char *sender,
                  const char *rcpt);
int fwd_env_add_rcpt(fwd_env *env, const char *rcpt);
/* the same with its Rcpt-Params (params may be NULL) */
int fwd_env_add_rcpt_params(fwd_env *env, const char *rcpt,
                            const char *params);
/* env's header fields with the recipients in rcpts[] (their addr and
 * params) instead of env's own: for a file that keeps only some */
char *fwd_env_format_rcpts(const fwd_env *env, fwd_rcpt *const *rcpts,
                           size_t n, size_t *len);
void fwd_make_queue_id(char *out, size_t len);
/* "2024-05-01T09:30:12Z" -> epoch seconds, -1 if unparsable */
long long fwd_parse_arrival(const char *arrival);

/* A file to write and commit durably: the envelope, then `body` (a
 * buffer) or the bytes of `src`.  dir is "queue" or "dead".  done runs on
 * the loop with 0 or a positive errno once the file is renamed into
 * <spool_dir>/<dir>/ and that directory is fsynced. */
typedef void (*fwd_commit_fn)(void *arg, int error);
int fwd_store_write(const char *dir, const char *queue_id, const char *env,
                    size_t env_len, const char *body, size_t body_len,
                    const fwd_src *src, int do_fsync, fwd_commit_fn done,
                    void *arg);
/* Create spool_dir/{tmp,queue,active,deferred,dead}, durably (api->dir_make).
 * 0 or -1 with err. */
int fwd_store_make_dirs(const char *spool_dir, char *err, size_t errlen);

/* ---------------------------------------------------------------------- */
/* DSN                                                                    */

/* What a report says about its recipients (RFC 3464 2.3.3 Action). */
enum { FWD_DSN_FAILED = 0, FWD_DSN_DELAYED, FWD_DSN_RELAYED };

/* The DSN message (headers and body, CRLF) telling `to` what became of
 * the recipients in rcpts[] (kind: FWD_DSN_*).  The original comes back
 * whole with RET=FULL on a failure (up to FWD_DSN_FULL_MAX), else its
 * headers.  NULL on OOM. */
#define FWD_DSN_FULL_MAX (10 * 1024 * 1024)
char *fwd_dsn_build(const fwd_env *orig, fwd_rcpt *const *rcpts,
                    size_t n, int kind, const fwd_src *orig_msg,
                    const char *to, const char *hostname, size_t *len);

/* ---------------------------------------------------------------------- */
/* the queue                                                              */

void fwd_queue_worker_start(upesi_ctx *ctx);
/* The worker stops: no more scans, no new deliveries (what a scan still
 * running claims stays in active/<pid>/ and goes back into queue/ as a
 * dead worker's does); those in flight go on while the worker lasts. */
void fwd_queue_worker_stop(void);
/* a message committed to queue/: deliver it now if a slot is free */
void fwd_queue_kick(const char *queue_id);
int fwd_queue_register_commands(void);

/* Reports the caller may owe (direct mode, the runner), kind FWD_DSN_*:
 * of rcpts[], those whose NOTIFY asks for this kind (FAILED: NOTIFY
 * absent or with FAILURE; DELAYED: with DELAY; RELAYED: with SUCCESS, and
 * only when it was not passed to a downstream that offers DSN) get a
 * DSN; a failure from the null sender goes by null_sender_dsn (a dead
 * file), the other kinds never go to <>.  *pending is 1 when a file is
 * being written: done(arg, error) once it is durable.  0 or 1, or a
 * negative errno with nothing pending. */
int fwd_report_failures(const fwd_config *cfg, const fwd_env *env,
                        fwd_rcpt *const *rcpts, size_t n_rcpts, int kind,
                        const fwd_src *msg, fwd_commit_fn done, void *arg,
                        int *pending);

#endif
