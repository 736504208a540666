/*
 * stats.c - unit test of host/stats.c: counters, peaks, sorting, the
 * case-insensitive prefix, name truncation, a full table, and exact sums
 * when several forked processes add into the same shared table.
 *
 * Prints TAP (tap.h); a failure is a "not ok" line and a non-zero exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "tap.h"

/* -- up_stats_each collectors ------------------------------------------ */

typedef struct seen {
    size_t n;
    int sorted;
    char last[UP_STAT_NAME_MAX + 1];
    char names[64][UP_STAT_NAME_MAX + 1];
    long long values[64];
} seen;

static void collect(const char *name, long long value, void *arg)
{
    seen *s = arg;
    if (s->n > 0 && strcmp(s->last, name) >= 0)
        s->sorted = 0;
    snprintf(s->last, sizeof s->last, "%s", name);
    if (s->n < 64) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
        s->values[s->n] = value;
    }
    s->n++;
}

static size_t each(const char *prefix, seen *s)
{
    memset(s, 0, sizeof *s);
    s->sorted = 1;
    return up_stats_each(prefix, collect, s);
}

/* -- the tests ---------------------------------------------------------- */

static void test_before_init(void)
{
    up_stats_add("Early", 5);
    is_int(up_stats_get("Early"), 0, "before init: updates ignored, reads 0");
}

static void test_basic(void)
{
    is_int(up_stats_init(1000), 0, "init");
    is_int(up_stats_init(1000), -EALREADY, "second init refused");
    is_int(up_stats_get("Test.Absent"), 0, "absent counter reads 0");
    up_stats_add("Test.A", 1);
    up_stats_add("Test.A", 41);
    is_int(up_stats_get("Test.A"), 42, "add");
    up_stats_add("Test.A", -2);
    is_int(up_stats_get("Test.A"), 40, "negative add");
    up_stats_set("Test.B", 7);
    up_stats_set("Test.B", 3);
    is_int(up_stats_get("Test.B"), 3, "set");
    is_int(up_stats_get("test.a"), 0, "names are case-sensitive");

    up_stats_max("Test.Peak", 5);
    up_stats_max("Test.Peak", 9);
    up_stats_max("Test.Peak", 2);
    is_int(up_stats_get("Test.Peak"), 9, "max keeps the peak");
    up_stats_max("Test.NegPeak", -4);
    is_int(up_stats_get("Test.NegPeak"), 0, "max of a new counter starts at 0");
    is_int(up_stats_get("Upesi.Stats.Dropped"), 0, "nothing dropped");
}

/* up_stats_add caches slots by the name's pointer: the same buffer holding
 * another name, and a table made anew, must not hit a stale entry. */
static void test_cache(void)
{
    char name[32];
    snprintf(name, sizeof name, "Test.Cache.One");
    up_stats_add(name, 1);
    up_stats_add(name, 1);
    snprintf(name, sizeof name, "Test.Cache.Two");
    up_stats_add(name, 5);
    is_int(up_stats_get("Test.Cache.One"), 2, "cache: same pointer, first name");
    is_int(up_stats_get("Test.Cache.Two"), 5,
           "cache: same pointer, another name counts apart");
    snprintf(name, sizeof name, "Test.Cache.On");
    up_stats_add(name, 7);
    is_int(up_stats_get("Test.Cache.On") * 10 + up_stats_get("Test.Cache.One"),
           72, "cache: a prefix of the cached name is another counter");
}

static void test_truncation(void)
{
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    memcpy(longname, "Trunc.", 6);
    up_stats_add(longname, 3);
    is_int(up_stats_get(longname), 3, "long name: found again");
    longname[UP_STAT_NAME_MAX] = '\0';
    is_int(up_stats_get(longname), 3, "long name: cut at UP_STAT_NAME_MAX");
    longname[UP_STAT_NAME_MAX - 1] = '\0';
    is_int(up_stats_get(longname), 0, "one byte shorter is another name");
    seen s;
    each("trunc.", &s);
    ok(s.n == 1 && strlen(s.names[0]) == UP_STAT_NAME_MAX,
         "listed with UP_STAT_NAME_MAX bytes");
}

