#!/bin/sh
# shardseg synth: two small cases in the BraTS 2021 layout, determinism by seed, the phantom
# fallback line, and bad options failing with exit 2, one line naming the option, and no case
# folder (partial or not) left behind.
set -u
bin="${SS_BUILDDIR:-.}/shardseg"
fails=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run CODE ARGS...: runs shardseg synth, checks the exit code; stderr in $work/err.
run() {
    code=$1
    shift
    SHARDSEG_NO_PROGRESS=1 "$bin" synth --threads 2 "$@" >"$work/out" 2>"$work/err"
    rc=$?
    [ "$rc" -eq "$code" ] || { fail "synth $*: exit $rc, want $code"; cat "$work/err"; return 1; }
    echo "ok: synth $* -> $rc"
}

# bad OPTION PATTERN ARGS...: exit 2, one 'shardseg synth: ...' line naming OPTION.
bad() {
    pattern=$1
    shift
    run 2 "$@" || return
    if [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q "^shardseg synth: .*$pattern" "$work/err"; then
        fail "synth $*: want one line naming $pattern, got:"; cat "$work/err"
    fi
}

out="$work/cases"
run 0 --out "$out" --cases 2 --seed 3 --size 48x48x32 || exit 1
grep -q "cases_per_s=" "$work/out" || fail "no cases_per_s in the report"
for c in SynBraTS_00000 SynBraTS_00001; do
    for m in flair t1 t1ce t2 seg; do
        [ -s "$out/$c/${c}_$m.nii.gz" ] || fail "missing $out/$c/${c}_$m.nii.gz"
    done
    n=$(ls -A "$out/$c" | wc -l)
    [ "$n" -eq 5 ] || fail "$c holds $n entries, want 5: $(ls -A "$out/$c")"
done
n=$(ls -A "$out" | wc -l)
[ "$n" -eq 2 ] || fail "$out holds $n entries (temporary folders left?): $(ls -A "$out")"

# Same seed, same files; a re-run replaces the cases in place.
run 0 --out "$work/again" --cases 1 --seed 3 --size 48x48x32 || exit 1
cmp -s "$out/SynBraTS_00000/SynBraTS_00000_t1ce.nii.gz" \
    "$work/again/SynBraTS_00000/SynBraTS_00000_t1ce.nii.gz" || fail "same seed, different T1ce"
run 0 --out "$work/again" --cases 1 --seed 4 --size 48x48x32 || exit 1
cmp -s "$out/SynBraTS_00000/SynBraTS_00000_t1ce.nii.gz" \
    "$work/again/SynBraTS_00000/SynBraTS_00000_t1ce.nii.gz" && fail "seeds 3 and 4 gave one T1ce"
[ "$(ls -A "$work/again" | wc -l)" -eq 1 ] || fail "re-run left extra folders in $work/again"

# Without the template: the phantom, said once on stderr.
run 0 --out "$work/ph" --cases 1 --size 32 --template "$work/none" || exit 1
grep -q "analytic head phantom" "$work/err" || fail "no phantom notice: $(cat "$work/err")"
[ "$(grep -c phantom "$work/err")" -eq 1 ] || fail "phantom notice not exactly one line"
[ -s "$work/ph/SynBraTS_00000/SynBraTS_00000_seg.nii.gz" ] || fail "phantom case missing"

# Bad options: exit 2, one line naming the option, nothing written.
bad "--cases" --out "$work/b1" --cases 0
bad "--cases" --out "$work/b1" --cases -3
bad "--cases" --out "$work/b1"
bad "--out" --cases 1
bad "--size" --out "$work/b1" --cases 1 --size 64x0x48
bad "--size" --out "$work/b1" --cases 1 --size 64x64
bad "--seed" --out "$work/b1" --cases 1 --seed abc
bad "--bogus" --out "$work/b1" --cases 1 --bogus
[ ! -e "$work/b1" ] || fail "a usage error created $work/b1"
: >"$work/file"
bad "--out" --out "$work/file" --cases 1 --size 32
bad "--out" --out "$work/file/sub" --cases 1 --size 32
bad "--out" --out "$work/no/such/dir" --cases 1 --size 32
[ ! -e "$work/no" ] || fail "--out created parent folders"
if [ "$(id -u)" -ne 0 ]; then # root writes anywhere, so this case needs a normal user
    mkdir "$work/ro" && chmod 555 "$work/ro"
    bad "--out" --out "$work/ro" --cases 1 --size 32
    [ "$(ls -A "$work/ro" | wc -l)" -eq 0 ] || fail "partial case left in read-only folder"
    chmod 755 "$work/ro"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "synth ok"
