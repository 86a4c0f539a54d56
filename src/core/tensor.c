#include "shardseg/tensor.h"

#include <stdio.h>
#include <string.h>

size_t ss_dtype_size(ss_dtype_t dtype)
{
    switch (dtype) {
    case SS_F32:
        return 4;
    }
    return 0;
}

static ss_status_t check_shape(int ndim, const int64_t *shape, ss_error_t *err)
{
    if (ndim < 0 || ndim > SS_MAX_DIMS) {
        SS_FAIL(err, SS_ESHAPE, "tensor rank %d outside [0, %d]", ndim, SS_MAX_DIMS);
    }
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            SS_FAIL(err, SS_ESHAPE, "tensor dimension %d is negative (%lld)", d,
                    (long long)shape[d]);
        }
    }
    return SS_OK;
}

ss_status_t ss_tensor_init(
    ss_tensor_t *t, ss_dtype_t dtype, int ndim, const int64_t *shape, void *data, ss_error_t *err)
{
    SS_TRY(check_shape(ndim, shape, err));
    memset(t, 0, sizeof(*t));
    t->dtype = dtype;
    t->ndim = ndim;
    int64_t stride = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        t->shape[d] = shape[d];
        t->stride[d] = stride;
        stride *= shape[d];
    }
    t->data = data;
    return SS_OK;
}

ss_status_t ss_tensor_alloc(ss_tensor_t *t,
                            ss_dtype_t dtype,
                            int ndim,
                            const int64_t *shape,
                            ss_arena_t *a,
                            ss_error_t *err)
{
    SS_TRY(ss_tensor_init(t, dtype, ndim, shape, NULL, err));
    return ss_arena_alloc(a, ss_tensor_nbytes(t), &t->data, err);
}

int64_t ss_tensor_numel(const ss_tensor_t *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        n *= t->shape[d];
    }
    return n;
}

size_t ss_tensor_nbytes(const ss_tensor_t *t)
{
    return (size_t)ss_tensor_numel(t) * ss_dtype_size(t->dtype);
}

int ss_tensor_is_contiguous(const ss_tensor_t *t)
{
    int64_t stride = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        // A dimension of extent 1 may carry any stride without changing the layout.
        if (t->shape[d] != 1 && t->stride[d] != stride) {
            return 0;
        }
        stride *= t->shape[d];
    }
    return 1;
}

int ss_tensor_same_shape(const ss_tensor_t *a, const ss_tensor_t *b)
{
    if (a->ndim != b->ndim) {
        return 0;
    }
    for (int d = 0; d < a->ndim; d++) {
        if (a->shape[d] != b->shape[d]) {
            return 0;
        }
    }
    return 1;
}

ss_status_t ss_tensor_view_slab(
    ss_tensor_t *view, const ss_tensor_t *t, int dim, int64_t start, int64_t len, ss_error_t *err)
{
    if (dim < 0 || dim >= t->ndim) {
        SS_FAIL(err, SS_ESHAPE, "slab dimension %d outside a rank-%d tensor", dim, t->ndim);
    }
    if (start < 0 || len < 0 || start + len > t->shape[dim]) {
        SS_FAIL(err, SS_ESHAPE, "slab [%lld, %lld) outside dimension %d of extent %lld",
                (long long)start, (long long)(start + len), dim, (long long)t->shape[dim]);
    }
    ss_tensor_t v = *t;
    v.shape[dim] = len;
    if (t->data != NULL) {
        v.data = (char *)t->data + (size_t)(start * t->stride[dim]) * ss_dtype_size(t->dtype);
    }
    v.view_of = t;
    *view = v;
    return SS_OK;
}

ss_status_t ss_tensor_view_reshape(
    ss_tensor_t *view, const ss_tensor_t *t, int ndim, const int64_t *shape, ss_error_t *err)
{
    if (!ss_tensor_is_contiguous(t)) {
        SS_FAIL(err, SS_ESHAPE, "reshape of a non-contiguous tensor");
    }
    ss_tensor_t v;
    SS_TRY(ss_tensor_init(&v, t->dtype, ndim, shape, t->data, err));
    if (ss_tensor_numel(&v) != ss_tensor_numel(t)) {
        SS_FAIL(err, SS_ESHAPE, "reshape from %lld to %lld elements", (long long)ss_tensor_numel(t),
                (long long)ss_tensor_numel(&v));
    }
    v.view_of = t;
    *view = v;
    return SS_OK;
}

int64_t ss_tensor_offset(const ss_tensor_t *t, const int64_t *idx)
{
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) {
        off += idx[d] * t->stride[d];
    }
    return off;
}

void ss_tensor_shape_str(const ss_tensor_t *t, char *buf, size_t len)
{
    size_t used = 0;
    int n = snprintf(buf, len, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int d = 0; d < t->ndim && used < len; d++) {
        n = snprintf(buf + used, len - used, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < len) {
        snprintf(buf + used, len - used, ")");
    }
}

void ss_split_range(int64_t n, int parts, int part, int64_t *start, int64_t *len)
{
    int64_t base = n / parts;
    int64_t extra = n % parts;
    *len = base + (part < extra ? 1 : 0);
    *start = part * base + (part < extra ? part : extra);
}
