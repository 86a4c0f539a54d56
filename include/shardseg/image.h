// image.h: PNG pictures of segmentations, drawn with cairo.
//
// The overlay is three orthogonal slices (axial, coronal, sagittal) through one point, the
// segmentation coloured over a grey-scale image (FLAIR for brain tumours) with a legend: what
// `shardseg infer --png` writes so a prediction can be judged at a glance, without a viewer.
//
// Geometry: volumes are [I][J][K] with k fastest (the NIfTI voxel index, as everywhere in
// shardseg). The affine (voxel -> RAS world, NIfTI convention) orients the views: each voxel axis
// is matched to the world axis it runs along most, and flipped so that the screen shows the
// radiological convention (patient right on the left of axial and coronal views, anterior up in
// axial views, superior up in coronal and sagittal views, anterior on the left in sagittal
// views). Oblique affines are shown along the nearest axes. Pixels are scaled by the voxel
// spacing, so anisotropic voxels keep their physical proportions.
//
// Ownership: every pointer is borrowed for the call. Errors: SS_EINVAL for bad arguments or an
// unwritable path (named), SS_EIO when cairo fails; the file is written to a temporary name in
// the same directory and renamed, so a failed call leaves nothing behind.
#ifndef SS_IMAGE_H
#define SS_IMAGE_H

#include <stdint.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Internal class values of a label map (prep's convention): 0 background, 1 NCR/NET (necrotic and
// non-enhancing core), 2 ED (edema), 3 ET (enhancing tumour). A binary map uses 1 = tumour.
typedef struct {
    const float *image;        // IN [I][J][K] grey-scale (any scale; 0 = outside the brain)
    const uint8_t *labels;     // IN [I][J][K] classes 0..3, or NULL (image only)
    int64_t dim[3];            // I, J, K
    double spacing[3];         // mm per voxel along i, j, k (<= 0: 1)
    double affine[4][4];       // voxel -> world; all zero: identity
    int binary;                // labels are 0/1 (one "tumour" colour) rather than 0..3
    const char *title;         // top line (case name), may be NULL
    const char *class_name[3]; // legend names of classes 1..3 (NULL: NCR/NET, ED, ET)
} ss_overlay_t;

// The slice point: the centroid of the labelled voxels (rounded), or the volume's centre when no
// voxel is labelled (or labels is NULL).
void ss_image_overlay_centre(const ss_overlay_t *o, int64_t centre[3]);

// Writes the overlay PNG through centre (NULL: ss_image_overlay_centre) to path.
ss_status_t ss_image_overlay_png(const char *path,
                                 const ss_overlay_t *o,
                                 const int64_t *centre,
                                 ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
