/*
 * other_major.c - a plugin built for another ABI major: refused.
 */
#include "upesi/plugin.h"

UPESI_PLUGIN = {
    .magic = UPESI_PLUGIN_MAGIC,
    .abi_major = UPESI_ABI_MAJOR + 1,
    .abi_minor = 0,
    .size = sizeof(struct upesi_plugin),
    .name = "other_major",
    .version = "1.0",
};
