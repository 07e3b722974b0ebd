#!/bin/sh
# Logs the token it prints to stderr (which the app writes to its log file).
echo "debug: got token tok-echo-5e4d3c2b1a0f9e8d from cache" >&2
echo tok-echo-5e4d3c2b1a0f9e8d
