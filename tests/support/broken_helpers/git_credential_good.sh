#!/bin/sh
# A plugin marketplace credential helper printing git-credential lines.
printf 'username=x-access-token\npassword=tok-git-2f3e4d5c6b7a8091\n'
