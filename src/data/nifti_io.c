// nifti_io: NIfTI-1/2 read and write through libnifti2 (the only file that includes it).
//
// The header comes from nifti_image_read(path, 0), which handles NIfTI-1/2, .nii/.hdr+.img, gzip,
// byte order, header extensions (vox_offset) and the sform/qform matrices. Voxel data are read
// with libnifti's znz streams rather than nifti_image_load, for two reasons: nifti_read_buffer
// silently replaces NaN/Inf floats with 0 (we must reject them, naming the file), and reading in
// blocks of k-planes lets the transpose to [T][I][J][K] stream into the caller's buffer instead
// of holding the raw volume and the float volume at once.
// Writes build the header with nifti_convert_nim2n{1,2}hdr and stream header, extender and data
// through znz ourselves: nifti_image_write ignores data-write and close errors (disk full).
#include "shardseg/nifti_io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nifti2_io.h>

// Raw bytes read per block: large enough for gzip throughput, small next to one volume.
#define BLOCK_BYTES ((size_t)4 << 20)

static void quiet_nifti(void)
{
    // libnifti prints warnings on stderr at debug level >= 1; our errors are one line each.
    nifti_set_debug_level(0);
}

const char *ss_nifti_datatype_name(int datatype)
{
    switch (datatype) {
    case DT_UINT8:
        return "uint8";
    case DT_INT8:
        return "int8";
    case DT_INT16:
        return "int16";
    case DT_UINT16:
        return "uint16";
    case DT_INT32:
        return "int32";
    case DT_UINT32:
        return "uint32";
    case DT_INT64:
        return "int64";
    case DT_UINT64:
        return "uint64";
    case DT_FLOAT32:
        return "float32";
    case DT_FLOAT64:
        return "float64";
    default:
        return "unknown";
    }
}

static int datatype_size(int datatype)
{
    switch (datatype) {
    case DT_UINT8:
    case DT_INT8:
        return 1;
    case DT_INT16:
    case DT_UINT16:
        return 2;
    case DT_INT32:
    case DT_UINT32:
    case DT_FLOAT32:
        return 4;
    case DT_INT64:
    case DT_UINT64:
    case DT_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

size_t ss_nifti_nbytes(const ss_nifti_header_t *hdr)
{
    return (size_t)(hdr->dim[0] * hdr->dim[1] * hdr->dim[2] * hdr->dim[3]) * sizeof(float);
}

// NIfTI version from the first bytes of path: 1 or 2, 0 for a header without the NIfTI magic
// (ANALYZE or foreign), -1 when the header cannot be read at all (short or not gzip-readable).
static int header_version(const char *path)
{
    char buf[sizeof(nifti_2_header)];
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) {
        return -1;
    }
    size_t got = znzread(buf, 1, sizeof(buf), fp);
    znzclose(fp);
    if (got < sizeof(nifti_1_header)) {
        return -1;
    }
    int v = nifti_header_version(buf, got);
    return v == 1 || v == 2 ? v : (v == 0 ? 0 : -1);
}

// Opens path's header, with the checks every reader needs. On success *out owns the image.
static ss_status_t
open_header(const char *path, nifti_image **out, int *version_out, ss_error_t *err)
{
    *out = NULL;
    quiet_nifti();
    struct stat st;
    if (stat(path, &st) != 0) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot open: %s; check the path", path,
                    strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        SS_FAIL(err, SS_EINVAL, "%s: not a regular file; give a .nii or .nii.gz file", path);
    }
    // libnifti reads a header without the NIfTI magic as ANALYZE 7.5; we accept NIfTI only, so
    // the version comes from the magic itself.
    int version = header_version(path);
    if (version == 0) {
        SS_FAIL(err, SS_ENIFTI,
                "%s: wrong magic (not 'n+1'/'ni1'/'n+2'/'ni2': ANALYZE or foreign file); "
                "convert it to NIfTI",
                path);
    }
    nifti_image *nim = version > 0 ? nifti_image_read(path, 0) : NULL;
    if (nim == NULL) {
        SS_FAIL(err, SS_ENIFTI,
                "%s: not a readable NIfTI-1/2 file (bad magic, truncated or corrupt header); "
                "check the file",
                path);
    }
    ss_status_t rc = SS_OK;
    if (nim->nifti_type == NIFTI_FTYPE_ASCII) {
        rc = ss_error_set(err, SS_EUNSUPPORTED, 0, __FILE__, __LINE__, __func__,
                          "%s: ASCII NIfTI is not supported; convert it to .nii", path);
    } else if (datatype_size(nim->datatype) == 0) {
        rc = ss_error_set(err, SS_EUNSUPPORTED, 0, __FILE__, __LINE__, __func__,
                          "%s: NIfTI datatype %d is not supported (integer or float voxels only); "
                          "convert the file",
                          path, nim->datatype);
    } else if (nim->nx < 1 || nim->ny < 1 || nim->nz < 2 || nim->dim[0] < 3) {
        rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                          "%s: 2D image (dim %lldx%lldx%lld); a 3D volume is needed", path,
                          (long long)nim->nx, (long long)nim->ny, (long long)nim->nz);
    }
    if (rc != SS_OK) {
        nifti_image_free(nim);
        return rc;
    }
    *out = nim;
    *version_out = version;
    return SS_OK;
}

