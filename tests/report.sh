#!/bin/sh
# shardseg report: the learning-curve page of a tiny real training run is a 1800x1200 PNG, and
# the printed summary (best validation Dice and its step, final loss, median step time, total
# time, peak memory) equals what awk computes from metrics.jsonl; an incomplete last line (a
# killed run) is skipped, while a malformed line elsewhere, a missing run directory or metrics
# file, an empty file or an unwritable --out fail with one line, exit 2, and leave no file.
set -u
bin="${SS_BUILDDIR:-.}/shardseg"
fails=0
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
export SHARDSEG_NO_PROGRESS=1 OMP_NUM_THREADS=2

"$bin" synth --out "$work/syn" --cases 3 --size 48x48x32 --seed 2 >/dev/null 2>"$work/err" ||
    { cat "$work/err"; echo "FAIL: synth"; exit 1; }
"$bin" prep --in "$work/syn" --out "$work/d.h5" --val-fraction 0.34 >/dev/null 2>"$work/err" ||
    { cat "$work/err"; echo "FAIL: prep"; exit 1; }
cat >"$work/run.ini" <<INI
[model]
model = unet3d
img_size = 16x16x16
depth = 2
base_filters = 4

[data]
file = $work/d.h5

[train]
steps = 40
val_interval = 10
val_cases = 1
seed = 9

[optim]
lr = 1e-3
schedule = cosine
warmup_steps = 5
INI
"$bin" train --config "$work/run.ini" output.dir="$work/run" >"$work/train.log" 2>&1 ||
    { cat "$work/train.log"; echo "FAIL: train"; exit 1; }

# png_size FILE: "WIDTH HEIGHT" from the IHDR chunk, or nothing when FILE is not a PNG (the
# 8-byte signature, then the IHDR chunk's length 13 and type).
png_size() {
    sig=$(od -An -tx1 -N16 "$1" 2>/dev/null | tr -d ' \n')
    [ "$sig" = "89504e470d0a1a0a0000000d49484452" ] || return 0
    od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%d %d\n", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }'
}

