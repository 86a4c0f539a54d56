#!/usr/bin/python3
"""Golden values for tests/check_layout.c: torch.cat along channels and F.pad (pad and crop).

Run from this directory with Debian's /usr/bin/python3 (python3-torch, python3-h5py, numpy):
    /usr/bin/python3 make_golden_layout.py
Writes ../data/golden_layout.h5, float64, computed in float64:
  cat_a, cat_b, cat_gy, cat_y = torch.cat([a, b], 1), cat_ga, cat_gb (gradients of sum(y * gy));
  per pad case <c>: <c>_x, <c>_gy, <c>_y = F.pad(x, PADS, value=VALUE), <c>_gx. The pads (with
  negative entries, i.e. crops) and values are listed in PAD_CASES and in the C test's table.
"""
import os

import h5py
import torch
import torch.nn.functional as F

# name: (x shape, F.pad tuple (k_lo, k_hi, j_lo, j_hi, i_lo, i_hi), value)
PAD_CASES = {
    "pad0": ((2, 3, 4, 5, 6), (2, -1, -1, 3, 0, 2), 0.0),
    "pad1": ((1, 2, 5, 3, 4), (-1, -2, 1, 1, -2, 3), 1.5),
}


def save(f, prefix, tensors):
    for key, t in tensors:
        f.create_dataset(f"{prefix}_{key}", data=t.detach().numpy())


def main():
    torch.manual_seed(20240603)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_layout.h5")
    with h5py.File(out, "w") as f:
        a = torch.randn(2, 3, 3, 4, 5, dtype=torch.float64, requires_grad=True)
        b = torch.randn(2, 2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
        y = torch.cat([a, b], 1)
        gy = torch.randn_like(y)
        (y * gy).sum().backward()
        save(f, "cat", (("a", a), ("b", b), ("gy", gy), ("y", y), ("ga", a.grad), ("gb", b.grad)))
        for name, (xs, pads, value) in PAD_CASES.items():
            x = torch.randn(*xs, dtype=torch.float64, requires_grad=True)
            y = F.pad(x, pads, value=value)
            gy = torch.randn_like(y)
            (y * gy).sum().backward()
            save(f, name, (("x", x), ("gy", gy), ("y", y), ("gx", x.grad)))


if __name__ == "__main__":
    main()
