/*
 * upesi/plugin.h - the plugin ABI of the upesi SMTP host (ABI 2).
 *
 * This is the only header a plugin includes.  A plugin is a shared object
 * that exports one symbol, `upesi_plugin_descriptor`, a descriptor (struct
 * upesi_plugin) built with UPESI_PLUGIN_HEADER or UPESI_PLUGIN_HEADER_NEEDS.
 * The host checks the descriptor's magic, ABI major and minor before it
 * calls anything, and refuses the file with a message naming the file, the
 * plugin's ABI and its own.
 *
 * Versioning (docs/plugins.md has the history):
 *   - the descriptor says the ABI major it was built for and the LOWEST
 *     minor it needs (UPESI_PLUGIN_HEADER: 0, UPESI_PLUGIN_HEADER_NEEDS(m):
 *     m).  Building against a newer header does not raise it.  A host
 *     M.n loads it when M is its own major and n >= the minor needed.
 *   - a minor version only appends: new functions at the end of
 *     struct upesi_api, new fields at the end of host-owned structs and of
 *     the descriptor, new hook slots within UPESI_HOOK_SLOTS.  The host
 *     reads the descriptor's `size` bytes and zero-fills the rest, so an
 *     older plugin's smaller descriptor loads.
 *   - a plugin that uses a call newer than the minor it declares tests it
 *     first with UPESI_API_SUPPORTED(api, call) (Redis modules'
 *     RMAPI_FUNC_SUPPORTED): false on a host that lacks it.
 *
 * Context: every plugin gets its own handle, upesi_ctx, at init (like a
 * RedisModuleCtx).  Calls made outside a hook (logging, statistics,
 * timers, work, watches, DNS from a timer) take it, and the host knows
 * from it which plugin speaks: every log line carries the plugin's name.
 * In a hook, api->ctx(call) gives the same handle; calls about the session
 * take the call.
 *
 * Errors: every call that can fail returns 0 (or a count) on success and a
 * negative errno on failure; api->strerror names it.  Calls that return a
 * pointer return NULL on failure, as documented per call.
 *
 * Threading: every call into the API happens on the worker's event loop
 * thread, from a hook handler, a descriptor callback, or a completion the
 * host invoked.  The only exception is the `work` function of
 * api->queue_work, which runs on a pool thread and must not call the API
 * at all, except the durable-file functions (file_write, file_commit,
 * dir_make, dir_sync), which are thread-safe and meant for it.
 *
 * Memory: strings the host returns belong to the host and stay valid for
 * the duration of the hook call (connection strings: for the whole
 * connection).  Strings passed to the host are copied.  A buffer the host
 * hands over (config_path, spool_envelope) is the plugin's, freed with
 * api->free.
 */
#ifndef UPESI_PLUGIN_H
#define UPESI_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UPESI_ABI_MAJOR 2
#define UPESI_ABI_MINOR 3              /* 2.0: the plugin context, one error
                                          convention, generations adopted
                                          on commit (docs/plugins.md);
                                          2.1: the store (store_get ...);
                                          2.2: cli_register, cli_wait;
                                          2.3: txn_param, rcpt_param,
                                          domain_to_ascii (SMTPUTF8, DSN) */
#define UPESI_PLUGIN_MAGIC 0x55505349u /* "UPSI" */

/* The symbol the host looks up in every plugin. */
#define UPESI_PLUGIN_SYMBOL "upesi_plugin_descriptor"

/* ---------------------------------------------------------------------- */
/* Verdicts                                                               */

typedef enum upesi_verdict {
    UPESI_CONT = 0,              /* no opinion: next plugin                   */
    UPESI_OK,                    /* accept now, skip the rest of this hook    */
    UPESI_DENY,                  /* 5xx                                       */
    UPESI_DENYSOFT,              /* 4xx                                       */
    UPESI_DENYDISCONNECT,        /* 5xx, then close                           */
    UPESI_DENYSOFTDISCONNECT,    /* 421, then close                           */
    UPESI_PENDING                /* async work started: api->resume() follows */
} upesi_verdict;

/* ---------------------------------------------------------------------- */
/* Hooks, in session order.  Slot numbers are part of the ABI.            */

typedef enum upesi_hook {
    UPESI_HOOK_CONNECT = 0,
    UPESI_HOOK_HELO,             /* HELO and EHLO: see conn->esmtp           */
    UPESI_HOOK_MAIL,
    UPESI_HOOK_RCPT,
    UPESI_HOOK_DATA,             /* DATA command, before 354                 */
    UPESI_HOOK_DATA_POST,        /* end of data, message complete            */
    UPESI_HOOK_QUEUE,            /* message accepted: make it durable        */
    UPESI_HOOK_RESET,            /* end of a transaction (verdict ignored)   */
    UPESI_HOOK_DISCONNECT,       /* connection closes (verdict ignored)      */
    UPESI_HOOK_UNRECOGNIZED,     /* a command the host does not know         */
    UPESI_HOOK_VRFY,             /* VRFY with vrfy = 1 (all CONT: 252)       */
    UPESI_HOOK_AUTH,             /* AUTH credentials (RFC 4954):
                                    OK 235, DENY or all CONT 535 5.7.8,
                                    DENYSOFT 454 4.7.0; see auth_user     */
    UPESI_HOOK_COUNT
} upesi_hook;

/* Room reserved in the descriptor so that minor versions can add hooks. */
#define UPESI_HOOK_SLOTS 16

/* How a command line was terminated on the wire. */
typedef enum upesi_line_end {
    UPESI_LINE_CRLF = 0,
    UPESI_LINE_LF,               /* bare LF                                  */
    UPESI_LINE_CR                /* bare CR                                  */
} upesi_line_end;

/* Log levels, syslog's order. */
typedef enum upesi_log_level {
    UPESI_LOG_CRIT = 2,
    UPESI_LOG_ERR = 3,
    UPESI_LOG_WARNING = 4,
    UPESI_LOG_NOTICE = 5,
    UPESI_LOG_INFO = 6,
    UPESI_LOG_DEBUG = 7
} upesi_log_level;

/* Where a note lives: the connection, or the current transaction (a
 * transaction ends at RSET, a second MAIL, end of data, QUIT). */
typedef enum upesi_scope {
    UPESI_SCOPE_CONN = 0,
    UPESI_SCOPE_TXN
} upesi_scope;

