/*
 * bridge_api.c - the `upesi` table a script sees (docs/lua.md): verdicts,
 * upesi.hook, the conn and txn objects handed to every handler, logging,
 * statistics, time.  DNS and sleep (the functions that wait) are in
 * bridge_wait.c, upesi.kv in bridge_kv.c.
 *
 * conn and txn are two proxies made once per worker: they always speak
 * of the call running now (luab_current), so a handler pays nothing for
 * them until it reads a field, and one kept past its call cannot reach a
 * call that is gone: outside a handler every field is an error.
 *
 * Fails: misuse (a bad argument, a field outside a handler, waiting where
 * it cannot) raises a Lua error at the script's line; the host functions
 * report failure as nil plus a reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridge.h"

static luab_gen *loading_gen;
static const char *loading_script;
static int conn_ref = LUA_NOREF, txn_ref = LUA_NOREF;
static int conn_notes_ref = LUA_NOREF, txn_notes_ref = LUA_NOREF;

void luab_api_set_loading(luab_gen *gen, const char *script)
{
    loading_gen = gen;
    loading_script = script;
}

/* ---------------------------------------------------------------------- */
/* upesi.hook                                                              */

static int l_hook(lua_State *S)
{
    const char *name = luaL_checkstring(S, 1);
    luaL_checktype(S, 2, LUA_TFUNCTION);
    if (loading_gen == NULL)
        return luaL_error(S, "upesi.hook: only while the script loads (at "
                          "its top level)");
    int hook = luab_host->hook_find(name);
    if (hook < 0)
        return luaL_error(S, "upesi.hook: unknown hook '%s' (connect, helo, "
                          "mail, rcpt, data, data_post, queue, reset, "
                          "disconnect, unrecognized, vrfy, auth)", name);
    luab_gen *g = loading_gen;
    luab_handler *h = realloc(g->handlers[hook],
                             (g->n_handlers[hook] + 1) * sizeof *h);
    if (h == NULL)
        return luaL_error(S, "upesi.hook: out of memory");
    g->handlers[hook] = h;
    lua_pushvalue(S, 2);
    h[g->n_handlers[hook]].fn_ref = luaL_ref(S, LUA_REGISTRYINDEX);
    h[g->n_handlers[hook]].script = loading_script;
    g->n_handlers[hook]++;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* logging, statistics, time                                               */

static const struct {
    const char *name;
    upesi_log_level level;
} log_levels[] = {
    { "crit", UPESI_LOG_CRIT },       { "err", UPESI_LOG_ERR },
    { "error", UPESI_LOG_ERR },       { "warning", UPESI_LOG_WARNING },
    { "warn", UPESI_LOG_WARNING },    { "notice", UPESI_LOG_NOTICE },
    { "info", UPESI_LOG_INFO },       { "debug", UPESI_LOG_DEBUG },
};

static void log_line(upesi_log_level level, const char *msg)
{
    luab_run *r = luab_current;
    const char *script = r && r->script ? r->script : "?";
    if (r && r->call)
        luab_host->log_call(r->call, level, "%s: %s", script, msg);
    else
        luab_host->log(luab_ctx, level, "%s: %s", script, msg);
}

/* upesi.log([level,] message) */
static int l_log(lua_State *S)
{
    upesi_log_level level = UPESI_LOG_INFO;
    int msg = 1;
    if (lua_gettop(S) >= 2 && lua_type(S, 1) == LUA_TSTRING) {
        const char *l = lua_tostring(S, 1);
        size_t i;
        for (i = 0; i < sizeof log_levels / sizeof *log_levels; i++)
            if (!strcasecmp(l, log_levels[i].name))
                break;
        if (i == sizeof log_levels / sizeof *log_levels)
            return luaL_error(S, "upesi.log: unknown level '%s' (crit, err, "
                              "warning, notice, info, debug)", l);
        level = log_levels[i].level;
        msg = 2;
    }
    log_line(level, luaL_tolstring(S, msg, NULL));
    return 0;
}

/* print(...): to the log at info, arguments separated by spaces (a log
 * line shows a tab as \x09) */
static int l_print(lua_State *S)
{
    luaL_Buffer b;
    int n = lua_gettop(S);
    luaL_buffinit(S, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(S, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_line(UPESI_LOG_INFO, lua_tostring(S, -1));
    return 0;
}

/* Counters a script names get the prefix "Lua." so that no script can
 * overwrite the host's. */
static const char *stat_name(lua_State *S, char *buf, size_t len)
{
    size_t n;
    const char *name = luaL_checklstring(S, 1, &n);
    if (n == 0 || n > 100 || strpbrk(name, " \t\r\n="))
        luaL_error(S, "upesi.stat: bad counter name '%s' (up to 100 "
                   "characters, no spaces or '=')", name);
    if (!strncmp(name, "Lua.", 4))
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "Lua.%s", name);
    return buf;
}

static int l_stat_add(lua_State *S)
{
    char name[128];
    stat_name(S, name, sizeof name);
    luab_host->stat_add(luab_ctx, name, (long long)luaL_optinteger(S, 2, 1));
    return 0;
}

static int l_stat_set(lua_State *S)
{
    char name[128];
    stat_name(S, name, sizeof name);
    luab_host->stat_set(luab_ctx, name, (long long)luaL_checkinteger(S, 2));
    return 0;
}

static double clock_now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_time(lua_State *S)
{
    lua_pushnumber(S, clock_now(CLOCK_REALTIME));
    return 1;
}

static int l_monotonic(lua_State *S)
{
    lua_pushnumber(S, clock_now(CLOCK_MONOTONIC));
    return 1;
}

static int l_hostname(lua_State *S)
{
    const char *h = luab_host->hostname(luab_ctx);
    if (h)
        lua_pushstring(S, h);
    else
        lua_pushnil(S);
    return 1;
}

/* ---------------------------------------------------------------------- */
/* notes                                                                   */

static int notes_index(lua_State *S)
{
    upesi_scope scope = (upesi_scope)lua_tointeger(S, lua_upvalueindex(1));
    const char *key = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "notes");
    const char *v = luab_host->note_get(r->call, scope, key);
    if (v)
        lua_pushstring(S, v);
    else
        lua_pushnil(S);
    return 1;
}

/* notes.key = value: stored as text (nil stores "") */
static int notes_newindex(lua_State *S)
{
    upesi_scope scope = (upesi_scope)lua_tointeger(S, lua_upvalueindex(1));
    const char *key = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "notes");
    const char *v = lua_isnil(S, 3) ? "" : luaL_tolstring(S, 3, NULL);
    if (luab_host->note_set(r->call, scope, key, v) != 0)
        return luaL_error(S, "notes: cannot set '%s'", key);
    return 0;
}

