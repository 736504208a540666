/*
 * bridge_kv.c - upesi.kv: a key-value store with expiry, backed by the
 * host's store (docs/store.md): shared by every worker of the host (lmdb)
 * and by every host of a fleet (redis), kept across reloads and restarts.
 * Keys live under "lua:" in the store.
 *
 *   upesi.kv.get(key)               value, or nil
 *   upesi.kv.set(key, value[, ttl]) true.  value: string, number, boolean;
 *                                   nil deletes.  ttl in seconds, none =
 *                                   never expires (set replaces the ttl)
 *   upesi.kv.incr(key[, by[, ttl]]) add a whole number (default 1) and
 *                                   return the new value; a new key starts
 *                                   at 0; a key without an expiry takes
 *                                   ttl, one with an expiry keeps it (a
 *                                   fixed window)
 *   upesi.kv.del(key)               true if it was there
 *   upesi.kv.ttl(key)               seconds left, -1 = never, nil = absent
 *   upesi.kv.expire(key, ttl)       true if the key exists
 *   upesi.kv.count()                live keys under lua: (lmdb only)
 *
 * Every call waits for the store like a DNS lookup: the coroutine yields
 * and the worker serves other sessions meanwhile.  A call the store cannot
 * answer (down, timed out, full) returns nil and an error string, Lua's
 * convention; with lua.ini store_failure = tempfail the handler is stopped
 * there instead and the client gets 451 4.3.0.
 *
 * How values are stored, so that Redis's INCRBY works on counters and a
 * value reads back with its type: a whole number as its decimal text
 * ("42"); anything else with a type letter in front: "s" + the string,
 * "n" + a number that is not whole ("n1.5"), "b1" / "b0".  A value some
 * other program wrote without a letter reads back as a string.
 *
 * Fails: a bad key or value, incr of a value that is not a whole number,
 * a call where nothing may wait (top level, reset, disconnect) raise a Lua
 * error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "../plugins/common/store_failure.h"

#define KV_VALUE_MAX (64 * 1024)

enum { KV_GET = 1, KV_SET, KV_INCR, KV_DEL, KV_TTL, KV_EXPIRE, KV_COUNT };

static const char *const kv_names[] = {
    [KV_GET] = "upesi.kv.get",   [KV_SET] = "upesi.kv.set",
    [KV_INCR] = "upesi.kv.incr", [KV_DEL] = "upesi.kv.del",
    [KV_TTL] = "upesi.kv.ttl",   [KV_EXPIRE] = "upesi.kv.expire",
    [KV_COUNT] = "upesi.kv.count",
};

static const char *check_key(lua_State *S)
{
    size_t klen;
    const char *key = luaL_checklstring(S, 1, &klen);
    if (klen == 0 || klen > UPESI_STORE_KEY_MAX || strlen(key) != klen)
        luaL_error(S, "upesi.kv: keys are 1 to %d bytes, without NUL",
                   UPESI_STORE_KEY_MAX);
    return key;
}

/* ttl at idx in ms: 0 = none */
static long long check_ttl(lua_State *S, int idx)
{
    if (lua_isnoneornil(S, idx))
        return 0;
    lua_Number ttl = luaL_checknumber(S, idx);
    if (!(ttl > 0 && ttl < 1e9))
        luaL_error(S, "upesi.kv: ttl is a number of seconds above 0");
    long long ms = (long long)(ttl * 1000 + 0.5);
    return ms ? ms : 1;
}

