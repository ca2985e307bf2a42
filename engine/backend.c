// SPDX-License-Identifier: MIT
// Backend registry: names to constructors. The CPU backend is always built;
// GPU backends add their entry when their build option is on.
#include "backend.h"

#include "mesh_err.h"

#include <stdlib.h>
#include <string.h>

int mesh_backend_new(const char *name, const mesh_backend_params_t *p, mesh_backend_t **out) {
    *out = NULL;
    if (!name || !strcmp(name, "cpu"))
        return mesh_kern_cpu_register(p, out);
#ifdef MESH_HAVE_CUDA
    if (!strcmp(name, "cuda"))
        return mesh_kern_cuda_register(p, out);
#endif
    return MESH_ENOTFOUND;
}

void mesh_backend_destroy(mesh_backend_t **b) {
    if (!*b)
        return;
    (*b)->iface->destroy((*b)->ctx);
    // The struct itself was allocated by the constructor with calloc.
    free(*b);
    *b = NULL;
}