static int make_notes(lua_State *S, upesi_scope scope)
{
    lua_newtable(S);
    lua_newtable(S);
    lua_pushinteger(S, scope);
    lua_pushcclosure(S, notes_index, 1);
    lua_setfield(S, -2, "__index");
    lua_pushinteger(S, scope);
    lua_pushcclosure(S, notes_newindex, 1);
    lua_setfield(S, -2, "__newindex");
    lua_pushboolean(S, 0);
    lua_setfield(S, -2, "__metatable");
    lua_setmetatable(S, -2);
    return luaL_ref(S, LUA_REGISTRYINDEX);
}

/* ---------------------------------------------------------------------- */
/* conn                                                                    */

static int push_str(lua_State *S, const char *s)
{
    if (s)
        lua_pushstring(S, s);
    else
        lua_pushnil(S);
    return 1;
}

static int conn_index(lua_State *S)
{
    const char *k = luaL_checkstring(S, 2);
    if (!strcmp(k, "reverse_name")) {
        lua_pushcfunction(S, luab_wait_reverse_name);
        return 1;
    }
    if (!strcmp(k, "notes")) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, conn_notes_ref);
        return 1;
    }
    luab_run *r = luab_need_call(S, "conn");
    const upesi_conn_info *c = luab_host->conn(r->call);
    if (c == NULL)
        return push_str(S, NULL);
    if (!strcmp(k, "ip"))
        return push_str(S, c->remote_ip);
    if (!strcmp(k, "port"))
        return lua_pushinteger(S, c->remote_port), 1;
    if (!strcmp(k, "local_ip"))
        return push_str(S, c->local_ip);
    if (!strcmp(k, "local_port"))
        return lua_pushinteger(S, c->local_port), 1;
    if (!strcmp(k, "ipv6"))
        return lua_pushboolean(S, c->remote_is_ipv6), 1;
    if (!strcmp(k, "helo"))
        return push_str(S, c->helo);
    if (!strcmp(k, "esmtp"))
        return lua_pushboolean(S, c->esmtp), 1;
    if (!strcmp(k, "tls"))
        return lua_pushboolean(S, c->tls), 1;
    if (!strcmp(k, "tls_version"))
        return push_str(S, c->tls_version);
    if (!strcmp(k, "tls_cipher"))
        return push_str(S, c->tls_cipher);
    if (!strcmp(k, "early_talker"))
        return lua_pushboolean(S, c->early_talker), 1;
    if (!strcmp(k, "authenticated"))
        return lua_pushboolean(S, c->authenticated), 1;
    if (!strcmp(k, "auth_user"))
        return push_str(S, c->auth_user);
    if (!strcmp(k, "id"))
        return push_str(S, c->session_id);
    if (!strcmp(k, "command"))
        return push_str(S, luab_host->command_line(r->call));
    if (!strcmp(k, "hook"))
        return push_str(S, luab_hook_name(r->hook));
    return luaL_error(S, "conn has no field '%s'", k);
}

