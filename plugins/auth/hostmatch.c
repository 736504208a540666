/* hostmatch.c - the shared host lists, compiled into this plugin
 * (see plugins/common/hostmatch.h). */
#include "../common/hostmatch.c"