/* ---------------------------------------------------------------------- */
/* Opaque handles                                                         */

/* One invocation of one plugin's handler for one hook.  Valid until the
 * handler returns a final verdict, or, after UPESI_PENDING, until the plugin
 * calls api->resume() (which may come after the host gave up on the call:
 * then it is ignored and harmless). */
typedef struct upesi_call upesi_call;

/* A plugin's own handle in the host (RedisModuleCtx): handed to init and
 * the descriptor's callbacks, and given by api->ctx(call) in a hook.  Valid
 * for the life of the process. */
typedef struct upesi_ctx upesi_ctx;

/* ---------------------------------------------------------------------- */
/* The connection, as plugins see it (host-owned, read-only; minor versions
 * append fields).                                                        */

typedef struct upesi_conn_info {
    const char *session_id;      /* as in the log lines                      */
    const char *remote_ip;       /* textual, IPv4 or IPv6 without brackets   */
    int remote_port;
    const char *local_ip;
    int local_port;
    int remote_is_ipv6;
    const char *helo;            /* NULL before HELO/EHLO                    */
    int esmtp;                   /* 1 after EHLO, 0 after HELO               */
    int tls;                     /* 1 once the session is inside TLS         */
    const char *tls_version;     /* NULL without TLS                         */
    const char *tls_cipher;
    int early_talker;            /* spoke before the greeting or, without
                                    PIPELINING, before a reply              */
    int authenticated;           /* 1 after a successful AUTH                */
    const char *auth_user;
    int submission;              /* accepted on a submission_listen
                                    address (MAIL needs AUTH first)         */
} upesi_conn_info;

/* ---------------------------------------------------------------------- */
/* The host API, handed to init.  Functions are only ever appended.       */

typedef struct upesi_api upesi_api;

typedef struct upesi_timer upesi_timer;
typedef void (*upesi_cancel_fn)(upesi_call *call, void *arg);
typedef void (*upesi_timer_fn)(void *arg);
typedef void (*upesi_work_fn)(void *arg);          /* on a pool thread */
typedef void (*upesi_done_fn)(void *arg, int status);

/* -- DNS -------------------------------------------------------------- */

/* Record types a plugin may ask for: the DNS type numbers (RFC 1035). */
typedef enum upesi_dns_type {
    UPESI_DNS_A = 1,
    UPESI_DNS_PTR = 12,
    UPESI_DNS_MX = 15,
    UPESI_DNS_TXT = 16,
    UPESI_DNS_AAAA = 28
} upesi_dns_type;

typedef enum upesi_dns_status {
    UPESI_DNS_OK = 0,            /* records found (count >= 1)               */
    UPESI_DNS_NODATA,            /* the name exists, no record of this type  */
    UPESI_DNS_NXDOMAIN,          /* no such name                             */
    UPESI_DNS_TIMEOUT,           /* no answer within smtp.ini dns_timeout    */
    UPESI_DNS_ERROR              /* SERVFAIL, REFUSED, a broken answer ...   */
} upesi_dns_status;

/* One record, as text:
 *   A, AAAA  the address ("127.0.0.2", "2001:db8::1")
 *   TXT      the record's strings joined (RFC 7208 3.3); bytes below 0x20
 *            and 0x7f are shown as '?'
 *   MX       the exchange host, preference in `preference`
 *   PTR      the name
 * Names have no trailing dot. */
typedef struct upesi_dns_record {
    const char *text;
    int preference;              /* MX; 0 for the other types                */
} upesi_dns_record;

/* An answer: host-owned, valid during the callback only. */
typedef struct upesi_dns_answer {
    upesi_dns_status status;
    int type;                    /* upesi_dns_type asked for                 */
    const char *name;            /* the name asked for (PTR: the arpa name)  */
    size_t count;                /* records (0 unless status is OK)          */
    const upesi_dns_record *records;
    uint32_t ttl;                /* seconds this answer stays valid (what is
                                    left of it when it came from the cache);
                                    negative answers too (RFC 2308)          */
} upesi_dns_answer;

/* A query in flight.  Valid from dns_lookup until its callback has
 * returned or dns_cancel was called, whichever comes first. */
typedef struct upesi_dns_query upesi_dns_query;

/* Runs on the loop, never from inside dns_lookup or reverse_name, and
 * exactly once per query unless the query was cancelled (then never). */
typedef void (*upesi_dns_fn)(const upesi_dns_answer *answer, void *arg);

/* -- message actions: what happens to the message after
 *    data_post.  One host service, so that mail_rules, Lua scripts and
 *    third-party plugins act through the same calls (docs/plugins.md). */
typedef enum upesi_action {
    UPESI_ACTION_QUARANTINE = 1, /* into <spool_dir>/quarantine/, not
                                    delivered, the client gets 250; arg: a
                                    reason for the log, or NULL            */
    UPESI_ACTION_JOURNAL,        /* a copy into <spool_dir>/journal/,
                                    delivery goes on; arg: reason or NULL  */
    UPESI_ACTION_HOLD,           /* into <spool_dir>/hold/ until
                                    `upesi release ID`; arg: reason or NULL */
    UPESI_ACTION_DROP,           /* not delivered, 250, logged; arg: reason */
    UPESI_ACTION_REJECT,         /* 550 5.7.1; arg: the reply text or NULL
                                    ("Message rejected for policy reasons") */
    UPESI_ACTION_COPY_TO,        /* arg: an address added to the envelope   */
    UPESI_ACTION_TAG             /* arg: "Name: value", a header added      */
} upesi_action;

/* -- plugin I/O on the worker's loop ---------------------------------- */

/* Events for fd_watch: what to wait for, and what fn is told happened.
 * UPESI_WATCH_ERROR is only ever passed to fn (a poll error: the plugin
 * learns the details from the fd itself, getsockopt SO_ERROR or read). */
#define UPESI_WATCH_READ  1
#define UPESI_WATCH_WRITE 2
#define UPESI_WATCH_ERROR 4

/* A descriptor watched on the loop.  Valid from fd_watch until fd_unwatch. */
typedef struct upesi_watch upesi_watch;
typedef void (*upesi_watch_fn)(upesi_watch *watch, int events, void *arg);

