// check_optim: SGD / Adam / AdamW steps, gradient clipping and LR schedules against PyTorch
// golden values (tests/golden/make_golden_optim.py) and the double reference.
//
// Tolerances (|a - b| <= atol + rtol |b|):
//   * double ref vs PyTorch float64, params and state after each of 5 steps: rtol 1e-12.
//   * float kernel vs PyTorch float64 (same float32 inputs), 5 steps: |a - b| <= 1e-6 (|b| +
//     max|b|) for p, m and v, the max over the slab (TOL below). Each step rounds p, m, v to
//     float (~6e-8) and the max|b| term covers entries that cross zero (p, or m when g changes
//     sign). Observed: <= 0.2 of the tolerance, 0.58 for Adam with L2 and eps 1e-6, where
//     g + wd * p cancels in float32 and |g'| ~ eps.
//   * float kernel vs double ref on odd sizes, 5 random steps: the same tolerance.
//   * LR schedules: closed form vs PyTorch get_last_lr() and vs the recursive ref: rtol 1e-12.
//   * thread counts 1, 2, 3 and slab pieces: bit-identical (elementwise updates; sums of squares
//     over blocks fixed by n).
// Finite differences do not apply: nothing here is differentiated.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardseg/optim.h"

#include "kernels_impl.h"
#include "ref/optim_ref.h"
#include "testutil.h"

#define GOLDEN "golden_optim.h5"
#define STEPS  5
// Float run vs float64: |a - b| <= TOL * (|b| + max|b| over the slab); see the header comment.
#define TOL 1e-6

enum { OPT_SGD, OPT_ADAM, OPT_ADAMW };

typedef struct {
    const char *name;
    int kind;
    ss_optim_sgd_params_t sgd;
    ss_optim_adam_params_t adam;
} opt_case_t;

