/*
 * session.h - one SMTP session (RFC 5321): the state of a connection and of
 * its current transaction.  session.c is the state machine; hooks.c runs the
 * plugin chains it asks for; api.c shows parts of this struct to plugins.
 */
#ifndef UPESI_SESSION_H
#define UPESI_SESSION_H

#include <uv.h>
#include <stdint.h>

#include "actions.h"
#include "config.h"
#include "data_reader.h"
#include "lines.h"
#include "message.h"
#include "notes.h"
#include "server.h"
#include "smtp_parse.h"

/* Lines plugins may add to one EHLO reply (api->ehlo_extension). */
#define UP_MAX_EHLO_EXT 16
/* SASL mechanisms the host speaks (bits of auth_offered). */
#define UP_AUTH_PLAIN 1u
#define UP_AUTH_LOGIN 2u
/* Where an AUTH exchange is. */
enum {
    UP_AUTH_IDLE = 0,
    UP_AUTH_WAIT_PLAIN,         /* 334 sent, the PLAIN response comes      */
    UP_AUTH_WAIT_USER,          /* LOGIN: 334 Username: sent               */
    UP_AUTH_WAIT_PASS           /* LOGIN: 334 Password: sent               */
};

/* What kind of listener accepted the connection (up_session_accept). */
#define UP_LISTEN_PLAIN 0
#define UP_LISTEN_SMTPS 1       /* smtps_listen: implicit TLS             */
#define UP_LISTEN_SUBMISSION 2  /* submission_listen: MAIL needs AUTH     */
#define UP_LISTEN_KIND 3        /* the bits above                          */
#define UP_LISTEN_PROXY 8       /* or'ed in: a PROXY header comes first    */

typedef enum up_session_state {
    UP_ST_CONNECT,              /* connect hook / greeting delay           */
    UP_ST_COMMAND,              /* reading commands                        */
    UP_ST_DATA,                 /* reading message data                    */
    UP_ST_BDAT,                 /* reading a BDAT chunk (RFC 3030)         */
    UP_ST_TLS_HANDSHAKE,        /* after STARTTLS or on smtps_listen       */
    UP_ST_CLOSING,
    UP_ST_PROXY                 /* waiting for the PROXY header            */
} up_session_state;

/* A reply decided by a plugin or by the host. */
typedef struct up_reply {
    int code;                   /* 0 = the hook's default                  */
    const char *enhanced;       /* NULL = default                          */
    const char *text;           /* NULL = default                          */
    const char *plugin;         /* who decided, NULL = the host            */
} up_reply;

typedef struct up_session up_session;
typedef void (*up_hook_done)(up_session *s, upesi_verdict v,
                             const up_reply *reply);

struct up_session {
    uv_tcp_t tcp;
    up_session *srv_prev, *srv_next; /* the server's session_list        */
    uv_timer_t timer;           /* idle timeout and deadlines, greeting
                                   delay, TLS handshake                   */
    uv_timer_t hook_timer;      /* plugin_timeout of the pending call      */
    up_server *server;
    up_config *cfg;             /* the generation this session started on  */
    char id[24];
    unsigned handles_open;      /* uv handles not yet closed               */

    upesi_conn_info info;
    char remote_ip[64];
    char local_ip[64];
    char *helo;
    up_notes conn_notes;
    up_notes txn_notes;

    up_session_state state;
    up_lines lines;
    char *stash;                /* input not yet fed (line buffer full)    */
    size_t stash_len;
    int reading;                /* uv_read_start active                    */
    int eof;                    /* the client half-closed with input still
                                   to answer: closed once it is answered  */
    int greeted;
    /* the deadline of the command line or the message content being
     * received (session.c, command_deadline and data_deadline), loop ms */
    uint64_t deadline_at;       /* 0 = none running                        */
    int deadline_data;          /* it is the message content's             */
    int timer_for_deadline;     /* s->timer runs to deadline_at            */

