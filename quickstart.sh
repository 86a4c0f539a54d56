#!/bin/bash
# quickstart.sh: from a fresh Debian 12 machine (as root) to a built, tested shardseg.
#   ./quickstart.sh demo   install dependencies, build, run the demo job
#   ./quickstart.sh test   install dependencies, build, run the test suite (what CI runs)
# Packages are installed only when missing, so a prepared machine pays nothing.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential autoconf automake libtool autoconf-archive pkg-config
          libopenmpi-dev openmpi-bin libopenblas-openmp-dev libhdf5-dev
          libnifti2-dev libniftiio-dev libznz-dev zlib1g-dev libinih-dev check mricron-data
          libcairo2-dev fonts-dejavu-core libjansson-dev)

install_missing() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "quickstart.sh: missing Debian packages: ${missing[*]}; install them (as root) and rerun" >&2
        exit 2
    fi
    echo "quickstart.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
    [ -x configure ] || ./autogen.sh
    if [ ! -f Makefile ]; then
        ./configure ${CI:+--enable-werror} ${SS_CONFIGURE_FLAGS:-}
    fi
    make -j"$(nproc)"
}

# mpirun refuses root unless told; the demo and tests run as root on CI machines.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

case "${1:-}" in
demo)
    install_missing
    build
    ./shardseg --version
    SHARDSEG=./shardseg jobs/demo.sh demo-out
    ;;
test)
    install_missing
    build
    make -j"$(nproc)" check || { cat tests/*.log 2>/dev/null | tail -n 200; exit 1; }
    ;;
*)
    echo "usage: ./quickstart.sh demo|test" >&2
    exit 2
    ;;
esac
