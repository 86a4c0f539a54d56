// synth: synthetic BraTS-like cases on the Colin27 template or an analytic phantom (see synth.h).
#include "shardseg/synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardseg/rng.h"

#define PI     3.14159265358979323846
#define NMODES 4     // smooth displacement modes
#define NSHAPE 3     // tumour shape-noise modes
#define NCLASS 6     // CSF, GM, WM, ED, NCR, ET
#define FOV_I  240.0 // BraTS field of view in mm
#define FOV_J  240.0
#define FOV_K  155.0

// A template on a regular grid: T1-like intensity and brain mask (0/1) as floats, voxel -> world
// affine and its inverse; class means of the T1 intensity inside the mask.
typedef struct {
    int64_t dim[3];
    float *t1, *mask;
    double aff[4][4]; // voxel -> world
    double inv[3][4]; // world -> voxel
    double centre[3]; // world centroid of the mask
    double mean[3];   // CSF, GM, WM intensity
} grid_t;

struct ss_synth {
    ss_synth_config_t cfg;
    int use_template;
    grid_t g;
    size_t bytes;
    ss_budget_t *b;
};

// Relative intensity of each class per modality (WM = 1): FLAIR dark CSF, bright edema; T1 WM > GM
// > CSF, tumour hypo-intense; T1ce as T1 with a very bright enhancing rim; T2 bright CSF and edema.
static const double g_contrast[SS_SYNTH_NCHAN][NCLASS] = {
    {0.25, 1.15, 1.00, 1.90, 1.20, 1.60}, // FLAIR
    {0.35, 0.70, 1.00, 0.60, 0.35, 0.65}, // T1
    {0.35, 0.72, 1.00, 0.62, 0.35, 1.90}, // T1ce
    {2.20, 1.30, 0.80, 1.90, 2.10, 1.50}, // T2
};
// Typical white-matter level of each modality on a scanner (int16 units), jittered per case.
static const double g_level[SS_SYNTH_NCHAN] = {350, 550, 500, 450};

void ss_synth_config_default(ss_synth_config_t *cfg)
{
    cfg->size[0] = 240;
    cfg->size[1] = 240;
    cfg->size[2] = 155;
    cfg->seed = 0;
    cfg->template_dir = SS_SYNTH_TEMPLATE_DIR;
    cfg->nthreads = 1;
}

ss_status_t ss_synth_config_validate(const ss_synth_config_t *cfg, ss_error_t *err)
{
    for (int d = 0; d < 3; d++) {
        if (cfg->size[d] < 16 || cfg->size[d] > 1024) {
            SS_FAIL(err, SS_EINVAL, "--size: dimension %d is %lld; give each in [16, 1024]", d,
                    (long long)cfg->size[d]);
        }
    }
    if (cfg->nthreads < 1) {
        SS_FAIL(err, SS_EINVAL, "--threads: %d; give at least 1", cfg->nthreads);
    }
    return SS_OK;
}

static void template_path(const char *dir, const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, file);
}

int ss_synth_template_available(const char *dir)
{
    if (dir == NULL) {
        return 0;
    }
    char a[4096], b[4096];
    template_path(dir, "ch2better.nii.gz", a, sizeof(a));
    template_path(dir, "ch2bet.nii.gz", b, sizeof(b));
    return access(a, R_OK) == 0 && access(b, R_OK) == 0;
}

// Inverse of the 3x4 part of a voxel -> world affine.
static ss_status_t
invert_affine(const double a[4][4], double inv[3][4], const char *what, ss_error_t *err)
{
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                 a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    if (!(fabs(det) > 1e-12)) {
        SS_FAIL(err, SS_EFORMAT, "%s: singular affine; use a template with a valid sform/qform",
                what);
    }
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++) {
            int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            inv[r][c] = (a[r1][c1] * a[r2][c2] - a[r1][c2] * a[r2][c1]) / det;
        }
    }
    for (int r = 0; r < 3; r++) {
        inv[r][3] = -(inv[r][0] * a[0][3] + inv[r][1] * a[1][3] + inv[r][2] * a[2][3]);
    }
    return SS_OK;
}

