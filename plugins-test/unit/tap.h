/*
 * tap.h - a minimal TAP producer for the C unit tests (plugins-test/unit/).
 *
 * Prints "1..N" and "ok N - desc" / "not ok N - desc" on stdout, diagnostics
 * as "# ..." on stderr, the way prove(1) reads them.  Header-only: each test
 * is a single file, so the counters are static to it.
 *
 *   plan(n);  ok(cond, "what %d", i);  is_int(got, want, "what");
 *   is_str(got, want, "what");  diag("note");  return done_testing();
 *
 * Fails: never; done_testing() returns non-zero when a test failed or the
 * number run differs from the plan, so main() can return it.
 */
#ifndef UPESI_TAP_H
#define UPESI_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_planned = -1;
static int tap_run;
static int tap_failed;

static inline void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline void tap_vresult(int pass, const char *fmt, va_list ap)
{
    tap_run++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_run);
    vprintf(fmt, ap);
    putchar('\n');
    /* flushed per line so that a crash still shows the last test passed */
    fflush(stdout);
}

__attribute__((format(printf, 1, 2)))
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(pass, fmt, ap);
    va_end(ap);
    return pass;
}

__attribute__((format(printf, 3, 4)))
static inline int is_int(long long got, long long want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(got == want, fmt, ap);
    va_end(ap);
    if (got != want)
        diag("     got: %lld\n#     expected: %lld", got, want);
    return got == want;
}

/* NULL is a value here: is_str(NULL, NULL) passes, is_str(NULL, "") not. */
__attribute__((format(printf, 3, 4)))
static inline int is_str(const char *got, const char *want,
                         const char *fmt, ...)
{
    int pass = (got == NULL || want == NULL) ? got == want
                                             : strcmp(got, want) == 0;
    va_list ap;
    va_start(ap, fmt);
    tap_vresult(pass, fmt, ap);
    va_end(ap);
    if (!pass)
        diag("     got: %s%s%s\n#     expected: %s%s%s",
             got ? "'" : "", got ? got : "NULL", got ? "'" : "",
             want ? "'" : "", want ? want : "NULL", want ? "'" : "");
    return pass;
}

/* The exit status: 0 when every test passed and the plan (if any) held. */
static inline int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_run);
    else if (tap_run != tap_planned)
        diag("planned %d tests but ran %d", tap_planned, tap_run);
    fflush(stdout);
    if (tap_failed)
        return tap_failed > 254 ? 254 : tap_failed;
    return (tap_planned >= 0 && tap_run != tap_planned) ? 255 : 0;
}

#endif