    /* the transaction */
    int have_mail;
    int smtputf8;               /* MAIL had SMTPUTF8 (RFC 6531)            */
    /* sender and rcpts[i] are packed (smtp_ext.h): the mailbox as a C
     * string, then the parameters kept with it (MAIL: SMTPUTF8, RET,
     * ENVID; RCPT: NOTIFY, ORCPT) for api->txn_param/rcpt_param and the
     * spool envelope */
    char *sender;
    char **rcpts;
    size_t n_rcpts, cap_rcpts;
    char queue_id[32];
    up_message msg;
    up_data_reader data;
    int data_too_big;
    int data_pipelined;         /* input came after DATA before its reply */
    int data_discard;           /* reading a refused DATA's content, to
                                   throw it away up to its end of data    */
    up_actions actions;         /* message actions asked for at data_post */
    /* BDAT (RFC 3030, session_bdat.c) */
    int bdat_used;              /* a BDAT chunk began this transaction    */
    int bdat_last;              /* the chunk being read is the LAST one   */
    int bdat_discard;           /* the chunk being read is thrown away    */
    uint64_t bdat_left;         /* bytes of the chunk still to read       */
    uint64_t bdat_size;         /* the chunk's announced size             */
    int body_binary;            /* MAIL said BODY=BINARYMIME              */

    /* a connect-time DENY, carried out at every MAIL (Domino style) */
    int reject_code;
    char reject_enhanced[16];
    char *reject_text;

    int errors;                 /* rejected or invalid commands            */
    uint64_t n_messages;        /* accepted in this session                */
    uint64_t n_commands;

    /* the command being handled */
    up_command cmd;
    char *line;                 /* copy of the command line                */
    upesi_line_end line_end;
    up_path path;

    /* the hook chain being run */
    upesi_hook hook;
    size_t hook_next;           /* next plugin index                       */
    struct upesi_call *pending; /* the call we wait for                    */
    up_hook_done hook_done;
    int busy;                   /* a hook chain is running                 */

    /* output */
    char *out;
    size_t out_len, out_cap;
    int writes_in_flight;
    int close_after_write;

    /* TLS: tls.c speaks the protocol; session.c feeds it what on_read got
     * and writes what it produced */
    struct up_tls *tls;         /* NULL in plain text                      */
    int implicit_tls;           /* accepted on an smtps_listen address     */
    int xclient_ok;             /* the peer is in xclient_hosts            */
    char xclient_peer[64];      /* who may send XCLIENT (the first client) */
    unsigned char *proxy_buf;   /* the PROXY header read so far            */
    size_t proxy_len;
    int tls_pumping;            /* decrypting: no nested pump              */

    /* AUTH (RFC 4954, docs/auth.md): plugins offer it in EHLO with
     * api->ehlo_extension; the host speaks the exchange and asks the auth
     * hook chain */
    uv_timer_t auth_timer;      /* the delay before a 535                  */
    char *ehlo_ext[UP_MAX_EHLO_EXT]; /* plugins' EHLO lines, this EHLO     */
    size_t n_ehlo_ext;
    unsigned auth_offered;      /* UP_AUTH_* bits this EHLO advertised     */
    int auth_state;             /* UP_AUTH_IDLE, or the 334 we wait on     */
    unsigned auth_mech;         /* UP_AUTH_PLAIN or UP_AUTH_LOGIN          */
    char *auth_try_user;        /* the exchange's user name                */
    char *auth_secret;          /* its password: wiped after the chain     */
    size_t auth_secret_len;
    char *auth_user;            /* after a success: info.auth_user         */
    unsigned auth_failures;     /* in this session: the delay grows        */
    int auth_fail_code;         /* the 535 (or 5xx) sent after the delay   */
    char auth_fail_enhanced[16];
    char *auth_fail_text;
    int auth_fail_close;        /* DENYDISCONNECT: close after the reply   */
};

/* Accept one connection from a listener. */
void up_session_accept(up_server *srv, uv_stream_t *listener,
                       int kind);   /* UP_LISTEN_* */

/* The worker is stopping (SIGTERM): a session with no transaction in
 * progress gets 421 4.3.2 and is closed now; one in a transaction goes on
 * and is closed the same way when the transaction ends (session.c checks
 * before every command and after every reply). */
void up_session_stop(up_session *s);
/* stop_timeout passed: 421 4.3.2 and close, whatever the session does. */
void up_session_stop_cut(up_session *s);

/* Queue a reply.  text may hold '\n' for a multi-line reply; enhanced may
 * be NULL.  Counts towards error_limit when code >= 400 and counts is set. */
void up_session_reply(up_session *s, int code, const char *enhanced,
                      const char *text);

#endif