// Trilinear sample of v (grid dim, K fastest) at voxel position (x, y, z); 0 outside.
static float trilinear(const float *v, const int64_t dim[3], double x, double y, double z)
{
    if (x < 0 || y < 0 || z < 0 || x > dim[0] - 1 || y > dim[1] - 1 || z > dim[2] - 1) {
        return 0.0f;
    }
    int64_t i = (int64_t)x, j = (int64_t)y, k = (int64_t)z;
    i = i >= dim[0] - 1 ? dim[0] - 2 : i;
    j = j >= dim[1] - 1 ? dim[1] - 2 : j;
    k = k >= dim[2] - 1 ? dim[2] - 2 : k;
    double fx = x - (double)i, fy = y - (double)j, fz = z - (double)k;
    const float *p = v + (i * dim[1] + j) * dim[2] + k;
    int64_t sj = dim[2], si = dim[1] * dim[2];
    double c00 = p[0] + fz * (p[1] - p[0]), c01 = p[sj] + fz * (p[sj + 1] - p[sj]);
    double c10 = p[si] + fz * (p[si + 1] - p[si]);
    double c11 = p[si + sj] + fz * (p[si + sj + 1] - p[si + sj]);
    double c0 = c00 + fy * (c01 - c00), c1 = c10 + fy * (c11 - c10);
    return (float)(c0 + fx * (c1 - c0));
}

static void to_voxel(const double inv[3][4], const double w[3], double v[3])
{
    for (int r = 0; r < 3; r++) {
        v[r] = inv[r][0] * w[0] + inv[r][1] * w[1] + inv[r][2] * w[2] + inv[r][3];
    }
}

// Samples the template at world point w: T1 intensity and mask fraction.
static void sample(const grid_t *g, const double w[3], float *t1, float *mask)
{
    double v[3];
    to_voxel(g->inv, w, v);
    *t1 = trilinear(g->t1, g->dim, v[0], v[1], v[2]);
    *mask = trilinear(g->mask, g->dim, v[0], v[1], v[2]);
}

static ss_status_t grid_alloc(grid_t *g, ss_budget_t *b, size_t *bytes, ss_error_t *err)
{
    size_t n = (size_t)(g->dim[0] * g->dim[1] * g->dim[2]);
    *bytes = 2 * n * sizeof(float);
    SS_TRY(ss_aligned_alloc((void **)&g->t1, *bytes, b, "synth template", err));
    g->mask = g->t1 + n;
    return SS_OK;
}

// Analytic head phantom on a 1 mm grid centred at world 0: ellipsoidal brain with a grey-matter
// cortex, thin sulcal CSF, two lateral ventricles, white matter inside.
static ss_status_t build_phantom(grid_t *g, ss_budget_t *b, size_t *bytes, ss_error_t *err)
{
    const int64_t n[3] = {160, 196, 150};
    memcpy(g->dim, n, sizeof(n));
    SS_TRY(grid_alloc(g, b, bytes, err));
    double aff[4][4] = {{1, 0, 0, -79.5}, {0, 1, 0, -97.5}, {0, 0, 1, -74.5}, {0, 0, 0, 1}};
    memcpy(g->aff, aff, sizeof(aff));
    SS_TRY(invert_affine(aff, g->inv, "phantom", err));
    for (int64_t i = 0; i < n[0]; i++) {
        for (int64_t j = 0; j < n[1]; j++) {
            for (int64_t k = 0; k < n[2]; k++) {
                double x = i - 79.5, y = j - 97.5, z = k - 74.5;
                double r =
                    sqrt(x * x / (68.0 * 68.0) + y * y / (86.0 * 86.0) + z * z / (62.0 * 62.0));
                double vl = sqrt((fabs(x) - 12) * (fabs(x) - 12) / 36.0 +
                                 (y - 5) * (y - 5) / 484.0 + (z - 10) * (z - 10) / 81.0);
                float t = 100.0f; // WM
                if (r > 0.86 || vl < 1.0) {
                    t = r > 0.96 || vl < 1.0 ? 30.0f : 70.0f;
                }
                int64_t q = (i * n[1] + j) * n[2] + k;
                g->t1[q] = r < 1.0 ? t : 0.0f;
                g->mask[q] = r < 1.0 ? 1.0f : 0.0f;
            }
        }
    }
    g->mean[0] = 30;
    g->mean[1] = 70;
    g->mean[2] = 100;
    return SS_OK;
}

// Three-class k-means (CSF, GM, WM) on a histogram of the T1 intensity inside the mask.
static void class_means(grid_t *g)
{
    enum { NB = 512 };
    double hist[NB] = {0}, hi = 0;
    int64_t n = g->dim[0] * g->dim[1] * g->dim[2];
    for (int64_t q = 0; q < n; q++) {
        hi = g->mask[q] > 0.5f && g->t1[q] > hi ? g->t1[q] : hi;
    }
    double w = hi > 0 ? hi / (NB - 1) : 1;
    for (int64_t q = 0; q < n; q++) {
        if (g->mask[q] > 0.5f) {
            hist[(int)(g->t1[q] / w)] += 1;
        }
    }
    double m[3] = {0.25 * hi, 0.6 * hi, 0.85 * hi};
    for (int it = 0; it < 50; it++) {
        double s[3] = {0}, c[3] = {0};
        for (int h = 0; h < NB; h++) {
            double v = (h + 0.5) * w;
            int best = 0;
            for (int k = 1; k < 3; k++) {
                best = fabs(v - m[k]) < fabs(v - m[best]) ? k : best;
            }
            s[best] += hist[h] * v;
            c[best] += hist[h];
        }
        for (int k = 0; k < 3; k++) {
            m[k] = c[k] > 0 ? s[k] / c[k] : m[k];
        }
    }
    memcpy(g->mean, m, sizeof(m));
}

