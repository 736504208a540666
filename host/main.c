/*
 * main.c - the upesi command line (docs/upesi.8).
 *
 *   upesi [-c DIR]                  run in the foreground
 *   upesi [-c DIR] -t               check the configuration and exit
 *   upesi [-c DIR] stat [PREFIX]    statistics of the running server
 *   upesi [-c DIR] release QUEUEID  move hold/QUEUEID into queue/ (on the
 *                                   spool files: host/actions.c)
 *   upesi [-c DIR] COMMAND ...      a plugin's subcommand (cli.c), else a
 *                                   command for the running server
 *   upesi [-c DIR] config [KEY]     every key with its value and where it
 *                                   was set (config_show.c), like postconf
 *   upesi --dump-settings [PLUGIN_DIR]  the key reference of smtp.ini and
 *                                   of every plugin with a settings table,
 *                                   as docs/config.md holds it
 *
 * Fails: a configuration error exits 1 after logging every error with its
 * file and line; a running server keeps its configuration when a SIGHUP
 * reload fails.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "actions.h"
#include "cli.h"
#include "api.h"
#include "config.h"
#include "config_lint.h"
#include "config_show.h"
#include "hooks.h"
#include "control.h"
#include "log.h"
#include "plugin_loader.h"
#include "plugins_list.h"
#include "settings.h"
#include "simulate.h"
#include "stats.h"
#include "store.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

#ifndef UPESI_CONF_DIR
#define UPESI_CONF_DIR "/etc/upesi"
#endif

static const char *conf_dir = "conf";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: upesi [-c DIR]                run the server\n"
            "       upesi [-c DIR] -t             check the configuration\n"
            "       upesi [-c DIR] -bh IP [HELO] [--write]  a session from\n"
            "                                     stdin as if from IP, each\n"
            "                                     plugin's decision on stderr\n"
            "       upesi [-c DIR] stat [PREFIX]  show statistics\n"
            "       upesi [-c DIR] plugins [--available]  the live chain, or\n"
            "                                     what plugin_dir holds\n"
            "       upesi [-c DIR] config [KEY]   the effective configuration\n"
            "       upesi [-c DIR] queue list|show ID|delete ID|hold ID|\n"
            "                      release ID|flush   the queue plugin's queue\n"
            "       upesi [-c DIR] release QUEUEID  send a held message on\n"
            "       upesi [-c DIR] COMMAND ...    a plugin's command, or a\n"
            "                                     control command\n"
            "       upesi --dump-settings [PLUGIN_DIR]  the key reference\n"
            "       upesi help | --help | -h      this text\n"
            "       upesi --version | -V          the version and plugin ABI\n"
            "  -c DIR  configuration directory (default: %s)\n"
            "  -o KEY=VALUE  an smtp.ini setting that overrides the file's\n"
            "          (may repeat; kept across reloads)\n",
            UPESI_CONF_DIR);
}

/* Every other command goes to the running server over the control
 * socket: "stat [PREFIX]" (DESIGN.md 5), and what the server or its
 * plugins registered (release, queue, flush ...).  Only control_socket is
 * read from smtp.ini, so this works while the rest is being edited. */
static int control_command(int argc, char **argv)
{
    char request[1024];
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        int n = snprintf(request + len, sizeof request - len, "%s%s",
                         i ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof request - len) {
            fprintf(stderr, "upesi: command too long\n");
            return 2;
        }
        len += (size_t)n;
    }
    char *sock = up_config_control_socket(conf_dir);
    int rc = sock && up_control_request(sock, request) == 0 ? 0 : 1;
    free(sock);
    return rc;
}

static void print_line(const char *text, void *arg)
{
    (void)arg;
    printf("%s\n", text);
}

/* Is a server answering on the control socket?  (`upesi plugins` shows
 * its live chain then, else the configuration's.) */
static int server_running(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (path == NULL || strlen(path) >= sizeof sa.sun_path)
        return 0;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return up;
}

static int is_plugin_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 3 && !strcmp(e->d_name + n - 3, ".so");
}

/* `upesi --dump-settings [DIR]`: docs/config.md's generated blocks, from
 * the tables themselves (a test compares the page with this output). */
