/*
 * tls_ticket.c - unit test of host/tls_ticket.c, the session ticket keys:
 * a ticket opens in its own period (OK) and the next (CREATE: renew),
 * not later, nor before it was made; a changed byte anywhere (name, nonce,
 * tag, sealed state) makes it refused; two key sets made from the same key
 * file open each other's tickets (workers, restarts, hosts), from another
 * file or from the random seed they do not; key files that are too short,
 * too long or missing are refused with their name in the message.
 * Prints TAP.
 *
 * Fails: a "not ok" line per broken expectation; exit status from
 * done_testing().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tls_ticket.h"

#define T_PERIOD 3600
#define T_LEN 100

static char t_dir[] = "/tmp/upesi-tls-ticket-XXXXXX";

typedef struct t_ticket {
    unsigned char name[WOLFSSL_TICKET_NAME_SZ];
    unsigned char iv[WOLFSSL_TICKET_IV_SZ];
    unsigned char mac[WOLFSSL_TICKET_MAC_SZ];
    unsigned char state[T_LEN];
} t_ticket;

static void t_fill(unsigned char *p, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int t_seal(up_tls_ticket_keys *k, int64_t when, t_ticket *t)
{
    int out = -1;
    t_fill(t->state, sizeof t->state, 1);
    int rc = up_tls_ticket_crypt(k, when, 1, t->name, t->iv, t->mac,
                                 t->state, T_LEN, &out);
    return rc == WOLFSSL_TICKET_RET_OK && out == T_LEN ? 0 : -1;
}

/* open a copy, so that the sealed ticket can be tried again */
static int t_open(up_tls_ticket_keys *k, int64_t when, const t_ticket *t,
                  int *same)
{
    t_ticket c = *t;
    int out = -1;
    int rc = up_tls_ticket_crypt(k, when, 0, c.name, c.iv, c.mac, c.state,
                                 T_LEN, &out);
    unsigned char want[T_LEN];
    t_fill(want, sizeof want, 1);
    if (same)
        *same = out == T_LEN && !memcmp(c.state, want, T_LEN);
    return rc;
}

static const char *t_file(const char *name, size_t len, int seed)
{
    static char path[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof path[i], "%s/%s", t_dir, name);
    FILE *fp = fopen(path[i], "wb");
    for (size_t j = 0; fp && j < len; j++)
        fputc((int)((seed * 31 + j) & 0xff), fp);
    if (fp)
        fclose(fp);
    return path[i];
}