/* a stored value, as the Lua value it was */
static void push_decoded(lua_State *S, const char *data, size_t len)
{
    long long n;
    char *end;
    if (len && len < 24 && (data[0] == '-' || (data[0] >= '0' &&
                                                 data[0] <= '9'))) {
        errno = 0;
        n = strtoll(data, &end, 10);
        if (!errno && end == data + len) {
            lua_pushinteger(S, (lua_Integer)n);
            return;
        }
    }
    if (len >= 1 && data[0] == 's') {
        lua_pushlstring(S, data + 1, len - 1);
    } else if (len == 2 && data[0] == 'b' && (data[1] == '0' ||
                                               data[1] == '1')) {
        lua_pushboolean(S, data[1] == '1');
    } else if (len >= 2 && data[0] == 'n') {
        double d = strtod(data + 1, &end);
        if (end == data + len)
            lua_pushnumber(S, d);
        else
            lua_pushlstring(S, data, len);
    } else {
        lua_pushlstring(S, data, len);  /* written by someone else */
    }
}

/* the value at idx, encoded into a Lua buffer left on the stack */
static void push_encoded(lua_State *S, int idx)
{
    int t = lua_type(S, idx);
    if (t == LUA_TNUMBER && lua_isinteger(S, idx)) {
        lua_pushfstring(S, "%I", (LUAI_UACINT)lua_tointeger(S, idx));
    } else if (t == LUA_TNUMBER) {
        char buf[40];
        snprintf(buf, sizeof buf, "n%.17g", (double)lua_tonumber(S, idx));
        lua_pushstring(S, buf);
    } else if (t == LUA_TBOOLEAN) {
        lua_pushstring(S, lua_toboolean(S, idx) ? "b1" : "b0");
    } else if (t == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(S, idx, &len);
        if (len > KV_VALUE_MAX)
            luaL_error(S, "upesi.kv: values are at most %d bytes",
                       KV_VALUE_MAX);
        luaL_Buffer b;
        luaL_buffinit(S, &b);
        luaL_addchar(&b, 's');
        luaL_addlstring(&b, s, len);
        luaL_pushresult(&b);
    } else {
        luaL_error(S, "upesi.kv: values are strings, numbers or booleans, "
                   "not %s", lua_typename(S, t));
    }
}

static const char *status_text(int status)
{
    switch (status) {
    case -ETIMEDOUT:
        return "store: timed out";
    case -ECONNREFUSED:
        return "store: unavailable";
    case -ENOSPC:
        return "store: full";
    case -ENOTSUP:
        return "store: not supported by this backend";
    default:
        return "store: error";
    }
}

/* The store's answer into the results table: [1] the value, or .err (a
 * failure the script sees) or .raise (the script's own mistake). */
static void kv_answered(const upesi_store_result *res, void *arg)
{
    luab_wait *w = arg;
    luab_run *r = w->run;
    lua_State *M = luab_plugin_state();
    w->store = NULL;
    lua_rawgeti(M, LUA_REGISTRYINDEX, r->results_ref);
    if (res->status == -EINVAL) {
        lua_pushstring(M, w->type == KV_INCR
                              ? "upesi.kv.incr: the value is not a whole "
                                "number"
                              : "upesi.kv: refused by the store");
        lua_setfield(M, -2, "raise");
    } else if (res->status != 0) {
        lua_pushstring(M, status_text(res->status));
        lua_setfield(M, -2, "err");
        if (res->status != -ENOTSUP &&
            store_failure_note(luab_host, luab_ctx, r->call,
                               r->gen->store_failure,
                               res->status, "Lua.Store.Failures",
                               kv_names[w->type]) !=
                UPESI_CONT)
            r->store_tempfail = 1;
    } else {
        const upesi_store_value *v = &res->values[0];
        switch (w->type) {
        case KV_GET:
            if (v->found)
                push_decoded(M, v->data, v->len);
            else
                lua_pushnil(M);
            break;
        case KV_SET:
            lua_pushboolean(M, 1);
            break;
        case KV_INCR:
            lua_pushinteger(M, (lua_Integer)v->num);
            break;
        case KV_DEL:
        case KV_EXPIRE:
            lua_pushboolean(M, v->found);
            break;
        case KV_TTL:
            if (!v->found)
                lua_pushnil(M);
            else if (v->num < 0)
                lua_pushinteger(M, -1);
            else
                lua_pushnumber(M, (lua_Number)v->num / 1000.0);
            break;
        case KV_COUNT:
            lua_pushinteger(M, (lua_Integer)v->num);
            break;
        }
        lua_rawseti(M, -2, 1);
    }
    lua_pop(M, 1);
    luab_wait_done(w);
}

