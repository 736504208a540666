/*
 * bridge_plugin.c - the lua plugin: rules written in Lua 5.4 as hook handlers
 * (DESIGN.md section 8, docs/lua.md).
 *
 * lua.ini names the scripts (conf/lua/<name>) and the limits.  Each
 * configuration generation compiles the scripts (text only, never
 * bytecode) into the worker's one lua_State, each in its own environment,
 * and runs their top level, where they register handlers with upesi.hook.
 * A syntax error or a failing top level refuses the generation: at start
 * and at -t that is an error naming file:line; at SIGHUP the host keeps
 * the running generation.
 *
 * A hook call runs its handlers one after the other in one coroutine, so
 * a handler can wait (upesi.dns.*, upesi.sleep): the coroutine yields, the
 * plugin answers UPESI_PENDING, and the answer resumes the coroutine.  A
 * call the host gives up on (plugin_timeout, disconnect) cancels what the
 * coroutine waited for and drops the coroutine.
 *
 * Budgets: a count hook charges every call its instructions, and the
 * allocator refuses to grow the state past max_memory while a script
 * runs.  A script over either is stopped (a yield from the count hook,
 * which no pcall can catch), the client gets 451 4.3.0, the log a CRIT
 * line naming script and hook, and the worker goes on.
 *
 * Fails: a runtime error in a handler answers 451 4.3.0 and logs the error
 * with script:line; out of memory outside a script (host bookkeeping) is
 * Lua's panic, logged before the worker aborts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "../plugins/common/store_failure.h"

const upesi_api *luab_host;
upesi_ctx *luab_ctx;
luab_run *luab_current;

luab_run *luab_need_call(lua_State *S, const char *what)
{
    luab_run *r = luab_current;
    if (r == NULL || r->call == NULL) {
        luaL_error(S, "%s: only inside a hook handler", what);
        return NULL;
    }
    return r;
}

const char *luab_hook_name(upesi_hook hook)
{
    const char *name = luab_host->hook_name(hook);
    return name ? name : "(top level)";
}

static lua_State *L;
static int sandbox_ref = LUA_NOREF;

/* Defaults: a million instructions is ~10 ms of plain Lua; 64 MB covers
 * every generation's code and all waiting coroutines of a worker. */
#define LUAB_DEFAULT_INSTRUCTIONS 1000000LL
#define LUAB_DEFAULT_MEMORY (64u * 1024 * 1024)
#define LUAB_COUNT_STEP 1000
#define LUAB_THREAD_POOL 64

lua_State *luab_plugin_state(void)
{
    return L;
}

/* ---------------------------------------------------------------------- */
/* memory                                                                  */

static size_t mem_used;
static struct {                 /* the last refused request */
    const void *ptr;
    size_t osize, nsize;
    const luab_run *run;
} refused;

/* Grows past max_memory are refused only while a script runs; the host's
 * own bookkeeping between calls is never refused.  Lua retries a refused
 * request once after an emergency collection: a second refusal of the
 * same request means the script itself holds the memory, and stops it. */
