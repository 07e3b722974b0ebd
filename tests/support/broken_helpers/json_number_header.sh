#!/bin/sh
# JSON output whose header value is a number, not a string.
printf '%s\n' '{"token": "tok-json-3c2b1a0f9e8d7c6b", "headers": {"X-Org-Route": "prod", "X-Tenant": 42}}'
