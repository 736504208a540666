/*
 * fwd_queue.h - the spool-mode queue's insides, shared by its files (the
 * rest of the plugin sees fwd_queue_worker_start, fwd_queue_worker_stop,
 * fwd_queue_kick, fwd_queue_register_commands and fwd_report_failures in
 * forward.h):
 *
 *   fwd_queue.c     the runner: scan, claim, recover, when to look again
 *   fwd_delivery.c  one claimed message: its jobs, then what becomes of it
 *   fwd_retry.c     the retry state beside a message: deferred/<id>
 *   fwd_report.c    a DSN, or dead/, for refused recipients
 *   fwd_control.c   the `queue` and `flush` control commands
 *
 * Everything runs on the worker's loop except the scan (scan_work, on the
 * host's thread pool).
 */
#ifndef FWD_QUEUE_H
#define FWD_QUEUE_H

#include "forward.h"

/* ---------------------------------------------------------------------- */
/* the runner (fwd_queue.c)                                               */

long long fwd_now_ms(void);
/* a queue file name: [A-Za-z0-9._-], no leading dot, under 64 */
int fwd_id_ok(const char *id);
/* a scan in ms; 0: now (or right after the scan running), in a worker */
void fwd_scan_schedule(unsigned ms);

/* ---------------------------------------------------------------------- */
/* deliveries (fwd_delivery.c)                                            */

extern int fwd_running;             /* deliveries in flight here */
/* deliver <spool>/active/<pid>/<id>, claimed by this worker */
void fwd_deliver_start(const char *spool, const char *id);

/* ---------------------------------------------------------------------- */
/* retry state: deferred/<id> (fwd_retry.c)                               */

typedef struct fwd_state {
    long attempts;
    int delay_notified;             /* the delay DSN went out */
    long long last_ms, next_ms;
    char error[512];
} fwd_state;

/* 0, or -1 (and st zeroed) when there is none */
int fwd_state_read(const char *spool, const char *id, fwd_state *st);
/* replace it (tmp file, rename); nothing when that fails */
void fwd_state_write(const char *spool, const char *id, const fwd_state *st);
void fwd_state_remove(const char *spool, const char *id);

#endif
