#!/usr/bin/python3
"""Golden values for tests/check_conv3d.c: PyTorch conv3d forward and gradients.

Run with Debian's /usr/bin/python3 (python3-torch, python3-h5py, python3-numpy) from this
directory; writes ../data/golden_conv3d.h5. Inputs are drawn in float32 (so the C test feeds the
exact same values) and stored as float32; the convolution and its gradients are computed and
stored in float64. Per-side padding (pad_lo != pad_hi) is applied with F.pad before a
padding-free conv3d, which is what shardseg's per-side padding means.

Per case group /<name>: x (N,Cin,I,J,K), w (Cout,Cin,kI,kJ,kK), b (Cout), dy (shape of y),
y = conv(x, w) + b, dx, dw, db = gradients of sum(y * dy); attributes kernel, stride, pad_lo,
pad_hi (3 ints each, order i, j, k).
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CASES = [
    # name, N, Cin, Cout, (I, J, K), kernel, stride, pad_lo, pad_hi
    ("same3", 1, 3, 4, (4, 5, 6), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    ("aniso", 1, 2, 3, (7, 5, 6), (3, 2, 1), (2, 1, 3), (1, 0, 0), (0, 1, 2)),
    ("patch", 1, 2, 5, (8, 8, 8), (4, 4, 4), (4, 4, 4), (0, 0, 0), (0, 0, 0)),
    ("down", 1, 3, 2, (7, 6, 5), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1)),
    ("point", 2, 6, 3, (3, 4, 5), (1, 1, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0)),
    ("rows16", 1, 2, 2, (2, 3, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
]


def make_case(f, name, n, cin, cout, size, kernel, stride, lo, hi):
    x = torch.rand(n, cin, *size, dtype=torch.float32) * 2 - 1
    w = (torch.rand(cout, cin, *kernel, dtype=torch.float32) * 2 - 1) * 0.5
    b = torch.rand(cout, dtype=torch.float32) * 2 - 1
    xd = x.double().requires_grad_(True)
    wd = w.double().requires_grad_(True)
    bd = b.double().requires_grad_(True)
    # F.pad takes (k_lo, k_hi, j_lo, j_hi, i_lo, i_hi).
    xp = F.pad(xd, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]))
    y = F.conv3d(xp, wd, bd, stride=stride)
    dy = (torch.rand(y.shape, dtype=torch.float32) * 2 - 1).double()
    (y * dy).sum().backward()
    g = f.create_group(name)
    for key, val in (("x", x), ("w", w), ("b", b), ("dy", dy.float())):
        g.create_dataset(key, data=val.numpy())
    for key, val in (("y", y.detach()), ("dx", xd.grad), ("dw", wd.grad), ("db", bd.grad)):
        g.create_dataset(key, data=val.numpy())
    for key, val in (("kernel", kernel), ("stride", stride), ("pad_lo", lo), ("pad_hi", hi)):
        g.attrs[key] = np.array(val, dtype=np.int32)


def main():
    torch.manual_seed(20240604)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                       "golden_conv3d.h5")
    with h5py.File(out, "w", libver="latest") as f:
        f.attrs["torch_version"] = str(torch.__version__)
        for case in CASES:
            make_case(f, *case)


if __name__ == "__main__":
    main()
