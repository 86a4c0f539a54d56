// tensor.h: the tensor descriptor used by every layer.
//
// A tensor is a dtype, up to SS_MAX_DIMS dimensions, element strides and a data pointer. Volumes
// are [N][C][I][J][K] row-major (K fastest), where (i, j, k) is the NIfTI voxel index. A slab is a
// contiguous range along one dimension (for sequence parallelism: along I), taken as a view.
//
// Ownership: a tensor never owns its data. Data comes from an arena, a parameter slab or the
// caller; views record the tensor they were taken from in `view_of` (borrowed).
// Threading: descriptors are plain values; no internal state.
#ifndef SS_TENSOR_H
#define SS_TENSOR_H

#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_MAX_DIMS 6

typedef enum {
    SS_F32 = 0,
} ss_dtype_t;

typedef struct ss_tensor {
    ss_dtype_t dtype;
    int ndim;
    int64_t shape[SS_MAX_DIMS];
    int64_t stride[SS_MAX_DIMS]; // in elements
    void *data;
    const struct ss_tensor *view_of; // NULL unless this is a view
} ss_tensor_t;

// Describes a contiguous row-major tensor of the given shape over `data` (borrowed, may be NULL).
// SS_ESHAPE if ndim is outside [0, SS_MAX_DIMS] or a dimension is negative.
ss_status_t ss_tensor_init(
    ss_tensor_t *t, ss_dtype_t dtype, int ndim, const int64_t *shape, void *data, ss_error_t *err);
// As ss_tensor_init, with data taken from arena a.
ss_status_t ss_tensor_alloc(ss_tensor_t *t,
                            ss_dtype_t dtype,
                            int ndim,
                            const int64_t *shape,
                            ss_arena_t *a,
                            ss_error_t *err);

int64_t ss_tensor_numel(const ss_tensor_t *t);
size_t ss_tensor_nbytes(const ss_tensor_t *t); // numel * element size (contiguous extent)
size_t ss_dtype_size(ss_dtype_t dtype);
// 1 if the strides are those of a contiguous row-major layout.
int ss_tensor_is_contiguous(const ss_tensor_t *t);
// 1 if both have the same ndim and shape.
int ss_tensor_same_shape(const ss_tensor_t *a, const ss_tensor_t *b);

// View of the range [start, start + len) along dimension dim: same strides, data offset. The view
// borrows t's data. SS_ESHAPE if the range is outside the tensor.
ss_status_t ss_tensor_view_slab(
    ss_tensor_t *view, const ss_tensor_t *t, int dim, int64_t start, int64_t len, ss_error_t *err);
// View of a contiguous tensor with a new shape of the same element count.
ss_status_t ss_tensor_view_reshape(
    ss_tensor_t *view, const ss_tensor_t *t, int ndim, const int64_t *shape, ss_error_t *err);

// Element offset of the index tuple idx (ndim entries) from data.
int64_t ss_tensor_offset(const ss_tensor_t *t, const int64_t *idx);

// Typed access to float32 data (the only dtype today).
static inline float *ss_tensor_f32(const ss_tensor_t *t)
{
    return (float *)t->data;
}

// Writes "(2, 4, 64, 64, 64)" into buf.
void ss_tensor_shape_str(const ss_tensor_t *t, char *buf, size_t len);

// Splits n items into `parts` contiguous ranges as evenly as possible (the first n % parts ranges
// get one more) and returns range `part` as [*start, *start + *len). Used for slabs and shards.
void ss_split_range(int64_t n, int parts, int part, int64_t *start, int64_t *len);

#ifdef __cplusplus
}
#endif
#endif
