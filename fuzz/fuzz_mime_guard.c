/*
 * fuzz_mime_guard.c - libFuzzer target for plugins/common/mime_guard.c,
 * the count of lines beginning with "--" and the header section's size
 * that bound what GMime parses (bayes, mail_rules).
 *
 * Input: byte 0 is the line limit (0 - 255), byte 1 a piece size
 * (1 - 256), byte 2 the header limit (0 - 255 bytes), the rest the
 * message.  Checked, aborting on any difference:
 *   - the cut is 0 .. len, len exactly when nothing was cut;
 *   - a cut for the lines falls at the start of a line that begins with
 *     "--", with exactly the limit's number of such lines before it;
 *   - a cut for the header falls at a line's start, before the empty
 *     line that ends the header section, where that line ends past the
 *     limit;
 *   - nothing cut: no more such lines than the limit, counted by an
 *     independent loop, and the header section ends within the limit;
 *   - fed in pieces of the given size, the guard cuts where, and for the
 *     reason, it cuts the message whole.
 *
 * Build and run (also `make fuzz`):
 *   make build/fuzz/fuzz_mime_guard
 *   build/fuzz/fuzz_mime_guard -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_mime_guard
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../plugins/common/mime_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int line_start(const char *m, size_t i)
{
    return i == 0 || m[i - 1] == '\n';
}

static int dash_line_at(const char *m, size_t len, size_t i)
{
    return line_start(m, i) && i + 1 < len && m[i] == '-' && m[i + 1] == '-';
}

/* where the empty line that ends the header section begins, or len (a
 * lone CR that ends the message may yet be that line) */
static size_t header_end(const char *m, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (line_start(m, i) &&
            (m[i] == '\n' || (m[i] == '\r' && (i + 1 == len || m[i + 1] == '\n'))))
            return i;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t max_lines = data[0], piece = (size_t)data[1] + 1;
    size_t max_header = data[2];
    const char *m = (const char *)data + 3;
    size_t len = size - 3;

    mime_guard g;
    size_t cut = len, c;
    mime_guard_init(&g, max_lines, max_header);
    int why = mime_guard_feed(&g, m, len, &c);
    if (why)
        cut = c;
    if (cut > len || (why == MIME_GUARD_WHOLE) != (cut == len))
        __builtin_trap();

    size_t hend = header_end(m, len);
    if (why == MIME_GUARD_LINES) {
        size_t before = 0;
        for (size_t i = 0; i < cut; i++)
            before += (size_t)dash_line_at(m, len, i);
        if (!dash_line_at(m, len, cut) || before != max_lines)
            __builtin_trap();
    } else if (why == MIME_GUARD_HEADER) {
        const char *nl = memchr(m + cut, '\n', len - cut);
        size_t end = nl ? (size_t)(nl - m) + 1 : len;
        if (!line_start(m, cut) || cut >= hend || end <= max_header)
            __builtin_trap();
    } else {
        size_t lines = 0;
        for (size_t i = 0; i < len; i++)
            lines += (size_t)dash_line_at(m, len, i);
        if (lines > max_lines || hend > max_header)
            __builtin_trap();
    }

    mime_guard_init(&g, max_lines, max_header);
    size_t fed_cut = len;
    int fed_why = MIME_GUARD_WHOLE;
    for (size_t off = 0; off < len; off += piece) {
        size_t n = len - off < piece ? len - off : piece;
        if ((fed_why = mime_guard_feed(&g, m + off, n, &c)) != 0) {
            fed_cut = c;
            break;
        }
    }
    if (fed_cut != cut || fed_why != why)
        __builtin_trap();
    return 0;
}
