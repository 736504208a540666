/*
 * fsync_probe.c - what making N small files durable costs on this disk,
 * three ways; the evidence behind the queue_spool figures in
 * bench/README.md (group commit).
 *
 *   cc -O2 -o /tmp/fsync_probe bench/fsync_probe.c
 *   /tmp/fsync_probe DIR N MODE       (DIR on the spool's filesystem)
 *
 * Each of 20 rounds writes N files of 1400 bytes into DIR, makes them
 * durable, renames each, and fsyncs DIR once (what queue_spool does for a
 * commit batch).  MODE 0: fsync each file (queue_spool today); 1: one
 * syncfs(2) for all; 2: sync_file_range(WRITE) on all, then fdatasync each;
 * 3: the N messages appended to one file, one fsync, one rename (a batch
 * file: the fewest writes the disk can be asked for).
 * Prints milliseconds per batch and files per second.  With N = 1 and
 * N = 50, the ratio of the rates is the most group commit can give.
 *
 * Fails: exits 1 on a bad argument or a failed open/write; a failed sync
 * is reported and counted, not fatal.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBE_MAX 1000
#define PROBE_ROUNDS 20

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR N MODE(0|1|2|3)\n", argv[0]);
        return 1;
    }
    const char *dir = argv[1];
    int n = atoi(argv[2]), mode = atoi(argv[3]), failed = 0;
    if (n < 1 || n > PROBE_MAX || mode < 0 || mode > 3) {
        fprintf(stderr, "N is 1..%d, MODE 0..3\n", PROBE_MAX);
        return 1;
    }
    static int fds[PROBE_MAX];
    char buf[1400], from[4096], to[4096];
    memset(buf, 'x', sizeof buf);
    double t0 = now();
    for (int r = 0; r < PROBE_ROUNDS && mode == 3; r++) {
        snprintf(from, sizeof from, "%s/probe-tmp-0", dir);
        int fd = open(from, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0) {
            perror(from);
            return 1;
        }
        for (int i = 0; i < n; i++)
            if (write(fd, buf, sizeof buf) != sizeof buf) {
                perror(from);
                return 1;
            }
        failed += fdatasync(fd) != 0;
        snprintf(to, sizeof to, "%s/probe-0", dir);
        failed += rename(from, to) != 0;
        close(fd);
        int d = open(dir, O_RDONLY | O_DIRECTORY);
        failed += d < 0 || fsync(d) != 0;
        if (d >= 0)
            close(d);
    }
    for (int r = 0; r < PROBE_ROUNDS && mode != 3; r++) {
        for (int i = 0; i < n; i++) {
            snprintf(from, sizeof from, "%s/probe-tmp-%d", dir, i);
            fds[i] = open(from, O_CREAT | O_WRONLY | O_TRUNC, 0600);
            if (fds[i] < 0 || write(fds[i], buf, sizeof buf) != sizeof buf) {
                perror(from);
                return 1;
            }
        }
        if (mode == 0) {
            for (int i = 0; i < n; i++)
                failed += fsync(fds[i]) != 0;
        } else if (mode == 1) {
            failed += syncfs(fds[0]) != 0;
        } else {
            for (int i = 0; i < n; i++)
                failed += sync_file_range(fds[i], 0, 0,
                                          SYNC_FILE_RANGE_WRITE) != 0;
            for (int i = 0; i < n; i++)
                failed += fdatasync(fds[i]) != 0;
        }
        for (int i = 0; i < n; i++) {
            snprintf(from, sizeof from, "%s/probe-tmp-%d", dir, i);
            snprintf(to, sizeof to, "%s/probe-%d", dir, i);
            failed += rename(from, to) != 0;
            close(fds[i]);
        }
        int d = open(dir, O_RDONLY | O_DIRECTORY);
        failed += d < 0 || fsync(d) != 0;
        if (d >= 0)
            close(d);
    }
    double t = now() - t0;
    for (int i = 0; i < n; i++) {
        snprintf(to, sizeof to, "%s/probe-%d", dir, i);
        unlink(to);
    }
    printf("mode %d, %d files a batch: %.2f ms a batch, %.0f files/s%s\n",
           mode, n, t / PROBE_ROUNDS * 1000, n * PROBE_ROUNDS / t,
           failed ? " (some syncs failed)" : "");
    return 0;
}
