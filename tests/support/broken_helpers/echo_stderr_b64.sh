#!/bin/sh
# Logs the token base64-encoded (as a Basic auth header would carry it) on stderr.
echo "debug: Authorization: Basic dG9rLWI2NC05ZjhlN2Q2YzViNGEzOTI4" >&2
echo tok-b64-9f8e7d6c5b4a3928
