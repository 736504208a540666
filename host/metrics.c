/*
 * metrics.c - Prometheus text exposition of the statistics (metrics.h).
 *
 * Names: Domino's dotted names become Prometheus names by one rule, with
 * the variable part of a family as labels (docs/admin.md, Monitoring):
 *   SMTP.Sessions.Accepted          upesi_smtp_sessions_accepted_total
 *   Upesi.DNS.CacheHits             upesi_dns_cache_hits_total
 *   SMTP.Command.EHLO               upesi_smtp_command_total{verb="EHLO"}
 *   SMTP.Plugin.relay.rcpt.DENY     upesi_smtp_plugin_verdicts_total{plugin=
 *                                   "relay",hook="rcpt",verdict="DENY"}
 *   Upesi.Worker.0.Sessions         upesi_worker_sessions{worker="0"}
 *   SMTP.DNSBL.<zone>.TotalHits     upesi_smtp_dnsbl_zone_hits_total{zone=}
 *   SMTP.DNSBL.<zone>.<ip>.Hits     upesi_smtp_dnsbl_client_hits_total{..}
 *   SMTP.Rules.<name>.Hits          upesi_smtp_rule_hits_total{rule=}
 *   Lua.<name>                      upesi_lua_script_total{name=}
 * CamelCase parts become snake_case; counters end in _total; the gauges
 * (docs/statistics.md marks them) have no suffix.
 *
 * The server: the supervisor polls the listening socket and at most
 * UP_METRICS_CONNS connections, each non-blocking with a deadline, so a
 * slow or silent scraper never holds the supervisor up.  One request per
 * connection (HTTP/1.0 style, Connection: close): GET /metrics answers
 * 200, another path 404, another method 405, a request over 4 KiB 431.
 *
 * Fails: a metrics_listen that cannot be bound stops the start (logged
 * with the address); a connection that errs or passes its deadline is
 * closed; a full connection table leaves new ones in the backlog.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "stats.h"

#define UP_METRICS_REQ_MAX 4096
#define UP_METRICS_DEADLINE_MS 5000

/* ------------------------------------------------------------------ */
/* names                                                                */

/* CamelCase and dots to snake_case: "TLSResumed" -> "tls_resumed" */
static void snake(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 2 < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isupper(c) && i > 0) {
            unsigned char p = (unsigned char)in[i - 1];
            unsigned char nx = (unsigned char)in[i + 1];
            if ((islower(p) || isdigit(p)) ||
                (isupper(p) && islower(nx)))
                if (o && out[o - 1] != '_')
                    out[o++] = '_';
        }
        if (isalnum(c))
            out[o++] = (char)tolower(c);
        else if (o && out[o - 1] != '_')
            out[o++] = '_';
    }
    while (o && out[o - 1] == '_')
        o--;
    out[o] = '\0';
}

