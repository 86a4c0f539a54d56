// image.c: the segmentation overlay PNG (three orthogonal slices, legend) drawn with cairo.
#include "shardseg/image.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_impl.h"

// Page layout in pixels: three square panel boxes side by side under a title line, a legend below.
enum { PANEL = 320, MARGIN = 16, TITLE_H = 30, CAPTION_H = 22, LEGEND_H = 34 };

static const double g_class_rgb[4][3] = {
    {0, 0, 0}, {0.90, 0.15, 0.15}, {0.20, 0.80, 0.25}, {1.00, 0.88, 0.10}};
static const double g_binary_rgb[3] = {1.00, 0.45, 0.10};
static const double g_alpha = 0.5;

// A view: which voxel axis runs across the screen (h), up the screen (v), and which is sliced.
typedef struct {
    const char *name;
    int h, v, s;
    int flip_h, flip_v; // 1: screen x (y from the top) runs against the voxel index
} view_t;

// World (RAS) axis each voxel axis runs along most, and its sign; identity when degenerate.
static void voxel_axes(const double a[4][4], int world[3], int sign[3])
{
    int used = 0;
    for (int c = 0; c < 3; c++) {
        int best = 0;
        for (int r = 1; r < 3; r++) {
            best = fabs(a[r][c]) > fabs(a[best][c]) ? r : best;
        }
        world[c] = best;
        sign[c] = a[best][c] < 0 ? -1 : 1;
        used |= a[best][c] != 0 ? 1 << best : 0;
    }
    if (used != 7) {
        for (int c = 0; c < 3; c++) {
            world[c] = c;
            sign[c] = 1;
        }
    }
}

// The view whose screen-right is world axis wh in direction dh and screen-up wv in direction dv.
static view_t
make_view(const char *name, const int world[3], const int sign[3], int wh, int dh, int wv, int dv)
{
    view_t v = {name, 0, 0, 0, 0, 0};
    for (int a = 0; a < 3; a++) {
        v.h = world[a] == wh ? a : v.h;
        v.v = world[a] == wv ? a : v.v;
    }
    v.s = 3 - v.h - v.v;
    v.flip_h = sign[v.h] * dh < 0;
    v.flip_v = sign[v.v] * dv > 0; // index grows upward: it runs against y from the top
    return v;
}

// Radiological views: axial (right on the left, anterior up), coronal (right on the left,
// superior up), sagittal (anterior on the left, superior up).
static void make_views(const ss_overlay_t *o, view_t v[3])
{
    static const double zero[4][4];
    double a[4][4];
    memcpy(a, o->affine, sizeof(a));
    if (memcmp(a, zero, sizeof(a)) == 0) {
        for (int r = 0; r < 4; r++) {
            a[r][r] = 1;
        }
    }
    int world[3], sign[3];
    voxel_axes(a, world, sign);
    v[0] = make_view("axial", world, sign, 0, -1, 1, 1);
    v[1] = make_view("coronal", world, sign, 0, -1, 2, 1);
    v[2] = make_view("sagittal", world, sign, 1, -1, 2, 1);
}

static double spacing_of(const ss_overlay_t *o, int a)
{
    return o->spacing[a] > 0 ? o->spacing[a] : 1.0;
}

