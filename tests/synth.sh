#!/bin/sh
# placeholder: skipped until the command lands.
exit 77
