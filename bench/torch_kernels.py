#!/usr/bin/python3
"""PyTorch CPU baseline for `shardseg bench kernels`: the same ops on the same shapes.

Run with Debian's python3-torch:  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_kernels.py --threads 2
Prints one line per op in the format shardseg prints, so bench/kernels_vs_torch.sh can join them:
  op=<name> fwd_ms=<median> fwdbwd_ms=<median> fwd_min_ms=<min> fwdbwd_min_ms=<min>
Times are medians (and minima) over --repeats runs after one warm-up; fwdbwd includes the forward.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def timed(fn, repeats):
    fn()  # warm-up (oneDNN primitive creation, allocator)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[0]


def report(name, fwd, fwdbwd, repeats):
    f_med, f_min = timed(fwd, repeats)
    b_med, b_min = timed(fwdbwd, repeats)
    print(f"op={name} fwd_ms={f_med:.3f} fwdbwd_ms={b_med:.3f} fwd_min_ms={f_min:.3f} "
          f"fwdbwd_min_ms={b_min:.3f}", flush=True)


def bench_op(name, make_inputs, forward, repeats):
    inputs = make_inputs()

    def fwd():
        with torch.no_grad():
            forward(*inputs)

    def fwdbwd():
        for t in inputs:
            if t.requires_grad:
                t.grad = None
        out = forward(*inputs)
        out.backward(torch.ones_like(out))

    report(name, fwd, fwdbwd, repeats)


def rand(*shape, grad=True):
    return torch.randn(*shape, dtype=torch.float32).requires_grad_(grad)


def attention(q, k, v):
    # q, k, v: (B, H, N, D); materialises the N x N scores, as torch 1.13 on CPU has no fused kernel.
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.matmul(torch.softmax(s, dim=-1), v)


def dice_ce_sigmoid(x, t):
    # MONAI DiceCELoss(sigmoid=True) with its defaults, written out (MONAI is not a dependency).
    p = torch.sigmoid(x)
    dims = (2, 3, 4)
    inter = (p * t).sum(dims)
    dice = 1 - (2 * inter + 1e-5) / (p.sum(dims) + t.sum(dims) + 1e-5)
    return dice.mean() + F.binary_cross_entropy_with_logits(x, t)


def bench_adamw(repeats):
    p = torch.nn.Parameter(torch.randn(16 * 1024 * 1024))
    p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW([p], lr=1e-3)
    report("adamw", opt.step, opt.step, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated op names")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ops = {
        "conv3d_3x3x3": (lambda: (rand(1, 32, 64, 64, 64), rand(32, 32, 3, 3, 3), rand(32)),
                         lambda x, w, b: F.conv3d(x, w, b, padding=1)),
        "conv3d_3x3x3_c4": (lambda: (rand(1, 4, 64, 64, 64), rand(16, 4, 3, 3, 3), rand(16)),
                            lambda x, w, b: F.conv3d(x, w, b, padding=1)),
        "conv3d_3x3x3_c16": (lambda: (rand(1, 16, 64, 64, 64), rand(16, 16, 3, 3, 3), rand(16)),
                             lambda x, w, b: F.conv3d(x, w, b, padding=1)),
        "conv3d_1x1x1": (lambda: (rand(1, 32, 64, 64, 64), rand(3, 32, 1, 1, 1), rand(3)),
                         lambda x, w, b: F.conv3d(x, w, b)),
        "patch_embed_p16": (lambda: (rand(1, 4, 128, 128, 128), rand(768, 4, 16, 16, 16), rand(768)),
                            lambda x, w, b: F.conv3d(x, w, b, stride=16)),
        "convt3d_k2": (lambda: (rand(1, 64, 32, 32, 32), rand(64, 32, 2, 2, 2), rand(32)),
                       lambda x, w, b: F.conv_transpose3d(x, w, b, stride=2)),
        "attention": (lambda: (rand(1, 12, 4096, 64), rand(1, 12, 4096, 64), rand(1, 12, 4096, 64)),
                      attention),
        "instnorm": (lambda: (rand(1, 32, 64, 64, 64), rand(32), rand(32)),
                     lambda x, g, b: F.instance_norm(x, weight=g, bias=b, eps=1e-5)),
        "layernorm": (lambda: (rand(4096, 768), rand(768), rand(768)),
                      lambda x, g, b: F.layer_norm(x, (768,), g, b, 1e-5)),
        "gelu": (lambda: (rand(16 * 1024 * 1024),), lambda x: F.gelu(x)),
        "linear": (lambda: (rand(4096, 768), rand(3072, 768), rand(3072)),
                   lambda x, w, b: F.linear(x, w, b)),
        "maxpool": (lambda: (rand(1, 32, 128, 128, 128),), lambda x: F.max_pool3d(x, 2)),
        "concat": (lambda: (rand(1, 32, 64, 64, 64), rand(1, 32, 64, 64, 64)),
                   lambda a, b: torch.cat((a, b), 1)),
        "dice_ce_sigmoid": (lambda: (rand(1, 3, 128, 128, 128),
                                     (torch.rand(1, 3, 128, 128, 128) < 0.2).float()),
                            dice_ce_sigmoid),
    }
    only = set(filter(None, args.only.split(",")))
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn={torch.backends.mkldnn.is_available()}", flush=True)
    for name, (make, fwd) in ops.items():
        if not only or name in only:
            bench_op(name, make, fwd, args.repeats)
    if not only or "adamw" in only:
        bench_adamw(args.repeats)


if __name__ == "__main__":
    main()
