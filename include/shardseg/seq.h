// seq.h: the sequence-parallel hooks the networks call (the dist layer).
//
// A sequence group is the set of ranks that share one sample: rank r owns the r-th i-slab of the
// volume, which is also the r-th contiguous range of token rows. Layers never see the whole
// volume; whenever they need something beyond their slab they call one of these hooks:
// - halo planes for 3x3x3 convolutions (and the reverse halo sum in backward),
// - global sums (instance-norm moments, loss sums, gradient norms),
// - attention over the whole token sequence,
// - the parameter-gradient reduction (a sum over the group).
// A NULL ss_seq_t* is a group of one rank: halos are absent (the volume boundary), sums and
// gradient reductions are no-ops, attention is the local kernel. Every function here accepts NULL.
//
// Ownership: ss_seq_create returns a group owned by the caller (ss_seq_destroy); it borrows comm.
// Threading: call from the main thread only, outside OpenMP regions (MPI_THREAD_FUNNELED).
#ifndef SS_SEQ_H
#define SS_SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "shardseg/attention.h"
#include "shardseg/comm.h"
#include "shardseg/exec.h"
#include "shardseg/norm.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_seq ss_seq_t;

// COLLECTIVE over comm. A group whose rank r owns slab r of size(comm) slabs.
ss_status_t ss_seq_create(ss_seq_t **out, ss_comm_t *comm, ss_error_t *err);
void ss_seq_destroy(ss_seq_t **s);

int ss_seq_rank(const ss_seq_t *s); // 0 for NULL
int ss_seq_size(const ss_seq_t *s); // 1 for NULL

// COLLECTIVE. In-place sum of n doubles over the group (norm moments, loss sums).
ss_status_t ss_seq_allreduce_sum(ss_seq_t *s, double *buf, size_t n, ss_error_t *err);

// COLLECTIVE. Instance-norm moments: m holds this rank's len moments on entry and the moments
// of the whole group on return, merged in rank order (every rank gets the same bits).
ss_status_t ss_seq_merge_moments(ss_seq_t *s, ss_norm_moments_t *m, int64_t len, ss_error_t *err);

// COLLECTIVE. Sum of the parameter gradients over the group, in place.
ss_status_t ss_seq_allreduce_grads(ss_seq_t *s, float *g, int64_t n, ss_error_t *err);

// 1 if this rank has a neighbour below (rank - 1) / above (rank + 1) along I.
int ss_seq_has_lo(const ss_seq_t *s);
int ss_seq_has_hi(const ss_seq_t *s);

// COLLECTIVE. x is this rank's slab [N][C][I][J][K]; lo and hi are [N][C][planes][J][K] and
// receive the last `planes` planes of the rank below and the first planes of the rank above.
// Where there is no neighbour the buffer is left untouched (it may be NULL).
ss_status_t ss_seq_halo_get(
    ss_seq_t *s, ss_tensor_t *lo, ss_tensor_t *hi, const ss_tensor_t *x, ss_error_t *err);

// COLLECTIVE. The adjoint of ss_seq_halo_get: dlo (gradient w.r.t. the planes received from
// below) is sent down and added into the last planes of that rank's dx; dhi likewise upwards into
// the first planes. dlo/dhi may be NULL where there is no neighbour.
ss_status_t ss_seq_halo_add(
    ss_seq_t *s, ss_tensor_t *dx, const ss_tensor_t *dlo, const ss_tensor_t *dhi, ss_error_t *err);

// COLLECTIVE. Attention of this rank's query rows against the keys/values of the whole group:
// q, k, v, o are [B][n_local][H][D] views (strided rows as in ss_attention_fwd); lse
// [B][H][n_local].
ss_status_t ss_seq_attention_fwd(ss_seq_t *s,
                                 ss_tensor_t *o,
                                 ss_tensor_t *lse,
                                 const ss_tensor_t *q,
                                 const ss_tensor_t *k,
                                 const ss_tensor_t *v,
                                 const ss_attention_params_t *p,
                                 const ss_exec_t *ex,
                                 ss_error_t *err);
// COLLECTIVE. Backward of ss_seq_attention_fwd: overwrites dq, dk, dv of this rank's rows.
ss_status_t ss_seq_attention_bwd(ss_seq_t *s,
                                 ss_tensor_t *dq,
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

#ifdef __cplusplus
}
#endif

#endif
