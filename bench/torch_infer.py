#!/usr/bin/python3
"""Whole-case inference in PyTorch, the same pipeline as `shardseg infer` (bench/infer_vs_monai.sh).

Our own port (torch + numpy + nibabel, no MONAI) of:
  * prep's preprocessing (include/shardseg/prepare.h): brain mask = any channel > 0, crop to its
    bounding box, per-channel z-score over brain voxels (population std, background 0);
  * MONAI's sliding_window_inference (monai/inferers/utils.py, 1.x): symmetric zero padding to the
    ROI, scan interval int(roi * (1 - overlap)) (roi when the image equals the ROI), window starts
    i * interval clamped to size - roi, sw_batch_size 1, Gaussian importance map
    (compute_importance_map: exp(-x^2 / (2 sigma^2)), sigma = 0.125 * roi, clamped below at
    max(min, 1e-3)) or constant weights; blended logits / summed weights;
  * the label map: sigmoid > 0.5 per region; ET -> 4, TC & !ET -> 1, WT & !TC -> 2 (BraTS 2018-21),
    un-cropped into the original grid, written as uint8 NIfTI with the input's affine and header.
The network comes from the same weights file as shardseg's (tests/interop/shardseg_ref.py).
Prints `load_s=.. infer_s=.. seconds=.. peak_mem_bytes=..` (peak RSS of the process) last.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "interop"))
import shardseg_ref as R  # noqa: E402

SUFFIXES = ("_flair", "_t1", "_t1ce", "_t2")  # MSD channel order, as shardseg


def load_case(case):
    import nibabel as nib
    name = os.path.basename(os.path.normpath(case))
    imgs = []
    ref = None
    for s in SUFFIXES:
        path = os.path.join(case, name + s + ".nii.gz")
        img = nib.load(path)
        ref = img if ref is None else ref
        imgs.append(np.asarray(img.dataobj, dtype=np.float32))
    return np.stack(imgs), ref


def preprocess(x):
    """x [C][I][J][K] -> (cropped z-scored x, crop slices), as prep / ss_prepare_image."""
    mask = (x > 0).any(axis=0)
    idx = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != d)))[0] for d in range(3)]
    box = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)
    x = x[(slice(None),) + box].copy()
    m = mask[box]
    for c in range(x.shape[0]):
        v = x[c][m].astype(np.float64)
        mean = v.mean()
        sd = np.sqrt(((v - mean) ** 2).mean())
        sd = sd if sd > 1e-12 else 1.0
        x[c] = np.where(m, (x[c] - np.float32(mean)) * np.float32(1.0 / sd), 0.0)
    return x, box


def importance_map(roi, mode, sigma_scale=0.125):
    if mode == "constant":
        return torch.ones(roi)
    w = None
    for i, r in enumerate(roi):
        x = torch.arange(-(r - 1) / 2.0, (r - 1) / 2.0 + 1, dtype=torch.float)
        x = torch.exp(x ** 2 / (-2 * (r * sigma_scale) ** 2))
        w = x if i == 0 else w.unsqueeze(-1) * x[(None,) * i]
    lo = max(w.min().item(), 1e-3)
    return torch.clamp(w.to(torch.float), min=lo)


def starts(size, roi, interval):
    n = 1
    while (n - 1) * interval + roi < size:
        n += 1
    return [min(i * interval, size - roi) for i in range(n)]


@torch.no_grad()
def sliding_window_inference(x, roi, net, overlap, mode):
    """x [1][C][spatial] -> blended logits [1][out][spatial] (MONAI semantics, sw_batch_size 1)."""
    size = list(x.shape[2:])
    pad = []
    for d in reversed(range(3)):
        diff = max(roi[d] - size[d], 0)
        pad += [diff // 2, diff - diff // 2]
    x = torch.nn.functional.pad(x, pad)
    psize = list(x.shape[2:])
    interval = [roi[d] if roi[d] == psize[d] else max(int(roi[d] * (1 - overlap)), 1)
                for d in range(3)]
    w = importance_map(roi, mode)
    out = None
    count = torch.zeros(psize)
    for a in starts(psize[0], roi[0], interval[0]):
        for b in starts(psize[1], roi[1], interval[1]):
            for c in starts(psize[2], roi[2], interval[2]):
                sl = (slice(a, a + roi[0]), slice(b, b + roi[1]), slice(c, c + roi[2]))
                y = net(x[(slice(None), slice(None)) + sl])
                if out is None:
                    out = torch.zeros([1, y.shape[1]] + psize)
                out[(slice(None), slice(None)) + sl] += y * w
                count[sl] += w
    out /= count
    lo = [pad[2 * (2 - d)] for d in range(3)]
    return out[:, :, lo[0]:lo[0] + size[0], lo[1]:lo[1] + size[1], lo[2]:lo[2] + size[2]]


def to_labels(logits, shape, box):
    wt, tc, et = (logits[0] > 0).numpy()
    lab = np.zeros(shape, np.uint8)
    crop = np.zeros(wt.shape, np.uint8)
    crop[wt & ~tc] = 2
    crop[tc & ~et] = 1
    crop[et] = 4
    lab[box] = crop
    return lab


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--case", required=True, help="BraTS 2018-21 case folder")
    ap.add_argument("--out", required=True, help="prediction .nii.gz")
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--mode", choices=("gaussian", "constant"), default="gaussian")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compare", help="another prediction: prints the fraction of equal voxels")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import nibabel as nib
    net, cfg = R.read_weights(a.weights)
    net.eval()
    roi = [int(v) for v in cfg["img_size"]]
    t0 = time.perf_counter()
    x, ref = load_case(a.case)
    xc, box = preprocess(x)
    t1 = time.perf_counter()
    logits = sliding_window_inference(torch.from_numpy(xc)[None], roi, net, a.overlap, a.mode)
    t2 = time.perf_counter()
    lab = to_labels(logits, x.shape[1:], box)
    hdr = ref.header.copy()
    hdr.set_data_dtype(np.uint8)
    nib.save(nib.Nifti1Image(lab, ref.affine, hdr), a.out)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} roi={roi} "
          f"overlap={a.overlap} crop={list(xc.shape[1:])}", flush=True)
    if a.compare:
        other = np.asarray(nib.load(a.compare).dataobj)
        print(f"agreement={float((other == lab).mean()):.6f} "
              f"differing_voxels={int((other != lab).sum())}")
    print(f"load_s={t1 - t0:.3f} infer_s={t2 - t1:.3f} seconds={t3 - t0:.3f} "
          f"peak_mem_bytes={peak}")


if __name__ == "__main__":
    main()
