/*
 * hostmatch.c - unit test of plugins/common/hostmatch.c: every item syntax
 * the lists accept (addresses, CIDR v4/v6, IPv4 wildcards, names with '*',
 * '*'), the items they refuse with a message, and matching of addresses in
 * any spelling (IPv4-mapped IPv6 as IPv4).
 *
 * Prints TAP (tap.h).
 */
#include <stdio.h>
#include <string.h>

#include "../../plugins/common/hostmatch.h"
#include "tap.h"

static hostmatch_list *list_of(int kinds, const char *value)
{
    char err[256] = "";
    hostmatch_list *l = hostmatch_new(kinds);
    if (hostmatch_add(l, value, err, sizeof err) != 0) {
        diag("unexpected error for '%s': %s", value, err);
        hostmatch_free(l);
        return NULL;
    }
    return l;
}

static void ip_case(const char *items, const char *ip, int want)
{
    hostmatch_list *l = list_of(HOSTMATCH_ANY, items);
    ok(l && hostmatch_ip(l, ip) == want, "'%s' %s %s", items,
       want ? "matches" : "does not match", ip);
    hostmatch_free(l);
}

static void name_case(int kinds, const char *items, const char *name,
                      int want)
{
    hostmatch_list *l = list_of(kinds, items);
    ok(l && hostmatch_name(l, name) == want, "'%s' %s name %s", items,
       want ? "matches" : "does not match", name);
    hostmatch_free(l);
}

static void bad_case(int kinds, const char *value, const char *want_in_err)
{
    char err[256] = "";
    hostmatch_list *l = hostmatch_new(kinds);
    int rc = hostmatch_add(l, value, err, sizeof err);
    ok(rc == -1 && strstr(err, want_in_err) != NULL,
       "'%s' refused (%s)", value, err);
    hostmatch_free(l);
}

int main(void)
{
    plan(47);

    ip_case("192.0.2.7", "192.0.2.7", 1);
    ip_case("192.0.2.7", "192.0.2.8", 0);
    ip_case("[192.0.2.7]", "192.0.2.7", 1);
    ip_case("192.0.2.7", "::ffff:192.0.2.7", 1);
    ip_case("::ffff:192.0.2.7", "192.0.2.7", 1);
    ip_case("::ffff:10.0.0.0/104", "10.200.0.1", 1);   /* = 10.0.0.0/8 */
    ip_case("::ffff:10.0.0.0/104", "11.0.0.1", 0);
    ip_case("192.0.2.0/24", "192.0.2.255", 1);
    ip_case("192.0.2.0/24", "192.0.3.0", 0);
    ip_case("192.0.2.128/25", "192.0.2.127", 0);
    ip_case("192.0.2.128/25", "192.0.2.200", 1);
    ip_case("0.0.0.0/0", "203.0.113.9", 1);
    ip_case("0.0.0.0/0", "2001:db8::1", 0);
    ip_case("10.0.0.0/8", "11.0.0.1", 0);
    ip_case("2001:db8::/32", "2001:db8:ffff::1", 1);
    ip_case("2001:db8::/32", "2001:db9::1", 0);
    ip_case("2001:DB8:0:0::7", "2001:db8::7", 1);
    ip_case("2001:db8::/33", "2001:db8:8000::1", 0);
    ip_case("192.168.*.*", "192.168.44.3", 1);
    ip_case("192.168.*.*", "192.169.44.3", 0);
    ip_case("10.*", "10.200.1.1", 1);
    ip_case("127.*.*.9", "127.3.4.9", 1);
    ip_case("127.*.*.9", "127.3.4.8", 0);
    ip_case("*", "2001:db8::1", 1);
    ip_case("mail.example.com", "192.0.2.7", 0);
    ip_case("a.example, 192.0.2.1 192.0.2.2", "192.0.2.2", 1);

    name_case(HOSTMATCH_NAMES, "example.com", "EXAMPLE.com", 1);
    name_case(HOSTMATCH_NAMES, "example.com", "example.com.", 1);
    name_case(HOSTMATCH_NAMES, "example.com", "mx.example.com", 0);
    name_case(HOSTMATCH_NAMES, "*.example.com", "mx.example.com", 1);
    name_case(HOSTMATCH_NAMES, "*.example.com", "a.b.example.com", 1);
    name_case(HOSTMATCH_NAMES, "*.example.com", "example.com", 0);
    name_case(HOSTMATCH_NAMES, "*.example.com", "badexample.com", 0);
    name_case(HOSTMATCH_NAMES, "mx*.example.com", "mx12.example.com", 1);
    name_case(HOSTMATCH_NAMES, "*", "anything.example", 1);
    name_case(HOSTMATCH_ANY, "192.0.2.7", "192.0.2.7", 0);

    bad_case(HOSTMATCH_ANY, "300.1.1.1", "is not an IP address");
    bad_case(HOSTMATCH_ANY, "10.0.0.0/33", "10.0.0.0/33");
    bad_case(HOSTMATCH_ANY, "2001:db8::/129", "2001:db8::/129");
    bad_case(HOSTMATCH_ANY, "10.*.1", "10.*.1");
    bad_case(HOSTMATCH_ANY, "1.2.3.4.5", "1.2.3.4.5");
    bad_case(HOSTMATCH_ANY, "host!name", "host!name");
    bad_case(HOSTMATCH_ANY, "a..b", "a..b");
    bad_case(HOSTMATCH_NAMES, "192.0.2.1", "is not a domain name");
    bad_case(HOSTMATCH_ADDRESSES, "mail.example.com", "is not an IP address");
    bad_case(HOSTMATCH_ANY, "10.0.0.1/", "10.0.0.1/");

    hostmatch_list *l = list_of(HOSTMATCH_ANY, " , 192.0.2.1,, 192.0.2.2 ");
    ok(hostmatch_count(l) == 2, "blanks and empty items are skipped");
    hostmatch_free(l);
    return done_testing();
}
