#!/bin/sh
# Cross-check of shardseg prep with an independent reader: tests/nibabel_check.py redoes the
# documented steps (crop box, z-score on brain voxels, label regions) from the NIfTI files with
# nibabel + numpy in float64 and compares with prep's HDF5 (h5py): crop box, shape, affine,
# statistics, labels exactly, image voxels to 1e-4 (measured: ~1e-6). A real case of
# $SS_REAL_DATA, brain crop + regions and fixed crop + binary. SKIP (77) without python3 +
# nibabel + h5py + numpy or without the real data; `make check` never needs Python.
set -u
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
bin="${SS_BUILDDIR:-.}/shardseg"
script="${SS_SRCDIR:-.}/tests/nibabel_check.py"
real="${SS_REAL_DATA:-}"
py="${PYTHON:-/usr/bin/python3}"
[ -x "$py" ] || py=$(command -v python3 || true)
if [ -z "$py" ] || ! "$py" -c 'import nibabel, h5py, numpy' 2>/dev/null; then
    echo "SKIP: python3 with nibabel, h5py and numpy not found (Debian: python3-nibabel python3-h5py)"
    exit 77
fi
case_name=Brats18_2013_3_1
if [ -z "$real" ] || [ ! -d "$real/$case_name" ]; then
    echo "SKIP: SS_REAL_DATA ($real) lacks $case_name"; exit 77
fi
real=$(cd "$real" && pwd)
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/in" && ln -s "$real/$case_name" "$tmp/in/"

# check NAME ARGS...: prep with ARGS, then the cross-check with the same crop/target options.
check() {
    name=$1
    shift
    SHARDSEG_NO_PROGRESS=1 "$bin" prep --in "$tmp/in" --out "$tmp/$name.h5" --threads 2 "$@" \
        >"$tmp/log" 2>&1 || { echo "FAIL: prep $*"; cat "$tmp/log"; fails=$((fails + 1)); return; }
    if "$py" "$script" "$tmp/in/$case_name" "$tmp/$name.h5" "$@"; then
        echo "ok: nibabel agrees with prep $*"
    else
        echo "FAIL: nibabel disagrees with prep $*"; fails=$((fails + 1))
    fi
}
check brain --crop brain --target regions
check fixed --crop 240x240x152 --target binary
# The check must be able to fail: the fixed-crop file is not what a brain crop gives.
if "$py" "$script" "$tmp/in/$case_name" "$tmp/fixed.h5" --crop brain >/dev/null 2>&1; then
    echo "FAIL: nibabel_check accepted a file prep'd with other options"; fails=$((fails + 1))
fi
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
