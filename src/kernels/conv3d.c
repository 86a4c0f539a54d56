#include "shardseg/conv3d.h"

#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "shardseg/blas.h"

#include "kernels_impl.h"

// Tile sizes, measured on the development machine (Zen 4, 1 MB L2 per core, OpenBLAS 0.3.21
// Cooperlake sgemm): a 32 x 256 x 864 GEMM on an L2-resident col tile runs at ~80 GFLOP/s per
// core, a 32 x 4096 x 864 one that streams from memory at ~35-50. Plane tiles re-measured on
// Sapphire Rapids (2 MB L2): 512 columns beat 256 and 1024 by 3-5% (32 channels, 64^3).
enum {
    TILE_POS = 256,           // output positions per gathered tile: 864 x 256 floats = 0.9 MB
    TILE_PLANE_COLS = 512,    // plane-tile columns (whole rows): P 96 x 640, Z 96 x 512 floats
    TILE_POS_DIRECT = 2048,   // positions per tile when x itself is the col matrix (1x1x1)
    CHUNK_ROWS = 1024,        // most col rows per GEMM; longer reductions are split into chunks
    MIN_COLS_PER_THREAD = 64, // bwd_weight: narrower dw column blocks split the tiles instead
    BWW_BLOCK_MAX = 64,       // bwd_weight, plane tiles: most units (ci, a) per GEMM
    BWW_MIN_BLOCKS = 4,       // ... and at least this many blocks (threads split blocks)
    PASS_UNITS = 256,         // ... units accumulated per pass over the tiles
    PTILE_MIN_PLANE = 256,    // forward / bwd_data: plane tiles from this many plane positions
    FLOAT_ALIGN = SS_ALIGN / (int)sizeof(float),
};

// Shapes of one call, in the kernel's terms. kc = cin * kvol is the im2col row count.
typedef struct {
    int64_t n, cin, cout;
    int64_t in[3], out[3];
    int64_t k[3], s[3], lo[3];
    int64_t kvol, kc, pin, pout;
    int direct;      // 1x1x1, stride 1, no padding: x itself is the col matrix
    int nonoverlap;  // kernel <= stride in every dim: bwd_data scatters without conflicts
    int unit_stride; // stride 1 in every dim
} geom_t;

// Workspace plan of one pass: `shared` floats, then one `per_thread` block per thread.
typedef struct {
    int64_t tile;       // positions per tile
    int64_t kb;         // rows per GEMM chunk
    int64_t shared;     // floats
    int64_t per_thread; // floats, multiple of FLOAT_ALIGN
    int groups_rows;    // bwd_weight: thread groups splitting dw columns
    int groups_tiles;   // bwd_weight: thread groups splitting tiles (partial dw each)
    int64_t blk;        // bwd_weight, plane tiles: units per GEMM (fixed blocks)
} wplan_t;

// A volume tensor's data with its batch and channel strides (spatial block dense).
typedef struct {
    float *p;
    int64_t sn, sc;
} vol_t;

typedef struct {
    const float *p;
    int64_t sn, sc;
} cvol_t;

// Gather/scatter map between a volume and a col matrix. Col row r is (channel, t0, t1, t2) over
// taps[]; col column p is grid position (p0, p1, p2). Volume index along dim d:
// pos * step + base + tap * tapstep, zero (gather) or dropped (scatter) when outside [0, src).
typedef struct {
    int64_t src[3], grid[3], step[3], base[3], tapstep[3], taps[3];
    int64_t chan; // channel stride of the volume
} gmap_t;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return -floor_div(-a, b);
}

static int64_t round_floats(int64_t n)
{
    return (n + FLOAT_ALIGN - 1) / FLOAT_ALIGN * FLOAT_ALIGN;
}

static int cancelled(const volatile int *flag)
{
    return flag != NULL && *flag != 0;
}

// ---------------------------------------------------------------------------------------------
// Gather and scatter

// Grid positions [*a, *b) along the last dim whose volume index pos * step + off is in [0, n).
static void valid_range(int64_t n, int64_t step, int64_t off, int64_t grid, int64_t *a, int64_t *b)
{
    // Stride 1 is the common case: skip the two divisions.
    int64_t lo = step == 1 ? -off : ceil_div(-off, step);
    int64_t hi = step == 1 ? n - off : ceil_div(n - off, step);
    *a = min64(max64(lo, 0), grid);
    *b = min64(max64(hi, *a), grid);
}

// A run of grid positions along the last dim: col columns [t, t + len) hold positions
// (q0, q1, q2 .. q2 + len - 1).
typedef struct {
    int64_t q0, q1, q2, len, t;
} seg_t;

// Splits np grid positions from p0 into runs, once per tile (rows then reuse them).
static int tile_segments(const gmap_t *m, int64_t p0, int64_t np, seg_t *segs)
{
    int64_t q0 = p0 / (m->grid[1] * m->grid[2]), q1 = p0 / m->grid[2] % m->grid[1];
    int64_t q2 = p0 % m->grid[2];
    int ns = 0;
    for (int64_t t = 0; t < np; ns++) {
        seg_t sg = {q0, q1, q2, min64(m->grid[2] - q2, np - t), t};
        segs[ns] = sg;
        t += sg.len;
        q2 = 0;
        if (++q1 == m->grid[1]) {
            q1 = 0;
            q0++;
        }
    }
    return ns;
}

// Channel and taps of a col row, advanced row by row (no divisions in the row loop).
typedef struct {
    int64_t ch, tap[3];
} rowpos_t;

static rowpos_t rowpos_at(const gmap_t *m, int64_t r)
{
    int64_t t12 = m->taps[1] * m->taps[2];
    rowpos_t rp = {r / (m->taps[0] * t12),
                   {r / t12 % m->taps[0], r / m->taps[2] % m->taps[1], r % m->taps[2]}};
    return rp;
}

static void rowpos_next(const gmap_t *m, rowpos_t *rp)
{
    if (++rp->tap[2] < m->taps[2]) {
        return;
    }
    rp->tap[2] = 0;
    if (++rp->tap[1] < m->taps[1]) {
        return;
    }
    rp->tap[1] = 0;
    if (++rp->tap[0] < m->taps[0]) {
        return;
    }
    rp->tap[0] = 0;
    rp->ch++;
}

// Element offset, within its channel, of the volume row that segment sg of row rp reads; -1
// when that row lies in the padding.
static int64_t seg_row(const gmap_t *m, const rowpos_t *rp, const seg_t *sg)
{
    int64_t i = sg->q0 * m->step[0] + m->base[0] + rp->tap[0] * m->tapstep[0];
    int64_t j = sg->q1 * m->step[1] + m->base[1] + rp->tap[1] * m->tapstep[1];
    if (i < 0 || i >= m->src[0] || j < 0 || j >= m->src[1]) {
        return -1;
    }
    return (i * m->src[1] + j) * m->src[2];
}

// In-range part [*a, *b) of segment sg given the row's span [va, vb); empty for a padding row.
static void seg_span(const seg_t *sg, int64_t row, int64_t va, int64_t vb, int64_t *a, int64_t *b)
{
    int64_t end = sg->q2 + sg->len;
    *a = row < 0 ? end : min64(max64(va, sg->q2), end);
    *b = row < 0 ? end : min64(max64(vb, *a), end);
}

// Segments are one output row and most zero fills are empty: skip the library call for those.
static void zero_floats(float *d, int64_t n)
{
    if (n > 0) {
        memset(d, 0, sizeof(float) * (size_t)n);
    }
}

static void copy_floats(float *restrict d, const float *restrict v, int64_t n)
{
    if (n > 0) {
        memcpy(d, v, sizeof(float) * (size_t)n);
    }
}

static void gather_row(float *restrict d,
                       const float *restrict vc,
                       const gmap_t *m,
                       const rowpos_t *rp,
                       const seg_t *segs,
                       int ns)
{
    int64_t off = m->base[2] + rp->tap[2] * m->tapstep[2], step = m->step[2], va, vb;
    valid_range(m->src[2], step, off, m->grid[2], &va, &vb);
    for (int s = 0; s < ns; s++) {
        const seg_t *sg = &segs[s];
        int64_t row = seg_row(m, rp, sg), a, b;
        seg_span(sg, row, va, vb, &a, &b);
        float *dst = d + sg->t; // dst[q - q2] holds grid position q
        zero_floats(dst, a - sg->q2);
        zero_floats(dst + (b - sg->q2), sg->q2 + sg->len - b);
        if (step == 1) {
            copy_floats(dst + (a - sg->q2), vc + row + off + a, b - a);
        } else {
            for (int64_t q = a; q < b; q++) {
                dst[q - sg->q2] = vc[row + off + q * step];
            }
        }
    }
}

static void scatter_row(float *restrict vc,
                        const float *restrict d,
                        const gmap_t *m,
                        const rowpos_t *rp,
                        const seg_t *segs,
                        int ns)
{
    int64_t off = m->base[2] + rp->tap[2] * m->tapstep[2], step = m->step[2], va, vb;
    valid_range(m->src[2], step, off, m->grid[2], &va, &vb);
    for (int s = 0; s < ns; s++) {
        const seg_t *sg = &segs[s];
        int64_t row = seg_row(m, rp, sg), a, b;
        seg_span(sg, row, va, vb, &a, &b);
        const float *src = d + sg->t;
        if (step == 1) {
            copy_floats(vc + row + off + a, src + (a - sg->q2), b - a);
        } else {
            for (int64_t q = a; q < b; q++) {
                vc[row + off + q * step] = src[q - sg->q2];
            }
        }
    }
}

