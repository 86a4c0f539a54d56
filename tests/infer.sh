#!/bin/sh
# shardseg infer: synthetic cases (shardseg synth, 64x64x48) and a tiny U-Net (16^3 ROI). The
# prediction has the input's shape and affine (tests/niicheck), uint8 labels of the input's
# convention; a raw case folder, its MSD 4D image and its case of the prep'd data.h5 give the same
# labels (prep and infer preprocess identically), and so does our PyTorch port of MONAI's
# sliding_window_inference (skipped without torch/nibabel/h5py); folders of cases, a prep'd file
# and 2 MPI ranks give the same files as one case at a time. Bad input (weights for other
# channels, a missing modality, unwritable --out, an --input that is no case): ONE
# 'shardseg infer:' line, exit 2, nothing left behind. The real cases in $SS_REAL_DATA (skipped
# when absent): output geometry equals the input's.
set -u
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
b="${SS_BUILDDIR:-.}"
bin="$b/shardseg"
chk="$b/tests/niicheck"
if [ ! -x "$chk" ]; then
    echo "SKIP: tests/niicheck not built (make check builds it)"; exit 77
fi
# One thread: the windows are tiny, and spinning OpenMP threads on a loaded 2-core machine cost
# seconds per case.
export SHARDSEG_NO_PROGRESS=1 OMP_NUM_THREADS=1
real="${SS_REAL_DATA:-}"
fails=0
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { "$bin" "$@" >"$tmp/log" 2>&1 || { fail "$*"; cat "$tmp/log"; }; }

run synth --out "$tmp/raw" --cases 3 --size 64x64x48 --seed 7
run prep --in "$tmp/raw" --out "$tmp/data.h5"
run weights init --out "$tmp/w.h5" --model unet3d --img-size 16 --depth 2 --base-filters 4 --seed 3
run weights init --out "$tmp/w1.h5" --model unet3d --img-size 16 --depth 2 --base-filters 4 \
    --in-channels 1
c0="$tmp/raw/SynBraTS_00000"
flair="$c0/SynBraTS_00000_flair.nii.gz"

# --- one case: raw folder, data.h5:CASE, MSD 4D image ---
run infer --weights "$tmp/w.h5" --input "$c0" --out "$tmp/a.nii.gz" --overlap 0.5
grep -q '^infer: case=.* seconds=.* peak_rss_mb=' "$tmp/log" || fail "no summary line"
"$chk" geom "$tmp/a.nii.gz" "$flair" || fail "raw: geometry differs from the input"
"$chk" labels "$tmp/a.nii.gz" 0,1,2,4 >"$tmp/counts" || fail "raw: labels outside {0,1,2,4}"
# A random network still predicts some tumour and some background: the check can fail.
grep -q '^0:' "$tmp/counts" && grep -Eq ' [124]:' "$tmp/counts" ||
    fail "raw: a constant prediction: $(cat "$tmp/counts")"
run infer --weights "$tmp/w.h5" --input "$tmp/data.h5:SynBraTS_00000" --out "$tmp/b.nii.gz"
"$chk" geom "$tmp/b.nii.gz" "$flair" || fail "data.h5: geometry differs from the input"
"$chk" same "$tmp/a.nii.gz" "$tmp/b.nii.gz" || fail "raw folder and data.h5 predictions differ"
mkdir -p "$tmp/msd/imagesTr"
"$chk" stack "$tmp/msd/imagesTr/BRATS_001.nii.gz" "$flair" "$c0/SynBraTS_00000_t1.nii.gz" \
    "$c0/SynBraTS_00000_t1ce.nii.gz" "$c0/SynBraTS_00000_t2.nii.gz" || fail "niicheck stack"
run infer --weights "$tmp/w.h5" --input "$tmp/msd/imagesTr/BRATS_001.nii.gz" --out "$tmp/m.nii.gz"
"$chk" labels "$tmp/m.nii.gz" 0,1,2,3 >/dev/null || fail "msd: labels outside {0,1,2,3}"
run infer --weights "$tmp/w.h5" --input "$tmp/msd/imagesTr/BRATS_001.nii.gz" --out "$tmp/m4.nii.gz" \
    --labels brats
"$chk" same "$tmp/a.nii.gz" "$tmp/m4.nii.gz" || fail "MSD image and BraTS folder predictions differ"
run infer --weights "$tmp/w.h5" --input "$c0" --out "$tmp/t.nii.gz" --tta --mode constant
"$chk" labels "$tmp/t.nii.gz" 0,1,2,4 >/dev/null || fail "tta: bad labels"

# --- optional: our PyTorch port of MONAI's sliding_window_inference (bench/torch_infer.py) ---
src="${SS_SRCDIR:-.}"
if /usr/bin/python3 -c 'import torch, nibabel, h5py' 2>/dev/null; then
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$src/bench/torch_infer.py" --weights "$tmp/w.h5" \
        --case "$c0" --out "$tmp/torch.nii.gz" --compare "$tmp/a.nii.gz" >"$tmp/log" 2>&1 ||
        { fail "bench/torch_infer.py"; cat "$tmp/log"; }
    grep -q 'agreement=1.000000' "$tmp/log" || { fail "PyTorch/MONAI port disagrees"; cat "$tmp/log"; }
else
    echo "skip: /usr/bin/python3 lacks torch, nibabel or h5py (PyTorch cross-check)"
fi