# summary_check DIR OUT: the printed summary of DIR's metrics.jsonl against awk's numbers.
summary_check() {
    m="$1/metrics.jsonl" out=$2
    steps=$(grep -c '"loss"' "$m")
    grep -q "^steps  *$steps (last step" "$out" || fail "$1: steps, want $steps"
    best=$(sed -n 's/^{"step":\([0-9]*\),.*"val_dice_mean":\([^,}]*\).*/\1 \2/p' "$m" |
        awk 'BEGIN { b = -1 } $2 != "null" && $2 + 0 > b { b = $2 + 0; s = $1 }
             END { if (b >= 0) printf "%.4f at step %d", b, s }')
    grep -q "^best val Dice  *$best " "$out" || fail "$1: best val Dice, want '$best'"
    loss=$(grep '"loss"' "$m" | sed 's/.*"loss":\([^,]*\),.*/\1/' | grep -v null | tail -n 1)
    loss=$(echo "$loss" | awk '{ printf "%.4f", $1 }')
    grep -q "^final loss  *$loss at step" "$out" || fail "$1: final loss, want $loss"
    ms=$(grep '"loss"' "$m" | sed 's/.*,"ms":\([^,]*\),.*/\1/' | grep -v null | sort -g |
        awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    grep -q "^median step time  *$ms ms" "$out" || fail "$1: median step time, want $ms ms"
    total=$(grep '"loss"' "$m" | sed 's/.*,"ms":\([^,]*\),.*/\1/' | grep -v null |
        awk '{ s += $1 } END { printf "%.1f s", s / 1000 }')
    grep -q "^train time  *$total " "$out" || fail "$1: train time, want $total"
    mem=$(sed -n 's/.*"peak_mem_bytes":\([0-9]*\).*/\1/p' "$m" |
        awk '$1 > p { p = $1 } END { printf "%.1f MiB", p / 1048576 }')
    grep -q "^peak memory  *$mem\$" "$out" || fail "$1: peak memory, want $mem"
}

"$bin" report "$work/run" >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "report of a run"; }
[ "$(png_size "$work/run/report.png")" = "1800 1200" ] ||
    fail "run/report.png: not an 1800x1200 PNG ($(png_size "$work/run/report.png"))"
grep -q "^report  *$work/run/report.png\$" "$work/out" || fail "no report path printed"
grep -q '^model  *unet3d, img_size 16x16x16, depth 2' "$work/out" || fail "no config line"
grep -q '^optim  *adamw, lr 0.001, cosine, warmup 5' "$work/out" || fail "no optim line"
summary_check "$work/run" "$work/out"
echo "ok: report of a real run"

# Hand-written records: one region (written without val_dice_mean), null values, no config.
mkdir "$work/hand"
{
    i=1
    while [ "$i" -le 30 ]; do
        loss=$(awk -v i="$i" 'BEGIN { printf "%.17g", 2 / i }')
        if [ "$i" -eq 7 ]; then loss=null; fi
        printf '{"step":%d,"loss":%s,"dice_loss":null,"ce_loss":%s,"lr":0.01,"ms":%d.5,"data_wait_ms":0.25,"peak_mem_bytes":%d}\n' \
            "$i" "$loss" "$loss" $((10 + i % 7)) $((1048576 * (i % 11)))
        if [ $((i % 10)) -eq 0 ]; then
            printf '{"step":%d,"val_dice_tumour":%s,"val_loss":null}\n' "$i" "0.$((i / 10 * 3))"
        fi
        i=$((i + 1))
    done
} >"$work/hand/metrics.jsonl"
"$bin" report "$work/hand" --loss-scale log >"$work/out" 2>"$work/err" ||
    { cat "$work/err"; fail "report of hand-written records"; }
summary_check "$work/hand" "$work/out"
grep -q '^best val Dice  *0.9000 at step 30' "$work/out" || fail "one-region mean"
grep -q '^model' "$work/out" && fail "config lines without a config.ini"
[ -n "$(png_size "$work/hand/report.png")" ] || fail "hand/report.png is not a PNG"
echo "ok: one region, nulls, log scale, no config"

# An incomplete last line is what a killed run leaves: skipped, and said so.
cp -r "$work/run" "$work/killed"
rm -f "$work/killed/report.png"
printf '{"step":41,"loss":0.12' >>"$work/killed/metrics.jsonl"
"$bin" report "$work/killed" >"$work/out" 2>"$work/err" || { cat "$work/err"; fail "partial last line"; }
grep -q '^steps  *40 ' "$work/out" || fail "partial last line: want 40 steps"
grep -q 'incomplete' "$work/out" || fail "partial last line: not reported"
[ -n "$(png_size "$work/killed/report.png")" ] || fail "killed/report.png is not a PNG"
echo "ok: incomplete last line skipped"

# bad PATTERN ARGS...: exit 2, one line naming PATTERN.
bad() {
    pattern=$1
    shift
    "$bin" report "$@" >"$work/out" 2>"$work/err"
    rc=$?
    [ "$rc" -eq 2 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q -e "$pattern" "$work/err" ||
        { cat "$work/err"; fail "report $*: exit $rc, want 2 naming '$pattern'"; }
    echo "ok: report $* -> $rc"
}
# A malformed line in the middle: file:line, and no picture.
mkdir "$work/broken"
sed '5s/.*/{"step":5,"loss":0.5,oops}/' "$work/run/metrics.jsonl" >"$work/broken/metrics.jsonl"
bad "broken/metrics.jsonl:5: not JSON" "$work/broken"
[ -e "$work/broken/report.png" ] && fail "a picture was written for a malformed file"
sed '3s/.*/{"step":3,"loss":"high"}/' "$work/run/metrics.jsonl" >"$work/broken/metrics.jsonl"
bad 'metrics.jsonl:3: "loss" is neither a number nor null' "$work/broken"
# A malformed last line that has its newline is not a killed write.
cp "$work/run/metrics.jsonl" "$work/broken/metrics.jsonl"
printf '{"step":41,"loss":0.12\n' >>"$work/broken/metrics.jsonl"
bad "metrics.jsonl:45: not JSON" "$work/broken"
bad 'No such file' "$work/none"
bad 'not a directory' "$work/run.ini"
mkdir "$work/empty"
bad 'metrics.jsonl: cannot read' "$work/empty"
: >"$work/empty/metrics.jsonl"
bad 'no training-step records' "$work/empty"
bad 'give RUN_DIR' --out "$work/x.png"
bad "loss-scale: 'cubic'" "$work/run" --loss-scale cubic
bad 'cannot write' "$work/run" --out "$work/missing/dir/r.png"
bad 'is a directory' "$work/run" --out "$work/syn"
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$work/ro" && chmod 555 "$work/ro"
    bad 'cannot write' "$work/run" --out "$work/ro/r.png"
    [ -z "$(ls -A "$work/ro")" ] || fail "read-only folder: something was left: $(ls -A "$work/ro")"
fi
left=$(find "$work" -name '.*.tmp.*')
[ -z "$left" ] || fail "temporary files left: $left"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all report checks passed"