static void test_each(void)
{
    static const char *const names[] = {
        "Sort.b", "Sort.A", "Sort.a", "Sort.Zeta", "Sort.B.x", "Sort.B",
        "Sort.Alpha", "Sortie", "SMTP.Command.MAIL", "SMTP.Command.DATA",
        "SMTP.Command.EHLO", "SMTP.Sessions.Peak",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        up_stats_add(names[i], (long long)i + 1);

    seen s;
    size_t n = each("Sort.", &s);
    is_int((long long)n, 7, "prefix Sort.: 7 counters visited");
    ok(s.sorted, "sorted by name");
    ok(n == 7 && strcmp(s.names[0], "Sort.A") == 0 &&
         strcmp(s.names[1], "Sort.Alpha") == 0 &&
         strcmp(s.names[2], "Sort.B") == 0 &&
         strcmp(s.names[3], "Sort.B.x") == 0 &&
         strcmp(s.names[4], "Sort.Zeta") == 0 &&
         strcmp(s.names[5], "Sort.a") == 0 &&
         strcmp(s.names[6], "Sort.b") == 0, "byte order (strcmp)");
    ok(n == 7 && s.values[0] == 2 && s.values[6] == 1,
         "values go with their names");

    is_int((long long)each("sort.", &s), 7, "prefix is case-insensitive");
    is_int((long long)each("smtp", &s), 4, "prefix smtp: 4 SMTP counters");
    ok(s.sorted && strcmp(s.names[0], "SMTP.Command.DATA") == 0,
         "smtp: sorted, DATA first");
    is_int((long long)each("smtp.command.", &s), 3, "prefix smtp.command.");
    is_int((long long)each("Nothing.", &s), 0, "no match: nothing visited");

    size_t all = each(NULL, &s);
    ok(s.sorted, "all: sorted");
    is_int((long long)each("", &s), (long long)all, "\"\" is all, like NULL");
    int has_dropped = 0;
    for (size_t i = 0; i < s.n && i < 64; i++)
        if (strcmp(s.names[i], "Upesi.Stats.Dropped") == 0)
            has_dropped = 1;
    ok(has_dropped, "Upesi.Stats.Dropped is always listed");
}

static void test_full_table(void)
{
    up_stats_free();
    is_int(up_stats_init(8), 0, "init a table of 8");
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "Full.%02d", i);
        up_stats_add(name, 1);
    }
    int kept = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "Full.%02d", i);
        kept += up_stats_get(name) == 1;
    }
    is_int(kept, 8, "8 names kept");
    is_int(up_stats_get("Upesi.Stats.Dropped"), 2, "2 updates dropped");
    up_stats_add("Full.00", 1);
    is_int(up_stats_get("Full.00"), 2, "existing names still count");
    up_stats_set("Full.New", 5);
    up_stats_max("Full.New", 5);
    is_int(up_stats_get("Upesi.Stats.Dropped"), 4, "set and max dropped too");
    seen s;
    is_int((long long)each(NULL, &s), 9, "8 names and Dropped listed");
    up_stats_free();
}

#define FORK_CHILDREN 8
#define FORK_ADDS 100000
#define FORK_NEW 200

/* Each child races the others to create the same FORK_NEW names, then
 * adds FORK_ADDS times to three shared counters. */
static void fork_child(int k)
{
    char name[32];
    for (int j = 0; j < FORK_NEW; j++) {
        snprintf(name, sizeof name, "Race.%03d", j);
        up_stats_add(name, 1);
    }
    for (int i = 0; i < FORK_ADDS; i++) {
        up_stats_add("Fork.One", 1);
        up_stats_add("Fork.K", k);
        up_stats_add("Fork.Down", -1);
        up_stats_max("Fork.Peak", (long long)k * FORK_ADDS + i);
    }
    snprintf(name, sizeof name, "Fork.Child.%d", k);
    up_stats_set(name, k);
    _exit(0);
}

static void test_fork(void)
{
    is_int(up_stats_init(4096), 0, "init a table for the workers");
    pid_t pids[FORK_CHILDREN];
    int forked = 0;
    for (int k = 0; k < FORK_CHILDREN; k++) {
        fflush(stdout);
        pids[k] = fork();
        if (pids[k] == 0)
            fork_child(k);
        forked += pids[k] > 0;
    }
    int clean = 1;
    for (int k = 0; k < FORK_CHILDREN; k++) {
        int status;
        if (pids[k] <= 0 || waitpid(pids[k], &status, 0) != pids[k] ||
            !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            clean = 0;
    }
    ok(forked == FORK_CHILDREN && clean, "8 children ran and exited 0");

    long long ksum = 0;
    for (int k = 0; k < FORK_CHILDREN; k++)
        ksum += (long long)k * FORK_ADDS;
    is_int(up_stats_get("Fork.One"), (long long)FORK_CHILDREN * FORK_ADDS,
         "Fork.One: exact sum over 8 processes");
    is_int(up_stats_get("Fork.K"), ksum, "Fork.K: exact sum");
    is_int(up_stats_get("Fork.Down"), -(long long)FORK_CHILDREN * FORK_ADDS,
         "Fork.Down: exact sum");
    is_int(up_stats_get("Fork.Peak"),
         (long long)(FORK_CHILDREN - 1) * FORK_ADDS + FORK_ADDS - 1,
         "Fork.Peak: the highest of all processes");

    int race_ok = 1;
    char name[32];
    for (int j = 0; j < FORK_NEW; j++) {
        snprintf(name, sizeof name, "Race.%03d", j);
        race_ok &= up_stats_get(name) == FORK_CHILDREN;
    }
    ok(race_ok, "names created concurrently: each counted by all");
    seen s;
    is_int((long long)each("Race.", &s), FORK_NEW,
         "and each listed once (no duplicate slots)");
    is_int((long long)each("Fork.Child.", &s), FORK_CHILDREN,
         "one counter per child");
    is_int(up_stats_get("Upesi.Stats.Dropped"), 0, "nothing dropped");
}

static void bench(void)
{
    static const char *const verbs[] = {
        "SMTP.Command.EHLO", "SMTP.Command.MAIL", "SMTP.Command.RCPT",
        "SMTP.Command.DATA", "SMTP.Command.QUIT", "SMTP.Messages.Accepted",
    };
    enum { N = 3000000 };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++)
        up_stats_add(verbs[i % 6], 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 +
                 (double)(b.tv_nsec - a.tv_nsec)) / N;
    diag("up_stats_add: %.1f ns per call (one process)", ns);
    is_int(up_stats_get("SMTP.Command.EHLO"), N / 6, "bench counted");
}

int main(void)
{
    plan(47);
    test_before_init();
    test_basic();
    test_cache();
    test_truncation();
    test_each();
    test_full_table();
    test_fork();
    bench();
    up_stats_free();
    return done_testing();
}