/* label="value" with the exposition format's escapes */
static size_t label(char *out, size_t n, size_t at, const char *name,
                    const char *value, size_t vlen)
{
    if (at >= n)
        return at;
    at += (size_t)snprintf(out + at, n - at, "%s%s=\"", at ? "," : "",
                           name);
    for (size_t i = 0; i < vlen && at + 3 < n; i++) {
        char c = value[i];
        if (c == '\\' || c == '"') {
            out[at++] = '\\';
            out[at++] = c;
        } else if (c == '\n') {
            out[at++] = '\\';
            out[at++] = 'n';
        } else {
            out[at++] = c;
        }
    }
    if (at + 1 < n)
        out[at++] = '"';
    out[at < n ? at : n - 1] = '\0';
    return at;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* SMTP.DNSBL.<rest> / SMTP.DNSWL.<rest> */
static int map_dnslist(const char *list, const char *rest, char *family,
                       size_t flen, char *labels, size_t llen, char *help,
                       size_t hlen)
{
    char l[16];
    snake(list, l, sizeof l);
    if (!strcmp(rest, "TotalHits")) {
        snprintf(family, flen, "upesi_smtp_%s_hits_total", l);
        snprintf(help, hlen, "SMTP.%s.TotalHits: clients listed by any "
                 "zone", list);
        return 0;
    }
    const char *dot = strrchr(rest, '.');
    if (dot == NULL)
        return -1;
    const char *last = dot + 1;
    size_t mid = (size_t)(dot - rest);
    if (!strcmp(last, "Hits")) {
        /* <zone>.<ip>: an IPv4 address is the last four numeric parts,
         * an IPv6 one the last part (it has no dots) */
        size_t ip_at = mid;
        int parts = 0;
        while (ip_at > 0 && parts < 4) {
            size_t b = ip_at;
            while (b > 0 && rest[b - 1] != '.')
                b--;
            if (!all_digits(rest + b, ip_at - b))
                break;
            parts++;
            ip_at = b ? b - 1 : 0;
        }
        if (parts != 4) {
            ip_at = mid;
            while (ip_at > 0 && rest[ip_at - 1] != '.')
                ip_at--;
            ip_at = ip_at ? ip_at - 1 : 0;
        }
        if (ip_at == 0)
            return -1;
        snprintf(family, flen, "upesi_smtp_%s_client_hits_total", l);
        size_t at = label(labels, llen, 0, "zone", rest, ip_at);
        label(labels, llen, at, "ip", rest + ip_at + 1, mid - ip_at - 1);
        snprintf(help, hlen, "SMTP.%s.<zone>.<ip>.Hits: hits per client "
                 "(expand_stats)", list);
        return 0;
    }
    char s[64];
    snake(!strcmp(last, "TotalHits") ? "Hits" : last, s, sizeof s);
    snprintf(family, flen, "upesi_smtp_%s_zone_%s_total", l, s);
    label(labels, llen, 0, "zone", rest, mid);
    snprintf(help, hlen, "SMTP.%s.<zone>.%s", list, last);
    return 0;
}

static const char *const gauges[] = {
    "SMTP.Sessions.Current", "SMTP.Sessions.Peak", "Upesi.Workers", NULL,
};

int up_metrics_map(const char *name, char *family, size_t flen,
                   char *labels, size_t llen, int *gauge, char *help,
                   size_t hlen)
{
    char s[UP_STAT_NAME_MAX * 2 + 8];
    labels[0] = '\0';
    *gauge = 0;
    for (int i = 0; gauges[i]; i++)
        if (!strcmp(name, gauges[i]))
            *gauge = 1;
    const char *rest;
    if (!strncmp(name, "SMTP.Command.", 13) && !strchr(name + 13, '.') &&
        strcmp(name + 13, "Invalid") != 0) {
        rest = name + 13;
        snprintf(family, flen, "upesi_smtp_command_total");
        label(labels, llen, 0, "verb", rest, strlen(rest));
        snprintf(help, hlen, "SMTP.Command.<VERB>: commands by verb");
        return 0;
    }
    if (!strncmp(name, "SMTP.Plugin.", 12)) {
        rest = name + 12;
        const char *d1 = strchr(rest, '.');
        const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
        if (d2 && !strchr(d2 + 1, '.')) {
            snprintf(family, flen, "upesi_smtp_plugin_verdicts_total");
            size_t at = label(labels, llen, 0, "plugin", rest,
                              (size_t)(d1 - rest));
            at = label(labels, llen, at, "hook", d1 + 1,
                       (size_t)(d2 - d1 - 1));
            label(labels, llen, at, "verdict", d2 + 1, strlen(d2 + 1));
            snprintf(help, hlen, "SMTP.Plugin.<plugin>.<hook>.<VERDICT>: "
                     "each plugin's verdicts");
            return 0;
        }
    }
    if (!strncmp(name, "Upesi.Worker.", 13)) {
        rest = name + 13;
        const char *dot = strchr(rest, '.');
        if (dot && !strcmp(dot, ".Sessions") &&
            all_digits(rest, (size_t)(dot - rest))) {
            snprintf(family, flen, "upesi_worker_sessions");
            label(labels, llen, 0, "worker", rest, (size_t)(dot - rest));
            *gauge = 1;
            snprintf(help, hlen, "Upesi.Worker.<n>.Sessions: sessions open "
                     "in each worker");
            return 0;
        }
    }
    if (!strncmp(name, "SMTP.DNSBL.", 11) || !strncmp(name, "SMTP.DNSWL.", 11)) {
        char list[6];
        memcpy(list, name + 5, 5);
        list[5] = '\0';
        if (map_dnslist(list, name + 11, family, flen, labels, llen, help,
                        hlen) == 0)
            return 0;
        labels[0] = '\0';
    }
    if (!strncmp(name, "SMTP.Rules.", 11) &&
        strncmp(name + 11, "Action.", 7) != 0) {
        rest = name + 11;
        size_t n = strlen(rest);
        if (n > 5 && !strcmp(rest + n - 5, ".Hits")) {
            snprintf(family, flen, "upesi_smtp_rule_hits_total");
            label(labels, llen, 0, "rule", rest, n - 5);
            snprintf(help, hlen, "SMTP.Rules.<name>.Hits: messages each "
                     "named rule matched");
            return 0;
        }
    }
    if (!strncmp(name, "Lua.", 4) && strcmp(name, "Lua.Errors") != 0 &&
        strncmp(name, "Lua.Stopped.", 12) != 0) {
        snprintf(family, flen, "upesi_lua_script_total");
        label(labels, llen, 0, "name", name + 4, strlen(name + 4));
        snprintf(help, hlen, "Lua.<name>: counters scripts move with "
                 "upesi.stat");
        return 0;
    }
    /* the general rule */
    if (!strncmp(name, "SMTP.", 5)) {
        memcpy(s, "smtp_", 5);
        snake(name + 5, s + 5, sizeof s - 5);
    } else if (!strncmp(name, "Upesi.", 6)) {
        snake(name + 6, s, sizeof s);
    } else {
        snake(name, s, sizeof s);
    }
    int n = snprintf(family, flen, "upesi_%s%s", s, *gauge ? "" : "_total");
    if (n < 0 || (size_t)n >= flen)
        return -1;
    snprintf(help, hlen, "%s", name);
    return 0;
}

/* ------------------------------------------------------------------ */
/* the exposition text                                                  */

typedef struct metric_row {
    char family[160];
    char labels[512];
    char help[160];
    int gauge;
    long long value;
} metric_row;

typedef struct metric_rows {
    metric_row *rows;
    size_t n, cap;
    int failed;
} metric_rows;

static void collect(const char *name, long long value, void *arg)
{
    metric_rows *mr = arg;
    if (mr->failed)
        return;
    if (mr->n == mr->cap) {
        size_t cap = mr->cap ? mr->cap * 2 : 128;
        metric_row *grown = realloc(mr->rows, cap * sizeof *grown);
        if (grown == NULL) {
            mr->failed = 1;
            return;
        }
        mr->rows = grown;
        mr->cap = cap;
    }
    metric_row *r = &mr->rows[mr->n];
    if (up_metrics_map(name, r->family, sizeof r->family, r->labels,
                       sizeof r->labels, &r->gauge, r->help,
                       sizeof r->help) != 0)
        return;
    r->value = value;
    mr->n++;
}

static int row_cmp(const void *a, const void *b)
{
    const metric_row *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    return c ? c : strcmp(x->labels, y->labels);
}

char *up_metrics_render(size_t *len)
{
    metric_rows mr = { 0 };
    up_stats_each(NULL, collect, &mr);
    if (mr.failed) {
        free(mr.rows);
        return NULL;
    }
    qsort(mr.rows, mr.n, sizeof *mr.rows, row_cmp);
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);
    if (f == NULL) {
        free(mr.rows);
        return NULL;
    }
    for (size_t i = 0; i < mr.n; i++) {
        const metric_row *r = &mr.rows[i];
        int first = i == 0 || strcmp(r->family, mr.rows[i - 1].family);
        if (!first && !strcmp(r->labels, mr.rows[i - 1].labels))
            continue;           /* two names that map alike: keep one */
        if (first) {
            /* HELP text: backslash and newline escaped */
            fprintf(f, "# HELP %s ", r->family);
            for (const char *p = r->help; *p; p++)
                if (*p == '\\')
                    fputs("\\\\", f);
                else if (*p == '\n')
                    fputs("\\n", f);
                else
                    fputc(*p, f);
            fprintf(f, " (docs/statistics.md)\n# TYPE %s %s\n", r->family,
                    r->gauge ? "gauge" : "counter");
        }
        if (r->labels[0])
            fprintf(f, "%s{%s} %lld\n", r->family, r->labels, r->value);
        else
            fprintf(f, "%s %lld\n", r->family, r->value);
    }
    free(mr.rows);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    *len = size;
    return out;
}

