// weights.h: weights files (HDF5) in the PyTorch/MONAI layout of docs/models.md.
//
// File layout: the model hyper-parameters are root attributes named as MONAI's constructor
// arguments (`model`, `in_channels`, `img_size`, ...); every parameter is a float32 dataset at
// the root named by its state_dict key with PyTorch's shape (scalar dataspace for 0-d buffers
// such as BatchNorm's num_batches_tracked). Anything else in the file (a checkpoint's /optim and
// /state groups, fixture data) is ignored by the reader.
//
// Writing: int64 scalars and int64[3] arrays, double for dropout_rate, fixed-length
// null-terminated ASCII strings; parameters contiguous and uncompressed (weights are noise-like
// floats: deflate saves a few percent and costs time on every load; contiguous data also reads
// fastest from h5py). The file system must have room for it (checked first, then reserved; see
// checkpoint.h for why). The file is written atomically: a temp file in the same directory, fsync,
// rename, fsync of the directory; on any failure the temp file is removed and `path` is untouched.
// Reading accepts what h5py writes by default too: int32 or int64 integers (numpy bool enums for
// the 0/1 flags), variable-length or fixed-length strings, a scalar img_size/patch_size meaning a
// cube, float32 or float64 parameter datasets (integer ones only for non-trainable buffers).
// Optional attributes take MONAI's defaults when absent: proj_type "conv", norm_name
// "instance", conv_block 1, res_block 1, qkv_bias 0, dropout_rate 0; every size is required.
//
// Errors (one line): SS_EIO when the file cannot be opened or written, SS_EFORMAT for a missing
// or ill-typed attribute or parameter, SS_ESHAPE for a parameter of the wrong shape, SS_EINVAL for
// a configuration ss_model_config_validate rejects or that differs from the model's.
// Ownership: paths and models are borrowed. Threading: HDF5 calls are serialised by the library;
// do not use one model from two threads.
#ifndef SS_WEIGHTS_H
#define SS_WEIGHTS_H

#include "shardseg/model.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// OUT cfg: the configuration stored in the root attributes of path, validated.
ss_status_t ss_weights_read_config(const char *path, ss_model_config_t *cfg, ss_error_t *err);

// Loads every parameter of m from path into ss_model_weights(m). The file's configuration must
// equal m's (SS_EINVAL naming the first differing attribute), every parameter must be present
// with its PyTorch shape. A missing parameter whose name appears under a prefix (a DataParallel
// "module." state_dict) gets a hint naming the prefix. Extra datasets are ignored. On failure
// the model's weights may be partly overwritten (callers stop, or load again).
ss_status_t ss_weights_load(const char *path, ss_model_t *m, ss_error_t *err);
// As ss_weights_load, but a root dataset that is not a parameter of m is an error (SS_EFORMAT
// naming it and how many there are): catches prefixed or foreign state_dicts.
ss_status_t ss_weights_load_strict(const char *path, ss_model_t *m, ss_error_t *err);

// Writes m's configuration and parameters to path atomically (replacing an existing file).
ss_status_t ss_weights_save(const char *path, const ss_model_t *m, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
