/*
 * simulate.h - `upesi -c DIR -bh IP [HELO]`: one SMTP session read from
 * stdin and answered on stdout as if from IP, through every plugin of the
 * configuration, with each plugin's decision per hook on stderr (Exim's
 * -bh).  Nothing is queued: the queue hook is reported, not run; the
 * message actions' files (hold, quarantine, journal) are reported, not
 * written; the statistics are this process's own table, so a running
 * server's counters do not move.
 *
 * The store is read for real; store.c asks up_simulate_store_writes()
 * before a write: none is made unless `-bh --write` (an incr answers the
 * sum it would have stored).
 */
#ifndef UPESI_SIMULATE_H
#define UPESI_SIMULATE_H

#include "config.h"

/* Is this process a -bh simulation?  (hooks.c, actions.c, session.c) */
int up_simulating(void);
/* the client address the session pretends to come from */
const char *up_simulate_ip(void);
/* May the store write (-bh --write)?  1 outside a simulation. */
int up_simulate_store_writes(void);
/* Trace one line to stderr: "hook: plugin -> VERDICT code text" */
void up_simulate_trace(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* This process is a simulation from now on (simulate_state.c). */
void up_simulate_begin(const char *ip, int write_store);

/* Run the session; returns the exit status (0, or 1 on a setup error).
 * helo: if not NULL, "EHLO helo" is sent before stdin's lines. */
int up_simulate_run(up_config *cfg, const char *ip, const char *helo,
                    int write_store);

#endif
