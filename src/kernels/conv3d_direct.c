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
// Winograd F(2x2x2, 3x3x3) (3x3x3 kernels over even extents whose rows hold whole 32-column
// tile vectors, or 16-column rows taken two tile rows per vector: the decoders' 16^3-128^3
// layers): forward, bwd_data and weight gradient read the
// same padded slabs (of an even number of planes) and run 3.4x fewer multiply-adds; see the
// section below for the transforms and their layout.
//
// Rounding: fused multiply-adds, summed over (source channel, tap) in order per output element
// (Winograd: over source channels per transformed position, then the fixed transforms); results
// differ from the GEMM paths in the last bits (Winograd's by a few times more, well inside the
// tests' float tolerances), and are the same for any thread count.
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "kernels_impl.h"

#if SS_HAVE_AVX512

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
    WN_POS = 64,               // Winograd: transformed positions of a 4 x 4 x 4 input tile
    WN_NV = 3,                 // Winograd: tile vectors (16 tiles each) per work item
    WG_NV = 16,                // Winograd weight gradient: tile vectors per chunk
    WG_BLK = 4,                // Winograd weight gradient: register block of 4 x 4 (o, s)
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

static int g_wino_disabled;

void ss__dconv_wino_enable(int on)
{
    g_wino_disabled = !on;
}

// 3 x 3 x 3 kernels over even destination extents whose rows hold whole tile vectors (32k
// columns, or 16 columns with a multiple of 4 rows: two tile rows per vector) go through
// Winograd F(2x2x2, 3x3x3) (see wino_fwd below).
static int wino_suits(const ss__dconv_t *d)
{
    int rows = (d->dst[2] % (2 * LANES) == 0 && d->dst[1] % 2 == 0) ||
               (d->dst[2] == LANES && d->dst[1] % 4 == 0);
    return !g_wino_disabled && d->k[0] == 3 && d->k[1] == 3 && d->k[2] == 3 && d->dst[0] % 2 == 0 &&
           rows;
}

static size_t weights_bytes(const ss__dconv_t *d)
{
    int64_t kvol = wino_suits(d) ? WN_POS : d->k[0] * d->k[1] * d->k[2];
    return round_line(sizeof(float) * (size_t)(padded_channels(d) * d->cin * kvol));
}

static size_t groups_bytes(const ss__dconv_t *d)
{
    return round_line(sizeof(group_t) * (size_t)groups_per_plane(d));
}

// Slab geometry: about SLAB_FLOATS padded floats per slab, at least one plane; for Winograd
// (wino 1) an even number of planes, at least two, so that tiles of two planes never straddle
// slabs.
static slab_t slab_make(const ss__dconv_t *d, int wino)
{
    slab_t sl = {0};
    sl.rows = d->dst[1] + d->k[1] - 1;
    sl.cols = vectors_per_row(d) * LANES + d->k[2] - 1;
    sl.plane = sl.rows * sl.cols;
    int64_t per_plane = d->cin * sl.plane;
    sl.planes = min64(max64(SLAB_FLOATS / per_plane - (d->k[0] - 1), 1), d->dst[0]);
    if (wino) {
        sl.planes = max64(sl.planes / 2 * 2, 2);
    }
    sl.chan = (sl.planes + d->k[0] - 1) * sl.plane;
    return sl;
}

int ss__dconv_suits(const ss__dconv_t *d, int wgrad)
{
    int cpu = ss__cpu_avx512();
    // Rows shorter than a vector would leave most lanes idle, and 1x1x1 is a plain GEMM already.
    // Measured on 2 threads against OpenBLAS's Cooperlake GEMMs (plane tiles): the forward and
    // bwd_data kernels are as fast or faster for every channel count (16 -> 16 at 64^3 fwd 15 vs
    // 25 ms, 32 -> 32 at 32^3 9.0 vs 11.1, 128 -> 128 at 16^3 13.9 vs 16.0); the direct weight
    // gradient only up to 32 channels on one side (16 -> 32 at 32^3 5.9 vs 8.5 ms, 128 -> 64 at
    // 16^3 12.3 vs 11.1) and kJ = kK = 3, Winograd's for every channel count (64 -> 64 at 16^3
    // 4.2 vs 5.5 ms, at 32^3 23.6 vs 38.7; 128 -> 128 at 16^3 20.6 vs 21.4). The slab of one
    // output plane stays within SLAB_MAX_FLOATS.
    int64_t kjk = d->k[1] * d->k[2];
    int shape = kjk <= MAX_TAPS_JK && d->k[0] * kjk > 1 && d->dst[2] >= LANES &&
                d->cin * (wino_suits(d) ? 4 : d->k[0]) * slab_make(d, 0).plane <= SLAB_MAX_FLOATS;
    int channels = !wgrad || ((wino_suits(d) || min64(d->cin, d->cout) <= WGRAD_CHANNELS) &&
                              d->k[1] == WG_TAPS && d->k[2] == WG_TAPS);
    return !g_disabled && cpu && shape && channels;
}

// The direct slab or Winograd's, the larger.
static size_t slab_bytes(const ss__dconv_t *d)
{
    int64_t chan = max64(slab_make(d, 0).chan, slab_make(d, wino_suits(d)).chan);
    return round_line(sizeof(float) * (size_t)(d->cin * chan));
}

static size_t wgrad_shared_bytes(const ss__dconv_t *d);

