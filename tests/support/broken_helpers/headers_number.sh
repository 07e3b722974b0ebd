#!/bin/sh
# A header value that is a number, and a header name HTTP does not allow.
printf '%s\n' '{"Authorization": "Bearer tok-num-5d4c3b2a1f0e9d8c", "X-Tenant": 42, "Bad Name": "x"}'
