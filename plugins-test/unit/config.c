/*
 * config.c - unit test of configuration loading (host/config*.c): the
 * defaults, every kind of bad value reported as file:line, list keys that
 * append, relative paths resolved against the configuration directory,
 * <postmaster> as a local address, tls_sni lines and names, and a
 * generation that fails to load leaving nothing behind.  The log (stderr) is captured into a file and
 * searched for the exact "file:line: message".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "stats.h"
#include "tap.h"
#include "tls.h"

static char dir[256];
static char logbuf[8192];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, fp);
    fclose(fp);
}

/* Load dir with smtp.ini = text (plugins empty); the log lands in logbuf. */
static up_config *load_with(const char *smtp_ini, const char *plugins)
{
    write_file("smtp.ini", smtp_ini);
    write_file("plugins", plugins);
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/log", dir);
    fflush(stderr);
    int saved = dup(2);
    FILE *log = freopen(logpath, "w", stderr);
    up_config *cfg = up_config_load(dir);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    (void)log;
    FILE *fp = fopen(logpath, "r");
    size_t n = fp ? fread(logbuf, 1, sizeof logbuf - 1, fp) : 0;
    logbuf[n] = '\0';
    if (fp)
        fclose(fp);
    return cfg;
}

static up_config *load(const char *smtp_ini)
{
    return load_with(smtp_ini, "# none\n");
}

static void expect_error(const char *smtp_ini, const char *message,
                         const char *what)
{
    up_config *cfg = load(smtp_ini);
    ok(cfg == NULL, "%s: refused", what);
    char want[512];
    snprintf(want, sizeof want, "%s/smtp.ini:%s", dir, message);
    ok(strstr(logbuf, want) != NULL, "%s: log says '%s'", what, message);
    if (!strstr(logbuf, want))
        diag("log: %s", logbuf);
    up_config_unref(cfg);
}

