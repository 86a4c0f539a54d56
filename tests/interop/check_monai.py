#!/usr/bin/python3
"""Optional cross-check of shardseg_ref.py against MONAI itself (not part of `make check`).

Builds MONAI's UNETR and ours for two small configurations (patch 16, 12 layers, as MONAI fixes
them), loads our state_dict into MONAI and compares state_dict keys, forward outputs and
gradients in float64 (train mode), the initial weights from the same seed, and the losses
(DiceCELoss). Exits 77 (SKIP) when MONAI cannot be imported, 1 on a mismatch.

MONAI is pure Python: a source checkout works, e.g. PYTHONPATH=/path/to/MONAI (einops is needed
by MONAI's attention blocks). Expected: MONAI 1.0-1.3 identical keys and initial weights;
MONAI >= 1.4 reports the unused cross-attention keys as missing (docs/models.md) and its extra
modules consume random numbers, so initial weights differ there; forward and gradients are
identical in both.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shardseg_ref as R  # noqa: E402

try:
    import monai
    from monai.losses import DiceCELoss, DiceLoss
    from monai.networks.nets import UNETR
except ImportError as e:
    print(f"SKIP: MONAI not importable ({e})")
    sys.exit(77)


def check_unetr(img, hidden, mlp, heads, feature, cin, cout):
    ok = True
    torch.manual_seed(5)
    ref = R.UNETR(cin, cout, list(img), 16, feature, hidden, mlp, heads, 12).double()
    torch.manual_seed(5)
    mon = UNETR(cin, cout, img, feature_size=feature, hidden_size=hidden, mlp_dim=mlp,
                num_heads=heads).double()
    rs, ms = ref.state_dict(), mon.state_dict()
    only_ref = sorted(set(rs) - set(ms))
    only_monai = sorted(set(ms) - set(rs))
    unexpected = [k for k in only_monai if "cross_attn" not in k]
    same_init = all(torch.equal(rs[k], ms[k]) for k in rs if k in ms)
    mon.load_state_dict(rs, strict=not only_monai)
    ref.train()
    mon.train()
    x = torch.randn(2, cin, *img, dtype=torch.float64)
    y1, y2 = ref(x), mon(x)
    dy = float((y1 - y2).abs().max())
    y1.square().sum().backward()
    y2.square().sum().backward()
    mp = dict(mon.named_parameters())
    dg = max(float((p.grad - mp[k].grad).abs().max()) for k, p in ref.named_parameters())
    print(f"MONAI {monai.__version__} UNETR img {img} hidden {hidden}: keys only ours "
          f"{len(only_ref)}, only MONAI {len(only_monai)} "
          f"(not cross-attention: {len(unexpected)}), same init {same_init}, "
          f"forward max|d| {dy:.1e}, grads max|d| {dg:.1e}")
    if only_ref or unexpected or dy > 1e-12 or dg > 1e-12:
        ok = False
    return ok


def check_losses():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, 4, dtype=torch.float64)
    t = (torch.rand(2, 3, 6, 5, 4) < 0.3).double()
    lab = torch.randint(0, 3, (2, 6, 5, 4))
    a = float(R.dice_ce_sigmoid(x, t))
    b = float(DiceLoss(sigmoid=True)(x, t) + torch.nn.functional.binary_cross_entropy_with_logits(
        x, t))
    c = float(R.dice_ce_softmax(x, lab))
    d = float(DiceCELoss(softmax=True, to_onehot_y=True)(x, lab.unsqueeze(1)))
    print(f"dice_ce_sigmoid {a:.12f} vs DiceLoss(sigmoid)+BCE {b:.12f}; "
          f"dice_ce_softmax {c:.12f} vs DiceCELoss(softmax, to_onehot_y) {d:.12f}")
    return abs(a - b) < 1e-12 and abs(c - d) < 1e-12


ok = check_unetr((32, 32, 32), 24, 48, 4, 2, 3, 2)
ok = check_unetr((64, 32, 48), 48, 96, 4, 4, 4, 3) and ok
ok = check_losses() and ok
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
