#!/bin/sh
# shardseg prep: the real BraTS cases ($SS_REAL_DATA, skipped when absent) in all three layouts,
# and every bad input: exit code, ONE 'shardseg prep: <file>: ...' line naming the culprit, and no
# output (nor temporary) file left behind. Tiny synthetic NIfTI files are written by tests/mknii
# (built by make check; the section is skipped when it is missing).
set -u
# OpenMPI leaks at finalize: no leak detection for the executable in sanitized builds.
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
bin="${SS_BUILDDIR:-.}/shardseg"
real="${SS_REAL_DATA:-}"
fails=0
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
out="$tmp/out" err="$tmp/err"

# expect CODE PATTERN ARGS...: exit code, pattern in stdout/stderr, one-line error, no output left.
expect() {
    code=$1 pattern=$2
    shift 2
    SHARDSEG_NO_PROGRESS=1 "$bin" prep "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: prep $*: exit $rc, want $code"; cat "$err"; fails=$((fails + 1)); return
    fi
    if ! grep -q -e "$pattern" "$out" "$err"; then
        echo "FAIL: prep $*: output lacks '$pattern'"; cat "$out" "$err"; fails=$((fails + 1)); return
    fi
    if [ "$code" -ne 0 ]; then
        if [ "$(wc -l <"$err")" -ne 1 ] || ! head -n1 "$err" | grep -q '^shardseg prep: '; then
            echo "FAIL: prep $*: error is not one 'shardseg prep: ...' line:"; cat "$err"
            fails=$((fails + 1))
        fi
        if ls "$tmp"/*.h5* "$tmp"/ro/* >/dev/null 2>&1; then
            echo "FAIL: prep $*: left files behind:"; ls "$tmp"; fails=$((fails + 1))
        fi
    fi
    echo "ok: prep $* -> $rc"
}

# --- usage ---
expect 0 'usage: shardseg prep' --help
expect 2 '\-\-in: missing' --out "$tmp/x.h5"
expect 2 '\-\-out: missing' --in "$tmp"
expect 2 "\-\-format: 'nifti' is not a layout" --in "$tmp" --out "$tmp/x.h5" --format nifti
expect 2 "\-\-target: 'all' is not a target" --in "$tmp" --out "$tmp/x.h5" --target all
expect 2 "\-\-crop: 'big' is not a size" --in "$tmp" --out "$tmp/x.h5" --crop big
expect 2 "\-\-val-fraction" --in "$tmp" --out "$tmp/x.h5" --val-fraction 1.5

# --- folders that are not datasets ---
mkdir -p "$tmp/empty"
expect 2 "$tmp/empty: no cases found" --in "$tmp/empty" --out "$tmp/x.h5"
expect 2 "$tmp/nope: not a directory" --in "$tmp/nope" --out "$tmp/x.h5"

# --- synthetic cases: a minimal NIfTI-1 writer ---
if [ -x "${SS_BUILDDIR:-.}/tests/mknii" ]; then
    mknii() { # mknii SPEC...; SPEC = PATH:DTYPE(f|B):NX:NY:NZ:FILL[:SPECIAL] (nan | 5 | shift)
        "${SS_BUILDDIR:-.}/tests/mknii" "$@"
    }
    mkcase() { # mkcase ROOT NAME [MOD SPECIAL]: a BraTS-layout case of 6x5x4 volumes
        d="$1/$2"; mkdir -p "$d"
        specs=""
        for m in flair t1 t1ce t2 seg; do
            s=""; [ "${3:-}" = "$m" ] && s=":${4:-}"
            t=f; v=100; [ "$m" = seg ] && t=B && v=2
            specs="$specs $d/$2_$m.nii.gz:$t:6:5:4:$v$s"
        done
        mknii $specs
    }
    syn="$tmp/syn"
    mkcase "$syn" caseA
    mkcase "$syn" caseB
    expect 0 'cases=2' --in "$syn" --out "$tmp/ok.h5"
    [ -s "$tmp/ok.h5" ] || { echo "FAIL: no output file"; fails=$((fails + 1)); }
    rm -f "$tmp/ok.h5"

    # Unwritable output: /proc, a read-only directory, a missing directory.
    expect 2 '/proc/x.h5: cannot create' --in "$syn" --out /proc/x.h5
    mkdir -p "$tmp/ro" && chmod a-w "$tmp/ro"
    if [ "$(id -u)" -ne 0 ]; then
        expect 2 "$tmp/ro/x.h5: cannot create" --in "$syn" --out "$tmp/ro/x.h5"
    fi
    expect 2 "$tmp/missing/x.h5: cannot create" --in "$syn" --out "$tmp/missing/x.h5"

    bad="$tmp/bad_modality"; mkcase "$bad" caseA; rm "$bad/caseA/caseA_t1ce.nii.gz"
    expect 2 "caseA_t1ce.nii.gz: missing T1ce file of case caseA" --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_label"; mkcase "$bad" caseA seg 5
    expect 2 "caseA_seg.nii.gz: label value 5 is not in the brats" --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_nan"; mkcase "$bad" caseA; mkcase "$bad" caseB t2 nan
    expect 2 "caseB_t2.nii.gz: non-finite voxel" --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_affine"; mkcase "$bad" caseA t1 shift
    expect 2 "caseA_t1.nii.gz: affine.* differs" --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_shape"; mkcase "$bad" caseA
    mknii "$bad/caseA/caseA_t2.nii.gz:f:6:5:3:100"
    expect 2 "caseA_t2.nii.gz: shape 6x5x3 differs" --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_trunc"; mkcase "$bad" caseA
    head -c 60 "$bad/caseA/caseA_flair.nii.gz" >"$tmp/t" && mv "$tmp/t" "$bad/caseA/caseA_flair.nii.gz"
    expect 2 "caseA_flair.nii.gz: " --in "$bad" --out "$tmp/x.h5"
    bad="$tmp/bad_magic"; mkcase "$bad" caseA
    printf 'this is not a NIfTI file at all, not even close to one; padding to 348 bytes.%0300d' 0 \
        | gzip >"$bad/caseA/caseA_t1.nii.gz"
    expect 2 "caseA_t1.nii.gz: " --in "$bad" --out "$tmp/x.h5"
    expect 2 "crop 9x9x9: larger than the volume" --in "$syn" --out "$tmp/x.h5" --crop 9x9x9
    mixed="$tmp/mixed"; mkcase "$mixed" caseA
    mkdir -p "$mixed/c23" && for m in t2f t1n t1c t2w seg; do
        cp "$syn/caseA/caseA_flair.nii.gz" "$mixed/c23/c23-$m.nii.gz"; done
    expect 2 "mixed layouts" --in "$mixed" --out "$tmp/x.h5"
else
    echo "note: tests/mknii not built; synthetic bad-input cases skipped"
fi

# --- the real cases ---
if [ -n "$real" ] && [ -d "$real/Brats18_2013_3_1" ]; then
    expect 0 'cases=3 mb_read=' --in "$real" --out "$tmp/real.h5" --threads 2
    one="$tmp/one"; mkdir -p "$one" && ln -s "$real/Brats18_TCIA10_628_1" "$one/"
    expect 0 'cases=1' --in "$one" --out "$tmp/real_fixed.h5" --crop 240x240x152 \
        --target binary --folds 3 --seed 5
    # BraTS 2023 names over the BraTS 2018 files: label 4 is outside the 2023 set {0,1,2,3}.
    b23="$tmp/b23/Brats18_2013_3_1"; mkdir -p "$b23"
    for p in "t2f flair" "t1n t1" "t1c t1ce" "t2w t2" "seg seg"; do
        set -- $p
        ln -s "$real/Brats18_2013_3_1/Brats18_2013_3_1_$2.nii.gz" "$b23/Brats18_2013_3_1-$1.nii.gz"
    done
    expect 2 "Brats18_2013_3_1-seg.nii.gz: label value 4 is not in the brats2023" \
        --in "$tmp/b23" --out "$tmp/x.h5"
    # The sampler benchmark on the prep'd file: bytes read per rank fall with the slab; prep
    # throughput on small synthetic cases made (and removed again) in a scratch folder.
    mkdir -p "$tmp/scratch"
    bench_out=$(TMPDIR="$tmp/scratch" SHARDSEG_NO_PROGRESS=1 "$bin" bench data --data "$tmp/real.h5" \
        --patch 32 --steps 3 --synth-cases 2 --synth-size 48x48x32 2>&1)
    if echo "$bench_out" | grep -q "slab=1/4 patches_per_s=" &&
        echo "$bench_out" | grep -q "data_wait_fraction=" &&
        echo "$bench_out" | grep -q "prep source=synth cases=2 ranks=1 .*mb_written_per_s=" &&
        [ -z "$(ls -A "$tmp/scratch")" ]; then
        echo "ok: shardseg bench data"
    else
        echo "FAIL: bench data:"; echo "$bench_out"; fails=$((fails + 1))
    fi
    rm -f "$tmp"/real*.h5
    # Disk full: a 3 MB tmpfs (needs root and mount; skipped otherwise). Exit 1 (runtime), one
    # line, nothing left on the small disk.
    mkdir -p "$tmp/small"
    if mount -t tmpfs -o size=3m tmpfs "$tmp/small" 2>/dev/null; then
        SHARDSEG_NO_PROGRESS=1 "$bin" prep --in "$real" --out "$tmp/small/x.h5" >"$out" 2>"$err"
        rc=$?
        left=$(ls -A "$tmp/small")
        umount "$tmp/small"
        if [ "$rc" -ne 1 ] || [ -n "$left" ] || [ "$(wc -l <"$err")" -ne 1 ] ||
            ! grep -q "x.h5: writing case .* failed (HDF5); check free space" "$err"; then
            echo "FAIL: disk full: exit $rc, left '$left':"; cat "$err"; fails=$((fails + 1))
        else
            echo "ok: prep on a full disk -> 1"
        fi
    else
        echo "note: cannot mount a small tmpfs; disk-full case skipped"
    fi
else
    echo "note: SS_REAL_DATA absent; real-case runs skipped"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
