/*
 * newer_abi.c - a plugin that needs a newer ABI minor than the host has
 * (it declares UPESI_ABI_MINOR + 1 as the lowest minor it needs): the
 * loader must refuse it, naming the file, the ABI it needs and the host's.
 */
#include "upesi/plugin.h"

UPESI_PLUGIN = {
    UPESI_PLUGIN_HEADER_NEEDS(UPESI_ABI_MINOR + 1),
    .name = "newer_abi",
    .version = "1.0",
};
