#!/usr/bin/python3
"""PyTorch baseline for `shardseg bench step`: the same training step (batch 1, AdamW lr 1e-4,
DiceCE sigmoid on random data of the model's img_size, 3 output channels) for one config.

  bench/torch_step.py --model unetr --img 96 --hidden 192 --mlp 768 --heads 12 --layers 12 \
      --feature 16 --patch 16 --threads 2 --steps 5 [--device cpu|cuda] [--warmup 2]
  bench/torch_step.py --model unet3d --img 128 --depth 4 --base 16 --threads 2 --steps 5

The networks are tests/interop/shardseg_ref.py (MONAI's UNETR, docs/models.md's U-Net). Prints one
line per timed step and, last, `ms_per_step=<median> peak_mem_bytes=<n>` (peak RSS of the process
on CPU, torch.cuda.max_memory_allocated on CUDA). Run with OPENBLAS_NUM_THREADS=1 and
OMP_NUM_THREADS=T (bench/step_vs_torch.sh does) so that BLAS threads do not fight torch's own.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "interop"))
import shardseg_ref as R  # noqa: E402


def parse_img(s):
    v = [int(x) for x in s.lower().split("x")]
    return v * 3 if len(v) == 1 else v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("unetr", "unet3d"), default="unetr")
    ap.add_argument("--img", type=parse_img, default=[96] * 3, help="N or IxJxK")
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--out-channels", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--mlp", type=int, default=3072)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--feature", type=int, default=16)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--convs", type=int, default=2)
    ap.add_argument("--norm", choices=("instance", "batch"), default="instance")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if a.model == "unetr":
        net = R.UNETR(a.in_channels, a.out_channels, a.img, a.patch, a.feature, a.hidden, a.mlp,
                      a.heads, a.layers)
    else:
        net = R.UNet3D(a.in_channels, a.out_channels, a.img, a.depth, a.base, a.convs, a.norm)
    net = net.to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(1, a.in_channels, *a.img, device=dev)
    y = (torch.rand(1, a.out_channels, *a.img, device=dev) < 0.3).float()
    nparam = sum(p.numel() for p in net.parameters())
    print(f"# torch {torch.__version__} {a.device} threads={torch.get_num_threads()} "
          f"model={a.model} img={'x'.join(map(str, a.img))} params={nparam}", flush=True)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for it in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = R.dice_ce_sigmoid(net(x), y)
        loss.backward()
        opt.step()
        sync()
        ms = (time.perf_counter() - t0) * 1e3
        if it >= a.warmup:
            times.append(ms)
            print(f"step={it - a.warmup} loss={loss.item():.6f} ms={ms:.1f}", flush=True)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"# {a.model} img {'x'.join(map(str, a.img))}, {nparam} parameters, {a.threads} threads: "
          f"min {min(times):.1f} ms, median {statistics.median(times):.1f} ms")
    print(f"ms_per_step={statistics.median(times):.3f} peak_mem_bytes={peak}")


if __name__ == "__main__":
    main()