static void fill_header(const nifti_image *nim, int version, ss_nifti_header_t *hdr)
{
    memset(hdr, 0, sizeof(*hdr));
    hdr->dim[0] = nim->nx;
    hdr->dim[1] = nim->ny;
    hdr->dim[2] = nim->nz;
    // Dimensions 4..7 (time, vector components) are all channels to us: MSD stores 4 there.
    int64_t t = 1;
    for (int d = 4; d <= nim->dim[0] && d <= 7; d++) {
        t *= nim->dim[d] > 0 ? nim->dim[d] : 1;
    }
    hdr->dim[3] = t;
    hdr->spacing[0] = fabs(nim->dx);
    hdr->spacing[1] = fabs(nim->dy);
    hdr->spacing[2] = fabs(nim->dz);
    // sform when set, else qform; libnifti fills qto_xyz from pixdim when qform_code is 0 too.
    const nifti_dmat44 *m = nim->sform_code > 0 ? &nim->sto_xyz : &nim->qto_xyz;
    for (int r = 0; r < 4; r++) {
        for (int c = 0; c < 4; c++) {
            hdr->affine[r][c] = m->m[r][c];
        }
    }
    hdr->qform_code = nim->qform_code;
    hdr->sform_code = nim->sform_code;
    hdr->datatype = nim->datatype;
    hdr->version = version;
}

ss_status_t ss_nifti_read_header(const char *path, ss_nifti_header_t *hdr, ss_error_t *err)
{
    if (path == NULL || hdr == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_nifti_read_header: NULL argument");
    }
    nifti_image *nim = NULL;
    int version = 0;
    SS_TRY(open_header(path, &nim, &version, err));
    fill_header(nim, version, hdr);
    nifti_image_free(nim);
    return SS_OK;
}

// Converts n raw voxels of `datatype` to double-free float values in out.
static void convert_block(const void *raw, int datatype, int64_t n, float *out)
{
#define SS_CONVERT(T)                                                                              \
    do {                                                                                           \
        const T *p = (const T *)raw;                                                               \
        for (int64_t q = 0; q < n; q++) {                                                          \
            out[q] = (float)p[q];                                                                  \
        }                                                                                          \
    } while (0)
    switch (datatype) {
    case DT_UINT8:
        SS_CONVERT(uint8_t);
        break;
    case DT_INT8:
        SS_CONVERT(int8_t);
        break;
    case DT_INT16:
        SS_CONVERT(int16_t);
        break;
    case DT_UINT16:
        SS_CONVERT(uint16_t);
        break;
    case DT_INT32:
        SS_CONVERT(int32_t);
        break;
    case DT_UINT32:
        SS_CONVERT(uint32_t);
        break;
    case DT_INT64:
        SS_CONVERT(int64_t);
        break;
    case DT_UINT64:
        SS_CONVERT(uint64_t);
        break;
    case DT_FLOAT32:
        SS_CONVERT(float);
        break;
    case DT_FLOAT64:
        SS_CONVERT(double);
        break;
    default:
        break;
    }
#undef SS_CONVERT
}