// The shared workspace: repacked weights, the plane's vector groups, the padded slab, then the
// Winograd weight gradient's sums; the per-thread blocks follow it.
size_t ss__dconv_work_bytes(const ss__dconv_t *d)
{
    return weights_bytes(d) + groups_bytes(d) + slab_bytes(d) + wgrad_shared_bytes(d);
}

static float *work_slab(void *work, const ss__dconv_t *d)
{
    return (float *)((char *)work + weights_bytes(d) + groups_bytes(d));
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
            gr->tail[v] = ss__first_lanes(d->dst[2] - q);
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
static float tap_weight(
    const float *w, const ss__dconv_t *d, int flip, int64_t o, int64_t s, int64_t t, int64_t kvol)
{
    return flip ? w[(s * d->cout + o) * kvol + (kvol - 1 - t)] : w[(o * d->cin + s) * kvol + t];
}

static void repack(float *wr, const float *w, const ss__dconv_t *d, int flip)
{
    int64_t kvol = d->k[0] * d->k[1] * d->k[2], pc = padded_channels(d);
#    pragma omp for schedule(static)
    for (int64_t o = 0; o < pc; o++) {
        int64_t o0 = o / WIDE * WIDE, width = min64(WIDE, pc - o0), lane = o - o0;
        float *blk = wr + o0 * d->cin * kvol;
        for (int64_t s = 0; s < d->cin; s++) {
            for (int64_t t = 0; t < kvol; t++) {
                blk[(s * kvol + t) * width + lane] =
                    o < d->cout ? tap_weight(w, d, flip, o, s, t, kvol) : 0.0f;
            }
        }
    }
}

// One register block: destination channels [0, nch) of dst (weights wb, COB wide) for vectors
// [v0, v0 + NV) of group gr in slab plane li (destination plane sl->i0 + li). Inlined into its
// fixed-size callers, so acc lives in registers.
static inline __attribute__((always_inline)) SS_AVX512 void block(const ss__dconv_t *d,
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

static SS_AVX512 __attribute__((noinline)) void block_8x3(const ss__dconv_t *d,
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

static SS_AVX512 __attribute__((noinline)) void block_4x6(const ss__dconv_t *d,
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

// ---- Winograd F(2x2x2, 3x3x3) ---------------------------------------------------------------
//
// Each 2 x 2 x 2 block of outputs ("tile") comes from a 4 x 4 x 4 block of the padded source:
// Y = A^T [ (G g G^T) . (B^T x B) ] A along each of the three axes, with
//   B^T x = (x0 - x2, x1 + x2, x2 - x1, x1 - x3),  G g = (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2),
//   A^T m = (m0 + m1 + m2, m1 - m2 - m3).
// The 27 x 8 multiply-adds per (source, destination channel) pair of a tile become 64: for the
// decoder's 16-32 channel layers the forward and bwd_data run on 3.4x fewer FMAs, and the
// transforms (adds and lane permutes, linear in the channels) cost far less than that saving.
//
// Vectors hold 16 tiles (tvec_t: two runs of 8 along K): a work item is WN_NV such tile vectors
// of one tile plane (two output planes of the slab). Per item and thread:
//   V[p][s][v][16]  transformed source, p = (a * 4 + b) * 4 + c the position in the 4^3 tile;
//   M[p][o][v][16]  per position, the product over source channels (a register block of 8
//                   destination channels x WN_NV vectors, as in the direct forward);
// then A^T along the three axes gives the 8 outputs of each tile. U[block][p][s][8] holds the
// transformed weights. Every output is summed in a fixed order, whatever the thread count.

// Floats between positions of V and of M: one line more than their channels take, so that the
// 64 positions of one channel do not fall into a few L1 sets (a 3 KB stride maps them to 4 of the
// 64 sets; no difference was measurable on this machine, where L2 traffic dominates).
static int64_t wino_vstride(const ss__dconv_t *d)
{
    return (d->cin * WN_NV + 1) * LANES;
}

static int64_t wino_mstride(const ss__dconv_t *d)
{
    return (padded_channels(d) * WN_NV + 1) * LANES;
}

static size_t wgrad_thread_bytes(const ss__dconv_t *d);

// V and M of one thread (forward, bwd_data), or X and D (weight gradient).
size_t ss__dconv_thread_bytes(const ss__dconv_t *d)
{
    if (!wino_suits(d)) {
        return 0;
    }
    size_t fwd = sizeof(float) * (size_t)(WN_POS * (wino_vstride(d) + wino_mstride(d)));
    size_t wgrad = wgrad_thread_bytes(d);
    return fwd > wgrad ? fwd : wgrad;
}

// The calling thread's block, after the shared workspace (inside a parallel region).
static float *work_thread(void *work, const ss__dconv_t *d)
{
    return (float *)((char *)work + ss__dconv_work_bytes(d) +
                     (size_t)omp_get_thread_num() * ss__dconv_thread_bytes(d));
}

// A tile vector's 16 tiles are two runs of 8 along K: lanes 8-15 are the 8 tiles right of lanes
// 0-7 (rows of 32k columns) or those one tile row below (rows of 16 columns).
typedef struct {
    int64_t tj, col; // tile row and output column of lane 0
} tvec_t;

static int two_rows(const ss__dconv_t *d)
{
    return d->dst[2] == LANES;
}

static int64_t tile_vectors_per_plane(const ss__dconv_t *d)
{
    return two_rows(d) ? d->dst[1] / 4 : d->dst[1] / 2 * (d->dst[2] / (2 * LANES));
}

static tvec_t tile_vector(const ss__dconv_t *d, int64_t tv)
{
    if (two_rows(d)) {
        return (tvec_t){2 * tv, 0};
    }
    int64_t per_row = d->dst[2] / (2 * LANES);
    return (tvec_t){tv / per_row, tv % per_row * 2 * LANES};
}

// Floats from lane 0's first column to lane 8's in a plane of rows `row` floats long.
static int64_t second_run(const ss__dconv_t *d, int64_t row)
{
    return two_rows(d) ? 2 * row : LANES;
}

// G along one axis: 3 values -> 4 at out[0], out[os], out[2 os], out[3 os].
static void g_rows(float *out, int64_t os, float g0, float g1, float g2)
{
    out[0] = g0;
    out[os] = 0.5f * (g0 + g1 + g2);
    out[2 * os] = 0.5f * (g0 - g1 + g2);
    out[3 * os] = g2;
}

// The 4 x 4 x 4 transform G g G^T of one 3 x 3 x 3 kernel g (tap t = (a * 3 + b) * 3 + c).
static void wino_kernel(float u[WN_POS], const float g[27])
{
    float t1[4][3][3], t2[4][4][3];
    for (int b = 0; b < 3; b++) {
        for (int c = 0; c < 3; c++) {
            g_rows(&t1[0][b][c], 9, g[b * 3 + c], g[9 + b * 3 + c], g[18 + b * 3 + c]);
        }
    }
    for (int a = 0; a < 4; a++) {
        for (int c = 0; c < 3; c++) {
            g_rows(&t2[a][0][c], 3, t1[a][0][c], t1[a][1][c], t1[a][2][c]);
        }
    }
    for (int a = 0; a < 4; a++) {
        for (int b = 0; b < 4; b++) {
            g_rows(u + (a * 4 + b) * 4, 1, t2[a][b][0], t2[a][b][1], t2[a][b][2]);
        }
    }
}

// U[block][p][s][lane] as repack lays out the direct kernel's weights, with positions for taps.
static void wino_repack(float *wu, const float *w, const ss__dconv_t *d, int flip)
{
    int64_t pc = padded_channels(d);
#    pragma omp for schedule(static)
    for (int64_t o = 0; o < pc; o++) {
        int64_t o0 = o / WIDE * WIDE, width = min64(WIDE, pc - o0), lane = o - o0;
        float *blk = wu + o0 * d->cin * WN_POS;
        for (int64_t s = 0; s < d->cin; s++) {
            float g[27] = {0}, u[WN_POS];
            for (int t = 0; t < 27 && o < d->cout; t++) {
                g[t] = tap_weight(w, d, flip, o, s, t, 27);
            }
            wino_kernel(u, g);
            for (int p = 0; p < WN_POS; p++) {
                blk[(p * d->cin + s) * width + lane] = u[p];
            }
        }
    }
}

// Permute indices that take the even (odd) lanes of two vectors: lanes 0-7 from the first,
// 8-15 from the second (even and odd columns of two runs of 8 tiles).
static inline __attribute__((always_inline)) SS_AVX512 __m512i even_lanes(void)
{
    return _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
}

static inline __attribute__((always_inline)) SS_AVX512 __m512i odd_lanes(void)
{
    return _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
}

// B^T in place on four vectors.
static inline __attribute__((always_inline)) SS_AVX512 void
bt4(__m512 *x0, __m512 *x1, __m512 *x2, __m512 *x3)
{
    __m512 a = _mm512_sub_ps(*x0, *x2), b = _mm512_add_ps(*x1, *x2);
    __m512 c = _mm512_sub_ps(*x2, *x1), e = _mm512_sub_ps(*x1, *x3);
    *x0 = a, *x1 = b, *x2 = c, *x3 = e;
}

// Plane a of B^T along I from the four source planes x (row r, same column): its two terms.
static inline __attribute__((always_inline)) SS_AVX512 __m512 bt_plane(const float *r,
                                                                       int64_t plane,
                                                                       const int a)
{
    __m512 x1 = _mm512_loadu_ps(r + plane), x2 = _mm512_loadu_ps(r + 2 * plane);
    switch (a) {
    case 0:
        return _mm512_sub_ps(_mm512_loadu_ps(r), x2);
    case 1:
        return _mm512_add_ps(x1, x2);
    case 2:
        return _mm512_sub_ps(x2, x1);
    default:
        return _mm512_sub_ps(x1, _mm512_loadu_ps(r + 3 * plane));
    }
}

// Position plane a (the 16 positions (a, b, c)) of one channel's transformed source, from the
// tile's padded source at base: B^T along I (two source planes per row), along K (even and odd
// columns split by permutes), then along J, all in registers; position (b, c) goes to
// vc + (b * 4 + c) * ps.
static inline __attribute__((always_inline)) SS_AVX512 void input_plane(
    const float *base, int64_t cols, int64_t plane, int64_t seg, float *vc, int64_t ps, const int a)
{
    const __m512i even = even_lanes(), odd = odd_lanes();
    __m512 t[4][4];
#    pragma GCC unroll 4
    for (int b = 0; b < 4; b++) {
        const float *r = base + b * cols;
        // Columns 0..15 and 2..17 of each run of 8 tiles (the second run seg floats on).
        __m512 l0 = bt_plane(r, plane, a), l1 = bt_plane(r + seg, plane, a);
        __m512 s0 = bt_plane(r + 2, plane, a), s1 = bt_plane(r + 2 + seg, plane, a);
        __m512 e = _mm512_permutex2var_ps(l0, even, l1);
        __m512 o = _mm512_permutex2var_ps(l0, odd, l1);
        __m512 e2 = _mm512_permutex2var_ps(s0, even, s1);
        __m512 o2 = _mm512_permutex2var_ps(s0, odd, s1);
        t[b][0] = _mm512_sub_ps(e, e2);
        t[b][1] = _mm512_add_ps(o, e2);
        t[b][2] = _mm512_sub_ps(e2, o);
        t[b][3] = _mm512_sub_ps(o, o2);
    }
#    pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        bt4(&t[0][c], &t[1][c], &t[2][c], &t[3][c]);
#    pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            _mm512_store_ps(vc + (b * 4 + c) * ps, t[b][c]);
        }
    }
}

// Transformed source of tile vector tv (tile plane lt of the slab) for every source channel:
// all 64 positions (a < 0; position p of channel s goes to vo + s * cs + p * ps) or those of
// position plane a only (position (b, c) to vo + s * cs + (b * 4 + c) * ps).
static SS_AVX512 void wino_input(const ss__dconv_t *d,
                                 const slab_t *sl,
                                 const float *pad,
                                 int64_t lt,
                                 int64_t tv,
                                 int a,
                                 float *vo,
                                 int64_t cs,
                                 int64_t ps)
{
    tvec_t t = tile_vector(d, tv);
    int64_t cols = sl->cols, plane = sl->plane, seg = second_run(d, cols);
    for (int64_t s = 0; s < d->cin; s++) {
        const float *base = pad + s * sl->chan + 2 * lt * sl->plane + 2 * t.tj * cols + t.col;
        float *vc = vo + s * cs;
        switch (a) {
        case 0:
            input_plane(base, cols, plane, seg, vc, ps, 0);
            break;
        case 1:
            input_plane(base, cols, plane, seg, vc, ps, 1);
            break;
        case 2:
            input_plane(base, cols, plane, seg, vc, ps, 2);
            break;
        case 3:
            input_plane(base, cols, plane, seg, vc, ps, 3);
            break;
        default:
            input_plane(base, cols, plane, seg, vc, ps, 0);
            input_plane(base, cols, plane, seg, vc + 16 * ps, ps, 1);
            input_plane(base, cols, plane, seg, vc + 32 * ps, ps, 2);
            input_plane(base, cols, plane, seg, vc + 48 * ps, ps, 3);
        }
    }
}

// M[p][o0 + o][v] for one position p and one block of COB destination channels: the product of
// U[p] (weights ub) with V[p] over the source channels, WN_NV vectors.
static inline __attribute__((always_inline)) SS_AVX512 void
wino_product(const float *vp, const float *ub, float *mp, int64_t cin, const int COB)
{
    __m512 acc[WIDE][WN_NV];
#    pragma GCC unroll 8
    for (int o = 0; o < COB; o++) {
#    pragma GCC unroll 3
        for (int v = 0; v < WN_NV; v++) {
            acc[o][v] = _mm512_setzero_ps();
        }
    }
    for (int64_t s = 0; s < cin; s++) {
        __m512 xv[WN_NV];
#    pragma GCC unroll 3
        for (int v = 0; v < WN_NV; v++) {
            xv[v] = _mm512_load_ps(vp + (s * WN_NV + v) * LANES);
        }
#    pragma GCC unroll 8
        for (int o = 0; o < COB; o++) {
            __m512 wv = _mm512_set1_ps(ub[s * COB + o]);
#    pragma GCC unroll 3
            for (int v = 0; v < WN_NV; v++) {
                acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
            }
        }
    }
#    pragma GCC unroll 8
    for (int o = 0; o < COB; o++) {
#    pragma GCC unroll 3
        for (int v = 0; v < WN_NV; v++) {
            _mm512_store_ps(mp + (o * WN_NV + v) * LANES, acc[o][v]);
        }
    }
}

static SS_AVX512 __attribute__((noinline)) void
wino_product_8(const float *vp, const float *ub, float *mp, int64_t cin)
{
    wino_product(vp, ub, mp, cin, WIDE);
}

static SS_AVX512 __attribute__((noinline)) void
wino_product_4(const float *vp, const float *ub, float *mp, int64_t cin)
{
    wino_product(vp, ub, mp, cin, NARROW);
}

// A^T m for the vectors of one line of 4 positions: two results.
static inline __attribute__((always_inline)) SS_AVX512 void
at4(const __m512 *m, __m512 *y0, __m512 *y1)
{
    __m512 s12 = _mm512_add_ps(m[1], m[2]);
    *y0 = _mm512_add_ps(m[0], s12);
    *y1 = _mm512_sub_ps(_mm512_sub_ps(m[1], m[2]), m[3]);
}

// The 2 x 2 x 2 outputs of the 16 tiles of vector v from M (destination channel o), plus bias,
// into the destination: planes 2 lt, 2 lt + 1 of the slab, each run of 8 tiles 2 rows x 16
// columns.
static SS_AVX512 void wino_output(const ss__dconv_t *d,
                                  const slab_t *sl,
                                  const float *M,
                                  int64_t o,
                                  int v,
                                  int64_t lt,
                                  int64_t tv,
                                  float *dst,
                                  float bias)
{
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    tvec_t t = tile_vector(d, tv);
    int64_t rows = d->dst[1], width = d->dst[2], seg = second_run(d, width);
    const float *m = M + (o * WN_NV + v) * LANES;
    int64_t pst = wino_mstride(d);
    __m512 bv = _mm512_set1_ps(bias);
    // One pass over M: per plane a of positions, A^T along J and K (16 -> 4 vectors), then
    // plane a's share of A^T along I into y[ya][yb][yc] (rows (1, 1, 1, 0) and (0, 1, -1, -1)).
    __m512 y[2][2][2];
#    pragma GCC unroll 4
    for (int a = 0; a < 4; a++) {
        __m512 u[2][4]; // [yb][c] after A^T along J
#    pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512 x[4];
#    pragma GCC unroll 4
            for (int b = 0; b < 4; b++) {
                x[b] = _mm512_load_ps(m + ((a * 4 + b) * 4 + c) * pst);
            }
            at4(x, &u[0][c], &u[1][c]);
        }
#    pragma GCC unroll 2
        for (int yb = 0; yb < 2; yb++) {
            __m512 z0, z1;
            at4(u[yb], &z0, &z1);
            __m512 z[2] = {z0, z1};
#    pragma GCC unroll 2
            for (int yc = 0; yc < 2; yc++) {
                if (a == 0) {
                    y[0][yb][yc] = z[yc];
                } else if (a == 1) {
                    y[0][yb][yc] = _mm512_add_ps(y[0][yb][yc], z[yc]);
                    y[1][yb][yc] = z[yc];
                } else if (a == 2) {
                    y[0][yb][yc] = _mm512_add_ps(y[0][yb][yc], z[yc]);
                    y[1][yb][yc] = _mm512_sub_ps(y[1][yb][yc], z[yc]);
                } else {
                    y[1][yb][yc] = _mm512_sub_ps(y[1][yb][yc], z[yc]);
                }
            }
        }
    }
#    pragma GCC unroll 2
    for (int ya = 0; ya < 2; ya++) {
        float *out = dst + (sl->i0 + 2 * lt + ya) * rows * width + 2 * t.tj * width + t.col;
#    pragma GCC unroll 2
        for (int yb = 0; yb < 2; yb++) {
            // Even and odd output columns of the 16 tiles, interleaved.
            __m512 e = _mm512_add_ps(y[ya][yb][0], bv), f = _mm512_add_ps(y[ya][yb][1], bv);
            _mm512_storeu_ps(out + yb * width, _mm512_permutex2var_ps(e, lo, f));
            _mm512_storeu_ps(out + yb * width + seg, _mm512_permutex2var_ps(e, hi, f));
        }
    }
}

// One work item: tile vectors [tv0, tv0 + nv) of tile plane lt of the slab, every channel.
static void wino_item(const ss__dconv_t *d,
                      const slab_t *sl,
                      const float *pad,
                      const float *wu,
                      int64_t lt,
                      int64_t tv0,
                      int nv,
                      float *dst,
                      const float *bias,
                      float *V,
                      float *M)
{
    int64_t pc = padded_channels(d);
    for (int v = 0; v < nv; v++) {
        wino_input(d, sl, pad, lt, tv0 + v, -1, V + v * LANES, WN_NV * LANES, wino_vstride(d));
    }
    for (int p = 0; p < WN_POS; p++) {
        const float *vp = V + p * wino_vstride(d);
        float *mp = M + p * wino_mstride(d);
        for (int64_t o0 = 0; o0 < pc; o0 += WIDE) {
            const float *ub = wu + o0 * d->cin * WN_POS + p * d->cin * min64(WIDE, pc - o0);
            (pc - o0 == NARROW ? wino_product_4 : wino_product_8)(vp, ub, mp + o0 * WN_NV * LANES,
                                                                  d->cin);
        }
    }
    for (int64_t o = 0; o < d->cout; o++) {
        for (int v = 0; v < nv; v++) {
            wino_output(d, sl, M, o, v, lt, tv0 + v, dst + o * d->dst_sc,
                        bias != NULL ? bias[o] : 0.0f);
        }
    }
}

static void wino_fwd(const ss__dconv_t *d,
                     float *dst,
                     const float *src,
                     const float *w,
                     int flip,
                     const float *bias,
                     void *work,
                     int nt,
                     const volatile int *cancel)
{
    float *wu = work;
    float *pad = work_slab(work, d);
    slab_t sl = slab_make(d, 1);
    int64_t ntv = tile_vectors_per_plane(d), ng = (ntv + WN_NV - 1) / WN_NV;
#    pragma omp parallel num_threads(nt)
    {
        float *V = work_thread(work, d);
        float *M = V + WN_POS * wino_vstride(d);
        // A short item's missing vectors are multiplied but never stored; zeros keep them finite.
        memset(V, 0, sizeof(float) * (size_t)(WN_POS * wino_vstride(d)));
        wino_repack(wu, w, d, flip);
        for (int64_t n = 0; n < d->n; n++) {
            for (int64_t i0 = 0; i0 < d->dst[0]; i0 += sl.planes) {
                fill_slab(d, &sl, pad, src + n * d->src_sn, i0);
                int64_t nlt = min64(sl.planes, d->dst[0] - i0) / 2;
#    pragma omp for schedule(guided)
                for (int64_t it = 0; it < nlt * ng; it++) {
                    if (!cancelled(cancel)) {
                        int64_t g = it % ng, tv0 = g * WN_NV;
                        wino_item(d, &sl, pad, wu, it / ng, tv0, (int)min64(WN_NV, ntv - tv0),
                                  dst + n * d->dst_sn, bias, V, M);
                    }
                }
            }
        }
    }
}

// ---- Winograd weight gradient ----------------------------------------------------------------
//
// With V = B^T x B and dM = A dy A^T (the output transform's transpose: (y0, y1) ->
// (y0, y0 + y1, y0 - y1, -y1) along each axis), the weight gradient of a tile is
// G^T (dM . V) G: per position p, dU[p][o][s] = sum over tiles of dM[p][o] V[p][s], a product
// with the tiles as its reduction, then G^T ... G once per (o, s) at the end (3.4x fewer
// multiply-adds than the direct weight gradient). A tile plane of the slab is one unit of work;
// its tiles go in chunks of WG_NV tile vectors through register blocks of 4 x 4 (o, s) whose
// lanes (tiles) are summed at the end of the chunk into the unit's dU. The units' dU are added
// in unit order after each slab, so dw is the same for any thread count.

// Source and destination channels rounded up to whole 4 x 4 blocks (padding rows stay zero).
static int64_t wg_blocks(int64_t c)
{
    return (c + WG_BLK - 1) / WG_BLK;
}

// Floats per position of the chunk's X[p][s][v] and D[p][o][v] (one line more, as for V).
static int64_t wgx_stride(const ss__dconv_t *d)
{
    return (wg_blocks(d->cin) * WG_BLK * WG_NV + 1) * LANES;
}

static int64_t wgd_stride(const ss__dconv_t *d)
{
    return (wg_blocks(d->cout) * WG_BLK * WG_NV + 1) * LANES;
}

// Floats of one dU: [p][o block][s block][16 = 4 o x 4 s].
static int64_t wgu_floats(const ss__dconv_t *d)
{
    return WN_POS * wg_blocks(d->cout) * wg_blocks(d->cin) * WG_BLK * WG_BLK;
}

static int64_t wg_units(const ss__dconv_t *d)
{
    return slab_make(d, 1).planes / 2;
}

static size_t wgrad_shared_bytes(const ss__dconv_t *d)
{
    return wino_suits(d) ? round_line(sizeof(float) * (size_t)(wgu_floats(d) * (1 + wg_units(d))))
                         : 0;
}

static size_t wgrad_thread_bytes(const ss__dconv_t *d)
{
    return sizeof(float) * (size_t)(16 * (wgx_stride(d) + wgd_stride(d)));
}

// Row k of A: (u0, u0 + u1, u0 - u1, -u1).
static inline __attribute__((always_inline)) SS_AVX512 __m512 a_row(__m512 u0,
                                                                    __m512 u1,
                                                                    const int k)
{
    switch (k) {
    case 0:
        return u0;
    case 1:
        return _mm512_add_ps(u0, u1);
    case 2:
        return _mm512_sub_ps(u0, u1);
    default:
        return _mm512_sub_ps(_mm512_setzero_ps(), u1);
    }
}

// Position plane a of dM for tile vector tv (tile plane lt of the slab), every destination
// channel: position (b, c) of channel o goes to dm + o * cs + (b * 4 + c) * ps.
static SS_AVX512 void wino_dy(const ss__dconv_t *d,
                              const slab_t *sl,
                              const float *dy,
                              int64_t lt,
                              int64_t tv,
                              int a,
                              float *dm,
                              int64_t cs,
                              int64_t ps)
{
    const __m512i even = even_lanes(), odd = odd_lanes();
    tvec_t t = tile_vector(d, tv);
    int64_t rows = d->dst[1], width = d->dst[2], plane = rows * width, seg = second_run(d, width);
    const float *r0 = dy + (sl->i0 + 2 * lt) * plane + 2 * t.tj * width + t.col;
    for (int64_t o = 0; o < d->cout; o++) {
        const float *r = r0 + o * d->dst_sc;
        __m512 z[2][2]; // [row][even / odd column] after A along I
#    pragma GCC unroll 2
        for (int yb = 0; yb < 2; yb++) {
            __m512 y[2][2];
#    pragma GCC unroll 2
            for (int ya = 0; ya < 2; ya++) {
                const float *q = r + ya * plane + yb * width;
                __m512 l0 = _mm512_loadu_ps(q), l1 = _mm512_loadu_ps(q + seg);
                y[ya][0] = _mm512_permutex2var_ps(l0, even, l1);
                y[ya][1] = _mm512_permutex2var_ps(l0, odd, l1);
            }
            // Row a of A along I (the same for every channel: a predictable branch).
            z[yb][0] = a_row(y[0][0], y[1][0], a), z[yb][1] = a_row(y[0][1], y[1][1], a);
        }
        float *mo = dm + o * cs;
#    pragma GCC unroll 4
        for (int b = 0; b < 4; b++) {
            __m512 w0 = a_row(z[0][0], z[1][0], b), w1 = a_row(z[0][1], z[1][1], b);
#    pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                _mm512_store_ps(mo + (b * 4 + c) * ps, a_row(w0, w1, c));
            }
        }
    }
}

