/*
 * dir_table.c - parse the directory file and index it (docs/directory.md).
 *
 * The file is read whole, parsed line by line into entries, and every name
 * an entry answers to (full name, short names, internet address, aliases)
 * goes into one open-addressing hash table keyed by the lower-cased name.
 * Names never hold '@' and addresses always do, so one table serves both.
 * A key shared by several entries keeps them all counted: that is what
 * "not unique" means.  Strings live in a few large blocks (an arena), so a
 * directory of 100,000 entries costs a handful of allocations per block,
 * not one per name, and loads in tens of milliseconds.
 *
 * Group members are checked after the whole file is read (a group may name
 * a group defined further down): a member without '@' must be a name in
 * the directory.  Members are not kept: nothing here expands groups.
 *
 * Fails: every syntax error is reported with its line; after
 * DIR_MAX_ERRORS the loader stops.  An unreadable file, a directory, or a
 * file without any entry is an error at line 0.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upesi/plugin.h"
#include "dir_table.h"

#define DIR_MAX_ERRORS 20
#define DIR_ARENA_BLOCK (256 * 1024)

/* ---------------------------------------------------------------------- */
/* a string arena                                                         */

typedef struct dir_block {
    struct dir_block *next;
    size_t used, size;
    char data[];
} dir_block;

static char *dir_arena_alloc(dir_block **arena, size_t len)
{
    dir_block *b = *arena;
    if (b == NULL || b->size - b->used < len) {
        size_t size = len > DIR_ARENA_BLOCK ? len : DIR_ARENA_BLOCK;
        dir_block *nb = malloc(sizeof *nb + size);
        if (nb == NULL)
            return NULL;
        nb->next = b;
        nb->used = 0;
        nb->size = size;
        *arena = b = nb;
    }
    char *p = b->data + b->used;
    b->used += len;
    return p;
}

/* A copy of s[0..len), lower-cased when lower is set. */
static char *dir_arena_str(dir_block **arena, const char *s, size_t len,
                           int lower)
{
    char *p = dir_arena_alloc(arena, len + 1);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        p[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    p[len] = '\0';
    return p;
}

static void dir_arena_free(dir_block *arena)
{
    while (arena) {
        dir_block *next = arena->next;
        free(arena);
        arena = next;
    }
}

/* ---------------------------------------------------------------------- */
/* the table                                                              */

typedef struct dir_slot {
    const char *key;             /* lower case; NULL = empty slot       */
    uint64_t hash;
    uint32_t entry;              /* the first entry with this key       */
    uint32_t count;
    int any_group;
} dir_slot;

typedef struct dir_key {         /* a name waiting to be indexed        */
    const char *key;
    uint32_t entry;
} dir_key;

typedef struct dir_member {      /* a member reference to check         */
    const char *name;
    uint32_t group;
} dir_member;

struct dir_table {
    dir_entry *entries;
    size_t n_entries, cap_entries;
    size_t n_persons, n_groups, n_not_unique;
    dir_slot *slots;
    size_t n_slots;              /* a power of two                      */
    dir_block *arena;
};

static uint64_t dir_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;       /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 1099511628211ull;
    }
    return h;
}

static int dir_key_equal(const char *key, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (key[i] == '\0' ||
            (unsigned char)key[i] != tolower((unsigned char)s[i]))
            return 0;
    return key[len] == '\0';
}

static void dir_index(dir_table *t, const dir_key *k)
{
    size_t len = strlen(k->key);
    uint64_t h = dir_hash(k->key, len);
    size_t mask = t->n_slots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        dir_slot *s = &t->slots[i];
        if (s->key == NULL) {
            s->key = k->key;
            s->hash = h;
            s->entry = k->entry;
            s->count = 1;
            s->any_group = t->entries[k->entry].kind == DIR_GROUP;
            return;
        }
        if (s->hash == h && !strcmp(s->key, k->key)) {
            /* the same entry may give a name twice (short = full name) */
            if (s->entry == k->entry)
                return;
            if (s->count++ == 1)
                t->n_not_unique++;
            if (t->entries[k->entry].kind == DIR_GROUP)
                s->any_group = 1;
            return;
        }
    }
}