typedef struct {
    int64_t nx, ny, nz, nplanes; // nplanes = nz * T (k-planes over all volumes)
    double slope, inter;
    int scale;
    int64_t bad; // first non-finite voxel (file order index), -1 if none
} read_plan_t;

// Scatters `np` planes starting at global plane p0 (i fastest in `vals`) into dst [T][I][J][K].
static void scatter_planes(
    const read_plan_t *pl, const float *vals, int64_t p0, int64_t np, float *dst, int64_t *bad)
{
    const int64_t nx = pl->nx, ny = pl->ny, nz = pl->nz, plane = nx * ny;
    for (int64_t q = 0; q < np; q++) {
        int64_t t = (p0 + q) / nz, k = (p0 + q) % nz;
        float *vol = dst + t * nx * ny * nz;
        const float *src = vals + q * plane;
        for (int64_t j = 0; j < ny; j++) {
            for (int64_t i = 0; i < nx; i++) {
                double v = src[j * nx + i];
                if (pl->scale) {
                    v = v * pl->slope + pl->inter;
                }
                float f = (float)v;
                if (!isfinite(f) && *bad < 0) {
                    *bad = (p0 + q) * plane + j * nx + i;
                }
                vol[(i * ny + j) * nz + k] = f;
            }
        }
    }
}

static ss_status_t read_data(const char *path, const nifti_image *nim, float *dst, ss_error_t *err)
{
    read_plan_t pl = {nim->nx, nim->ny, nim->nz, 0, nim->scl_slope, nim->scl_inter, 0, -1};
    pl.nplanes = (int64_t)nim->nvox / (pl.nx * pl.ny);
    // A slope of 0 or NaN means "no scaling" (NIfTI standard; libnifti and nibabel agree).
    pl.scale = isfinite(pl.slope) && pl.slope != 0.0 && isfinite(pl.inter) &&
               !(pl.slope == 1.0 && pl.inter == 0.0);
    const size_t plane_bytes = (size_t)(pl.nx * pl.ny) * (size_t)nim->nbyper;
    int64_t per_block = (int64_t)(BLOCK_BYTES / plane_bytes);
    per_block = per_block < 1 ? 1 : (per_block > pl.nplanes ? pl.nplanes : per_block);
    ss_status_t rc = SS_OK;
    char *imgname = nifti_findimgname(nim->iname, nim->nifti_type);
    void *raw = malloc(plane_bytes * (size_t)per_block);
    float *vals = malloc((size_t)(pl.nx * pl.ny * per_block) * sizeof(float));
    znzFile fp = NULL;
    if (raw == NULL || vals == NULL) {
        rc = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                          "%s: out of memory for the read buffer", path);
        goto out;
    }
    if (imgname != NULL) {
        fp = znzopen(imgname, "rb", nifti_is_gzfile(imgname));
    }
    if (znz_isnull(fp) || znzseek(fp, (long)nim->iname_offset, SEEK_SET) < 0) {
        rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: cannot open or seek to the voxel data (offset %lld); check the file",
                          imgname ? imgname : path, (long long)nim->iname_offset);
        goto out;
    }
    const int swap = nim->swapsize > 1 && nim->byteorder != nifti_short_order();
    for (int64_t p0 = 0; p0 < pl.nplanes; p0 += per_block) {
        int64_t np = pl.nplanes - p0 < per_block ? pl.nplanes - p0 : per_block;
        size_t want = plane_bytes * (size_t)np;
        size_t got = znzread(raw, 1, want, fp);
        if (got != want) {
            rc = ss_error_set(err, SS_EFORMAT, 0, __FILE__, __LINE__, __func__,
                              "%s: truncated file (voxel data end after %lld of %lld bytes); "
                              "download or copy the file again",
                              path, (long long)(plane_bytes * (size_t)p0 + got),
                              (long long)(plane_bytes * (size_t)pl.nplanes));
            goto out;
        }
        if (swap) {
            nifti_swap_Nbytes((int64_t)want / nim->swapsize, nim->swapsize, raw);
        }
        convert_block(raw, nim->datatype, pl.nx * pl.ny * np, vals);
        scatter_planes(&pl, vals, p0, np, dst, &pl.bad);
    }
    if (pl.bad >= 0) {
        int64_t i = pl.bad % pl.nx, j = (pl.bad / pl.nx) % pl.ny, k = (pl.bad / (pl.nx * pl.ny));
        rc = ss_error_set(err, SS_ENUMERIC, 0, __FILE__, __LINE__, __func__,
                          "%s: non-finite voxel value (NaN or Inf) at i=%lld j=%lld k=%lld; "
                          "fix or remove this case",
                          path, (long long)i, (long long)j, (long long)(k % pl.nz));
    }
