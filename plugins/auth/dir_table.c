/* dir_table.c - the directory file parser, compiled into this plugin
 * (plugins/directory/dir_table.h; the auth plugin reads password=). */
#include "../directory/dir_table.c"
