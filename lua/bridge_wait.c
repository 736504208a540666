/*
 * bridge_wait.c - the upesi functions that wait (docs/lua.md, "DNS",
 * "Waiting"): upesi.dns.a/aaaa/txt/mx/ptr/lookup/batch, conn:reverse_name()
 * and upesi.sleep; and upesi.dns.ip_name, which does not.
 *
 * Each starts its work through the host (api->dns_lookup, reverse_name,
 * timer_start) as a batch of waits on the call's run, then yields the
 * call's coroutine with a continuation.  Every answer lands in a results
 * table (a registry reference); when the last one is in, luab_run_wake
 * resumes the coroutine with the table and the continuation turns it into
 * the function's return values.  If the host abandons the call first,
 * luab_wait_cancel cancels the queries and the timer: no callback runs for
 * a run that is gone.
 *
 * Only the handler's own coroutine may wait (S == run->co, yieldable), and
 * never in reset or disconnect, which cannot wait: those are Lua errors.
 * A query the host refuses (a bad name, a closing session) is answered at
 * once with status "error" instead of waiting.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bridge.h"

static const struct {
    const char *name;
    int type;
} dns_types[] = {
    { "a", UPESI_DNS_A },     { "aaaa", UPESI_DNS_AAAA },
    { "txt", UPESI_DNS_TXT }, { "mx", UPESI_DNS_MX },
    { "ptr", UPESI_DNS_PTR },
};

static const char *dns_type_name(int type)
{
    for (size_t i = 0; i < sizeof dns_types / sizeof *dns_types; i++)
        if (dns_types[i].type == type)
            return dns_types[i].name;
    return "?";
}

static int dns_type_of(lua_State *S, int idx)
{
    const char *t = luaL_checkstring(S, idx);
    for (size_t i = 0; i < sizeof dns_types / sizeof *dns_types; i++)
        if (!strcasecmp(t, dns_types[i].name))
            return dns_types[i].type;
    return luaL_error(S, "upesi.dns: unknown type '%s' (a, aaaa, txt, mx, "
                      "ptr)", t);
}

static const char *const dns_status_names[] = {
    [UPESI_DNS_OK] = "ok", [UPESI_DNS_NODATA] = "nodata",
    [UPESI_DNS_NXDOMAIN] = "nxdomain", [UPESI_DNS_TIMEOUT] = "timeout",
    [UPESI_DNS_ERROR] = "error",
};

/* { status=, name=, type=, ttl=, records={...} } on S */
static void push_answer(lua_State *S, const upesi_dns_answer *a, int type)
{
    lua_createtable(S, 0, 5);
    unsigned st = (unsigned)a->status;
    lua_pushstring(S, st < sizeof dns_status_names / sizeof *dns_status_names
                          ? dns_status_names[st] : "error");
    lua_setfield(S, -2, "status");
    lua_pushstring(S, a->name ? a->name : "");
    lua_setfield(S, -2, "name");
    lua_pushstring(S, dns_type_name(type));
    lua_setfield(S, -2, "type");
    lua_pushinteger(S, (lua_Integer)a->ttl);
    lua_setfield(S, -2, "ttl");
    lua_createtable(S, (int)a->count, 0);
    /* MX: by preference (insertion sort over a few records, stable) */
    size_t order[64], n = a->count < 64 ? a->count : 64;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && type == UPESI_DNS_MX &&
               a->records[order[j - 1]].preference > a->records[i].preference) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (size_t i = 0; i < n; i++) {
        const upesi_dns_record *rec = &a->records[order[i]];
        if (type == UPESI_DNS_MX) {
            lua_createtable(S, 0, 2);
            lua_pushstring(S, rec->text);
            lua_setfield(S, -2, "exchange");
            lua_pushinteger(S, rec->preference);
            lua_setfield(S, -2, "preference");
        } else {
            lua_pushstring(S, rec->text);
        }
        lua_rawseti(S, -2, (lua_Integer)i + 1);
    }
    lua_setfield(S, -2, "records");
}

static void push_failed(lua_State *S, const char *name, int type)
{
    upesi_dns_answer a = { .status = UPESI_DNS_ERROR, .type = type,
                           .name = name };
    push_answer(S, &a, type);
}

luab_run *luab_wait_check(lua_State *S, const char *what)
{
    luab_run *r = luab_need_call(S, what);
    if (r->hook == UPESI_HOOK_RESET || r->hook == UPESI_HOOK_DISCONNECT)
        luaL_error(S, "%s: the %s hook cannot wait", what,
                   luab_hook_name(r->hook));
    if (S != r->co)
        luaL_error(S, "%s: only in the handler's own coroutine (not inside "
                   "coroutine.create/wrap)", what);
    if (!lua_isyieldable(S))
        luaL_error(S, "%s: cannot wait here (inside a metamethod or a C "
                   "function such as table.sort or string.gsub)", what);
    return r;
}

/* A batch of n waits with an empty results table. */
static void waits_end(luab_run *r);