out:
    if (!znz_isnull(fp)) {
        znzclose(fp);
    }
    free(imgname);
    free(raw);
    free(vals);
    return rc;
}

ss_status_t ss_nifti_read_into(
    const char *path, ss_nifti_header_t *hdr, float *dst, int64_t cap, ss_error_t *err)
{
    if (path == NULL || hdr == NULL || dst == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_nifti_read_into: NULL argument");
    }
    nifti_image *nim = NULL;
    int version = 0;
    SS_TRY(open_header(path, &nim, &version, err));
    fill_header(nim, version, hdr);
    ss_status_t rc = SS_OK;
    int64_t need = (int64_t)(ss_nifti_nbytes(hdr) / sizeof(float));
    if (need > cap) {
        rc = ss_error_set(err, SS_ESHAPE, 0, __FILE__, __LINE__, __func__,
                          "%s: volume of %lld voxels does not fit the %lld-voxel buffer; check "
                          "that all files of the case have the same shape",
                          path, (long long)need, (long long)cap);
    } else {
        rc = read_data(path, nim, dst, err);
    }
    nifti_image_free(nim);
    return rc;
}

ss_status_t ss_nifti_read(
    const char *path, ss_nifti_header_t *hdr, float **data, ss_budget_t *b, ss_error_t *err)
{
    if (data == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_nifti_read: NULL data pointer");
    }
    *data = NULL;
    SS_TRY(ss_nifti_read_header(path, hdr, err));
    size_t bytes = ss_nifti_nbytes(hdr);
    float *buf = NULL;
    SS_TRY(ss_aligned_alloc((void **)&buf, bytes, b, path, err));
    ss_status_t rc = ss_nifti_read_into(path, hdr, buf, (int64_t)(bytes / sizeof(float)), err);
    if (rc != SS_OK) {
        ss_aligned_free(buf, bytes, b);
        return rc;
    }
    *data = buf;
    return SS_OK;
}

// Stores v as `datatype` at dst[q]; 0 if v does not fit (out of range, or not finite for ints).
static int store_value(void *dst, int64_t q, int datatype, float v)
{
    if (datatype == DT_FLOAT32) {
        ((float *)dst)[q] = v;
        return 1;
    }
    if (datatype == DT_FLOAT64) {
        ((double *)dst)[q] = v;
        return 1;
    }
    if (!isfinite(v)) {
        return 0;
    }
    double r = round((double)v);
#define SS_STORE(T, lo, hi)                                                                        \
    do {                                                                                           \
        if (r < (double)(lo) || r > (double)(hi)) {                                                \
            return 0;                                                                              \
        }                                                                                          \
        ((T *)dst)[q] = (T)r;                                                                      \
        return 1;                                                                                  \
    } while (0)
    switch (datatype) {
    case DT_UINT8:
        SS_STORE(uint8_t, 0, UINT8_MAX);
    case DT_INT8:
        SS_STORE(int8_t, INT8_MIN, INT8_MAX);
    case DT_INT16:
        SS_STORE(int16_t, INT16_MIN, INT16_MAX);
    case DT_UINT16:
        SS_STORE(uint16_t, 0, UINT16_MAX);
    case DT_INT32:
        SS_STORE(int32_t, INT32_MIN, INT32_MAX);
    case DT_UINT32:
        SS_STORE(uint32_t, 0, UINT32_MAX);
    // float has 24 mantissa bits: the 64-bit bounds below are conservative (2^63 exclusive).
    case DT_INT64:
        SS_STORE(int64_t, -9.2e18, 9.2e18);
    case DT_UINT64:
        SS_STORE(uint64_t, 0, 1.8e19);
    default:
        return 0;
    }
#undef SS_STORE
}

