// prepare.h: one raw case -> the network's input, exactly as `shardseg prep` stores it, so that
// inference on a raw case sees the same voxels as training on the prep'd file.
//
// A case is a BraTS 2018-2021 folder (DIR/<case>_{flair,t1,t1ce,t2}.nii[.gz]), a BraTS 2023 folder
// (DIR/<case>-{t2f,t1n,t1c,t2w}.nii[.gz]) or an MSD Task01 4D image (imagesTr/<case>.nii.gz, T = 4
// channels). The label file is optional here (inference has none). Channels are in MSD order
// (FLAIR, T1, T1ce, T2) as everywhere in shardseg (dataset.h).
// Preprocessing (prep's default `--crop brain`): brain mask = any channel > 0; crop box = bounding
// box of the mask, OR'ed with label != 0 when a label is given (so no tumour voxel is cut away);
// crop; per-channel z-score over the brain voxels of the crop (preprocess.h).
//
// Ownership: ss_prepare_locate fills an ss_case_t owned by the caller (ss_prepare_case_free);
// ss_prepare_load allocates the image with ss_aligned_alloc charged to budget b (may be NULL),
// released by ss_prepare_free. Threading: libnifti reads from one thread; the preprocessing uses
// ex->nthreads OpenMP threads (ex may be NULL: 1).
#ifndef SS_PREPARE_H
#define SS_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/dataset.h"
#include "shardseg/exec.h"
#include "shardseg/nifti_io.h"
#include "shardseg/preprocess.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// A raw case after ss_prepare_load: the cropped, z-scored image and where it came from.
typedef struct {
    ss_nifti_header_t hdr;      // geometry of the first image file (dim[3] = 1): the original grid
    ss_dataset_layout_t layout; // msd, brats or brats2023 (the label convention of the input)
    ss_box_t crop;              // in original voxel indices
    int64_t dim[3];             // cropped extents
    float *image;               // [C][dim] (C = SS_DATASET_NCHAN) z-scored (crop-sized buffer)
    size_t image_bytes;         // allocation size
    double mean[SS_DATASET_NCHAN], std[SS_DATASET_NCHAN]; // z-score statistics
} ss_prepared_t;

// 1 if path is a case (a folder holding a BraTS/BraTS 2023 FLAIR file named after the folder, or
// a .nii/.nii.gz file), 0 otherwise. No error: used to tell a case from a folder of cases.
int ss_prepare_is_case(const char *path);

// Finds the files of the case at path (see above); layout AUTO detects it (a file is MSD). The
// label is set when <case>_seg / -seg (or ../labelsTr/<file> for MSD) exists, else NULL.
// Errors (one line, SS_EFORMAT): a missing modality (naming the expected file), a path that is
// neither a case folder nor a NIfTI file (SS_EINVAL).
ss_status_t ss_prepare_locate(const char *path,
                              ss_dataset_layout_t layout,
                              ss_case_t *c,
                              ss_dataset_layout_t *found,
                              ss_error_t *err);
// Frees the strings of c (accepts a zeroed one).
void ss_prepare_case_free(ss_case_t *c);

// Preprocesses image [nchan][dim] in place as prep does: mask, box (mask | label != 0 when label
// is not NULL), crop (image, and label in place when given), z-score. *box gets the crop box,
// mean/std (nchan each, may be NULL) the statistics. A temporary mask of dim bytes is charged to
// b. SS_EFORMAT for an all-zero image.
ss_status_t ss_prepare_image(float *image,
                             int64_t nchan,
                             const int64_t dim[3],
                             uint8_t *label,
                             ss_box_t *box,
                             double *mean,
                             double *std,
                             const ss_exec_t *ex,
                             ss_budget_t *b,
                             ss_error_t *err);

// Reads the image channels of c (checking that they share shape and affine; the label is not
// read) and preprocesses them with ss_prepare_image (no label: the box is the brain's). Peak
// memory: the uncropped image plus the mask; the result is moved to a buffer of the crop's size.
ss_status_t ss_prepare_load(const ss_case_t *c,
                            ss_dataset_layout_t layout,
                            ss_prepared_t *out,
                            const ss_exec_t *ex,
                            ss_budget_t *b,
                            ss_error_t *err);
// Releases a loaded case (accepts a zeroed or already freed one).
void ss_prepare_free(ss_prepared_t *p, ss_budget_t *b);

#ifdef __cplusplus
}
#endif
#endif