// Mask and grid from ch2bet (1 mm); T1 from ch2better (0.5 mm), box-filtered to 1 mm by averaging
// eight trilinear samples a quarter voxel apart, so the 0.5 mm texture does not alias.
static ss_status_t fill_t1(grid_t *g,
                           const float *hires,
                           const ss_nifti_header_t *hh,
                           const double aff[4][4],
                           const char *path,
                           ss_error_t *err)
{
    double hinv[3][4];
    SS_TRY(invert_affine(hh->affine, hinv, path, err));
    const int64_t hd[3] = {hh->dim[0], hh->dim[1], hh->dim[2]};
    int64_t n = g->dim[0] * g->dim[1] * g->dim[2];
    for (int64_t q = 0; q < n; q++) {
        if (g->mask[q] < 0.5f) {
            continue;
        }
        int64_t k = q % g->dim[2], j = (q / g->dim[2]) % g->dim[1], i = q / (g->dim[1] * g->dim[2]);
        double acc = 0, wsum = 0;
        for (int o = 0; o < 8; o++) {
            double d[3] = {(o & 1) ? 0.25 : -0.25, (o & 2) ? 0.25 : -0.25, (o & 4) ? 0.25 : -0.25};
            double wpt[3], v[3];
            for (int r = 0; r < 3; r++) {
                wpt[r] = aff[r][0] * (i + d[0]) + aff[r][1] * (j + d[1]) + aff[r][2] * (k + d[2]) +
                         aff[r][3];
            }
            to_voxel(hinv, wpt, v);
            if (v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[0] <= hd[0] - 1 && v[1] <= hd[1] - 1 &&
                v[2] <= hd[2] - 1) {
                acc += trilinear(hires, hd, v[0], v[1], v[2]);
                wsum += 1;
            }
        }
        // Outside ch2better's box keep ch2bet's own intensity (same subject, same scale).
        g->t1[q] = wsum > 0 ? (float)(acc / wsum) : g->t1[q];
    }
    return SS_OK;
}

static ss_status_t
build_template(grid_t *g, const char *dir, ss_budget_t *b, size_t *bytes, ss_error_t *err)
{
    char pbet[4096], phead[4096];
    template_path(dir, "ch2bet.nii.gz", pbet, sizeof(pbet));
    template_path(dir, "ch2better.nii.gz", phead, sizeof(phead));
    ss_nifti_header_t hb, hh;
    float *bet = NULL, *head = NULL;
    ss_status_t st = ss_nifti_read(pbet, &hb, &bet, b, err);
    if (st != SS_OK) {
        return st;
    }
    memcpy(g->dim, hb.dim, sizeof(g->dim));
    memcpy(g->aff, hb.affine, sizeof(g->aff));
    st = grid_alloc(g, b, bytes, err);
    if (st == SS_OK) {
        st = invert_affine(hb.affine, g->inv, pbet, err);
    }
    if (st != SS_OK) {
        goto out;
    }
    int64_t n = g->dim[0] * g->dim[1] * g->dim[2];
    for (int64_t q = 0; q < n; q++) {
        g->mask[q] = bet[q] > 0.0f ? 1.0f : 0.0f;
        g->t1[q] = bet[q];
    }
    st = ss_nifti_read(phead, &hh, &head, b, err);
    if (st == SS_OK) {
        st = fill_t1(g, head, &hh, hb.affine, phead, err);
    }
    if (st == SS_OK) {
        class_means(g);
    }
out:
    ss_aligned_free(bet, ss_nifti_nbytes(&hb), b);
    if (head != NULL) {
        ss_aligned_free(head, ss_nifti_nbytes(&hh), b);
    }
    return st;
}

// World centroid of the mask.
static void mask_centre(grid_t *g)
{
    double s[3] = {0}, c = 0;
    for (int64_t i = 0; i < g->dim[0]; i++) {
        for (int64_t j = 0; j < g->dim[1]; j++) {
            for (int64_t k = 0; k < g->dim[2]; k++) {
                if (g->mask[(i * g->dim[1] + j) * g->dim[2] + k] > 0.5f) {
                    s[0] += (double)i, s[1] += (double)j, s[2] += (double)k, c += 1;
                }
            }
        }
    }
    double v[3] = {s[0] / (c > 0 ? c : 1), s[1] / (c > 0 ? c : 1), s[2] / (c > 0 ? c : 1)};
    for (int r = 0; r < 3; r++) {
        g->centre[r] =
            g->aff[r][0] * v[0] + g->aff[r][1] * v[1] + g->aff[r][2] * v[2] + g->aff[r][3];
    }
}

