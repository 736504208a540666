/* settings.c - the config_set and init helpers, compiled into this plugin
 * (see plugins/common/settings.h). */
#include "../common/settings.c"
