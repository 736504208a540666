/*
 * actions.h - the host's message-action service (api->message_action,
 * DESIGN.md 7): what becomes of a message once data_post has run.
 *
 * Plugins ask for actions during data_post; tag and copy_to change the
 * message and the envelope at once, the others set the transaction's
 * disposition.  When the data_post chain ends without a denial the session
 * hands the transaction to up_actions_run, which writes the quarantine,
 * journal and hold files (spool format, docs/spool-format.md) on a pool
 * thread, durably, and then tells the session what to answer.
 *
 * Fails: a file that cannot be written (or made durable) makes the whole
 * message a temporary failure: files already committed for it are
 * removed again and the client is told 451/452, so nothing is half done.
 */
#ifndef UPESI_ACTIONS_H
#define UPESI_ACTIONS_H

#include "upesi/plugin.h"

typedef struct up_session up_session;

/* Ordered by strength: the strongest asked for wins. */
typedef enum up_disposition {
    UP_DISP_DELIVER = 0,        /* the queue hook runs                    */
    UP_DISP_DROP,               /* 250, logged, not delivered             */
    UP_DISP_HOLD,               /* 250, <spool_dir>/hold/<id>             */
    UP_DISP_QUARANTINE,         /* 250, <spool_dir>/quarantine/<id>       */
    UP_DISP_REJECT              /* 550 5.7.1                              */
} up_disposition;

typedef struct up_actions_work up_actions_work;

typedef struct up_actions {
    up_disposition disposition;
    const char *by;             /* plugin that set it (lives for the process) */
    char *reason;               /* its arg: log text, or the reject reply   */
    int journal;                /* a copy goes to journal/ too             */
    const char *journal_by;
    up_actions_work *work;      /* files being written, NULL otherwise     */
} up_actions;

#define UP_ACTIONS_REJECT_TEXT "Message rejected for policy reasons"

/* api->message_action for a call of `plugin` in session s.  0 or -errno. */
int up_actions_take(up_session *s, const char *plugin, upesi_action action,
                    const char *arg);

/* Carry out the disposition's files (not REJECT: the session answers that
 * itself).  done runs exactly once, on the loop, maybe before this returns
 * (nothing to write), with 0 or a positive errno; it does not run if the
 * transaction is cleared first (client gone): the files are then still
 * committed whole, and logged. */
typedef void (*up_actions_done)(up_session *s, int err);
void up_actions_run(up_session *s, up_actions_done done);

/* The envelope of the session's transaction as its spool files start
 * (docs/spool-format.md; host/envelope.c builds it): for the action files
 * and for api->spool_envelope.  0, -EINVAL (*bad_key set for CR or LF in
 * a field), -ENOMEM. */
int up_actions_envelope(up_session *s, char **out, size_t *out_len,
                        const char **bad_key);

/* End of the transaction: forget the actions, detach running work. */
void up_actions_clear(up_actions *a);

/* `upesi -c DIR release QUEUEID`: move <spool_dir>/hold/ID to queue/ID,
 * durably, without the server (see docs/mail-rules.md).  Prints what it
 * did; returns the exit status (0 ok, 1 error). */
int up_actions_release(const char *conf_dir, const char *queue_id);

#endif
