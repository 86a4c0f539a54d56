#!/usr/bin/python3
"""Golden values for tests/check_norm.c: PyTorch instance norm, group norm and layer norm.

Run with Debian's python3-torch:  cd tests/golden && /usr/bin/python3 make_golden_norm.py
Writes ../data/golden_norm.h5. Inputs are drawn in float32 (so the C float kernels see exactly the
same values), the computation runs in float64, results are stored as float64. For each case
<name>: <name>/x, gamma, beta (when affine), dy (the upstream gradient), y, dx, dgamma, dbeta.
"""
import os

import h5py
import torch
import torch.nn.functional as F

EPS = 1e-5


def rand(*shape, lo=-2.0, hi=2.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).double()


def run(f, name, fn, x, params):
    x = x.clone().requires_grad_(True)
    params = [p.clone().requires_grad_(True) for p in params]
    y = fn(x, *params)
    dy = rand(*y.shape)
    y.backward(dy)
    g = f.create_group(name)
    g["x"] = x.detach().numpy()
    g["dy"] = dy.numpy()
    g["y"] = y.detach().numpy()
    g["dx"] = x.grad.numpy()
    for pname, p in zip(["gamma", "beta"], params):
        g[pname] = p.detach().numpy()
        g["d" + pname] = p.grad.numpy()


def main():
    torch.manual_seed(1234)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_norm.h5")
    with h5py.File(out, "w") as f:
        f.attrs["eps"] = EPS
        # InstanceNorm3d(affine=True): (N, C, I, J, K); an offset mean exercises the centring.
        x = rand(2, 3, 5, 4, 3) + 3.0
        run(f, "instnorm", lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=EPS), x,
            [rand(3), rand(3)])
        # InstanceNorm3d(affine=False).
        run(f, "instnorm_noaffine", lambda x: F.instance_norm(x, eps=EPS), rand(1, 2, 3, 5, 7), [])
        # GroupNorm(3, 6).
        run(f, "groupnorm", lambda x, g, b: F.group_norm(x, 3, g, b, eps=EPS),
            rand(2, 6, 3, 2, 5), [rand(6), rand(6)])
        # LayerNorm(12) on (T, C) tokens.
        run(f, "layernorm", lambda x, g, b: F.layer_norm(x, (12,), g, b, eps=EPS), rand(7, 12),
            [rand(12), rand(12)])


if __name__ == "__main__":
    main()
