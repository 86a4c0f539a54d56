// conv3d_direct.c: unit-stride 3D convolutions computed straight from the volumes with AVX-512
// register blocks, for the decoder's high-resolution layers (see kernels_impl.h for the calls).
//
// Why not GEMMs there: a 16 -> 16 channel 3x3x3 conv at 64^3 is, as GEMM tiles, M = 16..48 rows
// against a reduction of 48..432; OpenBLAS then spends as much time packing the tiles as in its
// kernel, and the plane tiles reached 0.45 of the sgemm peak. Here an output block of COB
// channels x NV vectors of 16 positions along K stays in registers for the whole reduction over
// source channels and taps: per tap, NV loads of shifted source rows and COB weight
// broadcasts feed COB x NV fused multiply-adds (8 x 3 or 4 x 6: 24 accumulators, 11 or 10 loads
// per 24 FMAs), and nothing is gathered or packed.
//
// The source is first copied into zero-padded slabs of planes (about 4 MB), so that no load needs
// a mask: the zero padding costs one copy of the source instead of masks on every tap (masked
// loads ran 30% slower).
//
// Weight gradient (kJ = kK = 3): per unit (up to 3 destination channels, one source channel, one
// tap a along I) the 3 x 3 x 3 accumulators run over every vector of a slab's planes, then are
// reduced into dw. A unit runs on one thread per slab and the slabs follow in order, so dw does
// not depend on the thread count or on which thread ran a unit.
//
// Rounding: fused multiply-adds, summed over (source channel, tap) in order per output element;
// results differ from the GEMM paths in the last bits, and are the same for any thread count.
#include <stdint.h>
#include <string.h>

#include "kernels_impl.h"

#if SS_HAVE_DCONV

#    include <immintrin.h>

#    define DC_TARGET __attribute__((target("avx512f")))

enum {
    LANES = 16,                // floats per vector
    GROUP = 6,                 // vectors of a plane per work item (8 x 3 twice or 4 x 6 once)
    MAX_TAPS_JK = 9,           // kJ kK of the kernels taken here (<= 3 x 3)
    WG_TAPS = 3,               // weight gradient: kJ = kK = this
    WIDE = 8,                  // channels of a full destination block
    NARROW = 4,                // channels of a narrow tail block
    WG_CH = 3,                 // destination channels per weight-gradient unit
    SLAB_FLOATS = 1 << 20,     // padded source floats per slab (4 MB)
    SLAB_MAX_FLOATS = 1 << 22, // the slab of one output plane may reach 16 MB, no more
    WGRAD_CHANNELS = 32,       // weight gradient: taken when one side has at most this many
};

// The source as the kernels read it: a slab of planes for destination planes [i0, i0 + planes),
// zero-padded so that every tap of every vector is an unmasked load. Padded element
// (s, pi, pj, pq) holds source (s, i0 + pi - lo0, pj - lo1, pq - lo2), zero outside; rows are
// long enough for whole vectors (the tail lanes past the destination row compute values that are
// never stored).
typedef struct {
    int64_t i0, planes;  // destination planes of the slab
    int64_t rows, cols;  // padded rows and columns of a plane
    int64_t plane, chan; // padded plane size, channel stride (planes + kI - 1 planes)
} slab_t;

// Vectors v of one group of a destination plane.
typedef struct {
    int64_t soff[GROUP];   // padded offset of tap (0, 0) within a plane
    int64_t doff[GROUP];   // destination offset within a plane
    __mmask16 tail[GROUP]; // lanes inside the destination row
    int nv;                // vectors of the group inside the plane
} group_t;

static int g_disabled;

