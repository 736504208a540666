/*
 * bridge_sandbox.c - what a script can reach (docs/lua.md, "Sandbox").
 *
 * A script runs with its own globals table whose misses fall through to
 * one shared sandbox table.  The sandbox has the safe part of the base
 * library, string (without dump), table, math, utf8, coroutine and an os
 * with clock, time, date and difftime only.  Not there: io, the rest of
 * os, debug, package/require, dofile, loadfile, string.dump.  load takes
 * text only (mode "t": bytecode can crash the VM) and gives the chunk a
 * fresh globals table unless it is handed one.  setmetatable refuses
 * __gc (a finalizer would run outside any budget), collectgarbage only
 * counts, and coroutine.resume/close refuse the coroutines of hook calls.
 *
 * The shared tables (string, table, upesi ...) are read-only views, so
 * one script cannot change them under another.
 */
#include <string.h>

#include "bridge.h"

static lua_CFunction orig_load, orig_resume, orig_close;

static int ro_newindex(lua_State *L)
{
    return luaL_error(L, "cannot change a shared table (field '%s')",
                      luaL_tolstring(L, 2, NULL));
}

/* next over the real table, which is its upvalue: the iterator a script
 * gets from pairs neither hands the real table out (it could be changed)
 * nor trusts its first argument (a script can call it with anything) */
static int ro_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    if (lua_next(L, 3))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs over the view walks the real table */
static int ro_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, ro_next, 1);
    lua_pushvalue(L, 1);                /* the view is the state */
    lua_pushnil(L);
    return 3;
}

/* a read-only view: its metatable's __newindex is ro_newindex */
static int is_readonly_view(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_getfield(L, -1, "__newindex");
    int yes = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 2);
    return yes;
}

/* rawset, but not into a shared table's view (it would shadow the real
 * field for every script) */
static int sb_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (is_readonly_view(L, 1))
        return luaL_error(L, "cannot change a shared table (rawset)");
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

void luab_sandbox_readonly(lua_State *L)
{
    lua_newtable(L);                    /* t proxy */
    lua_createtable(L, 0, 4);           /* t proxy mt */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* setmetatable without finalizers */
static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc is not allowed in "
                              "scripts");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* load(chunk [, name [, mode [, env]]]): text only, own globals */
static int sb_load(lua_State *L)
{
    int has_env = !lua_isnone(L, 4);
    lua_settop(L, 4);
    if (!lua_isnil(L, 3) && strcmp(luaL_checkstring(L, 3), "t") != 0 &&
        strcmp(lua_tostring(L, 3), "bt") != 0)
        return luaL_error(L, "load: only text chunks (mode \"t\")");
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (!has_env) {
        lua_newtable(L);
        lua_newtable(L);
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_setfield(L, -2, "__index");
        lua_pushboolean(L, 0);          /* the sandbox stays out of reach */
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_replace(L, 4);
    }
    return orig_load(L);
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only \"count\" in scripts");
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) +
                          (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024);
    return 1;
}

static int is_hook_thread(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    if (co == NULL)
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, "upesi.threads");
    lua_pushvalue(L, 1);
    int yes = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return yes;
}

static int sb_resume(lua_State *L)
{
    if (is_hook_thread(L))
        return luaL_error(L, "coroutine.resume: not a hook call's "
                          "coroutine");
    return orig_resume(L);
}

static int sb_close(lua_State *L)
{
    if (is_hook_thread(L))
        return luaL_error(L, "coroutine.close: not a hook call's "
                          "coroutine");
    return orig_close(L);
}

/* copy t[names] from the table at src into the table on top */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, -2, *names);
    }
}

void luab_sandbox_build(lua_State *L)
{
    static const char *const base[] = {
        "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
        "rawget", "rawlen", "select", "tonumber", "tostring",
        "type", "xpcall", "getmetatable", "_VERSION", NULL,
    };
    static const char *const os_ok[] = { "clock", "time", "date",
                                         "difftime", NULL };
    lua_pushglobaltable(L);
    int g = lua_gettop(L);

    /* string.dump is gone from the real table too: ("").dump reaches it */
    lua_getfield(L, g, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_pushliteral(L, "");             /* hide the string metatable */
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L);                    /* the sandbox */
    int sb = lua_gettop(L);
    copy_fields(L, g, base);
    lua_pushcfunction(L, sb_setmetatable);
    lua_setfield(L, sb, "setmetatable");
    lua_pushcfunction(L, sb_collectgarbage);
    lua_setfield(L, sb, "collectgarbage");
    lua_pushcfunction(L, sb_rawset);
    lua_setfield(L, sb, "rawset");
    lua_getfield(L, g, "load");
    orig_load = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, sb);
    lua_pushcclosure(L, sb_load, 1);
    lua_setfield(L, sb, "load");

    static const char *const libs[] = { "string", "table", "math", "utf8",
                                        NULL };
    for (const char *const *lib = libs; *lib; lib++) {
        lua_getfield(L, g, *lib);
        luab_sandbox_readonly(L);
        lua_setfield(L, sb, *lib);
    }

    lua_getfield(L, g, "coroutine");    /* a copy with guarded resume */
    int co = lua_gettop(L);
    lua_newtable(L);
    static const char *const co_ok[] = { "create", "isyieldable", "running",
                                         "status", "wrap", "yield", NULL };
    copy_fields(L, co, co_ok);
    lua_getfield(L, co, "resume");
    orig_resume = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, co, "close");
    orig_close = lua_tocfunction(L, -1);
    lua_pop(L, 1);
    lua_pushcfunction(L, sb_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, sb_close);
    lua_setfield(L, -2, "close");
    luab_sandbox_readonly(L);
    lua_setfield(L, sb, "coroutine");
    lua_pop(L, 1);

    lua_getfield(L, g, "os");
    int os = lua_gettop(L);
    lua_newtable(L);
    copy_fields(L, os, os_ok);
    luab_sandbox_readonly(L);
    lua_setfield(L, sb, "os");
    lua_pop(L, 1);

    lua_remove(L, g);                   /* leave the sandbox on top */
}

void luab_sandbox_env(lua_State *L, int sandbox_ref)
{
    lua_newtable(L);
    lua_createtable(L, 0, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sandbox_ref);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}
