/*
 * config.h - one configuration generation: smtp.ini, conf/plugins and every
 * plugin's settings, parsed and checked as a whole.
 *
 * A generation is reference counted: the server holds the current one and
 * each session holds the one it started with, so SIGHUP swaps in a new
 * generation without changing anything under a running session.  A
 * generation that fails to load is never half-applied: up_config_load
 * returns NULL with every error already reported as "file:line: message".
 */
#ifndef UPESI_CONFIG_H
#define UPESI_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "plugin_loader.h"
#include "store.h"
#include "tls.h"

struct hostmatch_list;

typedef struct up_listen_addr {
    char text[80];                   /* as written, for logs             */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int proxy;                       /* "addr:port proxy": a PROXY header
                                        (v1 or v2) comes first (proxy.h) */
} up_listen_addr;

enum {
    UP_EARLY_TALKER_IGNORE = 0,      /* note and count only              */
    UP_EARLY_TALKER_REJECT,          /* 554 5.5.1 at every MAIL          */
    UP_EARLY_TALKER_DROP             /* 554 5.5.1 and close at once      */
};

/* improper_pipelining_action: what a client that sends more after DATA
 * before its reply gets (RFC 2920 3.1) */
enum {
    UP_PIPELINING_IGNORE = 0,        /* note and count only              */
    UP_PIPELINING_REJECT,            /* 554 5.5.0 to that DATA, the rest
                                        read to its end of data and
                                        thrown away, every MAIL refused  */
    UP_PIPELINING_DROP               /* 554 5.5.0 and close at once      */
};

typedef struct up_plugin_inst {
    up_plugin_mod *mod;              /* loaded once per process          */
    void *settings;                  /* this generation's settings       */
} up_plugin_inst;

typedef struct up_config {
    int refs;
    char *dir;                       /* the configuration directory      */

    up_listen_addr *listen;
    size_t n_listen;
    char *hostname;
    char *greeting;                  /* may contain one %s               */
    char **local_domains;
    size_t n_local_domains;
    char *spool_dir;
    char *control_socket;
    char *plugin_dir;
    int max_command_length;          /* bytes                           */
    uint64_t max_message_size;       /* 0 = no limit                     */
    int max_sessions;
    int error_limit;
    double timeout_multiplier;
    double command_deadline;         /* seconds x multiplier, 0 = none   */
    double data_deadline;            /* seconds x multiplier, 0 = none   */
    double proxy_timeout;            /* seconds for a PROXY header       */
    double stop_timeout;             /* seconds transactions may take to
                                        finish after SIGTERM             */
    double plugin_timeout;           /* seconds                          */
    double greeting_delay;           /* seconds (postscreen-style wait)  */
    int early_talker_action;         /* UP_EARLY_TALKER_*                */
    int pipelining;
    int smtputf8;               /* advertise SMTPUTF8 (RFC 6531)           */
    int dsn;                    /* advertise DSN (RFC 3461)                */
    int improper_pipelining_action;  /* UP_PIPELINING_*                  */
    int allow_nul;                   /* NUL in message data accepted     */
    int helo_strict;                 /* HELO must be a Domain/literal    */
    int vrfy;
    int received_version;
    int workers;                     /* 0 = one per core                 */
    int log_level;
    char *user;                      /* drop to this account (root only) */
    char *group;
    uid_t uid;                       /* resolved: (uid_t)-1 = no drop    */
    gid_t gid;
    int log_syslog;

    char *dns_servers;               /* c-ares CSV, NULL = resolv.conf   */
    double dns_timeout;              /* seconds                          */
    int dns_cache_size;              /* answers kept, 0 = no cache       */

    /* TLS (docs/tls.md) */
    char *tls_cert;                  /* absolute, NULL = no TLS          */
    char *tls_key;
    char *tls_ciphers;               /* NULL = up_tls_default_ciphers    */
    up_tls_sni *tls_sni;             /* certificates chosen by SNI       */
    size_t n_tls_sni;
    up_listen_addr metrics_listen;   /* Prometheus /metrics (metrics.c)  */
    int has_metrics;                 /* metrics_listen is set            */
    up_listen_addr *smtps_listen;    /* implicit TLS (RFC 8314)          */
    size_t n_smtps_listen;
    int require_tls;                 /* MAIL before STARTTLS: 530        */
    double tls_handshake_timeout;    /* seconds                          */
    int tls_session_tickets;         /* issue and accept tickets         */
    char *tls_ticket_key_file;       /* absolute; NULL = random key      */
    int tls_session_timeout;         /* seconds a session may resume     */
    int tls_session_cache_size;      /* shared session-ID slots (start)  */
    struct up_tls_ctx *tls;          /* built from the above, or NULL    */

    /* AUTH (docs/auth.md) */
    struct hostmatch_list *xclient_hosts; /* may send XCLIENT; NULL: none */
    up_listen_addr *submission_listen; /* port 587 style: MAIL needs AUTH */
    size_t n_submission_listen;
    double auth_failure_delay;       /* seconds before the first 535     */

    /* the store (docs/store.md) */
    up_store_url store;              /* parsed; lmdb path absolute       */
    int store_timeout;               /* ms, every store call             */
    uint64_t store_size;             /* bytes, the lmdb map              */

    up_plugin_inst *plugins;         /* run order                        */
    size_t n_plugins;
} up_config;

