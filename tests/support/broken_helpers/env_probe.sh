#!/bin/sh
# Passes only when run the way the app runs a helper; otherwise says on stderr what differed.
fail() { echo "env_probe: $1" >&2; exit 9; }
[ "$#" -eq 0 ] || fail "got arguments"
[ -z "$LEAKY_SHELL_VAR" ] || fail "LEAKY_SHELL_VAR leaked from the shell"
[ -n "$HOME" ] && [ -n "$PATH" ] || fail "HOME or PATH missing"
[ "$GATEKEY_PROBE" = yes ] || fail "GATEKEY_* not passed"
[ "$(pwd)" = / ] || fail "working directory is $(pwd)"
if read -r _line; then fail "stdin is not at end of file"; fi
if [ "$CLAUDE_HELPER_CONTEXT" = setup-test ]; then
  [ "$CLAUDE_HELPER_MANUAL_RUN" = 1 ] || fail "CLAUDE_HELPER_MANUAL_RUN not set with setup-test"
else
  [ -z "$CLAUDE_HELPER_MANUAL_RUN" ] || fail "CLAUDE_HELPER_MANUAL_RUN set outside setup-test"
fi
if [ "${CLAUDE_HELPER_CONTEXT-unset}" = unset ]; then
  [ -z "${CLAUDE_HELPER_CONTEXT+x}" ] || fail "CLAUDE_HELPER_CONTEXT set but empty"
fi
echo tok-probe-0f1e2d3c4b5a6978