// col[r - r0][t] (row stride ld) for rows [r0, r1) and grid positions [p0, p0 + np), np <=
// TILE_POS.
static void gmap_gather(float *col,
                        int64_t ld,
                        const float *vol,
                        const gmap_t *m,
                        int64_t r0,
                        int64_t r1,
                        int64_t p0,
                        int64_t np)
{
    seg_t segs[TILE_POS];
    int ns = tile_segments(m, p0, np, segs);
    rowpos_t rp = rowpos_at(m, r0);
    for (int64_t r = r0; r < r1; r++, rowpos_next(m, &rp)) {
        gather_row(col + (r - r0) * ld, vol + rp.ch * m->chan, m, &rp, segs, ns);
    }
}

// Inverse of gmap_gather: assigns (not adds) col entries to their in-range volume positions.
static void gmap_scatter(float *vol,
                         const float *col,
                         int64_t ld,
                         const gmap_t *m,
                         int64_t r0,
                         int64_t r1,
                         int64_t p0,
                         int64_t np)
{
    seg_t segs[TILE_POS];
    int ns = tile_segments(m, p0, np, segs);
    rowpos_t rp = rowpos_at(m, r0);
    for (int64_t r = r0; r < r1; r++, rowpos_next(m, &rp)) {
        scatter_row(vol + rp.ch * m->chan, col + (r - r0) * ld, m, &rp, segs, ns);
    }
}

// im2col map of the forward pass: rows (ci, a, b, c), columns output positions.
static gmap_t gmap_fwd(const geom_t *g, int64_t chan)
{
    gmap_t m;
    for (int d = 0; d < 3; d++) {
        m.src[d] = g->in[d];
        m.grid[d] = g->out[d];
        m.step[d] = g->s[d];
        m.base[d] = -g->lo[d];
        m.tapstep[d] = 1;
        m.taps[d] = g->k[d];
    }
    m.chan = chan;
    return m;
}

// ---------------------------------------------------------------------------------------------
// Plane tiles (stride 1 along j and k)
//
// A plane tile is `rows` consecutive output rows (along j) of one output plane o0. Output (o0, o1,
// o2) reads the source at (o0 s0 + a - lo0, o1 + b - lo1, o2 + c - lo2). For a source channel ci
// and tap a, what the tile reads for all kJ taps b is a run of rows + kJ - 1 consecutive rows of
// one source plane: the tile gathers it once, unpadded (mostly one memcpy), as row "unit" (ci, a)
// of a block P. Tap b is then the column offset b * src2 of P, so kJ GEMMs read P in place with
// K = units ("input shift"). The kK taps c go to the GEMM's M instead ("output shift"): one GEMM
// gives Z[c][m] for all c, and the store adds Z[c][m][t + c - lo2], skipping k-sources outside
// the row (zero padding along k is never materialised, so no column is wasted). Against im2col
// rows (ci, a, b, c) this copies ~kJ kK rows / (rows + kJ - 1) times less (7x for 3^3, 8 rows of
// 64), and OpenBLAS packs each P column block once for kK * Cout uses instead of Cout (with 32
// channels the packing cost ~15% of the GEMM time that way).

typedef struct {
    int64_t k[3], lo[3]; // kernel; source index = out * stride + tap - lo (lo < 0 is allowed)
    int64_t s0;          // stride along i (1 along j and k)
    int64_t src[3];      // source extents
    int64_t dst[3];      // output extents
    int64_t units;       // P rows: source channels x kI
    int64_t rows;        // output rows (along j) per tile
    int64_t jt;          // tiles per output plane
    int64_t ld;          // P row length: (rows + kJ - 1) * src2
    int64_t chan;        // source channel stride
} ptile_t;

static ptile_t ptile_make(const int64_t k[3],
                          const int64_t lo[3],
                          int64_t s0,
                          const int64_t src[3],
                          const int64_t dst[3],
                          int64_t channels,
                          int64_t chan)
{
    ptile_t pt = {.s0 = s0, .units = channels * k[0], .chan = chan};
    for (int d = 0; d < 3; d++) {
        pt.k[d] = k[d];
        pt.lo[d] = lo[d];
        pt.src[d] = src[d];
        pt.dst[d] = dst[d];
    }
    // Equal tiles of about TILE_PLANE_COLS columns, each within one output plane.
    int64_t rows = min64(max64(TILE_PLANE_COLS / max64(src[2], 1), 1), max64(dst[1], 1));
    pt.jt = ceil_div(max64(dst[1], 1), rows);
    pt.rows = ceil_div(max64(dst[1], 1), pt.jt);
    pt.ld = (pt.rows + k[1] - 1) * src[2];
    return pt;
}

// Plane tiles need unit stride within planes; the weight gradient takes them wherever they apply.
static int ptile_shape(const geom_t *g)
{
    return !g->direct && g->s[1] == 1 && g->s[2] == 1;
}

// The forward and bwd_data take plane tiles only on planes of PTILE_MIN_PLANE+ positions: on
// smaller ones (the 8^3 and 12^3 levels of UNETR) a tile is a GEMM of 64-144 columns and the
// gathered tiles are faster (256 -> 128 channels at 8^3 on 2 threads, alternating runs: forward
// 10.1 -> 5.9 ms, bwd_data 10.4 -> 5.3 ms; at 12^3 bwd_data 22.9 -> 17.9 ms, forward even).
static int use_ptile_fwd(const geom_t *g)
{
    return ptile_shape(g) && g->out[1] * g->out[2] >= PTILE_MIN_PLANE;
}

static int use_ptile_bwd(const geom_t *g)
{
    return g->unit_stride && g->in[1] * g->in[2] >= PTILE_MIN_PLANE;
}

// Forward: the source is x and the output y.
static ptile_t ptile_fwd(const geom_t *g, int64_t chan)
{
    return ptile_make(g->k, g->lo, g->s[0], g->in, g->out, g->cin, chan);
}

// bwd_data with unit stride: dx is the forward of dy with the flipped, transposed kernel and
// offsets kernel - 1 - pad_lo (negative when pad_lo >= kernel: a crop).
static ptile_t ptile_bwd(const geom_t *g, int64_t chan)
{
    int64_t lo[3];
    for (int d = 0; d < 3; d++) {
        lo[d] = g->k[d] - 1 - g->lo[d];
    }
    return ptile_make(g->k, lo, 1, g->out, g->in, g->cout, chan);
}

// Tiles per sample; tile tt covers output rows [*j0, *j0 + *nrows) of output plane *o0.
static int64_t ptile_count(const ptile_t *pt)
{
    return pt->dst[0] * pt->jt;
}

static void ptile_at(const ptile_t *pt, int64_t tt, int64_t *o0, int64_t *j0, int64_t *nrows)
{
    *o0 = tt / pt->jt;
    *j0 = tt % pt->jt * pt->rows;
    *nrows = min64(pt->rows, pt->dst[1] - *j0);
}

// P[u - u0][0 .. (nrows + kJ - 1) * src2) for units u in [u0, u1): the source rows of unit u
// (channel u / kI, plane o0 s0 + u % kI - lo0) read by the tile, zero where out of range.
static void ptile_gather(const ptile_t *pt,
                         float *p,
                         const float *vin,
                         int64_t o0,
                         int64_t j0,
                         int64_t nrows,
                         int64_t u0,
                         int64_t u1)
{
    int64_t nr = nrows + pt->k[1] - 1, w = pt->src[2], jx0 = j0 - pt->lo[1];
    int64_t ja = min64(max64(-jx0, 0), nr), jb = min64(max64(pt->src[1] - jx0, ja), nr);
    for (int64_t u = u0; u < u1; u++) {
        float *d = p + (u - u0) * pt->ld;
        int64_t ix = o0 * pt->s0 + u % pt->k[0] - pt->lo[0];
        if (ix < 0 || ix >= pt->src[0]) {
            zero_floats(d, nr * w);
            continue;
        }
        const float *s = vin + u / pt->k[0] * pt->chan + (ix * pt->src[1] + jx0 + ja) * w;
        zero_floats(d, ja * w);
        copy_floats(d + ja * w, s, (jb - ja) * w);
        zero_floats(d + jb * w, (nr - jb) * w);
    }
}

// wt[b][c][m][u] = the weight of output channel m, unit u = (channel, a), taps b, c; forward
// (flip 0: m = co, channel ci) or bwd_data (flip 1: m = ci, channel co, all taps reversed).
static void
repack_ptile(float *restrict wt, const float *restrict w, const geom_t *g, int flip, int64_t co)
{
    int64_t k0 = g->k[0], k1 = g->k[1], k2 = g->k[2];
    int64_t mout = flip ? g->cin : g->cout, units = (flip ? g->cout : g->cin) * k0;
    for (int64_t ci = 0; ci < g->cin; ci++) {
        const float *src = w + (co * g->cin + ci) * g->kvol;
        for (int64_t t = 0; t < g->kvol; t++) {
            int64_t a = t / (k1 * k2), b = t / k2 % k1, c = t % k2;
            int64_t m = flip ? ci : co, u = (flip ? co : ci) * k0 + (flip ? k0 - 1 - a : a);
            int64_t bb = flip ? k1 - 1 - b : b, cc = flip ? k2 - 1 - c : c;
            wt[((bb * k2 + cc) * mout + m) * units + u] = src[t];
        }
    }
}

