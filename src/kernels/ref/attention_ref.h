// attention_ref.h: naive double-precision twin of the tiled attention kernels, for tests only.
//
// Plain softmax attention that materialises the full (Nq, Nk) score matrix of each (b, h), with
// the same token-major layout as include/shardseg/attention.h but contiguous arrays:
//   q, o, dq, dout: (B, Nq, H, D); k, v, dk, dv: (B, Nk, H, D); lse: (B, H, Nq).
// s_ij = scale * q_i . k_j;  P_ij = softmax_j(s_ij);  o_i = sum_j P_ij v_j;
// lse_i = log sum_j exp(s_ij). Nq and Nk may differ (a query shard against one key block).
// Ownership: all pointers borrowed; outputs are overwritten. Threading: single-threaded.
#ifndef SS_ATTENTION_REF_H
#define SS_ATTENTION_REF_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// o (B, Nq, H, D), lse (B, H, Nq) (lse may be NULL) from q, k, v. Needs nk >= 1.
void ss_ref_attention_fwd(double *o,
                          double *lse,
                          const double *q,
                          const double *k,
                          const double *v,
                          int64_t batch,
                          int64_t nq,
                          int64_t nk,
                          int64_t heads,
                          int64_t dim,
                          double scale);

// Gradients of sum(dout * o) with respect to q, k and v (all three overwritten), recomputing P
// from q and k. dq (B, Nq, H, D), dk and dv (B, Nk, H, D).
void ss_ref_attention_bwd(double *dq,
                          double *dk,
                          double *dv,
                          const double *q,
                          const double *k,
                          const double *v,
                          const double *dout,
                          int64_t batch,
                          int64_t nq,
                          int64_t nk,
                          int64_t heads,
                          int64_t dim,
                          double scale);

#ifdef __cplusplus
}
#endif
#endif
