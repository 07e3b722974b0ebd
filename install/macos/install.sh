#!/bin/sh
# Install gatekey on macOS: a virtual environment in "/Library/Application Support/gatekey", links
# in /usr/local/bin, the system config beside it ("/Library/Application Support/gatekey/config.toml").
# Run as root (Jamf / Kandji scripts and the .pkg postinstall do). Options: --help; see
# install/README.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
common="$here/../common/install-unix.sh"
[ -f "$common" ] || common="$here/install-unix.sh" # a flattened copy, the two files side by side
GATEKEY_INSTALL_PROG=${GATEKEY_INSTALL_PROG:-install/macos/install.sh} \
  exec sh "$common" --platform macos "$@"