// z (kK * mout x nrows * src2) = sum over taps b of wt[b] (kK * mout x units) * P_b, P gathered
// from vin in chunks of kb units.
static void ptile_conv(const ptile_t *pt,
                       int64_t kb,
                       const float *wt,
                       int64_t mout,
                       const float *vin,
                       float *p,
                       float *z,
                       int64_t o0,
                       int64_t j0,
                       int64_t nrows)
{
    int64_t ncols = nrows * pt->src[2], mz = pt->k[2] * mout;
    for (int64_t u0 = 0; u0 < pt->units; u0 += kb) {
        int64_t nu = min64(kb, pt->units - u0);
        ptile_gather(pt, p, vin, o0, j0, nrows, u0, u0 + nu);
        for (int64_t b = 0; b < pt->k[1]; b++) {
            ss_gemm_serial(SS_NO_TRANS, SS_NO_TRANS, mz, ncols, nu, 1.0f,
                           wt + b * mz * pt->units + u0, pt->units, p + b * pt->src[2], pt->ld,
                           u0 == 0 && b == 0 ? 0.0f : 1.0f, z, ncols);
        }
    }
}

// out[m][o0][j0 + rho][q] = (bias +) the sum over taps c, in tap order, of z[c][m][rho * src2 +
// q + c - lo2] where that k-source is inside the row.
static void ptile_store(const ptile_t *pt,
                        float *out,
                        int64_t ldo,
                        const float *z,
                        int64_t mout,
                        const float *bias,
                        int64_t o0,
                        int64_t j0,
                        int64_t nrows)
{
    int64_t w = pt->src[2], dw = pt->dst[2], ncols = nrows * w, zc = mout * ncols;
    for (int64_t m = 0; m < mout; m++) {
        float b = bias != NULL ? bias[m] : 0.0f;
        for (int64_t rho = 0; rho < nrows; rho++) {
            float *restrict o = out + m * ldo + (o0 * pt->dst[1] + j0 + rho) * dw;
            // -O2 leaves plain loops scalar (this pass took 10% of the forward that way).
#pragma omp simd
            for (int64_t q = 0; q < dw; q++) {
                o[q] = b;
            }
            for (int64_t c = 0; c < pt->k[2]; c++) {
                int64_t qa = max64(pt->lo[2] - c, 0), qb = min64(w + pt->lo[2] - c, dw);
                if (qb <= qa) {
                    continue;
                }
                const float *restrict t = z + c * zc + m * ncols + rho * w + (qa + c - pt->lo[2]);
#pragma omp simd
                for (int64_t q = qa; q < qb; q++) {
                    o[q] += t[q - qa];
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes, checks and plans

static geom_t
geom_make(const ss_conv3d_params_t *p, int64_t n, int64_t cin, int64_t cout, const int64_t in[3])
{
    geom_t g = {.n = n, .cin = cin, .cout = cout, .kvol = 1, .pin = 1, .pout = 1};
    g.direct = g.nonoverlap = g.unit_stride = 1;
    for (int d = 0; d < 3; d++) {
        g.in[d] = in[d];
        g.k[d] = p->kernel[d];
        g.s[d] = p->stride[d];
        g.lo[d] = p->pad_lo[d];
        g.out[d] = (in[d] + p->pad_lo[d] + p->pad_hi[d] - p->kernel[d]) / p->stride[d] + 1;
        g.kvol *= g.k[d];
        g.pin *= g.in[d];
        g.pout *= g.out[d];
        g.direct &= g.k[d] == 1 && g.s[d] == 1 && p->pad_lo[d] == 0 && p->pad_hi[d] == 0;
        g.nonoverlap &= g.k[d] <= g.s[d];
        g.unit_stride &= g.s[d] == 1;
    }
    g.kc = cin * g.kvol;
    return g;
}

// The direct kernels' view of the forward (x -> y) and of bwd_data (dy -> dx, the flipped kernel
// at offsets kernel - 1 - pad_lo); strides are filled in by the caller.
static ss__dconv_t dconv_fwd_of(const geom_t *g)
{
    ss__dconv_t d = {.n = g->n, .cin = g->cin, .cout = g->cout};
    for (int i = 0; i < 3; i++) {
        d.src[i] = g->in[i];
        d.dst[i] = g->out[i];
        d.k[i] = g->k[i];
        d.lo[i] = g->lo[i];
    }
    return d;
}

static ss__dconv_t dconv_bwd_of(const geom_t *g)
{
    ss__dconv_t d = {.n = g->n, .cin = g->cout, .cout = g->cin};
    for (int i = 0; i < 3; i++) {
        d.src[i] = g->out[i];
        d.dst[i] = g->in[i];
        d.k[i] = g->k[i];
        d.lo[i] = g->k[i] - 1 - g->lo[i];
    }
    return d;
}

static int use_dconv(const geom_t *g, const ss__dconv_t *d, int wgrad)
{
    return g->unit_stride && ss__dconv_suits(d, wgrad);
}

// A direct pass: its shared block (repacked weights, the plane's vector groups, the slab), then
// per thread the Winograd tiles where that path is taken. Both sizes are whole cache lines, so
// the kernels find the thread blocks right after ss__dconv_work_bytes.
static wplan_t plan_dconv(const ss__dconv_t *d)
{
    wplan_t pl = {0};
    pl.shared = (int64_t)(ss__dconv_work_bytes(d) / sizeof(float));
    pl.per_thread = (int64_t)(ss__dconv_thread_bytes(d) / sizeof(float));
    return pl;
}

// Equal chunks of at most CHUNK_ROWS rows.
static int64_t chunk_rows(int64_t rows)
{
    int64_t nch = max64(ceil_div(rows, CHUNK_ROWS), 1);
    return max64(ceil_div(rows, nch), 1);
}

// Plane-tile plan: repacked weights shared; per thread a P chunk and the Z tile.
static wplan_t plan_ptile(const ptile_t *pt, int64_t mout, int64_t wsize)
{
    wplan_t pl = {0};
    pl.tile = pt->rows;
    pl.kb = chunk_rows(pt->units);
    pl.shared = round_floats(wsize);
    pl.per_thread =
        round_floats(pl.kb * pt->ld) + round_floats(pt->k[2] * mout * pt->rows * pt->src[2]);
    return pl;
}

static wplan_t plan_fwd(const geom_t *g)
{
    ss__dconv_t dc = dconv_fwd_of(g);
    if (use_dconv(g, &dc, 0)) {
        return plan_dconv(&dc);
    }
    if (use_ptile_fwd(g)) {
        ptile_t pt = ptile_fwd(g, 0);
        return plan_ptile(&pt, g->cout, g->cout * g->kc);
    }
    wplan_t pl = {0};
    pl.tile = max64(min64(g->direct ? TILE_POS_DIRECT : TILE_POS, g->pout), 1);
    pl.kb = g->direct ? g->kc : chunk_rows(g->kc);
    pl.per_thread = g->direct ? 0 : round_floats(pl.kb * pl.tile);
    return pl;
}

// Largest number of taps of one stride phase: ceil(k / s) per dim (phase 0 has the most).
static int64_t phase_max_taps(const geom_t *g)
{
    return ceil_div(g->k[0], g->s[0]) * ceil_div(g->k[1], g->s[1]) * ceil_div(g->k[2], g->s[2]);
}

static wplan_t plan_bwd_data(const geom_t *g)
{
    ss__dconv_t dc = dconv_bwd_of(g);
    if (use_dconv(g, &dc, 0)) {
        return plan_dconv(&dc);
    }
    if (g->nonoverlap) {
        return plan_fwd(g); // the same col tiles, scattered instead of gathered
    }
    if (use_ptile_bwd(g)) {
        ptile_t pt = ptile_bwd(g, 0);
        return plan_ptile(&pt, g->cin, g->cout * g->kc);
    }
    wplan_t pl = {0};
    int64_t qmax = 1;
    for (int d = 0; d < 3; d++) {
        qmax *= ceil_div(g->in[d], g->s[d]);
    }
    pl.tile = max64(min64(TILE_POS, qmax), 1);
    pl.kb = chunk_rows(g->cout * phase_max_taps(g));
    pl.shared = round_floats(g->cout * g->kc);
    // Gathered dy chunk, then the dx tile before its scatter.
    pl.per_thread = round_floats(pl.kb * pl.tile) + round_floats(g->cin * pl.tile);
    return pl;
}

// bwd_weight works on "units": im2col rows, or plane-tile units (ci, a) that stand for kJ kK dw
// columns each.
static wplan_t plan_bwd_weight(const geom_t *g, int nthreads)
{
    ss__dconv_t dc = dconv_fwd_of(g);
    if (use_dconv(g, &dc, 1)) {
        return plan_dconv(&dc);
    }
    wplan_t pl = {0};
    // Per unit: taps (dw columns), the dy tile's copies and the col block's row length.
    int64_t units = g->kc, taps = 1, dcopies = 1, cols = 0, ld = 0;
    if (ptile_shape(g)) {
        ptile_t pt = ptile_fwd(g, 0);
        units = pt.units;
        taps = g->k[1] * g->k[2];
        dcopies = g->k[2];
        pl.tile = pt.rows;
        cols = pt.rows * pt.src[2];
        ld = g->k[1] * cols;
    } else {
        pl.tile = max64(min64(g->direct ? TILE_POS_DIRECT : TILE_POS, g->pout), 1);
        cols = ld = pl.tile;
    }
    // Plane tiles: GEMMs over fixed blocks of units, whatever the thread count, so that each dw
    // element comes out of GEMMs of the same shapes (OpenBLAS's small-matrix kernels round
    // differently for other M). Row groups own whole blocks; a pass covers up to PASS_UNITS.
    int64_t blk = 1, nblk = units;
    if (ptile_shape(g)) {
        nblk = max64(ceil_div(units, BWW_BLOCK_MAX), min64(units, BWW_MIN_BLOCKS));
        blk = ceil_div(units, nblk);
        nblk = ceil_div(units, blk);
    }
    int64_t groups = min64(max64(g->kc / MIN_COLS_PER_THREAD, 1), min64(nthreads, nblk));
    pl.groups_rows = (int)max64(groups, 1);
    pl.groups_tiles = nthreads / pl.groups_rows;
    pl.shared = (pl.groups_tiles - 1) * round_floats(g->cout * g->kc);
    pl.blk = blk;
    pl.kb = ptile_shape(g) ? blk * min64(max64(PASS_UNITS / blk, 1), ceil_div(nblk, pl.groups_rows))
                           : chunk_rows(ceil_div(units, pl.groups_rows));
    // Accumulators (kb x taps x Cout) for dw^T, the dy tile (kK shifted copies for plane tiles),
    // then the col tile (rows (unit, b) for plane tiles) unless x is used in place.
    pl.per_thread = round_floats(taps * pl.kb * g->cout) + round_floats(dcopies * g->cout * cols) +
                    (g->direct ? 0 : round_floats(pl.kb * ld));
    return pl;
}

static size_t plan_bytes(const wplan_t *pl, int nthreads)
{
    return sizeof(float) * (size_t)(pl->shared + nthreads * pl->per_thread);
}

static ss_status_t check_params(const ss_conv3d_params_t *p, ss_error_t *err)
{
    if (p == NULL) {
        SS_FAIL(err, SS_EINVAL, "conv3d: params is NULL");
    }
    for (int d = 0; d < 3; d++) {
        if (p->kernel[d] < 1 || p->stride[d] < 1 || p->pad_lo[d] < 0 || p->pad_hi[d] < 0) {
            SS_FAIL(err, SS_EINVAL,
                    "conv3d: dim %d has kernel %d, stride %d, padding %d/%d; need kernel >= 1, "
                    "stride >= 1, padding >= 0",
                    d, p->kernel[d], p->stride[d], p->pad_lo[d], p->pad_hi[d]);
        }
    }
    return SS_OK;
}

ss_conv3d_params_t ss_conv3d_params_cube(int k, int s, int pad)
{
    ss_conv3d_params_t p = {{k, k, k}, {s, s, s}, {pad, pad, pad}, {pad, pad, pad}};
    return p;
}

ss_status_t ss_conv3d_out_shape(int64_t yshape[5],
                                const int64_t xshape[5],
                                int64_t cout,
                                const ss_conv3d_params_t *p,
                                ss_error_t *err)
{
    SS_TRY(check_params(p, err));
    if (cout < 1 || xshape[0] < 0 || xshape[1] < 1) {
        SS_FAIL(err, SS_EINVAL,
                "conv3d: batch %lld, in channels %lld, out channels %lld; need "
                "batch >= 0 and channels >= 1",
                (long long)xshape[0], (long long)xshape[1], (long long)cout);
    }
    yshape[0] = xshape[0];
    yshape[1] = cout;
    for (int d = 0; d < 3; d++) {
        int64_t span = xshape[2 + d] + p->pad_lo[d] + p->pad_hi[d];
        if (xshape[2 + d] < 0 || span < p->kernel[d]) {
            SS_FAIL(err, SS_ESHAPE,
                    "conv3d: input extent %lld plus padding %d/%d along dim %d is smaller than "
                    "the kernel (%d)",
                    (long long)xshape[2 + d], p->pad_lo[d], p->pad_hi[d], d, p->kernel[d]);
        }
        yshape[2 + d] = (span - p->kernel[d]) / p->stride[d] + 1;
    }
    return SS_OK;
}

size_t
ss_conv3d_workspace_size(const ss_conv3d_params_t *p, const ss_conv3d_shape_t *s, int nthreads)
{
    int64_t xs[5] = {s->n, s->cin, s->in[0], s->in[1], s->in[2]}, ys[5];
    if (ss_conv3d_out_shape(ys, xs, s->cout, p, NULL) != SS_OK) {
        return 0;
    }
    nthreads = nthreads < 1 ? 1 : nthreads;
    geom_t g = geom_make(p, s->n, s->cin, s->cout, s->in);
    wplan_t f = plan_fwd(&g), d = plan_bwd_data(&g), w = plan_bwd_weight(&g, nthreads);
    size_t a = plan_bytes(&f, nthreads), b = plan_bytes(&d, nthreads);
    size_t c = plan_bytes(&w, nthreads);
    return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

// A volume tensor: float32, 5-D, dense (J*K, K, 1) spatial strides, non-negative N/C strides.
static ss_status_t check_vol(const ss_tensor_t *t, const char *name, ss_error_t *err)
{
    if (t == NULL || t->dtype != SS_F32 || t->ndim != 5) {
        SS_FAIL(err, SS_ESHAPE, "conv3d: %s must be a 5-D float32 tensor (N, C, I, J, K)", name);
    }
    if (t->stride[4] != 1 || t->stride[3] != t->shape[4] ||
        t->stride[2] != t->shape[3] * t->shape[4] || t->stride[0] < 0 || t->stride[1] < 0) {
        SS_FAIL(err, SS_EINVAL,
                "conv3d: %s needs dense (J*K, K, 1) spatial strides and "
                "non-negative N, C strides (a slab view along I is fine)",
                name);
    }
    if (t->data == NULL && ss_tensor_numel(t) > 0) {
        SS_FAIL(err, SS_EINVAL, "conv3d: %s has no data", name);
    }
    return SS_OK;
}

// w or dw: contiguous (Cout, Cin, kI, kJ, kK) matching the kernel and x's channels.
static ss_status_t check_weight(const ss_tensor_t *w,
                                const char *name,
                                int64_t cin,
                                const ss_conv3d_params_t *p,
                                ss_error_t *err)
{
    if (w == NULL || w->dtype != SS_F32 || w->ndim != 5 || !ss_tensor_is_contiguous(w) ||
        w->data == NULL) {
        SS_FAIL(err, SS_EINVAL, "conv3d: %s must be a contiguous 5-D float32 tensor with data",
                name);
    }
    if (w->shape[1] != cin || w->shape[2] != p->kernel[0] || w->shape[3] != p->kernel[1] ||
        w->shape[4] != p->kernel[2]) {
        char buf[96];
        ss_tensor_shape_str(w, buf, sizeof(buf));
        SS_FAIL(err, SS_ESHAPE, "conv3d: %s has shape %s; need (Cout, %lld, %d, %d, %d)", name, buf,
                (long long)cin, p->kernel[0], p->kernel[1], p->kernel[2]);
    }
    return SS_OK;
}

static ss_status_t check_bias(const ss_tensor_t *b, const char *name, int64_t cout, ss_error_t *err)
{
    if (b != NULL && (b->dtype != SS_F32 || b->ndim != 1 || b->shape[0] != cout ||
                      b->stride[0] != 1 || b->data == NULL)) {
        SS_FAIL(err, SS_ESHAPE, "conv3d: %s must be a contiguous float32 tensor of shape (%lld)",
                name, (long long)cout);
    }
    return SS_OK;
}

// The volume tensor `got` must have shape `want` (5 entries).
static ss_status_t
check_vol_shape(const ss_tensor_t *got, const int64_t want[5], const char *name, ss_error_t *err)
{
    for (int d = 0; d < 5; d++) {
        if (got->shape[d] != want[d]) {
            char buf[96];
            ss_tensor_shape_str(got, buf, sizeof(buf));
            SS_FAIL(err, SS_ESHAPE, "conv3d: %s has shape %s; need (%lld, %lld, %lld, %lld, %lld)",
                    name, buf, (long long)want[0], (long long)want[1], (long long)want[2],
                    (long long)want[3], (long long)want[4]);
        }
    }
    return SS_OK;
}

// Byte range [lo, hi) spanned by a tensor (strides non-negative).
static void span_of(const ss_tensor_t *t, uintptr_t *lo, uintptr_t *hi)
{
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = (uintptr_t)t->data;
            return;
        }
        last += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = (uintptr_t)t->data;
    *hi = *lo + (uintptr_t)(last + 1) * sizeof(float);
}

static ss_status_t check_disjoint(
    const ss_tensor_t *out, const ss_tensor_t *in, const char *on, const char *inn, ss_error_t *err)
{
    if (out == NULL || in == NULL) {
        return SS_OK;
    }
    uintptr_t a0, a1, b0, b1;
    span_of(out, &a0, &a1);
    span_of(in, &b0, &b1);
    if (a0 < b1 && b0 < a1) {
        SS_FAIL(err, SS_EINVAL, "conv3d: output %s overlaps input %s; pass separate buffers", on,
                inn);
    }
    return SS_OK;
}

static ss_status_t check_exec(const ss_exec_t *ex, size_t need, ss_error_t *err)
{
    size_t have = ex != NULL && ex->work != NULL ? ex->work_bytes : 0;
    if (need > have) {
        SS_FAIL(err, SS_EINVAL,
                "conv3d: workspace of %zu bytes is too small; need %zu "
                "(ss_conv3d_workspace_size)",
                have, need);
    }
    return SS_OK;
}

static int exec_threads(const ss_exec_t *ex)
{
    return ex != NULL && ex->nthreads > 1 ? ex->nthreads : 1;
}

static const volatile int *exec_cancel(const ss_exec_t *ex)
{
    return ex != NULL ? ex->cancel : NULL;
}

static float *exec_work(const ss_exec_t *ex)
{
    return ex != NULL ? (float *)ex->work : NULL;
}

// The per-thread block of thread t (NULL when the pass needs none).
static float *thread_work(float *work, const wplan_t *pl, int t)
{
    return pl->per_thread > 0 ? work + pl->shared + (int64_t)t * pl->per_thread : NULL;
}

static vol_t vol_of(const ss_tensor_t *t)
{
    vol_t v = {ss_tensor_f32(t), t->stride[0], t->stride[1]};
    return v;
}

static cvol_t cvol_of(const ss_tensor_t *t)
{
    cvol_t v = {ss_tensor_f32(t), t->stride[0], t->stride[1]};
    return v;
}

// ---------------------------------------------------------------------------------------------
// Forward

typedef struct {
    const geom_t *g;
    const wplan_t *pl;
    const ptile_t *pt; // NULL: im2col tiles
    vol_t y;
    cvol_t x;
    const float *w, *bias;
    float *work;
    const volatile int *cancel;
} fwd_ctx_t;

static void add_bias(float *y, int64_t ldy, const float *bias, int64_t cout, int64_t np)
{
    for (int64_t co = 0; co < cout; co++) {
        float b = bias[co];
        float *row = y + co * ldy;
        for (int64_t t = 0; t < np; t++) {
            row[t] += b;
        }
    }
}

// y[n][:, p0:p0+np] = w * col, the col tile built chunk by chunk (accumulating over chunks).
static void fwd_tile(const fwd_ctx_t *c, float *col, int64_t n, int64_t p0, int64_t np)
{
    const geom_t *g = c->g;
    const float *xn = c->x.p + n * c->x.sn;
    float *y = c->y.p + n * c->y.sn + p0;
    gmap_t m = gmap_fwd(g, c->x.sc);
    for (int64_t r0 = 0; r0 < g->kc; r0 += c->pl->kb) {
        int64_t nr = min64(c->pl->kb, g->kc - r0), ldb = np;
        const float *b = col;
        if (g->direct) {
            b = xn + r0 * c->x.sc + p0;
            ldb = c->x.sc;
        } else {
            gmap_gather(col, np, xn, &m, r0, r0 + nr, p0, np);
        }
        ss_gemm_serial(SS_NO_TRANS, SS_NO_TRANS, g->cout, np, nr, 1.0f, c->w + r0, g->kc, b, ldb,
                       r0 == 0 ? 0.0f : 1.0f, y, c->y.sc);
    }
    if (c->bias != NULL) {
        add_bias(y, c->y.sc, c->bias, g->cout, np);
    }
}

// Plane tile tt of sample n.
static void fwd_ptile(const fwd_ctx_t *c, float *buf, int64_t n, int64_t tt)
{
    const ptile_t *pt = c->pt;
    int64_t o0, j0, nrows;
    ptile_at(pt, tt, &o0, &j0, &nrows);
    float *z = buf + round_floats(c->pl->kb * pt->ld);
    ptile_conv(pt, c->pl->kb, c->work, c->g->cout, c->x.p + n * c->x.sn, buf, z, o0, j0, nrows);
    ptile_store(pt, c->y.p + n * c->y.sn, c->y.sc, z, c->g->cout, c->bias, o0, j0, nrows);
}

static void fwd_run(const fwd_ctx_t *c, int nt)
{
    const geom_t *g = c->g;
    int64_t per = c->pt ? ptile_count(c->pt) : ceil_div(g->pout, c->pl->tile);
    int64_t total = g->n * per, repack = c->pt ? g->cout : 0;
#pragma omp parallel num_threads(nt) default(none) shared(c, g, per, total, repack)
    {
        float *buf = thread_work(c->work, c->pl, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t co = 0; co < repack; co++) {
            repack_ptile(c->work, c->w, g, 0, co);
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < total; it++) {
            if (cancelled(c->cancel)) {
                continue;
            }
            if (c->pt != NULL) {
                fwd_ptile(c, buf, it / per, it % per);
                continue;
            }
            int64_t p0 = it % per * c->pl->tile;
            fwd_tile(c, buf, it / per, p0, min64(c->pl->tile, g->pout - p0));
        }
    }
}

static ss_status_t fwd_check(const ss_tensor_t *y,
                             const ss_tensor_t *x,
                             const ss_tensor_t *w,
                             const ss_tensor_t *bias,
                             const ss_conv3d_params_t *p,
                             ss_error_t *err)
{
    SS_TRY(check_params(p, err));
    SS_TRY(check_vol(x, "x", err));
    SS_TRY(check_vol(y, "y", err));
    SS_TRY(check_weight(w, "w", x->shape[1], p, err));
    SS_TRY(check_bias(bias, "bias", w->shape[0], err));
    int64_t want[5];
    SS_TRY(ss_conv3d_out_shape(want, x->shape, w->shape[0], p, err));
    SS_TRY(check_vol_shape(y, want, "y", err));
    SS_TRY(check_disjoint(y, x, "y", "x", err));
    SS_TRY(check_disjoint(y, w, "y", "w", err));
    return check_disjoint(y, bias, "y", "bias", err);
}

ss_status_t ss_conv3d_fwd(ss_tensor_t *y,
                          const ss_tensor_t *x,
                          const ss_tensor_t *w,
                          const ss_tensor_t *bias,
                          const ss_conv3d_params_t *p,
                          const ss_exec_t *ex,
                          ss_error_t *err)
{
    SS_TRY(fwd_check(y, x, w, bias, p, err));
    if (ss_tensor_numel(y) == 0) {
        return SS_OK;
    }
    int nt = exec_threads(ex);
    geom_t g = geom_make(p, x->shape[0], x->shape[1], w->shape[0], x->shape + 2);
    wplan_t pl = plan_fwd(&g);
    SS_TRY(check_exec(ex, plan_bytes(&pl, nt), err));
    ss__dconv_t d = dconv_fwd_of(&g);
    if (use_dconv(&g, &d, 0)) {
        d.src_sn = x->stride[0], d.src_sc = x->stride[1];
        d.dst_sn = y->stride[0], d.dst_sc = y->stride[1];
        ss__dconv_fwd(&d, ss_tensor_f32(y), ss_tensor_f32(x), ss_tensor_f32(w), 0,
                      bias ? ss_tensor_f32(bias) : NULL, exec_work(ex), nt, exec_cancel(ex));
        if (cancelled(exec_cancel(ex))) {
            SS_FAIL(err, SS_ECANCELLED, "conv3d forward cancelled");
        }
        return SS_OK;
    }
    ptile_t pt = ptile_fwd(&g, x->stride[1]);
    fwd_ctx_t c = {&g,
                   &pl,
                   use_ptile_fwd(&g) ? &pt : NULL,
                   vol_of(y),
                   cvol_of(x),
                   ss_tensor_f32(w),
                   bias ? ss_tensor_f32(bias) : NULL,
                   exec_work(ex),
                   exec_cancel(ex)};
    fwd_run(&c, nt);
    if (cancelled(c.cancel)) {
        SS_FAIL(err, SS_ECANCELLED, "conv3d forward cancelled");
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Backward data
//
// Non-overlapping patches (kernel <= stride): dcol = w^T dy per tile, scattered to dx; every dx
// element receives at most one value, so tiles never conflict. Otherwise dx is a stride-1
// convolution of dy per stride phase: dx positions i with (i + pad_lo) % s == r only see the taps
// a = r + s*m, at dy index (i + pad_lo - r) / s - m. Each phase gathers dy into a col tile with
// rows (co, m0, m1, m2) and multiplies by the matching slice of w, repacked once per call.

typedef struct {
    int64_t r[3];  // phase per dim
    int64_t nm[3]; // taps per dim
    int64_t qlo[3], q[3];
    int64_t taps, qtot;
} phase_t;

typedef struct {
    const geom_t *g;
    const wplan_t *pl;
    const ptile_t *pt; // unit stride: plane tiles instead of the phase loop
    vol_t dx;
    cvol_t dy;
    const float *w;
    float *wt; // repacked weights (shared workspace)
    float *work;
    const volatile int *cancel;
} bwd_ctx_t;

static phase_t phase_get(const geom_t *g, int64_t ph)
{
    phase_t f;
    f.r[0] = ph / (g->s[1] * g->s[2]);
    f.r[1] = ph / g->s[2] % g->s[1];
    f.r[2] = ph % g->s[2];
    f.taps = f.qtot = 1;
    for (int d = 0; d < 3; d++) {
        int64_t r = f.r[d], s = g->s[d];
        f.nm[d] = r < g->k[d] ? (g->k[d] - 1 - r) / s + 1 : 0;
        f.qlo[d] = ceil_div(g->lo[d] - r, s);
        f.q[d] = max64(floor_div(g->in[d] - 1 + g->lo[d] - r, s) - f.qlo[d] + 1, 0);
        f.taps *= f.nm[d];
        f.qtot *= f.q[d];
    }
    return f;
}

static int64_t phase_count(const geom_t *g)
{
    return g->s[0] * g->s[1] * g->s[2];
}

// Tiles of one sample over all phases.
static int64_t phase_tiles(const geom_t *g, int64_t tile)
{
    int64_t total = 0;
    for (int64_t ph = 0; ph < phase_count(g); ph++) {
        total += ceil_div(phase_get(g, ph).qtot, tile);
    }
    return total;
}

// Finds the phase holding tile `it` of a sample; returns the tile's index within the phase and
// the phase's offset into the repacked weights.
static int64_t phase_find(const geom_t *g, int64_t tile, int64_t it, phase_t *f, int64_t *woff)
{
    *woff = 0;
    for (int64_t ph = 0;; ph++) {
        *f = phase_get(g, ph);
        int64_t nt = ceil_div(f->qtot, tile);
        if (it < nt) {
            return it;
        }
        it -= nt;
        *woff += g->cin * g->cout * f->taps;
    }
}

// wt[phase block][ci][(co, m0, m1, m2)] = w[co][ci][r0 + s0 m0][r1 + s1 m1][r2 + s2 m2].
static void repack_phases(float *restrict wt, const float *restrict w, const geom_t *g, int64_t ci)
{
    int64_t woff = 0;
    for (int64_t ph = 0; ph < phase_count(g); ph++) {
        phase_t f = phase_get(g, ph);
        float *dst = wt + woff + ci * g->cout * f.taps;
        for (int64_t co = 0; co < g->cout; co++) {
            const float *src = w + (co * g->cin + ci) * g->kvol;
            for (int64_t m0 = 0; m0 < f.nm[0]; m0++) {
                for (int64_t m1 = 0; m1 < f.nm[1]; m1++) {
                    for (int64_t m2 = 0; m2 < f.nm[2]; m2++) {
                        int64_t a = f.r[0] + g->s[0] * m0, b = f.r[1] + g->s[1] * m1;
                        int64_t cc = f.r[2] + g->s[2] * m2;
                        *dst++ = src[(a * g->k[1] + b) * g->k[2] + cc];
                    }
                }
            }
        }
        woff += g->cin * g->cout * f.taps;
    }
}

// Gather map from dy for a phase: rows (co, m), column q - qlo, dy index q - m.
static gmap_t gmap_phase_dy(const geom_t *g, const phase_t *f, int64_t chan)
{
    gmap_t m;
    for (int d = 0; d < 3; d++) {
        m.src[d] = g->out[d];
        m.grid[d] = f->q[d];
        m.step[d] = 1;
        m.base[d] = f->qlo[d];
        m.tapstep[d] = -1;
        m.taps[d] = f->nm[d];
    }
    m.chan = chan;
    return m;
}

// Scatter map to dx for a phase: rows ci, column q - qlo, dx index q * s + r - pad_lo.
static gmap_t gmap_phase_dx(const geom_t *g, const phase_t *f, int64_t chan)
{
    gmap_t m;
    for (int d = 0; d < 3; d++) {
        m.src[d] = g->in[d];
        m.grid[d] = f->q[d];
        m.step[d] = g->s[d];
        m.base[d] = f->qlo[d] * g->s[d] + f->r[d] - g->lo[d];
        m.tapstep[d] = 0;
        m.taps[d] = 1;
    }
    m.chan = chan;
    return m;
}

static void zero_rows(float *p, int64_t ld, int64_t rows, int64_t n)
{
    for (int64_t r = 0; r < rows; r++) {
        memset(p + r * ld, 0, sizeof(float) * (size_t)n);
    }
}

static void bwd_phase_tile(const bwd_ctx_t *c,
                           float *gbuf,
                           int64_t n,
                           const phase_t *f,
                           int64_t woff,
                           int64_t p0,
                           int64_t np)
{
    const geom_t *g = c->g;
    int64_t kg = g->cout * f->taps;
    float *dxn = c->dx.p + n * c->dx.sn;
    float *out = gbuf + round_floats(c->pl->kb * c->pl->tile);
    if (kg == 0) {
        zero_rows(out, np, g->cin, np);
    }
    gmap_t m = gmap_phase_dy(g, f, c->dy.sc);
    for (int64_t r0 = 0; r0 < kg; r0 += c->pl->kb) {
        int64_t nr = min64(c->pl->kb, kg - r0);
        gmap_gather(gbuf, np, c->dy.p + n * c->dy.sn, &m, r0, r0 + nr, p0, np);
        ss_gemm_serial(SS_NO_TRANS, SS_NO_TRANS, g->cin, np, nr, 1.0f, c->wt + woff + r0, kg, gbuf,
                       np, r0 == 0 ? 0.0f : 1.0f, out, np);
    }
    gmap_t s = gmap_phase_dx(g, f, c->dx.sc);
    gmap_scatter(dxn, out, np, &s, 0, g->cin, p0, np);
}

static void bwd_phase_run(const bwd_ctx_t *c, int nt)
{
    int64_t per = phase_tiles(c->g, c->pl->tile), total = c->g->n * per;
#pragma omp parallel num_threads(nt) default(none) shared(c, per, total)
    {
        float *gbuf = thread_work(c->work, c->pl, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t ci = 0; ci < c->g->cin; ci++) {
            repack_phases(c->wt, c->w, c->g, ci);
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < total; it++) {
            if (cancelled(c->cancel)) {
                continue;
            }
            phase_t f;
            int64_t woff, t = phase_find(c->g, c->pl->tile, it % per, &f, &woff);
            int64_t p0 = t * c->pl->tile;
            bwd_phase_tile(c, gbuf, it / per, &f, woff, p0, min64(c->pl->tile, f.qtot - p0));
        }
    }
}

static void bwd_scatter_tile(const bwd_ctx_t *c, float *col, int64_t n, int64_t p0, int64_t np)
{
    const geom_t *g = c->g;
    const float *dy = c->dy.p + n * c->dy.sn + p0;
    float *dxn = c->dx.p + n * c->dx.sn;
    gmap_t m = gmap_fwd(g, c->dx.sc);
    for (int64_t r0 = 0; r0 < g->kc; r0 += c->pl->kb) {
        int64_t nr = min64(c->pl->kb, g->kc - r0);
        if (g->direct) {
            ss_gemm_serial(SS_TRANS, SS_NO_TRANS, nr, np, g->cout, 1.0f, c->w + r0, g->kc, dy,
                           c->dy.sc, 0.0f, dxn + r0 * c->dx.sc + p0, c->dx.sc);
            continue;
        }
        ss_gemm_serial(SS_TRANS, SS_NO_TRANS, nr, np, g->cout, 1.0f, c->w + r0, g->kc, dy, c->dy.sc,
                       0.0f, col, np);
        gmap_scatter(dxn, col, np, &m, r0, r0 + nr, p0, np);
    }
}

// 1 when the patches cover every dx position (kernel == stride and no trailing remainder).
static int patches_cover(const geom_t *g)
{
    for (int d = 0; d < 3; d++) {
        if (g->k[d] != g->s[d] || g->out[d] * g->s[d] - g->lo[d] < g->in[d]) {
            return 0;
        }
    }
    return 1;
}

static void bwd_scatter_run(const bwd_ctx_t *c, int nt)
{
    int64_t per = ceil_div(c->g->pout, c->pl->tile), total = c->g->n * per;
    int64_t planes = patches_cover(c->g) ? 0 : c->g->n * c->g->cin;
#pragma omp parallel num_threads(nt) default(none) shared(c, per, total, planes)
    {
        float *col = thread_work(c->work, c->pl, omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t pc = 0; pc < planes; pc++) {
            float *p = c->dx.p + pc / c->g->cin * c->dx.sn + pc % c->g->cin * c->dx.sc;
            memset(p, 0, sizeof(float) * (size_t)c->g->pin);
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < total; it++) {
            if (cancelled(c->cancel)) {
                continue;
            }
            int64_t p0 = it % per * c->pl->tile;
            bwd_scatter_tile(c, col, it / per, p0, min64(c->pl->tile, c->g->pout - p0));
        }
    }
}

// Unit stride: a stride-1 convolution of dy by the flipped kernel, as plane tiles.
static void bwd_ptile_run(const bwd_ctx_t *c, int nt)
{
    const geom_t *g = c->g;
    const ptile_t *pt = c->pt;
    int64_t per = ptile_count(pt), total = g->n * per;
#pragma omp parallel num_threads(nt) default(none) shared(c, g, pt, per, total)
    {
        float *p = thread_work(c->work, c->pl, omp_get_thread_num());
        float *z = p + round_floats(c->pl->kb * pt->ld);
#pragma omp for schedule(static)
        for (int64_t co = 0; co < g->cout; co++) {
            repack_ptile(c->wt, c->w, g, 1, co);
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < total; it++) {
            if (cancelled(c->cancel)) {
                continue;
            }
            int64_t n = it / per, o0, j0, nrows;
            ptile_at(pt, it % per, &o0, &j0, &nrows);
            ptile_conv(pt, c->pl->kb, c->wt, g->cin, c->dy.p + n * c->dy.sn, p, z, o0, j0, nrows);
            ptile_store(pt, c->dx.p + n * c->dx.sn, c->dx.sc, z, g->cin, NULL, o0, j0, nrows);
        }
    }
}

static ss_status_t bwd_data_check(const ss_tensor_t *dx,
                                  const ss_tensor_t *dy,
                                  const ss_tensor_t *w,
                                  const ss_conv3d_params_t *p,
                                  ss_error_t *err)
{
    SS_TRY(check_params(p, err));
    SS_TRY(check_vol(dx, "dx", err));
    SS_TRY(check_vol(dy, "dy", err));
    SS_TRY(check_weight(w, "w", dx->shape[1], p, err));
    int64_t want[5];
    SS_TRY(ss_conv3d_out_shape(want, dx->shape, w->shape[0], p, err));
    SS_TRY(check_vol_shape(dy, want, "dy", err));
    SS_TRY(check_disjoint(dx, dy, "dx", "dy", err));
    return check_disjoint(dx, w, "dx", "w", err);
}

ss_status_t ss_conv3d_bwd_data(ss_tensor_t *dx,
                               const ss_tensor_t *dy,
                               const ss_tensor_t *w,
                               const ss_conv3d_params_t *p,
                               const ss_exec_t *ex,
                               ss_error_t *err)
{
    SS_TRY(bwd_data_check(dx, dy, w, p, err));
    if (ss_tensor_numel(dx) == 0) {
        return SS_OK;
    }
    int nt = exec_threads(ex);
    geom_t g = geom_make(p, dx->shape[0], dx->shape[1], w->shape[0], dx->shape + 2);
    wplan_t pl = plan_bwd_data(&g);
    SS_TRY(check_exec(ex, plan_bytes(&pl, nt), err));
    float *work = exec_work(ex);
    ss__dconv_t d = dconv_bwd_of(&g);
    if (use_dconv(&g, &d, 0)) {
        d.src_sn = dy->stride[0], d.src_sc = dy->stride[1];
        d.dst_sn = dx->stride[0], d.dst_sc = dx->stride[1];
        ss__dconv_fwd(&d, ss_tensor_f32(dx), ss_tensor_f32(dy), ss_tensor_f32(w), 1, NULL, work, nt,
                      exec_cancel(ex));
        if (cancelled(exec_cancel(ex))) {
            SS_FAIL(err, SS_ECANCELLED, "conv3d backward (data) cancelled");
        }
        return SS_OK;
    }
    ptile_t pt = ptile_bwd(&g, dy->stride[1]);
    bwd_ctx_t c = {&g,         &pl,         use_ptile_bwd(&g) ? &pt : NULL,
                   vol_of(dx), cvol_of(dy), ss_tensor_f32(w),
                   work,       work,        exec_cancel(ex)};
    if (g.nonoverlap) {
        bwd_scatter_run(&c, nt);
    } else if (c.pt != NULL) {
        bwd_ptile_run(&c, nt);
    } else {
        bwd_phase_run(&c, nt);
    }
    if (cancelled(c.cancel)) {
        SS_FAIL(err, SS_ECANCELLED, "conv3d backward (data) cancelled");
    }
    return SS_OK;
}

// ---------------------------------------------------------------------------------------------
// Backward weight
//
// dw^T (kc x Cout) = sum over tiles of col_tile (kc x T) * dy_tile^T (T x Cout): in this
// orientation OpenBLAS packs the col tile without a transpose (a 432 x 32 x 256 GEMM runs ~20%
// faster than 32 x 432 x 256), and the small accumulator is transposed into dw at the end. With
// plane tiles (stride 1 along j and k) the col rows are (ci, a, b), one copy of consecutive x rows
// each, and the kK taps along k are kK shifted copies of the dy tile stacked along N.
// Threads form a grid of groups_rows x groups_tiles: a row group owns a column block of dw (its
// col rows) and builds only those rows, so each dw element is summed by one thread in tile
// order. Tile groups (only for narrow dw) sum disjoint tile ranges into partial copies of dw,
// added in group order.

typedef struct {
    const geom_t *g;
    const wplan_t *pl;
    const ptile_t *pt; // NULL: im2col tiles
    float *dw;
    cvol_t x, dy;
    float *work;
    const volatile int *cancel;
} bww_ctx_t;

// Per-thread blocks: accumulators, the dy tile copies, the col tile (P block of plane tiles).
typedef struct {
    float *acc, *dyt, *col;
} bww_buf_t;

// acc (nr x Cout) (+)= col rows [r0, r0 + nr) of tile (n, p0, np) times dy_tile^T.
static void bww_tile(const bww_ctx_t *c,
                     const bww_buf_t *b,
                     int64_t n,
                     int64_t p0,
                     int64_t np,
                     int64_t r0,
                     int64_t nr,
                     float beta)
{
    const geom_t *g = c->g;
    const float *xn = c->x.p + n * c->x.sn, *a = b->col;
    int64_t lda = np;
    if (g->direct) {
        a = xn + r0 * c->x.sc + p0;
        lda = c->x.sc;
    } else {
        gmap_t m = gmap_fwd(g, c->x.sc);
        gmap_gather(b->col, np, xn, &m, r0, r0 + nr, p0, np);
    }
    // dy's channel rows are a power-of-two volume apart (1 MB for 64^3): OpenBLAS packs dy^T a
    // float per row at a time, and 32 such rows thrash the 8-way L1 and L2 sets. Copying the
    // tile's rows out first is sequential and makes the packing read a compact block.
    const float *dyn = c->dy.p + n * c->dy.sn + p0;
    for (int64_t co = 0; co < g->cout; co++) {
        memcpy(b->dyt + co * np, dyn + co * c->dy.sc, sizeof(float) * (size_t)np);
    }
    ss_gemm_serial(SS_NO_TRANS, SS_TRANS, nr, g->cout, np, 1.0f, a, lda, b->dyt, np, beta, b->acc,
                   g->cout);
}

// D[c][co][rho * src2 + kx] = dy[co][o0][j0 + rho][kx - c + lo2], zero where that is outside the
// row: the dy rows of a plane tile lined up with the source columns of tap c.
static void
bww_dy_copies(const bww_ctx_t *c, float *d, int64_t n, int64_t o0, int64_t j0, int64_t nrows)
{
    const ptile_t *pt = c->pt;
    int64_t w = pt->src[2], dw = pt->dst[2], ncols = nrows * w;
    for (int64_t cc = 0; cc < pt->k[2]; cc++) {
        int64_t ka = min64(max64(cc - pt->lo[2], 0), w),
                kb = min64(max64(dw + cc - pt->lo[2], ka), w);
        for (int64_t co = 0; co < c->g->cout; co++) {
            const float *s = c->dy.p + n * c->dy.sn + co * c->dy.sc + (o0 * pt->dst[1] + j0) * dw;
            for (int64_t rho = 0; rho < nrows; rho++) {
                float *r = d + (cc * c->g->cout + co) * ncols + rho * w;
                zero_floats(r, ka);
                if (kb > ka) {
                    copy_floats(r + ka, s + rho * dw + (ka - cc + pt->lo[2]), kb - ka);
                }
                zero_floats(r + kb, w - kb);
            }
        }
    }
}

// col[(u - u0) kJ + b][rho * src2 + q] = the source row read by output row j0 + rho at taps
// (a, b) of unit u = (ci, a): tap b's rows of the tile are consecutive source rows, so each col
// row is one copy (plus zero rows at the volume's edges).
static void ptile_gather_rows(const ptile_t *pt,
                              float *col,
                              const float *vin,
                              int64_t o0,
                              int64_t j0,
                              int64_t nrows,
                              int64_t u0,
                              int64_t u1)
{
    int64_t w = pt->src[2], ncols = nrows * w;
    for (int64_t u = u0; u < u1; u++) {
        int64_t ix = o0 * pt->s0 + u % pt->k[0] - pt->lo[0];
        for (int64_t b = 0; b < pt->k[1]; b++) {
            float *d = col + ((u - u0) * pt->k[1] + b) * ncols;
            int64_t jx0 = j0 - pt->lo[1] + b;
            int64_t ja = min64(max64(-jx0, 0), nrows);
            int64_t jb = min64(max64(pt->src[1] - jx0, ja), nrows);
            if (ix < 0 || ix >= pt->src[0]) {
                ja = jb = nrows;
            }
            zero_floats(d, ja * w);
            if (jb > ja) {
                copy_floats(d + ja * w,
                            vin + u / pt->k[0] * pt->chan + (ix * pt->src[1] + jx0 + ja) * w,
                            (jb - ja) * w);
            }
            zero_floats(d + jb * w, (nrows - jb) * w);
        }
    }
}

// Plane-tile version: acc (nu kJ x kK Cout) (+)= col * D^T for units [u0, u0 + nu), col rows
// (unit, b), so acc[u][b][c][co] sums x at taps (a, b, c) of unit u times dy over the tile. The
// kK taps along k are stacked along N (shifted copies of the small dy tile): OpenBLAS packs the
// col tile once for kK Cout uses and D once per block of units. (Reading tap b in place from
// one gathered block, as the forward does, repacks D for every b: 14% of the time.)
static void bww_ptile(const bww_ctx_t *c,
                      const bww_buf_t *b,
                      int64_t n,
                      int64_t tt,
                      int64_t u0,
                      int64_t nu,
                      float beta)
{
    const ptile_t *pt = c->pt;
    int64_t o0, j0, nrows;
    ptile_at(pt, tt, &o0, &j0, &nrows);
    int64_t ncols = nrows * pt->src[2], nd = pt->k[2] * c->g->cout, k1 = pt->k[1];
    bww_dy_copies(c, b->dyt, n, o0, j0, nrows);
    ptile_gather_rows(pt, b->col, c->x.p + n * c->x.sn, o0, j0, nrows, u0, u0 + nu);
    for (int64_t r = 0; r < nu; r += c->pl->blk) {
        ss_gemm_serial(SS_NO_TRANS, SS_TRANS, min64(c->pl->blk, nu - r) * k1, nd, ncols, 1.0f,
                       b->col + r * k1 * ncols, ncols, b->dyt, ncols, beta, b->acc + r * k1 * nd,
                       nd);
    }
}

// dst[co][r] = acc[r][co] for r < rows (dst already offset to its first column).
static void transpose_into(
    float *restrict dst, int64_t ld, const float *restrict acc, int64_t rows, int64_t cout)
{
    for (int64_t co = 0; co < cout; co++) {
        for (int64_t r = 0; r < rows; r++) {
            dst[co * ld + r] = acc[r * cout + co];
        }
    }
}

static void bww_thread(const bww_ctx_t *c, int t)
{
    const geom_t *g = c->g;
    const wplan_t *pl = c->pl;
    int rg = t % pl->groups_rows, tg = t / pl->groups_rows;
    if (tg >= pl->groups_tiles) {
        return;
    }
    // Units: (ci, a) P rows with kJ kK dw columns each for plane tiles, else im2col rows.
    int64_t units = c->pt ? c->pt->units : g->kc, taps = c->pt ? g->k[1] * g->k[2] : 1;
    int64_t per = c->pt ? ptile_count(c->pt) : ceil_div(g->pout, pl->tile);
    int64_t cols = c->pt ? c->pt->rows * c->pt->src[2] : pl->tile, rlo, nunits, i0, ni;
    if (c->pt != NULL) {
        ss_split_range(ceil_div(units, pl->blk), pl->groups_rows, rg, &rlo, &nunits);
        rlo *= pl->blk;
        nunits = min64(nunits * pl->blk, units - rlo);
    } else {
        ss_split_range(units, pl->groups_rows, rg, &rlo, &nunits);
    }
    ss_split_range(g->n * per, pl->groups_tiles, tg, &i0, &ni);
    float *dst = tg == 0 ? c->dw : c->work + (tg - 1) * round_floats(g->cout * g->kc);
    bww_buf_t b = {.acc = thread_work(c->work, pl, t)};
    b.dyt = b.acc + round_floats(taps * pl->kb * g->cout);
    b.col = b.dyt + round_floats((c->pt ? g->k[2] : 1) * g->cout * cols);
    for (int64_t r0 = rlo; r0 < rlo + nunits; r0 += pl->kb) {
        int64_t nr = min64(pl->kb, rlo + nunits - r0);
        memset(b.acc, 0, sizeof(float) * (size_t)(taps * pl->kb * g->cout));
        for (int64_t it = i0; it < i0 + ni && !cancelled(c->cancel); it++) {
            float beta = it == i0 ? 0.0f : 1.0f;
            if (c->pt != NULL) {
                bww_ptile(c, &b, it / per, it % per, r0, nr, beta);
                continue;
            }
            int64_t p0 = it % per * pl->tile;
            bww_tile(c, &b, it / per, p0, min64(pl->tile, g->pout - p0), r0, nr, beta);
        }
        // acc rows are (unit, b, c) for plane tiles: dw's column order.
        transpose_into(dst + r0 * taps, g->kc, b.acc, nr * taps, g->cout);
    }
}

// Sum of n floats in a fixed order: 8 interleaved double accumulators, then lane order.
static double sum_floats(const float *p, int64_t n)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            acc[l] += p[i + l];
        }
    }
    for (; i < n; i++) {
        acc[0] += p[i];
    }
    double s = 0;
    for (int l = 0; l < 8; l++) {
        s += acc[l];
    }
    return s;
}

static void bww_run(const bww_ctx_t *c, int nt)
{
    int64_t nel = c->g->cout * c->g->kc, part = round_floats(nel);
    int groups = c->pl->groups_tiles;
#pragma omp parallel num_threads(nt) default(none) shared(c, nel, part, groups)
    {
        bww_thread(c, omp_get_thread_num());
        if (groups > 1) {
#pragma omp barrier
#pragma omp for schedule(static)
            for (int64_t e = 0; e < nel; e++) {
                for (int gi = 1; gi < groups; gi++) {
                    c->dw[e] += c->work[(gi - 1) * part + e];
                }
            }
        }
    }
}

// dbias[co] = the sum of dy over the batch and the output positions, in a fixed order.
static void dbias_run(float *dbias, cvol_t dy, const geom_t *g, int nt)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t co = 0; co < g->cout; co++) {
        double s = 0;
        for (int64_t n = 0; n < g->n; n++) {
            s += sum_floats(dy.p + n * dy.sn + co * dy.sc, g->pout);
        }
        dbias[co] = (float)s;
    }
}

static ss_status_t bwd_weight_check(const ss_tensor_t *dw,
                                    const ss_tensor_t *dbias,
                                    const ss_tensor_t *x,
                                    const ss_tensor_t *dy,
                                    const ss_conv3d_params_t *p,
                                    ss_error_t *err)
{
    SS_TRY(check_params(p, err));
    SS_TRY(check_vol(x, "x", err));
    SS_TRY(check_vol(dy, "dy", err));
    SS_TRY(check_weight(dw, "dw", x->shape[1], p, err));
    SS_TRY(check_bias(dbias, "dbias", dw->shape[0], err));
    int64_t want[5];
    SS_TRY(ss_conv3d_out_shape(want, x->shape, dw->shape[0], p, err));
    SS_TRY(check_vol_shape(dy, want, "dy", err));
    SS_TRY(check_disjoint(dw, x, "dw", "x", err));
    SS_TRY(check_disjoint(dw, dy, "dw", "dy", err));
    SS_TRY(check_disjoint(dw, dbias, "dw", "dbias", err));
    SS_TRY(check_disjoint(dbias, x, "dbias", "x", err));
    return check_disjoint(dbias, dy, "dbias", "dy", err);
}

ss_status_t ss_conv3d_bwd_weight(ss_tensor_t *dw,
                                 ss_tensor_t *dbias,
                                 const ss_tensor_t *x,
                                 const ss_tensor_t *dy,
                                 const ss_conv3d_params_t *p,
                                 const ss_exec_t *ex,
                                 ss_error_t *err)
{
    SS_TRY(bwd_weight_check(dw, dbias, x, dy, p, err));
    int nt = exec_threads(ex);
    geom_t g = geom_make(p, x->shape[0], x->shape[1], dw->shape[0], x->shape + 2);
    wplan_t pl = plan_bwd_weight(&g, nt);
    SS_TRY(check_exec(ex, plan_bytes(&pl, nt), err));
    if (dbias != NULL) {
        dbias_run(ss_tensor_f32(dbias), cvol_of(dy), &g, nt);
    }
    ss__dconv_t d = dconv_fwd_of(&g);
    if (use_dconv(&g, &d, 1)) {
        d.src_sn = x->stride[0], d.src_sc = x->stride[1];
        d.dst_sn = dy->stride[0], d.dst_sc = dy->stride[1];
        ss__dconv_bwd_weight(&d, ss_tensor_f32(dw), ss_tensor_f32(x), ss_tensor_f32(dy),
                             exec_work(ex), nt, exec_cancel(ex));
        if (cancelled(exec_cancel(ex))) {
            SS_FAIL(err, SS_ECANCELLED, "conv3d backward (weight) cancelled");
        }
        return SS_OK;
    }
    ptile_t pt = ptile_fwd(&g, x->stride[1]);
    bww_ctx_t c = {&g,
                   &pl,
                   ptile_shape(&g) ? &pt : NULL,
                   ss_tensor_f32(dw),
                   cvol_of(x),
                   cvol_of(dy),
                   exec_work(ex),
                   exec_cancel(ex)};
    bww_run(&c, nt);
    if (cancelled(c.cancel)) {
        SS_FAIL(err, SS_ECANCELLED, "conv3d backward (weight) cancelled");
    }
    return SS_OK;
}
