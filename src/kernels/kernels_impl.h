// kernels_impl.h: helpers shared by the kernel sources (not installed, not public).
#ifndef SS_KERNELS_IMPL_H
#define SS_KERNELS_IMPL_H

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

#endif
