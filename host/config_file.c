/*
 * config_file.c - the files of a configuration: paths relative to the
 * configuration directory, the refusal of anything world-writable, and ini
 * files read with "file:line: message" errors.
 *
 * inih does the ini syntax; config_smtp.c and config_plugins.c know the
 * keys.  inih as packaged does not report line numbers to handlers, so
 * up_ini_parse feeds it through a reader that counts lines: inih calls the
 * handler right after reading the line that holds the key, so the count is
 * that key's line.
 *
 * Fails: never exits; a file that cannot be opened, is world-writable or
 * holds a bad line is logged as "file:line: message" (every bad line of a
 * file in one run) and the caller gets -1.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"

/* ---------------------------------------------------------------------- */
/* ini files with file:line errors                                         */

typedef struct ini_stream {
    FILE *fp;
    const char *path;
    int line;                   /* line most recently read               */
    int errors;
    up_ini_handler handler;
    void *arg;
} ini_stream;

static char *ini_read_line(char *str, int num, void *stream)
{
    ini_stream *st = stream;
    if (fgets(str, num, st->fp) == NULL)
        return NULL;
    st->line++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(st->fp)) {
        up_log(NULL, UPESI_LOG_ERR,
               "%s:%d: line longer than %d characters (continue a long "
               "list on indented lines)", st->path, st->line, num - 2);
        st->errors++;
        int c;
        while ((c = fgetc(st->fp)) != EOF && c != '\n')
            ;
        str[0] = '\0';
    }
    return str;
}

static int current_line;        /* of the key being handled             */

int up_ini_line(void)
{
    return current_line;
}

static int ini_dispatch(void *user, const char *section, const char *key,
                        const char *value)
{
    ini_stream *st = user;
    char err[512] = "";
    current_line = st->line;
    if (st->handler(st->arg, section, key, value, err, sizeof err) != 0) {
        up_log(NULL, UPESI_LOG_ERR, "%s:%d: %s", st->path, st->line,
               err[0] ? err : "bad setting");
        st->errors++;
    }
    return 1; /* keep going: report every error in one run */
}

int up_ini_parse(const char *path, up_ini_handler handler, void *arg)
{
    ini_stream st = { .path = path, .handler = handler, .arg = arg };
    st.fp = fopen(path, "r");
    if (st.fp == NULL) {
        up_log(NULL, UPESI_LOG_ERR, "%s:0: cannot open: %s", path,
               strerror(errno));
        return -1;
    }
    if (up_config_check_not_world_writable(path, "configuration file")) {
        fclose(st.fp);
        return -1;
    }
    int rc = ini_parse_stream(ini_read_line, &st, ini_dispatch, &st);
    fclose(st.fp);
    if (rc > 0) {
        up_log(NULL, UPESI_LOG_ERR, "%s:%d: syntax error (expected "
               "'key = value' or '[section]')", path, rc);
        st.errors++;
    } else if (rc < 0) {
        up_log(NULL, UPESI_LOG_ERR, "%s:0: cannot parse (error %d)", path, rc);
        st.errors++;
    }
    return st.errors ? -1 : 0;
}

int up_config_check_not_world_writable(const char *path, const char *what)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;               /* a missing file is reported elsewhere */
    /* a sticky directory (/tmp) is safe: nobody can replace our files */
    if ((st.st_mode & S_IWOTH) &&
        !(S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX))) {
        up_log(NULL, UPESI_LOG_ERR, "%s: %s is world-writable: refused "
               "(anyone could change what upesi runs; chmod o-w %s)", path,
               what, path);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* paths                                                                   */

char *up_config_path(const char *dir, const char *path)
{
    char *out;
    if (path[0] == '/' || dir == NULL || dir[0] == '\0')
        return strdup(path);
    if (asprintf(&out, "%s/%s", dir, path) < 0)
        return NULL;
    return out;
}
