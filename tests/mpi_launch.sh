#!/bin/sh
# The executable under mpiexec with 2 ranks (1 thread each): launch, collectives, output on rank 0.
set -u
# OpenMPI leaks at finalize: no leak detection for the executable in sanitized builds.
[ -n "${SS_SANITIZED:-}" ] && export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
bin="${SS_BUILDDIR:-.}/shardseg"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
out=$("${MPIEXEC:-mpiexec}" --oversubscribe -n 2 "$bin" bench gemm --size 96 --repeats 1 2>&1)
rc=$?
echo "$out"
[ "$rc" -eq 0 ] || { echo "FAIL: mpiexec -n 2 exit $rc"; exit 1; }
echo "$out" | grep -q '1 threads/rank, 2 ranks' || { echo "FAIL: not 2 ranks"; exit 1; }
[ "$(echo "$out" | grep -c 'sgemm_gflops_median=')" -eq 1 ] || { echo "FAIL: result not printed once"; exit 1; }
# A usage error on every rank must end the job with exit code 2, not hang.
"${MPIEXEC:-mpiexec}" --oversubscribe -n 2 "$bin" bench gemm --size abc >/dev/null 2>&1
rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: bad option under mpiexec exited 0"; exit 1; }
echo "ok"
