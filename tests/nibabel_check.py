#!/usr/bin/env python3
"""Cross-check of `shardseg prep` against an independent reader: nibabel + numpy.

usage: nibabel_check.py CASE_DIR PREP.h5 [--crop brain|IxJxK] [--target regions|binary]

CASE_DIR is one BraTS 2018-2021 case folder (<case>_{flair,t1,t1ce,t2,seg}.nii[.gz]); PREP.h5 is
what `shardseg prep` wrote for a folder holding it. The script redoes prep's documented steps
(README, include/shardseg/preprocess.h) in float64 from the NIfTI files as nibabel reads them:
channels FLAIR, T1, T1ce, T2 as [C][I][J][K] (nibabel's array index order, no transpose needed);
brain mask = any channel > 0; crop box = bounding box of brain or tumour (or the centred fixed
size, start = (dim - size) // 2); per-channel z-score over brain voxels with the population
standard deviation, background 0; labels 1, 2, 4 -> 1 NCR/NET, 2 ED, 3 ET and the regions
WT = {1,2,3}, TC = {1,3}, ET = {3} (or one tumour mask). It then compares with the file: crop box,
original shape, affine (nibabel's img.affine), z-score statistics, label masks (exactly) and the
image voxels, and prints the largest absolute error of the z-scored image.

Tolerance: 1e-4 on z-scored voxels. Prep computes the statistics in double but applies
(x - mean) * (1 / std) in float32; z values of brain MRI stay below about 40 and float32 has a
relative precision of 6e-8, so rounding gives errors near 1e-6. 1e-4 leaves ample margin while
still catching any real mistake (a wrong voxel, channel, crop offset or statistic is off by far
more). Statistics: relative 1e-9; affine: 1e-5 mm. Exit 0 when all agree, 1 otherwise.
"""
import argparse
import os
import sys

import h5py
import nibabel as nib
import numpy as np

MODALITIES = ("flair", "t1", "t1ce", "t2")
TOL_IMAGE = 1e-4
TOL_STATS = 1e-9
TOL_AFFINE = 1e-5


def find(case_dir, name, suffix):
    for ext in (".nii.gz", ".nii"):
        p = os.path.join(case_dir, "%s_%s%s" % (name, suffix, ext))
        if os.path.exists(p):
            return p
    sys.exit("nibabel_check: %s: no %s file" % (case_dir, suffix))


def expected(case_dir, crop, target):
    name = os.path.basename(os.path.normpath(case_dir))
    imgs = [nib.load(find(case_dir, name, m)) for m in MODALITIES]
    image = np.stack([np.asarray(i.get_fdata(dtype=np.float64)) for i in imgs])
    seg = nib.load(find(case_dir, name, "seg"))
    label = np.rint(np.asarray(seg.get_fdata(dtype=np.float64))).astype(np.int64)
    label[label == 4] = 3  # BraTS 2018-2021 ET is 4; internally 3
    dim = np.array(image.shape[1:])
    brain = (image > 0).any(axis=0)
    if crop == "brain":
        idx = np.nonzero(brain | (label != 0))
        start = np.array([a.min() for a in idx])
        end = np.array([a.max() + 1 for a in idx])
    else:
        size = np.array([int(v) for v in crop.split("x")])
        start = (dim - size) // 2
        end = start + size
    box = tuple(slice(s, e) for s, e in zip(start, end))
    image = image[(slice(None),) + box]
    brain = brain[box]
    label = label[box]
    mean = np.array([c[brain].mean() for c in image])
    std = np.array([c[brain].std() for c in image])
    z = np.where(brain, (image - mean[:, None, None, None]) / std[:, None, None, None], 0.0)
    if target == "binary":
        regions = (label > 0)[None]
    else:
        regions = np.stack([np.isin(label, (1, 2, 3)), np.isin(label, (1, 3)), label == 3])
    return name, {"image": z, "label": regions.astype(np.uint8), "start": start, "end": end,
                  "shape": dim, "affine": imgs[0].affine, "mean": mean, "std": std}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case_dir")
    ap.add_argument("prep_h5")
    ap.add_argument("--crop", default="brain")
    ap.add_argument("--target", default="regions")
    a = ap.parse_args()
    name, want = expected(a.case_dir, a.crop, a.target)
    bad = []
    with h5py.File(a.prep_h5, "r") as f:
        g = f["cases"][name]
        got_image = g["image"][...].astype(np.float64)
        got_label = g["label"][...]
        if not np.array_equal(g.attrs["crop_start"], want["start"]) or \
                not np.array_equal(g.attrs["crop_end"], want["end"]):
            bad.append("crop box %s-%s, nibabel gives %s-%s" % (
                list(g.attrs["crop_start"]), list(g.attrs["crop_end"]),
                list(want["start"]), list(want["end"])))
        if not np.array_equal(g.attrs["original_shape"], want["shape"]):
            bad.append("original_shape %s, nibabel gives %s" % (
                list(g.attrs["original_shape"]), list(want["shape"])))
        aff_err = np.abs(g.attrs["affine"] - want["affine"]).max()
        if aff_err > TOL_AFFINE:
            bad.append("affine differs by %.3g mm" % aff_err)
        for key, attr in (("mean", "zscore_mean"), ("std", "zscore_std")):
            rel = np.abs(g.attrs[attr] / want[key] - 1).max()
            if rel > TOL_STATS:
                bad.append("%s differs by %.3g (relative)" % (attr, rel))
    if got_image.shape != want["image"].shape or got_label.shape != want["label"].shape:
        bad.append("shapes image %s label %s, nibabel gives %s %s" % (
            got_image.shape, got_label.shape, want["image"].shape, want["label"].shape))
        err = float("inf")
    else:
        err = np.abs(got_image - want["image"]).max()
        nlab = int((got_label != want["label"]).sum())
        if nlab:
            bad.append("%d label voxels differ" % nlab)
        if not err <= TOL_IMAGE:
            bad.append("image max abs error %.3g > %.0e" % (err, TOL_IMAGE))
    print("nibabel_check: %s crop=%s target=%s image %s max_abs_error=%.3g (tolerance %.0e), "
          "labels %s" % (name, a.crop, a.target, "x".join(map(str, want["image"].shape)), err,
                         TOL_IMAGE, "identical" if not bad else "checked"))
    for b in bad:
        print("nibabel_check: FAIL: %s: %s" % (name, b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