void dir_table_find(const dir_table *t, const char *key, size_t len,
                    dir_match *out)
{
    memset(out, 0, sizeof *out);
    if (t == NULL || t->n_slots == 0)
        return;
    uint64_t h = dir_hash(key, len);
    size_t mask = t->n_slots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const dir_slot *s = &t->slots[i];
        if (s->key == NULL)
            return;
        if (s->hash == h && dir_key_equal(s->key, key, len)) {
            out->entry = &t->entries[s->entry];
            out->count = s->count;
            out->any_group = s->any_group;
            return;
        }
    }
}

const dir_entry *dir_table_entry(const dir_table *t, size_t index)
{
    return t && index < t->n_entries ? &t->entries[index] : NULL;
}

size_t dir_table_persons(const dir_table *t)
{
    return t ? t->n_persons : 0;
}

size_t dir_table_groups(const dir_table *t)
{
    return t ? t->n_groups : 0;
}

size_t dir_table_not_unique(const dir_table *t)
{
    return t ? t->n_not_unique : 0;
}

void dir_table_free(dir_table *t)
{
    if (t == NULL)
        return;
    free(t->entries);
    free(t->slots);
    dir_arena_free(t->arena);
    free(t);
}

/* ---------------------------------------------------------------------- */
/* the parser                                                             */

typedef struct dir_loader {
    dir_table *t;
    const char *path;
    dir_error_fn on_error;
    void *arg;
    int errors;
    int line;
    dir_key *keys;
    size_t n_keys, cap_keys;
    dir_member *members;
    size_t n_members, cap_members;
} dir_loader;

static void dir_error(dir_loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void dir_error(dir_loader *ld, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ld->errors++;
    if (ld->errors <= DIR_MAX_ERRORS)
        ld->on_error(ld->arg, ld->path, line, msg);
}

static int dir_grow(void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *grown = realloc(*array, ncap * size);
    if (grown == NULL)
        return -1;
    *array = grown;
    *cap = ncap;
    return 0;
}

static int dir_add_key(dir_loader *ld, const char *key, uint32_t entry)
{
    if (dir_grow((void **)&ld->keys, &ld->cap_keys, ld->n_keys,
                 sizeof *ld->keys) != 0)
        return -1;
    ld->keys[ld->n_keys++] = (dir_key){ key, entry };
    return 0;
}

/* One token: a "quoted string" (\" and \\ escapes) or a run of non-blank
 * bytes.  For key=value tokens the value may be quoted.  The result is
 * copied into buf (NUL-terminated).  Returns the length, or -1 with a
 * message in why. */
static long dir_token(const char **pp, char *buf, size_t buflen,
                      const char **why)
{
    const char *p = *pp;
    size_t n = 0;
    int quoted = 0;
    while (*p && !(isspace((unsigned char)*p) && !quoted)) {
        if (*p == '"') {
            quoted = !quoted;
            p++;
            continue;
        }
        if (quoted && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
            p++;
        if (n + 1 >= buflen) {
            *why = "token too long (at most 1000 characters)";
            return -1;
        }
        buf[n++] = *p++;
    }
    if (quoted) {
        *why = "unterminated quoted string";
        return -1;
    }
    buf[n] = '\0';
    *pp = p;
    return (long)n;
}

static int dir_valid_address(const char *s)
{
    const char *at = strrchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(s, '@') != at)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
            strchr("<>(),;:\\\"[]", *p))
            return 0;
    return 1;
}

/* A crypt(3) hash as the auth plugin reads it: "$id$..." in the hash
 * alphabet.  Whether libcrypt knows the method is the auth plugin's
 * check; this one keeps a plain password out of the file. */
