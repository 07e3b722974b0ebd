#!/bin/sh
# A well-behaved headers helper (MCP headersHelper, otlpHeadersHelper): one flat JSON object.
# It passes only when run as the app runs these helpers; otherwise it says on stderr what differed.
fail() { echo "headers_good: $1" >&2; exit 9; }
[ "$#" -eq 0 ] || fail "got arguments"
[ -z "${CLAUDE_HELPER_CONTEXT+x}" ] || fail "CLAUDE_HELPER_CONTEXT is set"
[ -z "$LEAKY_SHELL_VAR" ] || fail "LEAKY_SHELL_VAR leaked from the shell"
[ "$(pwd)" = / ] || fail "working directory is $(pwd)"
if read -r _line; then fail "stdin is not at end of file"; fi
printf '%s\n' '{"Authorization": "Bearer tok-hdr-7c6b5a4d3e2f1a0b", "X-Org-Route": "prod"}'