// Mirrors OPTIMIZERS in tests/golden/make_golden_optim.py.
static const opt_case_t opt_cases[] = {
    {"sgd_plain", OPT_SGD, {.lr = 0.1}, {.lr = 0}},
    {"sgd_momentum", OPT_SGD, {.lr = 0.05, .momentum = 0.9}, {.lr = 0}},
    {"sgd_damp_wd",
     OPT_SGD,
     {.lr = 0.05, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.01},
     {.lr = 0}},
    {"sgd_nesterov_wd",
     OPT_SGD,
     {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.05, .nesterov = 1},
     {.lr = 0}},
    {"adam", OPT_ADAM, {.lr = 0}, {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
    {"adam_l2",
     OPT_ADAM,
     {.lr = 0},
     {.lr = 1e-2, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1}},
    {"adamw",
     OPT_ADAMW,
     {.lr = 0},
     {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05}},
};
#define NOPT ((int)(sizeof(opt_cases) / sizeof(opt_cases[0])))

static ss_status_t fast_step(const opt_case_t *oc,
                             float *p,
                             float *m,
                             float *v,
                             const float *g,
                             int64_t n,
                             const ss_optim_state_t *st,
                             const ss_exec_t *ex,
                             ss_error_t *err)
{
    switch (oc->kind) {
    case OPT_SGD:
        return ss_optim_sgd_step(p, m, g, n, &oc->sgd, st, ex, err);
    case OPT_ADAM:
        return ss_optim_adam_step(p, m, v, g, n, &oc->adam, st, ex, err);
    default:
        return ss_optim_adamw_step(p, m, v, g, n, &oc->adam, st, ex, err);
    }
}

static void ref_step(
    const opt_case_t *oc, double *p, double *m, double *v, const double *g, int64_t n, int64_t step)
{
    if (oc->kind == OPT_SGD) {
        ss_ref_optim_sgd_step(p, m, g, n, &oc->sgd, step);
    } else {
        ss_ref_optim_adam_step(p, m, v, g, n, &oc->adam, step, oc->kind == OPT_ADAMW);
    }
}

// max over i of |a - b| / (atol + rtol |b|) for float a vs double b.
static double err_fd(const float *a, const double *b, int64_t n, double atol, double rtol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (atol + rtol * fabs(b[i]));
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

static double err_dd(const double *a, const double *b, int64_t n, double rtol)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (1e-300 + rtol * fabs(b[i]));
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

// Checks float p, m, v against double references within the stated tolerances.
static double max_abs(const double *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs(a[i]));
    }
    return m;
}

static void check_state(const char *what,
                        int step,
                        const float *p,
                        const float *m,
                        const float *v,
                        const double *rp,
                        const double *rm,
                        const double *rv,
                        int64_t n,
                        int adam)
{
    double ep = err_fd(p, rp, n, TOL * max_abs(rp, n) + 1e-300, TOL);
    double em = err_fd(m, rm, n, TOL * max_abs(rm, n) + 1e-300, TOL);
    double ev = adam ? err_fd(v, rv, n, TOL * max_abs(rv, n) + 1e-300, TOL) : 0;
    if (getenv("SS_TEST_VERBOSE")) {
        fprintf(stderr, "%s step %d: p %.3g m %.3g v %.3g of tolerance\n", what, step, ep, em, ev);
    }
    ck_assert_msg(ep <= 1 && em <= 1 && ev <= 1, "%s step %d: error/tolerance p %.3g m %.3g v %.3g",
                  what, step, ep, em, ev);
}

// ---------------------------------------------------------------------------------------------
// Golden

static void golden_optimizer(const opt_case_t *oc)
{
    int64_t sh[8];
    int nd;
    float *p0 = ss_test_golden(GOLDEN, "p0", sh, &nd);
    int64_t n = sh[0];
    float *grads = ss_test_golden(GOLDEN, "grads", sh, &nd);
    ck_assert_int_eq(sh[0], STEPS);
    char name[96];
    snprintf(name, sizeof(name), "%s/p", oc->name);
    double *gp = ss_test_golden_f64(GOLDEN, name, sh, &nd);
    snprintf(name, sizeof(name), "%s/m", oc->name);
    double *gm = ss_test_golden_f64(GOLDEN, name, sh, &nd);
    snprintf(name, sizeof(name), "%s/v", oc->name);
    double *gv = ss_test_golden_f64(GOLDEN, name, sh, &nd);
    float *p = malloc((size_t)n * sizeof(float)), *m = calloc((size_t)n, sizeof(float));
    float *v = calloc((size_t)n, sizeof(float));
    double *dp = malloc((size_t)n * sizeof(double)), *dm = calloc((size_t)n, sizeof(double));
    double *dv = calloc((size_t)n, sizeof(double)), *dg = malloc((size_t)n * sizeof(double));
    memcpy(p, p0, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        dp[i] = p0[i];
    }
    ss_optim_state_t st = {0};
    ss_exec_t ex = {2, NULL, 0, NULL};
    int adam = oc->kind != OPT_SGD;
    for (int s = 0; s < STEPS; s++) {
        for (int64_t i = 0; i < n; i++) {
            dg[i] = grads[s * n + i];
        }
        ref_step(oc, dp, dm, dv, dg, n, st.step);
        ck_assert_int_eq(fast_step(oc, p, m, v, grads + s * n, n, &st, &ex, NULL), SS_OK);
        ss_optim_state_advance(&st);
        const double *rp = gp + s * n, *rm = gm + s * n, *rv = gv + s * n;
        ck_assert_msg(err_dd(dp, rp, n, 1e-12) <= 1 && err_dd(dm, rm, n, 1e-12) <= 1 &&
                          (!adam || err_dd(dv, rv, n, 1e-12) <= 1),
                      "%s step %d: double ref differs from PyTorch", oc->name, s);
        check_state(oc->name, s, p, m, v, rp, rm, rv, n, adam);
    }
    ck_assert_int_eq(st.step, STEPS);
    free(p0);
    free(grads);
    free(gp);
    free(gm);
    free(gv);
    free(p);
    free(m);
    free(v);
    free(dp);
    free(dm);
    free(dv);
    free(dg);
}

static void golden_kind(int kind)
{
    for (int i = 0; i < NOPT; i++) {
        if (opt_cases[i].kind == kind) {
            golden_optimizer(&opt_cases[i]);
        }
    }
}

START_TEST(test_sgd_golden)
{
    golden_kind(OPT_SGD);
}
END_TEST

START_TEST(test_adam_golden)
{
    golden_kind(OPT_ADAM);
}
END_TEST

START_TEST(test_adamw_golden)
{
    golden_kind(OPT_ADAMW);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Float vs double ref on odd sizes; threads and pieces bit-identical

static const int64_t sizes[] = {1, 7, 17, 1031, 100003};

static void odd_sizes_kind(int kind)
{
    for (int oi = 0; oi < NOPT; oi++) {
        const opt_case_t *oc = &opt_cases[oi];
        if (oc->kind != kind) {
            continue;
        }
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            int64_t n = sizes[si];
            float *p = malloc((size_t)n * sizeof(float)), *g = malloc((size_t)n * sizeof(float));
            float *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
            double *dp = malloc((size_t)n * sizeof(double)),
                   *dg = malloc((size_t)n * sizeof(double));
            double *dm = calloc((size_t)n, sizeof(double)), *dv = calloc((size_t)n, sizeof(double));
            ss_test_fill(p, n, 11 + si, -1.0f, 1.0f);
            for (int64_t i = 0; i < n; i++) {
                dp[i] = p[i];
            }
            ss_optim_state_t st = {0};
            ss_exec_t ex = {2, NULL, 0, NULL};
            for (int s = 0; s < STEPS; s++) {
                ss_test_fill(g, n, 100 + 7 * (uint64_t)s + si, -0.5f, 0.5f);
                for (int64_t i = 0; i < n; i++) {
                    dg[i] = g[i];
                }
                ref_step(oc, dp, dm, dv, dg, n, st.step);
                ck_assert_int_eq(fast_step(oc, p, m, v, g, n, &st, &ex, NULL), SS_OK);
                ss_optim_state_advance(&st);
                check_state(oc->name, s, p, m, v, dp, dm, dv, n, kind != OPT_SGD);
            }
            free(p);
            free(g);
            free(m);
            free(v);
            free(dp);
            free(dg);
            free(dm);
            free(dv);
        }
    }
}

START_TEST(test_sgd_odd_sizes)
{
    odd_sizes_kind(OPT_SGD);
}
END_TEST

START_TEST(test_adam_odd_sizes)
{
    odd_sizes_kind(OPT_ADAM);
}
END_TEST

START_TEST(test_adamw_odd_sizes)
{
    odd_sizes_kind(OPT_ADAMW);
}
END_TEST

// Runs 3 steps on 1, 2, 3 threads and as 3 unequal pieces per step: all bit-identical.
static void bitwise_kind(int kind)
{
    const int64_t n = 100003;
    for (int oi = 0; oi < NOPT; oi++) {
        const opt_case_t *oc = &opt_cases[oi];
        if (oc->kind != kind) {
            continue;
        }
        float *g = malloc((size_t)n * 3 * sizeof(float)), *ref[3] = {NULL, NULL, NULL};
        ss_test_fill(g, 3 * n, 5, -1.0f, 1.0f);
        for (int mode = 0; mode <= 3; mode++) { // 1, 2, 3 threads; mode 3: pieces on 2 threads
            float *st3 = calloc((size_t)n * 3, sizeof(float)); // p, m, v
            ss_test_fill(st3, n, 9, -1.0f, 1.0f);
            ss_optim_state_t st = {0};
            ss_exec_t ex = {mode < 3 ? mode + 1 : 2, NULL, 0, NULL};
            for (int s = 0; s < 3; s++) {
                const int64_t cut[4] = {0, 33, 50001, n};
                for (int piece = 0; piece < (mode == 3 ? 3 : 1); piece++) {
                    int64_t lo = mode == 3 ? cut[piece] : 0, hi = mode == 3 ? cut[piece + 1] : n;
                    ck_assert_int_eq(fast_step(oc, st3 + lo, st3 + n + lo, st3 + 2 * n + lo,
                                               g + s * n + lo, hi - lo, &st, &ex, NULL),
                                     SS_OK);
                }
                ss_optim_state_advance(&st);
            }
            if (mode == 0) {
                ref[0] = st3;
                continue;
            }
            ck_assert_msg(memcmp(ref[0], st3, (size_t)n * 3 * sizeof(float)) == 0,
                          "%s: mode %d differs from 1 thread", oc->name, mode);
            free(st3);
        }
        free(ref[0]);
        free(g);
    }
}

// The AVX-512 Adam step (taken where the CPU has it) against the portable loops: p, m, v
// bit-identical (the same operations in the same order), the sums of squares equal to 1e-12 (their
// lane orders differ); sizes with vector tails, 1 and 2 threads. Without AVX-512 both runs take
// the portable loops and the test holds trivially.
START_TEST(test_adam_vector_path)
{
    const int64_t sizes_v[] = {1, 15, 17, 4099, 100003};
    for (size_t si = 0; si < sizeof(sizes_v) / sizeof(sizes_v[0]); si++) {
        int64_t n = sizes_v[si];
        for (int oi = 0; oi < NOPT; oi++) {
            const opt_case_t *oc = &opt_cases[oi];
            if (oc->kind == OPT_SGD) {
                continue;
            }
            float *st[2], *g = malloc((size_t)n * sizeof(float));
            double sq[2];
            ss_test_fill(g, n, 23 + si, -2.0f, 2.0f);
            for (int vec = 0; vec < 2; vec++) {
                st[vec] = calloc((size_t)n * 3, sizeof(float));
                ss_test_fill(st[vec], n * 2, 29 + si, -1.0f, 1.0f);
                for (int64_t i = 2 * n; i < 3 * n; i++) {
                    st[vec][i] = fabsf(st[vec][i - n]); // v >= 0
                }
                ss__optim_vector_enable(vec);
                ss_exec_t ex = {1 + vec, NULL, 0, NULL};
                ss_optim_state_t ost = {4};
                float *p = st[vec], *m = p + n, *v = p + 2 * n;
                ck_assert_int_eq(oc->kind == OPT_ADAM
                                     ? ss_optim_adam_step_sumsq(p, m, v, g, n, &oc->adam, &ost,
                                                                &sq[vec], &ex, NULL)
                                     : ss_optim_adamw_step_sumsq(p, m, v, g, n, &oc->adam, &ost,
                                                                 &sq[vec], &ex, NULL),
                                 SS_OK);
            }
            ss__optim_vector_enable(1);
            ck_assert_msg(memcmp(st[0], st[1], (size_t)n * 3 * sizeof(float)) == 0,
                          "%s n %lld: the vector path's p, m, v differ", oc->name, (long long)n);
            ck_assert_msg(fabs(sq[0] - sq[1]) <= 1e-12 * sq[0], "%s n %lld: sumsq %.17g vs %.17g",
                          oc->name, (long long)n, sq[0], sq[1]);
            free(st[0]);
            free(st[1]);
            free(g);
        }
    }
}
END_TEST

START_TEST(test_sgd_bitwise)
{
    bitwise_kind(OPT_SGD);
}
END_TEST

START_TEST(test_adam_bitwise)
{
    bitwise_kind(OPT_ADAM);
}
END_TEST

START_TEST(test_adamw_bitwise)
{
    bitwise_kind(OPT_ADAMW);
}
END_TEST

START_TEST(test_step_errors)
{
    float p[4] = {0}, m[4] = {0}, v[4] = {0}, g[4] = {0};
    ss_optim_state_t st = {0};
    ss_exec_t ex = {1, NULL, 0, NULL};
    ss_error_t err;
    ss_optim_sgd_params_t sgd = {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = 1};
    ck_assert_int_eq(ss_optim_sgd_step(p, m, g, 4, &sgd, &st, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "Nesterov"));
    sgd.nesterov = 0;
    ck_assert_int_eq(ss_optim_sgd_step(p, NULL, g, 4, &sgd, &st, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "buffer"));
    sgd.lr = -1;
    ck_assert_int_eq(ss_optim_sgd_step(p, m, g, 4, &sgd, &st, &ex, &err), SS_EINVAL);
    sgd.lr = 0.1;
    ck_assert_int_eq(ss_optim_sgd_step(p, m, g, -1, &sgd, &st, &ex, &err), SS_ESHAPE);
    ck_assert_int_eq(ss_optim_sgd_step(p, m, g, 0, &sgd, &st, &ex, &err), SS_OK);
    // momentum 0 needs no buffer
    sgd.momentum = 0;
    sgd.dampening = 0;
    ck_assert_int_eq(ss_optim_sgd_step(p, NULL, g, 4, &sgd, &st, &ex, &err), SS_OK);
    ss_optim_adam_params_t a = ss_optim_adam_defaults();
    a.beta2 = 1.0;
    ck_assert_int_eq(ss_optim_adam_step(p, m, v, g, 4, &a, &st, &ex, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "betas"));
    a = ss_optim_adamw_defaults();
    ck_assert_int_eq(ss_optim_adamw_step(p, m, NULL, g, 4, &a, &st, &ex, &err), SS_EINVAL);
    a.eps = -1;
    ck_assert_int_eq(ss_optim_adamw_step(p, m, v, g, 4, &a, &st, &ex, &err), SS_EINVAL);
    a = ss_optim_adamw_defaults();
    ex.nthreads = 0;
    ck_assert_int_eq(ss_optim_adamw_step(p, m, v, g, 4, &a, &st, &ex, &err), SS_EINVAL);
    ex.nthreads = 1;
    st.step = -1;
    ck_assert_int_eq(ss_optim_adamw_step(p, m, v, g, 4, &a, &st, &ex, &err), SS_EINVAL);
}
END_TEST

START_TEST(test_defaults)
{
    ss_optim_adam_params_t a = ss_optim_adam_defaults(), w = ss_optim_adamw_defaults();
    ck_assert(a.lr == 1e-3 && a.beta1 == 0.9 && a.beta2 == 0.999 && a.eps == 1e-8);
    ck_assert(a.weight_decay == 0 && w.weight_decay == 1e-2 && w.lr == 1e-3);
    ss_optim_sgd_params_t s = ss_optim_sgd_defaults();
    ck_assert(s.momentum == 0 && s.dampening == 0 && s.weight_decay == 0 && !s.nesterov);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Clipping

START_TEST(test_sumsq)
{
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int64_t n = sizes[si] * 13; // up to 1.3M: several blocks
        float *g = malloc((size_t)n * sizeof(float));
        double *dg = malloc((size_t)n * sizeof(double));
        ss_test_fill(g, n, 3 + si, -2.0f, 2.0f);
        for (int64_t i = 0; i < n; i++) {
            dg[i] = g[i];
        }
        double want = ss_ref_optim_sumsq(dg, n), s1 = 0, s;
        for (int nt = 1; nt <= 3; nt++) {
            ss_exec_t ex = {nt, NULL, 0, NULL};
            ck_assert_int_eq(ss_optim_sumsq_partial(&s, g, n, &ex, NULL), SS_OK);
            ck_assert_msg(fabs(s - want) <= 1e-12 * want, "n %lld: %.17g vs %.17g", (long long)n, s,
                          want);
            if (nt == 1) {
                s1 = s;
            }
            ck_assert(memcmp(&s, &s1, sizeof(s)) == 0); // bit-identical across thread counts
        }
        free(g);
        free(dg);
    }
    double s;
    ss_exec_t ex = {1, NULL, 0, NULL};
    ck_assert_int_eq(ss_optim_sumsq_partial(&s, NULL, 0, &ex, NULL), SS_OK);
    ck_assert(s == 0);
    ck_assert_int_eq(ss_optim_sumsq_partial(NULL, NULL, 0, &ex, NULL), SS_EINVAL);
}
END_TEST

// The fused step + sum of squares against the two calls it replaces: p, m, v and the sum are
// bit-identical, for 1-3 threads and sizes from one block to several.
START_TEST(test_adam_sumsq)
{
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int64_t n = sizes[si] * 13;
        for (int oi = 0; oi < NOPT; oi++) {
            const opt_case_t *oc = &opt_cases[oi];
            if (oc->kind == OPT_SGD) {
                continue;
            }
            float *a = calloc((size_t)n * 3, sizeof(float)),
                  *b = calloc((size_t)n * 3, sizeof(float));
            float *g = malloc((size_t)n * sizeof(float));
            ss_test_fill(a, n, 11 + si, -1.0f, 1.0f);
            memcpy(b, a, (size_t)n * 3 * sizeof(float));
            ss_test_fill(g, n, 17 + si, -2.0f, 2.0f);
            for (int nt = 1; nt <= 3; nt++) {
                ss_exec_t ex = {nt, NULL, 0, NULL};
                ss_optim_state_t st = {nt - 1};
                double want, got = -1;
                ck_assert_int_eq(ss_optim_sumsq_partial(&want, g, n, &ex, NULL), SS_OK);
                ck_assert_int_eq(fast_step(oc, a, a + n, a + 2 * n, g, n, &st, &ex, NULL), SS_OK);
                ss_status_t rc = oc->kind == OPT_ADAM
                                     ? ss_optim_adam_step_sumsq(b, b + n, b + 2 * n, g, n,
                                                                &oc->adam, &st, &got, &ex, NULL)
                                     : ss_optim_adamw_step_sumsq(b, b + n, b + 2 * n, g, n,
                                                                 &oc->adam, &st, &got, &ex, NULL);
                ck_assert_int_eq(rc, SS_OK);
                ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s n %lld: %.17g vs %.17g",
                              oc->name, (long long)n, got, want);
                ck_assert_msg(memcmp(a, b, (size_t)n * 3 * sizeof(float)) == 0,
                              "%s n %lld %d threads: p, m, v differ", oc->name, (long long)n, nt);
            }
            free(a);
            free(b);
            free(g);
        }
    }
    float p[4] = {0}, m[4] = {0}, v[4] = {0}, g[4] = {1, 2, 3, 4};
    ss_optim_adam_params_t hp = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    ss_optim_state_t st = {0};
    ss_exec_t ex = {1, NULL, 0, NULL};
    ss_error_t err;
    ck_assert_int_eq(ss_optim_adamw_step_sumsq(p, m, v, g, 4, &hp, &st, NULL, &ex, &err),
                     SS_EINVAL);
}
END_TEST