// Lane j of the result = the sum of the lanes of a[j]: four levels of pairing vectors, each
// keeping half of each lane group of both (index vectors ia / ib per level).
static inline __attribute__((always_inline)) SS_AVX512 __m512 hsum16(__m512 a[16],
                                                                     const __m512i ia[4],
                                                                     const __m512i ib[4])
{
#    pragma GCC unroll 4
    for (int lv = 0, n = 16; lv < 4; lv++, n /= 2) {
#    pragma GCC unroll 8
        for (int i = 0; i < n / 2; i++) {
            a[i] = _mm512_add_ps(_mm512_permutex2var_ps(a[2 * i], ia[lv], a[2 * i + 1]),
                                 _mm512_permutex2var_ps(a[2 * i], ib[lv], a[2 * i + 1]));
        }
    }
    return a[0];
}

// The level index vectors of hsum16: level lv sees groups of 16 >> lv lanes; the first half of
// the result takes from the first vector, the second from the other; ia the first half of each
// group, ib the second.
static void hsum16_indices(__m512i ia[4], __m512i ib[4])
{
    for (int lv = 0; lv < 4; lv++) {
        int32_t xa[LANES], xb[LANES];
        int size = LANES >> lv, half = size / 2;
        for (int j = 0; j < LANES; j++) {
            int src = j < LANES / 2 ? 0 : LANES, jj = j % (LANES / 2);
            int g = jj / half, off = jj % half;
            xa[j] = src + g * size + off;
            xb[j] = src + g * size + half + off;
        }
        memcpy(&ia[lv], xa, sizeof(xa));
        memcpy(&ib[lv], xb, sizeof(xb));
    }
}

