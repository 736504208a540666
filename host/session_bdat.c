/*
 * session_bdat.c - BDAT (RFC 3030 CHUNKING) and BINARYMIME in a session.
 *
 * "BDAT <size> [LAST]" is followed by exactly <size> bytes of content:
 * they are counted, never scanned (no end-of-data marker, no dot
 * unstuffing, no line-end repair: the smuggling rules of DATA have
 * nothing to find), and go into the message as they are.  Each chunk is
 * answered when all its bytes are read; the LAST one ends the message
 * like DATA's end of data (data_post, message actions, queue).  Chunks
 * may be pipelined with anything (RFC 3030 4.2): the replies come out
 * in order like every other reply.
 *
 * The first chunk of a transaction runs the data hook chain (as DATA
 * does) before its bytes are read.  Bytes are counted against
 * max_message_size as they arrive: past it they are read and thrown
 * away, and the chunk that went over gets 552 5.3.4.  A chunk refused
 * for any reason (no MAIL, no RCPT, the data hook, the size) is read to
 * its end and thrown away, never run as commands, and the transaction is
 * over (RFC 3030 4.2: a failed transaction takes no more chunks; later
 * ones get 503).  RSET in between drops what the chunks brought.
 *
 * Fails: a BDAT line that does not parse has no length the host could
 * trust, so what follows it cannot be told apart from commands: 501 and
 * the session is closed.
 */
#include <stdio.h>
#include <string.h>

#include "format.h"
#include "hooks.h"
#include "log.h"
#include "session.h"
#include "session_int.h"
#include "stats.h"

/* Chunk bytes to the message, counted against max_message_size. */
static void bdat_store(up_session *s, const char *buf, size_t len)
{
    if (s->data_too_big)
        return;
    if (s->cfg->max_message_size &&
        s->msg.data_len + len > s->cfg->max_message_size) {
        s->data_too_big = 1;
        return;
    }
    up_message_append(&s->msg, buf, len);       /* errors are sticky */
}

/* The chunk is read: answer it. */
static void bdat_chunk_end(up_session *s)
{
    s->state = UP_ST_COMMAND;
    session_data_deadline(s, 0);
    if (s->bdat_discard) {
        s->bdat_discard = 0;
        up_log(s->id, UPESI_LOG_INFO, "threw away a refused BDAT chunk "
               "of %llu bytes", (unsigned long long)s->bdat_size);
        return;                 /* the refusal was the answer */
    }
    if (s->data_too_big || s->bdat_last) {
        session_message_end(s); /* 552, or the message is complete */
        return;
    }
    session_reply_fmt(s, 250, "2.0.0", "Ok: %llu octets received",
                      (unsigned long long)s->bdat_size);
}

/* In UP_ST_BDAT: take what is buffered of the chunk.  1 when the chunk
 * ended (and was answered), 0 when more of it is needed. */
int session_bdat_feed(up_session *s)
{
    if (s->bdat_left > 0) {
        size_t len;
        const char *p = up_lines_pending(&s->lines, &len);
        if (len == 0)
            return 0;
        size_t take = (uint64_t)len < s->bdat_left ? len
                                                   : (size_t)s->bdat_left;
        if (!s->bdat_discard)
            bdat_store(s, p, take);
        up_lines_consume(&s->lines, take);
        s->bdat_left -= take;
        if (s->bdat_left > 0)
            return 0;
    }
    bdat_chunk_end(s);
    return 1;
}

static void bdat_begin(up_session *s, int discard)
{
    s->bdat_discard = discard;
    s->state = UP_ST_BDAT;
    /* each chunk, like DATA's content, within data_deadline of its BDAT */
    session_data_deadline(s, 1);
}

/* The chunk is refused: its bytes are still read (and thrown away). */
static void bdat_refuse(up_session *s, int code, const char *enhanced,
                        const char *text)
{
    up_session_reply(s, code, enhanced, text);
    if (s->state != UP_ST_CLOSING)
        bdat_begin(s, 1);
}

static void on_bdat_data_done(up_session *s, upesi_verdict v,
                              const up_reply *r)
{
    if (session_is_denial(v)) {
        session_reply_denial(s, UPESI_HOOK_DATA, v, r, "BDAT");
        session_txn_reset(s);
        if (s->state != UP_ST_CLOSING)
            bdat_begin(s, 1);
    } else {
        bdat_begin(s, 0);
    }
    session_continue(s);
}

void session_cmd_bdat(up_session *s)
{
    unsigned long long size;
    int last;
    up_parse_error err;
    if (up_bdat_parse(s->cmd.arg, &size, &last, &err) != 0) {
        up_stats_add("SMTP.Command.Invalid", 1);
        up_log(s->id, UPESI_LOG_NOTICE, "BDAT refused: %s: %.100s",
               err.text, s->cmd.arg);
        up_session_reply(s, err.code, err.enhanced, err.text);
        session_close(s, "BDAT without a usable size");
        return;
    }
    s->bdat_size = s->bdat_left = size;
    s->bdat_last = last;
    if (!s->have_mail) {
        bdat_refuse(s, 503, "5.5.1", "Error: need MAIL command");
        return;
    }
    if (s->n_rcpts == 0) {
        bdat_refuse(s, 503, "5.5.1", "Error: need RCPT command");
        return;
    }
    if (s->bdat_used) {
        bdat_begin(s, 0);
        return;
    }
    s->bdat_used = 1;           /* the first chunk: the data hook, as DATA */
    up_notes_set(&s->txn_notes, "data.bdat", "1");
    up_queue_id_make(s->queue_id, sizeof s->queue_id);
    up_hook_run(s, UPESI_HOOK_DATA, on_bdat_data_done);
}