int main(void)
{
    char err[512];
    int same = 0;
    if (mkdtemp(t_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    plan(24);

    /* -- the random seed: one key set, rotation ----------------------- */
    ok(up_tls_ticket_seed() == 0, "a random seed is made");
    up_tls_ticket_keys *k = up_tls_ticket_keys_new(NULL, T_PERIOD, err,
                                                   sizeof err);
    ok(k != NULL, "keys from the seed");
    int64_t t0 = 1800000000;            /* 1800000000 / 3600 = 500000 */
    t_ticket t;
    ok(t_seal(k, t0 + 10, &t) == 0, "a ticket is sealed");
    unsigned char plain[T_LEN];
    t_fill(plain, sizeof plain, 1);
    ok(memcmp(t.state, plain, T_LEN) != 0, "the state is not in clear");
    is_int(t_open(k, t0 + 10, &t, &same), WOLFSSL_TICKET_RET_OK,
           "it opens at once (OK)");
    ok(same, "... to the state that was sealed");
    is_int(t_open(k, t0 + T_PERIOD - 1, &t, NULL), WOLFSSL_TICKET_RET_OK,
           "it opens until the end of its period (OK)");
    is_int(t_open(k, t0 + T_PERIOD, &t, &same), WOLFSSL_TICKET_RET_CREATE,
           "in the next period it opens and asks for a new one (CREATE)");
    ok(same, "... to the same state");
    is_int(t_open(k, t0 + 2 * T_PERIOD, &t, NULL), WOLFSSL_TICKET_RET_REJECT,
           "two periods on it is refused (its key is gone)");
    is_int(t_open(k, t0 - 1, &t, NULL), WOLFSSL_TICKET_RET_REJECT,
           "in the period before it was made it is refused");
    /* the key cache holds two periods: a third in between must not mix */
    t_ticket t2;
    ok(t_seal(k, t0 + 5 * T_PERIOD, &t2) == 0, "a ticket five periods on");
    is_int(t_open(k, t0 + 10, &t, NULL), WOLFSSL_TICKET_RET_OK,
           "the first still opens in its own period afterwards");

    /* -- tampering ------------------------------------------------------ */
    const char *part[] = { "key name", "nonce", "tag", "sealed state" };
    int refused = 0;
    for (int p = 0; p < 4; p++) {
        t_ticket c = t;
        unsigned char *b = p == 0 ? c.name + 2 : p == 1 ? c.iv + 3
                         : p == 2 ? c.mac + 5 : c.state + 50;
        *b ^= 0x01;
        int rc = t_open(k, t0 + 10, &c, NULL);
        if (rc == WOLFSSL_TICKET_RET_REJECT)
            refused++;
        else
            diag("a changed %s gave %d", part[p], rc);
    }
    is_int(refused, 4, "a bit changed in the name, nonce, tag or state: "
           "refused");

    /* -- key files -------------------------------------------------------- */
    const char *fa = t_file("a.key", 48, 1);
    const char *fb = t_file("b.key", 48, 2);
    up_tls_ticket_keys *a1 = up_tls_ticket_keys_new(fa, T_PERIOD, err,
                                                    sizeof err);
    up_tls_ticket_keys *a2 = up_tls_ticket_keys_new(fa, T_PERIOD, err,
                                                    sizeof err);
    up_tls_ticket_keys *b1 = up_tls_ticket_keys_new(fb, T_PERIOD, err,
                                                    sizeof err);
    ok(a1 && a2 && b1, "keys from two files");
    t_ticket ta;
    ok(a1 && t_seal(a1, t0, &ta) == 0, "a ticket under file a");
    is_int(a2 ? t_open(a2, t0, &ta, &same) : -9, WOLFSSL_TICKET_RET_OK,
           "another key set from the same file opens it (restart, host)");
    ok(same, "... to the same state");
    is_int(b1 ? t_open(b1, t0, &ta, NULL) : -9, WOLFSSL_TICKET_RET_REJECT,
           "a key set from another file refuses it");
    is_int(t_open(k, t0, &ta, NULL), WOLFSSL_TICKET_RET_REJECT,
           "the random seed's keys refuse it");

    ok(up_tls_ticket_check_file(t_file("short.key", 31, 3), err,
                                sizeof err) != 0 &&
       strstr(err, "short.key") && strstr(err, "31 bytes"),
       "31 bytes are refused, the message names file and size (%s)", err);
    ok(up_tls_ticket_check_file(t_file("ok.key", 32, 3), err,
                                sizeof err) == 0, "32 bytes are enough");
    ok(up_tls_ticket_check_file(t_file("long.key", 65537, 3), err,
                                sizeof err) != 0 &&
       strstr(err, "more than 65536"), "more than 64 KiB is refused (%s)",
       err);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.key", t_dir);
    ok(up_tls_ticket_keys_new(missing, T_PERIOD, err, sizeof err) == NULL &&
       strstr(err, "cannot open"), "a missing file: %s", err);

    up_tls_ticket_keys_free(k);
    up_tls_ticket_keys_free(a1);
    up_tls_ticket_keys_free(a2);
    up_tls_ticket_keys_free(b1);
    const char *names[] = { "a.key", "b.key", "short.key", "ok.key",
                            "long.key" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", t_dir, names[i]);
        unlink(p);
    }
    rmdir(t_dir);
    return done_testing();
}
