// seq.c: sequence-group hooks. This file holds the one-rank semantics every network relies on;
// the multi-rank exchange (halo planes, moment gathers, ring / all-to-all attention) is the
// sequence-parallel issue's and is refused by ss_seq_create until it lands, so no code path can
// silently run a sharded model with local-only hooks.
#include "shardseg/seq.h"

#include <stdlib.h>

struct ss_seq {
    ss_comm_t *comm; // borrowed
    int rank, size;
};

ss_status_t ss_seq_create(ss_seq_t **out, ss_comm_t *comm, ss_error_t *err)
{
    *out = NULL;
    if (ss_comm_size(comm) > 1) {
        SS_FAIL(err, SS_EUNSUPPORTED,
                "sequence parallelism over %d ranks is not built yet; run with one rank per "
                "sequence group",
                ss_comm_size(comm));
    }
    ss_seq_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        SS_FAIL(err, SS_ENOMEM, "sequence group: out of memory");
    }
    s->comm = comm;
    s->rank = ss_comm_rank(comm);
    s->size = ss_comm_size(comm);
    *out = s;
    return SS_OK;
}

void ss_seq_destroy(ss_seq_t **s)
{
    if (s != NULL) {
        free(*s);
        *s = NULL;
    }
}

int ss_seq_rank(const ss_seq_t *s)
{
    return s == NULL ? 0 : s->rank;
}

int ss_seq_size(const ss_seq_t *s)
{
    return s == NULL ? 1 : s->size;
}

int ss_seq_has_lo(const ss_seq_t *s)
{
    return ss_seq_rank(s) > 0;
}

int ss_seq_has_hi(const ss_seq_t *s)
{
    return ss_seq_rank(s) + 1 < ss_seq_size(s);
}

ss_status_t ss_seq_allreduce_sum(ss_seq_t *s, double *buf, size_t n, ss_error_t *err)
{
    if (ss_seq_size(s) == 1) {
        return SS_OK;
    }
    return ss_comm_allreduce_sum_f64(s->comm, buf, n, err);
}

ss_status_t ss_seq_merge_moments(ss_seq_t *s, ss_norm_moments_t *m, int64_t len, ss_error_t *err)
{
    (void)m, (void)len;
    if (ss_seq_size(s) == 1) {
        return SS_OK;
    }
    SS_FAIL(err, SS_EUNSUPPORTED, "moment merging over %d ranks is not built yet", s->size);
}

ss_status_t ss_seq_allreduce_grads(ss_seq_t *s, float *g, int64_t n, ss_error_t *err)
{
    if (ss_seq_size(s) == 1) {
        return SS_OK;
    }
    return ss_comm_allreduce_sum_f32(s->comm, g, (size_t)n, err);
}

ss_status_t ss_seq_halo_get(
    ss_seq_t *s, ss_tensor_t *lo, ss_tensor_t *hi, const ss_tensor_t *x, ss_error_t *err)
{
    (void)lo, (void)hi, (void)x;
    if (ss_seq_size(s) == 1) {
        return SS_OK; // the volume boundary: no neighbour, the conv pads with zeros
    }
    SS_FAIL(err, SS_EUNSUPPORTED, "halo exchange over %d ranks is not built yet", s->size);
}

ss_status_t ss_seq_halo_add(
    ss_seq_t *s, ss_tensor_t *dx, const ss_tensor_t *dlo, const ss_tensor_t *dhi, ss_error_t *err)
{
    (void)dx, (void)dlo, (void)dhi;
    if (ss_seq_size(s) == 1) {
        return SS_OK;
    }
    SS_FAIL(err, SS_EUNSUPPORTED, "halo exchange over %d ranks is not built yet", s->size);
}

ss_status_t ss_seq_attention_fwd(ss_seq_t *s,
                                 ss_tensor_t *o,
                                 ss_tensor_t *lse,
                                 const ss_tensor_t *q,
                                 const ss_tensor_t *k,
                                 const ss_tensor_t *v,
                                 const ss_attention_params_t *p,
                                 const ss_exec_t *ex,
                                 ss_error_t *err)
{
    if (ss_seq_size(s) == 1) {
        return ss_attention_fwd(o, lse, q, k, v, p, ex, err);
    }
    SS_FAIL(err, SS_EUNSUPPORTED, "attention over %d sequence ranks is not built yet", s->size);
}

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
                                 ss_error_t *err)
{
    if (ss_seq_size(s) == 1) {
        return ss_attention_bwd(dq, dk, dv, q, k, v, o, dout, lse, p, ex, err);
    }
    SS_FAIL(err, SS_EUNSUPPORTED, "attention over %d sequence ranks is not built yet", s->size);
}
