# SS_CHECK_INIH
# Finds libinih, the INI parser behind `shardseg train --config`, and sets INIH_CFLAGS / INIH_LIBS.
# Debian's libinih-dev ships inih.pc; without it (or without pkg-config) the header and -linih are
# probed directly. ini_parse_stream is what src/train/config.c calls (it counts lines itself, so
# the handler never needs the INI_HANDLER_LINENO build option).
AC_DEFUN([SS_CHECK_INIH], [
  AC_ARG_VAR([INIH_CFLAGS], [C compiler flags for libinih (default: from pkg-config inih)])
  AC_ARG_VAR([INIH_LIBS], [linker flags for libinih (default: from pkg-config inih, or -linih)])
  AS_IF([test "x$INIH_LIBS" = x],
    [PKG_CHECK_MODULES([INIH], [inih], [], [INIH_CFLAGS=""; INIH_LIBS="-linih"])])
  ss_save_CPPFLAGS="$CPPFLAGS"; ss_save_LIBS="$LIBS"
  CPPFLAGS="$CPPFLAGS $INIH_CFLAGS"
  AC_CHECK_HEADER([ini.h], [],
    [AC_MSG_ERROR([ini.h not found; install the Debian package libinih-dev])])
  LIBS="$INIH_LIBS $LIBS"
  AC_MSG_CHECKING([for ini_parse_stream in libinih])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <ini.h>]],
      [[return ini_parse_stream(0, 0, 0, 0);]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([cannot link libinih ($INIH_LIBS); install the Debian package libinih-dev])])
  CPPFLAGS="$ss_save_CPPFLAGS"; LIBS="$ss_save_LIBS"
  AC_SUBST([INIH_CFLAGS])
  AC_SUBST([INIH_LIBS])
])
