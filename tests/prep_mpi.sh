#!/bin/sh
# shardseg prep over MPI ranks (mpiexec -n 2, one thread each): the merged file holds exactly what
# a serial run writes (tests/h5same: every group, dataset, chunk shape, attribute and /split), for
# odd case counts, more ranks than cases, folds and the real cases ($SS_REAL_DATA, skipped when
# absent); a bad case on either rank (or a full disk) stops the whole job with ONE
# 'shardseg prep:' line naming the first bad case in case order, the exit code of a serial run,
# and no output, temporary or part file.
set -u
# OpenMPI leaks at finalize: no leak detection for the executable in sanitized builds.
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
b="${SS_BUILDDIR:-.}"
bin="$b/shardseg"
if [ ! -x "$b/tests/mknii" ] || [ ! -x "$b/tests/h5same" ]; then
    echo "SKIP: tests/mknii or tests/h5same not built (make check builds them)"; exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 SHARDSEG_NO_PROGRESS=1
real="${SS_REAL_DATA:-}"
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
mpi() { "${MPIEXEC:-mpiexec}" --oversubscribe -n "$@"; }

mkcase() { # mkcase ROOT NAME [MOD SPECIAL]: a BraTS-layout case of 6x5x4 volumes (tests/prep.sh)
    d="$1/$2"; mkdir -p "$d"
    specs=""
    for m in flair t1 t1ce t2 seg; do
        s=""; [ "${3:-}" = "$m" ] && s=":${4:-}"
        t=f; v=100; [ "$m" = seg ] && t=B && v=2
        specs="$specs $d/$2_$m.nii.gz:$t:6:5:4:$v$s"
    done
    # shellcheck disable=SC2086 # specs is a list
    "$b/tests/mknii" $specs
}

# same NP DIR ARGS...: serial prep and prep on NP ranks of DIR give the same file.
same() {
    np=$1 dir=$2
    shift 2
    rm -f "$tmp"/s.h5 "$tmp"/p.h5
    "$bin" prep --in "$dir" --out "$tmp/s.h5" --threads 1 "$@" >"$tmp/log" 2>&1 ||
        { fail "serial prep $dir $*"; cat "$tmp/log"; return; }
    mpi "$np" "$bin" prep --in "$dir" --out "$tmp/p.h5" --threads 1 "$@" >"$tmp/log" 2>&1 ||
        { fail "prep on $np ranks $dir $*"; cat "$tmp/log"; return; }
    grep -q "ranks=$np " "$tmp/log" || { fail "prep did not run on $np ranks"; cat "$tmp/log"; }
    if "$b/tests/h5same" "$tmp/s.h5" "$tmp/p.h5"; then
        echo "ok: $np ranks = 1 rank: $(basename "$dir") $*"
    else
        fail "$np ranks differ from 1 rank: $dir $*"
    fi
    if ls "$tmp"/*.tmp.* >/dev/null 2>&1; then fail "temporary files left: $(ls "$tmp")"; fi
}

syn="$tmp/syn"
for c in caseA caseB caseC caseD caseE; do mkcase "$syn" "$c"; done
same 2 "$syn"
same 2 "$syn" --folds 3 --seed 9 --target binary
same 3 "$syn" --crop 4x4x4
one="$tmp/one"; mkcase "$one" caseA
same 2 "$one"

# The comparer must be able to fail: another split seed is another file.
"$bin" prep --in "$syn" --out "$tmp/s7.h5" --seed 7 -q >/dev/null 2>&1
if "$b/tests/h5same" "$tmp/p.h5" "$tmp/s7.h5" >/dev/null 2>&1; then
    fail "h5same finds no difference between two split seeds"
fi
rm -f "$tmp"/*.h5

# expect_fail DIR PATTERN: on 2 ranks, exit 2, one 'shardseg prep:' line matching, nothing left.
expect_fail() {
    mpi 2 "$bin" prep --in "$1" --out "$tmp/x.h5" --threads 1 >"$tmp/out" 2>"$tmp/err"
    rc=$?
    lines=$(grep -c '^shardseg' "$tmp/err")
    if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -q "^shardseg prep: .*$2" "$tmp/err"; then
        fail "2 ranks, $1: exit $rc, $lines shardseg lines, want 2, 1 line with '$2':"; cat "$tmp/err"
    elif ls "$tmp"/*.h5* >/dev/null 2>&1; then
        fail "2 ranks, $1: left files behind: $(ls "$tmp")"
    else
        echo "ok: 2 ranks, $(basename "$1") -> $rc, one line: $(grep '^shardseg' "$tmp/err")"
    fi
}
# caseB is rank 1's (round-robin), caseA rank 0's; both bad: the first in case order is named.
bad1="$tmp/bad_rank1"; mkcase "$bad1" caseA; mkcase "$bad1" caseB t2 nan; mkcase "$bad1" caseC
expect_fail "$bad1" "caseB_t2.nii.gz: non-finite voxel"
both="$tmp/bad_both"; mkcase "$both" caseA t1 nan; mkcase "$both" caseB seg 5
expect_fail "$both" "caseA_t1.nii.gz: non-finite voxel"
mpi 2 "$bin" prep --in "$syn" --out "$tmp/missing/x.h5" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 2 ] || [ "$(grep -c '^shardseg' "$tmp/err")" -ne 1 ]; then
    fail "2 ranks, unwritable --out: exit $rc:"; cat "$tmp/err"
else
    echo "ok: 2 ranks, unwritable --out -> 2"
fi

if [ -n "$real" ] && [ -d "$real/Brats18_2013_3_1" ]; then
    # Two cases, one per rank, keep the test short.
    r2="$tmp/real2"; mkdir -p "$r2"; real=$(cd "$real" && pwd)
    ln -s "$real/Brats18_2013_3_1" "$real/Brats18_TCIA10_628_1" "$r2/"
    same 2 "$r2"
    # Disk full on 2 ranks (a 3 MB tmpfs; needs root and mount): exit 1, one line, nothing left.
    mkdir -p "$tmp/small"
    if mount -t tmpfs -o size=3m tmpfs "$tmp/small" 2>/dev/null; then
        mpi 2 "$bin" prep --in "$r2" --out "$tmp/small/x.h5" --threads 1 >"$tmp/out" 2>"$tmp/err"
        rc=$?
        left=$(ls -A "$tmp/small")
        umount "$tmp/small"
        if [ "$rc" -ne 1 ] || [ -n "$left" ] || [ "$(grep -c '^shardseg' "$tmp/err")" -ne 1 ] ||
            ! grep -q "x.h5: .*failed (HDF5); check free space" "$tmp/err"; then
            fail "2 ranks, disk full: exit $rc, left '$left':"; cat "$tmp/err"
        else
            echo "ok: 2 ranks, full disk -> 1, one line, nothing left"
        fi
    else
        echo "note: cannot mount a small tmpfs; disk-full case skipped"
    fi
else
    echo "note: SS_REAL_DATA absent; real-case comparison skipped"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