int main(void)
{
    plan(64);
    up_log_init("upesi-test", UPESI_LOG_INFO, 0);
    up_stats_init(256);
    snprintf(dir, sizeof dir, "/tmp/upesi-config-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 2;

    /* -- defaults */
    up_config *cfg = load("hostname = mx.example\n");
    ok(cfg != NULL, "a minimal smtp.ini loads");
    if (cfg == NULL)
        return done_testing();
    is_int((int)cfg->max_command_length, 1200, "max_command_length 1200");
    is_int(cfg->pipelining, 1, "pipelining on");
    is_int(cfg->vrfy, 0, "vrfy off");
    is_int(cfg->received_version, 1, "received_version on");
    is_int((int)cfg->n_listen, 1, "one default listener");
    is_str(cfg->listen[0].text, "127.0.0.1:2525", "default listen");
    ok(strstr(cfg->greeting, "mx.example") && strstr(cfg->greeting, "%s"),
       "default greeting names the host and has %%s");
    char want[512];
    snprintf(want, sizeof want, "%s/spool", dir);
    is_str(cfg->spool_dir, want, "spool_dir is relative to the conf dir");
    up_config_unref(cfg);

    /* -- values and lists */
    cfg = load("listen = 127.0.0.1:25, [::1]:2525\nlisten = 127.0.0.2:25\n"
               "local_domains = Example.COM\nlocal_domains = example.net\n"
               "timeout_multiplier = 0.01\nworkers = auto\n"
               "spool_dir = /var/tmp/sp\n");
    ok(cfg != NULL, "lists and values load");
    if (cfg) {
        is_int((int)cfg->n_listen, 3, "listen appends over repeated keys");
        is_str(cfg->listen[1].text, "[::1]:2525", "IPv6 in brackets");
        is_int((int)cfg->n_local_domains, 2, "local_domains appends");
        ok(up_config_is_local(cfg, "bob@EXAMPLE.com"),
           "local domains are case-insensitive");
        ok(up_config_is_local(cfg, "PostMaster"), "<postmaster> is local");
        ok(!up_config_is_local(cfg, "bob@example.org"),
           "other domains are not local");
        ok(cfg->timeout_multiplier > 0.009 && cfg->timeout_multiplier < 0.011,
           "a fractional timeout_multiplier");
        is_int(cfg->workers, 0, "workers = auto is 0");
        ok(cfg->stop_timeout == 30 && cfg->command_deadline == 300 &&
           cfg->data_deadline == 600, "stop_timeout 30 s, command_deadline "
           "300 s and data_deadline 600 s by default");
        is_str(cfg->spool_dir, "/var/tmp/sp", "an absolute path stays");
        up_config_unref(cfg);
    }

    /* -- errors, each with file:line */
    expect_error("hostname = a.example\nmax_sesions = 5\n",
                 "2: unknown key 'max_sesions'", "a misspelt key");
    expect_error("max_sessions = lots\n",
                 "1: max_sessions: expected a whole number from 1 to 1000000, got 'lots'",
                 "a word for a number");
    expect_error("\nmax_command_length = 100\n",
                 "2: max_command_length: expected a whole number from 512 to 65536, got '100'",
                 "max_command_length below RFC 5321's 512");
    expect_error("stop_timeout = 3601\n",
                 "1: stop_timeout: expected a duration from 0 to 3600 seconds", "stop_timeout bounds");
    expect_error("data_deadline = soon\n",
                 "1: data_deadline: expected a duration from 0 to 86400 seconds", "a word for data_deadline");
    expect_error("command_deadline = -1\n",
                 "1: command_deadline: expected a duration from 0 to 86400 "
                 "seconds",
                 "a negative command_deadline");
    expect_error("listen = example.com:25\n",
                 "1: listen: 'example.com' is not an IP address", "a name in listen");
    expect_error("listen = 127.0.0.1:99999\n",
                 "1: listen: 99999 is out of range (1 to 65535)", "a bad port");
    expect_error("pipelining = maybe\n",
                 "1: pipelining: expected a boolean (0/1, yes/no, on/off, true/false), got 'maybe'",
                 "a bad boolean");
    expect_error("greeting = hi %d\n",
                 "1: greeting: may hold one %s", "a % other than %s");
    expect_error("[extra]\nhostname = a.example\n",
                 "2: unknown section [extra]", "a section in smtp.ini");
    expect_error("this line has no equals sign\n",
                 "1: syntax error", "an ini syntax error");
    expect_error("hostname = a.example\ntls_sni = mx.example.org a.pem\n",
                 "2: tls_sni: expected three words", "tls_sni, two words");
    expect_error("tls_sni = *.*.example.org a.pem a.key\n",
                 "1: tls_sni: '*.*.example.org' is not a host name",
                 "tls_sni, a wildcard not alone");
    expect_error("tls_sni = *.org a.pem a.key\n",
                 "1: tls_sni: '*.org' is not a host name",
                 "tls_sni, a wildcard over one label");
    expect_error("tls_sni = mx..example.org a.pem a.key\n",
                 "1: tls_sni: 'mx..example.org' is not a host name",
                 "tls_sni, an empty label");
    expect_error("tls_sni = mx.example.org no-such.pem a.key\n",
                 "1: tls_sni mx.example.org certificate ",
                 "tls_sni, a missing certificate");

    /* -- tls_sni matching (RFC 6125 6.4.3: one whole left-most label) */
    ok(up_tls_name_matches("mx.example.org", "MX.Example.ORG"),
       "an exact name matches in any case");
    ok(!up_tls_name_matches("mx.example.org", "example.org"),
       "an exact name does not match its parent");
    ok(up_tls_name_matches("*.example.org", "A.EXAMPLE.org"),
       "a wildcard matches one label, any case");
    ok(!up_tls_name_matches("*.example.org", "a.b.example.org"),
       "a wildcard does not match two labels");
    ok(!up_tls_name_matches("*.example.org", "example.org"),
       "a wildcard does not match its own domain");
    ok(!up_tls_name_matches("*.example.org", ".example.org"),
       "a wildcard does not match an empty label");
    ok(!up_tls_name_matches("*.example.org", "aexample.org"),
       "a wildcard is a whole label");

    /* -- conf/plugins errors */
    cfg = load_with("plugin_dir = /nonexistent\n",
                    "# comment\n\nno_such_plugin\nBad Name\n");
    ok(cfg == NULL, "an unknown plugin name is refused");
    snprintf(want, sizeof want, "%s/plugins:3: unknown plugin "
             "'no_such_plugin'", dir);
    ok(strstr(logbuf, want) != NULL, "... as plugins:3");
    snprintf(want, sizeof want, "%s/plugins:4: 'Bad Name' is not a plugin "
             "name", dir);
    ok(strstr(logbuf, want) != NULL, "a bad name is reported as plugins:4");
    up_config_unref(cfg);

    rmdir(dir); /* best effort: files stay for a look when it fails */
    return done_testing();
}
