#!/bin/sh
# get_msd_task01.sh [DEST]: fetches the Medical Segmentation Decathlon Task01_BrainTumour
# (484 training cases, 4D NIfTI FLAIR/T1w/T1gd/T2w + labels; CC-BY-SA 4.0, see
# http://medicaldecathlon.com) into DEST/Task01_BrainTumour (DEST defaults to ./data), ready for
#   shardseg prep --in DEST/Task01_BrainTumour --out task01.h5
# A no-op when the folder is already complete. The download (about 7.1 GB) resumes where it
# stopped; its size is checked against the server's Content-Length (no checksum is published
# with this mirror), then the tar is unpacked into a temporary folder renamed into place, so an
# interrupted run never leaves a half-filled Task01_BrainTumour. The tar is kept (delete it by
# hand to save space). Needs curl or wget, and tar. Environment: MSD_TASK01_URL overrides the URL,
# MSD_TASK01_MIN_BYTES the smallest size accepted (tests use a small archive).
set -eu
url="${MSD_TASK01_URL:-https://msd-for-monai.s3-us-west-2.amazonaws.com/Task01_BrainTumour.tar}"
ncases=484
# The archive is about 7.1 GB; anything smaller is an error page or a cut download.
min_bytes="${MSD_TASK01_MIN_BYTES:-7000000000}"

case "${1:-}" in
-h | --help)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
dest="${1:-data}"
task="$dest/Task01_BrainTumour"
die() { echo "get_msd_task01.sh: $*" >&2; exit 1; }

count_cases() { # count_cases DIR: BRATS_*.nii.gz files in DIR
    c=0
    for f in "$1"/BRATS_*.nii.gz; do
        [ -f "$f" ] && c=$((c + 1))
    done
    echo "$c"
}
is_complete() {
    [ -f "$task/dataset.json" ] && [ -d "$task/imagesTr" ] && [ -d "$task/labelsTr" ] || return 1
    [ "$(count_cases "$task/imagesTr")" -eq "$ncases" ] && [ "$(count_cases "$task/labelsTr")" -eq "$ncases" ]
}
if is_complete; then
    echo "get_msd_task01.sh: $task already holds the $ncases cases; nothing to do"
    exit 0
fi
[ -e "$task" ] && die "$task exists but is incomplete; move it away and run again"
mkdir -p "$dest" || die "$dest: cannot create; give a writable folder"

tar="$dest/Task01_BrainTumour.tar"
size_of() { wc -c <"$1" | tr -d ' '; }
if [ ! -f "$tar" ]; then
    # Content-Length of the final response after redirects; empty when the server does not say.
    if command -v curl >/dev/null 2>&1; then
        want=$(curl -sIL "$url" | tr -d '\r' | awk 'tolower($1) == "content-length:" { n = $2 } END { print n }')
        echo "get_msd_task01.sh: downloading $url (${want:-unknown} bytes) to $tar"
        curl -fL --retry 5 --retry-delay 10 -C - -o "$tar.part" "$url" || die "download failed; run again to resume"
    elif command -v wget >/dev/null 2>&1; then
        want=$(wget -q --spider -S "$url" 2>&1 | tr -d '\r' | awk 'tolower($1) == "content-length:" { n = $2 } END { print n }')
        echo "get_msd_task01.sh: downloading $url (${want:-unknown} bytes) to $tar"
        wget -c -O "$tar.part" "$url" || die "download failed; run again to resume"
    else
        die "neither curl nor wget found; install one (Debian: apt-get install curl)"
    fi
    got=$(size_of "$tar.part")
    if [ -n "$want" ] && [ "$got" -ne "$want" ]; then
        die "$tar.part: $got bytes, the server announced $want; run again to resume"
    fi
    [ "$got" -ge "$min_bytes" ] || die "$tar.part: only $got bytes (want about 7.1 GB); delete it and run again"
    mv "$tar.part" "$tar"
fi

tmp="$dest/.Task01_BrainTumour.unpack.$$"
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp"
echo "get_msd_task01.sh: unpacking $tar"
tar -xf "$tar" -C "$tmp" || die "$tar: cannot unpack (corrupt?); delete it and run again"
# The archive carries macOS "._x" resource files next to the NIfTI files; prep skips hidden
# files, other tools may not.
find "$tmp" -name '._*' -type f -exec rm -f {} + 2>/dev/null || true
[ -d "$tmp/Task01_BrainTumour" ] || die "$tar: no Task01_BrainTumour folder inside"
mv "$tmp/Task01_BrainTumour" "$task"
is_complete || die "$task: unpacked, but not $ncases images and labels; check the archive"
echo "get_msd_task01.sh: $task ready ($ncases cases); next: shardseg prep --in $task --out task01.h5"
