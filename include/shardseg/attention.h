// attention.h: multi-head scaled-dot-product self-attention (no mask), forward and backward,
// tiled with an online softmax (FlashAttention-2 style). Memory is O(N * D): no N x N matrix is
// ever formed, only per-thread (tile_q, tile_k) score tiles, so 100k-token sequences fit.
//
// Math, per batch b and head h, with s_ij = scale * q_i . k_j (scale defaults to 1/sqrt(D)):
//   P_ij = exp(s_ij - lse_i),  lse_i = log sum_j exp(s_ij),  o_i = sum_j P_ij v_j;
//   backward from dout = dL/do:  dvec_i = dout_i . o_i,  dP_ij = dout_i . v_j,
//   dS_ij = P_ij (dP_ij - dvec_i),  dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,
//   dv_j = sum_i P_ij dout_i.
//
// Layout. Q, K, V, O and their gradients are token-major 4-D views (B, N, H, D): element
// (b, n, h, d) at data + b*stride[0] + n*stride[1] + h*stride[2] + d. Any strides are accepted
// with stride[3] == 1 and a non-overlapping nested layout (each stride, sorted, at least the
// extent of the dimensions inside it), so Q, K and V can be views into one fused QKV buffer.
// MONAI's SABlock (monai/networks/blocks/selfattention.py) computes one Linear of 3*H*D features
// per token and splits it with Rearrange("b h (qkv l d) -> qkv b l h d"), where h is the token
// and l the head: a token row is ordered [qkv][head][d]. With row = 3*H*D floats per token:
//   q: data = qkv,           strides (N*row, row, D, 1)
//   k: data = qkv + H*D,     same strides
//   v: data = qkv + 2*H*D,   same strides
// and the gradients dq, dk, dv may be the same views into the fused gradient buffer. O's token
// row [head][d] is MONAI's out_rearrange ("b h l d -> b l (h d)", h = head, l = token), the input
// of the output projection. Per-row statistics (lse, m, l, dvec) are 3-D views (B, H, N) with
// stride[2] == 1 (contiguous per head).
//
// Sequence parallelism (ring attention). A rank owns a contiguous token range of Q (Nq rows) and
// receives K/V blocks of other ranks (Nk rows each, any Nk, possibly 0). The block API consumes
// the blocks where they arrived, without copies, in any order:
//   forward:  ss_attention_fwd_init(&st); for each K/V block: ss_attention_fwd_block(&st, q, kb,
//             vb); ss_attention_fwd_finalize(o, lse, &st). The state holds, per query row, the
//             running max m_i of the scores in log2 units (s_ij log2 e, the base the kernel's
//             exp2 works in), the running sum l_i = sum_j 2^(s_ij log2 e - m_i) and the
//             unnormalised output acc_i = sum_j 2^(s_ij log2 e - m_i) v_j. The dist layer
//             treats it as opaque (init, blocks, merge, finalize). Partial states over disjoint
//             keys merge with ss_attention_fwd_merge (tree or split-K reductions, e.g. over MPI).
//   backward: ss_attention_bwd_prep(dvec, o, dout) once; zero dq; for each K/V block (with its
//             gradient block dkb, dvb, zeroed by the rank that owns the block):
//             ss_attention_bwd_block(dq, dkb, dvb, q, kb, vb, dout, lse, dvec). dq, dkb and dvb
//             ACCUMULATE (+=): dq sums over the blocks on the local rank, while dkb/dvb travel
//             around the ring with their K/V block, each rank adding its queries' contribution,
//             and arrive home complete. lse and dvec are the local rows' (from the forward).
// The convenience calls ss_attention_fwd and ss_attention_bwd run a whole local sequence (K and V
// the same tokens as Q, or any Nk) and OVERWRITE their outputs.
//
// Threading: ex->nthreads OpenMP threads (call outside a parallel region); GEMMs run through
// ss_gemm_serial inside the parallel region. The forward splits work over (b, h, query tile);
// the backward over (b, h) when that keeps the threads busy, else over (b, h, key tile) for
// dk/dv and then (b, h, query tile) for dq, recomputing P. Every output element is summed by one
// thread in a fixed order that is the same for both schedules, so results are bit-for-bit
// independent of the thread count. A non-zero *ex->cancel makes long calls return
// SS_ECANCELLED with outputs partly written.
// Workspace: ex->work of at least ss_attention_workspace_size() bytes: per thread two
// (tile_q, tile_k) float tiles and three tile_q vectors, plus B*H*Nq floats for ss_attention_bwd.
// Ownership: every tensor and the state's views are borrowed; nothing is allocated.
// Accuracy: exp is a vectorised exp2 polynomial (max relative error 1e-7); scores, sums and
// GEMMs in float. Against a double reference the outputs and gradients agree to < 1e-6
// (|err| / (1 + |ref|)) on the test shapes (D up to 64, N up to 130).
#ifndef SS_ATTENTION_H
#define SS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/exec.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// Tiles: the default 256 x 256 keeps a thread's two score tiles (256 KiB each) in a 1 MiB L2
// and amortises OpenBLAS's packing of the Q/K/V panels over 256 rows; 128 x 128 measured ~10%
// slower on B=1, N=4096, H=12, D=64 (2 threads), 512 x 512 about equal.
typedef struct {
    float scale; // logit scale; 0 selects 1/sqrt(D) (MONAI's dim_head ** -0.5)
    int tile_q;  // query rows per tile, 0 selects the default (256); at most 4096
    int tile_k;  // key rows per tile, 0 selects the default (256); at most 4096
} ss_attention_params_t;

