#include "shardseg/sampler.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/rng.h"
#include "shardseg/timer.h"

// Positions are stored as linear indices into the case's [I][J][K] grid.
typedef struct {
    int index; // case index in the file
    int64_t dim[3];
    int64_t nfg;
    int64_t *fg;  // up to cfg.fg_samples foreground positions
    float *img;   // the whole image [C][I][J][K] when cached, else NULL
    uint8_t *lab; // the whole label [R][I][J][K] when cached
    float lo[SS_H5DATA_MAX_CHAN], hi[SS_H5DATA_MAX_CHAN]; // channel range over brain voxels
} train_case_t;

typedef struct {
    float *image;
    uint8_t *label;
    uint64_t k;
    int ready;
} slot_t;

struct ss_sampler {
    ss_h5data_t *d;
    ss_sampler_config_t cfg;
    int nchan, nlabel;
    int ntrain;
    train_case_t *cases;
    int64_t max_plane;   // largest J*K over the training cases
    size_t image_floats; // per patch slab: C * L * pJ * pK
    size_t label_bytes;  // R * L * pJ * pK
    _Atomic uint64_t bytes_read;

    // Synchronous mode uses slot 0 and scratch 0; the worker uses its own scratch.
    int nslots;
    slot_t *slots;
    float *scratch_image[2];
    uint8_t *scratch_label[2];

    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    uint64_t generation; // bumped when the consumer jumps to a k the worker did not expect
    uint64_t next_fill;  // next k the worker prepares
    uint64_t floor;      // lowest k still needed: the one the consumer holds or waits for
    int active;          // the consumer has asked for a patch (the worker idles before that)
    int have_current;    // the consumer holds patch `floor` (so floor + 1 is the expected next)
    ss_status_t worker_status;
    ss_error_t worker_err;
};

void ss_sampler_config_init(ss_sampler_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->patch[0] = c->patch[1] = c->patch[2] = 128;
    c->fg_fraction = 0.33;
    c->flip_axes = 7;
    c->scale = 0.1f;
    c->shift = 0.1f;
    c->prefetch = 2;
    c->fg_samples = 4096;
    c->val_fold = -1;
}

static ss_status_t config_check(const ss_sampler_config_t *c, ss_error_t *err)
{
    for (int a = 0; a < 3; a++) {
        if (c->patch[a] < 1 || c->patch[a] > 4096) {
            SS_FAIL(err, SS_EINVAL, "--patch: size %lld on axis %d is outside [1, 4096]",
                    (long long)c->patch[a], a);
        }
    }
    int64_t len = c->slab_len ? c->slab_len : c->patch[0];
    if (c->slab_i0 < 0 || len < 1 || c->slab_i0 + len > c->patch[0]) {
        SS_FAIL(err, SS_EINVAL, "sampler slab [%lld, %lld) is outside the patch's %lld rows",
                (long long)c->slab_i0, (long long)(c->slab_i0 + len), (long long)c->patch[0]);
    }
    if (!(c->fg_fraction >= 0 && c->fg_fraction <= 1) || !(c->scale >= 0 && c->scale < 1) ||
        !(c->shift >= 0) || c->prefetch < 0 || c->prefetch > 64 || c->fg_samples < 0 ||
        (c->rot90 != 0 && c->rot90 != 1)) {
        SS_FAIL(err, SS_EINVAL,
                "sampler: fg_fraction must be in [0, 1], scale in [0, 1), shift >= 0, prefetch in "
                "[0, 64], rot90 0 or 1");
    }
    if (!(c->spatial_p >= 0 && c->spatial_p <= 1) || !(c->rotate >= 0 && c->rotate <= 180) ||
        !(c->zoom >= 0 && c->zoom < 1) || !(c->gamma_p >= 0 && c->gamma_p <= 1) ||
        !(c->gamma >= 0 && c->gamma <= 10)) {
        SS_FAIL(err, SS_EINVAL,
                "sampler: spatial_p and gamma_p must be in [0, 1], rotate in [0, 180] degrees, "
                "zoom in [0, 1), gamma in [0, 10]");
    }
    return SS_OK;
}

