// model_impl.h: what the networks share inside src/model: the model object, the parameter
// registry, activation memory and the layers (conv, transposed conv, norm, residual block,
// transformer block) that unetr.c and unet3d.c assemble.
//
// Memory discipline. Everything a backward pass reads is saved in the activation arena `act`,
// rewound at the start of each forward. Backward temporaries come from `tmp`: a function first
// allocates the gradients it returns, then takes a mark, then its scratch, and rewinds to the
// mark before returning, so the live backward memory is one path through the network. Both
// arenas keep their chunks, so after the first step the step loop never calls malloc.
// Layers save tensor *descriptors* (values) of their inputs, never pointers to caller structs.
#ifndef SS_MODEL_IMPL_H
#define SS_MODEL_IMPL_H

#include "shardseg/conv3d.h"
#include "shardseg/convt3d.h"
#include "shardseg/linear.h"
#include "shardseg/model.h"
#include "shardseg/norm.h"

typedef struct {
    ss_status_t (*forward)(ss_model_t *m,
                           ss_tensor_t *logits,
                           const ss_tensor_t *x,
                           ss_error_t *err);
    ss_status_t (*backward)(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err);
    void (*destroy)(void *net);
} net_ops_t;

struct ss_model {
    ss_model_config_t cfg;
    ss_model_plan_t plan;
    ss_budget_t *budget;
    ss_param_t *params;
    int nparams, cap;
    int64_t numel;
    float *w, *g;
    size_t vec_bytes;
    void *work; // kernel scratch shared by all layers, sized while building
    size_t work_bytes;
    ss_arena_t *act, *tmp;
    ss_exec_t ex;
    const ss_model_step_t *step;
    int have_forward;
    const net_ops_t *ops;
    void *net;
};

// --- registry and memory (model.c) ---------------------------------------------------------
// Registers prefix + suffix with the given shape; *idx receives its index.
ss_status_t model_param_add(ss_model_t *m,
                            int *idx,
                            const char *prefix,
                            const char *suffix,
                            int ndim,
                            const int64_t *shape,
                            ss_init_kind_t init,
                            double scale,
                            ss_error_t *err);
// The parameter / its gradient as a tensor of its PyTorch shape.
ss_tensor_t model_w(const ss_model_t *m, int idx);
ss_tensor_t model_g(const ss_model_t *m, int idx);
// Grows the shared workspace requirement to at least bytes.
void model_need_work(ss_model_t *m, size_t bytes);
// A contiguous 5-D tensor [n][c][e0][e1][e2] from the activation / temporary arena.
ss_status_t model_act5(
    ss_model_t *m, ss_tensor_t *t, int64_t n, int64_t c, const int64_t e[3], ss_error_t *err);
ss_status_t model_tmp5(
    ss_model_t *m, ss_tensor_t *t, int64_t n, int64_t c, const int64_t e[3], ss_error_t *err);
ss_status_t model_act_like(ss_model_t *m, ss_tensor_t *t, const ss_tensor_t *like, ss_error_t *err);
ss_status_t model_tmp_like(ss_model_t *m, ss_tensor_t *t, const ss_tensor_t *like, ss_error_t *err);
// Inference (plan.training = 0) keeps only what later layers read: a block allocates its output
// first and rewinds m->act over its temporaries after it (resblock_fwd_into, cblock_fwd_into), as
// PyTorch frees tensors after their last use under no_grad: the whole-case inference peak
// follows the largest block, not the sum of all, and nothing is copied down.

// y += x (same shape, contiguous).
void model_add(ss_tensor_t *y, const ss_tensor_t *x, int nthreads);
// dst[n][b][a] = src[n][a][b] for contiguous [n][a][b] -> [n][b][a] (tokens <-> channels).
void model_transpose(float *dst, const float *src, int64_t n, int64_t a, int64_t b, int nthreads);

// --- layers (layers.c) -----------------------------------------------------------------------
typedef struct {
    int w, b; // parameter indices; b = -1 without bias
    ss_conv3d_params_t p;
    int64_t cin, cout;
    ss_tensor_t x; // saved input
} conv_t;

// Conv3d cin -> cout, kernel k, stride s, "same" padding (k - 1) / 2 when s == 1, else 0;
// n and in[3] are the batch and the input slab extent it will see (for the workspace).
ss_status_t conv_init(ss_model_t *m,
                      conv_t *c,
                      const char *prefix,
                      int64_t cin,
                      int64_t cout,
                      int k,
                      int s,
                      int bias,
                      const int64_t in[3],
                      ss_error_t *err);
