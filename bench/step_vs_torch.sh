#!/bin/bash
# One training step (batch 1, AdamW lr 1e-4, Dice+BCE on random data of the model's img_size),
# shardseg against PyTorch (bench/torch_step.py, same networks and loss) with the same thread
# count, for the configurations of issue 6; prints one table of ms/step, peak memory and ratios.
#   bench/step_vs_torch.sh [--threads T] [--steps N] [--warmup W] [--rounds R] [--only c1,c2]
#                          [--device cpu|cuda]
# Each configuration runs R rounds of (shardseg, PyTorch) back to back, so that both sides see
# the same machine: on a shared node the speed of both drifts by up to 1.4x within minutes. The
# table gives, per side, the median over rounds of each round's median step and the fastest
# round, and the ratios of both.
# Configurations: unetr192-64 unetr192-96 unetr768-64 unetr768-96 unet3d-64 unet3d-128.
# --device cuda runs the PyTorch side on the GPU (the shardseg column stays on the CPU).
# Needs a built ./shardseg and Debian's python3-torch (/usr/bin/python3); without torch the
# PyTorch columns read "-".
set -euo pipefail
# PyTorch's OpenBLAS (Debian's libblas.so.3) gets the kernels shardseg runs: on a CPU newer than
# OpenBLAS both would otherwise fall back to SSE3 ones (README, "OPENBLAS_CORETYPE").
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x ./shardseg ]; then
    OPENBLAS_CORETYPE=$(./shardseg --version | sed -n 's/.*core \([A-Za-z0-9]*\)).*/\1/p')
    export OPENBLAS_CORETYPE
fi
cd "$(dirname "$0")/.."
threads=2 steps=5 warmup=2 rounds=3 only="" device=cpu
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) echo "step_vs_torch.sh: unknown option $1; use --threads T --steps N --warmup W --rounds R --only LIST --device cpu|cuda" >&2; exit 2 ;;
    esac
done
case "$device" in cpu | cuda) ;; *) echo "step_vs_torch.sh: --device: '$device' is not cpu or cuda; use one of them" >&2; exit 2 ;; esac

# name | shardseg model options (weights-file attribute names) | torch_step.py options
configs=(
    "unetr192-64|--model unetr --img-size 64x64x64 --patch-size 16 --feature-size 16 --hidden-size 192 --mlp-dim 768 --num-heads 12 --num-layers 12|--model unetr --img 64 --patch 16 --feature 16 --hidden 192 --mlp 768 --heads 12 --layers 12"
    "unetr192-96|--model unetr --img-size 96x96x96 --patch-size 16 --feature-size 16 --hidden-size 192 --mlp-dim 768 --num-heads 12 --num-layers 12|--model unetr --img 96 --patch 16 --feature 16 --hidden 192 --mlp 768 --heads 12 --layers 12"
    "unetr768-64|--model unetr --img-size 64x64x64 --patch-size 16 --feature-size 16 --hidden-size 768 --mlp-dim 3072 --num-heads 12 --num-layers 12|--model unetr --img 64 --patch 16 --feature 16 --hidden 768 --mlp 3072 --heads 12 --layers 12"
    "unetr768-96|--model unetr --img-size 96x96x96 --patch-size 16 --feature-size 16 --hidden-size 768 --mlp-dim 3072 --num-heads 12 --num-layers 12|--model unetr --img 96 --patch 16 --feature 16 --hidden 768 --mlp 3072 --heads 12 --layers 12"
    "unet3d-64|--model unet3d --img-size 64x64x64 --depth 4 --base-filters 16 --convs-per-level 2 --norm instance|--model unet3d --img 64 --depth 4 --base 16 --convs 2 --norm instance"
    "unet3d-128|--model unet3d --img-size 128x128x128 --depth 4 --base-filters 16 --convs-per-level 2 --norm instance|--model unet3d --img 128 --depth 4 --base 16 --convs 2 --norm instance"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1

field() { sed -n "s/.*$1=\([0-9.e+-]*\).*/\1/p" | tail -1; }
# median and min of the numbers on stdin, one per line
med() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
low() { sort -g | head -1; }
rows=()
for c in "${configs[@]}"; do
    IFS='|' read -r name sopts topts <<<"$c"
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
        continue
    fi
    echo "== $name" >&2
    # shellcheck disable=SC2086 # the option strings are word lists
    ./shardseg weights init $sopts --out "$work/$name.h5" >&2
    : >"$work/$name.ours" && : >"$work/$name.torch"
    for ((r = 1; r <= rounds; r++)); do
        ./shardseg bench step --weights "$work/$name.h5" --steps "$steps" --warmup "$warmup" \
            --threads "$threads" | tee -a "$work/$name.ours" >&2
        if [ "$have_torch" = 1 ]; then
            # torch would otherwise use every core, and OpenBLAS threads would fight its own.
            # shellcheck disable=SC2086
            OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/torch_step.py \
                $topts --threads "$threads" --steps "$steps" --warmup "$warmup" --device "$device" \
                | tee -a "$work/$name.torch" >&2
        fi
    done
    per_round() { grep '^ms_per_step=' "$1" | sed 's/ms_per_step=\([0-9.]*\).*/\1/'; }
    sms=$(per_round "$work/$name.ours" | med) smin=$(per_round "$work/$name.ours" | low)
    smem=$(grep '^ms_per_step=' "$work/$name.ours" | field peak_mem_bytes)
    tms=- tmin=- tmem=-
    if [ "$have_torch" = 1 ]; then
        tms=$(per_round "$work/$name.torch" | med) tmin=$(per_round "$work/$name.torch" | low)
        tmem=$(grep '^ms_per_step=' "$work/$name.torch" | field peak_mem_bytes)
    fi
    rows+=("$name $sms $smin $smem $tms $tmin $tmem")
done

printf '\n%-12s %10s %10s %10s %10s %8s %8s %9s %9s %7s\n' config ours_ms ours_min torch_ms \
    torch_min speedup at_min ours_MB torch_MB mem_x
for r in "${rows[@]}"; do
    read -r name sms smin smem tms tmin tmem <<<"$r"
    if [ "$tms" = - ]; then
        printf '%-12s %10.1f %10.1f %10s %10s %8s %8s %9.0f %9s %7s\n' "$name" "$sms" "$smin" - - - - \
            "$(echo "$smem / 1000000" | bc -l)" - -
    else
        printf '%-12s %10.1f %10.1f %10.1f %10.1f %7.2fx %7.2fx %9.0f %9.0f %6.2fx\n' "$name" "$sms" \
            "$smin" "$tms" "$tmin" "$(echo "$tms / $sms" | bc -l)" "$(echo "$tmin / $smin" | bc -l)" \
            "$(echo "$smem / 1000000" | bc -l)" "$(echo "$tmem / 1000000" | bc -l)" \
            "$(echo "$tmem / $smem" | bc -l)"
    fi
done
echo "(batch 1; per round the median of $steps steps after $warmup warm-up; $rounds rounds" \
    "alternating with torch: median and fastest round; $threads threads; torch on $device;" \
    "speedup = torch / shardseg, at_min = fastest torch / fastest shardseg; peak = RSS on CPU," \
    "max_memory_allocated on CUDA)"
