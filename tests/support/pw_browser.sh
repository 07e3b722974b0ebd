#!/bin/sh
# A $BROWSER / browser_command that plays a person at the provider's real login form: Playwright
# (tests/peers/oidc/pw-login.mjs) drives headless Chromium to the URL (the last argument), types
# the user name and password, confirms consent. Backgrounded in a new session like
# headless_browser.sh, its PID appended to $HEADLESS_BROWSER_PIDFILE; launches recorded in
# $BROWSER_LAUNCHES ("playwright <argv>").
# The suite's secret-hygiene check reads every argv gatekey passes (tests/support/hygiene.py).
if [ -n "${GATEKEY_TEST_ARGV_LOG:-}" ]; then { cat /proc/$$/cmdline; echo; } >>"$GATEKEY_TEST_ARGV_LOG"; fi
for url; do :; done
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "$BROWSER_LAUNCHES" ]; then echo "playwright $*" >>"$BROWSER_LAUNCHES"; fi
setsid timeout "${HEADLESS_BROWSER_TIMEOUT:-60}" node "$here/../peers/oidc/pw-login.mjs" "$url" \
  "${PW_LOGIN_USER:-alice}" >>"${HEADLESS_BROWSER_LOG:-/dev/null}" 2>&1 </dev/null &
echo $! >>"${HEADLESS_BROWSER_PIDFILE:-/dev/null}"
exit 0
