// linear_small.c: the linear layers' forward, bwd_data and weight gradient for at most 64
// tokens, with AVX-512 register blocks that read the weight matrix (or write its gradient) once.
//
// Why: a ViT on 64^3 volumes with 16^3 patches has 64 tokens (and a sequence-parallel rank
// holds a slab of a longer sequence), so its GEMMs are 64 x 768 x 3072 and the like. OpenBLAS
// packs the whole weight matrix for each such call (it is used by only 64 rows) and, for the
// weight gradient, zeroes the 9 MB result in a pass of its own before adding the product to
// it; on this machine both ran at 110-130 GFLOP/s on 2 threads with the weights coming from
// memory, against a 310 GFLOP/s peak.
//
// Forward, y (t, out) (+)= x (t, in) w^T: x is transposed once into xt (in x 64, tokens along
// the vector lanes, zero past t); an output block of OB weight rows x all 64 tokens (OB x 4
// vectors) stays in registers while the OB rows of w stream by once, one broadcast per weight
// and 4 FMAs each. The block goes to y through a small transpose on the stack.
//
// bwd_data, dx (t, in) (+)= dy (t, out) w: w's columns are strided, so each thread packs a
// strip of 48 columns of w (all rows, prefetched ahead) and runs blocks of 8 tokens x 3
// vectors over it, one broadcast of dy per token and row (the strip is read from L2 8 times).
// This is the one pass OpenBLAS also does well; ours is 10-20% faster at 64 tokens.
//
// Weight gradient, dw (out, in) (+)= dy^T (out, t) x (t, in): dy is transposed into dyt (out x
// 64), x copied into a compact panel of 64 columns per thread; a block of OB rows x 64 columns
// of dw is summed over the tokens in registers and written once, with streaming stores when it
// is not accumulated (no read of the old dw, no zeroing pass).
//
// Rounding: every output element is one chain of fused multiply-adds in input order (tokens
// for dw, input features for y, outputs for dx), so results do not depend on the thread count; they
// differ from OpenBLAS's in the last bits.
#include <stdint.h>
#include <string.h>

#include <omp.h>

#include "kernels_impl.h"

#if SS_HAVE_AVX512

enum {
    LS_T = 64,     // most tokens (4 vectors of 16)
    LS_COLS = 64,  // dw: columns of a panel
    DX_COLS = 48,  // bwd_data: columns of a packed strip of w (3 vectors)
    DX_ROWS = 8,   // bwd_data: tokens per register block (8 x 3 accumulators)
    DX_AHEAD = 16, // bwd_data: rows of w prefetched ahead while a strip is packed
    OB = 5,        // weight rows per register block (5 x 4 accumulators, 4 operands, 1 broadcast)
};

// rows_x_panel reads both panels (xt and the weight gradient's x panel) with rows of LS_T floats.
_Static_assert(LS_COLS == LS_T, "the weight gradient's panel rows are LS_T floats");

static int g_disabled;

void ss__lin_small_enable(int on)
{
    g_disabled = !on;
}

int ss__lin_small_suits(int64_t t)
{
    return ss__cpu_avx512() && !g_disabled && t >= 1 && t <= LS_T;
}

size_t ss__lin_small_work_bytes(int64_t in, int64_t out, int nthreads)
{
    // forward: xt; weight gradient: dyt, then a panel per thread; bwd_data: a strip per thread.
    int64_t fwd = in * LS_T, dw = out * LS_T + (int64_t)nthreads * LS_T * LS_COLS;
    int64_t dx = (int64_t)nthreads * out * DX_COLS, most = fwd > dw ? fwd : dw;
    return sizeof(float) * (size_t)(most > dx ? most : dx);
}

// acc[r][v] += b(r) * xv[v] over 4 vectors for the nr <= OB rows of one step.
#    define LS_STEP(nr, bcast)                                                                     \
        for (int r = 0; r < (nr); r++) {                                                           \
            __m512 b = _mm512_set1_ps(bcast);                                                      \
            acc[r][0] = _mm512_fmadd_ps(b, x0, acc[r][0]);                                         \
            acc[r][1] = _mm512_fmadd_ps(b, x1, acc[r][1]);                                         \
            acc[r][2] = _mm512_fmadd_ps(b, x2, acc[r][2]);                                         \
            acc[r][3] = _mm512_fmadd_ps(b, x3, acc[r][3]);                                         \
        }

