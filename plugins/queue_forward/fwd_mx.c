/*
 * fwd_mx.c - route = mx: where a recipient domain's mail goes, from DNS
 * (RFC 5321 5.1) through the host's resolver (api->dns_lookup: c-ares on
 * the loop, cached by TTL).
 *
 * A job whose target is "mx" first asks for the MX records of its domain
 * (in A-labels: an IDN is looked up by api->domain_to_ascii's form).  The
 * hosts are tried in preference order, in random order among equal
 * preferences (RFC 5321 5.1, load sharing); each host's A and then AAAA
 * addresses in the order DNS gave them, on port mx_port (25; tests use
 * another, as they cannot bind 25).  A domain without MX (NODATA) is its
 * own single host (the implicit MX).  The next address is tried when the
 * one before took nothing: every recipient temporary (no connection, a
 * greeting or EHLO that failed, 4xx to all) and the end of data not sent;
 * once an address answered a recipient for good (2xx or 5xx) the job is
 * done.  When every address failed, the recipients are temporary with the
 * last error: the queue's retry schedule (retry_min .. retry_max) applies
 * to the message, and the next attempt starts over from the lookup.
 *
 * Fails: a null MX (RFC 7505: one MX "." of preference 0) bounces every
 * recipient at once with 556 5.1.10; a domain that does not exist
 * (NXDOMAIN) with 550 5.1.2; a lookup that times out or fails, or a host
 * without address, is temporary (451 4.4.3 / the next host).  The job's
 * done runs once, always from the loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "fwd_client.h"

#define FWD_MX_MAX_HOSTS 16
#define FWD_MX_MAX_ADDRS 16

typedef struct fwd_mx_host {
    char name[256];
    int pref;
} fwd_mx_host;

typedef struct fwd_mx {
    fwd_job *job;
    fwd_job_done_fn owner_done;
    void *owner_arg;
    char domain[256];
    fwd_mx_host hosts[FWD_MX_MAX_HOSTS];
    size_t n_hosts, host_i;
    char addrs[FWD_MX_MAX_ADDRS][64];
    size_t n_addrs, addr_i;
    upesi_dns_query *query;
    upesi_timer *timer;
    int perm_code;              /* finish_later: for good (or temporary) */
    char enhanced[16];
    char text[512];
} fwd_mx;

static void mx_next_host(fwd_mx *mx);

/* The job is done here: give it back to its owner. */
static void mx_finish(fwd_mx *mx)
{
    fwd_job *job = mx->job;
    job->done = mx->owner_done;
    job->done_arg = mx->owner_arg;
    job->mx = NULL;
    free(mx);
    job->done(job, job->done_arg);
}

/* Every open recipient gets this outcome, then the job is done. */
static void mx_fail(fwd_mx *mx, int code, const char *enhanced,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void mx_fail(fwd_mx *mx, int code, const char *enhanced,
                    const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fwd_job *job = mx->job;
    fwd_log(job->call, code >= 500 ? UPESI_LOG_NOTICE : UPESI_LOG_INFO,
            "%s: %s", job->id, text);
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state == FWD_RCPT_PENDING ||
            job->rcpts[i]->state == FWD_RCPT_TEMP)
            fwd_rcpt_set(job->rcpts[i], code >= 500 ? FWD_RCPT_PERM
                                                     : FWD_RCPT_TEMP,
                         code, enhanced, text);
    mx_finish(mx);
}

static void mx_fail_later(void *arg)
{
    fwd_mx *mx = arg;
    mx->timer = NULL;
    mx_fail(mx, mx->perm_code, mx->enhanced, "%s", mx->text);
}

/* From inside fwd_mx_start: done must not run before it returns. */
static void mx_fail_soon(fwd_mx *mx, int code, const char *enhanced,
                         const char *text)
{
    mx->perm_code = code;
    snprintf(mx->enhanced, sizeof mx->enhanced, "%s", enhanced);
    snprintf(mx->text, sizeof mx->text, "%s", text);
    mx->timer = fwd_api->timer_start(fwd_ctx, 0, mx_fail_later, mx);
    if (mx->timer == NULL)
        mx_fail_later(mx);      /* rare: no memory for a timer */
}

/* Did the address take nothing, so that the next may be tried? */
static int mx_took_nothing(const fwd_job *job)
{
    if (job->dot_sent)
        return 0;
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state != FWD_RCPT_TEMP)
            return 0;
    return 1;
}

static void mx_try_addr(fwd_mx *mx);

static void mx_job_done(fwd_job *job, void *arg)
{
    fwd_mx *mx = arg;
    if (!mx_took_nothing(job)) {
        mx_finish(mx);
        return;
    }
    fwd_log(job->call, UPESI_LOG_INFO, "%s: MX %s: %s; trying the next",
            job->id, job->mx_used.name, job->rcpts[0]->text);
    mx->addr_i++;
    mx_try_addr(mx);
}

