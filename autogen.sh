#!/bin/sh
# Regenerates the build system from a git checkout (release tarballs do not need this).
# autoconf-archive supplies AX_PROG_CC_MPI and AX_APPEND_COMPILE_FLAGS; --install copies them into m4/.
set -e
cd "$(dirname "$0")"
if [ ! -f /usr/share/aclocal/ax_prog_cc_mpi.m4 ] && ! ls m4/ax_prog_cc_mpi.m4 >/dev/null 2>&1; then
    echo "autogen.sh: autoconf-archive macros not found; install the Debian package autoconf-archive" >&2
    exit 2
fi
autoreconf --force --install --verbose >/dev/null 2>&1 || autoreconf --force --install --verbose