/* value  or  nil, error */
static int k_kv(lua_State *S, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    int t = lua_gettop(S);
    if (!lua_istable(S, t))
        return luaL_error(S, "upesi.kv: resumed without an answer");
    if (lua_getfield(S, t, "raise") == LUA_TSTRING)
        return lua_error(S);
    lua_pop(S, 1);
    if (lua_getfield(S, t, "err") == LUA_TSTRING) {
        lua_pushnil(S);
        lua_insert(S, -2);
        return 2;
    }
    lua_pop(S, 1);
    lua_rawgeti(S, t, 1);
    return 1;
}

/* Start the store call `start` made for wait w, then yield. */
static int kv_wait(lua_State *S, luab_run *r, luab_wait *w, int type,
                   upesi_store_op *op)
{
    w->type = type;
    w->store = op;
    if (op == NULL) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, r->results_ref);
        lua_pushstring(S, "store: cannot start the call");
        lua_setfield(S, -2, "err");
        lua_pop(S, 1);
    } else {
        r->outstanding++;
    }
    return luab_wait_yield(S, r, k_kv);
}

static int kv_get(lua_State *S)
{
    const char *key = check_key(S);
    luab_run *r = luab_wait_check(S, kv_names[KV_GET]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_GET,
                   luab_host->store_get(luab_ctx, key, kv_answered, w));
}

static int kv_set(lua_State *S)
{
    const char *key = check_key(S);
    long long ttl = check_ttl(S, 3);
    if (lua_isnoneornil(S, 2)) {
        luab_run *r = luab_wait_check(S, kv_names[KV_DEL]);
        luab_wait *w = luab_wait_begin(S, r, 1);
        return kv_wait(S, r, w, KV_DEL,
                       luab_host->store_del(luab_ctx, key, kv_answered, w));
    }
    push_encoded(S, 2);
    size_t len;
    const char *data = lua_tolstring(S, -1, &len);
    luab_run *r = luab_wait_check(S, kv_names[KV_SET]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_SET,
                   luab_host->store_set(luab_ctx, key, data, len, ttl,
                                       kv_answered, w));
}

static int kv_incr(lua_State *S)
{
    const char *key = check_key(S);
    lua_Integer by = luaL_optinteger(S, 2, 1);
    long long ttl = check_ttl(S, 3);
    luab_run *r = luab_wait_check(S, kv_names[KV_INCR]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_INCR,
                   luab_host->store_incr(luab_ctx, key, (long long)by, ttl,
                                        kv_answered, w));
}

static int kv_del(lua_State *S)
{
    const char *key = check_key(S);
    luab_run *r = luab_wait_check(S, kv_names[KV_DEL]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_DEL,
                   luab_host->store_del(luab_ctx, key, kv_answered, w));
}

static int kv_ttl(lua_State *S)
{
    const char *key = check_key(S);
    luab_run *r = luab_wait_check(S, kv_names[KV_TTL]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_TTL,
                   luab_host->store_ttl(luab_ctx, key, kv_answered, w));
}

static int kv_expire(lua_State *S)
{
    const char *key = check_key(S);
    long long ttl = check_ttl(S, 2);
    luab_run *r = luab_wait_check(S, kv_names[KV_EXPIRE]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_EXPIRE,
                   luab_host->store_expire(luab_ctx, key, ttl, kv_answered,
                                          w));
}

static int kv_count(lua_State *S)
{
    luab_run *r = luab_wait_check(S, kv_names[KV_COUNT]);
    luab_wait *w = luab_wait_begin(S, r, 1);
    return kv_wait(S, r, w, KV_COUNT,
                   luab_host->store_count(luab_ctx, kv_answered, w));
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
