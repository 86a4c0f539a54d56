#!/usr/bin/python3
"""Golden values for tests/check_act.c: PyTorch GELU (erf and tanh), ReLU, LeakyReLU and softmax
over the channel dim, forward and backward.

Run with Debian's python3-torch:  cd tests/golden && /usr/bin/python3 make_golden_act.py
Writes ../data/golden_act.h5. Inputs are drawn in float32 (the C float kernels see exactly the
same values), computed in float64, stored as float64. For each case <name>: <name>/x, dy, y, dx.
Dropout has no golden values: its mask comes from shardseg's counter-based RNG, not PyTorch's;
check_act.c checks its definition (mask, 1/(1-p) scale, sharding) directly.
"""
import os

import h5py
import torch
import torch.nn.functional as F


def rand(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).double()


def run(f, name, fn, x):
    x = x.clone().requires_grad_(True)
    y = fn(x)
    dy = rand(*y.shape)
    y.backward(dy)
    g = f.create_group(name)
    g["x"] = x.detach().numpy()
    g["dy"] = dy.numpy()
    g["y"] = y.detach().numpy()
    g["dx"] = x.grad.numpy()


def main():
    torch.manual_seed(4321)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden_act.h5")
    # Elementwise inputs: a spread over [-6, 6] plus fixed points around 0 and in the tails.
    fixed = torch.tensor([0.0, -0.0, 1e-3, -1e-3, 0.5, -0.5, 3.0, -3.0, -5.5, 5.5],
                         dtype=torch.float32).double()
    x = torch.cat([rand(90, lo=-6.0, hi=6.0), fixed])
    with h5py.File(out, "w") as f:
        f.attrs["leaky_slope"] = 0.01
        run(f, "gelu", lambda t: F.gelu(t), x)
        run(f, "gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), x)
        run(f, "relu", F.relu, x)
        run(f, "leaky_relu", lambda t: F.leaky_relu(t, 0.01), x)
        # Softmax over C of (N, C, I, J, K), logits with a spread of +-4.
        run(f, "softmax", lambda t: torch.softmax(t, dim=1), rand(2, 4, 3, 5, 2, lo=-4.0, hi=4.0))


if __name__ == "__main__":
    main()
