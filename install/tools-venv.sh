#!/bin/sh
# The supply-chain tools' venv (uv, cyclonedx-bom), installed hash-checked from
# install/locks/tools-<platform>.txt and cached by that file's hash; prints its path.
#   GATEKEY_BUILD_CACHE  where build venvs are kept (default: ~/.cache/gatekey-build)
#   GATEKEY_BUILD_PYTHON the interpreter (default: the newest python3.1x / python3 on PATH)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common/build-venv.sh"
build_venv tools "$HERE/locks/tools-$(lock_platform).txt"