/* A control-socket answer being written (see control_register). */
typedef struct upesi_control upesi_control;
typedef void (*upesi_control_fn)(const char *args, upesi_control *out,
                                 void *arg);

/* -- the store (ABI 2.1, docs/store.md): state shared by every worker
 *    (lmdb) and every host (redis).  Keys are C strings of 1 to 400 bytes
 *    (no NUL); the host puts "<plugin name>:" in front of each, so plugins
 *    never see each other's keys.  Values are bytes with a length (at most
 *    UPESI_STORE_VALUE_MAX); counters are the value's decimal text, so a
 *    value written by store_incr reads back as "42". */
#define UPESI_STORE_KEY_MAX 400
#define UPESI_STORE_VALUE_MAX (1024 * 1024)
#define UPESI_STORE_BATCH_MAX 10000

/* One key's answer.  Host-owned, valid during the callback only. */
typedef struct upesi_store_value {
    int found;                   /* the key exists (get, del, expire, ttl)   */
    const void *data;            /* get/mget: the value (NUL-terminated for
                                    convenience, len excludes the NUL)       */
    size_t len;
    long long num;               /* incr/mincr: the new value; ttl: ms left,
                                    -1 = no expiry; get: the value as a whole
                                    decimal number, 0 when it is none        */
} upesi_store_value;

/* A call's answer.  status is 0 or a negative errno:
 *   -ETIMEDOUT     no answer within smtp.ini store_timeout
 *   -ECONNREFUSED  the backend is down (redis unreachable, reconnecting)
 *   -ENOSPC        the store is full (lmdb: store_size)
 *   -EINVAL        incr of a value that is not a whole number, a bad key
 *   -EIO           any other backend error (logged by the host)
 * count is the number of keys the call named (0 for set); values[i]
 * answers key i, and is valid only when status is 0. */
typedef struct upesi_store_result {
    int status;
    size_t count;
    const upesi_store_value *values;
} upesi_store_result;

/* A store call in flight: valid from the call until its callback has
 * returned or store_cancel was called, whichever comes first. */
typedef struct upesi_store_op upesi_store_op;

/* Runs on the loop, never from inside the store call, exactly once per
 * call unless it was cancelled (then never). */
typedef void (*upesi_store_fn)(const upesi_store_result *result, void *arg);
/* A command-line subcommand (ABI 2.2, see cli_register): config is the
 * plugin's settings of the loaded configuration (what config_new made,
 * NULL for a plugin without settings), argv[0] the command's name.
 * Returns the process's exit status. */
typedef int (*upesi_cli_fn)(void *config, int argc, char **argv, void *arg);

struct upesi_api {
    uint16_t abi_major;
    uint16_t abi_minor;
    size_t size;                 /* sizeof(struct upesi_api) in the host:
                                    UPESI_API_SUPPORTED reads it */

    /* -- errors and memory ------------------------------------------------ */

    /* The text of a negative errno any call returned ("No such file or
     * directory"); never NULL (an unknown code gives "Unknown error N"). */
    const char *(*strerror)(int err);
    /* Free a buffer the host handed over (config_path, spool_envelope). */
    void (*free)(void *ptr);

    /* -- the plugin's context --------------------------------------------- */

    /* The context of the plugin a hook call belongs to (the one init got).
     * NULL for NULL. */
    upesi_ctx *(*ctx)(upesi_call *call);
    /* The plugin's name, as in conf/plugins. */
    const char *(*plugin_name)(upesi_ctx *ctx);
    /* This plugin's settings in the generation committed last (what
     * config_commit was handed), NULL before the first commit or for a
     * plugin without config_new.  In a hook use api->config(call): the
     * session's generation, which may be older. */
    void *(*settings)(upesi_ctx *ctx);
    /* A plugin's place in conf/plugins, for config_check ("directory must
     * run before deny_groups"): the 0-based index of plugin `name` in the
     * generation being loaded (outside loading: the committed one), or
     * -ENOENT if it is not listed. */
    int (*plugin_position)(upesi_ctx *ctx, const char *name);
    /* A hook's name as conf/ and the docs write it ("connect", "helo",
     * "data_post" ...), NULL for a slot that is no hook.  hook_find is the
     * reverse: the hook, or -ENOENT. */
    const char *(*hook_name)(upesi_hook hook);
    int (*hook_find)(const char *name);

    /* -- logging: one line, "<plugin>: text" (the host writes the name) --- */