START_TEST(test_clip_scale)
{
    ck_assert(ss_optim_clip_scale(4.0, 5.0) == 1.0);
    ck_assert_double_eq_tol(ss_optim_clip_scale(100.0, 5.0), 5.0 / (10.0 + 1e-6), 1e-15);
    ck_assert(isnan(ss_optim_clip_scale(NAN, 1.0)));
    ck_assert(ss_optim_clip_scale(INFINITY, 1.0) == 0.0);
}
END_TEST

START_TEST(test_scale)
{
    float g[37];
    ss_test_fill(g, 37, 4, -1.0f, 1.0f);
    float want[37];
    for (int i = 0; i < 37; i++) {
        want[i] = g[i] * 0.3f;
    }
    ss_exec_t ex = {3, NULL, 0, NULL};
    ck_assert_int_eq(ss_optim_scale(g, 37, 0.3f, &ex, NULL), SS_OK);
    ck_assert(memcmp(g, want, sizeof(g)) == 0);
    ck_assert_int_eq(ss_optim_scale(g, -3, 0.3f, &ex, NULL), SS_ESHAPE);
}
END_TEST

START_TEST(test_clip_grad_norm)
{
    int64_t sh[8];
    int nd;
    float *g = ss_test_golden(GOLDEN, "clip/g", sh, &nd);
    int64_t n = sh[0];
    double *total = ss_test_golden_f64(GOLDEN, "clip/total_norm", sh, &nd);
    double *want = ss_test_golden_f64(GOLDEN, "clip/g_clipped", sh, &nd);
    ss_exec_t ex = {2, NULL, 0, NULL};
    double norm;
    ck_assert_int_eq(ss_optim_clip_grad_norm(&norm, g, n, 2.5, &ex, NULL), SS_OK);
    ck_assert_double_eq_tol(norm, total[0], 1e-12 * total[0]);
    ck_assert_msg(err_fd(g, want, n, 1e-9, 1e-6) <= 1, "clipped gradients differ");
    // Already within the norm: untouched.
    float keep[37];
    memcpy(keep, g, (size_t)n * sizeof(float));
    ck_assert_int_eq(ss_optim_clip_grad_norm(&norm, g, n, 100.0, &ex, NULL), SS_OK);
    ck_assert(memcmp(keep, g, (size_t)n * sizeof(float)) == 0);
    // Non-finite norm: error, gradients untouched.
    ss_error_t err;
    g[3] = INFINITY;
    memcpy(keep, g, (size_t)n * sizeof(float));
    ck_assert_int_eq(ss_optim_clip_grad_norm(&norm, g, n, 1.0, &ex, &err), SS_ENUMERIC);
    ck_assert(memcmp(keep, g, (size_t)n * sizeof(float)) == 0);
    ck_assert_int_eq(ss_optim_clip_grad_norm(&norm, g, n, 0.0, &ex, &err), SS_EINVAL);
    free(g);
    free(total);
    free(want);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// LR schedules

typedef struct {
    const char *name;
    ss_lr_schedule_t s;
} lr_case_t;

// Mirrors SCHEDULES in tests/golden/make_golden_optim.py (lr0 = 0.1).
static const lr_case_t lr_cases[] = {
    {"constant_warm",
     {.kind = SS_LR_CONSTANT, .lr0 = 0.1, .warmup_steps = 5, .warmup_start_factor = 0.1}},
    {"step", {.kind = SS_LR_STEP, .lr0 = 0.1, .step_size = 7, .gamma = 0.5}},
    {"step_warm",
     {.kind = SS_LR_STEP,
      .lr0 = 0.1,
      .step_size = 10,
      .gamma = 0.3,
      .warmup_steps = 3,
      .warmup_start_factor = 0.25}},
    {"cosine", {.kind = SS_LR_COSINE, .lr0 = 0.1, .t_max = 20, .eta_min = 1e-3}},
    {"cosine_warm",
     {.kind = SS_LR_COSINE,
      .lr0 = 0.1,
      .t_max = 45,
      .warmup_steps = 5,
      .warmup_start_factor = 0.2}},
    {"poly", {.kind = SS_LR_POLY, .lr0 = 0.1, .t_max = 40, .power = 0.9}},
    {"poly_warm",
     {.kind = SS_LR_POLY,
      .lr0 = 0.1,
      .t_max = 46,
      .power = 0.9,
      .warmup_steps = 4,
      .warmup_start_factor = 0.1}},
};

START_TEST(test_lr_golden)
{
    for (size_t i = 0; i < sizeof(lr_cases) / sizeof(lr_cases[0]); i++) {
        const lr_case_t *lc = &lr_cases[i];
        ck_assert_int_eq(ss_optim_lr_validate(&lc->s, NULL), SS_OK);
        char name[64];
        snprintf(name, sizeof(name), "lr/%s", lc->name);
        int64_t sh[8];
        int nd;
        double *want = ss_test_golden_f64(GOLDEN, name, sh, &nd);
        for (int64_t t = 0; t < sh[0]; t++) {
            double lr = ss_optim_lr(&lc->s, t), rl = ss_ref_optim_lr(&lc->s, t);
            ck_assert_msg(fabs(lr - want[t]) <= 1e-12 * fabs(want[t]) + 1e-15,
                          "%s t=%lld: %.17g vs torch %.17g", lc->name, (long long)t, lr, want[t]);
            ck_assert_msg(fabs(rl - want[t]) <= 1e-12 * fabs(want[t]) + 1e-15,
                          "%s t=%lld: ref %.17g vs torch %.17g", lc->name, (long long)t, rl,
                          want[t]);
        }
        ck_assert(ss_optim_lr(&lc->s, -5) == ss_optim_lr(&lc->s, 0));
        free(want);
    }
    // nnU-Net poly: lr0 (1 - epoch / max)^0.9, 0 from max on.
    ss_lr_schedule_t nn = {.kind = SS_LR_POLY, .lr0 = 1e-2, .t_max = 1000, .power = 0.9};
    ck_assert_double_eq_tol(ss_optim_lr(&nn, 250), 1e-2 * pow(0.75, 0.9), 1e-17);
    ck_assert(ss_optim_lr(&nn, 1000) == 0 && ss_optim_lr(&nn, 5000) == 0);
}
END_TEST

START_TEST(test_lr_validate)
{
    ss_error_t err;
    ss_lr_schedule_t s = {.kind = SS_LR_STEP, .lr0 = 0.1, .step_size = 0, .gamma = 0.5};
    ck_assert_int_eq(ss_optim_lr_validate(&s, &err), SS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "step_size"));
    s = (ss_lr_schedule_t){.kind = SS_LR_COSINE, .lr0 = 0.1, .t_max = 0};
    ck_assert_int_eq(ss_optim_lr_validate(&s, &err), SS_EINVAL);
    s = (ss_lr_schedule_t){.kind = SS_LR_CONSTANT, .lr0 = 0.1, .warmup_steps = 3};
    ck_assert_int_eq(ss_optim_lr_validate(&s, &err), SS_EINVAL); // factor 0
    ck_assert_ptr_nonnull(strstr(err.msg, "warm-up"));
    s = (ss_lr_schedule_t){.kind = (ss_lr_kind_t)9, .lr0 = 0.1};
    ck_assert_int_eq(ss_optim_lr_validate(&s, &err), SS_EINVAL);
    s = (ss_lr_schedule_t){.kind = SS_LR_CONSTANT, .lr0 = -0.1};
    ck_assert_int_eq(ss_optim_lr_validate(&s, &err), SS_EINVAL);
    ck_assert_int_eq(ss_optim_lr_validate(NULL, &err), SS_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    struct {
        const char *name;
        const TTest *test;
    } tcs[] = {
        {"tc_ss_optim_sgd_step", test_sgd_golden},
        {"tc_ss_optim_sgd_step", test_sgd_odd_sizes},
        {"tc_ss_optim_sgd_step", test_sgd_bitwise},
        {"tc_ss_optim_sgd_step", test_step_errors},
        {"tc_ss_optim_adam_step", test_adam_golden},
        {"tc_ss_optim_adam_step", test_adam_odd_sizes},
        {"tc_ss_optim_adam_step", test_adam_bitwise},
        {"tc_ss_optim_adamw_step", test_adamw_golden},
        {"tc_ss_optim_adamw_step", test_adamw_odd_sizes},
        {"tc_ss_optim_adamw_step", test_adamw_bitwise},
        {"tc_ss_optim_adamw_step", test_adam_vector_path},
        {"tc_ss_optim_defaults", test_defaults},
        {"tc_ss_optim_sumsq_partial", test_sumsq},
        {"tc_ss_optim_sumsq_partial", test_adam_sumsq},
        {"tc_ss_optim_clip_scale", test_clip_scale},
        {"tc_ss_optim_scale", test_scale},
        {"tc_ss_optim_clip_grad_norm", test_clip_grad_norm},
        {"tc_ss_optim_lr", test_lr_golden},
        {"tc_ss_optim_lr_validate", test_lr_validate},
    };
    TCase *tc = NULL;
    for (size_t i = 0; i < sizeof(tcs) / sizeof(tcs[0]); i++) {
        if (i == 0 || strcmp(tcs[i].name, tcs[i - 1].name) != 0) {
            tc = tcase_create(tcs[i].name);
            tcase_set_timeout(tc, 60);
            suite_add_tcase(s, tc);
        }
        tcase_add_test(tc, tcs[i].test);
    }
    return ss_test_run(s);
}
