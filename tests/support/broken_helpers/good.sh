#!/bin/sh
# A well-behaved helper: one bare token line, nothing on stderr.
printf '%s\n' tok-good-4b1d2c3e4f5a6b7c
