#!/bin/sh
# An empty JSON object: no header at all.
printf '%s\n' '{}'
