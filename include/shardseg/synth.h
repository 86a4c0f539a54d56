// synth.h: synthetic BraTS-like brain-tumour cases for the demo and the tests.
//
// A generator holds a brain template: the Colin27 T1 head and brain mask of Debian's mricron-data
// (ch2better.nii.gz at 0.5 mm, ch2bet.nii.gz at 1 mm), or, when those files are absent, an analytic
// head phantom (ellipsoidal shells of CSF, grey and white matter around ventricles). Each case is
// then a pure function of (seed, case index), drawn with the counter-based RNG:
//   - a random affine (rotation, scale, shift) plus a smooth low-frequency displacement field,
//     mapping the output grid onto the template (trilinear sampling);
//   - CSF / grey / white matter fractions from the template's T1 intensity (partial volume kept);
//   - a tumour at a random position inside the brain: an irregular blob (sphere perturbed by
//     low-frequency noise) with an enhancing rim (ET, label 4), a necrotic core (NCR, 1) and a
//     surrounding edema (ED, 2) that spares CSF, plus mass effect pushing the tissue outward;
//   - FLAIR, T1, T1ce and T2 contrasts per tissue class (jittered per case), a smooth
//   multiplicative
//     bias field per modality, Rician noise, rounding to scanner-like integers (int16 range);
//   - zero outside the brain, as in skull-stripped BraTS data.
// The output grid is the BraTS field of view (240 x 240 x 155 mm) sampled on `size` voxels, so the
// default size gives the BraTS 1 mm grid and a smaller size a coarser grid of the same head; the
// affine is the BraTS one (x = -i, y = J-1-j, z = k, scaled by the voxel size).
//
// Ownership: ss_synth_create returns a generator owned by the caller (ss_synth_destroy); case
// buffers come from ss_synth_case_alloc, charged to the budget given, freed by ss_synth_case_free.
// Threading: ss_synth_generate runs OpenMP over i-slices with cfg->nthreads threads; the result
// does not depend on the thread count. A generator is read-only after create, so several threads
// may generate different cases from one generator (each into its own case buffer).
#ifndef SS_SYNTH_H
#define SS_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/nifti_io.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_SYNTH_NCHAN 4
// Where Debian's mricron-data installs the Colin27 templates.
#define SS_SYNTH_TEMPLATE_DIR "/usr/share/mricron/templates"

// Label values (BraTS 2018-2021 convention).
enum { SS_SYNTH_BG = 0, SS_SYNTH_NCR = 1, SS_SYNTH_ED = 2, SS_SYNTH_ET = 4 };

typedef struct {
    int64_t size[3];          // output grid I, J, K (>= 16 each); default 240, 240, 155
    uint64_t seed;            // default 0
    const char *template_dir; // holds ch2better.nii.gz + ch2bet.nii.gz; NULL: analytic phantom
    int nthreads;             // OpenMP threads (>= 1)
} ss_synth_config_t;

typedef struct ss_synth ss_synth_t;

// One case: image float32 [C][I][J][K] (C = 4: FLAIR, T1, T1ce, T2), integer-valued in [0, 32767];
// label float32 [I][J][K] in {0, 1, 2, 4} (float so both go to ss_nifti_write as they are); brain
// uint8 [I][J][K] (1 inside the brain mask); hdr: dims, spacing and affine to write with.
typedef struct {
    ss_nifti_header_t hdr;
    float *image;
    float *label;
    uint8_t *brain;
    double tumour_centre[3]; // voxel coordinates of the tumour centre
    double core_radius_mm;   // mean radius of the tumour core (NCR + ET)
    size_t bytes;            // allocation size (for ss_synth_case_free)
} ss_synth_case_t;

// Defaults: BraTS grid, seed 0, SS_SYNTH_TEMPLATE_DIR, 1 thread.
void ss_synth_config_default(ss_synth_config_t *cfg);
// SS_EINVAL naming the field ("--size", "--threads") on a dimension < 16 or > 1024, nthreads < 1.
ss_status_t ss_synth_config_validate(const ss_synth_config_t *cfg, ss_error_t *err);

// 1 if dir holds both template files (readable), else 0 (NULL gives 0).
int ss_synth_template_available(const char *dir);

// Builds a generator. When cfg->template_dir is NULL or lacks the template files, the analytic
// phantom is used (see ss_synth_uses_template); a template that exists but cannot be read is an
// error naming the file. Memory: the templates (about 50 MB) are charged to b (may be NULL).
ss_status_t
ss_synth_create(const ss_synth_config_t *cfg, ss_budget_t *b, ss_synth_t **out, ss_error_t *err);
// Frees the generator; accepts NULL and sets *ps = NULL.
void ss_synth_destroy(ss_synth_t **ps);
// 1 if the generator uses the Colin27 template, 0 for the analytic phantom.
int ss_synth_uses_template(const ss_synth_t *s);

// Allocates the buffers of one case for s's grid (charged to b, may be NULL).
ss_status_t
ss_synth_case_alloc(const ss_synth_t *s, ss_synth_case_t *c, ss_budget_t *b, ss_error_t *err);
void ss_synth_case_free(ss_synth_case_t *c, ss_budget_t *b);

// Fills c (from ss_synth_case_alloc on s) with case `index` (>= 0): a pure function of
// (cfg->seed, index).
ss_status_t
ss_synth_generate(const ss_synth_t *s, int64_t index, ss_synth_case_t *c, ss_error_t *err);

// Writes c as DIR/<name>/<name>_{flair,t1,t1ce,t2}.nii.gz (int16) and _seg.nii.gz (uint8), the
// BraTS 2021 layout. Atomic per case: the files go to a hidden temporary folder in dir that is
// renamed to <name> when complete (an existing <name> is replaced); on failure nothing is left.
ss_status_t
ss_synth_write(const ss_synth_case_t *c, const char *dir, const char *name, ss_error_t *err);

// The case name of index i: "SynBraTS_%05d".
void ss_synth_case_name(int64_t index, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
