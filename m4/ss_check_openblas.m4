# SS_CHECK_OPENBLAS
# Finds OpenBLAS with its CBLAS header and sets BLAS_CFLAGS / BLAS_LIBS.
#
# Debian installs the pthread, OpenMP and serial builds side by side and picks one at run time
# through update-alternatives. Our kernels call sgemm both outside parallel regions (BLAS threads =
# ex->nthreads) and inside them (one thread each); only the OpenMP build handles the second case
# without oversubscribing the cores, so we prefer it and pin it with an rpath so that the
# alternatives setting cannot swap it for the pthread build behind our back.
AC_DEFUN([SS_CHECK_OPENBLAS], [
  AC_ARG_WITH([openblas],
    [AS_HELP_STRING([--with-openblas=DIR],
      [directory holding libopenblas.so and cblas.h (default: Debian's OpenMP build, then pkg-config openblas)])],
    [], [with_openblas=auto])
  ss_multiarch=`$CC -print-multiarch 2>/dev/null`
  ss_blas_dir=
  BLAS_RPATH=
  AS_IF([test "x$with_openblas" != xauto && test ! -d "$with_openblas"],
    [AC_MSG_ERROR([--with-openblas: '$with_openblas' is not a directory; give the directory holding libopenblas.so])],
    [test "x$with_openblas" != xauto],
    [ss_blas_dir="$with_openblas"
     BLAS_CFLAGS="-I$with_openblas -I$with_openblas/include"
     BLAS_LIBS="-L$with_openblas -L$with_openblas/lib -lopenblas"
     BLAS_RPATH="-Wl,-rpath,$with_openblas -Wl,-rpath,$with_openblas/lib"],
    [test -n "$ss_multiarch" && test -f "/usr/lib/$ss_multiarch/openblas-openmp/libopenblas.so"],
    [ss_blas_dir="/usr/lib/$ss_multiarch/openblas-openmp"
     BLAS_CFLAGS="-I/usr/include/$ss_multiarch/openblas-openmp"
     BLAS_LIBS="-L$ss_blas_dir -lopenblas"
     BLAS_RPATH="-Wl,-rpath,$ss_blas_dir"],
    [PKG_CHECK_MODULES([BLAS], [openblas], [],
      [AC_MSG_ERROR([OpenBLAS not found; install the Debian package libopenblas-openmp-dev (or pass --with-openblas=DIR)])])])

  ss_save_CPPFLAGS="$CPPFLAGS"; ss_save_LIBS="$LIBS"
  CPPFLAGS="$CPPFLAGS $BLAS_CFLAGS"; LIBS="$BLAS_RPATH $BLAS_LIBS $LIBS"
  AC_CHECK_HEADER([cblas.h], [],
    [AC_MSG_ERROR([cblas.h not found next to OpenBLAS; install the Debian package libopenblas-openmp-dev])])
  AC_MSG_CHECKING([for cblas_sgemm and openblas_set_num_threads])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cblas.h>]],
      [[float a = 1, b = 1, c = 0;
        openblas_set_num_threads(1);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.f, &a, 1, &b, 1, 0.f, &c, 1);]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([cannot link cblas_sgemm from OpenBLAS ($BLAS_LIBS); install the Debian package libopenblas-openmp-dev])])
  # openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP.
  AC_MSG_CHECKING([whether OpenBLAS is the OpenMP build])
  AC_RUN_IFELSE([AC_LANG_PROGRAM([[#include <cblas.h>]], [[return openblas_get_parallel() == 2 ? 0 : 1;]])],
    [ss_blas_threading=openmp],
    [ss_blas_threading=not-openmp],
    [ss_blas_threading=unknown])
  AC_MSG_RESULT([$ss_blas_threading])
  AS_IF([test "x$ss_blas_threading" = xnot-openmp],
    [AC_MSG_WARN([OpenBLAS is not the OpenMP build: threads may oversubscribe the cores; install the Debian package libopenblas-openmp-dev])])
  CPPFLAGS="$ss_save_CPPFLAGS"; LIBS="$ss_save_LIBS"
  AC_SUBST([BLAS_CFLAGS])
  AC_SUBST([BLAS_LIBS])
  # Link flags for executables: libtool drops -Wl,-rpath from a convenience library's LIBADD.
  AC_SUBST([BLAS_RPATH])
])