// Keeps up to `keep` foreground positions of one case, at a fixed stride through the volume,
// from its cached label or one read of it.
static ss_status_t index_foreground(ss_sampler_t *s, train_case_t *tc, int keep, ss_error_t *err)
{
    int64_t vox = tc->dim[0] * tc->dim[1] * tc->dim[2];
    uint8_t *own = tc->lab != NULL ? NULL : malloc((size_t)(vox * s->nlabel));
    const uint8_t *lab = tc->lab != NULL ? tc->lab : own;
    if (lab == NULL) {
        SS_FAIL(err, SS_ENOMEM, "sampler: out of memory reading the labels of case %s",
                ss_h5data_case_name(s->d, tc->index));
    }
    ss_status_t st =
        own != NULL ? ss_h5data_read_label(s->d, tc->index, 0, tc->dim[0], own, err) : SS_OK;
    int64_t nfg = 0;
    for (int64_t v = 0; st == SS_OK && v < vox; v++) {
        int any = 0;
        for (int r = 0; r < s->nlabel; r++) {
            any |= lab[r * vox + v];
        }
        nfg += any != 0;
    }
    int64_t stride = nfg > keep ? (nfg + keep - 1) / keep : 1;
    tc->fg = st == SS_OK && nfg > 0 ? malloc(sizeof(int64_t) * (size_t)(nfg / stride + 1)) : NULL;
    for (int64_t v = 0, seen = 0; tc->fg != NULL && v < vox; v++) {
        int any = 0;
        for (int r = 0; r < s->nlabel; r++) {
            any |= lab[r * vox + v];
        }
        if (any && seen++ % stride == 0) {
            tc->fg[tc->nfg++] = v;
        }
    }
    free(own);
    return st;
}

static ss_status_t collect_cases(ss_sampler_t *s, ss_error_t *err)
{
    int n = ss_h5data_ncases(s->d);
    int has_split = 0;
    for (int i = 0; i < n; i++) {
        has_split |= ss_h5data_is_val(s->d, i) >= 0;
    }
    if (n <= 0) {
        SS_FAIL(err, SS_EINVAL, "sampler: the data file holds no cases; run shardseg prep first");
    }
    s->cases = calloc((size_t)n, sizeof(train_case_t));
    if (s->cases == NULL) {
        SS_FAIL(err, SS_ENOMEM, "sampler: out of memory");
    }
    if (s->cfg.val_fold >= 0 && ss_h5data_fold(s->d, 0) < 0) {
        SS_FAIL(err, SS_EINVAL, "data.fold: the data file has no folds; prep it with --folds K");
    }
    for (int i = 0; i < n; i++) {
        int held_out = s->cfg.val_fold >= 0 ? ss_h5data_fold(s->d, i) == s->cfg.val_fold
                                            : has_split && ss_h5data_is_val(s->d, i) != 0;
        if (held_out) {
            continue;
        }
        ss_h5data_info_t info;
        SS_TRY(ss_h5data_case_info(s->d, i, &info, err));
        if (s->ntrain == 0) {
            s->nchan = (int)info.nchan;
            s->nlabel = (int)info.nlabel;
        }
        train_case_t *tc = &s->cases[s->ntrain++];
        tc->index = i;
        memcpy(tc->dim, info.dim, sizeof(tc->dim));
        if (info.dim[1] * info.dim[2] > s->max_plane) {
            s->max_plane = info.dim[1] * info.dim[2];
        }
    }
    if (s->ntrain == 0) {
        SS_FAIL(err, SS_EINVAL,
                "sampler: the data file has no training cases; run shardseg prep "
                "with --val-fraction below 1");
    }
    return SS_OK;
}

static void matmul3(double out[3][3], const double a[3][3], const double b[3][3])
{
    double t[3][3];
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < 3; c++) {
            t[r][c] = a[r][0] * b[0][c] + a[r][1] * b[1][c] + a[r][2] * b[2][c];
        }
    }
    memcpy(out, t, sizeof(t));
}

