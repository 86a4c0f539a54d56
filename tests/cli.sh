#!/bin/sh
# The shardseg executable's user contract: help, version, exit codes, one-line errors naming the
# option at fault, honest "not built yet" for planned commands.
set -u
# OpenMPI leaks at finalize: no leak detection for the executable in sanitized builds.
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
bin="${SS_BUILDDIR:-.}/shardseg"
fails=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# expect CODE PATTERN_IN_STDERR_OR_STDOUT ARGS...
expect() {
    code=$1 pattern=$2
    shift 2
    SHARDSEG_NO_PROGRESS=1 "$bin" "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: shardseg $*: exit $rc, want $code"; cat "$err"; fails=$((fails + 1)); return
    fi
    if ! grep -q -e "$pattern" "$out" "$err"; then
        echo "FAIL: shardseg $*: output lacks '$pattern'"; cat "$out" "$err"; fails=$((fails + 1)); return
    fi
    # Errors are one line on stderr, starting with "shardseg".
    if [ "$code" -ne 0 ]; then
        if [ "$(wc -l <"$err")" -ne 1 ] || ! head -n1 "$err" | grep -q '^shardseg'; then
            echo "FAIL: shardseg $*: error is not one 'shardseg ...' line:"; cat "$err"
            fails=$((fails + 1))
        fi
    fi
    echo "ok: shardseg $* -> $rc"
}

expect 0 'synth' --help
for c in synth prep train infer eval report forward weights tune bench plan; do
    expect 0 "$c" --help
    expect 0 "usage: shardseg $c" "$c" --help
done
expect 0 'shardseg 0\.' --version
expect 0 'blas:' --version
expect 2 'no command given'
expect 2 "unknown command" frobnicate
expect 2 "run.ini: cannot read" train --config run.ini
expect 2 "not built yet" tune
expect 2 "bench: which benchmark" bench
expect 2 "'nope': unknown benchmark" bench nope
expect 2 "bench gemm: --bogus: unknown option" bench gemm --bogus
expect 2 "bench gemm: --size: missing value" bench gemm --size
expect 2 "bench gemm: --size: 'abc' is not a valid value" bench gemm --size abc
expect 2 "--threads: '0' is not a valid value" bench gemm --threads 0
expect 2 "--mem-limit: '12Q' is not a size" --mem-limit 12Q bench gemm
expect 1 "--mem-limit: .* would exceed the limit" bench gemm --size 512 --mem-limit 1M
expect 0 "sgemm_gflops_median=" bench gemm --size 128 --repeats 2 --threads 1
expect 0 "sgemm_gflops_median=" --threads 1 bench gemm --size 64 --repeats 1

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# OpenBLAS runs kernels the CPU can use best: on a CPU newer than the library it would fall back
# to SSE3 ("Prescott") kernels unless shardseg re-runs itself with OPENBLAS_CORETYPE (blas.h).
# A core set in the environment is left alone.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    core=$("$bin" --version | sed -n 's/.*core \([A-Za-z0-9]*\)).*/\1/p')
    case "$core" in
    Prescott | Core2 | Penryn | Dunnington | Nehalem | Atom | Sandybridge | "")
        fail "--version: OpenBLAS core '$core' on a CPU with AVX2" ;;
    *) echo "ok: OpenBLAS core $core" ;;
    esac
fi
core=$(OPENBLAS_CORETYPE=Haswell "$bin" --version | sed -n 's/.*core \([A-Za-z0-9]*\)).*/\1/p')
[ "$core" = Haswell ] || fail "OPENBLAS_CORETYPE=Haswell was not kept (core '$core')"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
