#!/bin/sh
# Fails, but writes its error message to stdout instead of stderr.
echo "error: not signed in, run acme login"
exit 3
