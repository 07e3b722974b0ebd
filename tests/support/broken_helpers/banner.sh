#!/bin/sh
# Prints a banner before the token (a login tool's greeting left in).
echo "AcmeAuth CLI v2.3 - signed in"
echo tok-banner-8c7b6a5d4e3f2a1b
