/*
 * bridge.h - internals shared by the files of the lua plugin (lua.so).
 *
 *   bridge_plugin.c   descriptor, lua.ini, script generations, the hook
 *                     calls (one coroutine each), budgets, waiting and
 *                     cancelling
 *   bridge_api.c      the `upesi` table scripts see: verdicts, upesi.hook,
 *                     conn, txn, log, stat, time
 *   bridge_wait.c     what waits: upesi.dns.*, conn:reverse_name, upesi.sleep
 *   bridge_kv.c       upesi.kv: the key-value store with expiry, backed by
 *                     the host's store (shared by workers and hosts)
 *   bridge_sandbox.c  the globals a script sees (no io, os, debug, package,
 *                     bytecode, files)
 *
 * Names: the bridge's own symbols are luab_* (lua_* and LUA_* belong to
 * Lua itself).
 *
 * One lua_State per worker process: init creates it in the supervisor and
 * every worker inherits its own copy at fork.  Each configuration
 * generation compiles its scripts into that state (new environments, new
 * handler references); config_free drops them.  Only one Lua call runs at
 * a time (the loop is single-threaded), and `luab_current` is that call.
 */
#ifndef UPESI_LUA_BRIDGE_H
#define UPESI_LUA_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "upesi/plugin.h"

#define LUAB_PLUGIN_NAME "lua"

extern const upesi_api *luab_host;
extern upesi_ctx *luab_ctx;           /* also the store's key prefix "lua:" */

/* One handler a script registered with upesi.hook. */
typedef struct luab_handler {
    int fn_ref;                 /* registry reference to the function     */
    const char *script;         /* the script's name, owned by the gen    */
} luab_handler;

/* One generation of lua.ini and its compiled scripts. */
typedef struct luab_gen {
    char **scripts;             /* as written in lua.ini                  */
    char **paths;               /* absolute                               */
    size_t n_scripts;
    long long max_instructions;
    uint64_t max_memory;        /* SIZE in the settings table */
    int store_failure;          /* STORE_FAILURE_*                        */
    int loaded;                 /* config_check compiled the scripts      */
    int env_refs_n;
    int *env_refs;              /* one environment per script             */
    luab_handler *handlers[UPESI_HOOK_COUNT];
    size_t n_handlers[UPESI_HOOK_COUNT];
} luab_gen;

/* Why a run was stopped. */
enum { LUAB_RUN_ALIVE = 0, LUAB_RUN_OVER_INSTRUCTIONS, LUAB_RUN_OVER_MEMORY };

/* What a suspended coroutine waits for. */
typedef struct luab_wait {
    struct luab_run *run;
    int slot;                   /* 1-based index in the results table     */
    int type;                   /* upesi_dns_type, 0 for the sleep timer  */
    upesi_dns_query *query;
    upesi_timer *timer;
    upesi_store_op *store;      /* upesi.kv                               */
} luab_wait;

/* One hook call of the plugin (or one script's top level at load). */
typedef struct luab_run {
    upesi_call *call;           /* NULL while a script loads              */
    luab_gen *gen;
    upesi_hook hook;
    size_t next;                /* handler running (index)                */
    const char *script;         /* the script of that handler             */
    lua_State *co;              /* the coroutine                          */
    int co_ref;
    long long used;             /* instructions so far (whole call)       */
    long long step;             /* the count hook fires every step        */
    int killed;                 /* LUAB_RUN_*                              */
    int pending;                /* returned UPESI_PENDING to the host     */
    /* async waits: one batch at a time */
    luab_wait *waits;
    int n_waits, outstanding;
    int results_ref;            /* registry: the results table            */
    int store_tempfail;         /* a kv call failed, store_failure =
                                   tempfail: stop with 451 at the wake   */
} luab_run;

/* The call running now (NULL between calls). */
extern luab_run *luab_current;

/* bridge_plugin.c */
lua_State *luab_plugin_state(void);
/* the call running now, or a Lua error naming `what` */
luab_run *luab_need_call(lua_State *S, const char *what);
/* the hook's name (the host's), "(top level)" outside a hook */
const char *luab_hook_name(upesi_hook hook);
/* a batch of waits is complete: resume the coroutine with its results */
void luab_run_wake(luab_run *run);

/* bridge_api.c */
void luab_api_open(lua_State *L, int sandbox);
/* the script being loaded registers its handlers here */
void luab_api_set_loading(luab_gen *gen, const char *script);
/* push the hook's arguments (conn, txn, subject) on co; returns how many */
int luab_api_push_args(lua_State *co, luab_run *run);

/* bridge_wait.c */
void luab_wait_open_dns(lua_State *S);
int luab_wait_reverse_name(lua_State *S);
int luab_wait_sleep(lua_State *S);
/* cancel whatever run waits for (timers, DNS queries, store calls) */
void luab_wait_cancel(luab_run *run);
/* for the other waiting functions (bridge_kv.c): the run that may wait
 * (else a Lua error naming what), a batch of n waits with an empty
 * results table, one wait answered, and the yield (k gets the results
 * table on top of the stack) */
luab_run *luab_wait_check(lua_State *S, const char *what);
luab_wait *luab_wait_begin(lua_State *S, luab_run *r, int n);
void luab_wait_done(luab_wait *w);
int luab_wait_yield(lua_State *S, luab_run *r, lua_KFunction k);

/* bridge_kv.c */
void luab_kv_open(lua_State *L, int upesi_table);

/* bridge_sandbox.c: builds the shared, read-mostly globals table and leaves
 * it on the stack */
void luab_sandbox_build(lua_State *L);
/* replace the table on top of the stack by a read-only view of it */
void luab_sandbox_readonly(lua_State *L);
/* a fresh environment for one script (its globals), on the stack */
void luab_sandbox_env(lua_State *L, int sandbox_ref);

#endif