// du[ob][sb][o * 4 + s] += sum over the nv tile vectors of dm[o] x[s], for one position.
static SS_AVX512 __attribute__((noinline)) void wgrad_product(const float *xp,
                                                              const float *dp,
                                                              float *du,
                                                              int64_t nob,
                                                              int64_t nsb,
                                                              int nv,
                                                              const __m512i ia[4],
                                                              const __m512i ib[4])
{
    for (int64_t ob = 0; ob < nob; ob++) {
        for (int64_t sb = 0; sb < nsb; sb++) {
            __m512 acc[WG_BLK * WG_BLK];
#    pragma GCC unroll 16
            for (int i = 0; i < WG_BLK * WG_BLK; i++) {
                acc[i] = _mm512_setzero_ps();
            }
            const float *dv = dp + ob * WG_BLK * WG_NV * LANES;
            const float *xv = xp + sb * WG_BLK * WG_NV * LANES;
            for (int v = 0; v < nv; v++) {
                __m512 g[WG_BLK], x[WG_BLK];
#    pragma GCC unroll 4
                for (int k = 0; k < WG_BLK; k++) {
                    g[k] = _mm512_load_ps(dv + (k * WG_NV + v) * LANES);
                    x[k] = _mm512_load_ps(xv + (k * WG_NV + v) * LANES);
                }
#    pragma GCC unroll 4
                for (int o = 0; o < WG_BLK; o++) {
#    pragma GCC unroll 4
                    for (int s = 0; s < WG_BLK; s++) {
                        acc[o * WG_BLK + s] = _mm512_fmadd_ps(g[o], x[s], acc[o * WG_BLK + s]);
                    }
                }
            }
            float *u = du + (ob * nsb + sb) * WG_BLK * WG_BLK;
            _mm512_store_ps(u, _mm512_add_ps(_mm512_load_ps(u), hsum16(acc, ia, ib)));
        }
    }
}

