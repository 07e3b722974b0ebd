#!/bin/sh
# A banner line before the headers object.
echo "AcmeAuth CLI v2.3 - signed in"
printf '%s\n' '{"Authorization": "Bearer tok-hban-1e2d3c4b5a6f7e8d"}'
