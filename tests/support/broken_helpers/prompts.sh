#!/bin/sh
# Asks for a password on stderr (no line break) and reads stdin, as a login tool would.
printf 'Password for alice@example.com: ' >&2
if read -r _answer; then echo "tok-never-printed"; exit 0; fi
echo >&2
echo "no password given" >&2
exit 1