// G^T along one axis, rows (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1): 4 values ->
// 3 at out[0], out[os], out[2 os].
static void gt_rows(float *out, int64_t os, float r0, float r1, float r2, float r3)
{
    out[0] = r0 + 0.5f * (r1 + r2);
    out[os] = 0.5f * (r1 - r2);
    out[2 * os] = 0.5f * (r1 + r2) + r3;
}

// G^T u G of one (o, s): 4 x 4 x 4 -> 3 x 3 x 3 (tap t = (a * 3 + b) * 3 + c).
static void wino_kernel_grad(float g[27], const float u[WN_POS])
{
    float t1[4][4][3], t2[4][3][3];
    for (int a = 0; a < 4; a++) {
        for (int b = 0; b < 4; b++) {
            const float *r = u + (a * 4 + b) * 4;
            gt_rows(t1[a][b], 1, r[0], r[1], r[2], r[3]);
        }
    }
    for (int a = 0; a < 4; a++) {
        for (int c = 0; c < 3; c++) {
            gt_rows(&t2[a][0][c], 3, t1[a][0][c], t1[a][1][c], t1[a][2][c], t1[a][3][c]);
        }
    }
    for (int b = 0; b < 3; b++) {
        for (int c = 0; c < 3; c++) {
            gt_rows(g + b * 3 + c, 9, t2[0][b][c], t2[1][b][c], t2[2][b][c], t2[3][b][c]);
        }
    }
}

