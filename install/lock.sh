#!/bin/sh
# Regenerate the hash-locked requirements in install/locks/ (commit the result):
#
#   sh install/lock.sh [--python-version 3.11]
#
# For each platform (linux, macos, windows), with uv's resolver (`uv pip compile
# --generate-hashes --python-platform`, which resolves for a platform other than the one it runs
# on, unlike pip-compile):
#   wheelhouse-<platform>.txt       gatekey's dependencies (build-wheelhouse.sh, install --wheelhouse)
#   wheelhouse-<platform>-aws.txt   the same with the aws extra (boto3)
#   bundle-<platform>.txt           gatekey's dependencies and PyInstaller (build-bundle.sh)
#   bundle-<platform>-aws.txt       the same with the aws extra
#   tools-<platform>.txt            uv and cyclonedx-bom (this script and the SBOMs)
# Every file pins every package with the SHA-256 of each of its published files, so a pip run
# with --require-hashes installs exactly these bytes or nothing. uv itself comes from
# tools-<this platform>.txt, installed hash-checked into the tools venv (install/tools-venv.sh).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PYVER=3.11
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYVER=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "lock.sh: unknown option: $1" >&2; exit 2 ;;
  esac
done
TOOLS=$(sh "$HERE/tools-venv.sh")
for platform in linux macos windows; do
  case "$platform" in
    linux) target=x86_64-manylinux_2_28 ;;
    macos) target=aarch64-apple-darwin ;;
    windows) target=x86_64-pc-windows-msvc ;;
  esac
  compile() { # OUT, then uv's inputs
    out=$1
    shift
    # Relative paths in the header, so the files do not depend on where the checkout is.
    (cd "$ROOT" && "$TOOLS/bin/uv" pip compile --quiet --generate-hashes --no-header \
      --python-platform "$target" --python-version "$PYVER" --index-url https://pypi.org/simple \
      -o "install/locks/$out" "$@")
    printf 'lock.sh: install/locks/%s\n' "$out" >&2
  }
  compile "wheelhouse-$platform.txt" pyproject.toml
  compile "wheelhouse-$platform-aws.txt" pyproject.toml --extra aws
  compile "bundle-$platform.txt" pyproject.toml install/locks/bundle.in
  compile "bundle-$platform-aws.txt" pyproject.toml install/locks/bundle.in --extra aws
  compile "tools-$platform.txt" install/locks/tools.in
done
