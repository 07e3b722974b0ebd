#!/bin/sh
# A $BROWSER / browser_command for the browser sign-in tests: real headless Chromium on the URL
# (the last argument). Chromium is started in the background in a new session (setsid), so this
# script returns at once, and its PID (= the session and process-group id) is appended to
# $HEADLESS_BROWSER_PIDFILE so the test can kill the whole session afterwards. Every launch is
# recorded in $BROWSER_LAUNCHES ("headless <argv>"). --ignore-certificate-errors: the provider's
# certificate comes from the tests' throwaway CA, which Chromium does not know.
# The suite's secret-hygiene check reads every argv gatekey passes (tests/support/hygiene.py).
if [ -n "${GATEKEY_TEST_ARGV_LOG:-}" ]; then { cat /proc/$$/cmdline; echo; } >>"$GATEKEY_TEST_ARGV_LOG"; fi
for url; do :; done
if [ -n "$BROWSER_LAUNCHES" ]; then echo "headless $*" >>"$BROWSER_LAUNCHES"; fi
profile=$(mktemp -d "${HEADLESS_BROWSER_TMP:-${TMPDIR:-/tmp}}/chromium.XXXXXX")
setsid timeout "${HEADLESS_BROWSER_TIMEOUT:-60}" "${CHROMIUM:-/usr/bin/chromium}" \
  --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --disable-background-networking --disable-component-update --disable-sync \
  --no-first-run --no-default-browser-check --disable-extensions \
  --ignore-certificate-errors \
  --user-data-dir="$profile" "$url" >>"${HEADLESS_BROWSER_LOG:-/dev/null}" 2>&1 </dev/null &
echo $! >>"${HEADLESS_BROWSER_PIDFILE:-/dev/null}"
exit 0