    void (*log)(upesi_ctx *ctx, upesi_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void (*vlog)(upesi_ctx *ctx, upesi_log_level level, const char *fmt,
                 va_list ap);
    /* In a hook: the line also carries the session id.  A NULL or
     * abandoned call logs without it. */
    void (*log_call)(upesi_call *call, upesi_log_level level,
                     const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    void (*vlog_call)(upesi_call *call, upesi_log_level level,
                      const char *fmt, va_list ap);

    /* -- statistics: counters by name, summed across workers ------------- */
    void (*stat_add)(upesi_ctx *ctx, const char *name, long long delta);
    void (*stat_set)(upesi_ctx *ctx, const char *name, long long value);

    /* -- the verdict's reply: code 0 or enhanced/text NULL = hook default.
     *    text may be multi-line ('\n' separates lines). */
    void (*reply)(upesi_call *call, int code, const char *enhanced,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
    /* finish a call that returned UPESI_PENDING */
    void (*resume)(upesi_call *call, upesi_verdict verdict);
    /* called if the host abandons a pending call (timeout, disconnect);
     * after it the plugin must not touch call again, not even resume. */
    void (*on_cancel)(upesi_call *call, upesi_cancel_fn fn, void *arg);

    /* -- what the call is about ------------------------------------------ */
    upesi_hook (*hook)(upesi_call *call);
    void *(*config)(upesi_call *call);     /* this plugin's settings, as of
                                              the session's config generation */
    const upesi_conn_info *(*conn)(upesi_call *call);
    /* the command line, without its terminator (NULL for connect etc.) */
    const char *(*command_line)(upesi_call *call);
    upesi_line_end (*line_end)(upesi_call *call);
    /* mail, rcpt: the mailbox without <> ("" for the null sender);
     * vrfy: the argument as given; helo: the name given */
    const char *(*address)(upesi_call *call);
    /* mail and rcpt: an ESMTP parameter's value, "" for a bare keyword,
     * NULL if absent.  Keywords are case-insensitive. */
    const char *(*param)(upesi_call *call, const char *keyword);

    /* -- the transaction ------------------------------------------------- */
    const char *(*sender)(upesi_call *call);       /* NULL before MAIL */
    size_t (*rcpt_count)(upesi_call *call);        /* accepted so far */
    const char *(*rcpt)(upesi_call *call, size_t index);
    const char *(*queue_id)(upesi_call *call);     /* NULL before DATA */
    /* does the address's domain belong to local_domains? 1 or 0 */
    int (*is_local_domain)(upesi_call *call, const char *address);

    /* -- notes: small key/value stores plugins use to talk to each other.
     *    note_set, note_set_int: 0, -EINVAL (NULL key or value, abandoned
     *    call), -ENOMEM. */
    int (*note_set)(upesi_call *call, upesi_scope scope, const char *key,
                    const char *value);
    const char *(*note_get)(upesi_call *call, upesi_scope scope,
                            const char *key);
    int (*note_set_int)(upesi_call *call, upesi_scope scope, const char *key,
                        long long value);
    long long (*note_get_int)(upesi_call *call, upesi_scope scope,
                              const char *key, long long fallback);

    /* -- the message (data_post and queue).  The stored message is the
     *    host's Received header, then headers added by plugins, then the
     *    data as received: after DATA dot-unstuffed with CRLF line ends;
     *    after BDAT (txn note "data.bdat" = "1") the chunks byte for
     *    byte, which may hold bare CR or LF (and NUL with BODY=BINARYMIME,
     *    txn note "mail.body").
     *    header_add: 0, -EINVAL (NULL or malformed name, CR or LF in the
     *    value, abandoned call), -ENOMEM. */
    int (*header_add)(upesi_call *call, const char *name, const char *value);
    /* header_get: the index'th (0-based) field named name,
     * case-insensitive, its value unfolded (line ends of folded lines
     * dropped, leading and trailing white space trimmed); name NULL: the
     * index'th field of any name, as "Name: value".  NULL when there is no
     * such field.  The fields are those of the stored message: the host's
     * Received, the ones added with header_add, then the data's own header
     * section.  The string is the host's and lives until the next
     * header_add or header_remove, or the end of the hook call. */
    const char *(*header_get)(upesi_call *call, const char *name,
                              size_t index);
    /* Remove every field named name (case-insensitive) from the stored
     * message: message_read and message_size no longer see it.  Returns
     * how many were removed (0: none), or -EINVAL, -ENOMEM, -EIO. */
    int (*header_remove)(upesi_call *call, const char *name);
    /* bytes of the stored message; 0 outside data_post and queue */
    off_t (*message_size)(upesi_call *call);
    /* pread-like: bytes read, 0 at the end, or a negative errno */
    ssize_t (*message_read)(upesi_call *call, off_t offset, void *buf,
                            size_t len);
    /* Message actions (data_post only; -EINVAL elsewhere).  TAG and
     * COPY_TO take effect at once.  The others set the message's
     * disposition, which the host carries out when the data_post chain has
     * ended without a denial: REJECT > QUARANTINE > HOLD > DROP > deliver
     * (the strongest asked for wins), and JOURNAL in addition to any of
     * them but REJECT.  Quarantine, journal and hold files are written in
     * the spool format and made durable (fsync, rename, fsync of the
     * directory) off the loop before the client's 250; a write error
     * answers 451 4.3.0 and nothing is delivered.  Returns 0, or -EINVAL
     * (unknown action, bad arg, wrong hook, a cancelled call), -ENOSPC
     * (COPY_TO past the recipient limit), -ENOMEM.  COPY_TO of an address
     * already in the envelope is 0. */
    int (*message_action)(upesi_call *call, upesi_action action,
                          const char *arg);
    /* The envelope of the call's transaction as a spool file begins
     * (docs/spool-format.md, version 1, or 2 with SMTPUTF8 or DSN
     * parameters): every "Key: value" line and the
     * empty line after them, in a buffer the plugin frees with api->free;
     * arrival time is now.  0; -EINVAL with *bad_key naming the field when
     * a value holds CR or LF, or when the call has no transaction (no MAIL
     * yet); -ENOMEM. */
    int (*spool_envelope)(upesi_call *call, char **out, size_t *out_len,
                          const char **bad_key);

    /* -- SMTP AUTH (RFC 4954; docs/auth.md).
     *    ehlo_extension: from a helo handler, one more line of this
     *    session's EHLO reply, as "KEYWORD params" ("AUTH PLAIN LOGIN").
     *    Printable ASCII, at most 200 bytes, keyword letters, digits and
     *    '-'; a keyword given again replaces its line.  The host offers
     *    AUTH only when a plugin added an AUTH line, and only the
     *    mechanisms it implements (PLAIN, LOGIN) that the line names.
     *    0, or -EINVAL (bad line, not a helo call), -ENOSPC, -ENOMEM. */
    int (*ehlo_extension)(upesi_call *call, const char *keyword_line);
    /* In the auth hook only (NULL elsewhere): the mechanism ("PLAIN",
     * "LOGIN"), the user name (authentication identity) and the password
     * as the client sent them.  The password is wiped when the auth
     * chain ends: a plugin that answers PENDING copies it first, and
     * never logs it. */
    const char *(*auth_mechanism)(upesi_call *call);
    const char *(*auth_user)(upesi_call *call);
    const char *(*auth_password)(upesi_call *call);

    /* -- the host's settings ---------------------------------------------- */
    /* A path relative to the configuration directory made absolute (the
     * generation being loaded while config callbacks run, else the
     * committed one), in a buffer freed with api->free; NULL for NULL or
     * out of memory. */
    char *(*config_path)(upesi_ctx *ctx, const char *path);
    /* smtp.ini spool_dir and hostname, of the same generation */
    const char *(*spool_dir)(upesi_ctx *ctx);
    const char *(*hostname)(upesi_ctx *ctx);

    /* -- work on and off the loop (in a worker: from a hook, a timer,
     *    worker_start; NULL/-EAGAIN in the supervisor, which has no loop) */

    /* Blocking work off the loop (disk, fsync): work runs on a pool thread,
     * done on the loop with status 0, or a negative errno if the host could
     * not run work.  0, or -ENOMEM, -EAGAIN (no loop). */
    int (*queue_work)(upesi_ctx *ctx, upesi_work_fn work, upesi_done_fn done,
                      void *arg);
    /* One-shot timers on the loop.  The timer is freed by the host after
     * fn ran; timer_stop frees a timer that has not fired (and must not be
     * called after it fired).  NULL for fn NULL, no loop, out of memory. */
    upesi_timer *(*timer_start)(upesi_ctx *ctx, uint64_t ms, upesi_timer_fn fn,
                                void *arg);
    void (*timer_stop)(upesi_timer *timer);
    /* Descriptor I/O on the loop (uv_poll), so a plugin can speak a
     * protocol itself (queue_forward's SMTP client).  The plugin owns fd:
     * it makes it non-blocking, reads and writes it, and closes it after
     * fd_unwatch.  fn runs on the loop with the events that are ready
     * (UPESI_WATCH_READ|WRITE, or UPESI_WATCH_ERROR); it may call
     * fd_watch_update or fd_unwatch on its own watch.  NULL for no loop, a
     * bad fd, a descriptor already watched, or out of memory. */
    upesi_watch *(*fd_watch)(upesi_ctx *ctx, int fd, int events,
                             upesi_watch_fn fn, void *arg);
    /* What to wait for from now on (0 = nothing, the watch stays).
     * 0 or a negative errno. */
    int (*fd_watch_update)(upesi_watch *watch, int events);
    /* Stop watching and free the watch (fn never runs again); safe from
     * inside fn.  The plugin closes fd after this, never before. */
    void (*fd_unwatch)(upesi_watch *watch);

    /* -- the control socket: a command (`upesi -c DIR <command> [args]`
     *    for the commands main knows, or any client that writes
     *    "command args\n").  fn runs on the loop of whichever worker
     *    accepted the connection, so the answer must not depend on that
     *    worker's memory alone (read the disk, or kick work that every
     *    worker notices).  It writes its answer with control_write; the
     *    host closes the connection when fn returns.  Call from init; a
     *    command registered again replaces the earlier one.
     *    0, -EINVAL (bad name: one word under 32 bytes), -ENOSPC (the
     *    table is full), -ENOMEM. */
    int (*control_register)(upesi_ctx *ctx, const char *command,
                            upesi_control_fn fn, void *arg);
    void (*control_write)(upesi_control *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /* -- asynchronous DNS (c-ares on the loop; smtp.ini dns_servers,
     *    dns_timeout, dns_cache_size).  Answers are cached by TTL, negative
     *    answers included; identical queries in flight are sent once.
     *
     *    With a call, the query is tied to its session: the host cancels it
     *    when the session ends, so its callback never runs after that.  A
     *    plugin whose handler returned PENDING cancels its own queries in
     *    its on_cancel callback.  call NULL (a timer, a runner): the query
     *    belongs to no session and only dns_cancel stops it.
     *    Returns NULL (and fn never runs) for a bad type or name, an
     *    abandoned call or a session that is closing, no loop, or out of
     *    memory.  For PTR, name may be an IP address: the host asks for its
     *    in-addr.arpa / ip6.arpa name. */
    upesi_dns_query *(*dns_lookup)(upesi_ctx *ctx, upesi_call *call, int type,
                                   const char *name, upesi_dns_fn fn,
                                   void *arg);
    /* Forget a query: its callback will not run.  Must not be called after
     * the callback ran (like timer_stop). */
    void (*dns_cancel)(upesi_dns_query *query);
    /* The connecting client's name: PTR, then forward-confirmed (an A or
     * AAAA of the name holds the client's address).  Looked up once per
     * session, on the first request; later requests get the same answer.
     * The answer's type is UPESI_DNS_PTR: OK with the name as records[0]
     * (count 1); NXDOMAIN when there is no PTR or no name that confirms;
     * TIMEOUT or ERROR when the lookups failed.  Same lifetime rules as
     * dns_lookup; call must belong to a session. */
    upesi_dns_query *(*reverse_name)(upesi_call *call, upesi_dns_fn fn,
                                     void *arg);
    /* The DNS list name of an address: "192.0.2.7" + "bl.example" gives
     * "7.2.0.192.bl.example", an IPv6 address gives its 32 nibbles
     * (RFC 5782); zone NULL gives the in-addr.arpa / ip6.arpa name.
     * 0, -EINVAL (ip is not an address), -ENOSPC (out is too small). */
    int (*dns_ip_name)(const char *ip, const char *zone, char *out,
                       size_t outlen);

    /* -- durable files, the host's own recipe (docs/spool-format.md, the
     *    message actions): create <spool_dir>/tmp/<name> with
     *    open(O_CREAT|O_EXCL|O_WRONLY|O_CLOEXEC, 0600), file_write it whole,
     *    file_commit it into place, then dir_sync the directory it went to,
     *    once for every file renamed there (group commit).
     *    Unlike the rest of the API these are thread-safe and keep no
     *    state: call them from anywhere, the work function of queue_work
     *    included.  They never log.
     *    file_write: writev until every byte of iov[0..iovcnt) is written,
     *    retrying EINTR and short writes; iov is not changed.
     *    0 or a negative errno (-ENOSPC, -EDQUOT, -EIO ...). */
    int (*file_write)(int fd, const struct iovec *iov, int iovcnt);
    /* fsync fd (skipped when sync is 0: the caller made it durable another
     * way, as one syncfs for many files), close it, rename tmp_path to
     * path, never over a file already there (-EEXIST: a name made twice
     * must not replace what was committed under it).  fd is closed in
     * every case, and on any error tmp_path is
     * unlinked, so no half-written file is ever in place.  The directory
     * of path is not synced: dir_sync it after the renames, and unlink
     * path if that fails (the rename may not survive a crash).
     * 0 or a negative errno. */
    int (*file_commit)(int fd, const char *tmp_path, const char *path,
                       int sync);
    /* mkdir -p path, mode 0700 for each directory it creates, and fsync
     * the parent of each one it creates, so that the new entries survive a
     * crash.  0 when path is (now) a directory, -ENOTDIR when it is
     * something else, or a negative errno. */
    int (*dir_make)(const char *path);
    /* fsync the directory path, making its creates, renames and unlinks
     * durable.  0 or a negative errno. */
    int (*dir_sync)(const char *path);

    /* -- ABI 2.1: the store (docs/store.md).  Every call names the plugin
     *    by its context (ctx), whose name is the key prefix.  It returns
     *    the operation, or NULL when it could not start (a bad key or
     *    argument, no store in this process: the supervisor, -t; out of
     *    memory): then fn never runs.  Only on a
     *    worker's loop (hooks, timers, completions, worker-start
     *    callbacks).  ttl_ms 0 means no expiry; more than 100 years
     *    (3,162,240,000,000 ms) is a bad argument.
     *    store_get: one key; values[0].data/len, found. */
    upesi_store_op *(*store_get)(upesi_ctx *ctx, const char *key,
                                 upesi_store_fn fn, void *arg);
    /* n keys in one round trip (lmdb: one read transaction; redis: MGET);
     * values[i] answers keys[i].  1 <= n <= UPESI_STORE_BATCH_MAX. */
    upesi_store_op *(*store_mget)(upesi_ctx *ctx,
                                  const char *const *keys, size_t n,
                                  upesi_store_fn fn, void *arg);
    /* Write a value (replacing the old one and its expiry). */
    upesi_store_op *(*store_set)(upesi_ctx *ctx, const char *key,
                                 const void *data, size_t len,
                                 long long ttl_ms, upesi_store_fn fn,
                                 void *arg);
    /* values[0].found: the key was there. */
    upesi_store_op *(*store_del)(upesi_ctx *ctx, const char *key,
                                 upesi_store_fn fn, void *arg);
    /* Add by to a whole-number value, atomically across workers and
     * hosts; values[0].num is the result.  An absent key starts at 0.
     * A key without an expiry (a new one) takes ttl_ms (0: none); a key
     * that has one keeps it (a fixed window).  -EINVAL when the value is
     * not a whole number or the sum would overflow. */
    upesi_store_op *(*store_incr)(upesi_ctx *ctx, const char *key,
                                  long long by, long long ttl_ms,
                                  upesi_store_fn fn, void *arg);
    /* n increments in one round trip (lmdb: one write transaction; redis:
     * one script); by[i] for keys[i], values[i].num the results.  All
     * or nothing. */
    upesi_store_op *(*store_mincr)(upesi_ctx *ctx,
                                   const char *const *keys,
                                   const long long *by, size_t n,
                                   long long ttl_ms, upesi_store_fn fn,
                                   void *arg);
    /* A new expiry for an existing key (ttl_ms 0: never expires);
     * values[0].found: the key exists. */
    upesi_store_op *(*store_expire)(upesi_ctx *ctx, const char *key,
                                    long long ttl_ms, upesi_store_fn fn,
                                    void *arg);
    /* values[0].found, and .num: ms left, -1 without expiry. */
    upesi_store_op *(*store_ttl)(upesi_ctx *ctx, const char *key,
                                 upesi_store_fn fn, void *arg);
    /* Forget a call: its callback will not run (the operation itself may
     * still happen).  Not after the callback ran. */
    void (*store_cancel)(upesi_store_op *op);
    /* Live keys under this plugin's prefix in values[0].num, or status
     * -ENOTSUP when the backend cannot tell cheaply (redis).  lmdb walks
     * the prefix: meant for tests and small namespaces. */
    upesi_store_op *(*store_count)(upesi_ctx *ctx,
                                   upesi_store_fn fn, void *arg);

    /* -- ABI 2.2: a subcommand of the command line, `upesi -c DIR
     *    <command> args...`, run in the process that typed it, not in the
     *    server: the host loads the configuration and the plugins (init,
     *    settings), finds the command and calls fn, then exits with what
     *    fn returned.  No worker runs; the host's services that answer on
     *    a loop answer while fn waits in cli_wait.  usage is one line
     *    shown by `upesi -c DIR plugins` ("bayes learn|classify ...").  A
     *    command a plugin registers here takes precedence over a
     *    control-socket command of the same name.  Call from init.
     *    0, -EINVAL (fn NULL, a name that is not one word of a-z 0-9 - _
     *    under 32 bytes, or one the host uses), -EEXIST, -ENOMEM. */
    int (*cli_register)(upesi_ctx *ctx, const char *command,
                        upesi_cli_fn fn, const char *usage, void *arg);
    /* -- ABI 2.2: inside a cli_register command only: run the host's loop
     *    (where the host's asynchronous services answer) until *done is
     *    non-zero: a command line starts an asynchronous call and waits
     *    here.  0, or -EINVAL outside a command (in a worker a plugin
     *    never waits: it returns PENDING). */
    int (*cli_wait)(volatile int *done);

    /* -- ABI 2.3: the transaction's ESMTP parameters after MAIL and RCPT
     *    (at mail and rcpt themselves, api->param sees the command's).
     *    txn_param: the MAIL parameters the host keeps: SMTPUTF8 (""),
     *    RET, ENVID (RFC 3461, as sent: xtext).  rcpt_param: recipient
     *    `index`'s NOTIFY and ORCPT (as sent).  "" for a bare keyword,
     *    NULL when absent, before MAIL, or for another keyword.  A
     *    recipient added by COPY_TO has none. */
    const char *(*txn_param)(upesi_call *call, const char *keyword);
    const char *(*rcpt_param)(upesi_call *call, size_t index,
                              const char *keyword);
    /* -- ABI 2.3: a domain in its A-label form, lower case (IDNA2008 with
     *    UTS 46 mapping, libidn2): "Bücher.example" gives
     *    "xn--bcher-kva.example", "Example.ORG" gives "example.org", a
     *    domain literal comes back as it is.  Compare domains by this form
     *    so that a U-label equals its A-label.  0, or -EINVAL (not a valid
     *    IDN, not UTF-8, out too small).  Any thread. */
    int (*domain_to_ascii)(const char *domain, char *out, size_t outlen);

    /* ABI 2.4 and later append here. */
};

/* Does this host have api call `fn`?  False on a host whose table ends
 * before fn (an older minor) or leaves it NULL.  A plugin tests every call
 * newer than the minor its descriptor declares before it calls it. */
#define UPESI_API_SUPPORTED(api, fn)                                         \
    ((size_t)((const char *)&(api)->fn - (const char *)(api)) +              \
             sizeof((api)->fn) <=                                            \
         ((const struct upesi_api *)(api))->size &&                          \
     (api)->fn != NULL)

/* The minor that brought the store: a plugin using it declares
 * UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR), or tests
 * UPESI_API_SUPPORTED(api, store_get) first. */
#define UPESI_API_STORE_MINOR 1

/* The minor that brought cli_register and cli_wait. */
#define UPESI_API_CLI_MINOR 2

/* The minor that brought txn_param, rcpt_param and domain_to_ascii
 * (SMTPUTF8, DSN): UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_SMTPUTF8_DSN_MINOR),
 * or UPESI_API_SUPPORTED(api, domain_to_ascii) first. */
#define UPESI_API_SMTPUTF8_DSN_MINOR 3

/* ---------------------------------------------------------------------- */
/* Settings tables                                                        */

/* A plugin describes the keys at the top of its <name>.ini in a table, as
 * nginx modules do with ngx_command_t; smtp.ini is described the same way
 * inside the host.  The host parses every value with the same code, gives
 * the same message for the same mistake ("KEY: expected a boolean (0/1,
 * yes/no, on/off, true/false), got 'x'", after "file:line: "), applies the
 * defaults to a new settings object right after config_new, and documents
 * the keys (docs/config.md is generated from the tables).  Keys the table
 * does not name still go to the plugin's config_set (and every key inside
 * a [section] when the table names no section).
 *
 * Values, by type (the field at `offset` in the settings object):
 *   BOOL      int: 1 for 1, yes, on, true; 0 for 0, no, off, false (any case)
 *   INT       int: a whole number from min to max
 *   SIZE      uint64_t: bytes from min to max; a K, M or G suffix (x1024)
 *   DURATION  double: seconds from min to max; 1.5, 30s, 500ms, 2m, 1h, 5d
 *   STRING    char *: the host's copy (the old one freed); api->free it in
 *             config_free
 *   PATH      char *: as STRING, relative to the configuration directory
 *   ENUM      int: the index in choices (a NULL-ended list; any case)
 *   LIST      set(config, item) once per item: items are separated by
 *             commas and/or blanks (upesi_list_next); repeated lines add
 *   CUSTOM    set(config, value) with the whole value; in a sectioned
 *             entry with set NULL, the key goes to config_set (whose
 *             meaning depends on the section's or key's own name)
 *   COUNT     long long: a whole number from min to max; a k, M or G
 *             suffix (x1000: "2M" instructions)
 * A name "section.key" describes key inside [section] (section names in
 * any case); a part written in capitals is a placeholder that matches any
 * name ("ZONE.answers", "routes.DOMAIN").  A table with such entries owns
 * its sections: an unknown section or key in one is refused by the host.
 * The default (`def`, as it would be written in the file) is applied to
 * BOOL, INT, SIZE, DURATION, STRING, PATH and ENUM fields; for LIST and
 * CUSTOM it only documents what the plugin does without the key.  An error
 * from set() is shown after "KEY: ". */
typedef enum upesi_setting_type {
    UPESI_SETTING_END = 0,       /* ends a table (name NULL too)             */
    UPESI_SETTING_BOOL,
    UPESI_SETTING_INT,
    UPESI_SETTING_SIZE,
    UPESI_SETTING_DURATION,
    UPESI_SETTING_STRING,
    UPESI_SETTING_PATH,
    UPESI_SETTING_ENUM,
    UPESI_SETTING_LIST,
    UPESI_SETTING_CUSTOM,
    UPESI_SETTING_COUNT          /* 2.0 too (appended, like every new type) */
} upesi_setting_type;

typedef int (*upesi_setting_fn)(void *config, const char *value, char *err,
                                size_t errlen);

typedef struct upesi_setting {
    const char *name;
    upesi_setting_type type;
    size_t offset;               /* offsetof(struct ..., field)              */
    double min, max;             /* INT, SIZE, DURATION                      */
    const char *const *choices;  /* ENUM                                     */
    upesi_setting_fn set;        /* LIST, CUSTOM                             */
    const char *def;             /* default, as text; NULL: none             */
    const char *help;            /* one line, for docs/config.md             */
} upesi_setting;

/* The one list splitter: the next item of a list value, separated by
 * commas and/or blanks.  Returns its start and sets *len, or NULL when no
 * item is left; *pos moves past it.  Host and plugins split every list
 * with it, so a list reads the same in every file. */
static inline const char *upesi_list_next(const char **pos, size_t *len)
{
    const char *p = *pos;
    while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\r' ||
           *p == '\n')
        p++;
    if (*p == '\0') {
        *pos = p;
        return NULL;
    }
    const char *start = p;
    while (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    *len = (size_t)(p - start);
    *pos = p;
    return start;
}

/* A boolean word, as every BOOL setting reads it: 1, yes, on, true -> 1;
 * 0, no, off, false -> 0 (any case); -1 for anything else (*out
 * untouched).  The one definition: the host's table parser uses it, and a
 * plugin whose value is a boolean or a word (queue_forward's
 * downstream_tls = required) calls it too. */
static inline int upesi_bool_word(const char *value, int *out)
{
    static const char *const words[] = { "0", "no", "off", "false",
                                         "1", "yes", "on", "true" };
    for (int i = 0; i < 8; i++) {
        const char *a = value, *b = words[i];
        while (*a && *b &&
               (*a == *b || (*a >= 'A' && *a <= 'Z' && *a + 32 == *b))) {
            a++;
            b++;
        }
        if (*a == '\0' && *b == '\0') {
            *out = i >= 4;
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------------- */
/* The descriptor                                                         */

typedef upesi_verdict (*upesi_hook_fn)(upesi_call *call);

typedef struct upesi_plugin {
    uint32_t magic;              /* UPESI_PLUGIN_MAGIC                      */
    uint16_t abi_major;          /* UPESI_ABI_MAJOR at build time           */
    uint16_t abi_minor;          /* the lowest host minor the plugin needs  */
    uint32_t size;               /* sizeof(struct upesi_plugin) at build
                                    time; the host reads no further         */
    const char *name;            /* must match the name in conf/plugins     */
    const char *version;

    /* Once per process that loads the plugin (the supervisor at start and
     * at a reload that adds it, a worker at a reload that adds it), before
     * any other callback.  ctx and api stay valid for the life of the
     * process: keep them.  Return 0, or -1 with a message in err. */
    int (*init)(upesi_ctx *ctx, const upesi_api *api, char *err,
                size_t errlen);
    /* Once per process, at exit (the ctx init got is still valid). */
    void (*fini)(void);

    /* Settings, once per configuration generation (start and every
     * SIGHUP).  The host parses conf/<name>.ini (if present) and hands every
     * key to config_set; the host reports file and line on failure.
     *   config_new    a settings object with defaults (NULL = out of memory)
     *   config_set    one key: return 0, or -1 with a message in err
     *   config_check  the whole: return 0 or -1 with err (cross-key checks,
     *                 loading files the keys name).  It must not adopt the
     *                 settings: a later plugin may still refuse the
     *                 generation.
     *   config_commit the generation is committed: every plugin accepted
     *                 it and the host runs it from now on.  Where a plugin
     *                 adopts settings for its background work.  config is
     *                 this generation's object (NULL without config_new),
     *                 valid until config_free.  Runs in the supervisor at
     *                 start and at every reload that succeeds (workers
     *                 forked later inherit the state), and in each worker
     *                 at every reload.
     *   config_free   when no session uses this generation any more
     * All may be NULL. */
    void *(*config_new)(void);
    int (*config_set)(void *config, const char *section, const char *key,
                      const char *value, char *err, size_t errlen);
    int (*config_check)(void *config, char *err, size_t errlen);
    void (*config_free)(void *config);
    void (*config_commit)(upesi_ctx *ctx, void *config);

    /* Runs in each worker process once its loop runs, before the first
     * session, after config_commit: where a plugin starts background work
     * (timers, a queue runner).  A plugin that a reload adds to a running
     * worker gets it too, right after that generation's config_commit.
     * init runs before the fork, where there is no loop. */
    void (*worker_start)(upesi_ctx *ctx);
    /* Runs in each worker process that stops (SIGTERM or SIGINT, as the
     * supervisor passes them on): after its listeners are closed and its
     * sessions are done or the drain deadline (30 s) passed, on the
     * worker's loop, before the process exits, in the order the plugins
     * were loaded (conf/plugins order, then those reloads added).
     * Where a plugin says goodbye: QUIT to the connections it keeps, stop
     * its timers, start nothing new.  It must not block, but it may start
     * short non-blocking work (write QUIT, wait for the 221): after the
     * callbacks the host runs the loop on until no descriptor watch
     * (fd_watch) is left or 1 s passed, then the process exits.  Timers
     * fire meanwhile but do not hold the exit.  After a second SIGTERM
     * (stop now) the callbacks still run but the host does not wait.
     * Never runs after a crash or SIGKILL, nor in the supervisor. */
    void (*worker_stop)(upesi_ctx *ctx);

    /* Handlers, indexed by upesi_hook; NULL = not interested. */
    upesi_hook_fn hooks[UPESI_HOOK_SLOTS];

    /* The keys at the top of <name>.ini (see "Settings tables"), ended by
     * an entry whose name is NULL; NULL = every key goes to config_set. */
    const upesi_setting *settings;

    /* ABI 2.1 and later append here (the host zero-fills what an older
     * plugin's descriptor lacks). */
} upesi_plugin;

/* The descriptor of ABI 2.0: the smallest the host accepts. */
#define UPESI_PLUGIN_SIZE_2_0                                                \
    (offsetof(struct upesi_plugin, settings) + sizeof(const upesi_setting *))

/* The descriptor's first fields.  UPESI_PLUGIN_HEADER: the plugin needs
 * ABI 2.0, the first minor of this major; UPESI_PLUGIN_HEADER_NEEDS(m):
 * the plugin needs a host of minor m or later (it calls something added
 * in 2.m without testing it).  Do not write UPESI_ABI_MINOR here: that
 * would refuse every older host for no reason. */
#define UPESI_PLUGIN_HEADER_NEEDS(minor)                                     \
    .magic = UPESI_PLUGIN_MAGIC, .abi_major = UPESI_ABI_MAJOR,               \
    .abi_minor = (minor), .size = sizeof(struct upesi_plugin)
#define UPESI_PLUGIN_HEADER UPESI_PLUGIN_HEADER_NEEDS(0)

/* Define the exported descriptor:  UPESI_PLUGIN = { UPESI_PLUGIN_HEADER, ... }; */
#define UPESI_PLUGIN                                                         \
    __attribute__((visibility("default"))) const upesi_plugin upesi_plugin_descriptor

/* Well-known notes (see docs/plugins.md):
 *   conn "early_talker"   "1" when the client spoke out of turn
 *   conn "tls"            "TLSv1.3 TLS_AES_256_GCM_SHA384"
 *   txn  "dnsbl.site"     zone that listed the client (dnsbl, tag mode)
 *   txn  "dnswl.site"     zone that whitelisted the client
 *   txn  "rcpt.kind.<address>"  "person" or "group" (directory)
 *   conn "whitelisted"    who whitelisted the client ("PrivateWhitelist"
 *                         or a DNSWL zone): blacklists skip it
 *   conn "blacklisted"    who blacklisted it ("PrivateBlacklist" or a
 *                         DNSBL zone): later DNS lists skip it
 *   conn "relay.allowed"  "1" when the client may relay (relay)
 *   conn "remote.name"    the client's forward-confirmed name
 *                         (connection_checks, relay)
 *   txn  "data.bare_line_ends"  "1" when the data had bare CR or LF
 *   conn "improper_pipelining"  "1" when the client pipelined without
 *                         PIPELINING
 * Set by the host from ABI 2.1, so that plugins learn of refusals made by
 * other plugins or the host (limit, karma):
 *   conn "rcpt.rejected"  recipients refused so far in the connection
 *   conn "auth.failures"  AUTH attempts refused so far (535), after the
 *                         auth chain ended: a plugin sees the count at its
 *                         next hook call (the next AUTH, MAIL, disconnect)
 *   conn "auth.failed_user"  the user name of the last refused AUTH
 * Set by plugins of this tree:
 *   conn "dns.score"      the weighted DNS lists' sum (dnsbl, dnswl)
 *   conn "greylist.passed"  "1" when a recipient passed greylisting
 *   conn "karma.score"    the client's reputation (karma)
 */

#ifdef __cplusplus
}
#endif
#endif /* UPESI_PLUGIN_H */
