/*
 * metrics.h - the statistics as Prometheus text at http://metrics_listen/
 * metrics, served by the supervisor from the shared statistics table (so
 * the numbers are the sum over workers, as `upesi stat` shows them).
 */
#ifndef UPESI_METRICS_H
#define UPESI_METRICS_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* connections served at once (+1 for the listener) */
#define UP_METRICS_CONNS 8
#define UP_METRICS_POLLFDS (UP_METRICS_CONNS + 1)

/* Supervisor, at start: bind metrics_listen if set.  0, or -1 (logged:
 * the address and the reason; upesi does not start). */
int up_metrics_open(const up_config *cfg);
/* fill out[] with the descriptors to poll; returns how many */
int up_metrics_pollfds(struct pollfd *out, int max);
/* after poll: the same array and count */
void up_metrics_poll(const struct pollfd *fds, int n, uint64_t now_ms);
/* milliseconds until a connection's deadline (-1: none) */
int up_metrics_timeout(uint64_t now_ms);
void up_metrics_close(void);
/* in a worker, after fork: close the supervisor's descriptors */
void up_metrics_worker_start(void);

/* The exposition text of every counter now (malloc'd, *len set); NULL on
 * out of memory.  Also what tests and fuzzers call. */
char *up_metrics_render(size_t *len);

/* One statistic's Prometheus name, labels and type; 0, or -1 when the
 * name does not fit the buffers.  Exposed for tests. */
int up_metrics_map(const char *name, char *family, size_t flen,
                   char *labels, size_t llen, int *gauge, char *help,
                   size_t hlen);

#endif