ss_status_t
conv_fwd(ss_model_t *m, conv_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// The same into y, allocated by the caller with the output's shape.
ss_status_t
conv_fwd_into(ss_model_t *m, conv_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// dx (preallocated, x's shape) is overwritten with the input gradient; NULL skips it.
// The weight (and bias) gradients are overwritten.
ss_status_t
conv_bwd(ss_model_t *m, conv_t *c, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err);

typedef struct {
    int w, b; // b = -1 without bias
    int64_t cin, cout;
    ss_tensor_t x;
} convt_t;

// ConvTranspose3d cin -> cout, kernel = stride = 2.
ss_status_t convt_init(ss_model_t *m,
                       convt_t *c,
                       const char *prefix,
                       int64_t cin,
                       int64_t cout,
                       int bias,
                       const int64_t in[3],
                       ss_error_t *err);
ss_status_t
convt_fwd(ss_model_t *m, convt_t *c, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// cat = concat(convt(x), skip) on channels, allocated from act; with one sample the transposed
// convolution writes straight into cat (no copy of the upsampled half).
ss_status_t upsample_concat(ss_model_t *m,
                            convt_t *c,
                            ss_tensor_t *cat,
                            const ss_tensor_t *x,
                            const ss_tensor_t *skip,
                            ss_error_t *err);
ss_status_t
convt_bwd(ss_model_t *m, convt_t *c, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err);

typedef struct {
    int gamma, beta; // -1: affine=False
    int batch;       // BatchNorm3d: statistics over (n, slab) per channel, running buffers
    int rmean, rvar, nbt;
    int64_t c;
    ss_tensor_t x, mean, rstd; // saved
} norm_t;

// InstanceNorm3d(c, affine) or BatchNorm3d(c) named prefix.{weight,bias,...}.
ss_status_t norm_init(ss_model_t *m,
                      norm_t *nm,
                      const char *prefix,
                      int64_t c,
                      int affine,
                      int batch,
                      const int64_t in[3],
                      ss_error_t *err);
// y is allocated from act.
ss_status_t
norm_fwd(ss_model_t *m, norm_t *nm, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// y = act(norm(x) + res) in one pass (res may be NULL; it must not be y), bit for bit the
// separate norm, add and activation kernels. The backward is act_bwd, the residual's gradient
// and norm_bwd as for the separate calls: the saved values are the same.
ss_status_t norm_act_fwd(ss_model_t *m,
                         norm_t *nm,
                         ss_tensor_t *y,
                         const ss_tensor_t *x,
                         const ss_tensor_t *res,
                         ss_norm_act_t act,
                         float slope,
                         ss_error_t *err);
// dx (preallocated) may be dy: the gradient is then computed in place.
ss_status_t
norm_bwd(ss_model_t *m, norm_t *nm, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err);

// MONAI UnetResBlock (3x3x3 convs, instance norm, LeakyReLU 0.01; conv3 + norm3 when in != out).
typedef struct {
    conv_t conv1, conv2, conv3;
    norm_t norm1, norm2, norm3;
    int down;
    ss_tensor_t a1, out; // saved LeakyReLU outputs
} resblock_t;

ss_status_t resblock_init(ss_model_t *m,
                          resblock_t *r,
                          const char *prefix,
                          int64_t cin,
                          int64_t cout,
                          const int64_t in[3],
                          ss_error_t *err);
// In inference the output is allocated before the block's temporaries, which die with it, so
// nothing is moved (a memmove of 56 MB per block at 96^3 before).
ss_status_t
resblock_fwd(ss_model_t *m, resblock_t *r, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// Inference only: the same into y, allocated by the caller ([n][cout][x's extent]); the block's
// temporaries die on return.
ss_status_t resblock_fwd_into(
    ss_model_t *m, resblock_t *r, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// dx (preallocated, x's shape) or NULL when the input gradient is not needed. dy is used as
// scratch (overwritten).
ss_status_t
resblock_bwd(ss_model_t *m, resblock_t *r, ss_tensor_t *dx, ss_tensor_t *dy, ss_error_t *err);

// Leaky ReLU / ReLU backward (slope 0: ReLU; the forward is norm_act_fwd's epilogue): dy becomes
// dx (in place), given the saved output y.
ss_status_t
act_bwd(ss_model_t *m, ss_tensor_t *dy, const ss_tensor_t *y, float slope, ss_error_t *err);

// Pre-norm ViT block (MONAI TransformerBlock).
typedef struct {
    int ln1_w, ln1_b, ln2_w, ln2_b, qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b;
    int64_t hidden, mlp, heads;
    // saved (tokens are rows of [rows][features]):
    ss_tensor_t x0, a1, mean1, rstd1, qkv, o, lse, x1, a2, mean2, rstd2, h1, h2;
} tblock_t;

ss_status_t tblock_init(ss_model_t *m,
                        tblock_t *t,
                        const char *prefix,
                        int64_t hidden,
                        int64_t mlp,
                        int64_t heads,
                        int qkv_bias,
                        int64_t batch,
                        int64_t tokens,
                        ss_error_t *err);
// x, y: [batch][tokens][hidden]; y allocated from act.
ss_status_t
tblock_fwd(ss_model_t *m, tblock_t *t, ss_tensor_t *y, const ss_tensor_t *x, ss_error_t *err);
// dx preallocated, x's shape.
ss_status_t
tblock_bwd(ss_model_t *m, tblock_t *t, ss_tensor_t *dx, const ss_tensor_t *dy, ss_error_t *err);

// --- networks --------------------------------------------------------------------------------
ss_status_t unetr_build(ss_model_t *m, ss_error_t *err);
ss_status_t unet3d_build(ss_model_t *m, ss_error_t *err);

#endif