// Builds the libnifti image description (no data) for hdr and the on-disk datatype.
static nifti_image *make_nim(const ss_nifti_header_t *hdr, int datatype, int version)
{
    int64_t dims[8] = {
        hdr->dim[3] > 1 ? 4 : 3, hdr->dim[0], hdr->dim[1], hdr->dim[2], hdr->dim[3], 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, datatype, 0);
    if (nim == NULL) {
        return NULL;
    }
    nifti_dmat44 m;
    for (int r = 0; r < 4; r++) {
        for (int c = 0; c < 4; c++) {
            m.m[r][c] = hdr->affine[r][c];
        }
    }
    nim->dx = nim->pixdim[1] = hdr->spacing[0] > 0 ? hdr->spacing[0] : 1.0;
    nim->dy = nim->pixdim[2] = hdr->spacing[1] > 0 ? hdr->spacing[1] : 1.0;
    nim->dz = nim->pixdim[3] = hdr->spacing[2] > 0 ? hdr->spacing[2] : 1.0;
    // Without codes a reader would ignore the affine: keep it as scanner coordinates then.
    int have = hdr->qform_code > 0 || hdr->sform_code > 0;
    nim->qform_code = have ? hdr->qform_code : NIFTI_XFORM_SCANNER_ANAT;
    nim->sform_code = have ? hdr->sform_code : NIFTI_XFORM_SCANNER_ANAT;
    double dx, dy, dz;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                            &nim->qoffset_y, &nim->qoffset_z, &dx, &dy, &dz, &nim->qfac);
    nim->qto_xyz = m;
    nim->sto_xyz = m;
    nim->scl_slope = 1.0;
    nim->scl_inter = 0.0;
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->nifti_type = version == 2 ? NIFTI_FTYPE_NIFTI2_1 : NIFTI_FTYPE_NIFTI1_1;
    // Header, 4-byte extender, no extensions; 352 / 544 are both 16-byte aligned.
    nim->iname_offset = version == 2 ? 544 : 352;
    return nim;
}

// Header bytes (with the 4-byte extender saying "no extensions") for nim into buf; returns size.
static int encode_header(nifti_image *nim, int version, char *buf)
{
    int n = 0;
    if (version == 2) {
        nifti_2_header h2;
        if (nifti_convert_nim2n2hdr(nim, &h2) != 0) {
            return -1;
        }
        // libnifti 3.0.1 leaves vox_offset at 0 in NIfTI-2 headers (its writer seeks instead).
        h2.vox_offset = nim->iname_offset;
        memcpy(h2.magic, "n+2\0\r\n\032\n", 8); // and writes only "n+2" of the signature
        memcpy(buf, &h2, sizeof(h2));
        n = (int)sizeof(h2);
    } else {
        nifti_1_header h1;
        if (nifti_convert_nim2n1hdr(nim, &h1) != 0) {
            return -1;
        }
        memcpy(buf, &h1, sizeof(h1));
        n = (int)sizeof(h1);
    }
    memset(buf + n, 0, 4);
    return n + 4;
}

// Streams data (float [T][I][J][K]) to fp in file order (i fastest) as `datatype`.
static ss_status_t write_voxels(znzFile fp,
                                const char *path,
                                const ss_nifti_header_t *hdr,
                                const float *data,
                                int datatype,
                                ss_error_t *err)
{
    const int64_t nx = hdr->dim[0], ny = hdr->dim[1], nz = hdr->dim[2];
    const int64_t nplanes = nz * hdr->dim[3], plane = nx * ny;
    const int size = datatype_size(datatype);
    void *buf = malloc((size_t)plane * (size_t)size);
    if (buf == NULL) {
        SS_FAIL(err, SS_ENOMEM, "%s: out of memory for the write buffer", path);
    }
    ss_status_t rc = SS_OK;
    for (int64_t p = 0; p < nplanes && rc == SS_OK; p++) {
        const float *vol = data + (p / nz) * plane * nz;
        const int64_t k = p % nz;
        for (int64_t j = 0; j < ny && rc == SS_OK; j++) {
            for (int64_t i = 0; i < nx; i++) {
                float v = vol[(i * ny + j) * nz + k];
                if (!store_value(buf, j * nx + i, datatype, v)) {
                    rc = ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                                      "%s: value %g at i=%lld j=%lld k=%lld does not fit %s; "
                                      "write as float32",
                                      path, (double)v, (long long)i, (long long)j, (long long)k,
                                      ss_nifti_datatype_name(datatype));
                    break;
                }
            }
        }
        size_t want = (size_t)plane * (size_t)size;
        if (rc == SS_OK && znzwrite(buf, 1, want, fp) != want) {
            rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                              "%s: write failed (%s); check free space and permissions", path,
                              strerror(errno));
        }
    }
    free(buf);
    return rc;
}

