#!/bin/sh
# Enforces the layering of DESIGN.md / STYLE.md on the sources:
#  - MPI identifiers only in src/dist; <cblas.h> only in src/kernels/blas.c;
#  - NIfTI headers only in src/data; HDF5 only in h5data.c, src/train and dist's h5mpio.c;
#    <ini.h> only in src/train/config.c; no exit()/abort() outside src/cli;
#  - a layer includes shardseg/ headers only from itself and the layers before it.
set -u
top="${SS_SRCDIR:-$(dirname "$0")/..}"
cd "$top" || exit 1
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Code only: comments may name MPI concepts, so // comments are stripped before matching.
hits=$(for f in $(find src include -name '*.c' -o -name '*.h' | grep -v '^src/dist/'); do
    sed 's://.*$::' "$f" | grep -qE '\bMPI_[A-Za-z_]+' && echo "$f"
done)
[ -z "$hits" ] || bad "MPI outside src/dist: $hits"
hits=$(grep -rlE '#include[[:space:]]*<mpi\.h>' src include | grep -v '^src/dist/')
[ -z "$hits" ] || bad "<mpi.h> outside src/dist: $hits"
hits=$(grep -rlE '#include[[:space:]]*<cblas\.h>' src include | grep -v '^src/kernels/blas\.c$')
[ -z "$hits" ] || bad "<cblas.h> outside src/kernels/blas.c: $hits"
hits=$(grep -rlE '#include[[:space:]]*<nifti[12]?_io\.h>' src include | grep -v '^src/data/')
[ -z "$hits" ] || bad "NIfTI outside src/data: $hits"
# HDF5 (DESIGN.md): the data store, src/train (weights, checkpoints) and dist's collective I/O.
hits=$(grep -rlE '#include[[:space:]]*<(hdf5|H5[A-Za-z0-9_]*)\.h>' src include |
    grep -vE '^(src/data/h5data\.c|src/train/.*|src/dist/h5mpio\.c|include/shardseg/h5mpio\.h)$')
[ -z "$hits" ] || bad "HDF5 outside src/data/h5data.c, src/train, src/dist/h5mpio.c: $hits"
hits=$(grep -rlE '#include[[:space:]]*<ini\.h>' src include | grep -v '^src/train/config\.c$')
[ -z "$hits" ] || bad "libinih outside src/train/config.c: $hits"
hits=$(grep -rnE '(^|[^_a-zA-Z.])(exit|abort|_Exit)[[:space:]]*\(' src | grep -v '^src/cli/')
[ -z "$hits" ] || bad "exit/abort outside src/cli: $hits"
hits=$(grep -rnE '(^|[^_a-zA-Z])(printf|puts)[[:space:]]*\(' src | grep -v '^src/cli/' | grep -v 'snprintf\|vsnprintf')
[ -z "$hits" ] || bad "printing outside src/cli: $hits"

# A module's layer is the src/ directory holding its .c file (one module = one header + one
# source); a file may include shardseg/ headers only from its own layer and the ones before it.
order="core kernels dist model data train tune cli"
layer_of() {
    src=$(ls src/*/"$1".c 2>/dev/null | head -n 1)
    [ -n "$src" ] && echo "$src" | cut -d/ -f2 || echo unknown
}
rank_of() { i=0; for l in $order; do [ "$l" = "$1" ] && { echo $i; return; }; i=$((i + 1)); done; echo 99; }
for f in $(find src -name '*.c' -o -name '*.h' | sort); do
    layer=$(echo "$f" | cut -d/ -f2)
    [ "$layer" = cli ] && continue
    lr=$(rank_of "$layer")
    for h in $(grep -hoE '#include[[:space:]]*"shardseg/[a-z_0-9]+\.h"' "$f" | sed 's/.*shardseg\/\([a-z_0-9]*\)\.h"/\1/'); do
        [ "$h" = shardseg ] && { bad "$f includes the umbrella header"; continue; }
        hl=$(layer_of "$h")
        [ "$hl" = unknown ] && { bad "$f includes shardseg/$h.h, which has no src/*/$h.c"; continue; }
        [ "$(rank_of "$hl")" -le "$lr" ] || bad "$f ($layer) includes shardseg/$h.h ($hl)"
    done
done
[ "$fails" -eq 0 ] || exit 1
echo "layering ok"