ss_status_t
ss_synth_create(const ss_synth_config_t *cfg, ss_budget_t *b, ss_synth_t **out, ss_error_t *err)
{
    *out = NULL;
    SS_TRY(ss_synth_config_validate(cfg, err));
    ss_synth_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SS_FAIL(err, SS_ENOMEM, "synth: out of memory for the generator; free memory");
    }
    s->cfg = *cfg;
    s->b = b;
    s->use_template = ss_synth_template_available(cfg->template_dir);
    ss_status_t st = s->use_template ? build_template(&s->g, cfg->template_dir, b, &s->bytes, err)
                                     : build_phantom(&s->g, b, &s->bytes, err);
    if (st != SS_OK) {
        ss_synth_destroy(&s);
        return st;
    }
    s->cfg.template_dir = NULL; // borrowed string: not needed after create
    mask_centre(&s->g);
    *out = s;
    return SS_OK;
}

void ss_synth_destroy(ss_synth_t **ps)
{
    if (ps == NULL || *ps == NULL) {
        return;
    }
    ss_aligned_free((*ps)->g.t1, (*ps)->bytes, (*ps)->b);
    free(*ps);
    *ps = NULL;
}

int ss_synth_uses_template(const ss_synth_t *s)
{
    return s->use_template;
}

void ss_synth_case_name(int64_t index, char *buf, size_t len)
{
    snprintf(buf, len, "SynBraTS_%05lld", (long long)index);
}

ss_status_t
ss_synth_case_alloc(const ss_synth_t *s, ss_synth_case_t *c, ss_budget_t *b, ss_error_t *err)
{
    memset(c, 0, sizeof(*c));
    const int64_t *n = s->cfg.size;
    size_t nv = (size_t)(n[0] * n[1] * n[2]);
    c->bytes = nv * (sizeof(float) * (SS_SYNTH_NCHAN + 1) + 1);
    SS_TRY(ss_aligned_alloc((void **)&c->image, c->bytes, b, "synth case", err));
    c->label = c->image + SS_SYNTH_NCHAN * nv;
    c->brain = (uint8_t *)(c->label + nv);
    ss_nifti_header_t *h = &c->hdr;
    const double fov[3] = {FOV_I, FOV_J, FOV_K};
    for (int d = 0; d < 3; d++) {
        h->dim[d] = n[d];
        h->spacing[d] = fov[d] / (double)n[d];
    }
    h->dim[3] = 1;
    // BraTS geometry: x = -i, y = (J-1) - j, z = k, in mm.
    h->affine[0][0] = -h->spacing[0];
    h->affine[1][1] = -h->spacing[1];
    h->affine[1][3] = h->spacing[1] * (double)(n[1] - 1);
    h->affine[2][2] = h->spacing[2];
    h->affine[3][3] = 1;
    h->qform_code = h->sform_code = 1;
    h->datatype = 4;
    h->version = 1;
    return SS_OK;
}

void ss_synth_case_free(ss_synth_case_t *c, ss_budget_t *b)
{
    if (c != NULL && c->image != NULL) {
        ss_aligned_free(c->image, c->bytes, b);
        c->image = NULL;
        c->label = NULL;
        c->brain = NULL;
    }
}

// ---- per-case parameters ----

typedef struct {
    ss_rng_t r;
    uint64_t n;
} draw_t;

static double unif(draw_t *d, double lo, double hi)
{
    return lo + (hi - lo) * (double)ss_rng_uniform(d->r, d->n++);
}

typedef struct {
    double m[3][3], shift[3]; // output mm -> template mm (rotation x scale)
    double damp[NMODES][3], dw[NMODES][3], dph[NMODES][3]; // displacement modes
    double c[3], R, rn, fed, A, Aed, mass; // tumour (output mm about the FOV centre)
    double sw[2][NSHAPE][3], sph[2][NSHAPE][3], samp[2][NSHAPE]; // shape noise: core, edema
    double contrast[SS_SYNTH_NCHAN][NCLASS], level[SS_SYNTH_NCHAN], noise[SS_SYNTH_NCHAN];
    double bias[SS_SYNTH_NCHAN][3][2];
} params_t;