// A = rotation (about I, then J, then K) x zoom x flips x quarter turn (sampler.h): the patch
// offset goes through the turn and the flips as in the plain path, then is scaled and rotated.
static void spatial_matrix(ss_sampler_draw_t *dr, const double angle[3], double zoom)
{
    // Quarter turns: patch offset (di, dj, dk) shows window offset T (di, dj, dk) (copy_row).
    static const double turn[4][3][3] = {
        {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
        {{1, 0, 0}, {0, 0, -1}, {0, 1, 0}},
        {{1, 0, 0}, {0, -1, 0}, {0, 0, -1}},
        {{1, 0, 0}, {0, 0, 1}, {0, -1, 0}},
    };
    double m[3][3];
    memcpy(m, turn[dr->rot], sizeof(m));
    for (int a = 0; a < 3; a++) {
        for (int c = 0; c < 3; c++) {
            m[a][c] *= (dr->flip[a] ? -zoom : zoom);
        }
    }
    for (int a = 0; a < 3; a++) {
        // Rotation in the plane of the two other axes.
        int u = (a + 1) % 3, v = (a + 2) % 3;
        double rot[3][3] = {{0}};
        rot[a][a] = 1;
        rot[u][u] = rot[v][v] = cos(angle[a]);
        rot[u][v] = -sin(angle[a]);
        rot[v][u] = sin(angle[a]);
        matmul3(m, rot, m);
    }
    memcpy(dr->A, m, sizeof(m));
    dr->spatial = 1;
}

void ss_sampler_draw(const ss_sampler_t *s, uint64_t k, ss_sampler_draw_t *out)
{
    const uint64_t ids[2] = {0x5A3D1E4ull, k};
    ss_rng_t r = ss_rng_make(s->cfg.seed, ss_rng_stream(ids, 2));
    memset(out, 0, sizeof(*out));
    const train_case_t *tc = &s->cases[ss_rng_below(r, 0, (uint32_t)s->ntrain)];
    out->case_index = tc->index;
    out->foreground = tc->nfg > 0 && ss_rng_uniform(r, 1) < s->cfg.fg_fraction;
    int64_t centre[3] = {0, 0, 0};
    if (out->foreground) {
        int64_t v = tc->fg[ss_rng_below(r, 2, (uint32_t)tc->nfg)];
        centre[0] = v / (tc->dim[1] * tc->dim[2]);
        centre[1] = v / tc->dim[2] % tc->dim[1];
        centre[2] = v % tc->dim[2];
    }
    for (int a = 0; a < 3; a++) {
        // Origins in [lo, hi] keep the patch inside the volume, or centred on it when the volume
        // is smaller than the patch (negative origin: zero padding).
        int64_t room = tc->dim[a] - s->cfg.patch[a];
        int64_t lo = room < 0 ? room / 2 : 0, hi = room < 0 ? room / 2 : room;
        int64_t o = out->foreground
                        ? centre[a] - s->cfg.patch[a] / 2
                        : lo + (int64_t)ss_rng_below(r, 3 + (uint64_t)a, (uint32_t)(hi - lo + 1));
        out->origin[a] = o < lo ? lo : (o > hi ? hi : o);
        out->flip[a] = (s->cfg.flip_axes >> a & 1) && ss_rng_uniform(r, 6 + (uint64_t)a) < 0.5f;
    }
    if (s->cfg.rot90) {
        // A quarter turn of a non-square J-K window would change the patch shape: half turns only.
        out->rot = s->cfg.patch[1] == s->cfg.patch[2] ? (int)ss_rng_below(r, 9, 4)
                                                      : 2 * (int)ss_rng_below(r, 9, 2);
    }
    for (int c = 0; c < s->nchan && c < SS_H5DATA_MAX_CHAN; c++) {
        out->scale[c] = 1.0f + s->cfg.scale * (2 * ss_rng_uniform(r, 16 + (uint64_t)c) - 1);
        out->shift[c] = s->cfg.shift * (2 * ss_rng_uniform(r, 32 + (uint64_t)c) - 1);
        out->gamma[c] = 1.0f;
        if (s->cfg.gamma_p > 0 && ss_rng_uniform(r, 64 + (uint64_t)c) < s->cfg.gamma_p) {
            double span = log1p(s->cfg.gamma) * (2 * ss_rng_uniform(r, 72 + (uint64_t)c) - 1);
            out->gamma[c] = (float)exp(span);
        }
    }
    if (s->cfg.spatial_p > 0 && ss_rng_uniform(r, 48) < s->cfg.spatial_p) {
        double angle[3];
        for (int a = 0; a < 3; a++) {
            angle[a] = s->cfg.rotate * (3.14159265358979323846 / 180) *
                       (2 * ss_rng_uniform(r, 49 + (uint64_t)a) - 1);
        }
        double zoom = 1 + s->cfg.zoom * (2 * ss_rng_uniform(r, 52) - 1);
        spatial_matrix(out, angle, zoom);
    }
}

static int64_t slab_len(const ss_sampler_t *s)
{
    return s->cfg.slab_len ? s->cfg.slab_len : s->cfg.patch[0];
}

// One image value of channel c after the draw's gamma (brain voxels only: background stays 0) and
// its contrast and brightness change.
static inline float adjust(const ss_sampler_draw_t *dr, const train_case_t *tc, int c, float v)
{
    if (dr->gamma[c] != 1.0f && v != 0.0f && tc->hi[c] > tc->lo[c]) {
        float span = tc->hi[c] - tc->lo[c], t = (v - tc->lo[c]) / span;
        t = t < 0 ? 0 : (t > 1 ? 1 : t);
        v = tc->lo[c] + span * powf(t, dr->gamma[c]);
    }
    return v * dr->scale[c] + dr->shift[c];
}

// Copies one patch row (j, k window with flips) of every channel from source rows whose channels
// lie nrows rows apart (the rows read from HDF5, or the cached case).
static void copy_row(const ss_sampler_t *s,
                     const ss_sampler_draw_t *dr,
                     const train_case_t *tc,
                     int64_t src_row,
                     int64_t nrows,
                     int64_t out_row,
                     const float *img,
                     const uint8_t *lab,
                     float *image,
                     uint8_t *label)
{
    const int64_t pj = s->cfg.patch[1], pk = s->cfg.patch[2], L = slab_len(s);
    const int64_t J = tc->dim[1], K = tc->dim[2];
    for (int64_t j = 0; j < pj; j++) {
        for (int64_t q = 0; q < pk; q++) {
            // Patch (j, q) shows window position (wj, wq) of the unturned patch (sampler.h).
            int64_t wj = j, wq = q;
            if (dr->rot == 1) {
                wj = pj - 1 - q, wq = j;
            } else if (dr->rot == 2) {
                wj = pj - 1 - j, wq = pk - 1 - q;
            } else if (dr->rot == 3) {
                wj = q, wq = pk - 1 - j;
            }
            int64_t sj = dr->origin[1] + (dr->flip[1] ? pj - 1 - wj : wj);
            int64_t sk = dr->origin[2] + (dr->flip[2] ? pk - 1 - wq : wq);
            int inside = src_row >= 0 && sj >= 0 && sj < J && sk >= 0 && sk < K;
            int64_t src = (src_row * J + sj) * K + sk;
            for (int c = 0; c < s->nchan; c++) {
                float v = inside ? adjust(dr, tc, c, img[(c * nrows * J) * K + src]) : 0;
                image[((c * L + out_row) * pj + j) * pk + q] = v;
            }
            for (int r = 0; r < s->nlabel; r++) {
                label[((r * L + out_row) * pj + j) * pk + q] =
                    inside ? lab[(r * nrows * J) * K + src] : 0;
            }
        }
    }
}

// This rank's slab of a spatial draw from the cached case: trilinear image (voxels outside the
// volume count as 0, like the plain path's padding), nearest-voxel labels.
static void fill_spatial(const ss_sampler_t *s,
                         const ss_sampler_draw_t *dr,
                         const train_case_t *tc,
                         float *image,
                         uint8_t *label)
{
    const int64_t L = slab_len(s), pj = s->cfg.patch[1], pk = s->cfg.patch[2];
    const int64_t I = tc->dim[0], J = tc->dim[1], K = tc->dim[2], vox = I * J * K;
    double c[3], at[3];
    for (int a = 0; a < 3; a++) {
        c[a] = (double)(s->cfg.patch[a] - 1) / 2;
        at[a] = (double)dr->origin[a] + c[a];
    }
    float v[SS_H5DATA_MAX_CHAN];
    for (int64_t r = 0; r < L; r++) {
        for (int64_t j = 0; j < pj; j++) {
            for (int64_t q = 0; q < pk; q++) {
                const double d[3] = {(double)(s->cfg.slab_i0 + r) - c[0], (double)j - c[1],
                                     (double)q - c[2]};
                double x[3];
                int64_t base[3], near[3];
                double t[3];
                for (int a = 0; a < 3; a++) {
                    x[a] = at[a] + dr->A[a][0] * d[0] + dr->A[a][1] * d[1] + dr->A[a][2] * d[2];
                    double f = floor(x[a]);
                    base[a] = (int64_t)f;
                    t[a] = x[a] - f;
                    near[a] = (int64_t)floor(x[a] + 0.5);
                }
                for (int ch = 0; ch < s->nchan; ch++) {
                    v[ch] = 0;
                }
                int any = 0;
                for (int corner = 0; corner < 8; corner++) {
                    int64_t p[3];
                    double w = 1;
                    for (int a = 0; a < 3; a++) {
                        int up = corner >> a & 1;
                        p[a] = base[a] + up;
                        w *= up ? t[a] : 1 - t[a];
                    }
                    if (w == 0 || p[0] < 0 || p[0] >= I || p[1] < 0 || p[1] >= J || p[2] < 0 ||
                        p[2] >= K) {
                        continue;
                    }
                    any = 1;
                    const float *src = tc->img + (p[0] * J + p[1]) * K + p[2];
                    for (int ch = 0; ch < s->nchan; ch++) {
                        v[ch] += (float)w * src[ch * vox];
                    }
                }
                int inside = near[0] >= 0 && near[0] < I && near[1] >= 0 && near[1] < J &&
                             near[2] >= 0 && near[2] < K;
                int64_t at_near = inside ? (near[0] * J + near[1]) * K + near[2] : 0;
                int64_t out = (r * pj + j) * pk + q, plane = L * pj * pk;
                for (int ch = 0; ch < s->nchan; ch++) {
                    image[ch * plane + out] = any ? adjust(dr, tc, ch, v[ch]) : 0;
                }
                for (int ch = 0; ch < s->nlabel; ch++) {
                    label[ch * plane + out] = inside ? tc->lab[ch * vox + at_near] : 0;
                }
            }
        }
    }
}

// Patch k into image/label, reading this rank's source rows into the scratch buffers.
static ss_status_t fill_into(ss_sampler_t *s,
                             uint64_t k,
                             float *image,
                             uint8_t *label,
                             float *scr_img,
                             uint8_t *scr_lab,
                             ss_error_t *err)
{
    ss_sampler_draw_t dr;
    ss_sampler_draw(s, k, &dr);
    const train_case_t *tc = NULL;
    for (int t = 0; t < s->ntrain; t++) {
        tc = s->cases[t].index == dr.case_index ? &s->cases[t] : tc;
    }
    if (dr.spatial) {
        fill_spatial(s, &dr, tc, image, label); // spatial draws need the cache (create checks)
        return SS_OK;
    }
    const int64_t P = s->cfg.patch[0], L = slab_len(s), s0 = s->cfg.slab_i0;
    // Patch rows [s0, s0 + L) come from volume rows origin + [s0, s0 + L), or with an i-flip
    // from origin + [P - s0 - L, P - s0): contiguous either way, clipped to the volume.
    int64_t first = dr.origin[0] + (dr.flip[0] ? P - s0 - L : s0);
    int64_t a = first < 0 ? 0 : first, b = first + L > tc->dim[0] ? tc->dim[0] : first + L;
    int64_t nrows = b > a ? b - a : 0;
    // Source rows [a, b): a channel of the cached case holds all I rows, the scratch nrows.
    const float *img = scr_img;
    const uint8_t *lab = scr_lab;
    int64_t stride_rows = nrows;
    if (tc->img != NULL) {
        img = tc->img + a * tc->dim[1] * tc->dim[2];
        lab = tc->lab + a * tc->dim[1] * tc->dim[2];
        stride_rows = tc->dim[0];
    } else if (nrows > 0) {
        SS_TRY(ss_h5data_read_image(s->d, dr.case_index, a, b, scr_img, err));
        SS_TRY(ss_h5data_read_label(s->d, dr.case_index, a, b, scr_lab, err));
        uint64_t plane = (uint64_t)(tc->dim[1] * tc->dim[2] * nrows);
        s->bytes_read += plane * (uint64_t)(s->nchan * 4 + s->nlabel);
    }
    for (int64_t r = 0; r < L; r++) {
        int64_t vol_row = dr.origin[0] + (dr.flip[0] ? P - 1 - (s0 + r) : s0 + r);
        int64_t src_row = vol_row >= a && vol_row < b ? vol_row - a : -1;
        copy_row(s, &dr, tc, src_row, stride_rows, r, img, lab, image, label);
    }
    return SS_OK;
}

ss_status_t
ss_sampler_fill(const ss_sampler_t *s, uint64_t k, float *image, uint8_t *label, ss_error_t *err)
{
    size_t rows = (size_t)slab_len(s), plane = (size_t)s->max_plane;
    float *img = malloc(rows * plane * (size_t)s->nchan * sizeof(float));
    uint8_t *lab = malloc(rows * plane * (size_t)s->nlabel);
    ss_status_t st = SS_ENOMEM;
    if (img != NULL && lab != NULL) {
        st = fill_into((ss_sampler_t *)s, k, image, label, img, lab, err);
    } else {
        ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__, "sampler: out of memory");
    }
    free(img);
    free(lab);
    return st;
}

