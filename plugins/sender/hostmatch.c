/* hostmatch.c - the shared host/domain lists, compiled into this plugin
 * (see plugins/common/hostmatch.h). */
#include "../common/hostmatch.c"
