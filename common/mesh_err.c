// SPDX-License-Identifier: MIT
// Error code strings: the X-macro table of mesh_err.h expanded into switches.
#include "mesh_err.h"

const char *mesh_strerror(int code) {
    switch (code) {
    case MESH_OK:
        return "success";
#define MESH_ERR_STR_(name, num, msg)                                                  \
    case MESH_E##name:                                                                 \
        return msg;
        MESH_ERRNO_MAP(MESH_ERR_STR_)
#undef MESH_ERR_STR_
    default:
        return "unknown error";
    }
}

const char *mesh_errname(int code) {
    switch (code) {
    case MESH_OK:
        return "MESH_OK";
#define MESH_ERR_NAME_(name, num, msg)                                                 \
    case MESH_E##name:                                                                 \
        return "MESH_E" #name;
        MESH_ERRNO_MAP(MESH_ERR_NAME_)
#undef MESH_ERR_NAME_
    default:
        return "MESH_E?";
    }
}
