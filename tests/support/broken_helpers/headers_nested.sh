#!/bin/sh
# The inference helper's {"token", "headers"} shape given to a headers surface: nested values.
printf '%s\n' '{"token": "tok-nest-0b1a2f3e4d5c6b7a", "headers": {"X-Org-Route": "prod"}}'
