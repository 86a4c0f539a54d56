#!/bin/bash
# Runs `shardseg bench kernels` and the same ops in PyTorch CPU (bench/torch_kernels.py) with the
# same thread count, and prints one table: forward+backward time of each, and the speed-up.
#   bench/kernels_vs_torch.sh [--threads T] [--repeats R] [--only op,op]
# Needs a built ./shardseg and Debian's python3-torch (/usr/bin/python3).
set -euo pipefail
# PyTorch's OpenBLAS (Debian's libblas.so.3) gets the kernels shardseg runs: on a CPU newer than
# OpenBLAS both would otherwise fall back to SSE3 ones (README, "OPENBLAS_CORETYPE").
if [ -z "${OPENBLAS_CORETYPE:-}" ] && [ -x ./shardseg ]; then
    OPENBLAS_CORETYPE=$(./shardseg --version | sed -n 's/.*core \([A-Za-z0-9]*\)).*/\1/p')
    export OPENBLAS_CORETYPE
fi
cd "$(dirname "$0")/.."
threads=2 repeats=5 only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --threads) threads=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "kernels_vs_torch.sh: unknown option $1; use --threads T --repeats R --only OPS" >&2; exit 2 ;;
    esac
done
ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
./shardseg bench kernels --threads "$threads" --repeats "$repeats" ${only:+--only "$only"} | tee "$ours" >&2
# PyTorch defaults to one thread here, and its BLAS threads would fight its own: pin both.
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/torch_kernels.py \
    --threads "$threads" --repeats "$repeats" ${only:+--only "$only"} | tee "$theirs" >&2

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
printf '\n%-16s %12s %12s %9s %s\n' op shardseg_ms torch_ms speedup "shardseg efficiency"
grep '^op=' "$ours" | while read -r line; do
    op=$(echo "$line" | sed 's/^op=\([^ ]*\).*/\1/')
    ms=$(echo "$line" | field fwdbwd_min_ms)
    eff=$(echo "$line" | grep -o 'of_sgemm_peak=[^ ]*\|of_memcpy=[^ ]*')
    tl=$(grep "^op=$op " "$theirs" || true)
    if [ -n "$tl" ]; then
        tms=$(echo "$tl" | field fwdbwd_min_ms)
        printf '%-16s %12.1f %12.1f %8.2fx %s\n' "$op" "$ms" "$tms" "$(echo "$tms / $ms" | bc -l)" "$eff"
    else
        printf '%-16s %12.1f %12s %9s %s\n' "$op" "$ms" "-" "-" "$eff"
    fi
done
echo "(forward+backward, minimum of $repeats runs, $threads threads; speedup = torch / shardseg)"
