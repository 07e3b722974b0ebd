#!/bin/sh
# git-credential lines without a password.
printf 'username=alice\nhost=plugins.example.test\n'