// ---- prefetch worker ---------------------------------------------------------------------------
// Slots hold the patch the consumer was last given plus up to `prefetch` patches ahead of it, so
// the worker never overwrites the buffers the caller is reading.

static void *worker_main(void *arg)
{
    ss_sampler_t *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        uint64_t k = s->next_fill;
        // Slots hold patches [floor, floor + nslots): never overwrite the one the caller holds.
        int room = s->active && k < s->floor + (uint64_t)s->nslots;
        if (!room || s->worker_status != SS_OK) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        uint64_t gen = s->generation;
        slot_t *slot = &s->slots[k % (uint64_t)s->nslots];
        slot->ready = 0;
        pthread_mutex_unlock(&s->mu);
        ss_error_t e;
        ss_error_clear(&e);
        ss_status_t st =
            fill_into(s, k, slot->image, slot->label, s->scratch_image[1], s->scratch_label[1], &e);
        pthread_mutex_lock(&s->mu);
        if (gen != s->generation) {
            continue; // the consumer jumped elsewhere meanwhile: this patch is not wanted
        }
        if (st != SS_OK) {
            s->worker_status = st;
            s->worker_err = e;
        } else {
            slot->k = k;
            slot->ready = 1;
            s->next_fill = k + 1;
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

// Each channel's smallest and largest brain (non-zero) value of a cached case, for gamma.
static void brain_range(train_case_t *tc, int nchan)
{
    size_t vox = (size_t)(tc->dim[0] * tc->dim[1] * tc->dim[2]);
    for (int c = 0; c < nchan && c < SS_H5DATA_MAX_CHAN; c++) {
        const float *x = tc->img + (size_t)c * vox;
        float lo = 0, hi = 0;
        int seen = 0;
        for (size_t v = 0; v < vox; v++) {
            if (x[v] != 0.0f) {
                lo = seen && lo < x[v] ? lo : x[v];
                hi = seen && hi > x[v] ? hi : x[v];
                seen = 1;
            }
        }
        tc->lo[c] = lo;
        tc->hi[c] = hi;
    }
}

// Reads every training case whole when they all fit in cfg.cache_bytes (sampler.h).
static ss_status_t load_cache(ss_sampler_t *s, ss_error_t *err)
{
    size_t need = 0;
    for (int t = 0; t < s->ntrain; t++) {
        const train_case_t *tc = &s->cases[t];
        need += (size_t)(tc->dim[0] * tc->dim[1] * tc->dim[2]) *
                ((size_t)s->nchan * sizeof(float) + (size_t)s->nlabel);
    }
    if (s->cfg.cache_bytes == 0 || need > s->cfg.cache_bytes) {
        return SS_OK;
    }
    for (int t = 0; t < s->ntrain; t++) {
        train_case_t *tc = &s->cases[t];
        size_t vox = (size_t)(tc->dim[0] * tc->dim[1] * tc->dim[2]);
        tc->img = malloc(vox * (size_t)s->nchan * sizeof(float));
        tc->lab = malloc(vox * (size_t)s->nlabel);
        if (tc->img == NULL || tc->lab == NULL) {
            SS_FAIL(err, SS_ENOMEM,
                    "sampler: out of memory caching the training cases (%zu MB); lower "
                    "data.cache_mb",
                    need >> 20);
        }
        SS_TRY(ss_h5data_read_image(s->d, tc->index, 0, tc->dim[0], tc->img, err));
        SS_TRY(ss_h5data_read_label(s->d, tc->index, 0, tc->dim[0], tc->lab, err));
        brain_range(tc, s->nchan);
    }
    return SS_OK;
}

static ss_status_t alloc_buffers(ss_sampler_t *s, ss_error_t *err)
{
    const int64_t L = slab_len(s), pj = s->cfg.patch[1], pk = s->cfg.patch[2];
    s->image_floats = (size_t)(s->nchan * L * pj * pk);
    s->label_bytes = (size_t)(s->nlabel * L * pj * pk);
    s->nslots = s->cfg.prefetch > 0 ? s->cfg.prefetch + 1 : 1;
    s->slots = calloc((size_t)s->nslots, sizeof(slot_t));
    int ok = s->slots != NULL;
    for (int i = 0; ok && i < s->nslots; i++) {
        s->slots[i].image = malloc(s->image_floats * sizeof(float));
        s->slots[i].label = malloc(s->label_bytes);
        ok = s->slots[i].image != NULL && s->slots[i].label != NULL;
    }
    size_t rows_plane = (size_t)(L * s->max_plane);
    for (int i = 0; ok && i < 2; i++) {
        s->scratch_image[i] = malloc(rows_plane * (size_t)s->nchan * sizeof(float));
        s->scratch_label[i] = malloc(rows_plane * (size_t)s->nlabel);
        ok = s->scratch_image[i] != NULL && s->scratch_label[i] != NULL;
    }
    if (!ok) {
        SS_FAIL(err, SS_ENOMEM, "sampler: out of memory for %d patch buffers of %zu bytes",
                s->nslots, s->image_floats * sizeof(float) + s->label_bytes);
    }
    return SS_OK;
}

ss_status_t
ss_sampler_create(ss_h5data_t *d, const ss_sampler_config_t *c, ss_sampler_t **out, ss_error_t *err)
{
    *out = NULL;
    SS_TRY(config_check(c, err));
    ss_sampler_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SS_FAIL(err, SS_ENOMEM, "sampler: out of memory");
    }
    s->d = d;
    s->cfg = *c;
    if (s->cfg.fg_samples == 0) {
        s->cfg.fg_samples = 4096;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ss_status_t st = collect_cases(s, err);
    if (st == SS_OK) {
        st = load_cache(s, err);
    }
    if (st == SS_OK && (s->cfg.spatial_p > 0 || s->cfg.gamma_p > 0) && s->cases[0].img == NULL) {
        st = ss_error_set(err, SS_EINVAL, 0, __FILE__, __LINE__, __func__,
                          "data.%s needs the training cases in memory: raise data.cache_mb to "
                          "hold them (image and label of every training case)",
                          s->cfg.spatial_p > 0 ? "spatial_p" : "gamma_p");
    }
    for (int t = 0; st == SS_OK && t < s->ntrain; t++) {
        st = index_foreground(s, &s->cases[t], s->cfg.fg_samples, err);
    }
    if (st == SS_OK) {
        st = alloc_buffers(s, err);
    }
    if (st == SS_OK && s->cfg.prefetch > 0) {
        if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
            st = ss_error_set(err, SS_ENOMEM, 0, __FILE__, __LINE__, __func__,
                              "sampler: cannot start the prefetch thread; use prefetch 0");
        } else {
            s->worker_started = 1;
        }
    }
    if (st != SS_OK) {
        ss_sampler_destroy(&s);
        return st;
    }
    *out = s;
    return SS_OK;
}

void ss_sampler_destroy(ss_sampler_t **ps)
{
    if (ps == NULL || *ps == NULL) {
        return;
    }
    ss_sampler_t *s = *ps;
    if (s->worker_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->worker, NULL);
    }
    for (int i = 0; s->slots != NULL && i < s->nslots; i++) {
        free(s->slots[i].image);
        free(s->slots[i].label);
    }
    free(s->slots);
    for (int i = 0; i < 2; i++) {
        free(s->scratch_image[i]);
        free(s->scratch_label[i]);
    }
    for (int t = 0; s->cases != NULL && t < s->ntrain; t++) {
        free(s->cases[t].fg);
        free(s->cases[t].img);
        free(s->cases[t].lab);
    }
    free(s->cases);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    *ps = NULL;
}

