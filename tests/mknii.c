// mknii: writes tiny NIfTI volumes for the shell tests (no Python needed on CI machines).
//   mknii SPEC...   SPEC = PATH:DTYPE:NX:NY:NZ:FILL[:SPECIAL]
// DTYPE f (float32) or B (uint8); every third voxel is 0, the others FILL; SPECIAL nan puts a NaN
// in the middle voxel, 5 the value 5, shift moves the affine's origin by 7 mm.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/nifti_io.h"

static int make(const char *spec)
{
    char buf[4096], path[4096], dt = 0, special[16] = "";
    int nx, ny, nz;
    double fill;
    snprintf(buf, sizeof(buf), "%s", spec);
    char *colon = strchr(buf, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = '\0';
    snprintf(path, sizeof(path), "%s", buf);
    if (sscanf(colon + 1, "%c:%d:%d:%d:%lf:%15s", &dt, &nx, &ny, &nz, &fill, special) < 5 ||
        nx < 1 || ny < 1 || nz < 1) {
        return -1;
    }
    ss_nifti_header_t h;
    memset(&h, 0, sizeof(h));
    h.dim[0] = nx, h.dim[1] = ny, h.dim[2] = nz, h.dim[3] = 1;
    h.spacing[0] = h.spacing[1] = h.spacing[2] = 1;
    h.qform_code = h.sform_code = 1;
    h.version = 1;
    double off = strcmp(special, "shift") == 0 ? 7.0 : 0.0;
    for (int a = 0; a < 3; a++) {
        h.affine[a][a] = 1;
        h.affine[a][3] = off;
    }
    h.affine[3][3] = 1;
    int64_t n = (int64_t)nx * ny * nz;
    // Laid out [I][J][K] (K fastest) like every shardseg volume.
    float *v = malloc(sizeof(float) * (size_t)n);
    if (v == NULL) {
        return -1;
    }
    for (int64_t q = 0; q < n; q++) {
        v[q] = q % 3 ? (float)fill : 0.0f;
    }
    if (strcmp(special, "nan") == 0) {
        v[n / 2] = NAN;
    } else if (strcmp(special, "5") == 0) {
        v[n / 2] = 5;
    }
    ss_error_t err;
    int rc = ss_nifti_write(path, &h, v, dt == 'B' ? 2 : 16, &err) == SS_OK ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "mknii: %s\n", err.msg);
    }
    free(v);
    return rc;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (make(argv[i]) != 0) {
            fprintf(stderr, "mknii: cannot make '%s'\n", argv[i]);
            return 1;
        }
    }
    return 0;
}
