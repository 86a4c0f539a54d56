// preprocess: geometry checks, brain mask, crop, z-score and label regions (see preprocess.h).
#include "shardseg/preprocess.h"

#include <math.h>
#include <string.h>

static int nthreads_of(const ss_exec_t *ex)
{
    return ex != NULL && ex->nthreads > 0 ? ex->nthreads : 1;
}

int ss_target_channels(ss_target_t t)
{
    return t == SS_TARGET_BINARY ? 1 : 3;
}

const char *ss_target_channel_name(ss_target_t t, int r)
{
    static const char *const regions[3] = {"WT", "TC", "ET"};
    if (t == SS_TARGET_BINARY) {
        return r == 0 ? "tumour" : "?";
    }
    return r >= 0 && r < 3 ? regions[r] : "?";
}

const char *ss_target_name(ss_target_t t)
{
    return t == SS_TARGET_BINARY ? "binary" : "regions";
}

ss_status_t ss_preprocess_check_geometry(const ss_nifti_header_t *hdrs,
                                         const char *const *paths,
                                         int n,
                                         ss_error_t *err)
{
    const ss_nifti_header_t *a = &hdrs[0];
    for (int f = 1; f < n; f++) {
        const ss_nifti_header_t *h = &hdrs[f];
        if (h->dim[0] != a->dim[0] || h->dim[1] != a->dim[1] || h->dim[2] != a->dim[2]) {
            SS_FAIL(err, SS_ESHAPE,
                    "%s: shape %lldx%lldx%lld differs from %lldx%lldx%lld of %s; resample the "
                    "case so all files share one grid",
                    paths[f], (long long)h->dim[0], (long long)h->dim[1], (long long)h->dim[2],
                    (long long)a->dim[0], (long long)a->dim[1], (long long)a->dim[2], paths[0]);
        }
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 4; c++) {
                if (fabs(h->affine[r][c] - a->affine[r][c]) > 1e-3) {
                    SS_FAIL(err, SS_ESHAPE,
                            "%s: affine[%d][%d] = %g differs from %g in %s (orientation or "
                            "origin); resample the case so all files share one grid",
                            paths[f], r, c, h->affine[r][c], a->affine[r][c], paths[0]);
                }
            }
        }
    }
    return SS_OK;
}

void ss_preprocess_brain_mask(uint8_t *mask,
                              const float *image,
                              int64_t nchan,
                              const int64_t dim[3],
                              int64_t *count,
                              const ss_exec_t *ex)
{
    const int64_t vox = dim[0] * dim[1] * dim[2];
    int64_t total = 0;
#pragma omp parallel for num_threads(nthreads_of(ex)) default(none)                               \
    shared(mask, image, nchan, vox) reduction(+ : total) schedule(static)
    for (int64_t v = 0; v < vox; v++) {
        uint8_t in = 0;
        for (int64_t c = 0; c < nchan; c++) {
            in |= image[c * vox + v] > 0.0f;
        }
        mask[v] = in;
        total += in;
    }
    if (count != NULL) {
        *count = total;
    }
}

ss_status_t
ss_preprocess_bbox(ss_box_t *box, const uint8_t *mask, const int64_t dim[3], ss_error_t *err)
{
    int64_t lo[3] = {dim[0], dim[1], dim[2]}, hi[3] = {-1, -1, -1};
    for (int64_t i = 0; i < dim[0]; i++) {
        for (int64_t j = 0; j < dim[1]; j++) {
            const uint8_t *row = mask + (i * dim[1] + j) * dim[2];
            for (int64_t k = 0; k < dim[2]; k++) {
                if (row[k]) {
                    const int64_t idx[3] = {i, j, k};
                    for (int d = 0; d < 3; d++) {
                        lo[d] = idx[d] < lo[d] ? idx[d] : lo[d];
                        hi[d] = idx[d] > hi[d] ? idx[d] : hi[d];
                    }
                }
            }
        }
    }
    if (hi[0] < 0) {
        SS_FAIL(err, SS_EFORMAT, "empty brain mask (every channel <= 0 everywhere)");
    }
    for (int d = 0; d < 3; d++) {
        box->start[d] = lo[d];
        box->end[d] = hi[d] + 1;
    }
    return SS_OK;
}

