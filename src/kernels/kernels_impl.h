// kernels_impl.h: helpers shared by the kernel sources (not installed, not public).
#ifndef SS_KERNELS_IMPL_H
#define SS_KERNELS_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// The library is built for baseline x86-64 (no -march=native), so a binary runs on any node of a
// cluster. Hot loops that are compute bound at SSE2 width (erf/exp polynomials, softmax rows,
// double-precision statistics) are also compiled for AVX2 and AVX-512 and picked at load time
// (GCC function multi-versioning, an ifunc). ISO C mode (-std=c11) implies -ffp-contract=off, so
// no clone fuses multiply-adds; reductions may still round by the clone's lane count, which keeps
// results deterministic on one machine but not bit-equal across CPU generations.
// -DSS_NO_CLONES builds the baseline loops only (to test them on an AVX-512 machine).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 &&           \
    !defined(SS_NO_CLONES)
#    define SS_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#    define SS_CLONES
#endif

// c ? a : b through integer masks. GCC (with the default -ftrapping-math) will not if-convert a
// float `?:` whose result feeds more float arithmetic, which would leave the whole loop scalar.
static inline float ss__selectf(int c, float a, float b)
{
    int32_t ai, bi, m = c ? -1 : 0;
    memcpy(&ai, &a, sizeof(ai));
    memcpy(&bi, &b, sizeof(bi));
    int32_t r = (ai & m) | (bi & ~m);
    float y;
    memcpy(&y, &r, sizeof(y));
    return y;
}

// AVX-512 kernels (direct convolutions, small-token linear layers, AdamW) are compiled for
// x86-64 by GCC or Clang with a per-function target and picked at run time where the CPU has
// AVX-512F. SS_HAVE_AVX512 says they exist in this build; ss__cpu_avx512() whether this CPU
// runs them (asked once); ss__first_lanes(n) masks a vector's first n of 16 floats (a row's
// tail).
#if defined(__x86_64__) && defined(__GNUC__)
#    define SS_HAVE_AVX512 1
#    include <immintrin.h>
#    define SS_AVX512 __attribute__((target("avx512f")))
int ss__cpu_avx512(void);
static inline __mmask16 ss__first_lanes(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffffu : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}
#else
#    define SS_HAVE_AVX512 0
#endif

// The activations' forward over n contiguous floats (act.c; y may be x), for the layers that
// apply them inside their own pass (instance norm's epilogue).
void ss__relu_blk(float *y, const float *x, int64_t n);
void ss__leaky_blk(float *y, const float *x, int64_t n, float slope);

// A stride-1 convolution from a source to a destination volume: dst[o][i][j][q] = sum over
// source channels s and taps (a, b, c) of w * src[s][i + a - lo0][j + b - lo1][q + c - lo2],
// zero outside the source. Spatial blocks dense, batch and channel strides free.
typedef struct {
    int64_t n, cin, cout;                   // batch, source channels, destination channels
    int64_t src[3], dst[3];                 // extents (I, J, K)
    int64_t k[3], lo[3];                    // kernel and source offset (lo may be negative)
    int64_t src_sn, src_sc, dst_sn, dst_sc; // batch and channel strides
} ss__dconv_t;

// 1 when the direct kernels take this shape on this CPU for a forward / bwd_data pass (wgrad 0)
// or a weight gradient (wgrad 1), and ss__dconv_enable did not turn them off (tests use it to
// reach the GEMM paths on an AVX-512 machine).
int ss__dconv_suits(const ss__dconv_t *d, int wgrad);
void ss__dconv_enable(int on);
// 0 turns the Winograd forward, bwd_data and weight gradient off (the direct loops then take
// every shape), 1 on.
void ss__dconv_wino_enable(int on);

// linear_small.c: forward, bwd_data and weight gradient of linear layers over 1..64 tokens
// (AVX-512). ss__lin_small_suits: the CPU has the kernels, they are enabled (tests turn them off
// with ss__lin_small_enable(0)) and 1 <= t <= 64. Both calls need work of ss__lin_small_work_bytes
// (64-byte aligned); beta as in linear.h (0: y / dw never read).
int ss__lin_small_suits(int64_t t);
void ss__lin_small_enable(int on);
size_t ss__lin_small_work_bytes(int64_t in, int64_t out, int nthreads);
void ss__lin_small_fwd(float *y,
                       const float *x,
                       const float *w,
                       int64_t t,
                       int64_t in,
                       int64_t out,
                       float beta,
                       float *work,
                       int nt);
void ss__lin_small_dx(float *dx,
                      const float *dy,
                      const float *w,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt);
void ss__lin_small_dw(float *dw,
                      const float *dy,
                      const float *x,
                      int64_t t,
                      int64_t in,
                      int64_t out,
                      float beta,
                      float *work,
                      int nt);

// 0 makes the Adam steps and sums of squares take the portable loops on an AVX-512 machine too
// (tests compare the two), 1 lets them use AVX-512 where the CPU has it.
void ss__optim_vector_enable(int on);
// Workspace of either call below (64-byte aligned): ss__dconv_work_bytes shared bytes, then
// ss__dconv_thread_bytes per thread (both multiples of 64).
size_t ss__dconv_work_bytes(const ss__dconv_t *d);
size_t ss__dconv_thread_bytes(const ss__dconv_t *d);
// dst = the convolution + bias (may be NULL). flip 0: w is (cout, cin, k); flip 1: w is
// (cin, cout, k) applied with every tap reversed (a convolution's bwd_data from dy).
void ss__dconv_fwd(const ss__dconv_t *d,
                   float *dst,
                   const float *src,
                   const float *w,
                   int flip,
                   const float *bias,
                   void *work,
                   int nt,
                   const volatile int *cancel);
// dw (cout, cin, k) = the weight gradient of the convolution d from x (its source) and dy (the
// gradient of its destination); the same for any thread count.
void ss__dconv_bwd_weight(const ss__dconv_t *d,
                          float *dw,
                          const float *x,
                          const float *dy,
                          void *work,
                          int nt,
                          const volatile int *cancel);

#endif