/* ------------------------------------------------------------------ */
/* the HTTP server                                                      */

typedef struct metrics_conn {
    int fd;                     /* -1 = free */
    uint64_t deadline_ms;
    char req[UP_METRICS_REQ_MAX];
    size_t req_len;
    char *out;                  /* the response, once the request is in */
    size_t out_len, out_off;
} metrics_conn;

static int listen_fd = -1;
static metrics_conn conns[UP_METRICS_CONNS];
static int conns_ready;

static void conns_init(void)
{
    if (conns_ready)
        return;
    for (int i = 0; i < UP_METRICS_CONNS; i++)
        conns[i].fd = -1;
    conns_ready = 1;
}

int up_metrics_open(const up_config *cfg)
{
    conns_init();
    if (!cfg->has_metrics)
        return 0;
    const up_listen_addr *a = &cfg->metrics_listen;
    int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
                                           SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (const struct sockaddr *)&a->addr, a->addrlen) != 0 ||
        listen(fd, 16) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "metrics_listen %s: %s", a->text,
               strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    listen_fd = fd;
    up_log(NULL, UPESI_LOG_INFO, "metrics on http://%s/metrics", a->text);
    return 0;
}

int up_metrics_pollfds(struct pollfd *out, int max)
{
    int n = 0;
    if (listen_fd < 0 || max < 1)
        return 0;
    int busy = 0;
    for (int i = 0; i < UP_METRICS_CONNS; i++)
        busy += conns[i].fd >= 0;
    /* a full table: new connections wait in the backlog */
    out[n++] = (struct pollfd){ .fd = busy < UP_METRICS_CONNS ? listen_fd
                                                              : -1,
                                .events = POLLIN };
    for (int i = 0; i < UP_METRICS_CONNS && n < max; i++)
        if (conns[i].fd >= 0)
            out[n++] = (struct pollfd){
                .fd = conns[i].fd,
                .events = conns[i].out ? POLLOUT : POLLIN };
    return n;
}