# --- overlay pictures: one case (a file), many cases (a folder of <case>.png) ---
is_png() { # is_png FILE WIDTH: PNG signature and the IHDR width (bytes 16-19, big-endian)
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] &&
        [ "$(od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')" = "$2" ]
}
run infer --weights "$tmp/w.h5" --input "$c0" --out "$tmp/p.nii.gz" --png "$tmp/p.png"
is_png "$tmp/p.png" 1024 || fail "--png: $tmp/p.png is not a 1024-wide PNG"
"$chk" same "$tmp/p.nii.gz" "$tmp/a.nii.gz" || fail "--png changed the prediction"
run infer --weights "$tmp/w.h5" --input "$c0" --out "$tmp/k.nii.gz" --keep-largest
"$chk" geom "$tmp/k.nii.gz" "$flair" || fail "--keep-largest: geometry differs from the input"
"$chk" labels "$tmp/k.nii.gz" 0,1,2,4 >/dev/null || fail "--keep-largest: bad labels"

# --- many cases: a folder, a prep'd file, two MPI ranks ---
run infer --weights "$tmp/w.h5" --input "$tmp/raw" --out "$tmp/o1" --png "$tmp/pngs"
for n in SynBraTS_00000 SynBraTS_00001 SynBraTS_00002; do
    is_png "$tmp/pngs/$n.png" 1024 || fail "--png folder: no $n.png"
done
run infer --weights "$tmp/w.h5" --input "$tmp/data.h5" --out "$tmp/o2"
"$chk" same "$tmp/o1/SynBraTS_00000.nii.gz" "$tmp/a.nii.gz" || fail "folder mode differs"
for n in SynBraTS_00000 SynBraTS_00001 SynBraTS_00002; do
    "$chk" same "$tmp/o1/$n.nii.gz" "$tmp/o2/$n.nii.gz" || fail "$n: folder and data.h5 differ"
done
if command -v "${MPIEXEC:-mpiexec}" >/dev/null 2>&1; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 \
        "${MPIEXEC:-mpiexec}" --oversubscribe -n 2 "$bin" infer --weights "$tmp/w.h5" \
        --input "$tmp/raw" --out "$tmp/o3" >"$tmp/log" 2>&1 || { fail "mpi infer"; cat "$tmp/log"; }
    grep -q 'rank=1' "$tmp/log" || fail "mpi: rank 1 did no case"
    for n in SynBraTS_00000 SynBraTS_00001 SynBraTS_00002; do
        "$chk" same "$tmp/o1/$n.nii.gz" "$tmp/o3/$n.nii.gz" || fail "$n: 2 ranks differ"
    done
else
    echo "skip: no mpiexec"
fi

# --- bad input: exit 2, one line, nothing left ---
mkdir -p "$tmp/bad/SynBraTS_00001" "$tmp/ro"
cp "$tmp/raw/SynBraTS_00001/"*.nii.gz "$tmp/bad/SynBraTS_00001/"
rm "$tmp/bad/SynBraTS_00001/SynBraTS_00001_t1ce.nii.gz"
cp -r "$c0" "$tmp/bad/"
chmod a-w "$tmp/ro"
expect() { # expect PATTERN OUT ARGS...
    pattern=$1 outp=$2
    shift 2
    "$bin" infer --out "$outp" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 2 ] || { fail "infer $*: exit $rc, want 2"; cat "$tmp/err"; return; }
    [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^shardseg infer: ' "$tmp/err" ||
        { fail "infer $*: not one 'shardseg infer:' line"; cat "$tmp/err"; }
    grep -q -e "$pattern" "$tmp/err" || { fail "infer $*: lacks '$pattern'"; cat "$tmp/err"; }
    if [ -e "$outp" ] || ls "$outp".* "$(dirname "$outp")"/*.tmp.* >/dev/null 2>&1; then
        fail "infer $*: left $outp behind"
    fi
    echo "ok: infer $* -> 2"
}
expect 'takes 1 input channel' "$tmp/x.nii.gz" --weights "$tmp/w1.h5" --input "$c0"
expect 'takes 1 input channel' "$tmp/x.nii.gz" --weights "$tmp/w1.h5" \
    --input "$tmp/data.h5:SynBraTS_00000"
expect 'missing T1ce file' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$tmp/bad/SynBraTS_00001"
expect 'missing T1ce file' "$tmp/xdir" --weights "$tmp/w.h5" --input "$tmp/bad"
expect 'cannot write there' "$tmp/nodir/x.nii.gz" --weights "$tmp/w.h5" --input "$c0"
if [ "$(id -u)" -ne 0 ]; then
    expect 'cannot write there' "$tmp/ro/x.nii.gz" --weights "$tmp/w.h5" --input "$c0"
fi
expect 'neither a case' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$tmp/nothing"
expect 'expected 4' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$c0/SynBraTS_00000_seg.nii.gz"
expect "no case 'Nope'" "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$tmp/data.h5:Nope"
expect 'holds many cases' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$tmp/raw"
expect "--mode: 'median'" "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$c0" --mode median
expect '--overlap' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$c0" --overlap 1
expect 'choose a writable --png' "$tmp/x.nii.gz" --weights "$tmp/w.h5" --input "$c0" \
    --png "$tmp/nodir/x.png"

# --- the real cases: geometry equals the input's ---
if [ -n "$real" ] && [ -d "$real" ] && ls "$real"/*/*_flair.nii.gz >/dev/null 2>&1; then
    run weights init --out "$tmp/w32.h5" --model unet3d --img-size 32 --depth 2 --base-filters 4
    run infer --weights "$tmp/w32.h5" --input "$real" --out "$tmp/real" --overlap 0
    for f in "$real"/*/*_flair.nii.gz; do
        n=$(basename "$(dirname "$f")")
        "$chk" geom "$tmp/real/$n.nii.gz" "$f" || fail "$n: geometry differs from the input"
        "$chk" labels "$tmp/real/$n.nii.gz" 0,1,2,4 >/dev/null || fail "$n: bad labels"
    done
else
    echo "skip: real cases ($real) absent"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all infer checks passed"
