#include "shardseg/blas.h"

#include <stdio.h>

#include <cblas.h>
#include <omp.h>

#include "shardseg/status.h"

static CBLAS_TRANSPOSE cblas_trans(ss_trans_t t)
{
    return t == SS_TRANS ? CblasTrans : CblasNoTrans;
}

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
             const ss_exec_t *ex)
{
    SS_ASSERT(!omp_in_parallel());
    if (m == 0 || n == 0) {
        return;
    }
    // The OpenMP build of OpenBLAS sizes its team from omp_get_max_threads() at every call and
    // overrides openblas_set_num_threads() when they differ. nthreads-var is an ICV of the calling
    // task, so setting it around the call and restoring it gives this call site exactly
    // ex->nthreads threads (STYLE.md rule 15) without leaking a setting to the rest of the process.
    int saved = omp_get_max_threads();
    int nthreads = ex ? ex->nthreads : 1;
    omp_set_num_threads(nthreads);
    openblas_set_num_threads(nthreads);
    cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
    omp_set_num_threads(saved);
}

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
                    int64_t ldc)
{
    if (m == 0 || n == 0) {
        return;
    }
    // Inside an active parallel region the OpenMP build of OpenBLAS runs the call on the calling
    // thread. A team of one (num_threads(1)) is not active, and OpenBLAS would then fork its own
    // threads for every tile: pin it to one thread, which is safe as no other thread runs.
    if (!omp_in_parallel()) {
        openblas_set_num_threads(1);
    }
    cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

int ss_blas_is_openmp(void)
{
    return openblas_get_parallel() == 2;
}

void ss_blas_info(char *buf, size_t len)
{
    static const char *models[] = {"sequential", "pthreads", "OpenMP"};
    int par = openblas_get_parallel();
    snprintf(buf, len, "%s (%s build, core %s)", openblas_get_config(),
             par >= 0 && par <= 2 ? models[par] : "unknown", openblas_get_corename());
}