static ss_status_t next_prefetched(ss_sampler_t *s, uint64_t k, slot_t **slot, ss_error_t *err)
{
    pthread_mutex_lock(&s->mu);
    int expected = s->have_current && k == s->floor + 1;
    if (!expected) {
        // First call or a jump (resume at another step): restart the worker at k.
        s->generation++;
        s->next_fill = k;
        s->worker_status = SS_OK;
        for (int i = 0; i < s->nslots; i++) {
            s->slots[i].ready = 0;
        }
    }
    s->floor = k;
    s->active = 1;
    s->have_current = 0;
    pthread_cond_broadcast(&s->cv);
    slot_t *sl = &s->slots[k % (uint64_t)s->nslots];
    while (!(sl->ready && sl->k == k) && s->worker_status == SS_OK) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    ss_status_t st = s->worker_status;
    if (st != SS_OK && err != NULL) {
        *err = s->worker_err;
    }
    s->have_current = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *slot = sl;
    return st;
}

ss_status_t ss_sampler_next(ss_sampler_t *s,
                            uint64_t k,
                            const float **image,
                            const uint8_t **label,
                            double *waited,
                            ss_error_t *err)
{
    double t0 = ss_time_now();
    slot_t *slot = &s->slots[0];
    ss_status_t st;
    if (s->cfg.prefetch > 0) {
        st = next_prefetched(s, k, &slot, err);
    } else {
        st = fill_into(s, k, slot->image, slot->label, s->scratch_image[0], s->scratch_label[0],
                       err);
    }
    if (waited != NULL) {
        *waited = ss_time_now() - t0;
    }
    *image = slot->image;
    *label = slot->label;
    return st;
}

int ss_sampler_nchan(const ss_sampler_t *s)
{
    return s->nchan;
}

int ss_sampler_nlabel(const ss_sampler_t *s)
{
    return s->nlabel;
}

uint64_t ss_sampler_bytes_read(const ss_sampler_t *s)
{
    return s->bytes_read;
}
