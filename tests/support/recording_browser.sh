#!/bin/sh
# A $BROWSER that opens nothing: it appends "recorded <argv>" to $BROWSER_LAUNCHES, so a test can
# assert that no browser was launched (silent contexts) or that another one was used instead.
# The suite's secret-hygiene check reads every argv gatekey passes (tests/support/hygiene.py).
if [ -n "${GATEKEY_TEST_ARGV_LOG:-}" ]; then { cat /proc/$$/cmdline; echo; } >>"$GATEKEY_TEST_ARGV_LOG"; fi
echo "recorded $*" >>"${BROWSER_LAUNCHES:?BROWSER_LAUNCHES is not set}"
exit 0