void ss__dconv_enable(int on)
{
    g_disabled = !on;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int cancelled(const volatile int *flag)
{
    return flag != NULL && *flag != 0;
}

static int64_t vectors_per_row(const ss__dconv_t *d)
{
    return (d->dst[2] + LANES - 1) / LANES;
}

static int64_t groups_per_plane(const ss__dconv_t *d)
{
    return (d->dst[1] * vectors_per_row(d) + GROUP - 1) / GROUP;
}

// Destination channels padded to whole blocks (8 wide, the tail 4 wide when it fits).
static int64_t padded_channels(const ss__dconv_t *d)
{
    int64_t tail = d->cout % WIDE;
    return d->cout / WIDE * WIDE + (tail == 0 ? 0 : tail <= NARROW ? NARROW : WIDE);
}

static size_t round_line(size_t b)
{
    return (b + 63) / 64 * 64;
}

static size_t weights_bytes(const ss__dconv_t *d)
{
    int64_t kvol = d->k[0] * d->k[1] * d->k[2];
    return round_line(sizeof(float) * (size_t)(padded_channels(d) * d->cin * kvol));
}

static size_t groups_bytes(const ss__dconv_t *d)
{
    return round_line(sizeof(group_t) * (size_t)groups_per_plane(d));
}

// Slab geometry: about SLAB_FLOATS padded floats per slab, at least one plane.
static slab_t slab_make(const ss__dconv_t *d)
{
    slab_t sl = {0};
    sl.rows = d->dst[1] + d->k[1] - 1;
    sl.cols = vectors_per_row(d) * LANES + d->k[2] - 1;
    sl.plane = sl.rows * sl.cols;
    int64_t per_plane = d->cin * sl.plane;
    sl.planes = min64(max64(SLAB_FLOATS / per_plane - (d->k[0] - 1), 1), d->dst[0]);
    sl.chan = (sl.planes + d->k[0] - 1) * sl.plane;
    return sl;
}

int ss__dconv_suits(const ss__dconv_t *d, int wgrad)
{
    int cpu = __builtin_cpu_supports("avx512f");
    // Rows shorter than a vector would leave most lanes idle, and 1x1x1 is a plain GEMM already.
    // Measured on 2 threads against OpenBLAS's Cooperlake GEMMs (plane tiles): the forward and
    // bwd_data kernels are as fast or faster for every channel count (16 -> 16 at 64^3 fwd 15 vs
    // 25 ms, 32 -> 32 at 32^3 9.0 vs 11.1, 128 -> 128 at 16^3 13.9 vs 16.0); the weight
    // gradient only up to 32 channels on one side (16 -> 32 at 32^3 5.9 vs 8.5 ms, 128 -> 64 at
    // 16^3 12.3 vs 11.1) and kJ = kK = 3. The slab of one output plane stays within
    // SLAB_MAX_FLOATS.
    int64_t kjk = d->k[1] * d->k[2];
    int shape = kjk <= MAX_TAPS_JK && d->k[0] * kjk > 1 && d->dst[2] >= LANES &&
                d->cin * d->k[0] * slab_make(d).plane <= SLAB_MAX_FLOATS;
    int channels = !wgrad || (min64(d->cin, d->cout) <= WGRAD_CHANNELS && d->k[1] == WG_TAPS &&
                              d->k[2] == WG_TAPS);
    return !g_disabled && cpu && shape && channels;
}

size_t ss__dconv_work_bytes(const ss__dconv_t *d)
{
    slab_t sl = slab_make(d);
    return weights_bytes(d) + groups_bytes(d) +
           round_line(sizeof(float) * (size_t)(d->cin * sl.chan));
}

// Lanes l < n of a vector.
static __mmask16 first_lanes(int64_t n)
{
    return n >= LANES ? (__mmask16)0xffffu : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// The groups of a destination plane: vector index g = j * vectors_per_row + q / 16.
static void plane_groups(const ss__dconv_t *d, const slab_t *sl, group_t *groups)
{
    int64_t vr = vectors_per_row(d), nvec = d->dst[1] * vr, ng = groups_per_plane(d);
    for (int64_t gi = 0; gi < ng; gi++) {
        group_t *gr = &groups[gi];
        memset(gr, 0, sizeof(*gr));
        for (int v = 0; v < GROUP; v++) {
            int64_t g = gi * GROUP + v;
            if (g >= nvec) {
                break;
            }
            gr->nv = v + 1;
            int64_t j = g / vr, q = g % vr * LANES;
            gr->doff[v] = j * d->dst[2] + q;
            gr->soff[v] = j * sl->cols + q;
            gr->tail[v] = first_lanes(d->dst[2] - q);
        }
    }
}

// Padded plane pi of channel s of the slab from destination plane i0 (threads split the planes).
static void fill_plane(
    const ss__dconv_t *d, const slab_t *sl, float *pad, const float *src, int64_t s, int64_t pi)
{
    float *p = pad + s * sl->chan + pi * sl->plane;
    int64_t ii = sl->i0 + pi - d->lo[0];
    if (ii < 0 || ii >= d->src[0]) {
        memset(p, 0, sizeof(float) * (size_t)sl->plane);
        return;
    }
    const float *sp = src + s * d->src_sc + ii * d->src[1] * d->src[2];
    // Source columns [qa, qb) land at padded columns qa + lo2 .. ; the rest of a row is zero.
    int64_t qa = max64(-d->lo[2], 0), qb = min64(d->src[2], sl->cols - d->lo[2]);
    for (int64_t pj = 0; pj < sl->rows; pj++) {
        float *row = p + pj * sl->cols;
        int64_t jj = pj - d->lo[1];
        if (jj < 0 || jj >= d->src[1] || qb <= qa) {
            memset(row, 0, sizeof(float) * (size_t)sl->cols);
            continue;
        }
        int64_t c0 = qa + d->lo[2], c1 = qb + d->lo[2];
        memset(row, 0, sizeof(float) * (size_t)c0);
        memcpy(row + c0, sp + jj * d->src[2] + qa, sizeof(float) * (size_t)(c1 - c0));
        memset(row + c1, 0, sizeof(float) * (size_t)(sl->cols - c1));
    }
}

// Fills the slab from destination plane i0, inside a parallel region (ends with a barrier).
static void fill_slab(const ss__dconv_t *d, slab_t *sl, float *pad, const float *src, int64_t i0)
{
    int64_t np = sl->planes + d->k[0] - 1;
#    pragma omp single
    sl->i0 = i0;
#    pragma omp for schedule(static)
    for (int64_t u = 0; u < d->cin * np; u++) {
        fill_plane(d, sl, pad, src, u / np, u % np);
    }
}

// wr[block][s][tap][lane] = weight of destination channel block * width + lane from source
// channel s, zero for padding lanes. flip 0: w is (cout, cin, k) (a forward); flip 1: w is
// (cin, cout, k) with every tap reversed (bwd_data as the forward of dy).
static void repack(float *wr, const float *w, const ss__dconv_t *d, int flip)
{
    int64_t kvol = d->k[0] * d->k[1] * d->k[2], pc = padded_channels(d);
#    pragma omp for schedule(static)
    for (int64_t o = 0; o < pc; o++) {
        int64_t o0 = o / WIDE * WIDE, width = min64(WIDE, pc - o0), lane = o - o0;
        float *blk = wr + o0 * d->cin * kvol;
        for (int64_t s = 0; s < d->cin; s++) {
            for (int64_t t = 0; t < kvol; t++) {
                float v = 0.0f;
                if (o < d->cout) {
                    v = flip ? w[(s * d->cout + o) * kvol + (kvol - 1 - t)]
                             : w[(o * d->cin + s) * kvol + t];
                }
                blk[(s * kvol + t) * width + lane] = v;
            }
        }
    }
}

// One register block: destination channels [0, nch) of dst (weights wb, COB wide) for vectors
// [v0, v0 + NV) of group gr in slab plane li (destination plane sl->i0 + li). Inlined into its
// fixed-size callers, so acc lives in registers.
static inline __attribute__((always_inline)) DC_TARGET void block(const ss__dconv_t *d,
                                                                  const slab_t *sl,
                                                                  const group_t *gr,
                                                                  int v0,
                                                                  const float *pad,
                                                                  const float *wb,
                                                                  int64_t li,
                                                                  float *dst,
                                                                  const float *bias,
                                                                  int64_t nch,
                                                                  const int COB,
                                                                  const int NV)
{
    __m512 acc[WIDE][GROUP];
#    pragma GCC unroll 8
    for (int o = 0; o < COB; o++) {
#    pragma GCC unroll 6
        for (int v = 0; v < NV; v++) {
            acc[o][v] = _mm512_setzero_ps();
        }
    }
    int64_t kj = d->k[1], kk = d->k[2];
    const float *wt = wb;
    for (int64_t s = 0; s < d->cin; s++) {
        for (int64_t a = 0; a < d->k[0]; a++) {
            const float *p = pad + s * sl->chan + (li + a) * sl->plane;
            for (int64_t b = 0; b < kj; b++) {
                // The next channel's rows: its first taps would otherwise wait on L2 (16 -> 16
                // channels at 64^3: 25 -> 17 ms).
                const float *next = p + sl->chan + b * sl->cols;
#    pragma GCC unroll 6
                for (int v = 0; v < NV; v++) {
                    _mm_prefetch((const char *)(next + gr->soff[v0 + v]), _MM_HINT_T0);
                    _mm_prefetch((const char *)(next + gr->soff[v0 + v] + LANES), _MM_HINT_T0);
                }
                for (int64_t c = 0; c < kk; c++, wt += COB) {
                    const float *pt = p + b * sl->cols + c;
                    __m512 xv[GROUP];
#    pragma GCC unroll 6
                    for (int v = 0; v < NV; v++) {
                        xv[v] = _mm512_loadu_ps(pt + gr->soff[v0 + v]);
                    }
#    pragma GCC unroll 8
                    for (int o = 0; o < COB; o++) {
                        __m512 wv = _mm512_set1_ps(wt[o]);
#    pragma GCC unroll 6
                        for (int v = 0; v < NV; v++) {
                            acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
                        }
                    }
                }
            }
        }
    }
    float *out = dst + (sl->i0 + li) * d->dst[1] * d->dst[2];
#    pragma GCC unroll 8
    for (int o = 0; o < COB; o++) {
        if (o >= nch) {
            break;
        }
        __m512 bv = _mm512_set1_ps(bias != NULL ? bias[o] : 0.0f);
#    pragma GCC unroll 6
        for (int v = 0; v < NV; v++) {
            if (v0 + v < gr->nv) {
                _mm512_mask_storeu_ps(out + o * d->dst_sc + gr->doff[v0 + v], gr->tail[v0 + v],
                                      _mm512_add_ps(acc[o][v], bv));
            }
        }
    }
}

static DC_TARGET __attribute__((noinline)) void block_8x3(const ss__dconv_t *d,
                                                          const slab_t *sl,
                                                          const group_t *gr,
                                                          int v0,
                                                          const float *pad,
                                                          const float *wb,
                                                          int64_t li,
                                                          float *dst,
                                                          const float *bias,
                                                          int64_t nch)
{
    block(d, sl, gr, v0, pad, wb, li, dst, bias, nch, WIDE, 3);
}

static DC_TARGET __attribute__((noinline)) void block_4x6(const ss__dconv_t *d,
                                                          const slab_t *sl,
                                                          const group_t *gr,
                                                          const float *pad,
                                                          const float *wb,
                                                          int64_t li,
                                                          float *dst,
                                                          const float *bias,
                                                          int64_t nch)
{
    block(d, sl, gr, 0, pad, wb, li, dst, bias, nch, NARROW, GROUP);
}

// One group of slab plane li, every destination channel block.
static void run_group(const ss__dconv_t *d,
                      const slab_t *sl,
                      const group_t *gr,
                      const float *pad,
                      const float *wr,
                      int64_t li,
                      float *dst,
                      const float *bias)
{
    int64_t kvol = d->k[0] * d->k[1] * d->k[2], pc = padded_channels(d);
    for (int64_t o0 = 0; o0 < pc; o0 += WIDE) {
        const float *wb = wr + o0 * d->cin * kvol;
        float *dblk = dst + o0 * d->dst_sc;
        const float *bb = bias != NULL ? bias + o0 : NULL;
        int64_t nch = min64(d->cout - o0, WIDE);
        if (pc - o0 == NARROW) {
            block_4x6(d, sl, gr, pad, wb, li, dblk, bb, nch);
        } else {
            block_8x3(d, sl, gr, 0, pad, wb, li, dblk, bb, nch);
            if (gr->nv > 3) {
                block_8x3(d, sl, gr, 3, pad, wb, li, dblk, bb, nch);
            }
        }
    }
}

void ss__dconv_fwd(const ss__dconv_t *d,
                   float *dst,
                   const float *src,
                   const float *w,
                   int flip,
                   const float *bias,
                   void *work,
                   int nt,
                   const volatile int *cancel)
{
    float *wr = work;
    group_t *groups = (group_t *)((char *)work + weights_bytes(d));
    float *pad = (float *)((char *)groups + groups_bytes(d));
    slab_t sl = slab_make(d);
    plane_groups(d, &sl, groups);
    int64_t ng = groups_per_plane(d);
#    pragma omp parallel num_threads(nt)
    {
        repack(wr, w, d, flip);
        for (int64_t n = 0; n < d->n; n++) {
            for (int64_t i0 = 0; i0 < d->dst[0]; i0 += sl.planes) {
                fill_slab(d, &sl, pad, src + n * d->src_sn, i0);
                int64_t np = min64(sl.planes, d->dst[0] - i0);
                // Guided, not static: on a shared node one thread's core may be taken away for a
                // while, and the other then takes over its groups instead of waiting at the
                // barrier (16 -> 16 at 64^3: median 17.1 vs 19.9 ms over alternating runs).
#    pragma omp for schedule(guided)
                for (int64_t it = 0; it < np * ng; it++) {
                    if (!cancelled(cancel)) {
                        run_group(d, &sl, &groups[it % ng], pad, wr, it / ng, dst + n * d->dst_sn,
                                  bias);
                    }
                }
            }
        }
    }
}

// Unit (destination channels [o0, o0 + NCH), NCH <= 3, source channel s, tap a along I) over
// the planes of the slab: dw += their contribution; acc is local, so it lives in registers.
// Destination rows are walked with one pointer per dy channel and per source row: every load is
// base + index + constant, and the loop body is the NCH + 9 loads and 9 NCH FMAs plus one
// counter (per-vector offset tables and tap tests had taken the ports the FMAs need: 16 -> 16
// at 64^3 on one thread 40 -> 34 ms with the exact channel count). The row tail's dy lanes are
// masked to zero; x needs no mask (padding).
static inline __attribute__((always_inline)) DC_TARGET void wgrad_rows(const ss__dconv_t *d,
                                                                       const slab_t *sl,
                                                                       float *dw,
                                                                       const float *pad,
                                                                       const float *dy,
                                                                       int64_t o0,
                                                                       int64_t s,
                                                                       int64_t a,
                                                                       int64_t np,
                                                                       const int NCH)
{
    __m512 acc[WG_CH][WG_TAPS * WG_TAPS];
#    pragma GCC unroll 3
    for (int o = 0; o < NCH; o++) {
#    pragma GCC unroll 9
        for (int t = 0; t < WG_TAPS * WG_TAPS; t++) {
            acc[o][t] = _mm512_setzero_ps();
        }
    }
    int64_t rows = d->dst[1], width = d->dst[2], full = width / LANES * LANES;
    int64_t cols = sl->cols, sc = d->dst_sc;
    __mmask16 tail = first_lanes(width - full);
    for (int64_t li = 0; li < np; li++) {
        const float *xp = pad + s * sl->chan + (li + a) * sl->plane;
        const float *dp = dy + o0 * sc + (sl->i0 + li) * rows * width;
        for (int64_t j = 0; j < rows; j++) {
            const float *xr[WG_TAPS] = {xp + j * cols, xp + (j + 1) * cols, xp + (j + 2) * cols};
            const float *gr[WG_CH] = {dp + j * width, dp + j * width + sc, dp + j * width + 2 * sc};
            for (int64_t q = 0; q < width; q += LANES) {
                __mmask16 m = q < full ? (__mmask16)0xffffu : tail;
                __m512 g[WG_CH];
#    pragma GCC unroll 3
                for (int o = 0; o < NCH; o++) {
                    g[o] = _mm512_maskz_loadu_ps(m, gr[o] + q);
                }
#    pragma GCC unroll 3
                for (int b = 0; b < WG_TAPS; b++) {
#    pragma GCC unroll 3
                    for (int c = 0; c < WG_TAPS; c++) {
                        __m512 xv = _mm512_loadu_ps(xr[b] + q + c);
                        // One load for the NCH FMAs: GCC would fold it into each of them.
                        __asm__("" : "+v"(xv));
#    pragma GCC unroll 3
                        for (int o = 0; o < NCH; o++) {
                            acc[o][b * WG_TAPS + c] =
                                _mm512_fmadd_ps(g[o], xv, acc[o][b * WG_TAPS + c]);
                        }
                    }
                }
            }
        }
    }
    int64_t kvol = d->k[0] * WG_TAPS * WG_TAPS;
#    pragma GCC unroll 3
    for (int o = 0; o < NCH; o++) {
        float *w = dw + ((o0 + o) * d->cin + s) * kvol + a * WG_TAPS * WG_TAPS;
#    pragma GCC unroll 9
        for (int t = 0; t < WG_TAPS * WG_TAPS; t++) {
            w[t] += _mm512_reduce_add_ps(acc[o][t]);
        }
    }
}

static DC_TARGET __attribute__((noinline)) void wgrad_rows_1(const ss__dconv_t *d,
                                                             const slab_t *sl,
                                                             float *dw,
                                                             const float *pad,
                                                             const float *dy,
                                                             int64_t o0,
                                                             int64_t s,
                                                             int64_t a,
                                                             int64_t np)
{
    wgrad_rows(d, sl, dw, pad, dy, o0, s, a, np, 1);
}

static DC_TARGET __attribute__((noinline)) void wgrad_rows_2(const ss__dconv_t *d,
                                                             const slab_t *sl,
                                                             float *dw,
                                                             const float *pad,
                                                             const float *dy,
                                                             int64_t o0,
                                                             int64_t s,
                                                             int64_t a,
                                                             int64_t np)
{
    wgrad_rows(d, sl, dw, pad, dy, o0, s, a, np, 2);
}

static DC_TARGET __attribute__((noinline)) void wgrad_rows_3(const ss__dconv_t *d,
                                                             const slab_t *sl,
                                                             float *dw,
                                                             const float *pad,
                                                             const float *dy,
                                                             int64_t o0,
                                                             int64_t s,
                                                             int64_t a,
                                                             int64_t np)
{
    wgrad_rows(d, sl, dw, pad, dy, o0, s, a, np, 3);
}

void ss__dconv_bwd_weight(const ss__dconv_t *d,
                          float *dw,
                          const float *x,
                          const float *dy,
                          void *work,
                          int nt,
                          const volatile int *cancel)
{
    // The workspace's layout is the forward's (weights, groups, slab); only the slab is used.
    float *pad = (float *)((char *)work + weights_bytes(d) + groups_bytes(d));
    slab_t sl = slab_make(d);
    int64_t nob = (d->cout + WG_CH - 1) / WG_CH, units = nob * d->cin * d->k[0];
    int64_t kvol = d->k[0] * d->k[1] * d->k[2];
    memset(dw, 0, sizeof(float) * (size_t)(d->cout * d->cin * kvol));
#    pragma omp parallel num_threads(nt)
    {
        // A dw element belongs to one unit, which adds one sum per slab, and the slabs follow
        // each other (the loop's barrier): dw is the same whichever thread runs a unit, so the
        // units are handed out as threads come free (guided, as in the forward).
        for (int64_t n = 0; n < d->n; n++) {
            for (int64_t i0 = 0; i0 < d->dst[0]; i0 += sl.planes) {
                fill_slab(d, &sl, pad, x + n * d->src_sn, i0);
                int64_t np = min64(sl.planes, d->dst[0] - i0);
#    pragma omp for schedule(guided)
                for (int64_t u = 0; u < units; u++) {
                    if (cancelled(cancel)) {
                        continue;
                    }
                    int64_t a = u % d->k[0], s = u / d->k[0] % d->cin, ob = u / (d->k[0] * d->cin);
                    int64_t nch = min64(d->cout - ob * WG_CH, WG_CH);
                    const float *dyn = dy + n * d->dst_sn;
                    (nch == 3   ? wgrad_rows_3
                     : nch == 2 ? wgrad_rows_2
                                : wgrad_rows_1)(d, &sl, dw, pad, dyn, ob * WG_CH, s, a, np);
                }
            }
        }
    }
}

#else // !SS_HAVE_DCONV

void ss__dconv_enable(int on)
{
    (void)on;
}

int ss__dconv_suits(const ss__dconv_t *d, int wgrad)
{
    (void)d, (void)wgrad;
    return 0;
}

size_t ss__dconv_work_bytes(const ss__dconv_t *d)
{
    (void)d;
    return 0;
}

void ss__dconv_fwd(const ss__dconv_t *d,
                   float *dst,
                   const float *src,
                   const float *w,
                   int flip,
                   const float *bias,
                   void *work,
                   int nt,
                   const volatile int *cancel)
{
    (void)d, (void)dst, (void)src, (void)w, (void)flip, (void)bias, (void)work, (void)nt;
    (void)cancel;
}

void ss__dconv_bwd_weight(const ss__dconv_t *d,
                          float *dw,
                          const float *x,
                          const float *dy,
                          void *work,
                          int nt,
                          const volatile int *cancel)
{
    (void)d, (void)dw, (void)x, (void)dy, (void)work, (void)nt, (void)cancel;
}

#endif