static void draw_affine(draw_t *d, params_t *p)
{
    double a[3], sc = unif(d, 0.92, 1.08);
    for (int r = 0; r < 3; r++) {
        a[r] = unif(d, -8, 8) * PI / 180;
        p->shift[r] = unif(d, -4, 4);
    }
    double cx = cos(a[0]), sx = sin(a[0]), cy = cos(a[1]), sy = sin(a[1]), cz = cos(a[2]),
           sz = sin(a[2]);
    const double rot[3][3] = {{cy * cz, -cy * sz, sy},
                              {sx * sy * cz + cx * sz, -sx * sy * sz + cx * cz, -sx * cy},
                              {-cx * sy * cz + sx * sz, cx * sy * sz + sx * cz, cx * cy}};
    for (int r = 0; r < 3; r++) {
        double s = sc * unif(d, 0.97, 1.03);
        for (int c = 0; c < 3; c++) {
            p->m[r][c] = rot[r][c] * s;
        }
    }
    for (int k = 0; k < NMODES; k++) {
        for (int r = 0; r < 3; r++) {
            p->damp[k][r] = unif(d, -2.5, 2.5);
            p->dw[k][r] = 2 * PI / unif(d, 80, 220);
            p->dph[k][r] = unif(d, 0, 2 * PI);
        }
    }
}

static void draw_look(draw_t *d, params_t *p)
{
    for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
        for (int c = 0; c < NCLASS; c++) {
            p->contrast[m][c] = g_contrast[m][c] * unif(d, 0.92, 1.08);
        }
        p->level[m] = g_level[m] * unif(d, 0.75, 1.3);
        p->noise[m] = unif(d, 0.02, 0.045) * p->level[m];
        for (int a = 0; a < 3; a++) {
            p->bias[m][a][0] = unif(d, -0.12, 0.12);
            p->bias[m][a][1] = unif(d, -0.08, 0.08);
        }
    }
}

static void draw_shape(draw_t *d, params_t *p)
{
    for (int s = 0; s < 2; s++) {
        double sum = 0;
        for (int k = 0; k < NSHAPE; k++) {
            p->samp[s][k] = unif(d, 0.3, 1.0);
            sum += p->samp[s][k];
            for (int r = 0; r < 3; r++) {
                p->sw[s][k][r] = unif(d, 1.2, 3.2) / (p->R * (s ? p->fed : 1.0));
                p->sph[s][k][r] = unif(d, 0, 2 * PI);
            }
        }
        for (int k = 0; k < NSHAPE; k++) {
            p->samp[s][k] /= sum; // so the noise stays in [-1, 1]
        }
    }
    p->A = unif(d, 0.12, 0.28);
    p->Aed = unif(d, 0.15, 0.35);
    p->mass = unif(d, 0.1, 0.35);
}

// ---- geometry: output mm (about the FOV centre) -> template world mm ----

static void displacement(const params_t *p, const double x[3], double out[3])
{
    out[0] = out[1] = out[2] = 0;
    for (int k = 0; k < NMODES; k++) {
        double f = 1;
        for (int a = 0; a < 3; a++) {
            f *= cos(p->dw[k][a] * x[a] + p->dph[k][a]);
        }
        for (int a = 0; a < 3; a++) {
            out[a] += p->damp[k][a] * f;
        }
    }
}

static void
to_template(const grid_t *g, const params_t *p, const double x[3], const double d[3], double w[3])
{
    for (int r = 0; r < 3; r++) {
        w[r] = g->centre[r] + p->shift[r];
        for (int c = 0; c < 3; c++) {
            w[r] += p->m[r][c] * (x[c] + d[c]);
        }
    }
}

// 1 if output point x lies in the brain (without mass effect); *t1 gets the template intensity.
static int in_brain(const grid_t *g, const params_t *p, const double x[3], float *t1)
{
    double d[3], w[3];
    float mask;
    displacement(p, x, d);
    to_template(g, p, x, d, w);
    sample(g, w, t1, &mask);
    return mask >= 0.5f;
}

// Rejection-samples a tumour centre whose core (radius R + 2 mm) lies in the brain, not in CSF.
static void place_tumour(const grid_t *g, draw_t *d, params_t *p, double spmax)
{
    static const double dirs[14][3] = {
        {1, 0, 0},  {-1, 0, 0}, {0, 1, 0},   {0, -1, 0}, {0, 0, 1},   {0, 0, -1},  {1, 1, 1},
        {1, 1, -1}, {1, -1, 1}, {1, -1, -1}, {-1, 1, 1}, {-1, 1, -1}, {-1, -1, 1}, {-1, -1, -1}};
    const double csf_gm = 0.5 * (g->mean[0] + g->mean[1]);
    for (int attempt = 0; attempt < 256; attempt++) {
        double rmin = 4.5 * spmax;
        p->R = unif(d, 10, 22) * (attempt >= 128 ? 0.7 : 1.0);
        p->R = p->R < rmin ? rmin : p->R;
        p->c[0] = unif(d, -0.27, 0.27) * FOV_I;
        p->c[1] = unif(d, -0.3, 0.3) * FOV_J;
        p->c[2] = unif(d, -0.15, 0.25) * FOV_K;
        float t1;
        int ok = in_brain(g, p, p->c, &t1) && t1 > csf_gm;
        for (int q = 0; ok && q < 14; q++) {
            double norm = q < 6 ? 1.0 : 1.0 / sqrt(3.0), x[3];
            for (int a = 0; a < 3; a++) {
                x[a] = p->c[a] + dirs[q][a] * norm * (p->R + 2);
            }
            ok = in_brain(g, p, x, &t1);
        }
        if (ok) {
            break;
        }
    }
    double rn_max = 1 - 1.6 * spmax / p->R; // keep the rim at least ~1.5 voxels thick
    p->rn = unif(d, 0.5, 0.8);
    p->rn = p->rn > rn_max ? rn_max : p->rn;
    p->rn = p->rn < 0.3 ? 0.3 : p->rn;
    p->fed = unif(d, 1.35, 2.0);
}

