/*
 * fuzz_config.c - libFuzzer target for host/config*.c: smtp.ini and
 * conf/plugins as the host reads them (inih through up_ini_parse's line
 * counting reader, every key's value parser, the defaults and the path
 * resolution of up_config_load).
 *
 * Each input is written as smtp.ini (and, after a line "[[plugins]]", as
 * the plugins file) in a private directory on tmpfs, then loaded with
 * up_config_load.  Plugins are never loaded: up_plugin_get is a stub here
 * that refuses every name, so the plugins file's own parsing is what runs.
 * Checked on every generation that loads, aborting on a violation:
 *   - at least one listen address, each a well-formed IPv4/IPv6 sockaddr;
 *   - hostname and greeting set, the greeting with at most one %s and no
 *     other '%', on one line;
 *   - spool_dir, control_socket and plugin_dir absolute;
 *   - every limit within the range config_smtp.c documents;
 *   - every local domain lower case, and up_config_is_local finds it
 *     (in upper case too);
 *   - up_config_control_socket (the stat client's reader) finds the same
 *     socket path as the full load.
 * Inputs naming tls_cert, tls_key or tls_sni are left out: their values
 * are files the loader opens, and a fuzzer that finds /dev/zero would only
 * hang (tls_sni's syntax and names are in the unit test, config.t).
 *
 * Build and run (from the repository root): make fuzz, then
 *   ./build/fuzz/fuzz_config -max_total_time=60 build/fuzz/work/x \
 *     fuzz/corpus/fuzz_config
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"
#include "plugin_loader.h"

#define FZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static char fz_dir[64];
static char fz_ini[96];
static char fz_plugins[96];

/* No plugin is ever loaded here. */
up_plugin_mod *up_plugin_get(const char *dir, const char *name, char *err,
                             size_t errlen)
{
    FZ_CHECK(dir != NULL && name != NULL && name[0] != '\0');
    FZ_CHECK(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") ==
             strlen(name));
    snprintf(err, errlen, "plugin %s: not loaded while fuzzing", name);
    return NULL;
}

/* ... so no descriptor has a settings table either. */
const upesi_setting *up_plugin_settings(const upesi_plugin *d)
{
    (void)d;
    return NULL;
}

/* Nothing is loaded, so nothing is committed or started. */
void up_plugin_start(up_plugin_mod *mod)
{
    (void)mod;
}

up_plugin_mod *up_plugin_first(void)
{
    return NULL;
}

static void fz_write(const char *path, const uint8_t *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    FZ_CHECK(fp != NULL);
    FZ_CHECK(len == 0 || fwrite(data, 1, len, fp) == len);
    FZ_CHECK(fclose(fp) == 0);
}

static void fz_check_listen(const up_listen_addr *l)
{
    FZ_CHECK(memchr(l->text, '\0', sizeof l->text) != NULL);
    if (l->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&l->addr;
        FZ_CHECK(l->addrlen == sizeof *sin && sin->sin_port != 0);
    } else {
        const struct sockaddr_in6 *sin6 =
            (const struct sockaddr_in6 *)&l->addr;
        FZ_CHECK(l->addr.ss_family == AF_INET6);
        FZ_CHECK(l->addrlen == sizeof *sin6 && sin6->sin6_port != 0);
    }
}