// One unit: tile plane lt of the slab into its dU (zeroed here).
static void wgrad_unit(const ss__dconv_t *d,
                       const slab_t *sl,
                       const float *pad,
                       const float *dy,
                       int64_t lt,
                       float *du,
                       float *X,
                       float *D,
                       const __m512i ia[4],
                       const __m512i ib[4])
{
    int64_t ntv = tile_vectors_per_plane(d), nob = wg_blocks(d->cout), nsb = wg_blocks(d->cin);
    int64_t xs = wgx_stride(d), ds = wgd_stride(d), ups = nob * nsb * WG_BLK * WG_BLK;
    memset(du, 0, sizeof(float) * (size_t)wgu_floats(d));
    for (int64_t tv0 = 0; tv0 < ntv; tv0 += WG_NV) {
        int nv = (int)min64(WG_NV, ntv - tv0);
        // One position plane at a time: a quarter of the transformed tiles in the buffers, so
        // that a chunk can hold 4x more tile vectors (fewer lane sums) in the same cache.
        for (int a = 0; a < 4; a++) {
            for (int v = 0; v < nv; v++) {
                wino_input(d, sl, pad, lt, tv0 + v, a, X + v * LANES, WG_NV * LANES, xs);
                wino_dy(d, sl, dy, lt, tv0 + v, a, D + v * LANES, WG_NV * LANES, ds);
            }
            for (int p = 0; p < 16; p++) {
                wgrad_product(X + p * xs, D + p * ds, du + (a * 16 + p) * ups, nob, nsb, nv, ia,
                              ib);
            }
        }
    }
}