// ---- the voxel loop ----

// Separable per-axis tables: displacement modes, shape-noise modes, bias fields, coordinates.
enum {
    ROW_DISP = 0,
    ROW_SHAPE = NMODES,
    ROW_BIAS = NMODES + 2 * NSHAPE,
    ROW_X = ROW_BIAS + SS_SYNTH_NCHAN,
    NROWS = ROW_X + 1
};

typedef struct {
    const grid_t *g;
    const params_t *p;
    ss_synth_case_t *c;
    const double *tab; // [NROWS][I + J + K]
    int64_t n[3], off[3], stride;
    ss_rng_t noise;
    double sp_mean;
} loop_t;

static void fill_tables(const params_t *p, const ss_synth_case_t *c, double *tab, int64_t stride)
{
    int64_t off = 0;
    for (int a = 0; a < 3; a++) {
        int64_t n = c->hdr.dim[a];
        double sp = c->hdr.spacing[a], sign = a < 2 ? -1.0 : 1.0; // x = -i, y = -j, z = k
        for (int64_t t = 0; t < n; t++) {
            double x = sign * ((double)t - 0.5 * (double)(n - 1)) * sp, u = x / (0.5 * n * sp);
            tab[ROW_X * stride + off + t] = x;
            for (int k = 0; k < NMODES; k++) {
                tab[(ROW_DISP + k) * stride + off + t] = cos(p->dw[k][a] * x + p->dph[k][a]);
            }
            for (int s = 0; s < 2; s++) {
                for (int k = 0; k < NSHAPE; k++) {
                    tab[(ROW_SHAPE + s * NSHAPE + k) * stride + off + t] =
                        cos(p->sw[s][k][a] * (x - p->c[a]) + p->sph[s][k][a]);
                }
            }
            for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
                tab[(ROW_BIAS + m) * stride + off + t] =
                    exp(p->bias[m][a][0] * u + p->bias[m][a][1] * u * u);
            }
        }
        off += n;
    }
}

static double smoothstep(double x, double a, double b)
{
    double t = (x - a) / (b - a);
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    return t * t * (3 - 2 * t);
}

static double row3(const loop_t *L, int row, const int64_t idx[3])
{
    const double *t = L->tab + row * L->stride;
    return t[L->off[0] + idx[0]] * t[L->off[1] + idx[1]] * t[L->off[2] + idx[2]];
}

// Tissue fractions (CSF, GM, WM) from the template's T1 intensity, keeping partial volume.
static void tissue(const grid_t *g, double t, double f[3])
{
    const double *m = g->mean;
    f[0] = f[1] = f[2] = 0;
    if (t <= m[0]) {
        f[0] = 1;
    } else if (t < m[1]) {
        f[1] = (t - m[0]) / (m[1] - m[0]);
        f[0] = 1 - f[1];
    } else if (t < m[2]) {
        f[2] = (t - m[1]) / (m[2] - m[1]);
        f[1] = 1 - f[2];
    } else {
        f[2] = 1;
    }
}

// Rician noise: |s + n1 + i n2| with two normals per modality from one Philox block pair.
static void noisy(const loop_t *L, int64_t q, const double clean[SS_SYNTH_NCHAN], float out[])
{
    uint32_t w[8];
    ss_rng_block(L->noise, 2 * (uint64_t)q, w);
    ss_rng_block(L->noise, 2 * (uint64_t)q + 1, w + 4);
    for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
        double u1 = ((double)w[2 * m] + 1.0) * (1.0 / 4294967296.0);
        double u2 = (double)w[2 * m + 1] * (1.0 / 4294967296.0);
        double r = sqrt(-2.0 * log(u1)), sd = L->p->noise[m];
        double re = clean[m] + sd * r * cos(2 * PI * u2), im = sd * r * sin(2 * PI * u2);
        double v = floor(sqrt(re * re + im * im) + 0.5);
        out[m] = (float)(v < 1 ? 1 : (v > 32767 ? 32767 : v));
    }
}

