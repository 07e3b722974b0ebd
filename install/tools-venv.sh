#!/bin/sh
# The supply-chain tools' venv (uv, cyclonedx-bom), installed hash-checked from
# install/locks/tools-<platform>.txt and cached by that file's hash; prints its path.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
platform=$(sh "$HERE/common/build-venv.sh" --platform)
exec sh "$HERE/common/build-venv.sh" tools "$HERE/locks/tools-$platform.txt"
