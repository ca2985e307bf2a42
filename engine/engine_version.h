// SPDX-License-Identifier: MIT
// The engine's version ("MAJOR.MINOR.PATCH"), a static string.
#ifndef MESH_ENGINE_VERSION_H
#define MESH_ENGINE_VERSION_H
const char *mesh_engine_version(void);
#endif