static void voxel(const loop_t *L, const int64_t idx[3])
{
    const params_t *p = L->p;
    const double *xt = L->tab + ROW_X * L->stride;
    double x[3] = {xt[L->off[0] + idx[0]], xt[L->off[1] + idx[1]], xt[L->off[2] + idx[2]]};
    double d[3] = {0, 0, 0}, rel[3], r2 = 0;
    for (int k = 0; k < NMODES; k++) {
        double f = row3(L, ROW_DISP + k, idx);
        d[0] += p->damp[k][0] * f, d[1] += p->damp[k][1] * f, d[2] += p->damp[k][2] * f;
    }
    for (int a = 0; a < 3; a++) {
        rel[a] = x[a] - p->c[a];
        r2 += rel[a] * rel[a];
    }
    // Mass effect: sample the template nearer the tumour centre, so tissue looks pushed outward.
    double sig = 1.2 * p->R * p->fed, push = p->mass * exp(-r2 / (2 * sig * sig)), w[3];
    for (int a = 0; a < 3; a++) {
        x[a] -= push * rel[a];
    }
    to_template(L->g, p, x, d, w);
    float t1, mask;
    sample(L->g, w, &t1, &mask);
    int64_t q = (idx[0] * L->n[1] + idx[1]) * L->n[2] + idx[2], nv = L->n[0] * L->n[1] * L->n[2];
    ss_synth_case_t *c = L->c;
    c->brain[q] = mask >= 0.5f;
    if (!c->brain[q]) {
        c->label[q] = 0;
        for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
            c->image[m * nv + q] = 0;
        }
        return;
    }
    double f[3], ncore = 0, ned = 0, r = sqrt(r2);
    tissue(L->g, t1, f);
    for (int k = 0; k < NSHAPE; k++) {
        ncore += p->samp[0][k] * row3(L, ROW_SHAPE + k, idx);
        ned += p->samp[1][k] * row3(L, ROW_SHAPE + NSHAPE + k, idx);
    }
    double lc = r / (p->R * (1 + p->A * ncore)), le = r / (p->R * p->fed * (1 + p->Aed * ned));
    double ec = 0.6 * L->sp_mean / p->R, ee = ec / p->fed, thr = 1 - 0.3 * f[1];
    double wcore = 1 - smoothstep(lc, 1 - ec, 1 + ec);
    double wncr = wcore * (1 - smoothstep(lc, p->rn - ec, p->rn + ec)), wet = wcore - wncr;
    double wed = (1 - wcore) * (1 - smoothstep(le, thr - ee, thr + ee)) * (1 - f[0]);
    double wn = 1 - wcore - wed, tex = 1 + 0.12 * ned, clean[SS_SYNTH_NCHAN];
    for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
        const double *k = p->contrast[m];
        double v = wn * (f[0] * k[0] + f[1] * k[1] + f[2] * k[2]) + wed * k[3] +
                   (wncr * k[4] + wet * k[5]) * tex;
        clean[m] = p->level[m] * row3(L, ROW_BIAS + m, idx) * v;
    }
    float out[SS_SYNTH_NCHAN];
    noisy(L, q, clean, out);
    for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
        c->image[m * nv + q] = out[m];
    }
    c->label[q] = lc < p->rn ? SS_SYNTH_NCR
                             : (lc < 1 ? SS_SYNTH_ET : (le < thr && f[0] < 0.5 ? SS_SYNTH_ED : 0));
}

static uint64_t case_stream(int64_t index, uint64_t purpose)
{
    const uint64_t ids[3] = {0x53594e5448ull, (uint64_t)index, purpose}; // "SYNTH"
    return ss_rng_stream(ids, 3);
}

