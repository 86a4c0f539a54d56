// niicheck: checks on NIfTI files for the shell tests (tests/infer.sh), without Python.
//   niicheck geom A B        exit 0 when A and B share I, J, K and the affine (within 1e-4 mm)
//   niicheck labels F V,V..  exit 0 when every voxel of F is one of the values; prints the counts
//   niicheck same A B        exit 0 when A and B hold the same voxel values (and geometry)
//   niicheck stack OUT A B C D   writes the 3D volumes A..D as one 4D float32 image (MSD layout)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/nifti_io.h"

static float *load(const char *path, ss_nifti_header_t *h)
{
    ss_error_t err;
    float *d = NULL;
    if (ss_nifti_read(path, h, &d, NULL, &err) != SS_OK) {
        char line[512];
        ss_error_format(&err, 0, line, sizeof(line));
        fprintf(stderr, "niicheck: %s\n", line);
        return NULL;
    }
    return d;
}

static int
geom(const ss_nifti_header_t *a, const ss_nifti_header_t *b, const char *pa, const char *pb)
{
    for (int i = 0; i < 3; i++) {
        if (a->dim[i] != b->dim[i]) {
            fprintf(stderr, "niicheck: %s is %lldx%lldx%lld, %s is %lldx%lldx%lld\n", pa,
                    (long long)a->dim[0], (long long)a->dim[1], (long long)a->dim[2], pb,
                    (long long)b->dim[0], (long long)b->dim[1], (long long)b->dim[2]);
            return 1;
        }
    }
    for (int r = 0; r < 4; r++) {
        for (int c = 0; c < 4; c++) {
            if (fabs(a->affine[r][c] - b->affine[r][c]) > 1e-4) {
                fprintf(stderr, "niicheck: affine[%d][%d] %g (%s) != %g (%s)\n", r, c,
                        a->affine[r][c], pa, b->affine[r][c], pb);
                return 1;
            }
        }
    }
    return 0;
}

static int labels(const char *path, const char *set)
{
    ss_nifti_header_t h;
    float *d = load(path, &h);
    if (d == NULL) {
        return 2;
    }
    int64_t counts[256] = {0}, n = h.dim[0] * h.dim[1] * h.dim[2] * h.dim[3];
    int allowed[256] = {0}, bad = 0;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", set);
    for (char *t = strtok(buf, ","); t != NULL; t = strtok(NULL, ",")) {
        allowed[atoi(t) & 255] = 1;
    }
    for (int64_t i = 0; i < n; i++) {
        int v = (int)d[i];
        if ((float)v != d[i] || v < 0 || v > 255 || !allowed[v]) {
            bad++;
        } else {
            counts[v]++;
        }
    }
    for (int v = 0; v < 256; v++) {
        if (counts[v] > 0) {
            printf("%d:%lld ", v, (long long)counts[v]);
        }
    }
    printf("bad:%d datatype:%d\n", bad, h.datatype);
    ss_aligned_free(d, ss_nifti_nbytes(&h), NULL);
    return bad != 0 || h.datatype != 2;
}

static int stack(const char *out, char **in, int n)
{
    ss_nifti_header_t h, h0;
    float *all = NULL;
    int64_t vox = 0;
    for (int t = 0; t < n; t++) {
        float *d = load(in[t], &h);
        if (d == NULL) {
            free(all);
            return 2;
        }
        if (t == 0) {
            h0 = h;
            vox = h.dim[0] * h.dim[1] * h.dim[2];
            all = malloc((size_t)(vox * n) * sizeof(float));
        }
        if (all != NULL && geom(&h0, &h, in[0], in[t]) == 0) {
            memcpy(all + t * vox, d, (size_t)vox * sizeof(float));
        }
        ss_aligned_free(d, ss_nifti_nbytes(&h), NULL);
    }
    h0.dim[3] = n;
    ss_error_t err;
    int rc = all != NULL && ss_nifti_write(out, &h0, all, 16, &err) == SS_OK ? 0 : 2;
    free(all);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "stack") == 0) {
        return stack(argv[2], argv + 3, argc - 3);
    }
    if (argc == 4 && strcmp(argv[1], "labels") == 0) {
        return labels(argv[2], argv[3]);
    }
    if (argc != 4 || (strcmp(argv[1], "geom") != 0 && strcmp(argv[1], "same") != 0)) {
        fprintf(stderr, "usage: niicheck geom|same A B | labels F V,V,...\n");
        return 2;
    }
    ss_nifti_header_t a, b;
    float *da = load(argv[2], &a), *db = load(argv[3], &b);
    int rc = da == NULL || db == NULL ? 2 : geom(&a, &b, argv[2], argv[3]);
    if (rc == 0 && strcmp(argv[1], "same") == 0) {
        int64_t n = a.dim[0] * a.dim[1] * a.dim[2], diff = 0;
        for (int64_t i = 0; i < n; i++) {
            diff += da[i] != db[i];
        }
        if (diff > 0) {
            fprintf(stderr, "niicheck: %s and %s differ in %lld voxels\n", argv[2], argv[3],
                    (long long)diff);
            rc = 1;
        }
    }
    if (da != NULL) {
        ss_aligned_free(da, ss_nifti_nbytes(&a), NULL);
    }
    if (db != NULL) {
        ss_aligned_free(db, ss_nifti_nbytes(&b), NULL);
    }
    return rc;
}
