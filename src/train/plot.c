// plot: line charts on a cairo image surface (plot.h).
#include "shardseg/plot.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train_impl.h"

struct ss_plot {
    cairo_surface_t *surf;
    cairo_t *cr;
};

// Pixel sizes of the chart furniture, chosen for a page about 1800 pixels wide.
#define TICK_FONT   15.0
#define LABEL_FONT  17.0
#define TITLE_FONT  19.0
#define LEGEND_FONT 15.0
#define TICK_LEN    6.0
#define PLOT_PI     3.14159265358979323846

static const ss_plot_color_t g_ink = {0.15, 0.15, 0.15, 1};
static const ss_plot_color_t g_grid = {0.88, 0.88, 0.88, 1};
static const ss_plot_color_t g_minor = {0.94, 0.94, 0.94, 1};
static const ss_plot_color_t g_frame = {0.55, 0.55, 0.55, 1};

ss_plot_color_t ss_plot_palette(int i)
{
    static const unsigned rgb[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    unsigned c = rgb[((i % 10) + 10) % 10];
    ss_plot_color_t k = {((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0, 1};
    return k;
}

void ss_plot_axes_init(ss_plot_axes_t *ax, double x, double y, double w, double h)
{
    memset(ax, 0, sizeof(*ax));
    ax->x = x;
    ax->y = y;
    ax->w = w;
    ax->h = h;
    ax->xmin = ax->xmax = ax->ymin = ax->ymax = NAN;
    ax->legend = SS_PLOT_LEGEND_BEST;
}

// --- Ticks -------------------------------------------------------------------------------------

// Digits after the point that print every multiple of step exactly (2.5e-3 needs 4).
static int step_decimals(double step)
{
    int d = 0;
    while (d < 12 && fabs(step * pow(10, d) - nearbyint(step * pow(10, d))) > 1e-6) {
        d++;
    }
    return d;
}

void ss_plot_nice_ticks(double lo, double hi, int max_ticks, ss_plot_ticks_t *t)
{
    static const double mult[4] = {1, 2, 2.5, 5};
    if (max_ticks < 2) {
        max_ticks = 2;
    }
    if (!(hi > lo)) {
        hi = lo + 1;
    }
    double p = pow(10, floor(log10((hi - lo) / max_ticks)));
    double step = 10 * p;
    for (int i = 0; i < 4; i++) {
        double s = mult[i] * p;
        // A small tolerance keeps end points that equal a multiple up to rounding.
        if (floor(hi / s + 1e-9) - ceil(lo / s - 1e-9) + 1 <= max_ticks) {
            step = s;
            break;
        }
    }
    t->step = step;
    t->first = ceil(lo / step - 1e-9) * step;
    t->n = (int)(floor(hi / step + 1e-9) - ceil(lo / step - 1e-9)) + 1;
    t->decimals = step_decimals(step);
}

// A tick value with `decimals` digits, never "-0".
static void fmt_tick(char *buf, size_t len, double v, int decimals)
{
    snprintf(buf, len, "%.*f", decimals, v);
    if (strspn(buf, "-0.") == strlen(buf) && buf[0] == '-') {
        memmove(buf, buf + 1, strlen(buf));
    }
}

// A power-of-ten tick (m * 10^k, m in 1..9): plain decimals between 0.001 and 10^5, else "2e-5".
static void fmt_log_tick(char *buf, size_t len, int m, int k)
{
    if (k >= -3 && k < 5) {
        fmt_tick(buf, len, m * pow(10, k), k < 0 ? -k : 0);
    } else {
        snprintf(buf, len, "%de%d", m, k);
    }
}

// One axis: the value range (log10 of it on a log axis) and where it lies on the page.
typedef struct {
    double lo, hi, p0, p1;
    int log;
    int scale_exp; // linear ticks show v / 10^scale_exp ("x1e-4" printed by the axis)
} axis_t;

static double axis_map(const axis_t *a, double v)
{
    if (a->log) {
        v = log10(v);
    }
    return a->p0 + (v - a->lo) * (a->p1 - a->p0) / (a->hi - a->lo);
}

typedef struct {
    double v[64];      // positions in axis units (log10 on a log axis)
    char text[64][24]; // labels; "" for an unlabelled minor line
    int n;
} tick_list_t;

static void tick_add(tick_list_t *tl, double v, const char *text)
{
    if (tl->n < 64) {
        tl->v[tl->n] = v;
        snprintf(tl->text[tl->n], sizeof(tl->text[0]), "%s", text);
        tl->n++;
    }
}

static void linear_ticks(const axis_t *a, int max_ticks, int integer, tick_list_t *tl)
{
    double s = pow(10, a->scale_exp);
    ss_plot_ticks_t t;
    ss_plot_nice_ticks(a->lo / s, a->hi / s, max_ticks, &t);
    if (integer && t.step < 1) {
        t.step = 1;
        t.first = ceil(a->lo - 1e-9);
        t.n = (int)(floor(a->hi + 1e-9) - t.first) + 1;
        t.decimals = 0;
    }
    for (int i = 0; i < t.n; i++) {
        char buf[24];
        double v = t.first + i * t.step;
        fmt_tick(buf, sizeof(buf), v, t.decimals);
        tick_add(tl, v * s, buf);
    }
}

static int in_set(const int *set, int n, int m)
{
    for (int i = 0; i < n; i++) {
        if (set[i] == m) {
            return 1;
        }
    }
    return 0;
}

// Decades, then 1-2-5 or every mantissa when few decades show; a range of less than a decade
// gets linear ticks placed on the log axis (a decade's mantissas would leave part unlabelled).
static void log_ticks(const axis_t *a, int max_ticks, tick_list_t *tl)
{
    static const int sets[3][10] = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int nset[3] = {1, 3, 9};
    int k0 = (int)floor(a->lo), k1 = (int)ceil(a->hi), best = -1;
    for (int s = 2; s >= 0 && best < 0 && a->hi - a->lo >= 1; s--) {
        int count = 0;
        for (int k = k0; k <= k1; k++) {
            for (int j = 0; j < nset[s]; j++) {
                double v = k + log10(sets[s][j]);
                count += v >= a->lo - 1e-9 && v <= a->hi + 1e-9;
            }
        }
        best = count <= max_ticks && count >= 2 ? s : -1;
    }
    if (a->hi - a->lo < 1) {
        // Linear ticks crowd towards the top of a log axis: fewer of them.
        axis_t lin = {pow(10, a->lo), pow(10, a->hi), 0, 1, 0, 0};
        linear_ticks(&lin, max_ticks * 2 / 3, 0, tl);
        for (int i = 0; i < tl->n; i++) {
            tl->v[i] = tl->v[i] > 0 ? log10(tl->v[i]) : a->lo - 1;
        }
        return;
    }
    int every = best < 0 ? (k1 - k0 + max_ticks - 1) / max_ticks : 1;
    // Unlabelled minor lines at 2..9 when only decades are labelled and few of them show.
    int minors = best == 0 && k1 - k0 <= 6;
    for (int k = k0; k <= k1; k++) {
        for (int m = 1; m <= 9; m++) {
            double v = k + log10(m);
            int labelled = best < 0 ? m == 1 && ((k % every) + every) % every == 0
                                    : in_set(sets[best], nset[best], m);
            if (v < a->lo - 1e-9 || v > a->hi + 1e-9 || (!labelled && !minors)) {
                continue;
            }
            char buf[24] = "";
            if (labelled) {
                fmt_log_tick(buf, sizeof(buf), m, k);
            }
            tick_add(tl, v, buf);
        }
    }
}

// --- Ranges ------------------------------------------------------------------------------------

static int drawable(double x, double y, int ylog)
{
    return isfinite(x) && isfinite(y) && (!ylog || y > 0);
}

// Range of the drawable x (which = 0) or y values; the number of drawable points.
static int64_t
data_range(const ss_plot_series_t *s, int ns, int ylog, int which, double *lo, double *hi)
{
    int64_t count = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < ns; i++) {
        for (int64_t j = 0; j < s[i].n; j++) {
            if (!drawable(s[i].x[j], s[i].y[j], ylog)) {
                continue;
            }
            double v = which ? s[i].y[j] : s[i].x[j];
            *lo = fmin(*lo, v);
            *hi = fmax(*hi, v);
            count++;
        }
    }
    return count;
}

static void resolve_x(axis_t *a, const ss_plot_axes_t *ax, const ss_plot_series_t *s, int ns)
{
    double lo, hi;
    if (data_range(s, ns, ax->ylog, 0, &lo, &hi) == 0) {
        lo = 0;
        hi = 1;
    }
    lo = isfinite(ax->xmin) ? ax->xmin : lo;
    hi = isfinite(ax->xmax) ? ax->xmax : hi;
    if (!(hi > lo)) {
        lo -= 0.5;
        hi = lo + 1;
    }
    a->lo = lo;
    a->hi = hi;
    a->log = 0;
    a->scale_exp = 0;
}

static void resolve_y(axis_t *a, const ss_plot_axes_t *ax, const ss_plot_series_t *s, int ns)
{
    double lo, hi;
    int log = ax->ylog;
    if (data_range(s, ns, log, 1, &lo, &hi) == 0) {
        lo = log ? 0.1 : 0;
        hi = 1;
    }
    if (log) {
        lo = log10(lo);
        hi = log10(hi);
    }
    // 5% headroom on the sides taken from the data, so lines do not run along the frame.
    double pad = hi > lo ? 0.05 * (hi - lo) : log ? 0.5 : lo != 0 ? 0.1 * fabs(lo) : 0.5;
    double fixlo = log ? log10(ax->ymin) : ax->ymin, fixhi = log ? log10(ax->ymax) : ax->ymax;
    lo = isfinite(fixlo) ? fixlo : lo - pad;
    hi = isfinite(fixhi) ? fixhi : hi + pad;
    if (!(hi > lo)) {
        hi = lo + 1;
    }
    a->lo = lo;
    a->hi = hi;
    a->log = log;
    double big = fmax(fabs(lo), fabs(hi));
    a->scale_exp = !log && big > 0 && (big < 1e-2 || big >= 1e6) ? (int)floor(log10(big)) : 0;
}

// --- Drawing primitives ------------------------------------------------------------------------

static void set_color(cairo_t *cr, ss_plot_color_t c)
{
    cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a);
}

static void set_font(cairo_t *cr, double size, int flags)
{
    cairo_select_font_face(cr, (flags & SS_PLOT_TEXT_MONO) ? "DejaVu Sans Mono" : "DejaVu Sans",
                           CAIRO_FONT_SLANT_NORMAL,
                           (flags & SS_PLOT_TEXT_BOLD) ? CAIRO_FONT_WEIGHT_BOLD
                                                       : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double ss_plot_text_width(ss_plot_t *p, double size, int flags, const char *text)
{
    cairo_text_extents_t e;
    set_font(p->cr, size, flags);
    cairo_text_extents(p->cr, text, &e);
    return e.x_advance;
}

void ss_plot_text(ss_plot_t *p,
                  double x,
                  double y,
                  double size,
                  int flags,
                  ss_plot_color_t color,
                  const char *text)
{
    double w = ss_plot_text_width(p, size, flags, text);
    int align = flags & 3;
    cairo_move_to(p->cr,
                  x - (align == SS_PLOT_TEXT_CENTER  ? w / 2
                       : align == SS_PLOT_TEXT_RIGHT ? w
                                                     : 0),
                  y);
    set_color(p->cr, color);
    cairo_show_text(p->cr, text);
}

void ss_plot_rect(ss_plot_t *p,
                  double x,
                  double y,
                  double w,
                  double h,
                  ss_plot_color_t fill,
                  ss_plot_color_t line,
                  double width)
{
    cairo_rectangle(p->cr, x, y, w, h);
    if (fill.a > 0) {
        set_color(p->cr, fill);
        cairo_fill_preserve(p->cr);
    }
    if (width > 0) {
        set_color(p->cr, line);
        cairo_set_line_width(p->cr, width);
        cairo_stroke_preserve(p->cr);
    }
    cairo_new_path(p->cr);
}

// A crisp 1-pixel line: coordinates on pixel centres.
static void hairline(cairo_t *cr, double x0, double y0, double x1, double y1, ss_plot_color_t c)
{
    set_color(cr, c);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, floor(x0) + 0.5, floor(y0) + 0.5);
    cairo_line_to(cr, floor(x1) + 0.5, floor(y1) + 0.5);
    cairo_stroke(cr);
}

// --- Panels ------------------------------------------------------------------------------------

// The plot area inside a panel's outer rectangle.
typedef struct {
    double x0, y0, x1, y1; // left, top, right, bottom
} area_t;

static void draw_y_ticks(ss_plot_t *p, const area_t *r, const axis_t *a, const tick_list_t *tl)
{
    for (int i = 0; i < tl->n; i++) {
        double y = a->p0 + (tl->v[i] - a->lo) * (a->p1 - a->p0) / (a->hi - a->lo);
        int major = tl->text[i][0] != '\0';
        hairline(p->cr, r->x0, y, r->x1, y, major ? g_grid : g_minor);
        if (major) {
            hairline(p->cr, r->x0 - TICK_LEN, y, r->x0, y, g_frame);
            ss_plot_text(p, r->x0 - TICK_LEN - 4, y + 0.36 * TICK_FONT, TICK_FONT,
                         SS_PLOT_TEXT_RIGHT, g_ink, tl->text[i]);
        }
    }
    if (a->scale_exp != 0) {
        char buf[32];
        snprintf(buf, sizeof(buf),
                 "\xc3\x97"
                 "1e%d",
                 a->scale_exp);
        ss_plot_text(p, r->x0, r->y0 - 6, TICK_FONT, SS_PLOT_TEXT_LEFT, g_ink, buf);
    }
}

static void draw_x_ticks(ss_plot_t *p, const area_t *r, const axis_t *a, const tick_list_t *tl)
{
    for (int i = 0; i < tl->n; i++) {
        double x = a->p0 + (tl->v[i] - a->lo) * (a->p1 - a->p0) / (a->hi - a->lo);
        hairline(p->cr, x, r->y0, x, r->y1, g_grid);
        hairline(p->cr, x, r->y1, x, r->y1 + TICK_LEN, g_frame);
        ss_plot_text(p, x, r->y1 + TICK_LEN + TICK_FONT + 2, TICK_FONT, SS_PLOT_TEXT_CENTER, g_ink,
                     tl->text[i]);
    }
}

static double widest_label(ss_plot_t *p, const tick_list_t *tl)
{
    double w = 0;
    for (int i = 0; i < tl->n; i++) {
        w = fmax(w, ss_plot_text_width(p, TICK_FONT, 0, tl->text[i]));
    }
    return w;
}

static void draw_ylabel(ss_plot_t *p, double x, double yc, const char *text)
{
    cairo_save(p->cr);
    cairo_translate(p->cr, x, yc);
    cairo_rotate(p->cr, -PLOT_PI / 2);
    ss_plot_text(p, 0, 0, LABEL_FONT, SS_PLOT_TEXT_CENTER, g_ink, text);
    cairo_restore(p->cr);
}

static int inside(const axis_t *ax, const axis_t *ay, double x, double y)
{
    double v = ay->log ? log10(y) : y, eps = 1e-9 * (ay->hi - ay->lo);
    return x >= ax->lo - 1e-9 * (ax->hi - ax->lo) && x <= ax->hi + 1e-9 * (ax->hi - ax->lo) &&
           v >= ay->lo - eps && v <= ay->hi + eps;
}

// Lines clipped to the plot area r, then the markers.
static void draw_series(
    ss_plot_t *p, const area_t *r, const axis_t *ax, const axis_t *ay, const ss_plot_series_t *s)
{
    cairo_t *cr = p->cr;
    cairo_save(cr);
    cairo_rectangle(cr, r->x0, r->y0, r->x1 - r->x0, r->y1 - r->y0);
    cairo_clip(cr);
    double width = s->width > 0 ? s->width : 2;
    int open = 0;
    set_color(cr, s->color);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int64_t j = 0; j < s->n; j++) {
        if (!drawable(s->x[j], s->y[j], ay->log)) {
            open = 0;
            continue;
        }
        double x = axis_map(ax, s->x[j]), y = axis_map(ay, s->y[j]);
        open ? cairo_line_to(cr, x, y) : cairo_move_to(cr, x, y);
        open = 1;
    }
    cairo_stroke(cr);
    cairo_restore(cr); // markers are not clipped: a dot on the frame stays round
    set_color(cr, s->color);
    for (int64_t j = 0; j < s->n; j++) {
        if (!inside(ax, ay, s->x[j], s->y[j])) {
            continue;
        }
        int alone = (j == 0 || !drawable(s->x[j - 1], s->y[j - 1], ay->log)) &&
                    (j + 1 == s->n || !drawable(s->x[j + 1], s->y[j + 1], ay->log));
        if ((s->markers || alone) && drawable(s->x[j], s->y[j], ay->log)) {
            cairo_arc(cr, axis_map(ax, s->x[j]), axis_map(ay, s->y[j]), 1.6 * width + 1.5, 0,
                      2 * PLOT_PI);
            cairo_fill(cr);
        }
    }
}

// Legend box size for the labelled series.
static int legend_size(ss_plot_t *p, const ss_plot_series_t *s, int ns, double *w, double *h)
{
    int n = 0;
    double tw = 0;
    for (int i = 0; i < ns; i++) {
        if (s[i].label != NULL) {
            tw = fmax(tw, ss_plot_text_width(p, LEGEND_FONT, 0, s[i].label));
            n++;
        }
    }
    *w = 10 + 28 + tw + 12;
    *h = 8 + n * (LEGEND_FONT + 7) + 4;
    return n;
}

static void
legend_origin(const area_t *r, ss_plot_legend_t pos, double w, double h, double *x, double *y)
{
    int east = pos == SS_PLOT_LEGEND_NE || pos == SS_PLOT_LEGEND_SE;
    int north = pos == SS_PLOT_LEGEND_NE || pos == SS_PLOT_LEGEND_NW;
    *x = east ? r->x1 - 10 - w : r->x0 + 10;
    *y = north ? r->y0 + 10 : r->y1 - 10 - h;
}

// How much of the data a legend box at (x, y, w, h) would hide: drawable points and points
// interpolated along each segment, so that a sparse line crossing the box counts too.
static int64_t covered(const axis_t *ax,
                       const axis_t *ay,
                       const ss_plot_series_t *s,
                       int ns,
                       double x,
                       double y,
                       double w,
                       double h)
{
    int64_t hits = 0;
    for (int i = 0; i < ns; i++) {
        for (int64_t j = 0; j < s[i].n; j++) {
            if (!drawable(s[i].x[j], s[i].y[j], ay->log)) {
                continue;
            }
            double px = axis_map(ax, s[i].x[j]), py = axis_map(ay, s[i].y[j]);
            int next = j + 1 < s[i].n && drawable(s[i].x[j + 1], s[i].y[j + 1], ay->log);
            double qx = next ? axis_map(ax, s[i].x[j + 1]) : px;
            double qy = next ? axis_map(ay, s[i].y[j + 1]) : py;
            for (int k = 0; k < 8; k++) {
                double sx = px + (qx - px) * k / 8, sy = py + (qy - py) * k / 8;
                hits += sx >= x && sx <= x + w && sy >= y && sy <= y + h;
            }
        }
    }
    return hits;
}

// A legend entry (a stroke of the series' colour, then its label) with its text baseline at
// (x + 28, base); returns the entry's width.
static double legend_entry(ss_plot_t *p, double x, double base, const ss_plot_series_t *s)
{
    ss_plot_color_t c = s->color;
    c.a = fmax(c.a, 0.6);
    set_color(p->cr, c);
    cairo_set_line_width(p->cr, fmax(s->width, 2.5));
    cairo_move_to(p->cr, x, base - 0.33 * LEGEND_FONT);
    cairo_line_to(p->cr, x + 22, base - 0.33 * LEGEND_FONT);
    cairo_stroke(p->cr);
    if (s->markers) {
        cairo_arc(p->cr, x + 11, base - 0.33 * LEGEND_FONT, 1.6 * fmax(s->width, 1) + 1.5, 0,
                  2 * PLOT_PI);
        cairo_fill(p->cr);
    }
    ss_plot_text(p, x + 28, base, LEGEND_FONT, 0, g_ink, s->label);
    return 28 + ss_plot_text_width(p, LEGEND_FONT, 0, s->label);
}

// One row right-aligned on the title line; 0 (nothing drawn) when it would reach the title.
static int legend_above(
    ss_plot_t *p, const area_t *r, const ss_plot_axes_t *axd, const ss_plot_series_t *s, int ns)
{
    const double gap = 22;
    double total = 0, title = axd->title ? ss_plot_text_width(p, TITLE_FONT, 1, axd->title) : 0;
    for (int i = 0; i < ns; i++) {
        total += s[i].label ? 28 + ss_plot_text_width(p, LEGEND_FONT, 0, s[i].label) + gap : 0;
    }
    double x = r->x1 - total + gap;
    if (x < r->x0 + title + 2 * gap) {
        return 0;
    }
    for (int i = 0; i < ns; i++) {
        if (s[i].label != NULL) {
            x += legend_entry(p, x, axd->y + 24, &s[i]) + gap;
        }
    }
    return 1;
}

static void draw_legend(ss_plot_t *p,
                        const area_t *r,
                        const ss_plot_axes_t *axd,
                        const axis_t *ax,
                        const axis_t *ay,
                        const ss_plot_series_t *s,
                        int ns)
{
    double w, h, x, y;
    if (axd->legend == SS_PLOT_LEGEND_NONE || legend_size(p, s, ns, &w, &h) == 0 ||
        (axd->legend == SS_PLOT_LEGEND_ABOVE && legend_above(p, r, axd, s, ns))) {
        return;
    }
    ss_plot_legend_t pos = axd->legend;
    if (pos == SS_PLOT_LEGEND_BEST || pos == SS_PLOT_LEGEND_ABOVE) {
        int64_t least = -1;
        for (int c = SS_PLOT_LEGEND_NE; c <= SS_PLOT_LEGEND_SW; c++) {
            legend_origin(r, (ss_plot_legend_t)c, w, h, &x, &y);
            int64_t n = covered(ax, ay, s, ns, x, y, w, h);
            if (least < 0 || n < least) {
                least = n;
                pos = (ss_plot_legend_t)c;
            }
        }
    }
    legend_origin(r, pos, w, h, &x, &y);
    ss_plot_color_t bg = {1, 1, 1, 0.88};
    ss_plot_rect(p, floor(x) + 0.5, floor(y) + 0.5, floor(w), floor(h), bg, g_grid, 1);
    double row = y + 8 + LEGEND_FONT;
    for (int i = 0; i < ns; i++) {
        if (s[i].label != NULL) {
            legend_entry(p, x + 10, row, &s[i]);
            row += LEGEND_FONT + 7;
        }
    }
}

void ss_plot_frame_rows(const ss_plot_axes_t *ax, double *top, double *bottom)
{
    *top = ax->y + (ax->title ? 48 : 16);
    *bottom = ax->y + ax->h - TICK_LEN - TICK_FONT - 10 - (ax->xlabel ? LABEL_FONT + 12 : 0);
}

// Lays out the plot area and the two axes: y ticks first (they set the left margin), then x.
static void layout(ss_plot_t *p,
                   const ss_plot_axes_t *axd,
                   const ss_plot_series_t *s,
                   int ns,
                   area_t *r,
                   axis_t *ax,
                   axis_t *ay,
                   tick_list_t *tx,
                   tick_list_t *ty)
{
    ss_plot_frame_rows(axd, &r->y0, &r->y1);
    resolve_y(ay, axd, s, ns);
    ay->p0 = r->y1;
    ay->p1 = r->y0;
    int ymax = (int)((r->y1 - r->y0) / 45) + 1;
    ay->log ? log_ticks(ay, ymax, ty) : linear_ticks(ay, ymax, 0, ty);
    // At least four digits' room, so that panels stacked on a page usually line up.
    double labels = fmax(widest_label(p, ty), ss_plot_text_width(p, TICK_FONT, 0, "0.00"));
    r->x0 = axd->x + labels + TICK_LEN + 10 + (axd->ylabel ? LABEL_FONT + 12 : 0);
    r->x1 = axd->x + axd->w - 16;
    resolve_x(ax, axd, s, ns);
    ax->p0 = r->x0;
    ax->p1 = r->x1;
    linear_ticks(ax, (int)((r->x1 - r->x0) / 90) + 1, axd->xinteger, tx);
}

void ss_plot_panel(ss_plot_t *p, const ss_plot_axes_t *axd, const ss_plot_series_t *s, int ns)
{
    area_t r;
    axis_t ax, ay;
    tick_list_t tx = {.n = 0}, ty = {.n = 0};
    layout(p, axd, s, ns, &r, &ax, &ay, &tx, &ty);
    ss_plot_color_t white = {1, 1, 1, 1};
    ss_plot_rect(p, r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0, white, white, 0);
    draw_y_ticks(p, &r, &ay, &ty);
    draw_x_ticks(p, &r, &ax, &tx);
    double lo, hi;
    int64_t points = data_range(s, ns, ay.log, 1, &lo, &hi);
    for (int i = 0; i < ns; i++) {
        draw_series(p, &r, &ax, &ay, &s[i]);
    }
    if (points == 0) {
        ss_plot_text(p, (r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, LABEL_FONT, SS_PLOT_TEXT_CENTER,
                     g_frame, "no data");
    }
    ss_plot_color_t none = {0, 0, 0, 0};
    ss_plot_rect(p, floor(r.x0) + 0.5, floor(r.y0) + 0.5, floor(r.x1 - r.x0), floor(r.y1 - r.y0),
                 none, g_frame, 1);
    draw_legend(p, &r, axd, &ax, &ay, s, ns);
    if (axd->title) {
        ss_plot_text(p, r.x0, axd->y + 24, TITLE_FONT, SS_PLOT_TEXT_BOLD, g_ink, axd->title);
    }
    if (axd->xlabel) {
        ss_plot_text(p, (r.x0 + r.x1) / 2, axd->y + axd->h - 8, LABEL_FONT, SS_PLOT_TEXT_CENTER,
                     g_ink, axd->xlabel);
    }
    if (axd->ylabel) {
        draw_ylabel(p, axd->x + LABEL_FONT, (r.y0 + r.y1) / 2, axd->ylabel);
    }
}

// --- Page --------------------------------------------------------------------------------------

ss_status_t ss_plot_create(int width, int height, ss_plot_t **out, ss_error_t *err)
{
    *out = NULL;
    if (width < 64 || width > 8192 || height < 64 || height > 8192) {
        SS_FAIL(err, SS_EINVAL, "plot: %dx%d pixels; each side must be 64..8192", width, height);
    }
    ss_plot_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        SS_FAIL(err, SS_ENOMEM, "plot: out of memory for a %dx%d page", width, height);
    }
    p->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    p->cr = cairo_create(p->surf);
    if (cairo_status(p->cr) != CAIRO_STATUS_SUCCESS) {
        ss_plot_destroy(&p);
        SS_FAIL(err, SS_ENOMEM, "plot: cairo cannot allocate a %dx%d page", width, height);
    }
    cairo_set_source_rgb(p->cr, 1, 1, 1);
    cairo_paint(p->cr);
    *out = p;
    return SS_OK;
}

void ss_plot_destroy(ss_plot_t **pp)
{
    if (pp == NULL || *pp == NULL) {
        return;
    }
    cairo_destroy((*pp)->cr);
    cairo_surface_destroy((*pp)->surf);
    free(*pp);
    *pp = NULL;
}

static cairo_status_t write_cb(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

ss_status_t ss_plot_write_png(ss_plot_t *p, const char *path, ss_error_t *err)
{
    if (cairo_status(p->cr) != CAIRO_STATUS_SUCCESS) {
        SS_FAIL(err, SS_ENOMEM, "%s: drawing failed (%s); nothing was written", path,
                cairo_status_to_string(cairo_status(p->cr)));
    }
    return ss__train_write_png(p->surf, path, err);
}

ss_status_t ss__train_write_png(void *surface, const char *path, ss_error_t *err)
{
    cairo_surface_t *surf = surface;
    char tmp[4200];
    if (cairo_surface_status(surf) != CAIRO_STATUS_SUCCESS) {
        SS_FAIL(err, SS_ENOMEM, "%s: drawing failed (%s); nothing was written", path,
                cairo_status_to_string(cairo_surface_status(surf)));
    }
    SS_TRY(ss__train_tmp_path(tmp, sizeof(tmp), path, err));
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        int e = errno;
        SS_FAIL_LIB(err, SS_EINVAL, e,
                    "%s: cannot write: %s; check that the directory exists and is writable", path,
                    strerror(e));
    }
    cairo_surface_flush(surf);
    cairo_status_t cs = cairo_surface_write_to_png_stream(surf, write_cb, f);
    int e = ferror(f) ? errno : 0;
    if (fclose(f) != 0 && e == 0) {
        e = errno;
    }
    if (cs != CAIRO_STATUS_SUCCESS || e != 0) {
        unlink(tmp);
        SS_FAIL_LIB(err, SS_EIO, e,
                    "%s: writing failed (%s); check free space; nothing was written", path,
                    e ? strerror(e) : cairo_status_to_string(cs));
    }
    return ss__train_commit(tmp, path, err);
}
