#!/bin/sh
# Fine, except under mid-session-refresh, where it waits far past the app's 20 s clamp in a
# child process (which holds stdout too: only killing the whole process group ends the run).
# GATEKEY_TEST_PIDFILE (passed like every GATEKEY_* variable) receives that child's pid.
if [ "$CLAUDE_HELPER_CONTEXT" = mid-session-refresh ]; then
  sleep 60 &
  [ -z "$GATEKEY_TEST_PIDFILE" ] || echo $! > "$GATEKEY_TEST_PIDFILE"
  wait
fi
echo tok-slow-1a2b3c4d5e6f7a8b