static void fz_check(const up_config *cfg)
{
    FZ_CHECK(cfg->refs == 1 && cfg->dir && !strcmp(cfg->dir, fz_dir));
    FZ_CHECK(cfg->n_listen >= 1);
    for (size_t i = 0; i < cfg->n_listen; i++)
        fz_check_listen(&cfg->listen[i]);
    for (size_t i = 0; i < cfg->n_smtps_listen; i++)
        fz_check_listen(&cfg->smtps_listen[i]);
    FZ_CHECK(cfg->hostname && cfg->hostname[0]);
    FZ_CHECK(cfg->greeting && !strpbrk(cfg->greeting, "\r\n"));
    const char *pct = strchr(cfg->greeting, '%');
    if (pct)
        FZ_CHECK(pct[1] == 's' && !strchr(pct + 2, '%'));
    FZ_CHECK(cfg->spool_dir && cfg->spool_dir[0] == '/');
    FZ_CHECK(cfg->control_socket && cfg->control_socket[0] == '/');
    FZ_CHECK(cfg->plugin_dir && cfg->plugin_dir[0] == '/');
    FZ_CHECK(cfg->max_command_length >= 512 &&
             cfg->max_command_length <= 65536);
    FZ_CHECK(cfg->max_sessions >= 1 && cfg->error_limit >= 1);
    FZ_CHECK(cfg->timeout_multiplier >= 0.001 &&
             cfg->timeout_multiplier <= 100);
    FZ_CHECK(cfg->plugin_timeout >= 0.01 && cfg->plugin_timeout <= 3600);
    FZ_CHECK(cfg->command_deadline >= 0 && cfg->command_deadline <= 86400);
    FZ_CHECK(cfg->data_deadline >= 0 && cfg->data_deadline <= 86400);
    FZ_CHECK(cfg->stop_timeout >= 0 && cfg->stop_timeout <= 3600);
    FZ_CHECK(cfg->greeting_delay >= 0 && cfg->greeting_delay <= 60);
    FZ_CHECK(cfg->dns_timeout > 0 && cfg->dns_timeout <= 300);
    FZ_CHECK(cfg->workers >= 0 && cfg->workers <= 256);
    FZ_CHECK(cfg->pipelining == 0 || cfg->pipelining == 1);
    FZ_CHECK(cfg->vrfy == 0 || cfg->vrfy == 1);
    FZ_CHECK(cfg->tls_cert == NULL && cfg->tls == NULL &&
             cfg->n_tls_sni == 0);
    FZ_CHECK(cfg->n_plugins == 0);
    FZ_CHECK(cfg->dns_servers == NULL || cfg->dns_servers[0] != '\0');
    for (size_t i = 0; i < cfg->n_local_domains; i++) {
        const char *d = cfg->local_domains[i];
        FZ_CHECK(d && d[0] && strlen(d) <= 253);
        char addr[300];
        snprintf(addr, sizeof addr, "Postmaster@%s", d);
        for (const char *p = d; *p; p++)
            FZ_CHECK(!isupper((unsigned char)*p));
        FZ_CHECK(up_config_is_local(cfg, addr));
        for (char *p = addr; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        FZ_CHECK(up_config_is_local(cfg, addr));
    }
    FZ_CHECK(up_config_is_local(cfg, "postmaster"));

    char *sock = up_config_control_socket(fz_dir);
    FZ_CHECK(sock != NULL && !strcmp(sock, cfg->control_socket));
    free(sock);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof fz_dir, "%s/fuzz_config.XXXXXX", base);
    FZ_CHECK(mkdtemp(fz_dir) != NULL);
    snprintf(fz_ini, sizeof fz_ini, "%s/smtp.ini", fz_dir);
    snprintf(fz_plugins, sizeof fz_plugins, "%s/plugins", fz_dir);
    /* errors are the point: keep them off stderr (UPESI_FUZZ_LOG=1 shows) */
    up_log_init("fuzz_config", getenv("UPESI_FUZZ_LOG") ? UPESI_LOG_DEBUG
                                                       : UPESI_LOG_CRIT, 0);
    return 0;
}

static const uint8_t *fz_find(const uint8_t *h, size_t hl, const char *n)
{
    size_t nl = strlen(n);
    for (size_t i = 0; i + nl <= hl; i++)
        if (!memcmp(h + i, n, nl))
            return h + i;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384 || fz_find(data, size, "tls_cert") ||
        fz_find(data, size, "tls_key") || fz_find(data, size, "tls_sni"))
        return 0;
    static const char sep[] = "[[plugins]]\n";
    const uint8_t *split = fz_find(data, size, sep);
    size_t ini_len = split ? (size_t)(split - data) : size;
    fz_write(fz_ini, data, ini_len);
    if (split) {
        const uint8_t *pl = split + strlen(sep);
        fz_write(fz_plugins, pl, size - (size_t)(pl - data));
    } else {
        fz_write(fz_plugins, (const uint8_t *)"", 0);
    }

    up_config *cfg = up_config_load(fz_dir);
    FZ_CHECK(up_config_loading() == NULL);
    if (cfg) {
        fz_check(cfg);
        up_config_unref(cfg);
    }
    return 0;
}
