/*
 * api.h - the table of host functions handed to plugins (upesi/plugin.h).
 */
#ifndef UPESI_API_H
#define UPESI_API_H

#include "upesi/plugin.h"

const upesi_api *up_api_table(void);

#endif