ss_status_t ss_preprocess_center_box(ss_box_t *box,
                                     const int64_t dim[3],
                                     const int64_t size[3],
                                     ss_error_t *err)
{
    for (int d = 0; d < 3; d++) {
        if (size[d] < 1 || size[d] > dim[d]) {
            SS_FAIL(err, SS_EINVAL,
                    "--crop %lldx%lldx%lld: larger than the volume %lldx%lldx%lld; give a size "
                    "within the volume or --crop brain",
                    (long long)size[0], (long long)size[1], (long long)size[2], (long long)dim[0],
                    (long long)dim[1], (long long)dim[2]);
        }
        box->start[d] = (dim[d] - size[d]) / 2;
        box->end[d] = box->start[d] + size[d];
    }
    return SS_OK;
}

void ss_preprocess_crop(
    void *data, size_t elem, int64_t nchan, const int64_t dim[3], const ss_box_t *box)
{
    char *base = data;
    const int64_t ni = box->end[0] - box->start[0], nj = box->end[1] - box->start[1];
    const size_t row = (size_t)(box->end[2] - box->start[2]) * elem;
    // Destination offsets never exceed source offsets and both grow monotonically, so copying
    // rows in order with memmove is safe in place.
    size_t dst = 0;
    for (int64_t c = 0; c < nchan; c++) {
        for (int64_t i = 0; i < ni; i++) {
            for (int64_t j = 0; j < nj; j++) {
                int64_t src =
                    ((c * dim[0] + i + box->start[0]) * dim[1] + j + box->start[1]) * dim[2] +
                    box->start[2];
                memmove(base + dst, base + (size_t)src * elem, row);
                dst += row;
            }
        }
    }
}

ss_status_t ss_preprocess_zscore(float *image,
                                 int64_t nchan,
                                 const int64_t dim[3],
                                 const uint8_t *mask,
                                 double *mean,
                                 double *std,
                                 const ss_exec_t *ex,
                                 ss_error_t *err)
{
    const int64_t vox = dim[0] * dim[1] * dim[2];
    const int nt = nthreads_of(ex);
    for (int64_t c = 0; c < nchan; c++) {
        float *x = image + c * vox;
        double s = 0.0, ss = 0.0;
        int64_t n = 0;
#pragma omp parallel for num_threads(nt) default(none) shared(x, mask, vox)                        \
    reduction(+ : s, n) schedule(static)
        for (int64_t v = 0; v < vox; v++) {
            if (mask[v]) {
                s += x[v];
                n++;
            }
        }
        if (n == 0) {
            SS_FAIL(err, SS_EFORMAT, "empty brain mask (every channel <= 0 everywhere)");
        }
        const double m = s / (double)n;
        // Second pass around the mean: no cancellation from a raw sum of squares.
#pragma omp parallel for num_threads(nt) default(none) shared(x, mask, vox, m)                     \
    reduction(+ : ss) schedule(static)
        for (int64_t v = 0; v < vox; v++) {
            if (mask[v]) {
                double d = x[v] - m;
                ss += d * d;
            }
        }
        double sd = sqrt(ss / (double)n);
        sd = sd > 1e-12 ? sd : 1.0;
        const float fm = (float)m, inv = (float)(1.0 / sd);
#pragma omp parallel for num_threads(nt) default(none) shared(x, mask, vox, fm, inv)               \
    schedule(static)
        for (int64_t v = 0; v < vox; v++) {
            x[v] = mask[v] ? (x[v] - fm) * inv : 0.0f;
        }
        if (mean != NULL) {
            mean[c] = m;
        }
        if (std != NULL) {
            std[c] = sd;
        }
    }
    return SS_OK;
}

void ss_preprocess_regions(uint8_t *out,
                           const uint8_t *labels,
                           const int64_t dim[3],
                           ss_target_t target,
                           const ss_exec_t *ex)
{
    const int64_t vox = dim[0] * dim[1] * dim[2];
    const int binary = target == SS_TARGET_BINARY;
#pragma omp parallel for num_threads(nthreads_of(ex)) default(none)                                \
    shared(out, labels, vox, binary) schedule(static)
    for (int64_t v = 0; v < vox; v++) {
        const uint8_t l = labels[v]; // 0 bg, 1 NCR/NET, 2 ED, 3 ET
        out[v] = l != 0;             // WT (or the binary tumour)
        if (!binary) {
            out[vox + v] = l == 1 || l == 3; // TC
            out[2 * vox + v] = l == 3;       // ET
        }
    }
}