static void *luab_plugin_alloc(void *ud, void *ptr, size_t osize,
                              size_t nsize)
{
    (void)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    luab_run *r = luab_current;
    if (nsize > old && r && r->gen && r->gen->max_memory &&
        mem_used - old + nsize > r->gen->max_memory) {
        if (refused.ptr == ptr && refused.osize == osize &&
            refused.nsize == nsize && refused.run == r)
            r->killed = r->killed ? r->killed : LUAB_RUN_OVER_MEMORY;
        refused.ptr = ptr;
        refused.osize = osize;
        refused.nsize = nsize;
        refused.run = r;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    mem_used = mem_used - old + nsize;
    return p;
}

static int luab_plugin_panic(lua_State *S)
{
    const char *msg = lua_tostring(S, -1);
    luab_host->log(luab_ctx, UPESI_LOG_CRIT, "unprotected error (%s); "
                  "aborting the worker", msg ? msg : "?");
    abort();
}

/* ---------------------------------------------------------------------- */
/* the instruction budget                                                  */

static void luab_count_hook(lua_State *T, lua_Debug *ar)
{
    (void)ar;
    luab_run *r = luab_current;
    if (r == NULL)
        return;
    if (!r->killed) {
        r->used += r->step;
        if (r->used > r->gen->max_instructions)
            r->killed = LUAB_RUN_OVER_INSTRUCTIONS;
    }
    if (!r->killed)
        return;
    /* From now on every instruction lands here: an error caught by a
     * pcall inside a non-yieldable C function gets nowhere, and at the
     * first yieldable point the coroutine leaves for good. */
    lua_sethook(T, luab_count_hook, LUA_MASKCOUNT, 1);
    if (T != r->co)
        lua_sethook(r->co, luab_count_hook, LUA_MASKCOUNT, 1);
    if (lua_isyieldable(T)) {
        lua_yield(T, 0);
        return;
    }
    luaL_error(T, "script stopped: over its budget");
}

/* ---------------------------------------------------------------------- */
/* coroutines                                                              */

static int pool_refs[LUAB_THREAD_POOL];
static lua_State *pool_threads[LUAB_THREAD_POOL];
static int pool_n;

static void run_thread_get(luab_run *r)
{
    if (pool_n > 0) {
        pool_n--;
        r->co = pool_threads[pool_n];
        r->co_ref = pool_refs[pool_n];
        return;
    }
    r->co = lua_newthread(L);
    r->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* mark it: the sandbox's coroutine.resume/close refuse hook threads */
    lua_getfield(L, LUA_REGISTRYINDEX, "upesi.threads");
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->co_ref);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* A coroutine that ended normally is reused; one that failed, was
 * stopped or still waits is dropped for the collector (never reset: that
 * would run its pending __close handlers outside any budget). */
static void run_thread_put(luab_run *r, int reusable)
{
    if (r->co == NULL)
        return;
    if (reusable && pool_n < LUAB_THREAD_POOL &&
        lua_status(r->co) == LUA_OK) {
        lua_settop(r->co, 0);
        pool_threads[pool_n] = r->co;
        pool_refs[pool_n++] = r->co_ref;
    } else {
        luaL_unref(L, LUA_REGISTRYINDEX, r->co_ref);
    }
    r->co = NULL;
    r->co_ref = LUA_NOREF;
}

static luab_run *run_new(upesi_call *call, luab_gen *g, upesi_hook hook)
{
    luab_run *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->call = call;
    r->gen = g;
    r->hook = hook;
    r->co_ref = LUA_NOREF;
    r->results_ref = LUA_NOREF;
    r->step = g->max_instructions < LUAB_COUNT_STEP ? g->max_instructions
                                                   : LUAB_COUNT_STEP;
    if (r->step < 1)
        r->step = 1;
    return r;
}

static void run_free(luab_run *r, int reusable)
{
    luab_wait_cancel(r);
    run_thread_put(r, reusable);
    free(r);
}

/* script:line of the innermost Lua function on co's stack, if any */
static void run_where(lua_State *co, char *out, size_t len)
{
    lua_Debug ar;
    out[0] = '\0';
    for (int level = 0; lua_getstack(co, level, &ar); level++) {
        if (!lua_getinfo(co, "Sl", &ar) || ar.currentline <= 0 ||
            ar.source[0] != '@')
            continue;
        snprintf(out, len, "%s:%d", ar.short_src, ar.currentline);
        return;
    }
}

static upesi_verdict run_failed(luab_run *r, int status)
{
    char where[256];
    run_where(r->co, where, sizeof where);
    const char *hook = luab_hook_name(r->hook);
    if (r->killed || status == LUA_ERRMEM) {
        int mem = r->killed == LUAB_RUN_OVER_MEMORY ||
                  (!r->killed && status == LUA_ERRMEM);
        if (mem)
            luab_host->log_call(r->call, UPESI_LOG_CRIT, "script %s, hook %s: "
                          "over max_memory (%llu bytes)%s%s; temporary "
                          "failure", r->script, hook,
                          (unsigned long long)r->gen->max_memory,
                          where[0] ? " at " : "", where);
        else
            luab_host->log_call(r->call, UPESI_LOG_CRIT, "script %s, hook %s: "
                          "over max_instructions (%lld)%s%s; temporary "
                          "failure", r->script, hook,
                          r->gen->max_instructions, where[0] ? " at " : "",
                          where);
        luab_host->stat_add(luab_ctx, mem ? "Lua.Stopped.Memory"
                               : "Lua.Stopped.Instructions", 1);
    } else {
        const char *msg;
        if (status == LUA_YIELD)
            msg = "coroutine.yield() from a handler (only upesi.dns.* and "
                  "upesi.sleep may wait)";
        else if (lua_type(r->co, -1) == LUA_TSTRING)
            msg = lua_tostring(r->co, -1);
        else
            msg = lua_pushfstring(r->co, "(error object is a %s value)",
                                  luaL_typename(r->co, -1));
        /* the message names script:line unless error() was told not to */
        if (where[0] && strncmp(msg, where, strlen(where)) != 0)
            luab_host->log_call(r->call, UPESI_LOG_ERR, "%s: %s (hook %s)",
                          where, msg, hook);
        else if (!where[0] && strncmp(msg, r->script, strlen(r->script)))
            luab_host->log_call(r->call, UPESI_LOG_ERR, "%s: %s (hook %s)",
                          r->script, msg, hook);
        else
            luab_host->log_call(r->call, UPESI_LOG_ERR, "%s (hook %s)", msg,
                          hook);
        luab_host->stat_add(luab_ctx, "Lua.Errors", 1);
    }
    luab_host->reply(r->call, 451, "4.3.0", "Temporary failure in a local "
                    "rule, try again later");
    return UPESI_DENYSOFT;
}

/* The results of a handler that returned: verdict[, text[, code[,
 * enhanced]]]. */
static upesi_verdict run_returned(luab_run *r, int nres)
{
    lua_State *co = r->co;
    int base = lua_gettop(co) - nres + 1;
    if (nres == 0 || lua_isnil(co, base))
        return UPESI_CONT;
    int isint = 0;
    lua_Integer v = lua_tointegerx(co, base, &isint);
    if (!isint || v < UPESI_CONT || v > UPESI_DENYSOFTDISCONNECT) {
        /* said without calling the value's own code: a __tostring would
         * run here outside the instruction budget and any pcall */
        char what[80];
        int t = lua_type(co, base);
        if (t == LUA_TNUMBER || t == LUA_TSTRING)
            snprintf(what, sizeof what, "%s%.60s%s",
                     t == LUA_TSTRING ? "\"" : "",
                     lua_tostring(co, base), t == LUA_TSTRING ? "\"" : "");
        else if (t == LUA_TBOOLEAN)
            snprintf(what, sizeof what, "%s",
                     lua_toboolean(co, base) ? "true" : "false");
        else
            snprintf(what, sizeof what, "a %s", luaL_typename(co, base));
        lua_pushfstring(co, "%s: the handler returned %s, not a verdict "
                        "(upesi.CONT, upesi.DENY ...)", r->script, what);
        return run_failed(r, LUA_ERRRUN);
    }
    if (v != UPESI_CONT) {
        const char *text = nres >= 2 ? lua_tostring(co, base + 1) : NULL;
        int code = nres >= 3 ? (int)lua_tointeger(co, base + 2) : 0;
        const char *enh = nres >= 4 ? lua_tostring(co, base + 3) : NULL;
        if (text || code || enh) {
            if (text)
                luab_host->reply(r->call, code, enh, "%s", text);
            else
                luab_host->reply(r->call, code, enh, NULL);
        }
    }
    return (upesi_verdict)v;
}

/* Run (or go on running) the call's handlers until one decides, all said
 * CONT, or one waits (UPESI_PENDING).  nargs: values on r->co to resume
 * it with (-1: start the handler r->next). */
static upesi_verdict run_steps(luab_run *r, int nargs)
{
    const luab_gen *g = r->gen;
    for (;;) {
        if (nargs < 0) {
            const luab_handler *h = &g->handlers[r->hook][r->next];
            r->script = h->script;
            if (r->co == NULL)
                run_thread_get(r);
            lua_sethook(r->co, luab_count_hook, LUA_MASKCOUNT, (int)r->step);
            lua_rawgeti(r->co, LUA_REGISTRYINDEX, h->fn_ref);
            nargs = luab_api_push_args(r->co, r);
        }
        int nres = 0;
        luab_current = r;
        int status = lua_resume(r->co, NULL, nargs, &nres);
        luab_current = NULL;
        upesi_verdict v;
        if (status == LUA_YIELD && !r->killed && r->outstanding > 0)
            return UPESI_PENDING;
        if (status == LUA_OK && !r->killed)
            v = run_returned(r, nres);
        else
            v = run_failed(r, status);
        if (r->killed)
            lua_gc(L, LUA_GCCOLLECT);
        if (v != UPESI_CONT || status != LUA_OK || r->killed) {
            run_thread_put(r, status == LUA_OK && !r->killed);
            return v;
        }
        lua_settop(r->co, 0);
        if (++r->next >= g->n_handlers[r->hook])
            return UPESI_CONT;
        nargs = -1;
    }
}

static void run_cancelled(upesi_call *call, void *arg)
{
    (void)call;
    luab_run *r = arg;
    luab_host->log_call(r->call, UPESI_LOG_INFO, "script %s, hook %s: call "
                  "abandoned while waiting; coroutine dropped", r->script,
                  luab_hook_name(r->hook));
    run_free(r, 0);
}

void luab_run_wake(luab_run *r)
{
    if (r->store_tempfail) {
        /* store_failure = tempfail: the handler does not go on without
         * the state it asked for (the reply is set already) */
        upesi_call *call = r->call;
        luab_host->log_call(call, UPESI_LOG_INFO, "script %s, hook %s: "
                            "stopped by a store failure (store_failure = "
                            "tempfail)", r->script, luab_hook_name(r->hook));
        run_free(r, 0);
        luab_host->resume(call, UPESI_DENYSOFT);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->results_ref);
    lua_xmove(L, r->co, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, r->results_ref);
    r->results_ref = LUA_NOREF;
    free(r->waits);
    r->waits = NULL;
    r->n_waits = 0;
    upesi_verdict v = run_steps(r, 1);
    if (v == UPESI_PENDING)
        return;
    upesi_call *call = r->call;
    run_free(r, 1);
    luab_host->resume(call, v);
}

static upesi_verdict luab_on_hook(upesi_call *call)
{
    luab_gen *g = luab_host->config(call);
    upesi_hook hook = luab_host->hook(call);
    if (g == NULL || (unsigned)hook >= UPESI_HOOK_COUNT ||
        g->n_handlers[hook] == 0)
        return UPESI_CONT;
    luab_run *r = run_new(call, g, hook);
    if (r == NULL) {
        luab_host->reply(call, 451, "4.3.0", "Out of memory");
        return UPESI_DENYSOFT;
    }
    upesi_verdict v = run_steps(r, -1);
    if (v == UPESI_PENDING) {
        r->pending = 1;
        luab_host->on_cancel(call, run_cancelled, r);
        return UPESI_PENDING;
    }
    run_free(r, 1);
    return v;
}

/* ---------------------------------------------------------------------- */
/* lua.ini                                                                 */

static void *luab_config_new(void)
{
    luab_gen *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->max_instructions = LUAB_DEFAULT_INSTRUCTIONS;
    g->max_memory = LUAB_DEFAULT_MEMORY;
    return g;
}

static int add_script(void *config, const char *name, char *err,
                      size_t errlen)
{
    luab_gen *g = config;
    char rel[4096];
    snprintf(rel, sizeof rel, "%s%s", strchr(name, '/') ? "" : "lua/", name);
    char *host_path = luab_host->config_path(luab_ctx, rel);
    char *path = host_path ? strdup(host_path) : NULL;
    luab_host->free(host_path);
    char **s = realloc(g->scripts, (g->n_scripts + 1) * sizeof *s);
    if (s)
        g->scripts = s;
    char **p = realloc(g->paths, (g->n_scripts + 1) * sizeof *p);
    if (p)
        g->paths = p;
    char *copy = strdup(name);
    if (path == NULL || s == NULL || p == NULL || copy == NULL) {
        free(path);
        free(copy);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->scripts[g->n_scripts] = copy;
    g->paths[g->n_scripts++] = path;
    return 0;
}

static int luab_set_store_failure(void *config, const char *value,
                                  char *err, size_t errlen)
{
    luab_gen *g = config;
    return store_failure_parse(value, &g->store_failure, err, errlen);
}

/* kv_max_keys bounded the old per-worker table; upesi.kv is the host's
 * store now (store_size in smtp.ini).  Still accepted, so an old lua.ini
 * loads, with a warning that it does nothing. */
static int luab_set_kv_max_keys(void *config, const char *value, char *err,
                                size_t errlen)
{
    (void)config;
    (void)value;
    (void)err;
    (void)errlen;
    if (luab_host)
        luab_host->log(luab_ctx, UPESI_LOG_WARNING, "lua.ini: kv_max_keys "
                       "is deprecated and ignored (the store's size is "
                       "smtp.ini store_size)");
    return 0;
}

#define LUAB(field) offsetof(luab_gen, field)
static const upesi_setting luab_settings[] = {
    { "scripts", UPESI_SETTING_LIST, 0, 0, 0, NULL, add_script, NULL,
      "scripts, run in this order: a bare name is in `lua/`, a name with "
      "a `/` is relative to the configuration directory (or absolute); "
      "lines add up" },
    { "max_instructions", UPESI_SETTING_COUNT, LUAB(max_instructions), 1000,
      1e12, NULL, NULL, "1M", "Lua VM instructions one hook call may "
      "execute, all its handlers together (about 10 ms of plain Lua per "
      "million)" },
    { "max_memory", UPESI_SETTING_SIZE, LUAB(max_memory), 1024 * 1024,
      1099511627776.0, NULL, NULL, "64M", "bytes the worker's Lua state may "
      "hold while a script runs: all scripts, generations and waiting "
      "calls" },
    { "store_failure", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      luab_set_store_failure, "accept", "a failed `upesi.kv` call: "
      "`accept` returns nil and an error to the script; `tempfail` answers "
      "451 4.3.0" },
    { "kv_max_keys", UPESI_SETTING_CUSTOM, 0, 0, 0, NULL,
      luab_set_kv_max_keys, NULL, "deprecated, ignored with a warning: "
      "the store's size is smtp.ini `store_size`" },
    { NULL, UPESI_SETTING_END, 0, 0, 0, NULL, NULL, NULL, NULL }
};

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (n < cap)
            break;
        char *grown = realloc(buf, cap * 2);
        if (grown == NULL) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int failed = buf && ferror(fp);
    int saved = errno;
    fclose(fp);
    if (failed) {
        free(buf);
        errno = saved;
        return NULL;
    }
    *len = n;
    return buf;
}

/* Compile one script and run its top level under the budget. */
static int load_script(luab_gen *g, size_t i, char *err, size_t errlen)
{
    const char *name = g->scripts[i], *path = g->paths[i];
    size_t len;
    char *text = read_file(path, &len);
    if (text == NULL) {
        snprintf(err, errlen, "scripts: %s: %s", path, strerror(errno));
        return -1;
    }
    char chunkname[4200];
    snprintf(chunkname, sizeof chunkname, "@%s", name);
    int status = luaL_loadbufferx(L, text, len, chunkname, "t");
    free(text);
    if (status != LUA_OK) {
        /* "name:line: msg" -> "path:line: msg": -t names the file */
        const char *msg = lua_tostring(L, -1);
        size_t nl = strlen(name);
        if (msg && !strncmp(msg, name, nl) && msg[nl] == ':')
            snprintf(err, errlen, "%s%s", path, msg + nl);
        else
            snprintf(err, errlen, "%s: %s", path, msg ? msg : "?");
        lua_pop(L, 1);
        return -1;
    }
    luab_sandbox_env(L, sandbox_ref);
    lua_pushvalue(L, -1);
    g->env_refs[g->env_refs_n++] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_setupvalue(L, -2, 1);           /* the chunk's _ENV */

    luab_run r = { .gen = g, .hook = UPESI_HOOK_COUNT, .script = name,
                  .co_ref = LUA_NOREF, .results_ref = LUA_NOREF };
    r.step = g->max_instructions < LUAB_COUNT_STEP ? g->max_instructions
                                                  : LUAB_COUNT_STEP;
    r.co = lua_newthread(L);
    r.co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_xmove(L, r.co, 1);
    lua_sethook(r.co, luab_count_hook, LUA_MASKCOUNT, (int)r.step);
    luab_api_set_loading(g, name);
    int nres;
    luab_current = &r;
    status = lua_resume(r.co, NULL, 0, &nres);
    luab_current = NULL;
    luab_api_set_loading(NULL, NULL);
    int rc = 0;
    if (status != LUA_OK || r.killed) {
        char where[256];
        run_where(r.co, where, sizeof where);
        const char *msg =
            r.killed == LUAB_RUN_OVER_INSTRUCTIONS ? "over max_instructions"
            : r.killed || status == LUA_ERRMEM    ? "over max_memory"
            : status == LUA_YIELD ? "waits (DNS, sleep) at its top level"
            : lua_type(r.co, -1) == LUA_TSTRING ? lua_tostring(r.co, -1)
                                                : "error (not a string)";
        if (where[0] && strncmp(msg, where, strlen(where)))
            snprintf(err, errlen, "%s: %s (at %s)", path, msg, where);
        else
            snprintf(err, errlen, "%s: %s", path, msg);
        rc = -1;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, r.co_ref);
    if (rc != 0)
        lua_gc(L, LUA_GCCOLLECT);
    return rc;
}

static int luab_config_check(void *config, char *err, size_t errlen)
{
    luab_gen *g = config;
    g->env_refs = calloc(g->n_scripts + 1, sizeof *g->env_refs);
    if (g->env_refs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < g->n_scripts; i++)
        if (load_script(g, i, err, errlen) != 0)
            return -1;
    g->loaded = 1;
    return 0;
}

/* The generation is committed (upesi.kv needs nothing here: the store
 * is the host's, bounded by smtp.ini store_size). */
static void luab_config_commit(upesi_ctx *ctx, void *config)
{
    luab_gen *g = config;
    luab_host->log(ctx, UPESI_LOG_DEBUG, "%zu scripts committed",
                   g->n_scripts);
}

static void luab_config_free(void *config)
{
    luab_gen *g = config;
    if (g == NULL)
        return;
    for (int h = 0; h < UPESI_HOOK_COUNT; h++) {
        for (size_t i = 0; L && i < g->n_handlers[h]; i++)
            luaL_unref(L, LUA_REGISTRYINDEX, g->handlers[h][i].fn_ref);
        free(g->handlers[h]);
    }
    for (int i = 0; L && i < g->env_refs_n; i++)
        luaL_unref(L, LUA_REGISTRYINDEX, g->env_refs[i]);
    free(g->env_refs);
    for (size_t i = 0; i < g->n_scripts; i++) {
        free(g->scripts[i]);
        free(g->paths[i]);
    }
    free(g->scripts);
    free(g->paths);
    free(g);
}

/* ---------------------------------------------------------------------- */
/* the state                                                               */

static int luab_init(upesi_ctx *ctx, const upesi_api *host, char *err,
                    size_t errlen)
{
    luab_ctx = ctx;
    luab_host = host;
    L = lua_newstate(luab_plugin_alloc, NULL);
    if (L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state");
        return -1;
    }
    lua_atpanic(L, luab_plugin_panic);
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base },      { LUA_COLIBNAME, luaopen_coroutine },
        { LUA_TABLIBNAME, luaopen_table }, { LUA_STRLIBNAME, luaopen_string },
        { LUA_MATHLIBNAME, luaopen_math }, { LUA_UTF8LIBNAME, luaopen_utf8 },
        { LUA_OSLIBNAME, luaopen_os },
    };
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_newtable(L);                    /* hook threads, weak keys */
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "upesi.threads");
    luab_sandbox_build(L);
    int sandbox = lua_gettop(L);
    luab_api_open(L, sandbox);
    sandbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* the generational collector keeps short-lived call garbage cheap */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return 0;
}

