// metrics.h: segmentation metrics of the BraTS evaluation: region masks from label maps, Dice,
// and the 95% Hausdorff distance (MONAI compute_hausdorff_distance, percentile 95).
//
// Regions (BraTS definitions): WT = every tumour label, TC = necrotic/non-enhancing core +
// enhancing, ET = enhancing. Label conventions: BraTS 2018-21 (1 NCR/NET, 2 ED, 4 ET), BraTS 2023
// (1 NCR, 2 ED, 3 ET), MSD Task01 (1 edema, 2 non-enhancing, 3 enhancing).
// HD95: surfaces are mask XOR erosion(mask) with the 6-connected cross (voxels on the volume
// border count as surface, scipy's border_value 0); the distances from each surface voxel of one
// mask to the other's surface come from an exact Euclidean distance transform with the voxel
// spacing (Felzenszwalb-Huttenlocher, separable); each direction's 95th percentile (linear
// interpolation, numpy's default) and the larger of the two. Empty conventions (BraTS 2018-21):
// both masks empty: Dice 1, HD95 0; exactly one empty: Dice 0, HD95 373.13 mm.
// Threading: OpenMP over lines of the transform (nthreads). Ownership: all borrowed.
#ifndef SS_METRICS_H
#define SS_METRICS_H

#include <stdint.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_LABELS_BRATS = 0,     // 1 NCR/NET, 2 ED, 4 ET
    SS_LABELS_BRATS2023 = 1, // 1 NCR, 2 ED, 3 ET
    SS_LABELS_MSD = 2,       // 1 edema, 2 non-enhancing, 3 enhancing
} ss_labels_t;

#define SS_HD95_EMPTY 373.13

ss_status_t ss_labels_parse(const char *s, const char *what, ss_labels_t *out, ss_error_t *err);

// out[r * n + v] = 1 if voxel v of the label map lab belongs to region r (0 WT, 1 TC, 2 ET).
void ss_regions_from_labels(uint8_t *out, const float *lab, int64_t n, ss_labels_t conv);

// Dice of binary masks a (prediction) and b (reference) of n voxels: 2|a & b| / (|a| + |b|),
// and 1 when both are empty (the BraTS convention).
double ss_dice_u8(const uint8_t *a, const uint8_t *b, int64_t n);

// 95% Hausdorff distance in mm between binary masks a and b of dim[0] x dim[1] x dim[2] voxels.
ss_status_t ss_hd95(double *hd,
                    const uint8_t *a,
                    const uint8_t *b,
                    const int64_t dim[3],
                    const double spacing[3],
                    int nthreads,
                    ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
