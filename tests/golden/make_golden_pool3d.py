#!/usr/bin/python3
"""Golden values for tests/check_pool3d.c: PyTorch max_pool3d / avg_pool3d with window == stride.

Run from this directory with Debian's /usr/bin/python3 (python3-torch, python3-h5py, numpy):
    /usr/bin/python3 make_golden_pool3d.py
Writes ../data/golden_pool3d.h5 with, per case <c>: <c>_x, <c>_gy (upstream gradient), <c>_y and
<c>_gx (gradient of sum(y * gy)); float64, computed in float64. The max cases quantise x to
multiples of 0.5 so windows hold ties: the gradients then pin down PyTorch's tie rule (first
maximum in window order). Odd sizes check the floor rule. Windows are listed in CASES and in the
C test's table.
"""
import os

import h5py
import torch
import torch.nn.functional as F

CASES = {
    # name: (op, x shape (N, C, I, J, K), window)
    "max222": ("max", (2, 3, 5, 4, 7), (2, 2, 2)),
    "max312": ("max", (1, 2, 7, 3, 5), (3, 1, 2)),
    "avg222": ("avg", (2, 3, 5, 4, 7), (2, 2, 2)),
    "avg312": ("avg", (1, 2, 7, 3, 5), (3, 1, 2)),
}


def main():
    torch.manual_seed(20240602)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_pool3d.h5")
    with h5py.File(out, "w") as f:
        for name, (op, xs, win) in CASES.items():
            x = torch.randn(*xs, dtype=torch.float64)
            if op == "max":
                x = torch.round(x * 2) / 2  # ties inside windows
            x.requires_grad_(True)
            pool = F.max_pool3d if op == "max" else F.avg_pool3d
            y = pool(x, win, stride=win)
            gy = torch.randn_like(y)
            (y * gy).sum().backward()
            for key, t in (("x", x), ("gy", gy), ("y", y), ("gx", x.grad)):
                f.create_dataset(f"{name}_{key}", data=t.detach().numpy())


if __name__ == "__main__":
    main()
