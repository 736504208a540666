/*
 * stats.c - statistics counters in one anonymous shared mapping, so that
 * workers forked after up_stats_init add into the same table and `stat`
 * reads the sum without asking anyone (DESIGN.md section 9).
 *
 * The table is open addressing with linear probing over twice as many
 * slots as names allowed, so probes stay short.  A slot's key word holds
 * the 32 upper bits of the name's hash and a state (empty, claiming,
 * ready); a writer claims an empty slot by compare-and-swap, copies the
 * name, then publishes it with a release store.  Names never move and are
 * never removed, so a reader that saw "ready" may compare the name without
 * locks.  Values are updated with atomic adds: the hot path (up_stats_add,
 * once per SMTP command) is a hit in a per-thread cache keyed by the name's
 * pointer (else a hash and a probe or two) and one atomic add; no lock, no
 * malloc, no system call.
 *
 * Fails: never fails a caller.  Before up_stats_init every update is
 * ignored and every read is 0 (unit tests of other modules need no table).
 * Once `capacity` names exist, updates to new names are dropped and counted
 * in "Upesi.Stats.Dropped".  Names are cut at UP_STAT_NAME_MAX bytes.  A
 * process killed between claiming a slot and publishing it leaves that
 * slot unusable; others give up waiting on it after a while and probe on.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "stats.h"

#define UP_STATS_DROPPED "Upesi.Stats.Dropped"
#define UP_STATS_MAX_CAPACITY (1u << 24)

/* slot states, in the low bits of the key word */
#define UP_STATS_EMPTY 0u
#define UP_STATS_CLAIMING 1u
#define UP_STATS_READY 2u
#define UP_STATS_STATE_MASK 3u

/* how long to wait for a claimant that has the same hash as we do before
 * deciding it died mid-claim (it only has a memcpy of 120 bytes to do) */
#define UP_STATS_CLAIM_SPINS (1 << 20)

/* a name's stride in the name array: UP_STAT_NAME_MAX + NUL, rounded up */
#define UP_STATS_NAME_STRIDE ((UP_STAT_NAME_MAX + 1 + 15) & ~(size_t)15)

typedef struct up_stats_slot {
    uint64_t key;               /* hash << 32 | state; 0 = empty */
    int64_t value;
} up_stats_slot;

typedef struct up_stats_table {
    size_t mask;                /* slots - 1 (slots is a power of two) */
    size_t capacity;            /* names allowed, + 1 for Dropped */
    size_t used;                /* names claimed (atomic) */
    size_t map_size;
    up_stats_slot *slots;
    char *names;                /* slots * UP_STATS_NAME_STRIDE */
} up_stats_table;

/* Lives at the start of the mapping, so pointers in it are the same in
 * every process forked from the one that called up_stats_init. */
static up_stats_table *stats_table;
static up_stats_slot *stats_dropped;

/* FNV-1a over at most UP_STAT_NAME_MAX bytes (names are hashed on every
 * update, and they are short); *len gets the kept length. */
static inline uint64_t stats_hash(const char *name, size_t *len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t n = 0;
    while (n < UP_STAT_NAME_MAX && name[n] != '\0') {
        h ^= (unsigned char)name[n++];
        h *= 0x100000001b3ULL;
    }
    *len = n;
    /* fold, so the index (low bits) and the tag (high 32) both see all */
    return h ^ (h >> 29);
}

static inline char *stats_name(const up_stats_table *t, size_t i)
{
    return t->names + i * UP_STATS_NAME_STRIDE;
}

static inline int stats_name_is(const up_stats_table *t, size_t i,
                                const char *name, size_t len)
{
    const char *s = stats_name(t, i);
    return memcmp(s, name, len) == 0 && s[len] == '\0';
}

/* Wait for a slot another process is claiming; its final key, or 0 if
 * the claimant seems dead. */
