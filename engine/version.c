// SPDX-License-Identifier: MIT
// The engine's version string, reported by meshrun and in node capability reports.
#include "engine_version.h"

const char *mesh_engine_version(void) { return "0.1.0"; }