/* ---------------------------------------------------------------------- */
/* txn                                                                     */

static int l_txn_header(lua_State *S)
{
    const char *name = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "txn:header");
    return push_str(S, luab_host->header_get(r->call, name, 0));
}

/* txn:headers([name]): every value of name, or every field "Name: value" */
static int l_txn_headers(lua_State *S)
{
    const char *name = luaL_optstring(S, 2, NULL);
    luab_run *r = luab_need_call(S, "txn:headers");
    lua_newtable(S);
    const char *v;
    for (size_t i = 0; (v = luab_host->header_get(r->call, name, i)); i++) {
        lua_pushstring(S, v);
        lua_rawseti(S, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_txn_add_header(lua_State *S)
{
    size_t name_len, value_len;
    const char *name = luaL_checklstring(S, 2, &name_len);
    const char *value = luaL_checklstring(S, 3, &value_len);
    luab_run *r = luab_need_call(S, "txn:add_header");
    /* a Lua string may hold NUL, which the host would see as the end:
     * refused like CR or LF, never stored cut short */
    if (strlen(name) != name_len || strlen(value) != value_len ||
        luab_host->header_add(r->call, name, value) != 0) {
        lua_pushnil(S);
        lua_pushliteral(S, "invalid header name or value");
        return 2;
    }
    lua_pushboolean(S, 1);
    return 1;
}

static int l_txn_remove_header(lua_State *S)
{
    const char *name = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "txn:remove_header");
    int n = luab_host->header_remove(r->call, name);
    if (n < 0) {
        lua_pushnil(S);
        lua_pushstring(S, strerror(-n));
        return 2;
    }
    lua_pushinteger(S, n);
    return 1;
}

static int l_txn_param(lua_State *S)
{
    const char *kw = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "txn:param");
    return push_str(S, luab_host->param(r->call, kw));
}

/* txn:mail_param(kw): what MAIL said and the host kept (SMTPUTF8, RET,
 * ENVID), in any hook after MAIL; txn:param is the current command's. */
static int l_txn_mail_param(lua_State *S)
{
    const char *kw = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "txn:mail_param");
    if (!UPESI_API_SUPPORTED(luab_host, txn_param))
        return luaL_error(S, "txn:mail_param: this host is too old");
    return push_str(S, luab_host->txn_param(r->call, kw));
}

