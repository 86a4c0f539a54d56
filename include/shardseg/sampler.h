// sampler.h: training patches from a prep'd HDF5 file, with augmentation and a prefetch thread.
//
// Patch k of a run is a pure function of (seed, k): which training case, whether it is centred on
// a foreground voxel (nnU-Net style oversampling), where it lies, its flips and intensity changes.
// So every rank of a sequence-parallel group draws the same patch without talking, a resumed run
// draws the same patches again, and a rank reads only its own i-slab of the patch from HDF5
// (bytes read per rank fall as 1/P).
//
// Foreground positions: at creation the sampler reads each training case's label once and keeps
// up to `fg_samples` foreground voxel positions per case (chosen by a fixed stride, so the list is
// deterministic); foreground patches are centred on one of them.
// Patches that extend past the volume are zero-padded (image) / background (label).
// Augmentation: optional quarter turns in the J-K plane (rot90; the I axis stays put, so a rank's
// i-slab of a rotated patch is still read from its own rows), then flips per axis with
// probability 1/2 (flip_axes mask), per-channel intensity
// x * (1 + U(-scale, scale)) + U(-shift, shift) on the whole patch (background included, as
// nnU-Net's brightness/contrast transforms are applied after normalisation).
// Spatial augmentation (nnU-Net's rotation and scaling, needs the cache): with probability
// spatial_p a patch is sampled through a random rotation (angles U(-rotate, rotate) degrees about
// each axis) and isotropic scaling (U(1 - zoom, 1 + zoom): below 1 zooms in) about its centre,
// trilinear for the image, nearest voxel for the labels. Gamma (nnU-Net's gamma transform): with
// probability gamma_p per channel, brain voxels (non-zero) x -> lo + (hi - lo) ((x - lo) /
// (hi - lo))^g over the case's channel range [lo, hi], g log-uniform in [1 / (1 + gamma),
// 1 + gamma]; case-wide constants, so every rank's slab is the same cut of the same patch.
//
// Cache: when the training cases fit in cache_bytes, the sampler reads each one whole at creation
// and cuts patches from memory: the same patches, without decompressing ~28 MB of HDF5 chunks
// per 64^3 patch (~100 ms of a core, taken from the training threads on a small node).
// Prefetch: with prefetch > 0 a worker thread prepares patches k+1 .. k+prefetch while the caller
// trains on patch k; ss_sampler_next returns patch k and records how long the caller waited.
// HDF5 is used from that thread only (Debian's HDF5 is built thread-safe, so a checkpoint written
// meanwhile by the main thread is serialised by HDF5's own lock).
// Ownership: the sampler borrows the ss_h5data_t (it must outlive the sampler) and owns its
// buffers (the cache included); the pointers ss_sampler_next returns stay valid until the next
// call.
#ifndef SS_SAMPLER_H
#define SS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/h5data.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t patch[3];   // patch size along (I, J, K)
    int64_t slab_i0;    // this rank's rows [slab_i0, slab_i0 + slab_len) of the patch along I
    int64_t slab_len;   // 0: the whole patch
    double fg_fraction; // probability that a patch is centred on foreground (nnU-Net: 0.33)
    int flip_axes;      // bit a set: flip axis a (0 = I, 1 = J, 2 = K) with probability 1/2
    float scale;        // intensity scale range (0: off)
    float shift;        // intensity shift range (0: off)
    uint64_t seed;
    int prefetch;   // patches prepared ahead by a worker thread (0: synchronous)
    int fg_samples; // foreground positions kept per case (0: 4096)
    int val_fold;   // -1: train on /split/train; k >= 0: train on every case not in fold k
    int rot90;      // 1: turn each patch by 0, 90, 180 or 270 degrees in the J-K plane (uniform;
                    // 0 or 180 only when patch[1] != patch[2]); 0: no turns (the default)
    size_t cache_bytes; // the training cases stay decompressed in memory when they fit in this
                        // many bytes (image + label), else every patch is read from HDF5 (0)
    double spatial_p;   // probability of a rotated / scaled patch (0: off; needs the cache)
    double rotate;      // largest rotation about each axis, degrees (nnU-Net: 30)
    double zoom;        // scale range 1 +- zoom (nnU-Net: about 0.3)
    double gamma_p;     // probability of a gamma change per channel (0: off; needs the cache)
    double gamma;       // exponent range [1 / (1 + gamma), 1 + gamma] (nnU-Net: about 0.5)
} ss_sampler_config_t;

// What was drawn for patch k (identical on every rank).
typedef struct {
    int case_index;    // index in the file (ss_h5data_case_name)
    int foreground;    // 1 if centred on a foreground voxel
    int64_t origin[3]; // patch origin in the stored volume (may be negative: padding)
    int flip[3];
    float scale[SS_H5DATA_MAX_CHAN], shift[SS_H5DATA_MAX_CHAN];
    // Quarter turns in the J-K plane (0..3): patch[c][i][j][k] = unturned[c][i][rot(j, k)], where
    // unturned is the patch the same draw gives with rot90 off (flips included) and, for patch
    // sizes pJ, pK: rot 1: (pJ-1-k, j), 2: (pJ-1-j, pK-1-k), 3: (k, pK-1-j).
    int rot;
    // Spatial draws: the patch voxel p (i, j, k) shows the volume at origin + c + A (p - c),
    // c = (patch - 1) / 2, where A composes the turn, the flips, the scaling and the rotation.
    int spatial;
    double A[3][3];
    float gamma[SS_H5DATA_MAX_CHAN]; // exponent per channel (1: unchanged)
} ss_sampler_draw_t;

typedef struct ss_sampler ss_sampler_t;

// Sets the defaults: patch 128^3, whole patch, fg_fraction 0.33, all flips, scale 0.1,
// shift 0.1, seed 0, prefetch 2, fg_samples 4096, no rotations.
void ss_sampler_config_init(ss_sampler_config_t *c);

// Creates a sampler over the training cases of d (split /split/train; all cases when the file has
// no split). SS_EINVAL (naming the option) for a bad config, e.g. a slab outside the patch;
// SS_EINVAL when there are no training cases.
ss_status_t ss_sampler_create(ss_h5data_t *d,
                              const ss_sampler_config_t *c,
                              ss_sampler_t **out,
                              ss_error_t *err);
// Stops the worker and frees everything. Accepts NULL; sets *ps = NULL.
void ss_sampler_destroy(ss_sampler_t **ps);

// The draw of patch k (pure; no I/O).
void ss_sampler_draw(const ss_sampler_t *s, uint64_t k, ss_sampler_draw_t *out);

// Patch k: *image float [C][L][pJ][pK] and *label uint8 [R][L][pJ][pK] for this rank's slab
// (L = slab_len). Calls must ask for k, k+1, k+2, ... in order after the first (any start, so a
// resumed run starts at its step). *waited (may be NULL) gets the seconds spent waiting for I/O.
ss_status_t ss_sampler_next(ss_sampler_t *s,
                            uint64_t k,
                            const float **image,
                            const uint8_t **label,
                            double *waited,
                            ss_error_t *err);

// Patch k computed synchronously into caller buffers (same layout); used by the worker and tests.
ss_status_t
ss_sampler_fill(const ss_sampler_t *s, uint64_t k, float *image, uint8_t *label, ss_error_t *err);

// Number of image channels / label channels, and bytes read from HDF5 so far (all threads).
int ss_sampler_nchan(const ss_sampler_t *s);
int ss_sampler_nlabel(const ss_sampler_t *s);
uint64_t ss_sampler_bytes_read(const ss_sampler_t *s);

#ifdef __cplusplus
}
#endif
#endif
