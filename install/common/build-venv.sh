#!/bin/sh
# A build venv installed from a hash-locked requirements file with --require-hashes, cached by
# the lock's hash and the interpreter (never the test suite's .venv); prints its path.
#
#   sh install/common/build-venv.sh NAME LOCK          e.g. bundle install/locks/bundle-linux.txt
#   sh install/common/build-venv.sh --platform         this machine's lock platform
#
#   GATEKEY_BUILD_CACHE   where build venvs are kept (default: ~/.cache/gatekey-build)
#   GATEKEY_BUILD_PYTHON  the interpreter (default: the newest python3.1x / python3 on PATH)
set -eu

lock_platform() {
  case "$(uname -s)" in
    Linux) echo linux ;;
    Darwin) echo macos ;;
    MINGW* | MSYS* | CYGWIN*) echo windows ;;
    *) echo "unsupported OS: $(uname -s)" >&2; return 1 ;;
  esac
}
if [ "${1:-}" = --platform ]; then
  lock_platform
  exit 0
fi
[ $# -eq 2 ] || { echo "usage: build-venv.sh NAME LOCK | --platform" >&2; exit 2; }
name=$1
lock=$2
[ -f "$lock" ] || { echo "no lock file $lock (sh install/lock.sh writes it)" >&2; exit 1; }

build_python() { # the real interpreter (never a pyenv/asdf shim)
  if [ -n "${GATEKEY_BUILD_PYTHON:-}" ]; then
    "$GATEKEY_BUILD_PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))'
    return
  fi
  for py in python3.13 python3.12 python3.11 python3.10 python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    "$py" -c 'import os, sys; assert sys.version_info >= (3, 10); print(os.path.realpath(sys.executable))' 2>/dev/null && return 0
  done
  echo "a build needs Python 3.10 or newer" >&2
  return 1
}
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi
}

py=$(build_python)
key=$( (printf '%s\n' "$py"; cat "$lock") | sha256 | cut -c1-16)
cache=${GATEKEY_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gatekey-build}
venv="$cache/$name-$key"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv" >&2
  case "$(lock_platform)" in windows) vpy="$venv/Scripts/python.exe" ;; *) vpy="$venv/bin/python" ;; esac
  # --isolated: the lock's hashes decide, not the machine's pip configuration.
  "$vpy" -m pip install --isolated --quiet --disable-pip-version-check --no-input \
    --require-hashes --only-binary=:all: -r "$lock" >&2
  touch "$venv/.complete"
fi
printf '%s\n' "$venv"