/* txn:rcpt_param(n, kw): NOTIFY or ORCPT of the n-th accepted recipient
 * (1-based, as txn.recipients). */
static int l_txn_rcpt_param(lua_State *S)
{
    lua_Integer n = luaL_checkinteger(S, 2);
    const char *kw = luaL_checkstring(S, 3);
    luab_run *r = luab_need_call(S, "txn:rcpt_param");
    if (!UPESI_API_SUPPORTED(luab_host, rcpt_param))
        return luaL_error(S, "txn:rcpt_param: this host is too old");
    if (n < 1)
        return push_str(S, NULL);
    return push_str(S, luab_host->rcpt_param(r->call, (size_t)(n - 1), kw));
}

static int l_txn_is_local(lua_State *S)
{
    const char *addr = luaL_checkstring(S, 2);
    luab_run *r = luab_need_call(S, "txn:is_local");
    lua_pushboolean(S, luab_host->is_local_domain(r->call, addr));
    return 1;
}

/* txn:bayes_vote("spam" | "ham"): the bayes plugin learns the message
 * when the transaction ends (its note bayes.vote). */
static int l_txn_bayes_vote(lua_State *S)
{
    static const char *const names[] = { "spam", "ham", NULL };
    int which = luaL_checkoption(S, 2, NULL, names);
    luab_run *r = luab_need_call(S, "txn:bayes_vote");
    if (luab_host->note_set(r->call, UPESI_SCOPE_TXN, "bayes.vote",
                           names[which]) != 0)
        return luaL_error(S, "txn:bayes_vote: cannot set the note");
    return 0;
}

static int l_txn_action(lua_State *S)
{
    static const char *const names[] = { "quarantine", "journal", "hold",
                                         "drop", "reject", "copy_to",
                                         "tag", NULL };
    static const upesi_action actions[] = {
        UPESI_ACTION_QUARANTINE, UPESI_ACTION_JOURNAL, UPESI_ACTION_HOLD,
        UPESI_ACTION_DROP, UPESI_ACTION_REJECT, UPESI_ACTION_COPY_TO,
        UPESI_ACTION_TAG,
    };
    int which = luaL_checkoption(S, 2, NULL, names);
    const char *arg = luaL_optstring(S, 3, NULL);
    luab_run *r = luab_need_call(S, "txn:action");
    int rc = luab_host->message_action(r->call, actions[which], arg);
    if (rc != 0) {
        lua_pushnil(S);
        lua_pushstring(S, strerror(-rc));
        return 2;
    }
    lua_pushboolean(S, 1);
    return 1;
}

/* -- the body, line by line */

typedef struct body_iter {
    lua_Integer off;            /* next byte of the message to read       */
    int in_body, done;
    size_t len, pos;
    char buf[8192];
} body_iter;

/* Push the next line (without CR LF); 0 at the end. */
static int body_line(lua_State *S, upesi_call *call, body_iter *it)
{
    luaL_Buffer b;
    int got = 0;
    luaL_buffinit(S, &b);
    for (;;) {
        if (it->pos == it->len) {
            ssize_t n = luab_host->message_read(call, (off_t)it->off, it->buf,
                                               sizeof it->buf);
            if (n <= 0) {
                it->done = 1;
                break;
            }
            it->off += n;
            it->len = (size_t)n;
            it->pos = 0;
        }
        got = 1;
        char *start = it->buf + it->pos;
        char *nl = memchr(start, '\n', it->len - it->pos);
        size_t take = nl ? (size_t)(nl - start) : it->len - it->pos;
        luaL_addlstring(&b, start, take);
        it->pos += take + (nl ? 1 : 0);
        if (nl)
            break;
    }
    luaL_pushresult(&b);
    size_t l;
    const char *s = lua_tolstring(S, -1, &l);
    if (l && s[l - 1] == '\r') {
        lua_pushlstring(S, s, l - 1);
        lua_remove(S, -2);
    }
    if (!got) {
        lua_pop(S, 1);
        return 0;
    }
    return 1;
}

