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

/* Create the shared table (call once, before forking) for up to capacity
 * names.  0, -EINVAL (capacity 0 or absurd), -EALREADY (a table exists) or
 * mmap's -errno.  Before it, updates are ignored and reads return 0. */
int up_stats_init(size_t capacity);
/* Unmap the table; up_stats_init may then make a new one (tests). */
void up_stats_free(void);

/* Names are case-sensitive and cut at UP_STAT_NAME_MAX bytes.  An update
 * to a new name once capacity names exist is dropped and counted in
 * "Upesi.Stats.Dropped" (which has a slot of its own, always listed). */
void up_stats_add(const char *name, long long delta);
void up_stats_set(const char *name, long long value);
/* raise the counter to value if it is lower (peaks) */
void up_stats_max(const char *name, long long value);
long long up_stats_get(const char *name);

/* Call fn for each counter whose name starts with prefix (NULL or "" = all;
 * compared case-insensitively, like Domino's `show stat smtp`), sorted by
 * name in byte order (strcmp, as `LC_ALL=C sort`).  Returns the number of
 * counters visited. */
size_t up_stats_each(const char *prefix,
                     void (*fn)(const char *name, long long value, void *arg),
                     void *arg);

#endif
