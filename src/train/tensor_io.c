// tensor_io.c: float tensors in HDF5 files (see tensor_io.h).
#include "shardseg/tensor_io.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "train_impl.h"

static ss_status_t read_dataset(hid_t d, const char *path, const char *name, ss_tensor_t *t, ss_error_t *err)
{
    hid_t sp = H5Dget_space(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[SS_MAX_DIMS];
    if (nd < 1 || nd > SS_MAX_DIMS || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        H5Sclose(sp);
        SS_FAIL(err, SS_EFORMAT, "%s: dataset %s has %d dimensions; expected 1 to %d", path, name,
                nd, SS_MAX_DIMS);
    }
    H5Sclose(sp);
    int64_t shape[SS_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        shape[i] = (int64_t)dims[i];
    }
    SS_TRY(ss_tensor_init(t, SS_F32, nd, shape, NULL, err));
    t->data = malloc(ss_tensor_nbytes(t) > 0 ? ss_tensor_nbytes(t) : 1);
    if (t->data == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory for dataset %s", path, name);
    }
    if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
        free(t->data);
        t->data = NULL;
        SS_FAIL(err, SS_EFORMAT, "%s: dataset %s is not numeric or is damaged", path, name);
    }
    const float *v = t->data;
    for (int64_t i = 0; i < ss_tensor_numel(t); i++) {
        if (!isfinite(v[i])) {
            free(t->data);
            t->data = NULL;
            SS_FAIL(err, SS_ENUMERIC, "%s: dataset %s holds NaN or Inf at element %lld; fix the "
                    "input", path, name, (long long)i);
        }
    }
    return SS_OK;
}

ss_status_t ss_tensor_file_read(const char *path, const char *name, ss_tensor_t *t, ss_error_t *err)
{
    ss__train_h5_quiet();
    t->data = NULL;
    if (access(path, R_OK) != 0) {
        SS_FAIL(err, SS_EIO, "%s: cannot read the file; check the path", path);
    }
    hid_t f = ss__train_h5_open(path);
    if (f < 0) {
        SS_FAIL(err, SS_EFORMAT, "%s: not an HDF5 file or truncated", path);
    }
    ss_status_t st = SS_OK;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        st = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: no dataset %s; write the input as /%s", path, name, name);
    } else {
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        st = d < 0 ? ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                                  "%s: %s is not a dataset", path, name)
                   : read_dataset(d, path, name, t, err);
        if (d >= 0) {
            H5Dclose(d);
        }
    }
    H5Fclose(f);
    return st;
}

ss_status_t
ss_tensor_file_write(const char *path, const char *name, const ss_tensor_t *t, ss_error_t *err)
{
    char tmp[4096];
    ss__train_h5_quiet();
    SS_TRY(ss__train_tmp_path(tmp, sizeof(tmp), path, err));
    hid_t f = ss__train_h5_create(tmp);
    if (f < 0) {
        SS_FAIL(err, SS_EIO, "%s: cannot create the file; check that the directory exists and is "
                "writable", path);
    }
    hsize_t dims[SS_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        dims[i] = (hsize_t)t->shape[i];
    }
    hid_t sp = H5Screate_simple(t->ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = d >= 0 ? H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) : -1;
    if (d >= 0) {
        H5Dclose(d);
    }
    H5Sclose(sp);
    herr_t c = H5Fclose(f);
    if (w < 0 || c < 0) {
        unlink(tmp);
        SS_FAIL(err, SS_EIO, "%s: writing dataset %s failed (disk full?); nothing was written",
                path, name);
    }
    return ss__train_commit(tmp, path, err);
}