static void wino_bwd_weight(const ss__dconv_t *d,
                            float *dw,
                            const float *x,
                            const float *dy,
                            void *work,
                            int nt,
                            const volatile int *cancel)
{
    float *pad = work_slab(work, d);
    float *total = (float *)((char *)pad + slab_bytes(d)), *units = total + wgu_floats(d);
    slab_t sl = slab_make(d, 1);
    int64_t uf = wgu_floats(d);
    __m512i ia[4], ib[4];
    hsum16_indices(ia, ib);
    memset(total, 0, sizeof(float) * (size_t)uf);
#    pragma omp parallel num_threads(nt)
    {
        float *X = work_thread(work, d);
        float *D = X + 16 * wgx_stride(d);
        // Channel padding (to whole 4 x 4 blocks) is never written: zeros.
        memset(X, 0, wgrad_thread_bytes(d));
        for (int64_t n = 0; n < d->n; n++) {
            for (int64_t i0 = 0; i0 < d->dst[0]; i0 += sl.planes) {
                fill_slab(d, &sl, pad, x + n * d->src_sn, i0);
                int64_t nlt = min64(sl.planes, d->dst[0] - i0) / 2;
#    pragma omp for schedule(dynamic, 1)
                for (int64_t lt = 0; lt < nlt; lt++) {
                    if (!cancelled(cancel)) {
                        wgrad_unit(d, &sl, pad, dy + n * d->dst_sn, lt, units + lt * uf, X, D, ia,
                                   ib);
                    }
                }
#    pragma omp for schedule(static)
                for (int64_t e = 0; e < uf; e++) {
                    float t = total[e];
                    for (int64_t lt = 0; lt < nlt; lt++) {
                        t += units[lt * uf + e];
                    }
                    total[e] = t;
                }
            }
        }
        int64_t nsb = wg_blocks(d->cin), ups = wg_blocks(d->cout) * nsb * WG_BLK * WG_BLK;
#    pragma omp for schedule(static)
        for (int64_t os = 0; os < d->cout * d->cin; os++) {
            int64_t o = os / d->cin, s = os % d->cin;
            int64_t blk = ((o / WG_BLK) * nsb + s / WG_BLK) * WG_BLK * WG_BLK;
            float u[WN_POS];
            for (int p = 0; p < WN_POS; p++) {
                u[p] = total[p * ups + blk + (o % WG_BLK) * WG_BLK + s % WG_BLK];
            }
            wino_kernel_grad(dw + os * 27, u);
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
    if (wino_suits(d)) {
        wino_fwd(d, dst, src, w, flip, bias, work, nt, cancel);
        return;
    }
    float *wr = work;
    group_t *groups = (group_t *)((char *)work + weights_bytes(d));
    float *pad = work_slab(work, d);
    slab_t sl = slab_make(d, 0);
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
static inline __attribute__((always_inline)) SS_AVX512 void wgrad_rows(const ss__dconv_t *d,
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
    __mmask16 tail = ss__first_lanes(width - full);
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

static SS_AVX512 __attribute__((noinline)) void wgrad_rows_1(const ss__dconv_t *d,
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

static SS_AVX512 __attribute__((noinline)) void wgrad_rows_2(const ss__dconv_t *d,
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

static SS_AVX512 __attribute__((noinline)) void wgrad_rows_3(const ss__dconv_t *d,
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
    if (wino_suits(d)) {
        wino_bwd_weight(d, dw, x, dy, work, nt, cancel);
        return;
    }
    // The workspace's layout is the forward's (weights, groups, slab); only the slab is used.
    float *pad = work_slab(work, d);
    slab_t sl = slab_make(d, 0);
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

#else // !SS_HAVE_AVX512

void ss__dconv_enable(int on)
{
    (void)on;
}

int ss__dconv_suits(const ss__dconv_t *d, int wgrad)
{
    (void)d, (void)wgrad;
    return 0;
}

void ss__dconv_wino_enable(int on)
{
    (void)on;
}

// The direct slab or Winograd's, the larger.
static size_t slab_bytes(const ss__dconv_t *d)
{
    int64_t chan = max64(slab_make(d, 0).chan, slab_make(d, wino_suits(d)).chan);
    return round_line(sizeof(float) * (size_t)(d->cin * chan));
}

static size_t wgrad_shared_bytes(const ss__dconv_t *d);

size_t ss__dconv_work_bytes(const ss__dconv_t *d)
{
    (void)d;
    return 0;
}

size_t ss__dconv_thread_bytes(const ss__dconv_t *d)
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
