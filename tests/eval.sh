#!/bin/sh
# shardseg eval: a copy of each synthetic reference as a perfect prediction gives Dice 1 and HD95 0
# in the table, the CSV and the JSON; bad inputs fail with one line, exit 2, nothing written.
# (The metrics themselves are checked in tests/check_metrics.c.)
set -u
bin="${SS_BUILDDIR:-.}/shardseg"
fails=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
export SHARDSEG_NO_PROGRESS=1

"$bin" synth --out "$work/ref" --cases 2 --size 48x48x32 --seed 4 >/dev/null 2>"$work/err" ||
    { cat "$work/err"; echo "FAIL: synth"; exit 1; }
mkdir -p "$work/pred"
for c in SynBraTS_00000 SynBraTS_00001; do
    cp "$work/ref/$c/${c}_seg.nii.gz" "$work/pred/$c.nii.gz"
done
"$bin" eval --pred "$work/pred" --ref "$work/ref" --csv "$work/e.csv" --json "$work/e.json" \
    >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "eval of perfect predictions"; }
grep -q '^mean  *1.0000  *1.0000  *1.0000  *0.00  *0.00  *0.00' "$work/out" ||
    { cat "$work/out"; fail "perfect predictions: want Dice 1 and HD95 0"; }
[ "$(wc -l <"$work/e.csv")" -eq 3 ] || fail "csv: want a header and 2 rows"
grep -q '"dice_wt":{"mean":1.000000' "$work/e.json" || fail "json summary"
echo "ok: perfect predictions"

# bad CODE PATTERN ARGS...: exit CODE, one line naming PATTERN, no csv left.
bad() {
    code=$1 pattern=$2
    shift 2
    rm -f "$work/bad.csv"
    "$bin" eval "$@" >"$work/out" 2>"$work/err"
    rc=$?
    [ "$rc" -eq "$code" ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "$pattern" "$work/err" &&
        [ ! -e "$work/bad.csv" ] || { cat "$work/err"; fail "eval $*: exit $rc, want $code naming $pattern"; }
    echo "ok: eval $* -> $rc"
}
bad 2 'give --pred' --ref "$work/ref"
bad 2 'no reference' --pred "$work/pred" --ref "$work/pred/none" --csv "$work/bad.csv"
bad 2 'labels' --pred "$work/pred" --ref "$work/ref" --labels nope
bad 2 'cannot write' --pred "$work/pred" --ref "$work/ref" --csv "$work/missing/dir/e.csv"
# A prediction of another shape.
"$bin" synth --out "$work/other" --cases 1 --size 32x32x32 --seed 4 >/dev/null 2>&1
mkdir -p "$work/pred2"
cp "$work/other/SynBraTS_00000/SynBraTS_00000_seg.nii.gz" "$work/pred2/SynBraTS_00000.nii.gz"
bad 2 'differs' --pred "$work/pred2" --ref "$work/ref" --csv "$work/bad.csv"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all eval checks passed"