luab_wait *luab_wait_begin(lua_State *S, luab_run *r, int n)
{
    /* a batch that failed to start (an error caught by the script) may
     * have queries in flight: cancelled, or they would answer into the
     * freed batch */
    luab_wait_cancel(r);
    luab_wait *w = calloc((size_t)n, sizeof *w);
    if (w == NULL) {
        luaL_error(S, "out of memory");
        return NULL;
    }
    lua_createtable(S, n, 0);
    r->results_ref = luaL_ref(S, LUA_REGISTRYINDEX);
    r->waits = w;
    r->n_waits = n;
    r->outstanding = 0;
    for (int i = 0; i < n; i++) {
        w[i].run = r;
        w[i].slot = i + 1;
    }
    return w;
}

static void waits_end(luab_run *r)
{
    free(r->waits);
    r->waits = NULL;
    r->n_waits = 0;
    r->outstanding = 0;
    if (r->results_ref != LUA_NOREF)
        luaL_unref(luab_plugin_state(), LUA_REGISTRYINDEX, r->results_ref);
    r->results_ref = LUA_NOREF;
}

void luab_wait_cancel(luab_run *r)
{
    for (int i = 0; i < r->n_waits; i++) {
        if (r->waits[i].query)
            luab_host->dns_cancel(r->waits[i].query);
        if (r->waits[i].timer)
            luab_host->timer_stop(r->waits[i].timer);
        if (r->waits[i].store)
            luab_host->store_cancel(r->waits[i].store);
        r->waits[i].store = NULL;
        r->waits[i].query = NULL;
        r->waits[i].timer = NULL;
    }
    waits_end(r);
}

void luab_wait_done(luab_wait *w)
{
    luab_run *r = w->run;
    if (--r->outstanding == 0)
        luab_run_wake(r);        /* may free r and w */
}

static void dns_answered(const upesi_dns_answer *a, void *arg)
{
    luab_wait *w = arg;
    lua_State *M = luab_plugin_state();
    w->query = NULL;
    lua_rawgeti(M, LUA_REGISTRYINDEX, w->run->results_ref);
    push_answer(M, a, w->type);
    lua_rawseti(M, -2, w->slot);
    lua_pop(M, 1);
    luab_wait_done(w);
}

/* Yield until the batch is answered, or, if nothing is outstanding, hand
 * the results straight to k. */
int luab_wait_yield(lua_State *S, luab_run *r, lua_KFunction k)
{
    if (r->outstanding == 0) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, r->results_ref);
        waits_end(r);
        return k(S, LUA_OK, 0);
    }
    return lua_yieldk(S, 0, 0, k);
}

/* Start one lookup as wait w (the results slot is filled at once when
 * the host refuses the query). */
static void dns_start(lua_State *S, luab_run *r, luab_wait *w, int type,
                      const char *name)
{
    w->type = type;
    w->query = luab_host->dns_lookup(luab_ctx, r->call, type, name, dns_answered, w);
    if (w->query) {
        r->outstanding++;
        return;
    }
    lua_rawgeti(S, LUA_REGISTRYINDEX, r->results_ref);
    push_failed(S, name, type);
    lua_rawseti(S, -2, w->slot);
    lua_pop(S, 1);
}

static int results_table(lua_State *S)
{
    if (!lua_istable(S, -1))
        return luaL_error(S, "upesi.dns: resumed without an answer");
    return lua_gettop(S);
}

/* records, ttl  or  nil, status */
static int k_dns_single(lua_State *S, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    int t = results_table(S);
    lua_rawgeti(S, t, 1);
    lua_getfield(S, -1, "status");
    if (!strcmp(lua_tostring(S, -1), "ok")) {
        lua_getfield(S, -2, "records");
        lua_getfield(S, -3, "ttl");
        return 2;
    }
    lua_pushnil(S);
    lua_insert(S, -2);
    return 2;
}

static int k_dns_batch(lua_State *S, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    results_table(S);
    return 1;
}

/* upesi.dns.a(name) etc.: the type is the upvalue */
static int l_dns_typed(lua_State *S)
{
    int type = (int)lua_tointeger(S, lua_upvalueindex(1));
    const char *name = luaL_checkstring(S, 1);
    luab_run *r = luab_wait_check(S, "upesi.dns");
    luab_wait *w = luab_wait_begin(S, r, 1);
    dns_start(S, r, w, type, name);
    return luab_wait_yield(S, r, k_dns_single);
}

/* upesi.dns.lookup(type, name) */
static int l_dns_lookup(lua_State *S)
{
    int type = dns_type_of(S, 1);
    const char *name = luaL_checkstring(S, 2);
    luab_run *r = luab_wait_check(S, "upesi.dns");
    luab_wait *w = luab_wait_begin(S, r, 1);
    dns_start(S, r, w, type, name);
    return luab_wait_yield(S, r, k_dns_single);
}

/* upesi.dns.batch{ {"a", name}, {type="txt", name=...}, ... }: all at
 * once; a list of answers in the same order */
