# SS_CHECK_JANSSON
# Finds Jansson, the JSON parser `shardseg report` reads metrics.jsonl with, and sets
# JANSSON_CFLAGS / JANSSON_LIBS. Debian's libjansson-dev ships jansson.pc.
AC_DEFUN([SS_CHECK_JANSSON], [
  PKG_CHECK_MODULES([JANSSON], [jansson >= 2.10], [],
    [AC_MSG_ERROR([Jansson was not found; install the Debian package libjansson-dev])])
])
