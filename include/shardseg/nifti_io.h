// nifti_io.h: NIfTI-1 / NIfTI-2 volumes (.nii, .nii.gz) read and written through libnifti2.
//
// Volumes are returned as float32 [T][I][J][K] (K fastest): NIfTI stores i fastest, so the reader
// transposes once, here, and nothing downstream ever does (DESIGN.md, data layout). scl_slope /
// scl_inter are applied (a slope of 0 or NaN means no scaling, as libnifti and nibabel treat it).
// The header keeps what inference needs to write predictions back in the input's geometry.
//
// Errors: a missing, truncated or malformed file, an unsupported datatype or a 2D image gives
// SS_ENIFTI / SS_EIO / SS_EFORMAT with a one-line message naming the file; a NaN/Inf voxel (after
// scaling) gives SS_ENUMERIC naming the file and the voxel. libnifti's own stderr
// warnings are silenced. Writes go to a temporary name in the same directory and are renamed
// into place, so an interrupted write never leaves a partial file under the final name.
// Ownership: ss_nifti_read allocates *data with ss_aligned_alloc charged to budget b (may be NULL);
// release it with ss_aligned_free(*data, ss_nifti_nbytes(hdr), b).
// Threading: libnifti is not thread-safe; call from one thread at a time.
#ifndef SS_NIFTI_IO_H
#define SS_NIFTI_IO_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t dim[4];      // I, J, K, T (T = 1 for a 3D volume)
    double spacing[3];   // voxel size in mm along i, j, k
    double affine[4][4]; // voxel (i, j, k, 1) -> world (mm): sform when set, else qform
    int qform_code, sform_code;
    int datatype; // NIfTI datatype code as stored in the file (e.g. 4 = int16, 2 = uint8)
    int version;  // 1 or 2
} ss_nifti_header_t;

// Bytes of the float32 volume described by hdr (I*J*K*T*4).
size_t ss_nifti_nbytes(const ss_nifti_header_t *hdr);

// Reads only the header of path.
ss_status_t ss_nifti_read_header(const char *path, ss_nifti_header_t *hdr, ss_error_t *err);

// Reads path into *data (float32 [T][I][J][K], allocated, see above) and fills *hdr.
ss_status_t ss_nifti_read(
    const char *path, ss_nifti_header_t *hdr, float **data, ss_budget_t *b, ss_error_t *err);

// Writes data (float32 [T][I][J][K]) to path (.nii or .nii.gz by suffix) as NIfTI-1 with the
// geometry of hdr (dim, spacing, affine, q/sform codes), stored as `datatype` (NIfTI code:
// 2 uint8, 4 int16, 16 float32; values are rounded for integer types). Atomic: temp + rename.
ss_status_t ss_nifti_write(const char *path,
                           const ss_nifti_header_t *hdr,
                           const float *data,
                           int datatype,
                           ss_error_t *err);

// As ss_nifti_read, into the caller's buffer dst of capacity `cap` floats (INOUT, borrowed), so a
// channel can land directly in its slot of a multi-channel case without a second copy. SS_ESHAPE
// (naming the file) if the volume needs more than cap floats.
ss_status_t ss_nifti_read_into(
    const char *path, ss_nifti_header_t *hdr, float *dst, int64_t cap, ss_error_t *err);

// As ss_nifti_write, choosing the format version (1: NIfTI-1, 348-byte header; 2: NIfTI-2,
// 540-byte header). Integer datatypes 256 int8, 512 uint16, 8 int32, 768 uint32, 1024 int64,
// 1280 uint64 and 64 float64 are accepted too. A value that does not fit the datatype (or is not
// finite for an integer type) is SS_EINVAL naming the voxel; nothing is written then.
ss_status_t ss_nifti_write_version(const char *path,
                                   const ss_nifti_header_t *hdr,
                                   const float *data,
                                   int datatype,
                                   int version,
                                   ss_error_t *err);

// "int16", "uint8", ... for a NIfTI datatype code; "unknown" otherwise.
const char *ss_nifti_datatype_name(int datatype);

#ifdef __cplusplus
}
#endif
#endif
