/*
 * data_reader.c - unit test of host/data_reader.c, the DATA state machine:
 * end of data only at CRLF.CRLF, the smuggling probes, dot-unstuffing,
 * bare CR / LF canonicalised and counted, identical output at every split,
 * sink errors.  Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <stdlib.h>
#include <string.h>

#include "data_reader.h"
#include "tap.h"

typedef struct t_out {
    char buf[8192];
    size_t len;
    int calls;
    int fail_after;          /* return an error on this call (0: never) */
} t_out;

static int t_sink(void *arg, const char *buf, size_t len)
{
    t_out *o = arg;
    o->calls++;
    if (o->fail_after && o->calls >= o->fail_after)
        return -5;
    if (len > sizeof o->buf - o->len)
        return -28;
    memcpy(o->buf + o->len, buf, len);
    o->len += len;
    return 0;
}

typedef struct t_result {
    int done;
    size_t end;              /* input offset just past the end marker */
    up_data_reader dr;
    t_out out;
} t_result;

/* Run `in` through a reader, cut at the offsets in cuts[] (ascending,
 * ncuts of them); bytewise feeds one byte at a time instead. */
static void t_run(const char *in, size_t len, const size_t *cuts, int ncuts,
                  int bytewise, t_result *r)
{
    memset(r, 0, sizeof *r);
    up_data_init(&r->dr, t_sink, &r->out);
    size_t off = 0;
    int c = 0;
    while (off < len && !r->done) {
        size_t next = len;
        if (bytewise)
            next = off + 1;
        else if (c < ncuts)
            next = cuts[c++];
        if (next < off)
            next = off;
        size_t used = 0;
        r->done = up_data_feed(&r->dr, in + off, next - off, &used);
        if (!r->done && used != next - off)
            diag("consumed %zu of %zu without ending", used, next - off);
        off += used;
    }
    r->end = off;
}

static void t_whole(const char *in, t_result *r)
{
    t_run(in, strlen(in), NULL, 0, 0, r);
}

static int t_out_is(const t_result *r, const char *want)
{
    return r->out.len == strlen(want) && !memcmp(r->out.buf, want, r->out.len);
}

static int t_no_bare(const t_result *r)
{
    for (size_t i = 0; i < r->out.len; i++) {
        if (r->out.buf[i] == '\n' && (i == 0 || r->out.buf[i - 1] != '\r'))
            return 0;
        if (r->out.buf[i] == '\r' &&
            (i + 1 == r->out.len || r->out.buf[i + 1] != '\n'))
            return 0;
    }
    return 1;
}

static void t_basic(void)
{
    t_result r;
    t_whole("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n", &r);
    ok(r.done && r.end == 24 && t_out_is(&r, "Subject: hi\r\n\r\nbody\r\n"),
       "CRLF.CRLF ends data; the rest is the next command's");
    ok(r.dr.bytes_out == 21 && r.dr.bare_lf == 0 && r.dr.bare_cr == 0,
       "bytes_out counts the output, no bare line ends");

    t_whole(".\r\nQUIT\r\n", &r);
    ok(r.done && r.end == 3 && r.out.len == 0,
       "\".\" CRLF as the very first line: empty message");

    t_whole("..\r\n..x\r\n.y\r\n.\r\n", &r);
    ok(r.done && t_out_is(&r, ".\r\n.x\r\ny\r\n"),
       "dot-unstuffing: \"..\" -> \".\", \"..x\" -> \".x\", \".y\" -> \"y\"");

    t_whole("a\r\n...\r\n.\r\n", &r);
    ok(r.done && t_out_is(&r, "a\r\n..\r\n"), "\"...\" -> \"..\"");

    t_whole("a\r\nb", &r);
    ok(!r.done && r.end == 4 && t_out_is(&r, "a\r\nb"),
       "no end marker: all consumed, more expected");

    t_run("a\0b\r\n.\r\n", 8, NULL, 0, 0, &r);
    ok(r.done && r.dr.nul_bytes == 1 && r.out.len == 5 &&
       !memcmp(r.out.buf, "a\0b\r\n", 5), "NUL kept and counted");
}

/* None of these ends data; each is emitted with CRLF line ends and
 * counted.  The real end follows. */
static void t_smuggling(void)
{
    static const struct {
        const char *in, *want;
        int lf, cr;
    } probes[] = {
        { "a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n", 2, 0 },
        { "a\r.\rMAIL\r\n", "a\r\n.\r\nMAIL\r\n", 0, 2 },
        { "a\n.\r\nMAIL\r\n", "a\r\n.\r\nMAIL\r\n", 1, 0 },
        { "a\r\n.\nMAIL\r\n", "a\r\n\r\nMAIL\r\n", 1, 0 },
        { "a\r.\r\nMAIL\r\n", "a\r\n.\r\nMAIL\r\n", 0, 1 },
        { "a\r\n.\rMAIL\r\n", "a\r\n\r\nMAIL\r\n", 0, 1 },
        { "a\r\r\n.\r\r\n", "a\r\n\r\n\r\n\r\n", 0, 2 },
        { "a\n\n.\n\r\n", "a\r\n\r\n.\r\n\r\n", 3, 0 },
    };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        char in[128];
        snprintf(in, sizeof in, "%s\r\n.\r\n", probes[i].in);
        char want[128];
        snprintf(want, sizeof want, "%s\r\n", probes[i].want);
        t_result r;
        t_whole(in, &r);
        ok(r.done && r.end == strlen(in) && t_out_is(&r, want) &&
           (int)r.dr.bare_lf == probes[i].lf &&
           (int)r.dr.bare_cr == probes[i].cr && t_no_bare(&r),
           "smuggling probe %zu does not end data, canonical output", i);
        if (!t_out_is(&r, want))
            diag("output: %.*s", (int)r.out.len, r.out.buf);
    }
}