// yt block (nr x 64) = w rows [o, o + nr) times xt; the full-block loop is a separate copy so
// that its row loop has a constant trip count (and is unrolled into registers).
// acc (OB x 4 vectors) = sum over k < len of s[r * rs + k] times panel row k (64 floats); the
// forward (s = w, the panel xt) and the weight gradient (s = dyt, the panel of x) are this one
// loop. The full block is a separate copy so that its row loop has a constant trip count (and
// is unrolled into registers); always inlined, so acc stays in registers.
SS_AVX512 static inline __attribute__((always_inline)) void
rows_x_panel(__m512 acc[OB][4], const float *s, int64_t rs, const float *panel, int64_t len, int nr)
{
    for (int r = 0; r < OB; r++) {
        for (int v = 0; v < 4; v++) {
            acc[r][v] = _mm512_setzero_ps();
        }
    }
    if (nr == OB) {
        for (int64_t k = 0; k < len; k++) {
            const float *pr = panel + k * LS_T;
            __m512 x0 = _mm512_load_ps(pr), x1 = _mm512_load_ps(pr + 16);
            __m512 x2 = _mm512_load_ps(pr + 32), x3 = _mm512_load_ps(pr + 48);
#    pragma GCC unroll 5
            LS_STEP(OB, s[r * rs + k])
        }
    } else {
        for (int64_t k = 0; k < len; k++) {
            const float *pr = panel + k * LS_T;
            __m512 x0 = _mm512_load_ps(pr), x1 = _mm512_load_ps(pr + 16);
            __m512 x2 = _mm512_load_ps(pr + 32), x3 = _mm512_load_ps(pr + 48);
            LS_STEP(nr, s[r * rs + k])
        }
    }
}

// yt block (nr x 64) = w rows [o, o + nr) times xt.
SS_AVX512 static void
fwd_block(float (*out)[LS_T], const float *w, const float *xt, int64_t in, int nr)
{
    __m512 acc[OB][4];
    rows_x_panel(acc, w, in, xt, in, nr);
    for (int r = 0; r < nr; r++) {
        for (int v = 0; v < 4; v++) {
            _mm512_store_ps(out[r] + 16 * v, acc[r][v]);
        }
    }
}

void ss__lin_small_fwd(float *y,
                       const float *x,
                       const float *w,
                       int64_t t,
                       int64_t in,
                       int64_t out,
                       float beta,
                       float *work,
                       int nt)
{
    float *xt = work;
    int64_t nblk = (out + OB - 1) / OB;
#    pragma omp parallel num_threads(nt) default(none) shared(y, x, w, t, in, out, beta, xt, nblk)
    {
#    pragma omp for schedule(static)
        for (int64_t i = 0; i < in; i++) {
            for (int64_t k = 0; k < LS_T; k++) {
                xt[i * LS_T + k] = k < t ? x[k * in + i] : 0.0f;
            }
        }
#    pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; b++) {
            int64_t o = b * OB;
            int nr = (int)(out - o < OB ? out - o : OB);
            float blk[OB][LS_T] __attribute__((aligned(64)));
            fwd_block(blk, w + o * in, xt, in, nr);
            for (int64_t k = 0; k < t; k++) {
                float *yr = y + k * out + o;
                for (int r = 0; r < nr; r++) {
                    yr[r] = beta == 0.0f ? blk[r][k] : beta * yr[r] + blk[r][k];
                }
            }
        }
    }
}

