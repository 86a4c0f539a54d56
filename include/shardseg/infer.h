// infer.h: whole-volume inference by sliding windows (MONAI sliding_window_inference semantics).
//
// Windows: the network's img_size is the ROI. A volume smaller than the ROI along a dimension is
// zero-padded symmetrically to the ROI (the extra (d - s) / 2 below, the rest above, as MONAI).
// Along each dimension the window starts are i * interval, interval = max(1, floor(roi * (1 -
// overlap))), for i in [0, ceil((size - roi) / interval)], the last clamped to size - roi.
// Blending: each window's logits are weighted by an importance map and the sum is divided by the
// summed weights. Gaussian mode (MONAI's default in its BraTS tutorials): a separable Gaussian
// exp(-x^2 / (2 sigma^2)), x measured from the window centre (roi - 1) / 2, sigma = sigma_scale *
// roi, values below max(min of the map, 1e-3) raised to it; constant mode: weight 1.
//
// Ownership: everything borrowed; the model must be built with batch 1 and the whole ROI as its
// slab (one rank per window). Threading: the model's threads.
#ifndef SS_INFER_H
#define SS_INFER_H

#include <stdint.h>

#include "shardseg/model.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_BLEND_GAUSSIAN = 0,
    SS_BLEND_CONSTANT = 1,
} ss_blend_t;

typedef struct {
    double overlap;     // in [0, 1), MONAI default 0.25 (its BraTS tutorial uses 0.5)
    ss_blend_t mode;    // SS_BLEND_GAUSSIAN
    double sigma_scale; // 0.125
    int flips;          // test-time augmentation: also average the 7 flipped versions (0: off)
} ss_infer_params_t;

void ss_infer_params_default(ss_infer_params_t *p);

// A network applied to one window: x [1][cin][roi] -> *y [1][cout][roi] (y may point into the
// network's own memory, valid until the next call).
typedef ss_status_t (*ss_infer_fn)(void *ctx,
                                   ss_tensor_t *y,
                                   const ss_tensor_t *x,
                                   ss_error_t *err);

typedef struct {
    ss_infer_fn fn;
    void *ctx;
    int64_t roi[3];
    int64_t in_channels, out_channels;
} ss_infer_net_t;

// Sliding-window blending of any window function (ss_infer_volume's engine; tests pass an
// identity to check the blending exactly).
ss_status_t ss_infer_volume_net(const ss_infer_net_t *net,
                                float *out,
                                const float *image,
                                const int64_t size[3],
                                const ss_infer_params_t *p,
                                ss_error_t *err);

// Blended logits out [out_channels][I][J][K] of image [in_channels][I][J][K] (both contiguous
// float, owned by the caller). SS_ESHAPE when the channels do not match the model.
ss_status_t ss_infer_volume(ss_model_t *m,
                            float *out,
                            const float *image,
                            const int64_t size[3],
                            const ss_infer_params_t *p,
                            ss_error_t *err);

// Post-processing (MONAI's KeepLargestConnectedComponent on the whole tumour, full 26-neighbour
// connectivity): voxels of logits [nchan][I][J][K] outside the largest connected component of
// channel 0 > 0 (WT, or the tumour of a 1-channel network) get every channel set to -1, so the
// sub-regions (TC, ET) stay only inside the kept tumour. Ties keep the component found first in
// i, j, k order. *kept (may be NULL) gets the component's voxel count. SS_ENOMEM.
ss_status_t ss_infer_keep_largest(
    float *logits, int64_t nchan, const int64_t size[3], int64_t *kept, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
