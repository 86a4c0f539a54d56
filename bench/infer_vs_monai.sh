#!/bin/bash
# Whole-case inference (240x240x155, 4 modalities: load, preprocess, sliding windows with Gaussian
# blending, labels, NIfTI write), shardseg (`shardseg infer`) against PyTorch with our port of
# MONAI's sliding_window_inference (bench/torch_infer.py), same network weights, ROI, overlap and
# thread count, in one run. Prints seconds (min and median of R alternating runs), peak RSS and
# the ratios per ROI, and how many voxels of the two predictions agree.
#   bench/infer_vs_monai.sh [--threads T] [--runs R] [--rois 96,128] [--overlap F] [--case DIR]
#                           [--hidden H --mlp M] [--feature F]
# Network: UNETR hidden 192 (mlp 768, 12 heads, 12 layers, patch 16, feature 16) by default, the
# issue's "UNETR-tiny". Case: the first real case of $SS_REAL_DATA (../shared/data/real), else a
# synthetic case of 240x240x155 (shardseg synth). Needs a built ./shardseg; the PyTorch columns
# read "-" without Debian's python3-torch / python3-nibabel / python3-h5py.
set -euo pipefail
# PyTorch's OpenBLAS (Debian's libblas.so.3) gets the kernels shardseg runs: on a CPU newer than
# OpenBLAS both would otherwise fall back to SSE3 ones (README, "OPENBLAS_CORETYPE").
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x ./shardseg ]; then
    OPENBLAS_CORETYPE=$(./shardseg --version | sed -n 's/.*core \([A-Za-z0-9]*\)).*/\1/p')
    export OPENBLAS_CORETYPE
fi
cd "$(dirname "$0")/.."
threads=2 runs=2 rois=96,128 overlap=0.5 case="" hidden=192 mlp=768 feature=16
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rois) rois=$2; shift 2 ;;
    --overlap) overlap=$2; shift 2 ;;
    --case) case=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --mlp) mlp=$2; shift 2 ;;
    --feature) feature=$2; shift 2 ;;
    *) echo "infer_vs_monai.sh: unknown option $1; see the header of the script" >&2; exit 2 ;;
    esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
real="${SS_REAL_DATA:-../shared/data/real}"
if [ -z "$case" ]; then
    case=$(ls -d "$real"/*/ 2>/dev/null | head -1 || true)
    if [ -z "$case" ]; then
        ./shardseg synth --out "$work/syn" --cases 1 --size 240x240x155 >&2
        case=$(ls -d "$work"/syn/*/ | head -1)
    fi
fi
case=${case%/}
have_torch=0
/usr/bin/python3 -c 'import torch, nibabel, h5py' 2>/dev/null && have_torch=1
field() { sed -n "s/.*$1=\([0-9.e+-]*\).*/\1/p" | tail -1; }
minof() { sort -g | head -1; }
medof() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
maxof() { sort -g | tail -1; }
echo "case $case, threads $threads, overlap $overlap, UNETR hidden $hidden feature $feature" >&2

rows=()
for roi in ${rois//,/ }; do
    w="$work/unetr$roi.h5"
    ./shardseg weights init --out "$w" --model unetr --img-size "$roi" --patch-size 16 \
        --feature-size "$feature" --hidden-size "$hidden" --mlp-dim "$mlp" --num-heads 12 \
        --num-layers 12 --seed 1 >&2
    : >"$work/s" && : >"$work/t"
    for _ in $(seq "$runs"); do
        SHARDSEG_NO_PROGRESS=1 ./shardseg infer --threads "$threads" --weights "$w" \
            --input "$case" --out "$work/ours.nii.gz" --overlap "$overlap" | tee -a "$work/s" >&2
        if [ "$have_torch" = 1 ]; then
            # torch would otherwise use every core, and OpenBLAS threads would fight its own.
            OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$threads" /usr/bin/python3 \
                bench/torch_infer.py --weights "$w" --case "$case" --out "$work/theirs.nii.gz" \
                --overlap "$overlap" --threads "$threads" --compare "$work/ours.nii.gz" \
                | tee -a "$work/t" >&2
        fi
    done
    ss=$(grep -o 'seconds=[0-9.]*' "$work/s" | cut -d= -f2 | minof)
    smed=$(grep -o 'seconds=[0-9.]*' "$work/s" | cut -d= -f2 | medof)
    si=$(grep -o 'infer_s=[0-9.]*' "$work/s" | cut -d= -f2 | minof)
    sm=$(grep -o 'peak_rss_mb=[0-9.]*' "$work/s" | cut -d= -f2 | maxof)
    ts=- ti=- tm=- agree=- tmed=-
    if [ "$have_torch" = 1 ]; then
        ts=$(grep -o 'seconds=[0-9.]*' "$work/t" | cut -d= -f2 | minof)
        tmed=$(grep -o 'seconds=[0-9.]*' "$work/t" | cut -d= -f2 | medof)
        ti=$(grep -o 'infer_s=[0-9.]*' "$work/t" | cut -d= -f2 | minof)
        tm=$(grep -o 'peak_mem_bytes=[0-9]*' "$work/t" | cut -d= -f2 | maxof)
        tm=$(echo "$tm / 1048576" | bc -l)
        agree=$(field agreement <"$work/t")
    fi
    rows+=("$roi $ss $si $sm $ts $ti $tm $agree $smed $tmed")
done

printf '\n%-5s %10s %10s %10s %10s %8s %8s %9s %9s %7s %10s\n' roi shard_s shard_inf torch_s \
    torch_inf speedup at_med shard_MiB torch_MiB mem_x agreement
for r in "${rows[@]}"; do
    read -r roi ss si sm ts ti tm agree smed tmed <<<"$r"
    if [ "$ts" = - ]; then
        printf '%-5s %10.2f %10.2f %10s %10s %8s %8s %9.0f %9s %7s %10s\n' "$roi" "$ss" "$si" - - - - \
            "$sm" - - -
    else
        printf '%-5s %10.2f %10.2f %10.2f %10.2f %7.2fx %7.2fx %9.0f %9.0f %6.2fx %10s\n' "$roi" \
            "$ss" "$si" "$ts" "$ti" "$(echo "$ts / $ss" | bc -l)" "$(echo "$tmed / $smed" | bc -l)" \
            "$sm" "$tm" "$(echo "$tm / $sm" | bc -l)" "$agree"
    fi
done
echo "(seconds: whole case incl. NIfTI read/preprocess/write, min of $runs alternating runs; *_inf:" \
    "the sliding-window part; speedup = torch / shardseg seconds, at_med = the same for the" \
    "median runs; peak RSS of the process;" \
    "$threads threads each)"
