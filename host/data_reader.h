/*
 * data_reader.h - the DATA state machine (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Consumes raw bytes after the 354 reply and produces the message with
 * dot-unstuffing.  End of data is CRLF "." CRLF only (or "." CRLF as the very
 * first line): a bare LF or bare CR never ends data, whatever follows it,
 * which closes the SMTP smuggling family (LF.LF, CR.CR, LF.CRLF ...).
 * Output line ends are always CRLF: a bare LF or bare CR is emitted as CRLF
 * and counted, so the stored message is canonical and policy can refuse it.
 * A "." at the start of a line is unstuffed only when that line followed a
 * real CRLF (or is the first line); it is removed whatever follows it but
 * CRLF (".x", "..", and "." then a bare CR or LF, RFC 5321 4.5.2), and kept
 * after a bare CR or LF.
 *
 * The reader is incremental: input may be split at any byte.  It keeps at
 * most a few bytes of state between calls, so a message of any size passes
 * through in constant memory.  The sink receives the output in pieces.
 */
#ifndef UPESI_DATA_READER_H
#define UPESI_DATA_READER_H

#include <stddef.h>
#include <stdint.h>

typedef int (*up_data_sink)(void *arg, const char *buf, size_t len);

typedef struct up_data_reader {
    int state;               /* private                                    */
    up_data_sink sink;
    void *sink_arg;
    uint64_t bytes_out;      /* message bytes produced so far              */
    uint64_t bare_lf;        /* bare LF seen (emitted as CRLF)             */
    uint64_t bare_cr;        /* bare CR seen (emitted as CRLF)             */
    uint64_t nul_bytes;      /* NUL bytes seen (kept)                      */
    int sink_error;          /* first non-zero sink return, sticky         */
} up_data_reader;

void up_data_init(up_data_reader *dr, up_data_sink sink, void *arg);

/* Feed input.  Returns 1 when the end-of-data marker was consumed (the rest
 * of the input, from *consumed on, belongs to the next command), 0 when all
 * of it was consumed and more data is expected.  After a sink error the
 * reader keeps consuming (to find the end of data) without calling the sink
 * again. */
int up_data_feed(up_data_reader *dr, const char *buf, size_t len,
                 size_t *consumed);

#endif
