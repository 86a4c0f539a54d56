#include "shardseg/blas.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cblas.h>
#include <omp.h>

#include "shardseg/status.h"
#include "shardseg/version.h"

#include "kernels_impl.h"

static CBLAS_TRANSPOSE cblas_trans(ss_trans_t t)
{
    return t == SS_TRANS ? CblasTrans : CblasNoTrans;
}

// The OpenMP build of OpenBLAS sizes its team from omp_get_max_threads() at every call (it
// overrides openblas_set_num_threads() when they differ), and only stays on the calling thread
// inside an *active* parallel region. nthreads-var is an ICV of the calling task, so setting it
// around the call and restoring it gives the call exactly `nthreads` threads (STYLE.md rule 15)
// without leaking a setting to the rest of the process.
static void sgemm_with_threads(int nthreads,
                               ss_trans_t ta,
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
    int saved = omp_get_max_threads();
    omp_set_num_threads(nthreads);
    openblas_set_num_threads(nthreads);
    cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
    omp_set_num_threads(saved);
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
    sgemm_with_threads(ex ? ex->nthreads : 1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
    if (!omp_in_parallel()) {
        // Outside a parallel region, or in a team of one (which OpenMP does not count as active).
        sgemm_with_threads(1, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

// How capable an OpenBLAS x86 core is: 0 for the pre-AVX2 ones (Prescott ... Sandybridge).
static int core_rank(const char *name)
{
    static const char *ranked[][2] = {{"haswell", "1"},
                                      {"zen", "1"},
                                      {"skylakex", "2"},
                                      {"cooperlake", "3"},
                                      {"sapphirerapids", "4"}};
    for (size_t i = 0; i < sizeof(ranked) / sizeof(ranked[0]); i++) {
        if (strcasecmp(name, ranked[i][0]) == 0) {
            return ranked[i][1][0] - '0';
        }
    }
    return 0;
}

#if SS_HAVE_AVX512
// Cached because the kernels ask on every call (ss__lin_small_suits once per linear layer).
int ss__cpu_avx512(void)
{
    static int cached = -1;
    if (cached < 0) {
        cached = ss_cpu_features().avx512f ? 1 : 0;
    }
    return cached;
}
#endif

const char *ss_blas_better_core(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const char *best = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
        best = __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        best = "Haswell";
    }
    return best != NULL && core_rank(best) > core_rank(openblas_get_corename()) ? best : NULL;
#else
    return NULL;
#endif
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
