# SS_CHECK_NIFTI
# Finds the NIfTI-2 API of nifti_clib and sets NIFTI_CFLAGS / NIFTI_LIBS. Debian's libnifti2-dev
# ships no pkg-config file, so the header and library are probed directly. nifti2_io.h must be
# linked against libnifti2: with libniftiio (the NIfTI-1 library) the struct layouts disagree and
# headers are read as garbage, hence the explicit -lnifti2 and no fallback.
AC_DEFUN([SS_CHECK_NIFTI], [
  AC_ARG_VAR([NIFTI_CFLAGS], [C compiler flags for libnifti2 (default: -I/usr/include/nifti)])
  AC_ARG_VAR([NIFTI_LIBS], [linker flags for libnifti2 (default: -lnifti2 -lznz -lz)])
  AS_IF([test "x$NIFTI_CFLAGS" = x], [NIFTI_CFLAGS="-I/usr/include/nifti"])
  ss_save_CPPFLAGS="$CPPFLAGS"; ss_save_LIBS="$LIBS"
  CPPFLAGS="$CPPFLAGS $NIFTI_CFLAGS"
  AC_CHECK_HEADER([zlib.h], [], [AC_MSG_ERROR([zlib.h not found; install the Debian package zlib1g-dev])])
  AC_CHECK_HEADER([znzlib.h], [], [AC_MSG_ERROR([znzlib.h not found; install the Debian package libznz-dev])])
  AC_CHECK_HEADER([nifti2_io.h], [],
    [AC_MSG_ERROR([nifti2_io.h not found; install the Debian packages libniftiio-dev libnifti2-dev])])
  AS_IF([test "x$NIFTI_LIBS" = x], [NIFTI_LIBS="-lnifti2 -lznz -lz"])
  LIBS="$NIFTI_LIBS -lm $LIBS"
  AC_MSG_CHECKING([for nifti_image_read in libnifti2])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <nifti2_io.h>]],
      [[nifti_set_debug_level(0); return nifti_image_read("x", 0) != 0;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([cannot link libnifti2 ($NIFTI_LIBS); install the Debian packages libnifti2-dev libznz-dev zlib1g-dev])])
  CPPFLAGS="$ss_save_CPPFLAGS"; LIBS="$ss_save_LIBS"
])
