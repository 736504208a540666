/*
 * data_reader.c - the DATA state machine (see data_reader.h).
 *
 * Five states and a few counters: no buffer, so a message of any size
 * passes in constant memory and the same bytes come out wherever the input
 * was split.  Plain text is handed to the sink straight from the caller's
 * buffer, a run at a time; only the CRLF that replaces a bare CR or LF (or
 * completes a CR left over from the previous call) comes from a constant.
 *
 * End of data is recognised in one place only: "." CR LF right after a real
 * CRLF (DR_BOL), which is also the state at the start.  A bare LF or CR
 * leads to DR_TEXT, where a dot is ordinary text: no LF.LF, CR.CR, LF.CRLF
 * or CRLF.LF sequence can reach the end state (SMTP smuggling).
 *
 * A dot at the start of a line after a real CRLF is the sender's stuffing
 * and is removed unless it is the end marker, also when a bare CR or LF
 * follows it: RFC 5321 4.5.2 deletes the period when "there are other
 * characters on the line", and with CRLF as the only line end there are.
 *
 * Fails: never itself; a sink's first error is kept in sink_error and the
 * reader goes on consuming (without calling the sink) to find the end.
 */
#include <string.h>

#include "data_reader.h"

enum {
    DR_BOL = 0,     /* start of a line that followed a real CRLF           */
    DR_TEXT,        /* inside a line, or after a bare CR / LF              */
    DR_CR,          /* a CR ended the previous input: CRLF or bare CR?     */
    DR_DOT,         /* a stuffing dot (dropped) at DR_BOL                  */
    DR_DOT_CR,      /* "." CR at DR_BOL: end of data if LF follows         */
    DR_END          /* the end marker was consumed                         */
};

static const char dr_crlf[] = "\r\n";

void up_data_init(up_data_reader *dr, up_data_sink sink, void *arg)
{
    memset(dr, 0, sizeof *dr);
    dr->state = DR_BOL;
    dr->sink = sink;
    dr->sink_arg = arg;
}

static void dr_emit(up_data_reader *dr, const char *buf, size_t len)
{
    if (len == 0)
        return;
    dr->bytes_out += len;
    if (dr->sink_error == 0 && dr->sink != NULL) {
        int rc = dr->sink(dr->sink_arg, buf, len);
        if (rc != 0)
            dr->sink_error = rc;
    }
}

int up_data_feed(up_data_reader *dr, const char *buf, size_t len,
                 size_t *consumed)
{
    size_t i = 0;
    size_t run = 0;     /* start of the bytes that go out verbatim */
    int st = dr->state;

    if (st == DR_END) {
        *consumed = 0;
        return 1;
    }
    while (i < len) {
        switch (st) {
        case DR_TEXT:
            while (i < len && buf[i] != '\r' && buf[i] != '\n') {
                if (buf[i] == '\0')
                    dr->nul_bytes++;
                i++;
            }
            if (i == len)
                break;
            if (buf[i] == '\n') {
                dr_emit(dr, buf + run, i - run);
                dr_emit(dr, dr_crlf, 2);
                dr->bare_lf++;
                run = ++i;
            } else if (i + 1 < len && buf[i + 1] == '\n') {
                i += 2;             /* CRLF: stays in the run */
                st = DR_BOL;
            } else {
                dr_emit(dr, buf + run, i - run);
                run = ++i;
                st = DR_CR;
            }
            break;
        case DR_BOL:
            if (buf[i] == '.') {
                dr_emit(dr, buf + run, i - run);
                run = ++i;
                st = DR_DOT;
            } else {
                st = DR_TEXT;
            }
            break;
        case DR_CR:             /* run == i: the CR itself is not in it */
            dr_emit(dr, dr_crlf, 2);
            if (buf[i] == '\n') {
                run = ++i;
                st = DR_BOL;
            } else {
                dr->bare_cr++;
                st = DR_TEXT;
            }
            break;
        case DR_DOT:            /* run == i: the dot is dropped */
            if (buf[i] == '\r') {
                run = ++i;
                st = DR_DOT_CR;
            } else {
                st = DR_TEXT;
            }
            break;
        case DR_DOT_CR:
            if (buf[i] == '\n') {
                dr->state = DR_END;
                *consumed = i + 1;
                return 1;
            }
            dr_emit(dr, dr_crlf, 2);
            dr->bare_cr++;
            st = DR_TEXT;
            break;
        }
    }
    dr_emit(dr, buf + run, len - run);
    dr->state = st;
    *consumed = len;
    return 0;
}
