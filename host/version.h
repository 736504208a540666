/* version.h - the upesi release. */
#ifndef UPESI_VERSION_H
#define UPESI_VERSION_H
#define UPESI_VERSION "0.1.0"
#endif
