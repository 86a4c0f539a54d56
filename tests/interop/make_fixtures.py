#!/usr/bin/python3
"""Interop fixtures for shardseg's networks (issue 6, "Verification: Interop").

For each configuration in CONFIGS this writes ../data/interop_<name>.h5 holding
  * a complete weights file (docs/models.md): one float32 root dataset per state_dict key and the
    hyper-parameters as root attributes, = the initial weights (PyTorch/MONAI init after
    torch.manual_seed(seed));
  * group /fixture: a fixed batch and what PyTorch does with it, in float64 arithmetic starting
    from the float32 values stored here (weights, input), so a float32 implementation starts from
    identical numbers:
      input   float32 [N][in][I][J][K]   normal noise rounded to 1/64 (exact in float32)
      target  float32 [N][out][I][J][K]  0/1 blobs (thresholded smoothed noise, per channel)
      logits  float32 [N][out][I][J][K]  forward of the initial weights (train mode)
      losses  float64 [steps]            loss before each AdamW step (first = loss of logits)
      after/<key> float32                every state_dict entry after `steps` AdamW steps on the
                                         same batch (BatchNorm buffers included)
      grads/<key> float32                gradient of the first step, for tensors with at most
                                         GRAD_FULL_MAX elements (to localise a mismatch)
    attributes of /fixture: lr, beta1, beta2, eps, weight_decay (double), loss (string
    "dice_ce_sigmoid"), steps, seed (int64), torch_version (string);
    attributes of after/<key> (trainable parameters only): grad_norm (double, L2 norm of the
    first-step gradient: localises a mismatch for tensors without grads/<key>), and, only where
    it is 1, analytic_zero (int64: the gradient is zero in exact arithmetic, conv biases right
    before a norm; the computed gradient is rounding noise and AdamW turns noise into steps of up
    to lr, so compare those entries with an absolute tolerance, see docs/models.md).
Model in train mode (dropout 0); loss dice_ce_sigmoid = Dice(sigmoid) + mean BCE-with-logits
(docs/models.md, "Loss used for interop"); optimizer torch.optim.AdamW (decay applied to every
parameter). Big /fixture datasets are gzip+shuffle compressed (HDF5 reads them transparently);
the weights datasets are contiguous. No timestamps: regenerating gives identical bytes.
The script prints, per file, how close the same steps in float32 PyTorch come (the tolerances a
float32 implementation can meet; docs/models.md turns them into comparison rules).

Sizes: the files are committed (each < 400 KB, all < 1.5 MB), so the networks are tiny but keep
every structural feature: the parameter count is dominated by the patch embedding
(in * hidden * p^3: p16 takes in 1, hidden 4) and UNETR's deepest decoder (8 * feature_size
channels), the data by the float32 logits. unetr_p16: all four stages, 2 tokens (grid 2x1x1);
unetr_p8: 8 tokens (grid 2x2x2: token order along i, j and k), 2 heads; unet3d(_bn): 3 levels,
in 4, batch 2 for BatchNorm.

Run: cd tests/interop && /usr/bin/python3 make_fixtures.py   (Debian python3-torch, python3-h5py)
"""
import copy
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shardseg_ref as R  # noqa: E402

OUT = os.environ.get("SS_FIXTURE_DIR",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
LR, BETA1, BETA2, EPS, WD, STEPS = 1e-3, 0.9, 0.999, 1e-8, 1e-2, 3
GRAD_FULL_MAX = 2048

# name: (seed, batch, model config)
CONFIGS = {
    "unetr_p16": (1601, 1, dict(model="unetr", in_channels=1, out_channels=2, img_size=[32, 16, 16],
                                patch_size=[16] * 3, feature_size=1, hidden_size=4, mlp_dim=8,
                                num_heads=2, num_layers=4)),
    "unetr_p8": (801, 1, dict(model="unetr", in_channels=2, out_channels=3, img_size=[16, 16, 16],
                              patch_size=[8] * 3, feature_size=2, hidden_size=8, mlp_dim=16,
                              num_heads=2, num_layers=4)),
    "unet3d": (3001, 1, dict(model="unet3d", in_channels=4, out_channels=3, img_size=[16, 16, 16],
                             depth=3, base_filters=4, convs_per_level=2, norm_name="instance")),
    "unet3d_bn": (3002, 2, dict(model="unet3d", in_channels=4, out_channels=3,
                                img_size=[16, 16, 8], depth=3, base_filters=4, convs_per_level=2,
                                norm_name="batch")),
}


def make_batch(n, cin, cout, img):
    x = torch.round(torch.randn(n, cin, *img) * 64) / 64  # exact in float32, compresses well
    noise = torch.randn(n, cout, *img)
    smooth = F.avg_pool3d(noise, 5, stride=1, padding=2, count_include_pad=False)
    # per-channel thresholds: foreground fractions of roughly 40 %, 25 %, 10 %, ...
    q = [0.6, 0.75, 0.9][:cout] + [0.9] * max(0, cout - 3)
    thr = torch.stack([torch.quantile(smooth[:, c].reshape(-1), q[c]) for c in range(cout)])
    t = (smooth > thr.view(1, cout, 1, 1, 1)).float()
    return x.float(), t


def run_steps(model, x, t, dtype):
    """STEPS AdamW steps in dtype; returns logits of step 0, losses, first grads, final state."""
    m = copy.deepcopy(model).to(dtype).train()
    opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                            weight_decay=WD)
    xs, ts = x.to(dtype), t.to(dtype)
    losses, logits0, grads0 = [], None, None
    for s in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits = m(xs)
        loss = R.dice_ce_sigmoid(logits, ts)
        losses.append(loss.item())
        loss.backward()
        if s == 0:
            logits0 = logits.detach().clone()
            grads0 = {k: p.grad.detach().clone() for k, p in m.named_parameters()}
        opt.step()
    return logits0, losses, grads0, {k: v.detach().clone() for k, v in m.state_dict().items()}


