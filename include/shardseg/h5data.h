// h5data.h: the HDF5 training file `shardseg prep` writes and the sampler / trainer read.
//
// File layout (format_version 1):
//   /                      attrs: format_version (int), channel_names (strings, FLAIR T1 T1ce T2),
//                          label_names (WT TC ET | tumour), target ("regions"|"binary"),
//                          source_layout, label_convention, split_seed (uint64),
//                          val_fraction (double), folds (int)
//   /cases/<name>/image    float32 [C][I][J][K], z-scored, chunk (1, chunk_i, J, K), shuffle+gzip
//   /cases/<name>/label    uint8   [R][I][J][K] region masks, same chunking
//   /cases/<name>          attrs: affine (4x4 double, voxel -> mm of the ORIGINAL grid),
//                          original_shape (3 int64), crop_start / crop_end (3 int64: the stored
//                          volume is original[start:end] per axis), spacing (3 double),
//                          zscore_mean / zscore_std (C doubles), source_layout, label_convention
//   /split/train, /split/val   case names (variable-length strings)
//   /split/fold            int32 per case in /cases order (only when folds > 1; fold 0 = val)
// Chunks span one channel and chunk_i rows of I, so a sequence-parallel rank reading its i-slab
// [i0, i1) decompresses at most two partial chunks per channel beyond its own rows.
//
// Writing is atomic: ss_h5data_create writes to "<path>.tmp.XXXXXX" in the same directory,
// ss_h5data_commit renames it over path; ss_h5data_abort (or any failed commit) removes it, so a
// failed prep leaves no output file. HDF5's own error printing is switched off (process-wide):
// failures come back as one-line ss_error_t messages.
// Ownership: writer and reader handles are owned by the caller; commit/abort/close free them.
// Threading: serial HDF5; one thread per handle, and not concurrently with other HDF5 users.
#ifndef SS_H5DATA_H
#define SS_H5DATA_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/preprocess.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_H5DATA_FORMAT_VERSION 1
#define SS_H5DATA_MAX_CHAN       8

typedef struct ss_h5data_writer ss_h5data_writer_t;
typedef struct ss_h5data ss_h5data_t;

typedef struct {
    int nchan;                        // image channels (<= SS_H5DATA_MAX_CHAN)
    const char *const *channel_names; // nchan names
    ss_target_t target;               // label channels: ss_target_channels(target)
    const char *source_layout;        // "msd", "brats", "brats2023"
    const char *label_convention;     // human text of the source labels
    uint64_t split_seed;
    double val_fraction;
    int folds;
    int64_t chunk_i; // rows of I per chunk (0: 8)
    int gzip;        // deflate level 1..9 (0: 1)
} ss_h5data_meta_t;

typedef struct {
    const char *name;
    int64_t dim[3];       // stored (cropped) I, J, K
    const float *image;   // [C][I][J][K]
    const uint8_t *label; // [R][I][J][K]
    double affine[4][4];  // of the original grid
    int64_t orig_shape[3];
    ss_box_t crop; // in original voxel indices
    double spacing[3];
    double mean[SS_H5DATA_MAX_CHAN], std[SS_H5DATA_MAX_CHAN]; // z-score statistics per channel
} ss_h5data_case_t;

typedef struct {
    int64_t nchan, nlabel, dim[3];
    double affine[4][4];
    int64_t orig_shape[3];
    ss_box_t crop;
    double spacing[3];
} ss_h5data_info_t;

// Deterministic split of n cases (in sorted-name order) from seed: with folds > 1, assign[i] is
// the fold (0..folds-1, sizes differ by at most one; fold 0 is the validation fold), else
// assign[i] is 1 for the round(n * val_fraction) validation cases and 0 for training.
void ss_h5data_split(int n, double val_fraction, int folds, uint64_t seed, int *assign);

// --- writer ---
// SS_EINVAL (naming path) when no file can be created next to path (missing or read-only
// directory); SS_EHDF5 on HDF5 failures.
ss_status_t ss_h5data_create(const char *path,
                             const ss_h5data_meta_t *meta,
                             ss_h5data_writer_t **out,
                             ss_error_t *err);
ss_status_t ss_h5data_write_case(ss_h5data_writer_t *w, const ss_h5data_case_t *c, ss_error_t *err);
// Writes /split for the n case names (in /cases order) with assign from ss_h5data_split.
ss_status_t ss_h5data_write_split(
    ss_h5data_writer_t *w, const char *const *names, const int *assign, int n, ss_error_t *err);
// Closes and renames into place; *bytes (may be NULL) gets the file size. Frees *pw in all cases;
// on failure the temporary file is removed.
ss_status_t ss_h5data_commit(ss_h5data_writer_t **pw, size_t *bytes, ss_error_t *err);
// Closes and removes the temporary file; accepts NULL; sets *pw = NULL.
void ss_h5data_abort(ss_h5data_writer_t **pw);

// --- parallel prep: per-rank part files merged by one writer ---
// A part is a writer from ss_h5data_create that is finished without being renamed: each rank
// writes its cases to its own part (a temporary name next to the output), and one rank copies
// the case groups of every part into the real output with ss_h5data_copy_cases (H5Ocopy: the
// chunked, compressed datasets and all attributes are copied as they are, so the merged file
// holds exactly what a single writer would have written).
// Closes *pw and keeps its temporary file; its path goes to part (len bytes; SS_EINVAL if it does
// not fit). Frees *pw in all cases; on failure the temporary file is removed and part is "".
// The caller removes the part (remove(3)) once it has been merged or the job failed.
ss_status_t ss_h5data_finish_part(ss_h5data_writer_t **pw, char *part, size_t len, ss_error_t *err);
// Copies /cases/<names[i]> (i < n) of the finished part file into w. SS_EINVAL for a case that w
// already holds; SS_EFORMAT (naming part) when part or one of the cases cannot be read; SS_EHDF5
// when the copy fails (disk full).
ss_status_t ss_h5data_copy_cases(
    ss_h5data_writer_t *w, const char *part, const char *const *names, int n, ss_error_t *err);

// --- reader ---
ss_status_t ss_h5data_open(const char *path, ss_h5data_t **out, ss_error_t *err);
void ss_h5data_close(ss_h5data_t **pd);
int ss_h5data_ncases(const ss_h5data_t *d);
const char *ss_h5data_case_name(const ss_h5data_t *d, int i); // sorted by name
// 1 if case i is in /split/val, 0 if in /split/train, -1 if in neither.
int ss_h5data_is_val(const ss_h5data_t *d, int i);
// Fold of case i (-1 without folds).
int ss_h5data_fold(const ss_h5data_t *d, int i);
// Root attribute `target` of the file.
ss_target_t ss_h5data_target(const ss_h5data_t *d);
ss_status_t
ss_h5data_case_info(const ss_h5data_t *d, int i, ss_h5data_info_t *info, ss_error_t *err);
// Reads rows [i0, i1) of I of case i: image into dst float [C][i1-i0][J][K], label into dst
// uint8 [R][i1-i0][J][K]. (0, info.dim[0]) reads the whole case. SS_ESHAPE for a bad range.
ss_status_t ss_h5data_read_image(
    const ss_h5data_t *d, int i, int64_t i0, int64_t i1, float *dst, ss_error_t *err);
ss_status_t ss_h5data_read_label(
    const ss_h5data_t *d, int i, int64_t i0, int64_t i1, uint8_t *dst, ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