// dw rows [o, o + nr), columns [i0, i0 + ni) (+)= dyt rows times the panel (t x 64).
SS_AVX512 static void dw_block(float *dw,
                               int64_t in,
                               const float *dyt,
                               const float *panel,
                               int64_t t,
                               int nr,
                               int64_t ni,
                               float beta)
{
    __m512 acc[OB][4];
    rows_x_panel(acc, dyt, LS_T, panel, t, nr);
    for (int r = 0; r < nr; r++) {
        float *row = dw + r * in;
        for (int v = 0; v < 4; v++) {
            __mmask16 mk = ss__first_lanes(ni - 16 * v);
            if (mk == 0) {
                break;
            }
            __m512 a = acc[r][v];
            if (beta != 0.0f) {
                __m512 old = _mm512_maskz_loadu_ps(mk, row + 16 * v);
                a = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(beta), old), a);
                _mm512_mask_storeu_ps(row + 16 * v, mk, a);
            } else if (mk == 0xffff && ((uintptr_t)(row + 16 * v) & 63) == 0) {
                _mm512_stream_ps(row + 16 * v, a); // never read back before the optimizer
            } else {
                _mm512_mask_storeu_ps(row + 16 * v, mk, a);
            }
        }
    }
}

SS_AVX512 static void dw_panel(float *panel, const float *x, int64_t t, int64_t in, int64_t i0)
{
    int64_t ni = in - i0 < LS_COLS ? in - i0 : LS_COLS;
    for (int64_t k = 0; k < t; k++) {
        for (int v = 0; v < 4; v++) {
            __m512 a =
                _mm512_maskz_loadu_ps(ss__first_lanes(ni - 16 * v), x + k * in + i0 + 16 * v);
            _mm512_store_ps(panel + k * LS_COLS + 16 * v, a);
        }
    }
}

SS_AVX512 static void stream_fence(void)
{
    _mm_sfence();
}

void ss__lin_small_dw(float *dw,
                      const float *dy,
                      const float *x,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt)
{
    float *dyt = work, *panels = work + out * LS_T;
    int64_t nblk = (out + OB - 1) / OB;
#    pragma omp parallel num_threads(nt) default(none)                                             \
        shared(dw, dy, x, t, in, out, beta, dyt, panels, nblk)
    {
#    pragma omp for schedule(static)
        for (int64_t o = 0; o < out; o++) {
            for (int64_t k = 0; k < t; k++) {
                dyt[o * LS_T + k] = dy[k * out + o];
            }
        }
        // Each thread owns a contiguous range of row blocks and walks the column panels over it.
        int th = omp_get_thread_num(), team = omp_get_num_threads();
        int64_t b0 = nblk * th / team, b1 = nblk * (th + 1) / team;
        float *panel = panels + (int64_t)th * LS_T * LS_COLS;
        for (int64_t i0 = 0; i0 < in && b1 > b0; i0 += LS_COLS) {
            int64_t ni = in - i0 < LS_COLS ? in - i0 : LS_COLS;
            dw_panel(panel, x, t, in, i0);
            for (int64_t b = b0; b < b1; b++) {
                int64_t o = b * OB;
                int nr = (int)(out - o < OB ? out - o : OB);
                dw_block(dw + o * in + i0, in, dyt + o * LS_T, panel, t, nr, ni, beta);
            }
        }
        stream_fence(); // the streaming stores are visible to the other threads after the region
    }
}

// strip (out x 48) = columns [i0, i0 + ni) of w, zero past ni.
SS_AVX512 static void dx_strip(float *strip, const float *w, int64_t in, int64_t out, int64_t i0)
{
    int64_t ni = in - i0 < DX_COLS ? in - i0 : DX_COLS;
    for (int64_t o = 0; o < out; o++) {
        if (o + DX_AHEAD < out) {
            for (int v = 0; v < DX_COLS / 16; v++) {
                _mm_prefetch((const char *)(w + (o + DX_AHEAD) * in + i0 + 16 * v), _MM_HINT_T0);
            }
        }
        for (int v = 0; v < DX_COLS / 16; v++) {
            __m512 a =
                _mm512_maskz_loadu_ps(ss__first_lanes(ni - 16 * v), w + o * in + i0 + 16 * v);
            _mm512_store_ps(strip + o * DX_COLS + 16 * v, a);
        }
    }
}

