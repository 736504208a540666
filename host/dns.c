/*
 * dns.c - the host's resolver: c-ares on the libuv loop, a TTL cache,
 * queries that belong to sessions, the client's reverse name (see dns.h).
 *
 * The parts, from the plugin down:
 *   query    what a plugin holds (upesi_dns_query): waits on a cache entry
 *            (or on its session's reverse name), then sits on the ready
 *            list until the check phase hands its answer to the callback;
 *   entry    one (type, name) in the cache: in flight (a request and its
 *            waiters) or answered (a result, an expiry, a place in the LRU);
 *            identical lookups in flight share one entry and one request;
 *   request  one c-ares query with a hard deadline of dns_timeout; after the
 *            deadline its entry is answered TIMEOUT and the request waits,
 *            detached, for c-ares to give up on it;
 *   channel  one c-ares channel with its uv_poll per socket and its timers;
 *            a reload that changes servers or timeout makes a new one and
 *            retires the old once its requests are done.
 *
 * Nothing a plugin can do frees memory under c-ares or under a callback:
 * cancelling a query only unlinks it; requests and entries live on until
 * c-ares is done with them.
 *
 * Fails: allocation failures make a lookup return NULL or an answer
 * UPESI_DNS_ERROR; c-ares errors are logged.
 *
 * One file over the usual size: queries, entries, requests and sessions
 * share their lists, and the rules of who frees what are easier to check
 * with all of them in view.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "dns_answer.h"
#include "log.h"
#include "stats.h"

/* At most this many PTR names are checked forward (Postfix checks a few). */
#define UP_DNS_REVERSE_NAMES 5
#define SESSION_BUCKETS 4096

/* ---------------------------------------------------------------------- */
/* intrusive lists                                                         */

typedef struct dl {
    struct dl *prev, *next;
} dl;

static void dl_init(dl *h)
{
    h->prev = h->next = h;
}

static int dl_empty(const dl *h)
{
    return h->next == h;
}

