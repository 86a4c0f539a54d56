// preprocess.h: what `shardseg prep` does to a loaded case before it is stored.
//
// Volumes are [C][I][J][K] (K fastest). The brain mask is "any channel > 0": BraTS volumes are
// skull-stripped with background exactly 0, and requiring all four channels > 0 drops real
// voxels (46 labelled tumour voxels of Brats18_2013_3_1 lie where one modality is 0).
// Normalisation is a per-channel z-score over brain voxels (mean and standard deviation in
// double, two passes); background voxels are set to 0. Labels arrive in the internal convention
// of dataset.h (0 bg, 1 NCR/NET, 2 ED, 3 ET) and leave as channel masks: the three overlapping
// BraTS regions WT = {1,2,3}, TC = {1,3}, ET = {3}, or one binary tumour channel (label > 0).
//
// Ownership: every function works on caller buffers (borrowed); nothing is allocated except
// where stated. Threading: OpenMP over voxels with ex->nthreads threads (ex may be NULL: 1).
#ifndef SS_PREPROCESS_H
#define SS_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/nifti_io.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_TARGET_REGIONS = 0, // 3 channels: WT, TC, ET
    SS_TARGET_BINARY = 1,  // 1 channel: tumour (WT)
} ss_target_t;

// Half-open box [start, end) per axis (i, j, k).
typedef struct {
    int64_t start[3], end[3];
} ss_box_t;

// Number of label channels of a target (3 or 1), and their names ("WT", "TC", "ET" / "tumour").
int ss_target_channels(ss_target_t t);
const char *ss_target_channel_name(ss_target_t t, int r);
const char *ss_target_name(ss_target_t t); // "regions" / "binary"

// Checks that the n headers share dim (i, j, k) and affine (within 1e-3 mm per entry); the error
// (SS_ESHAPE) names paths[0] and the first file that disagrees, and what differs.
ss_status_t ss_preprocess_check_geometry(const ss_nifti_header_t *hdrs,
                                         const char *const *paths,
                                         int n,
                                         ss_error_t *err);

// mask[v] = 1 where any of the C channels of image (C, dim) is > 0, else 0. Returns the number of
// brain voxels in *count (may be NULL).
void ss_preprocess_brain_mask(uint8_t *mask,
                              const float *image,
                              int64_t nchan,
                              const int64_t dim[3],
                              int64_t *count,
                              const ss_exec_t *ex);

// Bounding box of mask != 0. SS_EFORMAT if the mask is empty (an all-zero case).
ss_status_t
ss_preprocess_bbox(ss_box_t *box, const uint8_t *mask, const int64_t dim[3], ss_error_t *err);

// Box of the given size centred in the volume (start = (dim - size) / 2), as DistMIS crops
// 240x240x155 to 240x240x152. SS_EINVAL if size exceeds dim on an axis (no padding).
ss_status_t ss_preprocess_center_box(ss_box_t *box,
                                     const int64_t dim[3],
                                     const int64_t size[3],
                                     ss_error_t *err);

// Crops data (nchan, dim) of elem-byte elements to box, in place: the result is contiguous
// (nchan, box extents) at the start of data. The box must lie inside dim.
void ss_preprocess_crop(
    void *data, size_t elem, int64_t nchan, const int64_t dim[3], const ss_box_t *box);

// Per-channel z-score of image (nchan, dim) over voxels with mask != 0; others become 0. Writes
// the statistics used to mean/std (nchan each, may be NULL). A channel that is constant in the
// brain gets std 1 (values become 0) rather than a division by zero. SS_EFORMAT if the mask is
// empty.
ss_status_t ss_preprocess_zscore(float *image,
                                 int64_t nchan,
                                 const int64_t dim[3],
                                 const uint8_t *mask,
                                 double *mean,
                                 double *std,
                                 const ss_exec_t *ex,
                                 ss_error_t *err);

// Region masks from internal labels (dim voxels): out is uint8 [R][dim], R = ss_target_channels.
void ss_preprocess_regions(uint8_t *out,
                           const uint8_t *labels,
                           const int64_t dim[3],
                           ss_target_t target,
                           const ss_exec_t *ex);

#ifdef __cplusplus
}
#endif
#endif