ss_status_t
ss_synth_generate(const ss_synth_t *s, int64_t index, ss_synth_case_t *c, ss_error_t *err)
{
    if (index < 0 || c == NULL || c->image == NULL || c->hdr.dim[0] != s->cfg.size[0] ||
        c->hdr.dim[1] != s->cfg.size[1] || c->hdr.dim[2] != s->cfg.size[2]) {
        SS_FAIL(err, SS_EINVAL,
                "synth: case %lld: bad index or case buffer; use "
                "ss_synth_case_alloc on this generator",
                (long long)index);
    }
    params_t p;
    draw_t d = {ss_rng_make(s->cfg.seed, case_stream(index, 0)), 0};
    const double *sp = c->hdr.spacing;
    double spmax = sp[0] > sp[1] ? sp[0] : sp[1];
    spmax = spmax > sp[2] ? spmax : sp[2];
    draw_affine(&d, &p);
    draw_look(&d, &p);
    place_tumour(&s->g, &d, &p, spmax);
    draw_shape(&d, &p);
    loop_t L = {&s->g,
                &p,
                c,
                NULL,
                {c->hdr.dim[0], c->hdr.dim[1], c->hdr.dim[2]},
                {0, c->hdr.dim[0], c->hdr.dim[0] + c->hdr.dim[1]},
                0,
                ss_rng_make(s->cfg.seed, case_stream(index, 1)),
                (sp[0] + sp[1] + sp[2]) / 3};
    L.stride = L.n[0] + L.n[1] + L.n[2];
    double *tab = malloc((size_t)(NROWS * L.stride) * sizeof(double));
    if (tab == NULL) {
        SS_FAIL(err, SS_ENOMEM, "synth: out of memory for case tables; free memory");
    }
    fill_tables(&p, c, tab, L.stride);
    L.tab = tab;
    const loop_t *lp = &L;
    const int64_t ni = L.n[0];
#pragma omp parallel for num_threads(s->cfg.nthreads) schedule(dynamic, 1) default(none)           \
    shared(lp, ni)
    for (int64_t i = 0; i < ni; i++) {
        for (int64_t j = 0; j < lp->n[1]; j++) {
            for (int64_t k = 0; k < lp->n[2]; k++) {
                const int64_t idx[3] = {i, j, k};
                voxel(lp, idx);
            }
        }
    }
    free(tab);
    c->tumour_centre[0] = 0.5 * (double)(L.n[0] - 1) - p.c[0] / sp[0];
    c->tumour_centre[1] = 0.5 * (double)(L.n[1] - 1) - p.c[1] / sp[1];
    c->tumour_centre[2] = 0.5 * (double)(L.n[2] - 1) + p.c[2] / sp[2];
    c->core_radius_mm = p.R;
    return SS_OK;
}

// ---- writing one case folder atomically ----

// Removes a flat folder we created (its files, then itself); best effort, used on cleanup.
static void remove_flat_dir(const char *path)
{
    DIR *dp = opendir(path);
    if (dp != NULL) {
        struct dirent *e;
        char f[8448];
        while ((e = readdir(dp)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
                unlink(f);
            }
        }
        closedir(dp);
    }
    rmdir(path);
}

static ss_status_t
write_files(const ss_synth_case_t *c, const char *tmp, const char *name, ss_error_t *err)
{
    static const char *suffix[SS_SYNTH_NCHAN] = {"flair", "t1", "t1ce", "t2"};
    const int64_t nv = c->hdr.dim[0] * c->hdr.dim[1] * c->hdr.dim[2];
    char path[8448];
    for (int m = 0; m < SS_SYNTH_NCHAN; m++) {
        snprintf(path, sizeof(path), "%s/%s_%s.nii.gz", tmp, name, suffix[m]);
        SS_TRY(ss_nifti_write(path, &c->hdr, c->image + m * nv, 4, err));
    }
    snprintf(path, sizeof(path), "%s/%s_seg.nii.gz", tmp, name);
    return ss_nifti_write(path, &c->hdr, c->label, 2, err);
}

// Moves a finished temporary folder to dir/name, replacing an older case of that name: the old
// folder is first renamed onto an empty placeholder (rename(2) replaces an empty directory).
static ss_status_t commit_dir(const char *tmp, const char *dir, const char *name, ss_error_t *err)
{
    char final[4096], old[4096];
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    struct stat st;
    int had_old = stat(final, &st) == 0;
    if (had_old) {
        snprintf(old, sizeof(old), "%s/.%s.old-XXXXXX", dir, name);
        if (mkdtemp(old) == NULL || rename(final, old) != 0) {
            int e = errno;
            SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot replace the existing case: %s; remove it",
                        final, strerror(e));
        }
    }
    if (rename(tmp, final) != 0) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot rename the finished case into place: %s", final,
                    strerror(e));
    }
    if (had_old) {
        remove_flat_dir(old);
    }
    return SS_OK;
}

ss_status_t
ss_synth_write(const ss_synth_case_t *c, const char *dir, const char *name, ss_error_t *err)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-XXXXXX", dir, name) >= (int)sizeof(tmp) - 64) {
        SS_FAIL(err, SS_EINVAL, "%s: path too long; use a shorter output folder", dir);
    }
    if (mkdtemp(tmp) == NULL) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EIO, e, "%s: cannot create a case folder there: %s; check --out", dir,
                    strerror(e));
    }
    // mkdtemp makes the folder 0700; a case folder should be readable like any other output.
    chmod(tmp, 0755);
    ss_status_t st = write_files(c, tmp, name, err);
    if (st == SS_OK) {
        st = commit_dir(tmp, dir, name, err);
    }
    if (st != SS_OK) {
        remove_flat_dir(tmp);
    }
    return st;
}
