/*
 * bridge_kv.c - upesi.kv: a key-value store with expiry, one per worker
 * process, shared by every script and kept across SIGHUP reloads (what
 * greylisting and rate limits remember).
 *
 *   upesi.kv.get(key)               value, or nil
 *   upesi.kv.set(key, value[, ttl]) value: string, number, boolean; nil
 *                                   deletes.  ttl in seconds, none =
 *                                   never expires (set replaces the ttl)
 *   upesi.kv.incr(key[, by[, ttl]]) add (default 1) and return the new
 *                                   value; a new key starts at 0 and
 *                                   takes ttl, an existing one keeps its
 *                                   own (a fixed window)
 *   upesi.kv.del(key)               true if it was there
 *   upesi.kv.ttl(key)               seconds left, -1 = never, nil = absent
 *   upesi.kv.expire(key, ttl)       true if the key exists
 *   upesi.kv.count()                live keys
 *
 * The store lives outside the Lua heap (malloc), so it does not count
 * against max_memory; lua.ini kv_max_keys bounds it instead.  When full,
 * expired keys are swept, then the oldest written key goes.  Expiry uses
 * the monotonic clock: a change of the wall clock expires nothing.
 *
 * Fails: a bad key or value raises a Lua error; out of memory too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"

#define KV_KEY_MAX 1024
#define KV_VALUE_MAX (64 * 1024)

typedef struct kv_entry {
    struct kv_entry *hnext;         /* hash chain                         */
    struct kv_entry *older, *newer; /* write order                        */
    double expires;                 /* monotonic seconds, 0 = never       */
    int type;                       /* LUA_TNUMBER, LUA_TSTRING, LUA_TBOOLEAN */
    int isint;
    lua_Integer i;
    lua_Number n;
    char *str;
    size_t slen;
    size_t klen;
    char key[];
} kv_entry;

static kv_entry **buckets;
static size_t n_buckets, n_keys, max_keys = 100000;
static kv_entry *oldest, *newest;

