#!/bin/sh
# Install gatekey on Linux: a virtual environment in /opt/gatekey, links in /usr/local/bin, the
# system config in /etc/gatekey/config.toml. Run as root. Options: --help; see install/README.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
common="$here/../common/install-unix.sh"
[ -f "$common" ] || common="$here/install-unix.sh" # flattened copies (packages, config management)
GATEKEY_INSTALL_PROG=${GATEKEY_INSTALL_PROG:-install/linux/install.sh} \
  exec sh "$common" --platform linux "$@"
