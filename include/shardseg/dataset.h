// dataset.h: brain-tumour dataset folders (MSD Task01, BraTS 2018-2021, BraTS 2023) as case lists.
//
// Layouts (detected from the folder, or forced):
//   msd        DIR/dataset.json, DIR/imagesTr/<case>.nii.gz (4D, 4 channels: FLAIR, T1w, T1gd,
//              T2w), DIR/labelsTr/<case>.nii.gz; labels 0 bg, 1 edema, 2 non-enhancing, 3
//              enhancing.
//   brats      DIR/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]; labels 0, 1 NCR/NET, 2 ED, 4 ET.
//   brats2023  DIR/<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii[.gz]; labels 0, 1 NCR, 2 ED, 3 ET.
// Channels are always in MSD order: 0 FLAIR, 1 T1, 2 T1ce (T1gd, t1c), 3 T2.
// Labels are mapped to ONE internal convention, the BraTS 2023 one:
//   0 background, 1 NCR/NET (necrotic / non-enhancing core), 2 ED (edema), 3 ET (enhancing),
// so WT = {1,2,3}, TC = {1,3}, ET = {3} whatever the source. A label value outside the source's
// known set is an error naming the file and the value.
//
// Ownership: ss_dataset_open returns a dataset owned by the caller (ss_dataset_destroy). Case data
// from ss_dataset_load_case are charged to the budget given and released by ss_case_data_free.
// Threading: a dataset is read-only after open; loading uses libnifti (one thread at a time).
#ifndef SS_DATASET_H
#define SS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/nifti_io.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_DATASET_NCHAN 4

typedef enum {
    SS_DATASET_AUTO = 0,
    SS_DATASET_MSD = 1,
    SS_DATASET_BRATS = 2,
    SS_DATASET_BRATS2023 = 3,
} ss_dataset_layout_t;

typedef struct {
    char *name;                    // case id: file stem (MSD) or folder name (BraTS)
    char *image[SS_DATASET_NCHAN]; // per channel; MSD: the same 4D file four times
    char *label;                   // label file
} ss_case_t;

typedef struct {
    ss_dataset_layout_t layout; // never AUTO after open
    char *root;
    int ncases;
    ss_case_t *cases; // sorted by name (byte order), so case order is deterministic
} ss_dataset_t;

// One loaded case: image float32 [C][I][J][K] (C = SS_DATASET_NCHAN), label uint8 [I][J][K] in the
// internal convention, the geometry of the first image file (dim[3] = 1), and bytes read from disk.
typedef struct {
    ss_nifti_header_t hdr;
    float *image;
    uint8_t *label;
    size_t image_bytes, label_bytes; // allocation sizes (for ss_case_data_free)
    size_t disk_bytes;               // size of the files read (compressed)
} ss_case_data_t;

// "msd", "brats", "brats2023" ("auto" for AUTO).
const char *ss_dataset_layout_name(ss_dataset_layout_t layout);
// Label convention of a layout, e.g. "brats: 0 bg, 1 NCR/NET, 2 ED, 4 ET".
const char *ss_dataset_layout_labels(ss_dataset_layout_t layout);
// Parses "auto", "msd", "brats", "brats2023"; SS_EINVAL naming `what` (e.g. "--format") otherwise.
ss_status_t
ss_dataset_layout_parse(const char *s, const char *what, ss_dataset_layout_t *out, ss_error_t *err);
// "FLAIR", "T1", "T1ce", "T2" for channels 0..3.
const char *ss_dataset_channel_name(int c);

// Lists the cases of dir (layout detected when AUTO). Errors (SS_EFORMAT, one line): no cases,
// mixed layouts, a missing modality or label (naming the case and the expected file).
ss_status_t
ss_dataset_open(const char *dir, ss_dataset_layout_t layout, ss_dataset_t **out, ss_error_t *err);
// Frees the dataset; accepts NULL and sets *pds = NULL.
void ss_dataset_destroy(ss_dataset_t **pds);

// Maps n raw label values read from `path` (source convention of layout) to the internal one.
// out may alias raw (uint8 written at byte q after float q is read). SS_EFORMAT naming path and
// the value for anything outside the known set (or not an integer).
ss_status_t ss_dataset_map_labels(ss_dataset_layout_t layout,
                                  const float *raw,
                                  int64_t n,
                                  uint8_t *out,
                                  const char *path,
                                  ss_error_t *err);

// Reads case idx: checks that every file shares shape and affine, reads the channels straight
// into one [C][I][J][K] buffer and the label into internal classes. Memory: image + label as
// float (the label buffer is reused for the uint8 classes), charged to b (may be NULL).
ss_status_t ss_dataset_load_case(
    const ss_dataset_t *ds, int idx, ss_case_data_t *out, ss_budget_t *b, ss_error_t *err);
// Releases a loaded case (accepts a zeroed or already freed one).
void ss_case_data_free(ss_case_data_t *cd, ss_budget_t *b);

#ifdef __cplusplus
}
#endif
#endif
