// model.h: the networks (UNETR, 3D U-Net) as one parameter vector plus a planned forward/backward.
//
// A model is built from a configuration (the weights file's attributes, docs/models.md) and a plan:
// the batch size and the i-slab [slab_start, slab_start + slab_len) of the volume this rank owns.
// Every layer works on that slab only and calls the sequence hooks of include/shardseg/seq.h for
// halo planes, global statistics and attention over the whole token sequence; with one rank
// (seq == NULL) the hooks are local and the slab is the whole volume.
//
// Parameters live in one flat float32 vector (and gradients in a second one of the same layout),
// in registration order, each parameter starting on a 64-byte boundary. ss_param_t names each one
// by its PyTorch state_dict key with PyTorch's shape, so weights files map 1:1 to state_dicts and
// an optimizer or a gradient all-reduce works on the flat vector in one call. Non-trainable state
// (BatchNorm running statistics) is registered too, with `trainable` 0 and no gradient use.
//
// Ownership: ss_model_create returns a model owned by the caller (ss_model_destroy). The model owns
// its parameters, gradients and activation memory (charged to the budget given at creation).
// Tensors returned by ss_model_forward are views into model memory, valid until the next forward.
// Threading: a model is used by one thread at a time; kernels inside use plan.nthreads threads.
#ifndef SS_MODEL_H
#define SS_MODEL_H

#include <stdint.h>

#include "shardseg/arena.h"
#include "shardseg/seq.h"
#include "shardseg/status.h"
#include "shardseg/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SS_MODEL_UNETR = 0,
    SS_MODEL_UNET3D = 1,
} ss_model_kind_t;

typedef enum {
    SS_MODEL_NORM_INSTANCE = 0, // InstanceNorm3d (UNETR: no affine; U-Net: affine)
    SS_MODEL_NORM_BATCH = 1,    // BatchNorm3d (U-Net only)
} ss_model_norm_t;

// Hyper-parameters, named as MONAI's constructor arguments (docs/models.md).
typedef struct {
    ss_model_kind_t kind;
    int64_t in_channels;
    int64_t out_channels;
    int64_t img_size[3];
    // UNETR
    int64_t patch_size[3]; // equal, one of 4, 8, 16
    int64_t feature_size;
    int64_t hidden_size;
    int64_t mlp_dim;
    int64_t num_heads;
    int64_t num_layers; // >= 4
    int qkv_bias;
    int res_block;  // 1 (UnetResBlock); 0 is not built
    int conv_block; // 1; 0 is not built
    double dropout_rate;
    // 3D U-Net
    int64_t depth; // levels including the bottleneck, >= 2
    int64_t base_filters;
    int64_t convs_per_level;
    ss_model_norm_t norm;
} ss_model_config_t;

// MONAI's defaults for UNETR (in 4, out 3, img 128^3, patch 16, feature 16, hidden 768, mlp 3072,
// heads 12, layers 12) or the U-Net's (in 4, out 3, img 128^3, depth 4, base 16, 2 convs,
// instance).
void ss_model_config_default(ss_model_config_t *c, ss_model_kind_t kind);
// SS_EINVAL naming the attribute (e.g. "hidden_size: 100 is not divisible by num_heads 12; ...").
ss_status_t ss_model_config_validate(const ss_model_config_t *c, ss_error_t *err);
const char *ss_model_kind_name(ss_model_kind_t kind); // "unetr" | "unet3d"
ss_status_t
ss_model_kind_parse(const char *s, const char *what, ss_model_kind_t *out, ss_error_t *err);
// Alignment of i-slabs: slab_start and slab_len must be multiples of it (UNETR: the patch size,
// U-Net: 2^(depth-1)), so every level's slab has whole planes.
int64_t ss_model_slab_quantum(const ss_model_config_t *c);

typedef enum {
    SS_INIT_ZERO = 0,
    SS_INIT_ONE = 1,
    SS_INIT_UNIFORM = 2,      // U(-scale, scale)
    SS_INIT_TRUNC_NORMAL = 3, // N(0, scale^2) truncated to [-2, 2] (absolute, as timm/MONAI)
} ss_init_kind_t;

#define SS_PARAM_NAME_MAX 96

typedef struct {
    char name[SS_PARAM_NAME_MAX]; // PyTorch state_dict key
    int ndim;
    int64_t shape[5]; // PyTorch shape
    int64_t offset;   // first element in the flat vectors
    int64_t numel;
    int trainable; // 0 for BatchNorm buffers (running_mean, running_var, num_batches_tracked)
    ss_init_kind_t init;
    double init_scale; // bound (uniform) or std (trunc normal)
} ss_param_t;

typedef struct {
    int64_t batch;
    int64_t slab_start; // first plane along I of img_size owned by this rank
    int64_t slab_len;   // planes owned; img_size[0] with one rank
    int training;       // keep what backward needs; dropout and batch statistics on
    int nthreads;       // OpenMP threads for the kernels
    ss_seq_t *seq;      // sequence group hooks (borrowed); NULL: one rank
} ss_model_plan_t;

// Per-step values a forward pass needs besides the input.
typedef struct {
    uint64_t seed; // run seed: dropout masks are f(seed, step, site, global element index)
    int64_t step;
} ss_model_step_t;

typedef struct ss_model ss_model_t;

// Builds the network for cfg and plan; parameters are zero until ss_model_init_weights or a load.
ss_status_t ss_model_create(ss_model_t **out,
                            const ss_model_config_t *cfg,
                            const ss_model_plan_t *plan,
                            ss_budget_t *budget,
                            ss_error_t *err);
void ss_model_destroy(ss_model_t **m);

const ss_model_config_t *ss_model_config(const ss_model_t *m);
const ss_model_plan_t *ss_model_plan(const ss_model_t *m);
int ss_model_param_count(const ss_model_t *m);
const ss_param_t *ss_model_param(const ss_model_t *m, int i);
// Index of the parameter called name, or -1.
int ss_model_param_find(const ss_model_t *m, const char *name);
int64_t ss_model_numel(const ss_model_t *m);  // length of the flat vectors (with alignment gaps)
float *ss_model_weights(const ss_model_t *m); // flat parameters
float *ss_model_grads(const ss_model_t *m);   // flat gradients (same layout)

// PyTorch/MONAI initialisation from the counter-based RNG: identical for any rank count.
ss_status_t ss_model_init_weights(ss_model_t *m, uint64_t seed, ss_error_t *err);

// Forward of x [batch][in_channels][slab_len][J][K] (this rank's slab). *logits becomes a view of
// [batch][out_channels][slab_len][J][K] in model memory.
ss_status_t ss_model_forward(ss_model_t *m,
                             ss_tensor_t *logits,
                             const ss_tensor_t *x,
                             const ss_model_step_t *st,
                             ss_error_t *err);
// Backward of the last forward (plan.training must be 1): dlogits has the logits' shape.
// Overwrites the flat gradient vector with d loss / d parameters of this rank's slab (the caller
// reduces it over the sequence group with ss_seq_allreduce_grads).
ss_status_t ss_model_backward(ss_model_t *m, const ss_tensor_t *dlogits, ss_error_t *err);

// Bytes of model memory: parameters + gradients, and the activation arenas' peak.
size_t ss_model_param_bytes(const ss_model_t *m);
size_t ss_model_activation_peak(const ss_model_t *m);

#ifdef __cplusplus
}
#endif

#endif