/* Parse and check DIR/smtp.ini, DIR/plugins and DIR/<plugin>.ini, loading
 * plugins that are not loaded yet.  Errors go to the log; NULL on any. */
up_config *up_config_load(const char *dir);

/* The generation being loaded right now (NULL outside up_config_load). */
const up_config *up_config_loading(void);

/* "key=value" from the command line (-o): applied to every generation
 * after smtp.ini, as if it were the file's last line.  The string must
 * outlive the process's configurations (argv does). */
void up_config_override(const char *key_value);

/* The generation the process runs from now on: plugins adopt it
 * (config_commit) and, in a worker whose loop runs, plugins not started
 * yet start (worker_start).  Holds a reference until the next commit. */
void up_config_commit(up_config *cfg);
/* The generation committed last (NULL before the first commit). */
const up_config *up_config_committed(void);
/* At exit: drop the committed generation's reference. */
void up_config_release_committed(void);
up_config *up_config_ref(up_config *cfg);
void up_config_unref(up_config *cfg);

/* Does the domain of address (or the address itself) match local_domains?
 * Case-insensitive, exact domain match. */
int up_config_is_local(const up_config *cfg, const char *address);

/* Only the control socket's path from DIR/smtp.ini (malloc'd), for the
 * command line's client: it must work while the rest of the configuration
 * is being edited.  NULL (logged) if smtp.ini cannot be read. */
char *up_config_control_socket(const char *dir);

/* dir + "/" + path unless path is absolute; malloc'd */
char *up_config_path(const char *dir, const char *path);

/* Refuse a file or directory anyone may write to (Postfix's
 * safe-for-root habit): 0 if safe, -1 after logging. */
int up_config_check_not_world_writable(const char *path, const char *what);

/* Parse an ini file with file:line error reporting.  handler returns 0, or
 * -1 with a message in err.  Returns 0, or -1 after logging each error. */
typedef int (*up_ini_handler)(void *arg, const char *section, const char *key,
                              const char *value, char *err, size_t errlen);
int up_ini_parse(const char *path, up_ini_handler handler, void *arg);
/* Inside a handler of up_ini_parse: the line of the key being handled. */
int up_ini_line(void);

/* smtp.ini's settings table (the reference in docs/config.md, `upesi
 * config`). */
const upesi_setting *up_config_smtp_settings(void);

/* The -o key=value strings, in order (n in *n). */
const char *const *up_config_overrides(size_t *n);

#endif