def create_file(path):
    """HDF5 file (v110 object headers) with no timestamps anywhere: regenerating a fixture gives
    the same bytes, so an unchanged fixture shows no git diff."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def create_group(parent, name):
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def rel(a, b):
    return float((a.double() - b.double()).norm() / max(b.double().norm(), 1e-30))


def write_fixture(name, seed, batch, cfg):
    torch.manual_seed(seed)
    model = R.build(cfg)  # float32, documented init
    x, t = make_batch(batch, cfg["in_channels"], cfg["out_channels"], cfg["img_size"])
    logits, losses, grads, after = run_steps(model, x, t, torch.float64)
    zero = set(R.analytic_zero_grads(model))
    path = os.path.join(OUT, f"interop_{name}.h5")
    tmp = path + ".tmp"

    def comp(v):  # chunk indexes cost ~KBs each: compress the big datasets only
        big = dict(compression="gzip", compression_opts=9, shuffle=True) \
            if v.numel() >= 2048 else {}
        return dict(track_times=False, **big)  # byte-identical regeneration
    with create_file(tmp) as f:
        R.write_weights(f, model)
        g = create_group(f, "fixture")
        g.create_dataset("input", data=x.numpy(), **comp(x))
        g.create_dataset("target", data=t.numpy(), **comp(t))
        g.create_dataset("logits", data=logits.float().numpy(), **comp(logits))
        g.create_dataset("losses", data=np.array(losses, dtype=np.float64), track_times=False)
        for k, v in (("lr", LR), ("beta1", BETA1), ("beta2", BETA2), ("eps", EPS),
                     ("weight_decay", WD)):
            g.attrs.create(k, np.float64(v))
        g.attrs.create("steps", np.int64(STEPS))
        g.attrs.create("seed", np.int64(seed))
        R.write_str_attr(g, "loss", "dice_ce_sigmoid")
        R.write_str_attr(g, "torch_version", str(torch.__version__))
        ga, gg = create_group(g, "after"), create_group(g, "grads")
        for k, v in after.items():
            d = ga.create_dataset(k, data=v.float().numpy(), **comp(v))
            if k in grads:
                d.attrs.create("grad_norm", np.float64(grads[k].norm().item()))
                if k in zero:
                    d.attrs.create("analytic_zero", np.int64(1))
                if grads[k].numel() <= GRAD_FULL_MAX:
                    gg.create_dataset(k, data=grads[k].float().numpy(),
                                      **comp(grads[k]))
    os.replace(tmp, path)
    # What a float32 implementation can reach: the same steps in float32 torch.
    l32, loss32, g32, a32 = run_steps(model, x, t, torch.float32)
    gworst = max((rel(g32[k], grads[k]), k) for k in grads if k not in zero)
    aworst = max((float((a32[k].double() - v).abs().max()) / LR, k) for k, v in after.items()
                 if k not in zero and "running_mean" not in k)
    nparam = sum(p.numel() for p in model.parameters())
    print(f"{name}: params={nparam} losses={['%.8f' % v for v in losses]} "
          f"fg={t.mean((0, 2, 3, 4)).tolist()} size={os.path.getsize(path)} B\n"
          f"  float32 torch vs this: logits max|d|/max|ref|="
          f"{float((l32.double() - logits).abs().max() / logits.abs().max()):.1e} "
          f"loss0 rel={abs(loss32[0] - losses[0]) / losses[0]:.1e} "
          f"grads worst rel-L2={gworst[0]:.1e} ({gworst[1]}) "
          f"after worst max|d|/lr={aworst[0]:.1e} ({aworst[1]})")


def main():
    names = sys.argv[1:] or list(CONFIGS)
    for n in names:
        write_fixture(n, *CONFIGS[n])


if __name__ == "__main__":
    main()
