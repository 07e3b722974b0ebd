#!/bin/sh
# A $BROWSER that opens nothing: it appends "recorded <argv>" to $BROWSER_LAUNCHES, so a test can
# assert that no browser was launched (silent contexts) or that another one was used instead.
echo "recorded $*" >>"${BROWSER_LAUNCHES:?BROWSER_LAUNCHES is not set}"
exit 0