static void conn_close(metrics_conn *c)
{
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->req_len = c->out_len = c->out_off = 0;
}

static void respond(metrics_conn *c, int status, const char *reason,
                    const char *type, const char *body, size_t blen)
{
    char head[256];
    int hl = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: "
                      "%s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                      "\r\n", status, reason, type, blen);
    c->out = malloc((size_t)hl + blen);
    if (c->out == NULL) {
        conn_close(c);
        return;
    }
    memcpy(c->out, head, (size_t)hl);
    memcpy(c->out + hl, body, blen);
    c->out_len = (size_t)hl + blen;
    c->out_off = 0;
}

static void handle_request(metrics_conn *c)
{
    char method[16] = "", path[256] = "";
    c->req[c->req_len] = '\0';
    if (sscanf(c->req, "%15s %255s", method, path) != 2) {
        static const char bad[] = "bad request\n";
        respond(c, 400, "Bad Request", "text/plain", bad, sizeof bad - 1);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char bad[] = "only GET /metrics\n";
        respond(c, 405, "Method Not Allowed", "text/plain", bad,
                sizeof bad - 1);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    if (strcmp(path, "/metrics") != 0) {
        static const char nf[] = "not found: the statistics are at "
                                 "/metrics\n";
        respond(c, 404, "Not Found", "text/plain", nf, sizeof nf - 1);
        return;
    }
    size_t len = 0;
    char *text = up_metrics_render(&len);
    if (text == NULL) {
        static const char oom[] = "out of memory\n";
        respond(c, 500, "Internal Server Error", "text/plain", oom,
                sizeof oom - 1);
        return;
    }
    respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text,
            !strcmp(method, "HEAD") ? 0 : len);
    free(text);
}

static void conn_read(metrics_conn *c)
{
    ssize_t n = read(c->fd, c->req + c->req_len,
                     sizeof c->req - 1 - c->req_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->req_len += (size_t)n;
    c->req[c->req_len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
        handle_request(c);
    } else if (c->req_len >= sizeof c->req - 1) {
        static const char big[] = "request too large\n";
        respond(c, 431, "Request Header Fields Too Large", "text/plain",
                big, sizeof big - 1);
    }
}

static void conn_write(metrics_conn *c)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                     MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == c->out_len)
        conn_close(c);
}

void up_metrics_poll(const struct pollfd *fds, int n, uint64_t now_ms)
{
    for (int k = 1; k < n; k++) {
        if (!fds[k].revents)
            continue;
        for (int i = 0; i < UP_METRICS_CONNS; i++) {
            metrics_conn *c = &conns[i];
            if (c->fd != fds[k].fd)
                continue;
            if (c->out)
                conn_write(c);
            else
                conn_read(c);
            if (c->fd >= 0 && c->out && c->out_off == 0)
                conn_write(c);  /* most answers fit at once */
            break;
        }
    }
    if (n > 0 && fds[0].fd >= 0 && (fds[0].revents & POLLIN)) {
        for (int i = 0; i < UP_METRICS_CONNS; i++) {
            if (conns[i].fd >= 0)
                continue;
            int fd = accept4(listen_fd, NULL, NULL,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                break;
            conns[i].fd = fd;
            conns[i].deadline_ms = now_ms + UP_METRICS_DEADLINE_MS;
            conns[i].req_len = 0;
        }
    }
}

int up_metrics_timeout(uint64_t now_ms)
{
    int wait = -1;
    for (int i = 0; i < UP_METRICS_CONNS; i++) {
        metrics_conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if (now_ms >= c->deadline_ms) {
            conn_close(c);      /* a silent or slow scraper */
            continue;
        }
        int left = (int)(c->deadline_ms - now_ms);
        if (wait < 0 || left < wait)
            wait = left;
    }
    return wait;
}

void up_metrics_close(void)
{
    conns_init();
    for (int i = 0; i < UP_METRICS_CONNS; i++)
        if (conns[i].fd >= 0)
            conn_close(&conns[i]);
    if (listen_fd >= 0) {
        close(listen_fd);
        listen_fd = -1;
    }
}

void up_metrics_worker_start(void)
{
    /* CLOEXEC covers exec only; a worker must not hold the port */
    up_metrics_close();
}
