// tensor_io.h: float tensors in HDF5 files, for `shardseg forward` (/image in, /logits out) and
// tools that exchange arrays with PyTorch (h5py writes and reads the same files).
//
// Reading accepts any float or integer dataset (converted to float32) of up to SS_MAX_DIMS dims.
// Writing is atomic (temp file in the same directory, fsync, rename): on failure nothing is left.
// Ownership: ss_tensor_file_read returns malloc'd data in t->data (the caller frees it).
#ifndef SS_TENSOR_IO_H
#define SS_TENSOR_IO_H

#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// SS_EIO naming the file when it cannot be opened, SS_EFORMAT when `name` is missing or not a
// numeric dataset, SS_ENUMERIC when a value is NaN or infinite.
ss_status_t ss_tensor_file_read(const char *path, const char *name, ss_tensor_t *t, ss_error_t *err);
// Writes t (contiguous float32) as dataset `name` of a new file at path.
ss_status_t
ss_tensor_file_write(const char *path, const char *name, const ss_tensor_t *t, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