static int body_next(lua_State *S)
{
    body_iter *it = lua_touserdata(S, lua_upvalueindex(1));
    luab_run *r = luab_need_call(S, "txn:body_lines");
    while (!it->in_body && !it->done) {     /* skip the header section */
        if (!body_line(S, r->call, it))
            return 0;
        it->in_body = lua_rawlen(S, -1) == 0;
        lua_pop(S, 1);
    }
    if (it->done && it->pos == it->len)
        return 0;
    return body_line(S, r->call, it);
}

static int l_txn_body_lines(lua_State *S)
{
    luab_need_call(S, "txn:body_lines");
    body_iter *it = lua_newuserdatauv(S, sizeof *it, 0);
    memset(it, 0, sizeof *it);
    lua_pushcclosure(S, body_next, 1);
    return 1;
}

static int txn_index(lua_State *S)
{
    static const luaL_Reg methods[] = {
        { "header", l_txn_header },
        { "headers", l_txn_headers },
        { "add_header", l_txn_add_header },
        { "remove_header", l_txn_remove_header },
        { "body_lines", l_txn_body_lines },
        { "param", l_txn_param },
        { "mail_param", l_txn_mail_param },
        { "rcpt_param", l_txn_rcpt_param },
        { "is_local", l_txn_is_local },
        { "action", l_txn_action },
        { "bayes_vote", l_txn_bayes_vote },
        { NULL, NULL },
    };
    const char *k = luaL_checkstring(S, 2);
    for (const luaL_Reg *m = methods; m->name; m++)
        if (!strcmp(k, m->name)) {
            lua_pushcfunction(S, m->func);
            return 1;
        }
    if (!strcmp(k, "notes")) {
        lua_rawgeti(S, LUA_REGISTRYINDEX, txn_notes_ref);
        return 1;
    }
    luab_run *r = luab_need_call(S, "txn");
    if (!strcmp(k, "sender"))
        return push_str(S, luab_host->sender(r->call));
    if (!strcmp(k, "recipients")) {
        size_t n = luab_host->rcpt_count(r->call);
        lua_createtable(S, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push_str(S, luab_host->rcpt(r->call, i));
            lua_rawseti(S, -2, (lua_Integer)i + 1);
        }
        return 1;
    }
    if (!strcmp(k, "rcpt_count"))
        return lua_pushinteger(S, (lua_Integer)luab_host->rcpt_count(r->call)),
               1;
    if (!strcmp(k, "queue_id"))
        return push_str(S, luab_host->queue_id(r->call));
    if (!strcmp(k, "bayes")) {
        /* the bayes plugin's verdict (its notes), nil before it or
         * without one: { prob = 0.9931, class = "spam" } */
        const char *p = luab_host->note_get(r->call, UPESI_SCOPE_TXN,
                                           "bayes.prob");
        const char *c = luab_host->note_get(r->call, UPESI_SCOPE_TXN,
                                           "bayes.class");
        if (p == NULL || c == NULL)
            return push_str(S, NULL);
        lua_createtable(S, 0, 2);
        lua_pushnumber(S, strtod(p, NULL));
        lua_setfield(S, -2, "prob");
        lua_pushstring(S, c);
        lua_setfield(S, -2, "class");
        return 1;
    }
    if (!strcmp(k, "size"))
        return lua_pushinteger(S,
                               (lua_Integer)luab_host->message_size(r->call)),
               1;
    return luaL_error(S, "txn has no field '%s'", k);
}

static int readonly_newindex(lua_State *S)
{
    return luaL_error(S, "%s is read-only (notes are in .notes)",
                      lua_tostring(S, lua_upvalueindex(1)));
}

