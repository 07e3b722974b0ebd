#!/bin/sh
# Under "background", leaves a child behind that inherited stdout (a browser launched without
# detaching would), so the app never sees end of file; fine in the other contexts.
if [ "$CLAUDE_HELPER_CONTEXT" = background ]; then
  sleep 60 &
  [ -z "$GATEKEY_TEST_PIDFILE" ] || echo $! > "$GATEKEY_TEST_PIDFILE"
fi
echo tok-held-6a5b4c3d2e1f0a9b