/* Run the job on the next address of the current host, or go on to the
 * next host. */
static void mx_try_addr(fwd_mx *mx)
{
    fwd_job *job = mx->job;
    if (mx->addr_i >= mx->n_addrs) {
        mx->host_i++;
        mx_next_host(mx);
        return;
    }
    const char *ip = mx->addrs[mx->addr_i];
    fwd_target *t = &job->mx_used;
    memset(t, 0, sizeof *t);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t->addr;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)job->cfg->mx_port);
        t->family = AF_INET;
        t->addrlen = sizeof *a4;
        snprintf(t->name, sizeof t->name, "%s[%s]:%d",
                 mx->hosts[mx->host_i].name, ip, job->cfg->mx_port);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)job->cfg->mx_port);
        t->family = AF_INET6;
        t->addrlen = sizeof *a6;
        snprintf(t->name, sizeof t->name, "%s[%s]:%d",
                 mx->hosts[mx->host_i].name, ip, job->cfg->mx_port);
    } else {
        mx->addr_i++;
        mx_try_addr(mx);
        return;
    }
    for (size_t i = 0; i < job->n_rcpts; i++)
        if (job->rcpts[i]->state == FWD_RCPT_TEMP)
            job->rcpts[i]->state = FWD_RCPT_PENDING;
    job->target = t;
    job->retried = 0;
    job->done = mx_job_done;
    job->done_arg = mx;
    fwd_job_start(job);     /* a concrete target: connects (or pools) */
}

static void mx_try_later(void *arg)
{
    fwd_mx *mx = arg;
    mx->timer = NULL;
    mx_try_addr(mx);
}

static void mx_on_addr(const upesi_dns_answer *a, void *arg)
{
    fwd_mx *mx = arg;
    mx->query = NULL;
    if (a->status == UPESI_DNS_OK)
        for (size_t i = 0; i < a->count && mx->n_addrs < FWD_MX_MAX_ADDRS;
             i++)
            snprintf(mx->addrs[mx->n_addrs++], sizeof mx->addrs[0], "%s",
                     a->records[i].text);
    if (a->type == UPESI_DNS_A) {
        mx->query = fwd_api->dns_lookup(fwd_ctx, NULL, UPESI_DNS_AAAA,
                                        mx->hosts[mx->host_i].name,
                                        mx_on_addr, mx);
        if (mx->query)
            return;
    }
    if (mx->n_addrs == 0) {
        fwd_job *job = mx->job;
        for (size_t i = 0; i < job->n_rcpts; i++)
            if (job->rcpts[i]->state != FWD_RCPT_PERM)
                fwd_rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.4.3",
                             "");
        snprintf(job->rcpts[0]->text, sizeof job->rcpts[0]->text,
                 "MX host %s has no address", mx->hosts[mx->host_i].name);
        for (size_t i = 1; i < job->n_rcpts; i++)
            snprintf(job->rcpts[i]->text, sizeof job->rcpts[i]->text, "%s",
                     job->rcpts[0]->text);
    }
    mx->addr_i = 0;
    mx_try_addr(mx);
}

/* Look the current host's addresses up, or give up when none is left. */
static void mx_next_host(fwd_mx *mx)
{
    mx->n_addrs = mx->addr_i = 0;
    if (mx->host_i >= mx->n_hosts) {
        fwd_job *job = mx->job;
        const char *last = job->n_rcpts ? job->rcpts[0]->text : "";
        mx_fail(mx, 451, "4.4.1", "no MX host of %s took the message%s%s",
                mx->domain, last[0] ? "; last: " : "", last);
        return;
    }
    mx->query = fwd_api->dns_lookup(fwd_ctx, NULL, UPESI_DNS_A,
                                    mx->hosts[mx->host_i].name, mx_on_addr,
                                    mx);
    if (mx->query == NULL) {
        mx->host_i++;
        mx_next_host(mx);
    }
}

static int mx_pref_cmp(const void *a, const void *b)
{
    const fwd_mx_host *x = a, *y = b;
    return (x->pref > y->pref) - (x->pref < y->pref);
}

