// SPDX-License-Identifier: MIT
// Reference (scalar) dequantizers and quantizers for the block types.
// Placeholder: the block converters arrive with the tensor-types work; until
// then block types have none and callers must treat NULL as unsupported.
#include "quant.h"

void mesh__quant_ref_fill(mesh_qtype_traits_t *traits, int n);

void mesh__quant_ref_fill(mesh_qtype_traits_t *traits, int n) {
    (void)traits;
    (void)n;
}
