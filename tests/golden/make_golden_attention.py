#!/usr/bin/python3
"""Golden values for tests/check_attention.c: multi-head self-attention on a fused QKV buffer.

The layout is MONAI's SABlock (monai/networks/blocks/selfattention.py): one Linear gives each
token 3*H*D features, split by Rearrange("b h (qkv l d) -> qkv b l h d") (h = token, l = head),
which is reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4). The attention output is rearranged
back to tokens as "b l h d -> b h (l d)": a token row [head][d]. Computed in float64 with an
explicit softmax (torch 1.13 has no F.scaled_dot_product_attention); inputs are rounded to
float32 first, so the float64 results are exact references for the float32 inputs the C test
reads. Loss = sum(o * dout) gives the gradients with respect to the fused qkv buffer.

Run with Debian's /usr/bin/python3 (python3-torch, python3-h5py):
    cd tests/golden && /usr/bin/python3 make_golden_attention.py
Writes ../data/golden_attention.h5 with, per case c in {a, b}:
    c_qkv (B, N, 3*H*D), c_dout (B, N, H*D)       inputs
    c_o (B, N, H*D), c_lse (B, H, N)             forward
    c_dqkv (B, N, 3*H*D)                          backward
and root attributes c_heads, c_dim, c_scale (0 = default 1/sqrt(D)).
"""
import os

import h5py
import numpy as np
import torch

CASES = {
    # name: (B, N, H, D, scale, input range); N = 13 is no multiple of any tile
    "a": (2, 13, 3, 8, 0.0, 2.0),
    # D = 64 (the ViT-B head), an explicit scale and larger logits
    "b": (1, 20, 1, 64, 0.2, 1.5),
}


def attention(qkv, b, n, h, d, scale):
    q, k, v = qkv.reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)  # each (B, H, N, D)
    s = torch.einsum("blxd,blyd->blxy", q, k) * scale
    o = torch.einsum("blxy,blyd->blxd", torch.softmax(s, dim=-1), v)
    lse = torch.logsumexp(s, dim=-1)  # (B, H, N)
    return o.permute(0, 2, 1, 3).reshape(b, n, h * d), lse


def main():
    torch.manual_seed(20240607)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data",
                       "golden_attention.h5")
    with h5py.File(out, "w") as f:
        for name, (b, n, h, d, scale, amp) in CASES.items():
            eff = scale if scale != 0.0 else d ** -0.5
            qkv = ((torch.rand(b, n, 3 * h * d) * 2 - 1) * amp).float().double()
            dout = (torch.rand(b, n, h * d) * 2 - 1).float().double()
            qkv.requires_grad_(True)
            o, lse = attention(qkv, b, n, h, d, eff)
            (o * dout).sum().backward()
            for key, val in (("qkv", qkv), ("dout", dout), ("o", o), ("lse", lse),
                             ("dqkv", qkv.grad)):
                f.create_dataset(f"{name}_{key}", data=val.detach().numpy().astype(np.float32))
            f.attrs[f"{name}_heads"] = h
            f.attrs[f"{name}_dim"] = d
            f.attrs[f"{name}_scale"] = scale


if __name__ == "__main__":
    main()
