#!/bin/bash
# The demo job (README's first command runs it through quickstart.sh): synthesise BraTS-like
# cases, prep them, train a small UNETR, infer on held-out cases, evaluate, and print the Dice
# table and where the NIfTI predictions are. Then the same network on the real
# BraTS 2018 cases of ../shared/data/real (evaluation only), when they are there.
#
#   jobs/demo.sh [OUT_DIR]          (default demo-out; SHARDSEG=path/to/shardseg)
#   DEMO_STEPS=N                    training steps (default 500, ~6 min on 2 cores)
set -euo pipefail
out=${1:-demo-out}
bin=${SHARDSEG:-./shardseg}
steps=${DEMO_STEPS:-500}
real=${SS_REAL_DATA:-../shared/data/real}
t0=$(date +%s)
stamp() { echo "[demo $(($(date +%s) - t0)) s] $*"; }

rm -rf "$out" && mkdir -p "$out"
stamp "synthesising 12 training and 4 held-out cases (Colin27 template, 1 mm)"
"$bin" synth --out "$out/train-cases" --cases 12 --seed 1
"$bin" synth --out "$out/heldout" --cases 4 --seed 2
"$bin" prep --in "$out/train-cases" --out "$out/train.h5" --val-fraction 0.25

cat >"$out/demo.ini" <<INI
; A small UNETR (hidden 192, 12 blocks, patch 16) on 64^3 patches with foreground oversampling.
[model]
model = unetr
img_size = 64x64x64
hidden_size = 192
mlp_dim = 768
num_heads = 12
feature_size = 16

[data]
file = $out/train.h5
fg_fraction = 0.5

[train]
steps = $steps
val_interval = 250
val_cases = 3
checkpoint_interval = 0
seed = 1

[optim]
lr = 1e-3
weight_decay = 1e-5
schedule = cosine
warmup_steps = 20

[output]
dir = $out/run
INI
stamp "training ($steps steps; progress on a terminal, every 2% otherwise)"
"$bin" train --config "$out/demo.ini"
"$bin" weights export "$out/run" --out "$out/unetr.h5"

stamp "inference on the held-out cases"
"$bin" infer --weights "$out/unetr.h5" --input "$out/heldout" --out "$out/pred" --overlap 0.5 \
    --png "$out/png"
first=$(ls "$out/heldout" | head -1)
stamp "evaluation (Dice, HD95) on the held-out cases"
"$bin" eval --pred "$out/pred" --ref "$out/heldout" --csv "$out/heldout.csv" --json "$out/heldout.json"

if [ -d "$real" ]; then
    stamp "the same network on the real BraTS 2018 cases in $real (no fine-tuning)"
    "$bin" infer --weights "$out/unetr.h5" --input "$real" --out "$out/pred-real" --overlap 0.5 \
        --png "$out/png-real"
    "$bin" eval --pred "$out/pred-real" --ref "$real" --csv "$out/real.csv" --json "$out/real.json"
fi
stamp "learning curves and summary of the run"
"$bin" report "$out/run" --out "$out/report.png"
stamp "done"
echo "prediction: $out/pred/$first.nii.gz (opens over $out/heldout/$first/${first}_flair.nii.gz)"
echo "overlay:    $out/png/$first.png (three slices, prediction over FLAIR)"
echo "metrics:    $out/run/metrics.jsonl, $out/heldout.csv, $out/report.png"
