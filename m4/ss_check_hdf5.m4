# SS_CHECK_HDF5
# Finds the HDF5 C library and sets HDF5_CFLAGS / HDF5_LIBS. Parallel HDF5 (Debian's
# libhdf5-openmpi-dev) is preferred when present; serial HDF5 is enough for everything but
# collective writes, which then fall back to rank-0 I/O.
AC_DEFUN([SS_CHECK_HDF5], [
  AC_ARG_WITH([hdf5],
    [AS_HELP_STRING([--with-hdf5=auto|serial|parallel], [which HDF5 build to use (default: auto)])],
    [], [with_hdf5=auto])
  ss_hdf5_parallel=no
  AS_CASE([$with_hdf5],
    [auto], [PKG_CHECK_MODULES([HDF5], [hdf5-openmpi], [ss_hdf5_parallel=yes],
              [PKG_CHECK_MODULES([HDF5], [hdf5], [],
                [AC_MSG_ERROR([HDF5 not found; install the Debian package libhdf5-dev])])])],
    [parallel], [PKG_CHECK_MODULES([HDF5], [hdf5-openmpi], [ss_hdf5_parallel=yes],
              [AC_MSG_ERROR([parallel HDF5 not found; install the Debian package libhdf5-openmpi-dev])])],
    [serial], [PKG_CHECK_MODULES([HDF5], [hdf5], [],
              [AC_MSG_ERROR([HDF5 not found; install the Debian package libhdf5-dev])])],
    [AC_MSG_ERROR([--with-hdf5: expected auto, serial or parallel, got '$with_hdf5'])])
  ss_save_CPPFLAGS="$CPPFLAGS"; ss_save_LIBS="$LIBS"
  CPPFLAGS="$CPPFLAGS $HDF5_CFLAGS"; LIBS="$HDF5_LIBS $LIBS"
  AC_CHECK_HEADER([hdf5.h], [],
    [AC_MSG_ERROR([hdf5.h not found; install the Debian package libhdf5-dev])])
  AC_CHECK_FUNC([H5Fcreate], [],
    [AC_MSG_ERROR([cannot link H5Fcreate ($HDF5_LIBS); install the Debian package libhdf5-dev])])
  AC_CHECK_FUNCS([H5Pset_fapl_mpio H5Pset_all_coll_metadata_ops])
  CPPFLAGS="$ss_save_CPPFLAGS"; LIBS="$ss_save_LIBS"
  AS_IF([test "x$ss_hdf5_parallel" = xyes],
    [AC_DEFINE([SS_HAVE_PARALLEL_HDF5], [1], [HDF5 was built with MPI-IO])])
  AC_SUBST([HDF5_CFLAGS])
  AC_SUBST([HDF5_LIBS])
])
