#!/usr/bin/python3
"""Golden values for tests/check_loss.c: PyTorch CrossEntropyLoss / BCEWithLogitsLoss and MONAI
DiceLoss / DiceCELoss semantics (MONAI is re-stated below from monai/losses/dice.py so that the
script needs only torch), computed in float64 with autograd.

Writes ../data/golden_loss.h5, one group per case: logits (N, C, I, J, K) float32, target float32
(class map (N, I, J, K) or dense (N, C, I, J, K)), value float64 [loss, dice, ce], dlogits float64.
The C test holds the matching parameter table (tests/check_loss.c, golden_cases).
Run: cd tests/golden && /usr/bin/python3 make_golden_loss.py
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(20240531)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_loss.h5")
IGNORE = -100


def monai_dice(x, target, sigmoid, include_background, squared_pred, batch, smooth_nr, smooth_dr,
               mask):
    """MONAI DiceLoss.forward (reduction="mean") on a dense target (N, C, ...). mask (N, 1, ...)
    zeroes ignored class-map voxels' probabilities (an extension: MONAI has no ignore label)."""
    p = (torch.sigmoid(x) if sigmoid else torch.softmax(x, 1)) * mask
    t = target
    if not include_background and x.shape[1] > 1:
        p, t = p[:, 1:], t[:, 1:]
    axes = [2, 3, 4]
    if batch:
        axes = [0] + axes
    inter = torch.sum(t * p, dim=axes)
    if squared_pred:
        t, p = t ** 2, p ** 2
    f = 1.0 - (2.0 * inter + smooth_nr) / (torch.sum(t, dim=axes) + torch.sum(p, dim=axes) + smooth_dr)
    return torch.mean(f)


def one_hot(y, c):
    return torch.stack([(y == k).double() for k in range(c)], dim=1)


def case(f, name, shape, act, target_kind, lam_dice, lam_ce, include_background=True,
         squared_pred=False, batch=False, smooth_nr=1e-5, smooth_dr=1e-5, n_ignore=0):
    n, c, i, j, k = shape
    x = (torch.rand(shape, dtype=torch.float32) * 6 - 3).double().requires_grad_(True)
    if target_kind == "map":
        y = torch.randint(0, c, (n, i, j, k)).double()
        flat = y.view(-1)
        flat[torch.randperm(flat.numel())[:n_ignore]] = IGNORE
        valid = (y != IGNORE).double().unsqueeze(1)
        dense = one_hot(y, c) * valid
        tgt = y
    elif target_kind == "onehot":
        y = torch.randint(0, c, (n, i, j, k)).double()
        dense = one_hot(y, c)
        tgt = dense
    elif target_kind == "soft":
        dense = torch.rand(shape, dtype=torch.float32).double()  # not normalised: sum_c t != 1
        tgt = dense
    else:  # multi-label binary (BraTS regions overlap)
        dense = (torch.rand(shape) < 0.4).double()
        tgt = dense
    sig = act == "sigmoid"
    mask = valid if target_kind == "map" else torch.ones((n, 1, i, j, k), dtype=torch.float64)
    dice = monai_dice(x, dense, sig, include_background, squared_pred, batch, smooth_nr, smooth_dr,
                      mask)
    if sig:
        ce = F.binary_cross_entropy_with_logits(x, dense)
    elif target_kind == "map":
        ce = F.cross_entropy(x, y.long(), ignore_index=IGNORE)
    else:
        ce = F.cross_entropy(x, dense)  # class-probability targets (MONAI DiceCELoss one-hot path)
    loss = lam_dice * dice + lam_ce * ce
    loss.backward()
    g = f.create_group(name)
    g.create_dataset("logits", data=x.detach().float().numpy())
    g.create_dataset("target", data=tgt.float().numpy())
    g.create_dataset("value", data=np.array([loss.item(), dice.item(), ce.item()]))
    g.create_dataset("dlogits", data=x.grad.numpy())
    print(f"{name}: loss={loss.item():.10f} dice={dice.item():.10f} ce={ce.item():.10f}")


with h5py.File(OUT, "w") as f:
    f.attrs["torch_version"] = str(torch.__version__)
    case(f, "ce_map", (2, 3, 5, 4, 3), "softmax", "map", 0.0, 1.0, n_ignore=7)
    case(f, "ce_soft", (2, 4, 3, 5, 2), "softmax", "soft", 0.0, 1.0)
    case(f, "dice_softmax_map", (2, 3, 5, 4, 3), "softmax", "map", 1.0, 0.0,
         include_background=False)
    case(f, "dice_sigmoid", (2, 3, 5, 4, 3), "sigmoid", "multilabel", 1.0, 0.0,
         squared_pred=True, batch=True, smooth_nr=0.0, smooth_dr=1e-5)
    case(f, "dicece_softmax_map", (2, 3, 5, 4, 3), "softmax", "map", 1.0, 1.0, n_ignore=5)
    case(f, "dicece_softmax_onehot", (1, 4, 3, 5, 7), "softmax", "onehot", 1.0, 1.0,
         include_background=False, squared_pred=True, batch=True)
    case(f, "dicece_sigmoid", (2, 3, 5, 4, 3), "sigmoid", "multilabel", 0.7, 1.3)
print("wrote", os.path.normpath(OUT))
