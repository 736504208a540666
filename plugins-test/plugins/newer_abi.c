/*
 * newer_abi.c - a plugin that claims a newer ABI minor than the host has:
 * the loader must refuse it, naming both ABIs.
 */
#include "upesi/plugin.h"

UPESI_PLUGIN = {
    .magic = UPESI_PLUGIN_MAGIC,
    .abi_major = UPESI_ABI_MAJOR,
    .abi_minor = UPESI_ABI_MINOR + 1,
    .size = sizeof(struct upesi_plugin),
    .name = "newer_abi",
    .version = "1.0",
};