static int dir_valid_hash(const char *s)
{
    size_t len = strlen(s);
    if (len < 4 || len > 512 || s[0] != '$' || strchr(s + 1, '$') == NULL)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("./$=,+-", *p))
            return 0;
    return 1;
}

static int dir_valid_name(const char *s)
{
    if (*s == '\0' || strchr(s, '@'))
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f || *p == ',')
            return 0;
    return 1;
}

/* Split value at commas and hand each trimmed, non-empty item to fn. */
typedef int (*dir_item_fn)(dir_loader *ld, uint32_t entry, const char *key,
                           const char *item, size_t len);

static int dir_each_item(dir_loader *ld, uint32_t entry, const char *key,
                         const char *value, dir_item_fn fn)
{
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a && fn(ld, entry, key, a, (size_t)(b - a)) != 0)
            return -1;
        p = comma ? comma + 1 : end;
    }
    return 0;
}

static int dir_item_address(dir_loader *ld, uint32_t entry, const char *key,
                            const char *item, size_t len)
{
    dir_table *t = ld->t;
    char *s = dir_arena_str(&t->arena, item, len, 1);
    if (s == NULL)
        return -1;
    if (!dir_valid_address(s)) {
        dir_error(ld, ld->line, "%s: '%.*s' is not an internet address "
                  "(local@domain)", key, (int)len, item);
        return 0;
    }
    dir_entry *e = &t->entries[entry];
    if (!strcmp(key, "address")) {
        if (e->address && strcmp(e->address, s)) {
            dir_error(ld, ld->line, "address given twice ('%s' and '%s'); "
                      "use alias= for more addresses", e->address, s);
            return 0;
        }
        e->address = s;
    }
    return dir_add_key(ld, s, entry);
}

static int dir_item_short(dir_loader *ld, uint32_t entry, const char *key,
                          const char *item, size_t len)
{
    char *s = dir_arena_str(&ld->t->arena, item, len, 1);
    if (s == NULL)
        return -1;
    if (!dir_valid_name(s) || strpbrk(s, " \t")) {
        dir_error(ld, ld->line, "%s: '%.*s' is not a short name (no blanks, "
                  "no '@')", key, (int)len, item);
        return 0;
    }
    return dir_add_key(ld, s, entry);
}

static int dir_item_member(dir_loader *ld, uint32_t entry, const char *key,
                           const char *item, size_t len)
{
    (void)key;
    char *s = dir_arena_str(&ld->t->arena, item, len, 0);
    if (s == NULL)
        return -1;
    if (strchr(s, '@') ? !dir_valid_address(s) : !dir_valid_name(s)) {
        dir_error(ld, ld->line, "members: '%s' is neither an address nor a "
                  "name", s);
        return 0;
    }
    if (strchr(s, '@'))
        return 0;               /* an address: may be anywhere */
    if (dir_grow((void **)&ld->members, &ld->cap_members, ld->n_members,
                 sizeof *ld->members) != 0)
        return -1;
    ld->members[ld->n_members++] = (dir_member){ s, entry };
    return 0;
}

/* One line.  Returns 0 (maybe after reporting an error), -1 when out of
 * memory. */
