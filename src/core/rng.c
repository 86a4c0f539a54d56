#include "shardseg/rng.h"

#include <math.h>

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): ten rounds
// of two 32x32->64 multiplies with a Weyl-sequence key schedule. Counter = (index, stream),
// key = seed.
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ss_rng_block(ss_rng_t r, uint64_t index, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32);
    uint32_t c2 = (uint32_t)r.stream, c3 = (uint32_t)(r.stream >> 32);
    uint32_t k0 = (uint32_t)r.seed, k1 = (uint32_t)(r.seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t ss_rng_stream(const uint64_t *ids, int n)
{
    uint64_t h = 0x5EEDull;
    for (int i = 0; i < n; i++) {
        h = splitmix64(h ^ splitmix64(ids[i] + (uint64_t)i));
    }
    return h;
}

uint32_t ss_rng_u32(ss_rng_t r, uint64_t index)
{
    uint32_t b[4];
    ss_rng_block(r, index, b);
    return b[0];
}

static float u24(uint32_t w)
{
    return (float)(w >> 8) * (1.0f / 16777216.0f);
}

float ss_rng_uniform(ss_rng_t r, uint64_t index)
{
    return u24(ss_rng_u32(r, index));
}

float ss_rng_normal(ss_rng_t r, uint64_t index)
{
    uint32_t b[4];
    ss_rng_block(r, index, b);
    // u1 in (0, 1] so the log is finite; both from 32 bits, computed in double.
    double u1 = ((double)b[0] + 1.0) / 4294967296.0;
    double u2 = (double)b[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
}

int ss_rng_bernoulli(ss_rng_t r, uint64_t index, float p)
{
    return ss_rng_uniform(r, index) < p;
}

uint32_t ss_rng_below(ss_rng_t r, uint64_t index, uint32_t n)
{
    // Lemire's multiply-shift with rejection; the retries walk the block's other words and then
    // a derived stream, so the result stays a function of (seed, stream, index).
    uint32_t threshold = (uint32_t)(-n) % n;
    ss_rng_t rr = r;
    for (uint64_t attempt = 0;; attempt++) {
        uint32_t b[4];
        ss_rng_block(rr, index, b);
        for (int w = 0; w < 4; w++) {
            uint64_t m = (uint64_t)b[w] * n;
            if ((uint32_t)m >= threshold) {
                return (uint32_t)(m >> 32);
            }
        }
        rr.stream = splitmix64(rr.stream + attempt + 1);
    }
}

void ss_rng_fill_uniform(
    ss_rng_t r, uint64_t first, int64_t n, float lo, float hi, float *out, int nthreads)
{
    float span = hi - lo;
#pragma omp parallel for num_threads(nthreads) schedule(static) default(none)                      \
    shared(r, first, n, lo, span, out)
    for (int64_t i = 0; i < n; i++) {
        out[i] = lo + span * ss_rng_uniform(r, first + (uint64_t)i);
    }
}

void ss_rng_fill_normal(
    ss_rng_t r, uint64_t first, int64_t n, float mean, float std, float *out, int nthreads)
{
#pragma omp parallel for num_threads(nthreads) schedule(static) default(none)                      \
    shared(r, first, n, mean, std, out)
    for (int64_t i = 0; i < n; i++) {
        out[i] = mean + std * ss_rng_normal(r, first + (uint64_t)i);
    }
}

static double normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

// Inverse of the standard normal CDF: a bisection-safe Newton iteration on erfc, accurate to
// double rounding for p in (0, 1). Only used for initialisation, so speed does not matter.
static double normal_icdf(double p)
{
    double x = 0.0;
    double lo = -40.0, hi = 40.0;
    for (int it = 0; it < 100; it++) {
        double f = normal_cdf(x) - p;
        if (f > 0) {
            hi = x;
        } else {
            lo = x;
        }
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
        double next = pdf > 1e-300 ? x - f / pdf : 0.5 * (lo + hi);
        if (!(next > lo && next < hi)) {
            next = 0.5 * (lo + hi);
        }
        if (fabs(next - x) < 1e-15 * (1.0 + fabs(x))) {
            return next;
        }
        x = next;
    }
    return x;
}

void ss_rng_fill_trunc_normal(ss_rng_t r,
                              uint64_t first,
                              int64_t n,
                              float mean,
                              float std,
                              float lo,
                              float hi,
                              float *out,
                              int nthreads)
{
    double a = normal_cdf(((double)lo - mean) / std);
    double b = normal_cdf(((double)hi - mean) / std);
#pragma omp parallel for num_threads(nthreads) schedule(static) default(none)                      \
    shared(r, first, n, mean, std, lo, hi, out, a, b)
    for (int64_t i = 0; i < n; i++) {
        double u = a + (b - a) * ((double)ss_rng_u32(r, first + (uint64_t)i) + 0.5) / 4294967296.0;
        double v = mean + std * normal_icdf(u);
        out[i] = (float)(v < lo ? lo : (v > hi ? hi : v));
    }
}
