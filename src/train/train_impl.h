// train_impl.h: declarations shared inside src/train (never installed): atomic file commits and
// the HDF5 pieces of weights files that checkpoints reuse.
#ifndef SS_TRAIN_IMPL_H
#define SS_TRAIN_IMPL_H

#include <stddef.h>

#include <hdf5.h>

#include "shardseg/model.h"
#include "shardseg/status.h"

// "<dir>/.<base>.tmp.<pid>" for path "<dir>/<base>": a temp name in the same directory, so the
// final rename stays on one filesystem and is atomic.
ss_status_t ss__train_tmp_path(char *tmp, size_t len, const char *path, ss_error_t *err);
// fsync(tmp), rename(tmp, path), fsync(directory of path). Unlinks tmp on failure.
ss_status_t ss__train_commit(const char *tmp, const char *path, ss_error_t *err);
// fsync of the directory holding path (its entries: a rename or unlink becomes durable).
ss_status_t ss__train_fsync_dir_of(const char *path, ss_error_t *err);
// Writes a cairo image surface (a cairo_surface_t *, passed as void * so that this header needs
// no cairo.h) as a PNG to path atomically: temporary file, fsync, rename (plot.c). SS_EINVAL
// naming path when its directory cannot be written, SS_EIO when writing fails.
ss_status_t ss__train_write_png(void *surface, const char *path, ss_error_t *err);
// Upper bound of the size of an HDF5 file holding data_bytes in ndatasets datasets.
int64_t ss__train_h5_estimate(int64_t data_bytes, int64_t ndatasets);
// SS_EIO (ENOSPC) when `bytes` would exceed the free space of path's file system or the process
// file size limit: checked before HDF5 writes anything, because HDF5 1.10 cannot recover from a
// failed write inside H5Dclose/H5Fclose (the file id stays half-closed and the library crashes
// at exit).
ss_status_t ss__train_space_check(const char *path, int64_t bytes, ss_error_t *err);
// posix_fallocate(tmp, bytes) right after H5Fcreate, so no later write can hit a full disk that
// filled up meanwhile; HDF5 truncates the file to its real size on close.
ss_status_t ss__train_reserve(const char *tmp, const char *path, int64_t bytes, ss_error_t *err);
// Silences HDF5's automatic error stack printing (errors reach the user as one line each).
void ss__train_h5_quiet(void);
// H5Fcreate (truncating) / H5Fopen read-only with a strong close degree (H5Fclose really closes,
// so the fsync that follows sees every byte) and v1.8 object formats (checksummed metadata).
hid_t ss__train_h5_create(const char *path);
hid_t ss__train_h5_open(const char *path);
// Name of link i of group g (0 on success; -1 if unreadable or longer than len - 1), and whether
// g/name is a dataset. Index-based, so no iteration callback whose type changes across HDF5
// 1.10 / 1.12 / 1.14.
int ss__train_h5_child(hid_t g, hsize_t i, char *name, size_t len);
int ss__train_h5_is_dataset(hid_t g, const char *name);

// Root attributes <-> configuration. read does not validate (the callers do, or compare).
ss_status_t
ss__weights_write_config(hid_t loc, const ss_model_config_t *c, const char *path, ss_error_t *err);
ss_status_t
ss__weights_read_config(hid_t loc, ss_model_config_t *c, const char *path, ss_error_t *err);
// SS_EINVAL "<path>: <attr> is <a> in the file but <b> in this run; <fix>" for the first
// attribute (of the file's model kind) that differs.
ss_status_t ss__weights_compare(const ss_model_config_t *file,
                                const ss_model_config_t *run,
                                const char *path,
                                const char *fix,
                                ss_error_t *err);
// One float32 dataset per parameter at the root of f. checksum: chunked + fletcher32.
ss_status_t ss__weights_write_params(
    hid_t f, const ss_model_t *m, int checksum, const char *path, ss_error_t *err);
ss_status_t
ss__weights_read_params(hid_t f, ss_model_t *m, int strict, const char *path, ss_error_t *err);
// Dataset creation property list: contiguous (H5P_DEFAULT copy) or, with checksum, chunks of at
// most 2^24 elements (whole dataset when smaller) with the fletcher32 filter. Close it.
hid_t ss__train_dcpl(int ndim, const hsize_t *dims, int checksum);

#endif