// dx rows [k0, k0 + nk), columns [i0, i0 + ni) (+)= dy rows times the strip, over all outputs.
SS_AVX512 static void dx_block(float *dx,
                               const float *dy,
                               const float *strip,
                               int64_t in,
                               int64_t out,
                               int nk,
                               int64_t ni,
                               float beta)
{
    __m512 acc[DX_ROWS][3];
    for (int r = 0; r < DX_ROWS; r++) {
        for (int v = 0; v < 3; v++) {
            acc[r][v] = _mm512_setzero_ps();
        }
    }
#    define DX_STEP(nr)                                                                            \
        for (int64_t o = 0; o < out; o++) {                                                        \
            const float *sr = strip + o * DX_COLS;                                                 \
            __m512 w0 = _mm512_load_ps(sr), w1 = _mm512_load_ps(sr + 16);                          \
            __m512 w2 = _mm512_load_ps(sr + 32);                                                   \
            _Pragma("GCC unroll 8") for (int r = 0; r < (nr); r++)                                 \
            {                                                                                      \
                __m512 b = _mm512_set1_ps(dy[r * out + o]);                                        \
                acc[r][0] = _mm512_fmadd_ps(b, w0, acc[r][0]);                                     \
                acc[r][1] = _mm512_fmadd_ps(b, w1, acc[r][1]);                                     \
                acc[r][2] = _mm512_fmadd_ps(b, w2, acc[r][2]);                                     \
            }                                                                                      \
        }
    if (nk == DX_ROWS) {
        DX_STEP(DX_ROWS)
    } else {
        DX_STEP(nk)
    }
#    undef DX_STEP
    for (int r = 0; r < nk; r++) {
        float *row = dx + r * in;
        for (int v = 0; v < 3; v++) {
            __mmask16 mk = ss__first_lanes(ni - 16 * v);
            if (mk == 0) {
                break;
            }
            __m512 a = acc[r][v];
            if (beta != 0.0f) {
                __m512 old = _mm512_maskz_loadu_ps(mk, row + 16 * v);
                a = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(beta), old), a);
            }
            _mm512_mask_storeu_ps(row + 16 * v, mk, a);
        }
    }
}

void ss__lin_small_dx(float *dx,
                      const float *dy,
                      const float *w,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt)
{
    int64_t nstrip = (in + DX_COLS - 1) / DX_COLS;
#    pragma omp parallel num_threads(nt) default(none)                                             \
        shared(dx, dy, w, t, in, out, beta, work, nstrip)
    {
        float *strip = work + (int64_t)omp_get_thread_num() * out * DX_COLS;
#    pragma omp for schedule(static)
        for (int64_t s = 0; s < nstrip; s++) {
            int64_t i0 = s * DX_COLS, ni = in - i0 < DX_COLS ? in - i0 : DX_COLS;
            dx_strip(strip, w, in, out, i0);
            for (int64_t k0 = 0; k0 < t; k0 += DX_ROWS) {
                int nk = (int)(t - k0 < DX_ROWS ? t - k0 : DX_ROWS);
                dx_block(dx + k0 * in + i0, dy + k0 * out, strip, in, out, nk, ni, beta);
            }
        }
    }
}

#else

void ss__lin_small_enable(int on)
{
    (void)on;
}

int ss__lin_small_suits(int64_t t)
{
    (void)t;
    return 0;
}

size_t ss__lin_small_work_bytes(int64_t in, int64_t out, int nthreads)
{
    (void)in, (void)out, (void)nthreads;
    return 0;
}

void ss__lin_small_fwd(float *y,
                       const float *x,
                       const float *w,
                       int64_t t,
                       int64_t in,
                       int64_t out,
                       float beta,
                       float *work,
                       int nt)
{
    (void)y, (void)x, (void)w, (void)t, (void)in, (void)out, (void)beta, (void)work, (void)nt;
}

void ss__lin_small_dx(float *dx,
                      const float *dy,
                      const float *w,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt)
{
    (void)dx, (void)dy, (void)w, (void)t, (void)in, (void)out, (void)beta, (void)work, (void)nt;
}

void ss__lin_small_dw(float *dw,
                      const float *dy,
                      const float *x,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt)
{
    (void)dw, (void)dy, (void)x, (void)t, (void)in, (void)out, (void)beta, (void)work, (void)nt;
}

#endif
