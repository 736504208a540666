/*
 * fuzz_lines.c - libFuzzer target for host/lines.c, the command line reader.
 *
 * The reader is fed the input in fuzzer-chosen chunks and must return the
 * same lines as a whole-input reference model (line ends CRLF / LF / CR, a
 * trailing CR waits, lines over max cut and flagged); a second reader is
 * driven through pending/consume/discard at random and only checked for
 * its invariants.  Any difference aborts.
 *
 * Input: byte 0 picks max (1..64, so overlong lines are common), byte 1 the
 * chunk size (0: all at once), byte 2 the second reader's ops; the rest is
 * the stream.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ihost \
 *     fuzz/fuzz_lines.c host/lines.c -o build/fuzz_lines
 *   mkdir -p build/fuzz-work/lines
 *   ./build/fuzz_lines -max_total_time=60 build/fuzz-work/lines \
 *     fuzz/corpus/fuzz_lines
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lines.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

typedef struct fz_line {
    size_t off, len;          /* in the stream: the line's kept bytes */
    upesi_line_end end;
    int too_long;
} fz_line;

/* The whole-input model: the i-th complete line, or 0 if there is none. */
static int fz_ref_line(const uint8_t *in, size_t n, size_t max, size_t *pos,
                       fz_line *out)
{
    size_t i = *pos;
    while (i < n && in[i] != '\r' && in[i] != '\n')
        i++;
    if (i == n || (in[i] == '\r' && i + 1 == n))
        return 0;
    size_t term = 1;
    out->end = UPESI_LINE_LF;
    if (in[i] == '\r') {
        out->end = in[i + 1] == '\n' ? UPESI_LINE_CRLF : UPESI_LINE_CR;
        term = out->end == UPESI_LINE_CRLF ? 2 : 1;
    }
    out->off = *pos;
    out->len = i - *pos;
    out->too_long = out->len > max;
    if (out->too_long)
        out->len = max;
    *pos = i + term;
    return 1;
}

static void fz_check_line(const up_lines *lr, const up_line *l)
{
    FZ_CHECK(l->text != NULL && l->text[l->len] == '\0');
    FZ_CHECK(l->len <= lr->max);
    FZ_CHECK((memchr(l->text, '\0', l->len) != NULL) == !!l->has_nul);
    for (size_t i = 0; i < l->len; i++)
        FZ_CHECK(l->text[i] != '\r' && l->text[i] != '\n');
    FZ_CHECK(lr->len <= lr->cap && lr->start <= lr->len);
}

static void fz_model(const uint8_t *in, size_t n, size_t max, size_t chunk)
{
    up_lines lr;
    up_line l;
    fz_line want;
    size_t ref_pos = 0, off = 0;

    FZ_CHECK(up_lines_init(&lr, max) == 0);
    while (off < n) {
        size_t len = chunk && chunk < n - off ? chunk : n - off;
        long took = up_lines_feed(&lr, (const char *)in + off, len);
        FZ_CHECK(took >= 0 && (size_t)took <= len);
        off += (size_t)took;
        int got = 0;
        while (up_lines_next(&lr, &l)) {
            got = 1;
            fz_check_line(&lr, &l);
            FZ_CHECK(fz_ref_line(in, off, max, &ref_pos, &want));
            FZ_CHECK(l.len == want.len && l.end == want.end);
            FZ_CHECK((l.status == UP_LINE_TOO_LONG) == want.too_long);
            FZ_CHECK(memcmp(l.text, in + want.off, want.len) == 0);
        }
        /* after draining there is always room: no deadlock */
        FZ_CHECK(took > 0 || got);
        /* what is held is bounded by one cut line, whatever was sent */
        size_t pending;
        up_lines_pending(&lr, &pending);
        FZ_CHECK(lr.len <= lr.cap && pending <= max + 2);
    }
    FZ_CHECK(!fz_ref_line(in, n, max, &ref_pos, &want));
    up_lines_free(&lr);
}

static void fz_ops(const uint8_t *in, size_t n, size_t max, uint8_t ops)
{
    up_lines lr;
    up_line l;
    size_t off = 0;
    unsigned k = ops;

    FZ_CHECK(up_lines_init(&lr, max) == 0);
    while (off < n) {
        size_t len = 1 + (k % 97);
        if (len > n - off)
            len = n - off;
        long took = up_lines_feed(&lr, (const char *)in + off, len);
        FZ_CHECK(took >= 0);
        off += (size_t)took;
        while (up_lines_next(&lr, &l))
            fz_check_line(&lr, &l);
        size_t pending;
        const char *p = up_lines_pending(&lr, &pending);
        FZ_CHECK(p != NULL && pending <= lr.cap);
        switch (k % 5) {
        case 0:
            up_lines_consume(&lr, k % 7);
            break;
        case 1:
            up_lines_discard(&lr);
            FZ_CHECK(up_lines_pending(&lr, &pending) && pending == 0);
            break;
        case 2:
            up_lines_consume(&lr, pending + 3);
            break;
        }
        k = k * 1103515245u + 12345u;
        if (took == 0)
            up_lines_discard(&lr);
    }
    up_lines_free(&lr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t max = 1 + data[0] % 64;
    size_t chunk = data[1];
    uint8_t ops = data[2];
    data += 3;
    size -= 3;
    fz_model(data, size, max, chunk);
    fz_model(data, size, max, 1);
    fz_ops(data, size, max, ops);
    return 0;
}
