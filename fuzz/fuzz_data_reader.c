/*
 * fuzz_data_reader.c - libFuzzer target for host/data_reader.c.
 *
 * The input goes through the reader three ways: whole, split at a
 * fuzzer-chosen point, and (when short) a byte at a time.  All three must
 * give the same output, end offset and counters, and match a whole-input
 * reference: data ends at the first CRLF "." CRLF (or a leading "." CRLF)
 * and nowhere else, a leading dot after a CRLF is removed, every bare CR or
 * LF becomes CRLF.  The output must never hold a bare CR or LF.  Any
 * difference aborts.
 *
 * Input: bytes 0-1 pick the split point; the rest is what the client sent
 * after 354.
 *
 * Build and run (from the repository root):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ihost \
 *     fuzz/fuzz_data_reader.c host/data_reader.c -o build/fuzz_data_reader
 *   mkdir -p build/fuzz-work/data_reader
 *   ./build/fuzz_data_reader -max_total_time=60 build/fuzz-work/data_reader \
 *     fuzz/corpus/fuzz_data_reader
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data_reader.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

typedef struct fz_run {
    char *out;
    size_t len, cap;
    int done;
    size_t end;
    up_data_reader dr;
} fz_run;

static int fz_sink(void *arg, const char *buf, size_t len)
{
    fz_run *r = arg;
    FZ_CHECK(len > 0 && r->len + len <= r->cap);
    memcpy(r->out + r->len, buf, len);
    r->len += len;
    return 0;
}

/* Feed in pieces of `step` bytes (0: at `split`, then the rest). */
static void fz_feed(fz_run *r, const uint8_t *in, size_t n, size_t split,
                    size_t step)
{
    r->cap = 2 * n + 2;         /* each byte becomes at most CRLF */
    r->out = malloc(r->cap);
    FZ_CHECK(r->out != NULL);
    r->len = 0;
    up_data_init(&r->dr, fz_sink, r);
    size_t off = 0;
    r->done = 0;
    while (off < n && !r->done) {
        size_t next = step ? off + step : (off < split ? split : n);
        if (next > n)
            next = n;
        size_t used = 0;
        r->done = up_data_feed(&r->dr, (const char *)in + off, next - off,
                               &used);
        FZ_CHECK(used <= next - off);
        FZ_CHECK(r->done || used == next - off);
        off += used;
    }
    r->end = off;
    FZ_CHECK(r->dr.bytes_out == r->len && r->dr.sink_error == 0);
}

/* The whole-input reference. */
static void fz_reference(fz_run *r, const uint8_t *in, size_t n)
{
    size_t body = n;
    r->cap = 2 * n + 2;
    r->out = malloc(r->cap);
    FZ_CHECK(r->out != NULL);
    r->len = 0;
    memset(&r->dr, 0, sizeof r->dr);
    r->done = 0;
    r->end = n;
    if (n >= 3 && !memcmp(in, ".\r\n", 3)) {
        r->done = 1;
        r->end = 3;
        body = 0;
    } else {
        for (size_t k = 0; k + 5 <= n; k++) {
            if (!memcmp(in + k, "\r\n.\r\n", 5)) {
                r->done = 1;
                r->end = k + 5;
                body = k + 2;
                break;
            }
        }
    }
    int bol = 1;
    for (size_t i = 0; i < body;) {
        if (bol) {
            bol = 0;
            if (in[i] == '.') {
                i++;
                continue;
            }
        }
        if (in[i] == '\r' && i + 1 < body && in[i + 1] == '\n') {
            memcpy(r->out + r->len, "\r\n", 2);
            r->len += 2;
            i += 2;
            bol = 1;
        } else if (in[i] == '\r' && i + 1 == body && !r->done) {
            break;              /* CR or CRLF: not known yet */
        } else if (in[i] == '\r' || in[i] == '\n') {
            if (in[i] == '\r')
                r->dr.bare_cr++;
            else
                r->dr.bare_lf++;
            memcpy(r->out + r->len, "\r\n", 2);
            r->len += 2;
            i++;
        } else {
            if (in[i] == '\0')
                r->dr.nul_bytes++;
            r->out[r->len++] = (char)in[i++];
        }
    }
}

static void fz_same(const fz_run *a, const fz_run *b)
{
    FZ_CHECK(a->done == b->done && a->end == b->end && a->len == b->len);
    FZ_CHECK(memcmp(a->out, b->out, a->len) == 0);
    FZ_CHECK(a->dr.bare_lf == b->dr.bare_lf && a->dr.bare_cr == b->dr.bare_cr);
    FZ_CHECK(a->dr.nul_bytes == b->dr.nul_bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t n = size - 2;
    size_t split = ((size_t)data[0] << 8 | data[1]) % (n + 1);
    const uint8_t *in = data + 2;
    fz_run whole, cut, ref;

    fz_feed(&whole, in, n, n, 0);
    fz_feed(&cut, in, n, split, 0);
    fz_reference(&ref, in, n);
    for (size_t i = 0; i < whole.len; i++) {
        if (whole.out[i] == '\n')
            FZ_CHECK(i > 0 && whole.out[i - 1] == '\r');
        if (whole.out[i] == '\r')
            FZ_CHECK(i + 1 < whole.len && whole.out[i + 1] == '\n');
    }
    fz_same(&whole, &cut);
    fz_same(&whole, &ref);
    if (n <= 4096) {
        fz_run bytes;
        fz_feed(&bytes, in, n, 0, 1);
        fz_same(&whole, &bytes);
        free(bytes.out);
    }
    free(whole.out);
    free(cut.out);
    free(ref.out);
    return 0;
}
