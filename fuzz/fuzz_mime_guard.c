/*
 * fuzz_mime_guard.c - libFuzzer target for plugins/common/mime_guard.c,
 * the count of lines beginning with "--" that bounds what GMime parses
 * (bayes, mail_rules).
 *
 * Input: byte 0 is the limit (0 - 255), byte 1 a piece size (1 - 256),
 * the rest the message.  Checked, aborting on any difference:
 *   - the cut is 0 .. len, and len exactly when the message has no more
 *     than the limit such lines, counted by an independent loop;
 *   - a cut short of len falls at a line's start that begins with "--",
 *     with exactly the limit such lines before it;
 *   - fed in pieces of the given size, the guard cuts where it cuts the
 *     message whole.
 *
 * Build and run (also `make fuzz`):
 *   make build/fuzz/fuzz_mime_guard
 *   build/fuzz/fuzz_mime_guard -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_mime_guard
 */
#include <stddef.h>
#include <stdint.h>

#include "../plugins/common/mime_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dash_line_at(const char *m, size_t len, size_t i)
{
    return (i == 0 || m[i - 1] == '\n') && i + 1 < len && m[i] == '-' &&
           m[i + 1] == '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = data[0], piece = (size_t)data[1] + 1;
    const char *m = (const char *)data + 2;
    size_t len = size - 2;

    size_t lines = 0;                        /* the model: all of them */
    for (size_t i = 0; i < len; i++)
        lines += (size_t)dash_line_at(m, len, i);

    size_t cut = mime_guard_cut(m, len, max);
    if (cut > len || (cut == len) != (lines <= max))
        __builtin_trap();
    if (cut < len) {
        size_t before = 0;
        for (size_t i = 0; i < cut; i++)
            before += (size_t)dash_line_at(m, len, i);
        if (!dash_line_at(m, len, cut) || before != max)
            __builtin_trap();
    }

    mime_guard g;
    mime_guard_init(&g, max);
    size_t fed_cut = len, c;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if (mime_guard_feed(&g, m + off, n, &c)) {
            fed_cut = c;
            break;
        }
    }
    if (fed_cut != cut)
        __builtin_trap();
    return 0;
}