static int make_proxy(lua_State *S, const char *name, lua_CFunction index)
{
    lua_newtable(S);
    lua_newtable(S);
    lua_pushcfunction(S, index);
    lua_setfield(S, -2, "__index");
    lua_pushstring(S, name);
    lua_pushcclosure(S, readonly_newindex, 1);
    lua_setfield(S, -2, "__newindex");
    lua_pushstring(S, name);
    lua_setfield(S, -2, "__name");
    lua_pushboolean(S, 0);
    lua_setfield(S, -2, "__metatable");
    lua_setmetatable(S, -2);
    return luaL_ref(S, LUA_REGISTRYINDEX);
}

int luab_api_push_args(lua_State *co, luab_run *r)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, conn_ref);
    if (r->hook == UPESI_HOOK_AUTH) {
        /* function(conn, user, password, mechanism): the password is a
         * Lua string, which cannot be wiped (docs/lua.md) */
        push_str(co, luab_host->auth_user(r->call));
        push_str(co, luab_host->auth_password(r->call));
        push_str(co, luab_host->auth_mechanism(r->call));
        return 4;
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, txn_ref);
    const char *subject = NULL;
    switch (r->hook) {
    case UPESI_HOOK_HELO:
    case UPESI_HOOK_MAIL:
    case UPESI_HOOK_RCPT:
    case UPESI_HOOK_VRFY:
        subject = luab_host->address(r->call);
        break;
    case UPESI_HOOK_UNRECOGNIZED:
        subject = luab_host->command_line(r->call);
        break;
    default:
        break;
    }
    push_str(co, subject);
    return 3;
}

/* ---------------------------------------------------------------------- */

void luab_api_open(lua_State *S, int sandbox)
{
    conn_ref = make_proxy(S, "conn", conn_index);
    txn_ref = make_proxy(S, "txn", txn_index);
    conn_notes_ref = make_notes(S, UPESI_SCOPE_CONN);
    txn_notes_ref = make_notes(S, UPESI_SCOPE_TXN);

    lua_newtable(S);                    /* upesi */
    static const struct {
        const char *name;
        upesi_verdict v;
    } verdicts[] = {
        { "CONT", UPESI_CONT },
        { "OK", UPESI_OK },
        { "DENY", UPESI_DENY },
        { "DENYSOFT", UPESI_DENYSOFT },
        { "DENYDISCONNECT", UPESI_DENYDISCONNECT },
        { "DENYSOFTDISCONNECT", UPESI_DENYSOFTDISCONNECT },
    };
    for (size_t i = 0; i < sizeof verdicts / sizeof *verdicts; i++) {
        lua_pushinteger(S, verdicts[i].v);
        lua_setfield(S, -2, verdicts[i].name);
    }
    static const luaL_Reg fns[] = {
        { "hook", l_hook },           { "log", l_log },
        { "time", l_time },           { "monotonic", l_monotonic },
        { "sleep", luab_wait_sleep },  { "hostname", l_hostname },
        { NULL, NULL },
    };
    luaL_setfuncs(S, fns, 0);

    lua_newtable(S);                    /* upesi.stat */
    lua_pushcfunction(S, l_stat_add);
    lua_setfield(S, -2, "add");
    lua_pushcfunction(S, l_stat_set);
    lua_setfield(S, -2, "set");
    lua_setfield(S, -2, "stat");

    luab_wait_open_dns(S);               /* upesi.dns */
    lua_setfield(S, -2, "dns");

    luab_kv_open(S, lua_gettop(S));      /* upesi.kv */

    /* scripts share these tables: none may change them for the others */
    static const char *const subs[] = { "stat", "dns", "kv" };
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        lua_getfield(S, -1, subs[i]);
        luab_sandbox_readonly(S);
        lua_setfield(S, -2, subs[i]);
    }
    luab_sandbox_readonly(S);
    lua_setfield(S, sandbox, "upesi");
    lua_pushcfunction(S, l_print);
    lua_setfield(S, sandbox, "print");
}
