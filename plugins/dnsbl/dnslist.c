/* dnslist.c - the DNS list zones, lookups and statistics, compiled into this
 * plugin (see plugins/common/dnslist.h). */
#include "../common/dnslist.c"