void luab_kv_set_max(size_t max)
{
    max_keys = max ? max : 1;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t kv_hash(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ULL;    /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void order_unlink(kv_entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        newest = e->older;
    e->older = e->newer = NULL;
}

static void order_append(kv_entry *e)
{
    e->older = newest;
    e->newer = NULL;
    if (newest)
        newest->newer = e;
    else
        oldest = e;
    newest = e;
}

static void kv_remove(kv_entry *e)
{
    kv_entry **p = &buckets[kv_hash(e->key, e->klen) & (n_buckets - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    order_unlink(e);
    free(e->str);
    free(e);
    n_keys--;
}

static kv_entry *kv_find(const char *key, size_t klen)
{
    if (n_buckets == 0)
        return NULL;
    kv_entry *e = buckets[kv_hash(key, klen) & (n_buckets - 1)];
    for (; e; e = e->hnext)
        if (e->klen == klen && !memcmp(e->key, key, klen))
            break;
    if (e && e->expires && e->expires <= now_mono()) {
        kv_remove(e);
        return NULL;
    }
    return e;
}

static void kv_sweep(void)
{
    double now = now_mono();
    for (kv_entry *e = oldest, *next; e; e = next) {
        next = e->newer;
        if (e->expires && e->expires <= now)
            kv_remove(e);
    }
}

static int kv_grow(void)
{
    size_t nb = n_buckets ? n_buckets * 2 : 1024;
    kv_entry **nbk = calloc(nb, sizeof *nbk);
    if (nbk == NULL)
        return -1;
    for (size_t i = 0; i < n_buckets; i++) {
        for (kv_entry *e = buckets[i], *next; e; e = next) {
            next = e->hnext;
            size_t b = kv_hash(e->key, e->klen) & (nb - 1);
            e->hnext = nbk[b];
            nbk[b] = e;
        }
    }
    free(buckets);
    buckets = nbk;
    n_buckets = nb;
    return 0;
}

/* luaL_error does not return (it longjmps), but is not declared so. */
static _Noreturn void kv_oom(lua_State *S)
{
    luaL_error(S, "upesi.kv: out of memory");
    abort();                        /* not reached */
}

/* A new, empty entry for key (the caller knows it is absent). */
static kv_entry *kv_create(lua_State *S, const char *key, size_t klen)
{
    if (n_keys >= max_keys)
        kv_sweep();
    while (n_keys >= max_keys && oldest)
        kv_remove(oldest);
    if (n_keys + 1 > n_buckets && kv_grow() != 0)
        kv_oom(S);
    kv_entry *e = calloc(1, sizeof *e + klen + 1);
    if (e == NULL)
        kv_oom(S);
    memcpy(e->key, key, klen);
    e->klen = klen;
    size_t b = kv_hash(key, klen) & (n_buckets - 1);
    e->hnext = buckets[b];
    buckets[b] = e;
    order_append(e);
    n_keys++;
    return e;
}

static const char *check_key(lua_State *S, size_t *klen)
{
    const char *key = luaL_checklstring(S, 1, klen);
    if (*klen == 0 || *klen > KV_KEY_MAX)
        luaL_error(S, "upesi.kv: keys are 1 to %d bytes", KV_KEY_MAX);
    return key;
}

/* ttl at idx: 0 = none; otherwise an absolute monotonic time */
static double check_ttl(lua_State *S, int idx)
{
    if (lua_isnoneornil(S, idx))
        return 0;
    lua_Number ttl = luaL_checknumber(S, idx);
    if (!(ttl > 0 && ttl < 1e9))
        luaL_error(S, "upesi.kv: ttl is a number of seconds above 0");
    return now_mono() + ttl;
}

static void push_value(lua_State *S, const kv_entry *e)
{
    switch (e->type) {
    case LUA_TSTRING:
        lua_pushlstring(S, e->str, e->slen);
        break;
    case LUA_TBOOLEAN:
        lua_pushboolean(S, (int)e->i);
        break;
    default:
        if (e->isint)
            lua_pushinteger(S, e->i);
        else
            lua_pushnumber(S, e->n);
    }
}

static int kv_get(lua_State *S)
{
    size_t klen;
    const char *key = check_key(S, &klen);
    kv_entry *e = kv_find(key, klen);
    if (e == NULL)
        lua_pushnil(S);
    else
        push_value(S, e);
    return 1;
}

static int kv_set(lua_State *S)
{
    size_t klen, slen = 0;
    const char *key = check_key(S, &klen);
    int t = lua_type(S, 2);
    double expires = check_ttl(S, 3);
    if (t == LUA_TNIL || t == LUA_TNONE) {
        kv_entry *e = kv_find(key, klen);
        if (e)
            kv_remove(e);
        return 0;
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        return luaL_error(S, "upesi.kv: values are strings, numbers or "
                          "booleans, not %s", lua_typename(S, t));
    const char *value = NULL;
    if (t == LUA_TSTRING) {
        value = lua_tolstring(S, 2, &slen);
        if (slen > KV_VALUE_MAX)
            return luaL_error(S, "upesi.kv: values are at most %d bytes",
                              KV_VALUE_MAX);
    }
    /* the entry first: kv_create raises a Lua error on out of memory,
     * which must not leave a value copy behind */
    kv_entry *e = kv_find(key, klen);
    int created = 0;
    if (e) {
        order_unlink(e);
        order_append(e);
    } else {
        e = kv_create(S, key, klen);
        created = 1;
    }
    char *copy = NULL;
    if (value) {
        copy = malloc(slen + 1);
        if (copy == NULL) {
            if (created)
                kv_remove(e);
            return luaL_error(S, "upesi.kv: out of memory");
        }
        memcpy(copy, value, slen);
        copy[slen] = '\0';
    }
    free(e->str);
    e->str = copy;
    e->slen = slen;
    e->type = t;
    e->expires = expires;
    if (t == LUA_TBOOLEAN) {
        e->i = lua_toboolean(S, 2);
    } else if (t == LUA_TNUMBER) {
        e->isint = lua_isinteger(S, 2);
        e->i = lua_tointeger(S, 2);
        e->n = lua_tonumber(S, 2);
    }
    lua_pushboolean(S, 1);
    return 1;
}

static int kv_incr(lua_State *S)
{
    size_t klen;
    const char *key = check_key(S, &klen);
    lua_settop(S, 3);
    if (lua_isnil(S, 2)) {
        lua_pushinteger(S, 1);
        lua_replace(S, 2);
    } else {
        luaL_checknumber(S, 2);
    }
    int by_int = lua_isinteger(S, 2);
    double expires = check_ttl(S, 3);
    kv_entry *e = kv_find(key, klen);
    if (e && e->type != LUA_TNUMBER)
        return luaL_error(S, "upesi.kv.incr: '%s' holds a %s", key,
                          lua_typename(S, e->type));
    if (e == NULL) {
        e = kv_create(S, key, klen);
        e->type = LUA_TNUMBER;
        e->isint = 1;
        e->expires = expires;
    }
    if (e->isint && by_int) {
        e->i += lua_tointeger(S, 2);
        e->n = (lua_Number)e->i;
    } else {
        e->n = (e->isint ? (lua_Number)e->i : e->n) + lua_tonumber(S, 2);
        e->isint = 0;
    }
    push_value(S, e);
    return 1;
}

static int kv_del(lua_State *S)
{
    size_t klen;
    const char *key = check_key(S, &klen);
    kv_entry *e = kv_find(key, klen);
    if (e)
        kv_remove(e);
    lua_pushboolean(S, e != NULL);
    return 1;
}

static int kv_ttl(lua_State *S)
{
    size_t klen;
    const char *key = check_key(S, &klen);
    kv_entry *e = kv_find(key, klen);
    if (e == NULL)
        lua_pushnil(S);
    else if (e->expires == 0)
        lua_pushinteger(S, -1);
    else
        lua_pushnumber(S, e->expires - now_mono());
    return 1;
}

static int kv_expire(lua_State *S)
{
    size_t klen;
    const char *key = check_key(S, &klen);
    double expires = check_ttl(S, 2);
    kv_entry *e = kv_find(key, klen);
    if (e)
        e->expires = expires;
    lua_pushboolean(S, e != NULL);
    return 1;
}

static int kv_count(lua_State *S)
{
    kv_sweep();
    lua_pushinteger(S, (lua_Integer)n_keys);
    return 1;
}

void luab_kv_open(lua_State *S, int upesi_table)
{
    static const luaL_Reg fns[] = {
        { "get", kv_get },       { "set", kv_set },
        { "incr", kv_incr },     { "del", kv_del },
        { "ttl", kv_ttl },       { "expire", kv_expire },
        { "count", kv_count },   { NULL, NULL },
    };
    luaL_newlib(S, fns);
    lua_setfield(S, upesi_table, "kv");
}

void luab_kv_free_all(void)
{
    while (oldest)
        kv_remove(oldest);
    free(buckets);
    buckets = NULL;
    n_buckets = 0;
}