static int dir_parse_line(dir_loader *ld, const char *line)
{
    char tok[1024];
    const char *why = NULL;
    const char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;

    if (dir_token(&p, tok, sizeof tok, &why) < 0) {
        dir_error(ld, ld->line, "%s", why);
        return 0;
    }
    dir_kind kind;
    if (!strcasecmp(tok, "person"))
        kind = DIR_PERSON;
    else if (!strcasecmp(tok, "group"))
        kind = DIR_GROUP;
    else {
        dir_error(ld, ld->line, "'%s': a line starts with person or group "
                  "(or # for a comment)", tok);
        return 0;
    }
    const char *what = kind == DIR_PERSON ? "person" : "group";

    while (isspace((unsigned char)*p))
        p++;
    const char *name_start = p;
    if (*p != '\0' && dir_token(&p, tok, sizeof tok, &why) < 0) {
        dir_error(ld, ld->line, "%s", why);
        return 0;
    }
    if (*name_start == '\0' || (strchr(tok, '=') && *name_start != '"')) {
        dir_error(ld, ld->line, "%s needs a name first: %s", what,
                  kind == DIR_PERSON
                      ? "person \"Full Name\" address=... short=..."
                      : "group name members=...");
        return 0;
    }
    if (kind == DIR_PERSON ? !dir_valid_name(tok)
                           : !(dir_valid_name(tok) || dir_valid_address(tok))) {
        dir_error(ld, ld->line, "%s name '%s' is not valid%s", what, tok,
                  kind == DIR_PERSON ? " (no '@' or ',' in a full name; "
                                       "the address goes in address=)" : "");
        return 0;
    }

    dir_table *t = ld->t;
    if (dir_grow((void **)&t->entries, &t->cap_entries, t->n_entries,
                 sizeof *t->entries) != 0)
        return -1;
    uint32_t idx = (uint32_t)t->n_entries;
    dir_entry *e = &t->entries[idx];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->line = ld->line;
    size_t name_len = strlen(tok);
    if ((e->name = dir_arena_str(&t->arena, tok, name_len, 0)) == NULL)
        return -1;
    t->n_entries++;
    int errors_before = ld->errors;
    char *key = dir_arena_str(&t->arena, tok, name_len, 1);
    if (key == NULL || dir_add_key(ld, key, idx) != 0)
        return -1;
    if (kind == DIR_GROUP && strchr(key, '@'))
        t->entries[idx].address = key;

    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *attr = p;
        if (dir_token(&p, tok, sizeof tok, &why) < 0) {
            dir_error(ld, ld->line, "%s", why);
            return 0;
        }
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq == tok) {
            dir_error(ld, ld->line, "'%.*s' is not key=value", (int)(p - attr),
                      attr);
            return 0;
        }
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        int rc;
        if (!strcmp(k, "address") || !strcmp(k, "alias"))
            rc = dir_each_item(ld, idx, k, v, dir_item_address);
        else if (kind == DIR_PERSON && !strcmp(k, "short"))
            rc = dir_each_item(ld, idx, k, v, dir_item_short);
        else if (kind == DIR_GROUP && !strcmp(k, "members"))
            rc = dir_each_item(ld, idx, k, v, dir_item_member);
        else if (kind == DIR_PERSON && !strcmp(k, "password")) {
            /* a crypt(3) hash for the auth plugin (docs/auth.md) */
            if (t->entries[idx].password) {
                dir_error(ld, ld->line, "password given twice");
                return 0;
            }
            if (!dir_valid_hash(v)) {
                dir_error(ld, ld->line, "password: not a crypt(3) hash "
                          "($y$... yescrypt, $6$... SHA-512): the file "
                          "holds hashes, never passwords");
                return 0;
            }
            char *h = dir_arena_str(&t->arena, v, strlen(v), 0);
            if (h == NULL)
                return -1;
            t->entries[idx].password = h;
            rc = 0;
        } else {
            dir_error(ld, ld->line, "unknown key '%s' for a %s (%s)", k, what,
                      kind == DIR_PERSON ? "short, address, alias, password"
                                         : "address, alias, members");
            return 0;
        }
        if (rc != 0)
            return -1;
    }
    e = &t->entries[idx];
    if (kind == DIR_PERSON && e->address == NULL &&
        ld->errors == errors_before)
        dir_error(ld, ld->line, "person \"%s\" has no address=", e->name);
    if (kind == DIR_PERSON)
        t->n_persons++;
    else
        t->n_groups++;
    return 0;
}

