#!/usr/bin/python3
"""Golden values for tests/check_convt3d.c: PyTorch ConvTranspose3d with kernel == stride.

Run from this directory with Debian's /usr/bin/python3 (python3-torch, python3-h5py, numpy):
    /usr/bin/python3 make_golden_convt3d.py
Writes ../data/golden_convt3d.h5 with, per case <c>: <c>_x, <c>_w, <c>_b, <c>_gy (the upstream
gradient), <c>_y = conv_transpose3d(x, w, b, stride=s), and the gradients <c>_gx, <c>_gw, <c>_gb
of sum(y * gy); all float64, computed in float64. Attribute <c>_stride holds s as 3 ints.
"""
import os

import h5py
import torch
import torch.nn.functional as F

CASES = {
    # name: (x shape (N, Cin, I, J, K), Cout, stride)
    "s2": ((2, 3, 3, 2, 5), 4, (2, 2, 2)),  # the UNETR / U-Net case, odd sizes
    "s312": ((1, 2, 2, 3, 1), 3, (3, 1, 2)),  # general kernel == stride
}


def main():
    torch.manual_seed(20240601)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_convt3d.h5")
    with h5py.File(out, "w") as f:
        for name, (xs, cout, s) in CASES.items():
            x = torch.randn(*xs, dtype=torch.float64, requires_grad=True)
            w = torch.randn(xs[1], cout, *s, dtype=torch.float64, requires_grad=True)
            b = torch.randn(cout, dtype=torch.float64, requires_grad=True)
            y = F.conv_transpose3d(x, w, b, stride=s)
            gy = torch.randn_like(y)
            (y * gy).sum().backward()
            for key, t in (("x", x), ("w", w), ("b", b), ("gy", gy), ("y", y), ("gx", x.grad),
                           ("gw", w.grad), ("gb", b.grad)):
                f.create_dataset(f"{name}_{key}", data=t.detach().numpy())


if __name__ == "__main__":
    main()
