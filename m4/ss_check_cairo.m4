# SS_CHECK_CAIRO
# Finds cairo, which draws the PNG pictures of `shardseg infer --png` and `shardseg report`
# (image surfaces, text for legends and axes, PNG writing), and sets CAIRO_CFLAGS / CAIRO_LIBS.
# Debian's libcairo2-dev ships cairo.pc. Text needs one installed font (fonts-dejavu-core).
AC_DEFUN([SS_CHECK_CAIRO], [
  PKG_CHECK_MODULES([CAIRO], [cairo >= 1.14], [],
    [AC_MSG_ERROR([cairo was not found; install the Debian package libcairo2-dev])])
  ss_save_CPPFLAGS="$CPPFLAGS"; ss_save_LIBS="$LIBS"
  CPPFLAGS="$CPPFLAGS $CAIRO_CFLAGS"; LIBS="$CAIRO_LIBS $LIBS"
  AC_MSG_CHECKING([for cairo_surface_write_to_png])
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <cairo.h>]],
      [[return cairo_surface_write_to_png(0, "x") == 0;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no])
     AC_MSG_ERROR([this cairo has no PNG support ($CAIRO_LIBS); install the Debian package libcairo2-dev])])
  CPPFLAGS="$ss_save_CPPFLAGS"; LIBS="$ss_save_LIBS"
])
