/*
 * envelope.h - the text envelope of a spool file (docs/spool-format.md,
 * version 1, or 2 when the transaction carries SMTPUTF8 or DSN
 * parameters), built from a transaction's fields.
 */
#ifndef UPESI_ENVELOPE_H
#define UPESI_ENVELOPE_H

#include <stddef.h>

#include "upesi/plugin.h"

/* What an envelope is made of.  client_name: the reverse name, NULL or ""
 * when unknown; sender: NULL or "" for the null sender. */
typedef struct up_envelope {
    const upesi_conn_info *conn;
    const char *queue_id;
    const char *client_name;
    const char *sender;
    const char *const *rcpts;
    size_t n_rcpts;
    int packed;                 /* sender and rcpts are packed strings
                                   (smtp_ext.h): their parameters become
                                   Mail-Params and Rcpt-Params lines    */
} up_envelope;

/* The envelope lines and the empty line that ends them, in a malloc'd
 * buffer (*out, *out_len); arrival time is now.  0; -EINVAL with *bad_key
 * naming the field when a value holds CR or LF (it could forge envelope
 * lines); -ENOMEM. */
int up_envelope_build(const up_envelope *e, char **out, size_t *out_len,
                      const char **bad_key);

#endif