void ss_image_overlay_centre(const ss_overlay_t *o, int64_t centre[3])
{
    const int64_t *d = o->dim;
    double sum[3] = {0, 0, 0};
    int64_t n = 0;
    for (int64_t i = 0; o->labels != NULL && i < d[0]; i++) {
        for (int64_t j = 0; j < d[1]; j++) {
            const uint8_t *row = o->labels + (i * d[1] + j) * d[2];
            for (int64_t k = 0; k < d[2]; k++) {
                if (row[k] != 0) {
                    sum[0] += (double)i;
                    sum[1] += (double)j;
                    sum[2] += (double)k;
                    n++;
                }
            }
        }
    }
    for (int a = 0; a < 3; a++) {
        centre[a] = n > 0 ? (int64_t)llround(sum[a] / (double)n) : d[a] / 2;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// Grey window: the 1st and 99.5th percentiles of the non-zero voxels (a strided sample of at
// most ~1M of them), so a few hot voxels do not wash the picture out.
static ss_status_t grey_window(const ss_overlay_t *o, float *lo, float *hi, ss_error_t *err)
{
    const int64_t n = o->dim[0] * o->dim[1] * o->dim[2];
    const int64_t stride = n / (1 << 20) + 1;
    float *s = malloc((size_t)(n / stride + 1) * sizeof(float));
    if (s == NULL) {
        SS_FAIL(err, SS_ENOMEM, "out of memory for the overlay's grey window");
    }
    int64_t m = 0;
    for (int64_t v = 0; v < n; v += stride) {
        float x = o->image[v];
        if (x != 0.0f && isfinite(x)) {
            s[m++] = x;
        }
    }
    *lo = 0.0f;
    *hi = 1.0f;
    if (m > 0) {
        qsort(s, (size_t)m, sizeof(float), cmp_float);
        *lo = s[(int64_t)(0.01 * (double)(m - 1))];
        *hi = s[(int64_t)(0.995 * (double)(m - 1))];
    }
    if (!(*hi > *lo)) {
        *hi = *lo + 1.0f;
    }
    free(s);
    return SS_OK;
}

static const double *class_rgb(const ss_overlay_t *o, uint8_t c)
{
    return o->binary ? g_binary_rgb : g_class_rgb[c <= 3 ? c : 3];
}

// One view's slice at voxel resolution: grey image with the classes blended over it.
static cairo_surface_t *
render_slice(const ss_overlay_t *o, const view_t *v, const int64_t centre[3], float lo, float hi)
{
    const int64_t *d = o->dim;
    const int nh = (int)d[v->h], nv = (int)d[v->v];
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, nh, nv);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        return s;
    }
    unsigned char *px = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    const int64_t vstride[3] = {d[1] * d[2], d[2], 1};
    for (int y = 0; y < nv; y++) {
        uint32_t *row = (uint32_t *)(px + (size_t)y * (size_t)stride);
        for (int x = 0; x < nh; x++) {
            int64_t ih = v->flip_h ? nh - 1 - x : x, iv = v->flip_v ? nv - 1 - y : y;
            int64_t idx = ih * vstride[v->h] + iv * vstride[v->v] + centre[v->s] * vstride[v->s];
            // Exactly 0 is outside the brain (prep's z-score leaves it there): black, not the
            // grey of an average brain voxel.
            double g = o->image[idx] == 0.0f ? 0.0 : ((double)o->image[idx] - lo) / (hi - lo);
            g = isfinite(g) ? fmin(fmax(g, 0.0), 1.0) : 0.0;
            double rgb[3] = {g, g, g};
            uint8_t c = o->labels != NULL ? o->labels[idx] : 0;
            for (int ch = 0; ch < 3 && c != 0; ch++) {
                rgb[ch] = (1 - g_alpha) * g + g_alpha * class_rgb(o, c)[ch];
            }
            row[x] = (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 |
                     (uint32_t)lround(rgb[2] * 255);
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

static void text_at(cairo_t *cr, double x, double y, double size, const char *s)
{
    cairo_set_font_size(cr, size);
    cairo_move_to(cr, x, y);
    cairo_show_text(cr, s);
}

// Draws view number p into its panel box at the common scale (pixels per mm).
static void draw_panel(cairo_t *cr,
                       const ss_overlay_t *o,
                       const view_t *v,
                       int p,
                       cairo_surface_t *slice,
                       double ppmm,
                       const int64_t centre[3])
{
    const double sx = spacing_of(o, v->h) * ppmm, sy = spacing_of(o, v->v) * ppmm;
    const double w = (double)o->dim[v->h] * sx, h = (double)o->dim[v->v] * sy;
    const double bx = MARGIN + p * (PANEL + MARGIN), by = TITLE_H + CAPTION_H;
    cairo_save(cr);
    cairo_translate(cr, bx + (PANEL - w) / 2, by + (PANEL - h) / 2);
    cairo_scale(cr, sx, sy);
    cairo_set_source_surface(cr, slice, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_restore(cr);
    char cap[96];
    static const char axis[3] = {'i', 'j', 'k'};
    snprintf(cap, sizeof(cap), "%s  (%c = %lld)", v->name, axis[v->s], (long long)centre[v->s]);
    cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
    text_at(cr, bx, TITLE_H + CAPTION_H - 6, 13, cap);
}

// Legend: a swatch, the class name and its volume in mL per class present in the map.
static void draw_legend(cairo_t *cr, const ss_overlay_t *o, double y)
{
    static const char *dflt[3] = {"NCR/NET (necrotic / non-enhancing core)", "ED (edema)",
                                  "ET (enhancing tumour)"};
    const int64_t n = o->dim[0] * o->dim[1] * o->dim[2];
    int64_t count[4] = {0, 0, 0, 0};
    for (int64_t v = 0; o->labels != NULL && v < n; v++) {
        count[o->labels[v] <= 3 ? o->labels[v] : 3]++;
    }
    const double ml = spacing_of(o, 0) * spacing_of(o, 1) * spacing_of(o, 2) / 1000.0;
    double x = MARGIN;
    for (int c = 1; c <= (o->binary ? 1 : 3); c++) {
        const double *rgb = class_rgb(o, (uint8_t)c);
        char s[128];
        const char *name =
            o->binary ? "tumour" : (o->class_name[c - 1] ? o->class_name[c - 1] : dflt[c - 1]);
        snprintf(s, sizeof(s), "%s  %.1f mL", name, (double)count[c] * ml);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, x, y - 12, 14, 14);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.92, 0.92, 0.92);
        text_at(cr, x + 20, y, 13, s);
        cairo_text_extents_t te;
        cairo_text_extents(cr, s, &te);
        x += 20 + te.x_advance + 28;
    }
}

static ss_status_t
check_overlay(const char *path, const ss_overlay_t *o, const int64_t *centre, ss_error_t *err)
{
    if (path == NULL || o == NULL || o->image == NULL) {
        SS_FAIL(err, SS_EINVAL, "overlay: path and image are required");
    }
    for (int a = 0; a < 3; a++) {
        if (o->dim[a] < 1 || o->dim[a] > 32767 ||
            (centre != NULL && (centre[a] < 0 || centre[a] >= o->dim[a]))) {
            SS_FAIL(err, SS_EINVAL,
                    "%s: overlay of a %lldx%lldx%lld volume through (%lld, %lld, "
                    "%lld): outside the volume",
                    path, (long long)o->dim[0], (long long)o->dim[1], (long long)o->dim[2],
                    centre ? (long long)centre[0] : 0LL, centre ? (long long)centre[1] : 0LL,
                    centre ? (long long)centre[2] : 0LL);
        }
    }
    return SS_OK;
}

// Draws the whole page onto a new surface (NULL-free: cairo reports failures by status).
static cairo_surface_t *draw_page(const ss_overlay_t *o, const int64_t c[3], float lo, float hi)
{
    view_t v[3];
    make_views(o, v);
    double extent = 1;
    for (int a = 0; a < 3; a++) {
        extent = fmax(extent, (double)o->dim[a] * spacing_of(o, a));
    }
    const double ppmm = PANEL / extent;
    const int width = 3 * PANEL + 4 * MARGIN, height = TITLE_H + CAPTION_H + PANEL + LEGEND_H + 8;
    cairo_surface_t *page = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(page);
    cairo_set_source_rgb(cr, 0.07, 0.07, 0.08);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    for (int p = 0; p < 3; p++) {
        cairo_surface_t *slice = render_slice(o, &v[p], c, lo, hi);
        if (cairo_surface_status(slice) == CAIRO_STATUS_SUCCESS) {
            draw_panel(cr, o, &v[p], p, slice, ppmm, c);
        }
        cairo_surface_destroy(slice);
    }
    char title[256];
    snprintf(title, sizeof(title), "%s   slices through (%lld, %lld, %lld), radiological view",
             o->title ? o->title : "segmentation", (long long)c[0], (long long)c[1],
             (long long)c[2]);
    cairo_set_source_rgb(cr, 1, 1, 1);
    text_at(cr, MARGIN, TITLE_H - 8, 16, title);
    if (o->labels != NULL) {
        draw_legend(cr, o, TITLE_H + CAPTION_H + PANEL + 24);
    }
    cairo_destroy(cr);
    return page;
}

ss_status_t ss_image_overlay_png(const char *path,
                                 const ss_overlay_t *o,
                                 const int64_t *centre,
                                 ss_error_t *err)
{
    SS_TRY(check_overlay(path, o, centre, err));
    int64_t c[3];
    if (centre != NULL) {
        memcpy(c, centre, sizeof(c));
    } else {
        ss_image_overlay_centre(o, c);
    }
    float lo = 0.0f, hi = 1.0f;
    SS_TRY(grey_window(o, &lo, &hi, err));
    cairo_surface_t *page = draw_page(o, c, lo, hi);
    ss_status_t rc = ss__train_write_png(page, path, err);
    cairo_surface_destroy(page);
    return rc;
}
