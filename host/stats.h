/*
 * stats.h - statistics counters, Domino style names ("SMTP.Sessions.Peak").
 *
 * The table lives in one anonymous shared mapping created before workers
 * fork, so every worker adds into the same counters and `upesi stat` shows
 * the sum without any gathering.  Slots are claimed lock-free (open
 * addressing, compare-and-swap on the slot state); values are updated with
 * atomic adds.  A full table drops new names and counts them in
 * "Upesi.Stats.Dropped" (never fails a caller).
 */
#ifndef UPESI_STATS_H
#define UPESI_STATS_H

#include <stddef.h>

#define UP_STAT_NAME_MAX 120

/* Create the shared table (call once, before forking).  0 or -errno. */
int up_stats_init(size_t capacity);

void up_stats_add(const char *name, long long delta);
void up_stats_set(const char *name, long long value);
/* raise the counter to value if it is lower (peaks) */
void up_stats_max(const char *name, long long value);
long long up_stats_get(const char *name);

/* Call fn for each counter whose name starts with prefix (NULL or "" = all),
 * sorted by name.  Returns the number of counters visited. */
size_t up_stats_each(const char *prefix,
                     void (*fn)(const char *name, long long value, void *arg),
                     void *arg);

#endif
