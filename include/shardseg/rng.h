// rng.h: counter-based random numbers (Philox4x32-10).
//
// A value is a pure function of (seed, stream, index): there is no hidden state to advance. So
// the same parameter initialisation, dropout mask or augmentation comes out whatever the rank
// count, thread count or order of evaluation: a rank that owns elements [a, b) of a tensor asks
// for exactly those indices. Streams separate independent uses (parameter i, dropout layer l at
// step s, sampler of trial t); ss_rng_stream() derives a stream id from a tuple.
//
// Each Philox call yields four 32-bit words; index n uses the call with counter n (words for
// normals come from the same call, so no index pairs are shared between elements).
// Threading: all functions are pure and thread-safe.
#ifndef SS_RNG_H
#define SS_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t seed;
    uint64_t stream;
} ss_rng_t;

static inline ss_rng_t ss_rng_make(uint64_t seed, uint64_t stream)
{
    ss_rng_t r = {seed, stream};
    return r;
}

// Mixes a tuple of ids (e.g. {purpose, layer, step}) into one stream id (splitmix64 chain).
uint64_t ss_rng_stream(const uint64_t *ids, int n);

// The raw Philox4x32-10 block for counter (stream, index) under key seed.
void ss_rng_block(ss_rng_t r, uint64_t index, uint32_t out[4]);

uint32_t ss_rng_u32(ss_rng_t r, uint64_t index);
// Uniform in [0, 1) with 24 random bits (exactly representable floats).
float ss_rng_uniform(ss_rng_t r, uint64_t index);
// Standard normal via Box-Muller on the block's first two words.
float ss_rng_normal(ss_rng_t r, uint64_t index);
// 1 with probability p, else 0.
int ss_rng_bernoulli(ss_rng_t r, uint64_t index, float p);
// Uniform integer in [0, n) (n >= 1), with rejection so there is no modulo bias.
uint32_t ss_rng_below(ss_rng_t r, uint64_t index, uint32_t n);

// Fill out[i] for i in [0, n) with values for indices first + i. Threaded over nthreads; the
// values do not depend on nthreads.
void ss_rng_fill_uniform(
    ss_rng_t r, uint64_t first, int64_t n, float lo, float hi, float *out, int nthreads);
void ss_rng_fill_normal(
    ss_rng_t r, uint64_t first, int64_t n, float mean, float std, float *out, int nthreads);
// Normal(mean, std) truncated to [lo, hi] (in units of the result) by the inverse-CDF method that
// PyTorch's trunc_normal_ uses: one uniform per element, no rejection, so no index is shared.
void ss_rng_fill_trunc_normal(ss_rng_t r,
                              uint64_t first,
                              int64_t n,
                              float mean,
                              float std,
                              float lo,
                              float hi,
                              float *out,
                              int nthreads);

#ifdef __cplusplus
}
#endif
#endif