static char *dir_read_file(dir_loader *ld, size_t *len)
{
    int fd = open(ld->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dir_error(ld, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dir_error(ld, 0, "not a regular file");
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        dir_error(ld, 0, "out of memory");
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            dir_error(ld, 0, "cannot read: %s",
                      n < 0 ? strerror(errno) : "file shrank while read");
            free(buf);
            close(fd);
            return NULL;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return buf;
}

static int dir_check_members(dir_loader *ld)
{
    for (size_t i = 0; i < ld->n_members; i++) {
        const dir_member *m = &ld->members[i];
        dir_match match;
        dir_table_find(ld->t, m->name, strlen(m->name), &match);
        if (match.entry == NULL) {
            const dir_entry *g = &ld->t->entries[m->group];
            dir_error(ld, g->line, "group '%s': member '%s' is not in the "
                      "directory (write an address for someone outside)",
                      g->name, m->name);
        }
    }
    return 0;
}

dir_table *dir_table_load(const char *path, dir_error_fn on_error, void *arg)
{
    dir_loader ld = { .path = path, .on_error = on_error, .arg = arg };
    ld.t = calloc(1, sizeof *ld.t);
    if (ld.t == NULL) {
        dir_error(&ld, 0, "out of memory");
        return NULL;
    }
    size_t len = 0;
    char *text = dir_read_file(&ld, &len);
    int oom = 0;
    if (text) {
        char *p = text, *end = text + len;
        while (p < end && !oom) {
            if (ld.errors >= DIR_MAX_ERRORS) {
                on_error(arg, path, ld.line, "too many errors; stopped here");
                break;
            }
            char *nl = memchr(p, '\n', (size_t)(end - p));
            char *eol = nl ? nl : end;
            ld.line++;
            if (memchr(p, '\0', (size_t)(eol - p))) {
                dir_error(&ld, ld.line, "NUL byte in the line");
            } else {
                *eol = '\0';
                if (eol > p && eol[-1] == '\r')
                    eol[-1] = '\0';
                if (dir_parse_line(&ld, p) != 0)
                    oom = 1;
            }
            p = eol + 1;
        }
        free(text);
        if (!oom && ld.errors == 0 && ld.t->n_entries == 0)
            dir_error(&ld, 0, "no person or group: an empty directory "
                      "would refuse every local recipient");
    }
    if (!oom && ld.errors == 0) {
        size_t n = 16;
        while (n < ld.n_keys * 2)
            n *= 2;
        ld.t->slots = calloc(n, sizeof *ld.t->slots);
        if (ld.t->slots == NULL)
            oom = 1;
        else {
            ld.t->n_slots = n;
            for (size_t i = 0; i < ld.n_keys; i++)
                dir_index(ld.t, &ld.keys[i]);
            dir_check_members(&ld);
        }
    }
    if (oom)
        dir_error(&ld, ld.line, "out of memory");
    free(ld.keys);
    free(ld.members);
    if (ld.errors) {
        dir_table_free(ld.t);
        return NULL;
    }
    return ld.t;
}

/* The first loading error goes back to the host in err; the others are
 * logged as they come. */
typedef struct dir_errors {
    const upesi_api *api;
    upesi_ctx *ctx;
    char *err;
    size_t errlen;
    int count;
} dir_errors;

static void dir_on_error(void *arg, const char *path, int line,
                         const char *message)
{
    dir_errors *e = arg;
    if (e->count++ == 0)
        snprintf(e->err, e->errlen, "%s:%d: %s", path, line, message);
    else
        e->api->log(e->ctx, UPESI_LOG_ERR, "%s:%d: %s", path, line,
                    message);
}

dir_table *dir_table_load_config(const upesi_api *api, upesi_ctx *ctx,
                                 const char *file, char **path, char *err,
                                 size_t errlen)
{
    *path = api->config_path(ctx, file);
    if (*path == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dir_errors errors = { api, ctx, err, errlen, 0 };
    dir_table *table = dir_table_load(*path, dir_on_error, &errors);
    if (table == NULL) {
        if (errors.count > 1) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (and %d more error%s above)",
                     errors.count - 1, errors.count == 2 ? "" : "s");
        }
        api->free(*path);
        *path = NULL;
    }
    return table;
}