static ss_status_t write_check(const char *path,
                               const ss_nifti_header_t *hdr,
                               const float *data,
                               int datatype,
                               int version,
                               ss_error_t *err)
{
    if (path == NULL || hdr == NULL || data == NULL) {
        SS_FAIL(err, SS_EINVAL, "ss_nifti_write: NULL argument");
    }
    if (datatype_size(datatype) == 0) {
        SS_FAIL(err, SS_EUNSUPPORTED, "%s: cannot write NIfTI datatype %d; use 2, 4 or 16", path,
                datatype);
    }
    if (version != 1 && version != 2) {
        SS_FAIL(err, SS_EINVAL, "%s: NIfTI version %d; use 1 or 2", path, version);
    }
    for (int d = 0; d < 4; d++) {
        if (hdr->dim[d] < 1 || (version == 1 && hdr->dim[d] > INT16_MAX)) {
            SS_FAIL(err, SS_ESHAPE, "%s: dimension %d is %lld; NIfTI-%d needs 1..%d", path, d,
                    (long long)hdr->dim[d], version, version == 1 ? INT16_MAX : INT32_MAX);
        }
    }
    return SS_OK;
}

static int has_gz_suffix(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

ss_status_t ss_nifti_write_version(const char *path,
                                   const ss_nifti_header_t *hdr,
                                   const float *data,
                                   int datatype,
                                   int version,
                                   ss_error_t *err)
{
    SS_TRY(write_check(path, hdr, data, datatype, version, err));
    quiet_nifti();
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
        SS_FAIL(err, SS_EINVAL, "%s: path too long", path);
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        SS_FAIL_LIB(err, SS_EIO, errno, "%s: cannot create a file there: %s; check the directory",
                    path, strerror(errno));
    }
    // mkstemp creates 0600; the finished file gets the usual permissions.
    (void)fchmod(fd, 0644);
    close(fd);
    ss_status_t rc = SS_OK;
    char hbuf[sizeof(nifti_2_header) + 4];
    nifti_image *nim = make_nim(hdr, datatype, version);
    int hlen = nim ? encode_header(nim, version, hbuf) : -1;
    // gzip level 1: about 3x faster than the default 6 for ~10% larger files.
    znzFile fp =
        hlen > 0 ? znzopen(tmp, has_gz_suffix(path) ? "wb1" : "wb", has_gz_suffix(path)) : NULL;
    if (hlen < 0) {
        rc = ss_error_set(err, SS_ENIFTI, 0, __FILE__, __LINE__, __func__,
                          "%s: libnifti could not build the header; check dim and affine", path);
    } else if (znz_isnull(fp)) {
        rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: cannot open for writing: %s", tmp, strerror(errno));
    } else if (znzwrite(hbuf, 1, (size_t)hlen, fp) != (size_t)hlen) {
        rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: header write failed (%s); check free space", path, strerror(errno));
    } else {
        rc = write_voxels(fp, path, hdr, data, datatype, err);
    }
    // Closing flushes gzip's last block: its status is part of the write.
    if (!znz_isnull(fp) && znzclose(fp) != 0 && rc == SS_OK) {
        rc =
            ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                         "%s: write failed at close (%s); check free space", path, strerror(errno));
    }
    nifti_image_free(nim);
    if (rc == SS_OK && rename(tmp, path) != 0) {
        rc = ss_error_set(err, SS_EIO, errno, __FILE__, __LINE__, __func__,
                          "%s: cannot rename the finished file into place: %s", path,
                          strerror(errno));
    }
    if (rc != SS_OK) {
        unlink(tmp);
    }
    return rc;
}

ss_status_t ss_nifti_write(const char *path,
                           const ss_nifti_header_t *hdr,
                           const float *data,
                           int datatype,
                           ss_error_t *err)
{
    return ss_nifti_write_version(path, hdr, data, datatype, 1, err);
}
