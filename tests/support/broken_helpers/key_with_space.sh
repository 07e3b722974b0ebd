#!/bin/sh
# An apiKeyHelper that prints "Bearer <key>": the space makes it no valid X-Api-Key value, and
# Claude Code would send "Authorization: Bearer Bearer <key>".
echo "Bearer tok-spc-9a8b7c6d5e4f3a2b"