static int dump_settings(const char *plugin_dir)
{
    up_settings_doc(stdout, "smtp.ini", up_config_smtp_settings());
    struct dirent **names;
    int n = scandir(plugin_dir, &names, is_plugin_file, alphasort);
    if (n < 0) {
        fprintf(stderr, "upesi: %s: %s\n", plugin_dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char name[256], err[512], file[300];
        snprintf(name, sizeof name, "%.*s",
                 (int)(strlen(names[i]->d_name) - 3), names[i]->d_name);
        const upesi_plugin *d = up_plugin_peek(plugin_dir, name, err,
                                               sizeof err);
        if (d == NULL) {
            fprintf(stderr, "upesi: %s\n", err);
            rc = 1;
        } else if (up_plugin_settings(d)) {
            snprintf(file, sizeof file, "%s.ini", name);
            printf("\n");
            up_settings_doc(stdout, file, up_plugin_settings(d));
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void print_version(void)
{
    printf("upesi %s (plugin ABI %d.%d)\n", UPESI_VERSION, UPESI_ABI_MAJOR,
           UPESI_ABI_MINOR);
}

/* `upesi plugins [--available]` */
static int plugins_command(int argc, char **argv)
{
    int available = argc == 2 && !strcmp(argv[1], "--available");
    if (argc > 2 || (argc == 2 && !available)) {
        fprintf(stderr, "usage: upesi [-c DIR] plugins [--available]\n");
        return 2;
    }
    if (!available) {
        char *sock = up_config_control_socket(conf_dir);
        int live = server_running(sock);
        int rc = live ? up_control_request(sock, "plugins") : 0;
        free(sock);
        if (live)
            return rc == 0 ? 0 : 1;
    }
    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL) {
        fprintf(stderr, "upesi: configuration %s has errors\n", conf_dir);
        return 1;
    }
    int rc = 0;
    if (available) {
        rc = up_plugins_available(cfg->plugin_dir, stdout);
    } else {
        printf("(no server answers on the control socket: the chain of "
               "%s)\n", conf_dir);
        up_plugins_list(cfg, print_line, NULL);
        up_cli_usage(stdout);    /* the plugins' own subcommands */
    }
    up_config_unref(cfg);
    up_plugin_unload_all();
    return rc;
}

/* The options before the command (getopt stops at the first word). */
typedef struct options {
    int check_only;             /* -t */
    int simulate;               /* -bh */
    int write_store;            /* --write (with -bh) */
} options;

/* Parse them into *o; -1 to go on, else the exit status (--help,
 * --version, a bad option). */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option long_opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "write", no_argument, NULL, 'W' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "+b:c:o:thV", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            conf_dir = optarg;
            break;
        case 'o':
            up_config_override(optarg);
            break;
        case 't':
            o->check_only = 1;
            break;
        case 'b':               /* -bh, as Exim spells it */
            if (strcmp(optarg, "h") != 0) {
                fprintf(stderr, "upesi: unknown option -b%s (-bh IP "
                        "simulates a session)\n", optarg);
                return 2;
            }
            o->simulate = 1;
            break;
        case 'W':
            o->write_store = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            print_version();
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

/* -bh IP [HELO] [--write] < session.txt: never returns. */
static int simulate_main(int argc, char **argv, int write_store)
{
    const char *pos[2] = { NULL, NULL };
    int npos = 0;
    for (int i = optind; i < argc; i++) {
        if (!strcmp(argv[i], "--write"))
            write_store = 1;
        else if (npos < 2)
            pos[npos++] = argv[i];
        else
            npos = 3;
    }
    if (npos < 1 || npos > 2) {
        fprintf(stderr, "usage: upesi [-c DIR] -bh IP [HELO] [--write] "
                "< session.txt\n");
        return 2;
    }
    up_log_init("upesi", UPESI_LOG_WARNING, 0);
    /* this process's own table: a running server's stay as they are */
    if (up_stats_init(16384) != 0)
        up_fatal("cannot create the statistics table");
    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL) {
        fprintf(stderr, "upesi: configuration %s has errors\n", conf_dir);
        return 1;
    }
    if (cfg->log_level > UPESI_LOG_WARNING)
        up_log_set_level(UPESI_LOG_WARNING);
    else
        up_log_set_level(cfg->log_level);
    up_config_commit(cfg);      /* plugins adopt it, as in a server */
    int rc = up_simulate_run(cfg, pos[0], pos[1], write_store);
    fflush(stdout);
    /* no teardown: plugins' handles may still be on the loop */
    _exit(rc);
}

/* A plugin's own subcommand (`bayes learn ...`) needs the configuration
 * and the plugins.  Its exit status, or -1 when no plugin has the
 * command (or the configuration does not load: the server's commands
 * keep working, the server may run an older, good one). */
static int plugin_command(int argc, char **argv)
{
    up_log_set_level(UPESI_LOG_WARNING);
    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL)
        return -1;
    int rc = -1;
    if (up_cli_has(argv[0])) {
        up_log_set_level(cfg->log_level < UPESI_LOG_NOTICE
                             ? cfg->log_level : UPESI_LOG_NOTICE);
        rc = up_cli_run(cfg, argc, argv);
    }
    up_config_unref(cfg);
    if (rc >= 0)
        up_plugin_unload_all();
    return rc;
}

/* -t: every setting checked, plugins' included. */
static int check_config(up_config *cfg)
{
    int rc = up_config_lint(cfg);
    if (rc == 0)
        fprintf(stderr, "upesi: configuration %s ok (%zu plugins)\n",
                conf_dir, cfg->n_plugins);
    else
        fprintf(stderr, "upesi: configuration %s has errors\n", conf_dir);
    return rc;
}

static int serve(up_config *cfg)
{
    /* before any worker is forked: they share the ticket key */
    if (up_tls_seed() != 0)
        up_fatal("no random bytes for the TLS session ticket key");
    /* ... and the session cache; its size is read at start only */
    int err = up_tls_cache_start((size_t)cfg->tls_session_cache_size);
    if (err < 0)
        up_log(NULL, UPESI_LOG_WARNING, "no shared TLS session cache (%s): "
               "sessions resume by ID only on the worker that made them",
               strerror(-err));
    up_config_commit(cfg);
    return up_supervisor_run(cfg, conf_dir);
}

int main(int argc, char **argv)
{
    options o = { 0 };
    if (argc >= 2 && !strcmp(argv[1], "--dump-settings"))
        return dump_settings(argc >= 3 ? argv[2] : "plugins");
    if (access("conf/smtp.ini", F_OK) != 0)
        conf_dir = UPESI_CONF_DIR;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    /* every path that loads plugins: -t, config, plugins, -bh, the server */
    up_plugin_loader_init(up_api_table());
    if (o.simulate)
        return simulate_main(argc, argv, o.write_store);
    const char *command = optind < argc ? argv[optind] : NULL;
    if (command && !strcmp(command, "help")) {
        usage(stdout);
        return 0;
    }
    if (command && !strcmp(command, "version")) {
        print_version();
        return 0;
    }
    up_log_init("upesi", UPESI_LOG_INFO, 0);
    if (up_stats_init(16384) != 0)
        up_fatal("cannot create the statistics table");
    if (command && strcmp(command, "release") == 0) {
        /* on the spool files, not the server: works while it is down */
        if (argc - optind != 2) {
            fprintf(stderr, "usage: upesi [-c DIR] release QUEUEID\n");
            return 2;
        }
        return up_actions_release(conf_dir, argv[optind + 1]);
    }
    if (command && !strcmp(command, "plugins"))
        return plugins_command(argc - optind, argv + optind);
    int show_config = command && !strcmp(command, "config");
    if (show_config && argc - optind > 2) {
        fprintf(stderr, "usage: upesi [-c DIR] config [KEY]\n");
        return 2;
    }
    if (command && !show_config) {
        if (strcmp(command, "stat") != 0 &&
            (rc = plugin_command(argc - optind, argv + optind)) >= 0)
            return rc;
        return control_command(argc - optind, argv + optind);
    }

    up_config *cfg = up_config_load(conf_dir);
    if (cfg == NULL) {
        fprintf(stderr, "upesi: configuration %s has errors\n", conf_dir);
        return 1;
    }
    up_log_set_level(cfg->log_level);
    if (!show_config) {
        up_store_params sp = { .url = cfg->store,
                               .timeout_ms = (uint64_t)cfg->store_timeout,
                               .size = cfg->store_size };
        up_store_probe(&sp);    /* a warning only: mail keeps flowing */
    }
    if (show_config)
        rc = up_config_show(cfg, argc - optind == 2 ? argv[optind + 1] : NULL);
    else if (o.check_only)
        rc = check_config(cfg);
    else
        rc = serve(cfg);
    up_config_release_committed();
    up_config_unref(cfg);
    up_plugin_unload_all();
    up_tls_cleanup();
    return rc;
}