// Running forward statistics of the local queries (Nq rows) over the keys seen so far. The caller
// binds storage (borrowed views): acc (B, Nq, H, D) as Q's layout rules; m, l (B, H, Nq) with
// stride[2] == 1. acc may be a view of the final output O, and m a view of lse, because
// ss_attention_fwd_finalize may run in place.
typedef struct {
    ss_tensor_t acc; // unnormalised output sum_j 2^(s_ij log2 e - m_i) v_j
    ss_tensor_t m;   // running max of s_ij log2 e; -inf before any key
    ss_tensor_t l;   // running sum of 2^(s_ij log2 e - m_i); 0 before any key
} ss_attention_state_t;

// Bytes of ex->work needed by every ss_attention_* call on queries of shape (batch, nq, heads, .)
// with params p (NULL: defaults) and nthreads threads. Independent of the key count and of D.
size_t ss_attention_workspace_size(
    int64_t batch, int64_t nq, int64_t heads, const ss_attention_params_t *p, int nthreads);

// o (B, Nq, H, D) OUT = softmax(scale q k^T) v; lse (B, H, Nq) OUT, may be NULL (inference).
// q (B, Nq, H, D), k and v (B, Nk, H, D), Nk >= 1. Outputs are overwritten; they must not overlap
// the inputs. p may be NULL (defaults).
ss_status_t ss_attention_fwd(ss_tensor_t *o,
                             ss_tensor_t *lse,
                             const ss_tensor_t *q,
                             const ss_tensor_t *k,
                             const ss_tensor_t *v,
                             const ss_attention_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err);

// st INOUT: acc = 0, m = -inf, l = 0 (no key seen yet).
ss_status_t ss_attention_fwd_init(ss_attention_state_t *st, const ss_exec_t *ex, ss_error_t *err);

// Folds one K/V block into st (INOUT): k, v (B, Nk, H, D) with their own strides, Nk >= 0; q as
// the state's rows (B, Nq, H, D). Blocks may come in any order; the result depends on the order
// only through float rounding (~1e-7 relative).
ss_status_t ss_attention_fwd_block(ss_attention_state_t *st,
                                   const ss_tensor_t *q,
                                   const ss_tensor_t *k,
                                   const ss_tensor_t *v,
                                   const ss_attention_params_t *p,
                                   const ss_exec_t *ex,
                                   ss_error_t *err);

// st INOUT becomes the state over the union of its keys and those of other (IN, same shapes,
// disjoint key sets): m = max(m, m'), acc and l rescaled and summed. Storage must not overlap.
// For the dist layer: a remote partial state travels as its three tensors.
ss_status_t ss_attention_fwd_merge(ss_attention_state_t *st,
                                   const ss_attention_state_t *other,
                                   const ss_exec_t *ex,
                                   ss_error_t *err);

// o (B, Nq, H, D) OUT = acc / l; lse (B, H, Nq) OUT = (m + log2 l) ln 2 (may be NULL). o may be
// exactly st->acc (same data and strides) and lse exactly st->m; other overlaps are rejected. Rows
// that saw no key (l == 0) get o = 0 and lse = -inf.
ss_status_t ss_attention_fwd_finalize(ss_tensor_t *o,
                                      ss_tensor_t *lse,
                                      const ss_attention_state_t *st,
                                      const ss_exec_t *ex,
                                      ss_error_t *err);

// dq (B, Nq, H, D) OUT, dk and dv (B, Nk, H, D) OUT (all OVERWRITTEN) from q, k, v, the forward
// output o and its lse, and dout = dL/do (B, Nq, H, D). Needs the workspace's B*H*Nq dvec floats.
// Outputs must not overlap inputs; they may be disjoint views into one fused gradient buffer.
ss_status_t ss_attention_bwd(ss_tensor_t *dq,
                             ss_tensor_t *dk,
                             ss_tensor_t *dv,
                             const ss_tensor_t *q,
                             const ss_tensor_t *k,
                             const ss_tensor_t *v,
                             const ss_tensor_t *o,
                             const ss_tensor_t *dout,
                             const ss_tensor_t *lse,
                             const ss_attention_params_t *p,
                             const ss_exec_t *ex,
                             ss_error_t *err);

// dvec (B, H, Nq) OUT (overwritten) = rowsum(dout * o), once per backward before the blocks.
ss_status_t ss_attention_bwd_prep(ss_tensor_t *dvec,
                                  const ss_tensor_t *o,
                                  const ss_tensor_t *dout,
                                  const ss_exec_t *ex,
                                  ss_error_t *err);

// One K/V block of the backward. dq (B, Nq, H, D), dk and dv (B, Nk, H, D) all ACCUMULATE (+=):
// dq over the blocks, dk/dv over the ranks whose queries meet this block. q, dout (B, Nq, H, D),
// lse and dvec (B, H, Nq) are the local rows; k, v (B, Nk, H, D) the block. Nk >= 0.
ss_status_t ss_attention_bwd_block(ss_tensor_t *dq,
                                   ss_tensor_t *dk,
                                   ss_tensor_t *dv,
                                   const ss_tensor_t *q,
                                   const ss_tensor_t *k,
                                   const ss_tensor_t *v,
                                   const ss_tensor_t *dout,
                                   const ss_tensor_t *lse,
                                   const ss_tensor_t *dvec,
                                   const ss_attention_params_t *p,
                                   const ss_exec_t *ex,
                                   ss_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