static void mx_on_mx(const upesi_dns_answer *a, void *arg)
{
    fwd_mx *mx = arg;
    mx->query = NULL;
    switch (a->status) {
    case UPESI_DNS_OK:
        for (size_t i = 0; i < a->count; i++)
            if (!strcmp(a->records[i].text, ".") ||
                a->records[i].text[0] == '\0') {
                /* RFC 7505 3: the domain accepts no mail */
                mx_fail(mx, 556, "5.1.10", "556 5.1.10 Recipient address "
                        "has null MX (%s does not accept mail)", mx->domain);
                return;
            }
        for (size_t i = 0; i < a->count && mx->n_hosts < FWD_MX_MAX_HOSTS;
             i++) {
            fwd_mx_host *h = &mx->hosts[mx->n_hosts++];
            snprintf(h->name, sizeof h->name, "%s", a->records[i].text);
            h->pref = a->records[i].preference;
        }
        /* shuffle, then a stable sort by preference keeps equal ones in
         * random order (qsort is not stable: sort then shuffle runs) */
        qsort(mx->hosts, mx->n_hosts, sizeof *mx->hosts, mx_pref_cmp);
        for (size_t i = 0; i < mx->n_hosts;) {
            size_t j = i;
            while (j < mx->n_hosts && mx->hosts[j].pref == mx->hosts[i].pref)
                j++;
            for (size_t k = j - 1; k > i; k--) {
                size_t r = i + (size_t)random() % (k - i + 1);
                fwd_mx_host tmp = mx->hosts[k];
                mx->hosts[k] = mx->hosts[r];
                mx->hosts[r] = tmp;
            }
            i = j;
        }
        break;
    case UPESI_DNS_NODATA:
        /* RFC 5321 5.1: no MX, the domain itself is the host */
        snprintf(mx->hosts[0].name, sizeof mx->hosts[0].name, "%s",
                 mx->domain);
        mx->n_hosts = 1;
        break;
    case UPESI_DNS_NXDOMAIN:
        mx_fail(mx, 550, "5.1.2", "550 5.1.2 Recipient domain %s not found "
                "(no such domain in DNS)", mx->domain);
        return;
    default:
        mx_fail(mx, 451, "4.4.3", "451 4.4.3 MX lookup of %s failed (%s); "
                "will try again", mx->domain,
                a->status == UPESI_DNS_TIMEOUT ? "timeout" : "DNS error");
        return;
    }
    mx->host_i = 0;
    mx_next_host(mx);
}

void fwd_mx_start(fwd_job *job)
{
    fwd_mx *mx = calloc(1, sizeof *mx);
    if (mx == NULL) {
        /* no memory: like a failed connection, temporary (rare and
         * synchronous, as fwd_job_start's own) */
        for (size_t i = 0; i < job->n_rcpts; i++)
            fwd_rcpt_set(job->rcpts[i], FWD_RCPT_TEMP, 0, "4.3.0",
                         "out of memory");
        job->done(job, job->done_arg);
        return;
    }
    mx->job = job;
    mx->owner_done = job->done;
    mx->owner_arg = job->done_arg;
    job->mx = mx;
    for (size_t i = 0; i < job->n_rcpts; i++)
        job->rcpts[i]->accepted = 0;
    job->data_started = job->dot_sent = 0;
    const char *at = job->n_rcpts ? strrchr(job->rcpts[0]->addr, '@') : NULL;
    const char *domain = at ? at + 1 : NULL;
    if (domain && domain[0] == '[') {
        /* an address literal: that host, no lookup */
        size_t len = strcspn(domain + 1, "]");
        const char *ip = domain + 1;
        if (len > 5 && !strncasecmp(ip, "IPv6:", 5)) {
            ip += 5;
            len -= 5;
        }
        snprintf(mx->domain, sizeof mx->domain, "%s", domain);
        snprintf(mx->hosts[0].name, sizeof mx->hosts[0].name, "%s",
                 mx->domain);
        mx->n_hosts = 1;
        snprintf(mx->addrs[0], sizeof mx->addrs[0], "%.*s", (int)len, ip);
        mx->n_addrs = 1;
        mx->perm_code = 0;
        /* from the loop, like every other start */
        mx->timer = fwd_api->timer_start(fwd_ctx, 0, mx_try_later, mx);
        if (mx->timer == NULL)
            mx_try_addr(mx);
        return;
    }
    if (domain == NULL ||
        fwd_api->domain_to_ascii(domain, mx->domain, sizeof mx->domain) < 0) {
        mx_fail_soon(mx, 550, "5.1.2", "550 5.1.2 Recipient domain is not "
                     "a valid domain name");
        return;
    }
    mx->query = fwd_api->dns_lookup(fwd_ctx, NULL, UPESI_DNS_MX, mx->domain, mx_on_mx,
                                    mx);
    if (mx->query == NULL)
        mx_fail_soon(mx, 451, "4.4.3", "451 4.4.3 cannot start the MX "
                     "lookup; will try again");
}

void fwd_mx_abort(fwd_job *job)
{
    fwd_mx *mx = job->mx;
    if (mx == NULL)
        return;
    if (mx->query)
        fwd_api->dns_cancel(mx->query);
    if (mx->timer)
        fwd_api->timer_stop(mx->timer);
    job->mx = NULL;
    job->done = mx->owner_done;
    job->done_arg = mx->owner_arg;
    free(mx);
}
