// plot.h: small line charts drawn with cairo into one PNG page (learning curves of
// `shardseg report`, reusable for any x/y series).
//
// A page (ss_plot_t) is a white RGB canvas of a fixed pixel size. On it the caller draws panels,
// each a framed chart with numbered ticks, axis labels, a title and a legend, from a list of
// series, plus free text; then writes the page as a PNG, atomically. Text uses cairo's toy API
// with the "DejaVu Sans" face (fonts-dejavu-core).
//
// Values: non-finite y values (NaN for a missing metric) break a polyline instead of being
// drawn; on a logarithmic axis so do values <= 0.
//
// Ownership: the page owns its cairo surface; series and axes descriptions are borrowed for the
// duration of a call. Threading: one page belongs to one thread.
#ifndef SS_PLOT_H
#define SS_PLOT_H

#include <stdint.h>

#include "shardseg/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_plot ss_plot_t;

typedef struct {
    double r, g, b, a; // each in [0, 1]
} ss_plot_color_t;

// The colour-blind-safe categorical palette (Tableau 10 order: blue, orange, green, red,
// purple, brown, pink, grey, olive, cyan); i wraps around.
ss_plot_color_t ss_plot_palette(int i);

typedef enum {
    SS_PLOT_LEGEND_NONE = 0,
    SS_PLOT_LEGEND_NE, // upper right inside the plot area
    SS_PLOT_LEGEND_NW,
    SS_PLOT_LEGEND_SE,
    SS_PLOT_LEGEND_SW,
    SS_PLOT_LEGEND_BEST,  // the corner that hides the fewest data points (the default)
    SS_PLOT_LEGEND_ABOVE, // one row on the title line, right-aligned; BEST when it does not fit
} ss_plot_legend_t;

// One polyline. x and y hold n values (borrowed). label NULL keeps it out of the legend.
typedef struct {
    const double *x, *y;
    int64_t n;
    ss_plot_color_t color;
    double width;      // line width in pixels (0: 2)
    int markers;       // 1: a dot at every point
    const char *label; // legend text or NULL
} ss_plot_series_t;

// A panel: its outer rectangle on the page (labels included) and its axes. A range bound that is
// NaN is taken from the data (y with 5% headroom); ylog draws y on a log10 axis.
typedef struct {
    double x, y, w, h; // outer rectangle, pixels from the top-left corner of the page
    const char *title, *xlabel, *ylabel;
    double xmin, xmax, ymin, ymax;
    int ylog;
    int xinteger; // ticks on integers only (step counts)
    ss_plot_legend_t legend;
} ss_plot_axes_t;

// Fills an axes description with NaN ranges, linear axes, the BEST legend corner and the given
// rectangle.
void ss_plot_axes_init(ss_plot_axes_t *ax, double x, double y, double w, double h);

// Linear tick positions: the first multiple of step at or above lo, then every step up to hi,
// with step a 1, 2, 2.5 or 5 times a power of ten chosen so that at most max_ticks fit
// (at least 2). decimals: the digits after the point that print every tick exactly.
typedef struct {
    double first, step;
    int n, decimals;
} ss_plot_ticks_t;
void ss_plot_nice_ticks(double lo, double hi, int max_ticks, ss_plot_ticks_t *t);

// A white page of width x height pixels (each 64..8192). SS_EINVAL for a bad size, SS_ENOMEM
// when cairo cannot allocate it.
ss_status_t ss_plot_create(int width, int height, ss_plot_t **out, ss_error_t *err);
// Frees the page; accepts NULL and sets *pp = NULL.
void ss_plot_destroy(ss_plot_t **pp);

// Draws one panel of ns series. Series with no drawable point are skipped (their legend entry
// stays, so a metric that is all null is visibly absent rather than missing); with no drawable
// point at all the panel says "no data".
void ss_plot_panel(ss_plot_t *p, const ss_plot_axes_t *ax, const ss_plot_series_t *s, int ns);

// The top and bottom of the frame ss_plot_panel draws for ax (they depend on the rectangle, the
// title and the x label only), so that a text block beside a panel can line up with it.
void ss_plot_frame_rows(const ss_plot_axes_t *ax, double *top, double *bottom);

typedef enum {
    SS_PLOT_TEXT_LEFT = 0,
    SS_PLOT_TEXT_CENTER = 1,
    SS_PLOT_TEXT_RIGHT = 2,
    SS_PLOT_TEXT_BOLD = 4, // or'd with one of the alignments
    SS_PLOT_TEXT_MONO = 8, // "DejaVu Sans Mono"
} ss_plot_text_flags_t;

// Text with its baseline at y, left / centre / right aligned on x, size in pixels.
void ss_plot_text(ss_plot_t *p,
                  double x,
                  double y,
                  double size,
                  int flags,
                  ss_plot_color_t color,
                  const char *text);
// Width in pixels that ss_plot_text would use for text.
double ss_plot_text_width(ss_plot_t *p, double size, int flags, const char *text);
// A filled rectangle (a = 0: none) with an outline (width 0: none).
void ss_plot_rect(ss_plot_t *p,
                  double x,
                  double y,
                  double w,
                  double h,
                  ss_plot_color_t fill,
                  ss_plot_color_t line,
                  double width);

// Writes the page as a PNG to path: a temporary file in the same directory, fsync'd and renamed,
// so path is either absent, its old content or the whole new picture. SS_EINVAL naming path when
// the directory cannot be written to, SS_EIO when writing fails (the temporary file is removed),
// SS_ENOMEM when drawing ran out of memory.
ss_status_t ss_plot_write_png(ss_plot_t *p, const char *path, ss_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