static uint64_t stats_wait_claim(up_stats_slot *slot)
{
    for (int spin = 0; spin < UP_STATS_CLAIM_SPINS; spin++) {
        uint64_t key = __atomic_load_n(&slot->key, __ATOMIC_ACQUIRE);
        if ((key & UP_STATS_STATE_MASK) != UP_STATS_CLAIMING)
            return key;
        if (spin > 64)
            sched_yield();
    }
    return 0;
}

/* The slot for name, claimed if absent and create is set; NULL if absent
 * (or the table is full). */
static up_stats_slot *stats_find(up_stats_table *t, const char *name,
                                 int create)
{
    size_t len;
    uint64_t h = stats_hash(name, &len);
    uint64_t tag = h & 0xffffffff00000000ULL;
    uint64_t ready = tag | UP_STATS_READY;
    size_t i = (size_t)h & t->mask;

    for (size_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
        up_stats_slot *slot = &t->slots[i];
        uint64_t key = __atomic_load_n(&slot->key, __ATOMIC_ACQUIRE);
    again:
        if (key == ready) {
            if (stats_name_is(t, i, name, len))
                return slot;
            continue;
        }
        if (key == (tag | UP_STATS_CLAIMING)) {
            /* maybe our own name, being created by another worker */
            key = stats_wait_claim(slot);
            if (key == 0)
                continue;
            goto again;
        }
        if (key != UP_STATS_EMPTY)
            continue;           /* another name */
        if (!create)
            return NULL;        /* an empty slot ends the probe */

        /* reserve a place before claiming, so capacity is exact */
        if (__atomic_fetch_add(&t->used, 1, __ATOMIC_RELAXED) >= t->capacity) {
            __atomic_fetch_sub(&t->used, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        uint64_t expected = UP_STATS_EMPTY;
        if (!__atomic_compare_exchange_n(&slot->key, &expected,
                                         tag | UP_STATS_CLAIMING, 0,
                                         __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
            __atomic_fetch_sub(&t->used, 1, __ATOMIC_RELAXED);
            key = expected;     /* lost the race: look at the winner */
            goto again;
        }
        char *s = stats_name(t, i);
        memcpy(s, name, len);
        s[len] = '\0';
        __atomic_store_n(&slot->key, ready, __ATOMIC_RELEASE);
        return slot;
    }
    return NULL;
}

/* A small per-thread cache of the slots found by name pointer: the host
 * passes the same string constants again and again (a dozen updates per
 * message), and comparing the name with the slot's is cheaper than hashing
 * it and probing.  A hit is checked against the table's generation (a
 * table made anew may sit at the same address) and the name (the same
 * pointer may hold another name: a buffer on the stack), so a stale entry
 * only costs a normal lookup.  Per thread: pool threads update
 * counters too, and the entries are plain memory. */
#define UP_STATS_CACHE 64

typedef struct stats_cache_entry {
    const char *name;
    unsigned generation;        /* stats_generation when cached (0: never) */
    up_stats_slot *slot;
} stats_cache_entry;

static __thread stats_cache_entry stats_cache[UP_STATS_CACHE];
/* bumped by every up_stats_init: entries of an older table never hit */
static unsigned stats_generation;

static inline stats_cache_entry *stats_cache_for(const char *name)
{
    uint64_t p = (uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15ULL;
    return &stats_cache[p >> 58];           /* 64 entries */
}

static inline up_stats_slot *stats_slot_for_update(const char *name)
{
    up_stats_table *t = stats_table;
    if (t == NULL || name == NULL)
        return NULL;
    stats_cache_entry *c = stats_cache_for(name);
    if (c->name == name && c->generation == stats_generation &&
        strcmp(stats_name(t, (size_t)(c->slot - t->slots)), name) == 0)
        return c->slot;
    up_stats_slot *slot = stats_find(t, name, 1);
    if (slot == NULL) {
        __atomic_fetch_add(&stats_dropped->value, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    c->name = name;
    c->generation = stats_generation;
    c->slot = slot;
    return slot;
}

static size_t stats_round_pow2(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

int up_stats_init(size_t capacity)
{
    if (stats_table != NULL)
        return -EALREADY;
    if (capacity == 0 || capacity > UP_STATS_MAX_CAPACITY)
        return -EINVAL;
    /* + 1: Dropped has a slot of its own, so it is never itself dropped */
    size_t slots = stats_round_pow2(2 * (capacity + 1));
    size_t head = (sizeof(up_stats_table) + 63) & ~(size_t)63;
    size_t size = head + slots * sizeof(up_stats_slot) +
                  slots * UP_STATS_NAME_STRIDE;
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    up_stats_table *t = map;
    t->mask = slots - 1;
    t->capacity = capacity + 1;
    t->used = 0;
    t->map_size = size;
    t->slots = (up_stats_slot *)((char *)map + head);
    t->names = (char *)(t->slots + slots);
    stats_dropped = stats_find(t, UP_STATS_DROPPED, 1);
    stats_generation++;
    stats_table = t;
    return 0;
}

void up_stats_free(void)
{
    if (stats_table == NULL)
        return;
    munmap(stats_table, stats_table->map_size);
    stats_table = NULL;
    stats_dropped = NULL;
}

void up_stats_add(const char *name, long long delta)
{
    up_stats_slot *slot = stats_slot_for_update(name);
    if (slot != NULL)
        __atomic_fetch_add(&slot->value, (int64_t)delta, __ATOMIC_RELAXED);
}

void up_stats_set(const char *name, long long value)
{
    up_stats_slot *slot = stats_slot_for_update(name);
    if (slot != NULL)
        __atomic_store_n(&slot->value, (int64_t)value, __ATOMIC_RELAXED);
}

void up_stats_max(const char *name, long long value)
{
    up_stats_slot *slot = stats_slot_for_update(name);
    if (slot == NULL)
        return;
    int64_t cur = __atomic_load_n(&slot->value, __ATOMIC_RELAXED);
    while (cur < value &&
           !__atomic_compare_exchange_n(&slot->value, &cur, (int64_t)value, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

long long up_stats_get(const char *name)
{
    up_stats_table *t = stats_table;
    if (t == NULL || name == NULL)
        return 0;
    up_stats_slot *slot = stats_find(t, name, 0);
    return slot ? __atomic_load_n(&slot->value, __ATOMIC_RELAXED) : 0;
}

typedef struct stats_entry {
    const char *name;
    long long value;
} stats_entry;

static int stats_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const stats_entry *)a)->name,
                  ((const stats_entry *)b)->name);
}

size_t up_stats_each(const char *prefix,
                     void (*fn)(const char *name, long long value, void *arg),
                     void *arg)
{
    up_stats_table *t = stats_table;
    if (t == NULL || fn == NULL)
        return 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    size_t used = __atomic_load_n(&t->used, __ATOMIC_RELAXED);
    /* a name claimed after the load above is left for the next call */
    stats_entry *list = malloc((used ? used : 1) * sizeof *list);
    size_t n = 0;

    for (size_t i = 0; i <= t->mask; i++) {
        uint64_t key = __atomic_load_n(&t->slots[i].key, __ATOMIC_ACQUIRE);
        if ((key & UP_STATS_STATE_MASK) != UP_STATS_READY)
            continue;
        const char *name = stats_name(t, i);
        if (plen && strncasecmp(name, prefix, plen) != 0)
            continue;
        long long value = __atomic_load_n(&t->slots[i].value, __ATOMIC_RELAXED);
        if (list == NULL) {
            fn(name, value, arg);   /* out of memory: unsorted beats nothing */
            n++;
        } else if (n < used) {
            list[n].name = name;
            list[n++].value = value;
        }
    }
    if (list == NULL)
        return n;

    qsort(list, n, sizeof *list, stats_entry_cmp);
    size_t visited = 0;
    for (size_t i = 0; i < n; i++) {
        /* a name twice (a claimant given up for dead came back): one sum */
        long long value = list[i].value;
        while (i + 1 < n && strcmp(list[i].name, list[i + 1].name) == 0)
            value += list[++i].value;
        fn(list[i].name, value, arg);
        visited++;
    }
    free(list);
    return visited;
}
