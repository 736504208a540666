/*
 * simulate_state.c - whether this process is a -bh session simulation
 * (simulate.h), kept apart from the simulation itself so that the modules
 * that ask (hooks, actions, session, store) link without it.
 *
 * Fails: never.
 */
#include <stdarg.h>
#include <stdio.h>

#include "simulate.h"

static int sim_on;
static int sim_write_store;
static char sim_ip[64];

int up_simulating(void)
{
    return sim_on;
}

const char *up_simulate_ip(void)
{
    return sim_on ? sim_ip : NULL;
}

int up_simulate_store_writes(void)
{
    return !sim_on || sim_write_store;
}

void up_simulate_trace(const char *fmt, ...)
{
    if (!sim_on)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void up_simulate_begin(const char *ip, int write_store)
{
    sim_on = 1;
    sim_write_store = write_store;
    snprintf(sim_ip, sizeof sim_ip, "%s", ip);
}