static void luab_fini(void)
{
    if (L)
        lua_close(L);
    L = NULL;
    pool_n = 0;
}

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_API_STORE_MINOR),   /* upesi.kv */
    .name = LUAB_PLUGIN_NAME,
    .version = "1.0",
    .init = luab_init,
    .fini = luab_fini,
    .config_new = luab_config_new,
    .settings = luab_settings,
    .config_check = luab_config_check,
    .config_free = luab_config_free,
    .config_commit = luab_config_commit,
    .hooks = {
        [UPESI_HOOK_CONNECT] = luab_on_hook,
        [UPESI_HOOK_HELO] = luab_on_hook,
        [UPESI_HOOK_MAIL] = luab_on_hook,
        [UPESI_HOOK_RCPT] = luab_on_hook,
        [UPESI_HOOK_DATA] = luab_on_hook,
        [UPESI_HOOK_DATA_POST] = luab_on_hook,
        [UPESI_HOOK_QUEUE] = luab_on_hook,
        [UPESI_HOOK_RESET] = luab_on_hook,
        [UPESI_HOOK_DISCONNECT] = luab_on_hook,
        [UPESI_HOOK_UNRECOGNIZED] = luab_on_hook,
        [UPESI_HOOK_VRFY] = luab_on_hook,
        [UPESI_HOOK_AUTH] = luab_on_hook,
    },
};
