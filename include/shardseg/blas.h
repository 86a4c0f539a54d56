// blas.h: the only door to BLAS (OpenBLAS, through CBLAS).
//
// All matrices are row-major. ss_gemm computes C = alpha * op(A) * op(B) + beta * C with
// op(X) = X or X^T, using up to ex->nthreads BLAS threads; it must be called outside an OpenMP
// parallel region. ss_gemm_serial is for use inside a parallel region (one thread per call);
// with the OpenMP build of OpenBLAS that nests correctly without oversubscribing the cores.
// Threading: reentrant. Ownership: all pointers borrowed.
#ifndef SS_BLAS_H
#define SS_BLAS_H

#include <stdint.h>

#include "shardseg/exec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_NO_TRANS = 0,
    SS_TRANS = 1,
} ss_trans_t;

// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C; lda/ldb/ldc are row strides.
void ss_gemm(ss_trans_t ta,
             ss_trans_t tb,
             int64_t m,
             int64_t n,
             int64_t k,
             float alpha,
             const float *a,
             int64_t lda,
             const float *b,
             int64_t ldb,
             float beta,
             float *c,
             int64_t ldc,
             const ss_exec_t *ex);
void ss_gemm_serial(ss_trans_t ta,
                    ss_trans_t tb,
                    int64_t m,
                    int64_t n,
                    int64_t k,
                    float alpha,
                    const float *a,
                    int64_t lda,
                    const float *b,
                    int64_t ldb,
                    float beta,
                    float *c,
                    int64_t ldc);

// "OpenBLAS 0.3.21 (OpenMP build, core SapphireRapids)" or similar, into buf.
void ss_blas_info(char *buf, size_t len);
// The OPENBLAS_CORETYPE name of the best sgemm core this CPU runs, when the linked OpenBLAS
// picked a weaker one, else NULL. OpenBLAS's DYNAMIC_ARCH build chooses its kernels by CPU model
// number, so a CPU newer than the library (Emerald Rapids under OpenBLAS 0.3.21, say) falls back
// to the SSE3 "Prescott" kernels, 3-5x slower, although the CPU has AVX-512. Judged from the CPU's
// features: AVX-512 (F, BW, DQ, VL) -> SkylakeX (Cooperlake with BF16), AVX2 + FMA -> Haswell.
const char *ss_blas_better_core(void);
// 1 if the linked OpenBLAS is its OpenMP build.
int ss_blas_is_openmp(void);

#ifdef __cplusplus
}
#endif
#endif
