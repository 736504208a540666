/*
 * store_url.c - the smtp.ini `store` setting: which backend, where
 * (docs/store.md).
 *
 *   lmdb:PATH                                    relative: under spool_dir
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]   PORT 6379, DB 0
 *   redis+unix://[[USER]:PASSWORD@]/PATH[?db=N]
 *
 * A password with '@', ':' or '/' is written percent-encoded (%40 ...).
 * Fails: -1 with a message naming what is wrong (the caller adds file and
 * line).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* percent-decode src[0..len) into out (size cap); -1 when bad or long */
static int url_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)src[i + 1]) ||
                !isxdigit((unsigned char)src[i + 2]))
                return -1;
            char hex[3] = { src[i + 1], src[i + 2], '\0' };
            c = (char)strtol(hex, NULL, 16);
            i += 2;
            if (c == '\0')
                return -1;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_db(const char *s, int *db)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 0 || v > 65535)
        return -1;
    *db = (int)v;
    return 0;
}

/* "[[USER]:PASSWORD@]" at *p: consumed when present */
static int parse_userinfo(const char **p, up_store_url *u, char *err,
                          size_t errlen)
{
    const char *at = strchr(*p, '@');
    if (at == NULL)
        return 0;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    if (colon == NULL) {
        snprintf(err, errlen, "a Redis password is written ':PASSWORD@' "
                 "(or 'USER:PASSWORD@')");
        return -1;
    }
    if (url_decode(*p, (size_t)(colon - *p), u->user, sizeof u->user) ||
        url_decode(colon + 1, (size_t)(at - colon - 1), u->password,
                   sizeof u->password) || u->password[0] == '\0') {
        snprintf(err, errlen, "the Redis user or password is empty, too "
                 "long or badly %%-encoded");
        return -1;
    }
    *p = at + 1;
    return 0;
}

static int parse_redis_tcp(const char *p, up_store_url *u, char *err,
                           size_t errlen)
{
    if (parse_userinfo(&p, u, err, errlen))
        return -1;
    const char *slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    const char *hend = p + hlen, *port = NULL;
    if (*p == '[') {                    /* [::1]:6379 */
        const char *rb = memchr(p, ']', hlen);
        if (rb == NULL) {
            snprintf(err, errlen, "an IPv6 address is written [ADDR]:PORT");
            return -1;
        }
        if (rb + 1 < hend && rb[1] == ':')
            port = rb + 2;
        else if (rb + 1 != hend) {
            snprintf(err, errlen, "junk after ']' in the Redis address");
            return -1;
        }
        if ((size_t)(rb - p - 1) >= sizeof u->host || rb == p + 1) {
            snprintf(err, errlen, "bad Redis host");
            return -1;
        }
        memcpy(u->host, p + 1, (size_t)(rb - p - 1));
        u->host[rb - p - 1] = '\0';
    } else {
        const char *colon = memchr(p, ':', hlen);
        size_t n = colon ? (size_t)(colon - p) : hlen;
        if (n == 0 || n >= sizeof u->host) {
            snprintf(err, errlen, "no Redis host (redis://HOST:PORT/DB)");
            return -1;
        }
        memcpy(u->host, p, n);
        u->host[n] = '\0';
        if (colon)
            port = colon + 1;
    }
    u->port = 6379;
    if (port) {
        char buf[8];
        size_t n = (size_t)(hend - port);
        char *end;
        if (n == 0 || n >= sizeof buf) {
            snprintf(err, errlen, "bad Redis port");
            return -1;
        }
        memcpy(buf, port, n);
        buf[n] = '\0';
        long v = strtol(buf, &end, 10);
        if (*end || v < 1 || v > 65535) {
            snprintf(err, errlen, "bad Redis port '%s'", buf);
            return -1;
        }
        u->port = (int)v;
    }
    if (slash && slash[1] && parse_db(slash + 1, &u->db)) {
        snprintf(err, errlen, "bad Redis database '%s' (a number from 0)",
                 slash + 1);
        return -1;
    }
    return 0;
}

static int parse_redis_unix(const char *p, up_store_url *u, char *err,
                            size_t errlen)
{
    if (parse_userinfo(&p, u, err, errlen))
        return -1;
    if (*p != '/') {
        snprintf(err, errlen, "redis+unix:// needs an absolute socket path "
                 "(redis+unix:///run/redis/redis.sock)");
        return -1;
    }
    const char *q = strchr(p, '?');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n >= sizeof u->path || n >= 108) {   /* sun_path */
        snprintf(err, errlen, "the Redis socket path is too long");
        return -1;
    }
    memcpy(u->path, p, n);
    u->path[n] = '\0';
    if (q && (strncmp(q, "?db=", 4) || parse_db(q + 4, &u->db))) {
        snprintf(err, errlen, "after the socket path only ?db=N may follow");
        return -1;
    }
    return 0;
}

int up_store_url_parse(const char *value, up_store_url *out, char *err,
                       size_t errlen)
{
    up_store_url u;
    memset(&u, 0, sizeof u);
    int rc;
    if (!strncmp(value, "lmdb:", 5)) {
        u.kind = UP_STORE_LMDB;
        const char *path = value + 5;
        if (path[0] == '\0' || strlen(path) >= sizeof u.path - 256) {
            snprintf(err, errlen, "lmdb: needs a directory (lmdb:store)");
            return -1;
        }
        strcpy(u.path, path);
        rc = 0;
    } else if (!strncmp(value, "redis://", 8)) {
        u.kind = UP_STORE_REDIS;
        rc = parse_redis_tcp(value + 8, &u, err, errlen);
    } else if (!strncmp(value, "redis+unix://", 13)) {
        u.kind = UP_STORE_REDIS;
        rc = parse_redis_unix(value + 13, &u, err, errlen);
    } else {
        snprintf(err, errlen, "'%s' is not a store (lmdb:PATH, "
                 "redis://HOST:PORT/DB, redis+unix:///PATH)", value);
        return -1;
    }
    if (rc == 0)
        *out = u;
    return rc;
}

void up_store_url_text(const up_store_url *u, char *out, size_t len)
{
    if (u->kind == UP_STORE_LMDB)
        snprintf(out, len, "lmdb:%s", u->path);
    else if (u->path[0])
        snprintf(out, len, "redis+unix://%s?db=%d", u->path, u->db);
    else if (strchr(u->host, ':'))
        snprintf(out, len, "redis://[%s]:%d/%d", u->host, u->port, u->db);
    else
        snprintf(out, len, "redis://%s:%d/%d", u->host, u->port, u->db);
}