/* A mixed input: every split point, every pair of split points on a
 * shorter one, and byte by byte give the reference output. */
static void t_splits(void)
{
    static const char in[] =
        "From: a@b\r\nSubject: x\n\r\n..stuffed\r\n.\n.\r\r.x\r\n"
        "bare\rcr\r\n\r\n.\r\r\n\0nul\r\n...\r\n.\r\nRSET\r\n";
    size_t len = sizeof in - 1;
    t_result ref, r;
    t_run(in, len, NULL, 0, 0, &ref);
    ok(ref.done && ref.end == len - 6 && t_no_bare(&ref),
       "reference run ends before RSET, output has no bare CR/LF");
    int bad = -1;
    for (size_t s = 0; s <= len && bad < 0; s++) {
        t_run(in, len, &s, 1, 0, &r);
        if (!r.done || r.end != ref.end || r.out.len != ref.out.len ||
            memcmp(r.out.buf, ref.out.buf, r.out.len) ||
            r.dr.bare_lf != ref.dr.bare_lf || r.dr.bare_cr != ref.dr.bare_cr ||
            r.dr.nul_bytes != ref.dr.nul_bytes ||
            r.dr.bytes_out != ref.dr.bytes_out)
            bad = (int)s;
    }
    ok(bad < 0, "identical output and counters for every split (first "
       "bad: %d)", bad);
    bad = -1;
    for (size_t a = 0; a <= 40 && bad < 0; a++) {
        for (size_t b = a; b <= 40 && bad < 0; b++) {
            size_t cuts[2] = { a, b };
            t_run(in, len, cuts, 2, 0, &r);
            if (!r.done || r.end != ref.end || r.out.len != ref.out.len ||
                memcmp(r.out.buf, ref.out.buf, r.out.len))
                bad = (int)(a * 100 + b);
        }
    }
    ok(bad < 0, "identical output for every pair of splits in the first "
       "40 bytes (first bad: %d)", bad);
    t_run(in, len, NULL, 0, 1, &r);
    ok(r.done && r.end == ref.end && r.out.len == ref.out.len &&
       !memcmp(r.out.buf, ref.out.buf, r.out.len), "byte by byte, too");

    /* the end marker itself split: "\r\n" | "." | "\r" | "\n" */
    static const char tail[] = "x\r\n.\r\nNEXT";
    size_t cuts[3] = { 3, 4, 5 };
    t_run(tail, sizeof tail - 1, cuts, 3, 0, &r);
    ok(r.done && r.end == 6 && t_out_is(&r, "x\r\n"),
       "end marker split in four feeds: consumed up to its LF only");
}

static void t_sink_error(void)
{
    t_result r;
    memset(&r, 0, sizeof r);
    r.out.fail_after = 1;
    up_data_init(&r.dr, t_sink, &r.out);
    const char *in = "a\r\n..b\nc\r\n.\r\n";
    size_t used;
    r.done = up_data_feed(&r.dr, in, strlen(in), &used);
    ok(r.done && used == strlen(in) && r.dr.sink_error == -5 &&
       r.out.calls == 1, "sink error: sticky, sink not called again, end "
       "still found");

    up_data_init(&r.dr, NULL, NULL);
    r.done = up_data_feed(&r.dr, "x\r\n.\r\n", 6, &used);
    ok(r.done && used == 6 && r.dr.bytes_out == 3, "a NULL sink is allowed");
    r.done = up_data_feed(&r.dr, "more", 4, &used);
    ok(r.done && used == 0, "after the end, feed consumes nothing");
}

/* A long message in small pieces: constant state, all of it out. */
static void t_large(void)
{
    up_data_reader dr;
    up_data_init(&dr, NULL, NULL);
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (i % 77 == 76) ? '\n' : (i % 50 == 0 ? '.' : 'x');
    size_t used;
    int done = 0;
    for (int i = 0; i < 10000 && !done; i++)
        done = up_data_feed(&dr, chunk, sizeof chunk, &used);
    done = done || up_data_feed(&dr, "\r\n.\r\n", 5, &used);
    ok(done && dr.bare_lf == 10000 * 12 && dr.bytes_out > 10000000,
       "10 MB with bare LFs: counted, ended only by the real marker");
}

int main(void)
{
    plan(24);
    t_basic();
    t_smuggling();
    t_splits();
    t_sink_error();
    t_large();
    return done_testing();
}
