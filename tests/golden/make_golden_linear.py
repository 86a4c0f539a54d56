#!/usr/bin/python3
"""Golden values for tests/check_linear.c: PyTorch nn.Linear (F.linear), forward and backward.

Run with Debian's python3-torch:  cd tests/golden && /usr/bin/python3 make_golden_linear.py
Writes ../data/golden_linear.h5. Inputs are drawn in float32 (the C float kernels see exactly the
same values), computed in float64, stored as float64. For each case <name>: <name>/x (leading
dims kept), w (out, in), b (when biased), dy, y, dx, dw, db.
"""
import os

import h5py
import torch
import torch.nn.functional as F


def rand(*shape):
    return (torch.rand(*shape, dtype=torch.float32) * 2.0 - 1.0).double()


def run(f, name, x, w, b):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    if b is not None:
        b = b.clone().requires_grad_(True)
    y = F.linear(x, w, b)
    dy = rand(*y.shape)
    y.backward(dy)
    g = f.create_group(name)
    for key, val in [("x", x), ("w", w), ("dy", dy), ("y", y)]:
        g[key] = val.detach().numpy()
    g["dx"] = x.grad.numpy()
    g["dw"] = w.grad.numpy()
    if b is not None:
        g["b"] = b.detach().numpy()
        g["db"] = b.grad.numpy()


def main():
    torch.manual_seed(2468)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                       "golden_linear.h5")
    with h5py.File(out, "w") as f:
        # (batch, tokens, in) -> out, with bias; and a 2-D call without bias.
        run(f, "linear", rand(2, 5, 7), rand(11, 7), rand(11))
        run(f, "linear_nobias", rand(9, 13), rand(3, 13), None)


if __name__ == "__main__":
    main()