static int l_dns_batch(lua_State *S)
{
    luaL_checktype(S, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(S, 1);
    if (n < 1 || n > 256)
        return luaL_error(S, "upesi.dns.batch: 1 to 256 queries, not %d",
                          (int)n);
    /* check every item before anything starts */
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(S, 1, i) != LUA_TTABLE)
            return luaL_error(S, "upesi.dns.batch: item %d is not a table",
                              (int)i);
        if (lua_getfield(S, -1, "type") == LUA_TNIL) {
            lua_pop(S, 1);
            lua_rawgeti(S, -1, 1);
        }
        dns_type_of(S, -1);
        if (lua_getfield(S, -2, "name") == LUA_TNIL) {
            lua_pop(S, 1);
            lua_rawgeti(S, -2, 2);
        }
        if (lua_type(S, -1) != LUA_TSTRING)
            return luaL_error(S, "upesi.dns.batch: item %d has no name",
                              (int)i);
        lua_pop(S, 3);
    }
    luab_run *r = luab_wait_check(S, "upesi.dns.batch");
    luab_wait *w = luab_wait_begin(S, r, (int)n);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(S, 1, i);
        if (lua_getfield(S, -1, "type") == LUA_TNIL) {
            lua_pop(S, 1);
            lua_rawgeti(S, -1, 1);
        }
        int type = dns_type_of(S, -1);
        if (lua_getfield(S, -2, "name") == LUA_TNIL) {
            lua_pop(S, 1);
            lua_rawgeti(S, -2, 2);
        }
        dns_start(S, r, &w[i - 1], type, lua_tostring(S, -1));
        lua_pop(S, 3);
    }
    return luab_wait_yield(S, r, k_dns_batch);
}

/* upesi.dns.ip_name(ip[, zone]): "7.2.0.192.zone" (no query) */
static int l_dns_ip_name(lua_State *S)
{
    const char *ip = luaL_checkstring(S, 1);
    const char *zone = luaL_optstring(S, 2, NULL);
    char out[512];
    if (luab_host->dns_ip_name(ip, zone, out, sizeof out) != 0) {
        lua_pushnil(S);
        return 1;
    }
    lua_pushstring(S, out);
    return 1;
}

/* conn:reverse_name(): the forward-confirmed name, or nil, status */
static int k_reverse(lua_State *S, int status, lua_KContext ctx)
{
    int n = k_dns_single(S, status, ctx);
    if (lua_isnil(S, -2))
        return n;
    lua_pop(S, 1);                      /* ttl */
    lua_rawgeti(S, -1, 1);
    return 1;
}

int luab_wait_reverse_name(lua_State *S)
{
    luab_run *r = luab_wait_check(S, "conn:reverse_name");
    luab_wait *w = luab_wait_begin(S, r, 1);
    w->type = UPESI_DNS_PTR;
    w->query = luab_host->reverse_name(r->call, dns_answered, w);
    if (w->query) {
        r->outstanding++;
    } else {
        lua_rawgeti(S, LUA_REGISTRYINDEX, r->results_ref);
        push_failed(S, "", UPESI_DNS_PTR);
        lua_rawseti(S, -2, 1);
        lua_pop(S, 1);
    }
    return luab_wait_yield(S, r, k_reverse);
}

static void slept(void *arg)
{
    luab_wait *w = arg;
    w->timer = NULL;
    luab_wait_done(w);
}

static int k_sleep(lua_State *S, int status, lua_KContext ctx)
{
    (void)S;
    (void)status;
    (void)ctx;
    return 0;
}

/* upesi.sleep(seconds): the client waits, the worker does not */
int luab_wait_sleep(lua_State *S)
{
    lua_Number secs = luaL_checknumber(S, 1);
    if (!(secs >= 0 && secs <= 3600))
        return luaL_error(S, "upesi.sleep: 0 to 3600 seconds");
    luab_run *r = luab_wait_check(S, "upesi.sleep");
    luab_wait *w = luab_wait_begin(S, r, 1);
    w->timer = luab_host->timer_start(luab_ctx, (uint64_t)(secs * 1000), slept, w);
    if (w->timer == NULL) {
        waits_end(r);
        return luaL_error(S, "upesi.sleep: no timer");
    }
    r->outstanding++;
    return luab_wait_yield(S, r, k_sleep);
}

/* The upesi.dns table, on the stack. */
void luab_wait_open_dns(lua_State *S)
{
    lua_newtable(S);
    for (size_t i = 0; i < sizeof dns_types / sizeof *dns_types; i++) {
        lua_pushinteger(S, dns_types[i].type);
        lua_pushcclosure(S, l_dns_typed, 1);
        lua_setfield(S, -2, dns_types[i].name);
    }
    lua_pushcfunction(S, l_dns_lookup);
    lua_setfield(S, -2, "lookup");
    lua_pushcfunction(S, l_dns_batch);
    lua_setfield(S, -2, "batch");
    lua_pushcfunction(S, l_dns_ip_name);
    lua_setfield(S, -2, "ip_name");
}