static void dl_add(dl *h, dl *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void dl_del(dl *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define dl_item(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))

/* ---------------------------------------------------------------------- */
/* the state                                                               */

typedef struct dns_channel dns_channel;
typedef struct dns_entry dns_entry;
typedef struct dns_session dns_session;

typedef struct dns_request {
    dns_channel *ch;
    dns_entry *entry;           /* NULL once given up (deadline, flush)   */
    uint64_t deadline;
    dl link;                    /* ch->requests until answered or late    */
} dns_request;

struct dns_entry {
    dns_entry *hnext;
    dl lru;                     /* answered entries, oldest first         */
    dl waiters;                 /* queries, while in flight               */
    up_dns_result *result;      /* NULL while in flight                   */
    dns_request *req;
    uint64_t expires;           /* loop time, ms                          */
    uint32_t hash;
    int type;
    char name[];
};

struct upesi_dns_query {
    dl link;                    /* entry->waiters, rev_waiters or ready   */
    dl slink;                   /* its session's queries                  */
    dns_session *sess;
    dns_entry *entry;           /* while waiting on an entry              */
    up_dns_result *result;      /* once ready                             */
    uint32_t ttl;
    int in_callback;
    upesi_dns_fn fn;
    void *arg;
};

typedef struct rev_slot {
    dns_session *sess;
    upesi_dns_query *q;
    char *name;
    int done, confirmed;
    upesi_dns_status status;
    uint32_t ttl;
} rev_slot;

struct dns_session {
    void *key;
    dns_session *hnext;
    dl queries;
    /* the reverse name: 0 not asked, 1 looking, 2 known */
    int rev_state;
    dl rev_waiters;
    up_dns_result *rev_result;
    char ip[64];
    char arpa[80];
    upesi_dns_query *rev_ptr;
    uint32_t rev_ttl;
    size_t rev_n;
    rev_slot rev[UP_DNS_REVERSE_NAMES];
};

typedef struct dns_poll {
    uv_poll_t handle;
    ares_socket_t fd;
    dns_channel *ch;
    dl link;
} dns_poll;

struct dns_channel {
    ares_channel ares;
    uv_timer_t ares_timer;      /* c-ares retransmissions                 */
    uv_timer_t deadline_timer;  /* dns_timeout of the oldest request      */
    dl polls, requests, link;
    uint64_t timeout_ms;
    char *servers;
    size_t active;              /* requests c-ares has not answered       */
    int retired, destroying, handles_open;
};

static struct {
    uv_loop_t *loop;
    uv_check_t check;           /* delivers ready answers                 */
    uv_idle_t idle;             /* keeps poll from blocking while any are */
    dl ready;
    dl channels;
    dns_channel *current;
    dns_entry **buckets;
    size_t nbuckets, nentries, ncached, cache_size;
    dl lru;
    dns_session *sessions[SESSION_BUCKETS];
    size_t pending;
    int started;
} R;

/* A result for when there is no memory for one. */
static up_dns_result oom_result = {
    .refs = 1 << 30,
    .answer = { .status = UPESI_DNS_ERROR, .name = "" },
};

static up_dns_result *or_oom(up_dns_result *r)
{
    return r ? r : up_dns_result_ref(&oom_result);
}

/* ---------------------------------------------------------------------- */
/* delivery                                                                */

static void on_idle(uv_idle_t *idle)
{
    (void)idle;
}

static void ready_push(upesi_dns_query *q, up_dns_result *res, uint32_t ttl)
{
    q->result = res;
    q->ttl = ttl;
    q->entry = NULL;
    dl_add(&R.ready, &q->link);
    uv_idle_start(&R.idle, on_idle);
}

static void query_free(upesi_dns_query *q)
{
    dl_del(&q->link);
    dl_del(&q->slink);
    up_dns_result_unref(q->result);
    free(q);
}

static void channel_destroy(dns_channel *ch);

static void on_check(uv_check_t *check)
{
    (void)check;
    while (!dl_empty(&R.ready)) {
        upesi_dns_query *q = dl_item(R.ready.next, upesi_dns_query, link);
        dl_del(&q->link);
        dl_del(&q->slink);
        upesi_dns_answer answer = q->result->answer;
        answer.ttl = q->ttl;
        q->in_callback = 1;
        q->fn(&answer, q->arg);
        query_free(q);
    }
    uv_idle_stop(&R.idle);
    for (dl *n = R.channels.next; n != &R.channels;) {
        dns_channel *ch = dl_item(n, dns_channel, link);
        n = n->next;
        if (ch->retired && ch->active == 0)
            channel_destroy(ch);
    }
}

/* ---------------------------------------------------------------------- */
/* the cache                                                               */

static uint32_t entry_hash(int type, const char *name)
{
    uint32_t h = 2166136261u ^ (uint32_t)type;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static int table_grow(void)
{
    size_t n = R.nbuckets ? R.nbuckets * 2 : 1024;
    dns_entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < R.nbuckets; i++)
        for (dns_entry *e = R.buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(R.buckets);
    R.buckets = b;
    R.nbuckets = n;
    return 0;
}

static dns_entry *entry_find(int type, const char *name, uint32_t hash)
{
    if (R.nbuckets == 0)
        return NULL;
    for (dns_entry *e = R.buckets[hash & (R.nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == hash && e->type == type && !strcmp(e->name, name))
            return e;
    return NULL;
}

static dns_entry *entry_new(int type, const char *name, uint32_t hash)
{
    if ((R.nentries + 1 > R.nbuckets * 2 || R.nbuckets == 0) &&
        table_grow() != 0 && R.nbuckets == 0)
        return NULL;
    size_t len = strlen(name) + 1;
    dns_entry *e = calloc(1, sizeof *e + len);
    if (e == NULL)
        return NULL;
    memcpy(e->name, name, len);
    e->type = type;
    e->hash = hash;
    dl_init(&e->lru);
    dl_init(&e->waiters);
    e->hnext = R.buckets[hash & (R.nbuckets - 1)];
    R.buckets[hash & (R.nbuckets - 1)] = e;
    R.nentries++;
    return e;
}

/* An entry with no request and no waiters leaves the table. */
static void entry_free(dns_entry *e)
{
    dns_entry **pp = &R.buckets[e->hash & (R.nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    R.nentries--;
    if (e->result) {
        dl_del(&e->lru);
        R.ncached--;
        up_dns_result_unref(e->result);
    }
    free(e);
}

static void cache_trim(size_t keep)
{
    while (R.ncached > keep && !dl_empty(&R.lru))
        entry_free(dl_item(R.lru.next, dns_entry, lru));
}

static int cacheable(const up_dns_result *r)
{
    return r->answer.ttl > 0 && (r->answer.status == UPESI_DNS_OK ||
                                 r->answer.status == UPESI_DNS_NODATA ||
                                 r->answer.status == UPESI_DNS_NXDOMAIN);
}

/* The answer for an entry in flight: its waiters get it; the cache keeps
 * it for its TTL.  Takes the reference res. */
static void entry_complete(dns_entry *e, up_dns_result *res)
{
    e->req = NULL;
    while (!dl_empty(&e->waiters)) {
        upesi_dns_query *q = dl_item(e->waiters.next, upesi_dns_query, link);
        dl_del(&q->link);
        ready_push(q, up_dns_result_ref(res), res->answer.ttl);
    }
    if (R.cache_size > 0 && cacheable(res)) {
        e->result = res;
        e->expires = uv_now(R.loop) + (uint64_t)res->answer.ttl * 1000;
        dl_add(&R.lru, &e->lru);
        R.ncached++;
        cache_trim(R.cache_size);
    } else {
        up_dns_result_unref(res);
        entry_free(e);
    }
}

/* ---------------------------------------------------------------------- */
/* c-ares on the loop                                                      */

static void on_ares_timer(uv_timer_t *timer);

static void ares_timer_update(dns_channel *ch)
{
    struct timeval tv, *tvp = ares_timeout(ch->ares, NULL, &tv);
    if (tvp == NULL) {
        uv_timer_stop(&ch->ares_timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 +
                  ((uint64_t)tvp->tv_usec + 999) / 1000;
    uv_timer_start(&ch->ares_timer, on_ares_timer, ms, 0);
}

static void on_ares_timer(uv_timer_t *timer)
{
    dns_channel *ch = timer->data;
    ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    ares_timer_update(ch);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    dns_poll *p = handle->data;
    dns_channel *ch = p->ch;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0) {
        rfd = wfd = p->fd;      /* let c-ares see the error */
    } else {
        if (events & UV_READABLE)
            rfd = p->fd;
        if (events & UV_WRITABLE)
            wfd = p->fd;
    }
    ares_process_fd(ch->ares, rfd, wfd);
    ares_timer_update(ch);
}

static void poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void sock_state(void *data, ares_socket_t fd, int readable,
                       int writable)
{
    dns_channel *ch = data;
    dns_poll *p = NULL;
    for (dl *n = ch->polls.next; n != &ch->polls; n = n->next)
        if (dl_item(n, dns_poll, link)->fd == fd) {
            p = dl_item(n, dns_poll, link);
            break;
        }
    if (!readable && !writable) {
        if (p) {
            dl_del(&p->link);
            uv_close((uv_handle_t *)&p->handle, poll_closed);
        }
        return;
    }
    if (p == NULL) {
        p = calloc(1, sizeof *p);
        if (p == NULL || uv_poll_init_socket(R.loop, &p->handle, fd) != 0) {
            free(p);
            up_log(NULL, UPESI_LOG_ERR, "dns: cannot watch socket %d",
                   (int)fd);
            return;
        }
        p->fd = fd;
        p->ch = ch;
        p->handle.data = p;
        dl_add(&ch->polls, &p->link);
    }
    uv_poll_start(&p->handle, (readable ? UV_READABLE : 0) |
                                  (writable ? UV_WRITABLE : 0), on_poll);
}

static up_dns_result *result_from_ares(int status, const unsigned char *abuf,
                                       int alen, const dns_entry *e)
{
    switch (status) {
    case ARES_SUCCESS:
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
        if (abuf && alen > 0)
            return up_dns_parse(abuf, (size_t)alen, e->type, e->name);
        return up_dns_result_status(e->type, e->name,
                                    status == ARES_ENOTFOUND
                                        ? UPESI_DNS_NXDOMAIN
                                        : UPESI_DNS_NODATA,
                                    UP_DNS_DEFAULT_NEG_TTL);
    case ARES_ETIMEOUT:
        return up_dns_result_status(e->type, e->name, UPESI_DNS_TIMEOUT, 0);
    default:
        return up_dns_result_status(e->type, e->name, UPESI_DNS_ERROR, 0);
    }
}

static void count_result(const up_dns_result *r)
{
    if (r->answer.status == UPESI_DNS_TIMEOUT)
        up_stats_add("Upesi.DNS.Timeouts", 1);
    else if (r->answer.status == UPESI_DNS_ERROR)
        up_stats_add("Upesi.DNS.Errors", 1);
}

static void on_answer(void *arg, int status, int timeouts,
                      unsigned char *abuf, int alen)
{
    (void)timeouts;
    dns_request *rq = arg;
    dns_channel *ch = rq->ch;
    dl_del(&rq->link);
    ch->active--;
    R.pending--;
    if (rq->entry) {
        dns_entry *e = rq->entry;
        rq->entry = NULL;
        up_dns_result *res = or_oom(result_from_ares(status, abuf, alen, e));
        if (status != ARES_SUCCESS && status != ARES_ENODATA &&
            status != ARES_ENOTFOUND)
            up_log(NULL, UPESI_LOG_DEBUG, "dns: %s type %d: %s", e->name,
                   e->type, ares_strerror(status));
        count_result(res);
        entry_complete(e, res);
    }
    free(rq);
    if (ch->retired && ch->active == 0 && !ch->destroying)
        uv_idle_start(&R.idle, on_idle);  /* the check phase destroys it */
}

static void on_deadline(uv_timer_t *timer)
{
    dns_channel *ch = timer->data;
    uint64_t now = uv_now(R.loop);
    while (!dl_empty(&ch->requests)) {
        dns_request *rq = dl_item(ch->requests.next, dns_request, link);
        if (rq->deadline > now) {
            uv_timer_start(timer, on_deadline, rq->deadline - now, 0);
            return;
        }
        dl_del(&rq->link);
        if (rq->entry) {
            dns_entry *e = rq->entry;
            rq->entry = NULL;
            up_dns_result *res = or_oom(
                up_dns_result_status(e->type, e->name, UPESI_DNS_TIMEOUT, 0));
            count_result(res);
            entry_complete(e, res);
        }
    }
}

static void request_start(dns_entry *e)
{
    dns_channel *ch = R.current;
    dns_request *rq = calloc(1, sizeof *rq);
    if (rq == NULL) {
        entry_complete(e, up_dns_result_ref(&oom_result));
        return;
    }
    rq->ch = ch;
    rq->entry = e;
    rq->deadline = uv_now(R.loop) + ch->timeout_ms;
    e->req = rq;
    dl_add(&ch->requests, &rq->link);
    if (!uv_is_active((uv_handle_t *)&ch->deadline_timer))
        uv_timer_start(&ch->deadline_timer, on_deadline, ch->timeout_ms, 0);
    ch->active++;
    R.pending++;
    up_stats_add("Upesi.DNS.Queries", 1);
    /* may answer at once (and free e): touch neither after */
    ares_query(ch->ares, e->name, 1 /* C_IN */, e->type, on_answer, rq);
    if (!uv_is_active((uv_handle_t *)&ch->ares_timer))
        ares_timer_update(ch);
}

static void channel_closed(uv_handle_t *handle)
{
    dns_channel *ch = handle->data;
    if (--ch->handles_open == 0) {
        free(ch->servers);
        free(ch);
    }
}

static dns_channel *channel_new(const up_dns_settings *st)
{
    dns_channel *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return NULL;
    dl_init(&ch->polls);
    dl_init(&ch->requests);
    dl_init(&ch->link);
    double ms = st->timeout > 0 ? st->timeout * 1000 : 5000;
    ch->timeout_ms = ms < 1 ? 1 : (uint64_t)ms;
    /* two tries: the second at a third of the deadline, waiting twice as
     * long (c-ares doubles each round), so c-ares gives up about when our
     * own deadline answers TIMEOUT.  Fewer retransmissions keep a silent
     * server with thousands of lookups from costing bursts of sends. */
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = ch;
    o.timeout = (int)(ch->timeout_ms / 3 ? ch->timeout_ms / 3 : 1);
    o.tries = 2;
    int rc = ares_init_options(&ch->ares, &o, ARES_OPT_SOCK_STATE_CB |
                                                  ARES_OPT_TIMEOUTMS |
                                                  ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        up_log(NULL, UPESI_LOG_ERR, "dns: cannot start c-ares: %s",
               ares_strerror(rc));
        free(ch);
        return NULL;
    }
    if (st->servers && *st->servers) {
        rc = ares_set_servers_ports_csv(ch->ares, st->servers);
        if (rc != ARES_SUCCESS) {
            up_log(NULL, UPESI_LOG_ERR, "dns: dns_servers '%s': %s",
                   st->servers, ares_strerror(rc));
            ares_destroy(ch->ares);
            free(ch);
            return NULL;
        }
        ch->servers = strdup(st->servers);
    }
    uv_timer_init(R.loop, &ch->ares_timer);
    uv_timer_init(R.loop, &ch->deadline_timer);
    ch->ares_timer.data = ch->deadline_timer.data = ch;
    dl_add(&R.channels, &ch->link);
    return ch;
}

static void channel_destroy(dns_channel *ch)
{
    ch->destroying = 1;
    dl_del(&ch->link);
    /* pending queries end with ARES_EDESTRUCTION; sockets close through
     * sock_state */
    ares_destroy(ch->ares);
    while (!dl_empty(&ch->polls)) {
        dns_poll *p = dl_item(ch->polls.next, dns_poll, link);
        dl_del(&p->link);
        uv_close((uv_handle_t *)&p->handle, poll_closed);
    }
    ch->handles_open = 2;
    uv_close((uv_handle_t *)&ch->ares_timer, channel_closed);
    uv_close((uv_handle_t *)&ch->deadline_timer, channel_closed);
}

/* ---------------------------------------------------------------------- */
/* sessions                                                                */

static size_t session_bucket(const void *key)
{
    uintptr_t k = (uintptr_t)key;
    return (size_t)((k >> 4) ^ (k >> 16)) & (SESSION_BUCKETS - 1);
}

static dns_session *session_find(void *key)
{
    for (dns_session *s = R.sessions[session_bucket(key)]; s; s = s->hnext)
        if (s->key == key)
            return s;
    return NULL;
}

static dns_session *session_get(void *key)
{
    dns_session *s = session_find(key);
    if (s || key == NULL)
        return s;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->key = key;
    dl_init(&s->queries);
    dl_init(&s->rev_waiters);
    size_t b = session_bucket(key);
    s->hnext = R.sessions[b];
    R.sessions[b] = s;
    return s;
}

void up_dns_session_end(void *key)
{
    dns_session *s = session_find(key);
    if (s == NULL)
        return;
    dns_session **pp = &R.sessions[session_bucket(key)];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    while (!dl_empty(&s->queries)) {
        upesi_dns_query *q = dl_item(s->queries.next, upesi_dns_query, slink);
        query_free(q);
    }
    up_dns_result_unref(s->rev_result);
    for (size_t i = 0; i < s->rev_n; i++)
        free(s->rev[i].name);
    free(s);
}

/* ---------------------------------------------------------------------- */
/* lookups                                                                 */

static upesi_dns_query *query_new(dns_session *sess, upesi_dns_fn fn,
                                  void *arg)
{
    upesi_dns_query *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    dl_init(&q->link);
    dl_init(&q->slink);
    q->fn = fn;
    q->arg = arg;
    q->sess = sess;
    if (sess)
        dl_add(&sess->queries, &q->slink);
    return q;
}

static int type_ok(int type)
{
    return type == UPESI_DNS_A || type == UPESI_DNS_AAAA ||
           type == UPESI_DNS_TXT || type == UPESI_DNS_MX ||
           type == UPESI_DNS_PTR;
}

upesi_dns_query *up_dns_lookup(void *session, int type, const char *name,
                               upesi_dns_fn fn, void *arg)
{
    char norm[256], arpa[80];
    if (!R.started || fn == NULL || name == NULL || !type_ok(type))
        return NULL;
    if (type == UPESI_DNS_PTR && up_dns_ip_name(name, NULL, arpa,
                                                sizeof arpa) == 0)
        name = arpa;
    if (up_dns_name_normalize(name, norm, sizeof norm) != 0)
        return NULL;
    dns_session *sess = session_get(session);
    if (session && sess == NULL)
        return NULL;
    upesi_dns_query *q = query_new(sess, fn, arg);
    if (q == NULL)
        return NULL;
    up_stats_add("Upesi.DNS.Lookups", 1);
    uint32_t hash = entry_hash(type, norm);
    /* no cache: every lookup is its own query, none shared */
    dns_entry *e = R.cache_size ? entry_find(type, norm, hash) : NULL;
    if (e && e->result) {
        uint64_t now = uv_now(R.loop);
        if (e->expires > now) {
            up_stats_add("Upesi.DNS.CacheHits", 1);
            dl_del(&e->lru);
            dl_add(&R.lru, &e->lru);
            ready_push(q, up_dns_result_ref(e->result),
                       (uint32_t)((e->expires - now + 999) / 1000));
            return q;
        }
        entry_free(e);
        e = NULL;
    }
    if (e) {                    /* in flight: wait with the others */
        q->entry = e;
        dl_add(&e->waiters, &q->link);
        return q;
    }
    e = entry_new(type, norm, hash);
    if (e == NULL) {
        query_free(q);
        return NULL;
    }
    q->entry = e;
    dl_add(&e->waiters, &q->link);
    request_start(e);
    return q;
}

void up_dns_cancel(upesi_dns_query *q)
{
    /* a callback that cancels its own query: it is freed after return */
    if (q == NULL || q->in_callback)
        return;
    query_free(q);
}

size_t up_dns_pending(void)
{
    return R.pending;
}

/* -- the client's name: PTR, then forward-confirmed */

static void reverse_finish(dns_session *s, upesi_dns_status status,
                           const char *name)
{
    upesi_dns_record rec = { name, 0 };
    uint32_t ttl = status == UPESI_DNS_OK || status == UPESI_DNS_NXDOMAIN
                       ? s->rev_ttl : 0;
    up_dns_result *r = or_oom(up_dns_result_new(UPESI_DNS_PTR, s->arpa,
                                                status, ttl, &rec,
                                                name ? 1 : 0));
    s->rev_state = 2;
    s->rev_result = r;
    while (!dl_empty(&s->rev_waiters)) {
        upesi_dns_query *q = dl_item(s->rev_waiters.next, upesi_dns_query,
                                     link);
        dl_del(&q->link);
        ready_push(q, up_dns_result_ref(r), ttl);
    }
}

static void reverse_decide(dns_session *s)
{
    upesi_dns_status failed = UPESI_DNS_OK;
    for (size_t i = 0; i < s->rev_n; i++) {
        rev_slot *slot = &s->rev[i];
        if (!slot->done)
            return;
    }
    for (size_t i = 0; i < s->rev_n; i++) {
        rev_slot *slot = &s->rev[i];
        if (slot->confirmed) {
            if (s->rev_ttl > slot->ttl)
                s->rev_ttl = slot->ttl;
            reverse_finish(s, UPESI_DNS_OK, slot->name);
            return;
        }
        if ((slot->status == UPESI_DNS_TIMEOUT ||
             slot->status == UPESI_DNS_ERROR) && failed == UPESI_DNS_OK)
            failed = slot->status;
    }
    reverse_finish(s, failed != UPESI_DNS_OK ? failed : UPESI_DNS_NXDOMAIN,
                   NULL);
}

static int same_address(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1)
        return inet_pton(AF_INET, b, y) == 1 && !memcmp(x, y, 4);
    if (inet_pton(AF_INET6, a, x) == 1)
        return inet_pton(AF_INET6, b, y) == 1 && !memcmp(x, y, 16);
    return 0;
}

static void reverse_on_forward(const upesi_dns_answer *a, void *arg)
{
    rev_slot *slot = arg;
    dns_session *s = slot->sess;
    slot->q = NULL;
    slot->done = 1;
    slot->status = a->status;
    slot->ttl = a->ttl;
    for (size_t i = 0; a->status == UPESI_DNS_OK && i < a->count; i++)
        if (same_address(a->records[i].text, s->ip))
            slot->confirmed = 1;
    reverse_decide(s);
}

static void reverse_on_ptr(const upesi_dns_answer *a, void *arg)
{
    dns_session *s = arg;
    s->rev_ptr = NULL;
    s->rev_ttl = a->ttl;
    if (a->status != UPESI_DNS_OK) {
        reverse_finish(s, a->status == UPESI_DNS_NODATA ? UPESI_DNS_NXDOMAIN
                                                        : a->status, NULL);
        return;
    }
    int v6 = strchr(s->ip, ':') != NULL;
    for (size_t i = 0; i < a->count && s->rev_n < UP_DNS_REVERSE_NAMES;
         i++) {
        rev_slot *slot = &s->rev[s->rev_n];
        memset(slot, 0, sizeof *slot);
        slot->sess = s;
        if ((slot->name = strdup(a->records[i].text)) == NULL)
            continue;
        s->rev_n++;
    }
    for (size_t i = 0; i < s->rev_n; i++) {
        rev_slot *slot = &s->rev[i];
        slot->q = up_dns_lookup(s->key, v6 ? UPESI_DNS_AAAA : UPESI_DNS_A,
                                slot->name, reverse_on_forward, slot);
        if (slot->q == NULL) {  /* not a name we can look up */
            slot->done = 1;
            slot->status = UPESI_DNS_NXDOMAIN;
        }
    }
    reverse_decide(s);
}

upesi_dns_query *up_dns_reverse(void *session, const char *ip,
                                upesi_dns_fn fn, void *arg)
{
    if (!R.started || session == NULL || ip == NULL || fn == NULL)
        return NULL;
    dns_session *s = session_get(session);
    if (s == NULL)
        return NULL;
    upesi_dns_query *q = query_new(s, fn, arg);
    if (q == NULL)
        return NULL;
    if (s->rev_state == 2) {
        ready_push(q, up_dns_result_ref(s->rev_result), s->rev_result->answer.ttl);
        return q;
    }
    dl_add(&s->rev_waiters, &q->link);
    if (s->rev_state == 1)
        return q;
    s->rev_state = 1;
    snprintf(s->ip, sizeof s->ip, "%s", ip);
    if (!strncasecmp(s->ip, "::ffff:", 7) && strchr(s->ip, '.'))
        memmove(s->ip, s->ip + 7, strlen(s->ip + 7) + 1);
    if (up_dns_ip_name(s->ip, NULL, s->arpa, sizeof s->arpa) != 0) {
        snprintf(s->arpa, sizeof s->arpa, "%s", "invalid");
        reverse_finish(s, UPESI_DNS_ERROR, NULL);
        return q;
    }
    s->rev_ptr = up_dns_lookup(session, UPESI_DNS_PTR, s->arpa,
                               reverse_on_ptr, s);
    if (s->rev_ptr == NULL)
        reverse_finish(s, UPESI_DNS_ERROR, NULL);
    return q;
}

/* ---------------------------------------------------------------------- */
/* settings                                                                */

int up_dns_server_item(const char *item, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    char host[64];
    const char *port = NULL;
    unsigned char a[16];
    if (item[0] == '[') {
        const char *close = strchr(item, ']');
        if (close == NULL || (size_t)(close - item - 1) >= sizeof host ||
            (close[1] != '\0' && close[1] != ':')) {
            snprintf(err, errlen, "'%s': expected [IPv6]:port", item);
            return -1;
        }
        memcpy(host, item + 1, (size_t)(close - item - 1));
        host[close - item - 1] = '\0';
        if (close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = strchr(item, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL;       /* a bare IPv6 address */
        size_t hl = colon ? (size_t)(colon - item) : strlen(item);
        if (hl >= sizeof host) {
            snprintf(err, errlen, "'%s' is not an IP address", item);
            return -1;
        }
        memcpy(host, item, hl);
        host[hl] = '\0';
        if (colon)
            port = colon + 1;
    }
    int v6 = inet_pton(AF_INET6, host, a) == 1;
    if (!v6 && inet_pton(AF_INET, host, a) != 1) {
        snprintf(err, errlen, "'%s' is not an IP address (dns_servers takes "
                 "addresses, not names)", host);
        return -1;
    }
    long p = 53;
    if (port) {
        char *end;
        p = strtol(port, &end, 10);
        if (end == port || *end || p < 1 || p > 65535) {
            snprintf(err, errlen, "'%s': bad port '%s'", item, port);
            return -1;
        }
    }
    int n = v6 ? snprintf(out, outlen, "[%s]:%ld", host, p)
               : snprintf(out, outlen, "%s:%ld", host, p);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "'%s': too long", item);
        return -1;
    }
    return 0;
}

static int same_string(const char *a, const char *b)
{
    return (a == NULL || *a == '\0') ? (b == NULL || *b == '\0')
                                     : (b != NULL && !strcmp(a, b));
}

int up_dns_init(uv_loop_t *loop, const up_dns_settings *st)
{
    if (R.started)
        return up_dns_configure(st);
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        up_log(NULL, UPESI_LOG_ERR, "dns: c-ares: %s", ares_strerror(rc));
        return -1;
    }
    R.loop = loop;
    dl_init(&R.ready);
    dl_init(&R.channels);
    dl_init(&R.lru);
    R.cache_size = st->cache_size;
    if ((R.current = channel_new(st)) == NULL) {
        ares_library_cleanup();
        return -1;
    }
    uv_check_init(loop, &R.check);
    uv_check_start(&R.check, on_check);
    uv_unref((uv_handle_t *)&R.check);
    uv_idle_init(loop, &R.idle);
    R.started = 1;
    return 0;
}

int up_dns_configure(const up_dns_settings *st)
{
    if (!R.started)
        return -1;
    dns_channel *cur = R.current;
    double ms = st->timeout > 0 ? st->timeout * 1000 : 5000;
    int servers_changed = !same_string(cur->servers, st->servers);
    if (servers_changed || (uint64_t)(ms < 1 ? 1 : ms) != cur->timeout_ms) {
        dns_channel *ch = channel_new(st);
        if (ch == NULL)
            return -1;
        R.current = ch;
        cur->retired = 1;
        uv_idle_start(&R.idle, on_idle);    /* check destroys it if idle */
    }
    R.cache_size = st->cache_size;
    cache_trim(servers_changed ? 0 : R.cache_size);
    return 0;
}

void up_dns_shutdown(void)
{
    if (!R.started)
        return;
    R.cache_size = 0;
    /* every channel's queries end now (their entries get ERROR) */
    while (!dl_empty(&R.channels))
        channel_destroy(dl_item(R.channels.next, dns_channel, link));
    while (!dl_empty(&R.ready))
        query_free(dl_item(R.ready.next, upesi_dns_query, link));
    for (size_t b = 0; b < SESSION_BUCKETS; b++)
        while (R.sessions[b])
            up_dns_session_end(R.sessions[b]->key);
    cache_trim(0);
    free(R.buckets);
    R.buckets = NULL;
    R.nbuckets = R.nentries = 0;
    uv_close((uv_handle_t *)&R.check, NULL);
    uv_close((uv_handle_t *)&R.idle, NULL);
    ares_library_cleanup();
    R.started = 0;
}
