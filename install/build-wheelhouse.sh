#!/bin/sh
# Download gatekey and every dependency as wheels for one target platform and Python version into
# one folder, so endpoints install offline (install.sh --wheelhouse DIR, install.ps1 -Wheelhouse).
#
#   install/build-wheelhouse.sh --platform macosx_11_0_arm64 --python-version 3.12 --out wh-mac
#   install/build-wheelhouse.sh --platform win_amd64 --python-version 3.12 --out wh-win
#   install/build-wheelhouse.sh --platform manylinux2014_x86_64 --python-version 3.11 \
#       --from dist/gatekey-0.1.0-py3-none-any.whl --out wh-linux
#
# gatekey itself comes from the checkout this script sits in (built into a wheel), unless --from
# names something else. gatekey is not published on PyPI yet: a package called "gatekey" there is
# not this project's, so the script never asks the index for it unless --from says so.
#
# pip evaluates dependencies' environment markers (sys_platform, python_version) against the
# machine running pip, not the target. So this script adds the per-OS dependencies by name
# (pywin32-ctypes and colorama on Windows, secretstorage on Linux), and should be run
# with an interpreter of the target's Python version (--pip-python python3.12) so version markers
# (tomli, importlib_metadata, backports.tarfile) come out right; it warns when they differ.
set -eu

usage() {
  cat <<'USAGE'
Usage: build-wheelhouse.sh --platform TAG --python-version X.Y --out DIR [options]

  --platform TAG        a wheel platform tag: macosx_11_0_arm64, macosx_11_0_x86_64, win_amd64,
                        win_arm64, manylinux2014_x86_64, manylinux2014_aarch64 (repeatable: a
                        macOS fleet with both architectures takes both macosx tags)
  --python-version X.Y  the endpoints' Python (the interpreter install.sh / install.ps1 will use)
  --out DIR             the wheelhouse folder (created; existing wheels are kept)
  --from SPEC           gatekey to package: a wheel, an sdist, a source folder, or a requirement
                        such as gatekey==0.1.0 from your own index (default: the checkout this
                        script sits in, built into a wheel; gatekey is not on PyPI yet)
  --extra NAME          a gatekey extra to include (aws, broker); repeatable
  --pip-python PY       the interpreter that runs pip (default: python3)
USAGE
}

die() {
  printf 'build-wheelhouse.sh: error: %s\n' "$*" >&2
  exit 1
}

PLATFORMS=""
PYVER=""
OUT=""
FROM=""
EXTRAS=""
PIP_PY=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) [ $# -ge 2 ] || die "$1 needs a value"; PLATFORMS="$PLATFORMS $2"; shift 2 ;;
    --python-version) [ $# -ge 2 ] || die "$1 needs a value"; PYVER=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    --from) [ $# -ge 2 ] || die "$1 needs a value"; FROM=$2; shift 2 ;;
    --extra) [ $# -ge 2 ] || die "$1 needs a value"; EXTRAS="${EXTRAS:+$EXTRAS,}$2"; shift 2 ;;
    --pip-python) [ $# -ge 2 ] || die "$1 needs a value"; PIP_PY=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[ -n "$PLATFORMS" ] || die "--platform is required"
[ -n "$PYVER" ] || die "--python-version is required (e.g. 3.12)"
[ -n "$OUT" ] || die "--out is required"
case "$PYVER" in [0-9].[0-9] | [0-9].[0-9][0-9]) ;; *) die "--python-version wants X.Y: $PYVER" ;; esac

host=$("$PIP_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $PIP_PY"
if [ "$host" != "$PYVER" ]; then
  printf 'build-wheelhouse.sh: warning: pip runs on Python %s, the target is %s; dependencies ' "$host" "$PYVER" >&2
  printf 'that depend on the Python version may be missing (use --pip-python python%s)\n' "$PYVER" >&2
fi
if [ -z "$FROM" ]; then
  # The checkout around this script (install/..), when it is gatekey's.
  checkout=$(cd "$(dirname "$0")/.." && pwd)
  grep -q '^name = "gatekey"$' "$checkout/pyproject.toml" 2>/dev/null ||
    die "$checkout is not a gatekey checkout; pass --from (a gatekey wheel, sdist or source folder)"
  FROM=$checkout
  printf 'build-wheelhouse.sh: gatekey from the checkout %s\n' "$checkout" >&2
fi
mkdir -p "$OUT"

# A local sdist or source folder becomes a wheel first: --only-binary=:all: downloads wheels only.
case "$FROM" in
  *.whl) [ -f "$FROM" ] || die "no such wheel file: $FROM" ;;
  *.tar.gz | *.zip | */* | .)
    [ -e "$FROM" ] || die "no such file or folder: $FROM"
    built=$(mktemp -d)
    source=$FROM
    if [ -d "$FROM" ]; then
      # Build from a copy: setuptools builds in the source folder's build/ and never removes a
      # file from it, so a module deleted or renamed since an earlier build would still ship
      # (and two builds of one folder at once would share it).
      source="$built/src"
      mkdir "$source"
      (cd "$FROM" && tar -cf - --exclude=./.git --exclude=./.venv --exclude=./build \
        --exclude=./dist --exclude=node_modules .) | (cd "$source" && tar -xf -)
    fi
    "$PIP_PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$built" "$source"
    for wheel in "$built"/gatekey-*.whl; do
      [ -f "$wheel" ] || die "pip built no gatekey wheel from $FROM"
      cp "$wheel" "$OUT/"
      FROM="$OUT/$(basename "$wheel")"
    done
    rm -rf "$built"
    ;;
esac
if [ -n "$EXTRAS" ]; then
  case "$FROM" in
    *.whl) FROM="gatekey[$EXTRAS] @ file://$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM")" ;;
    *) FROM="${FROM}[$EXTRAS]" ;;
  esac
fi

for platform in $PLATFORMS; do
  case "$platform" in
    win*) extra_deps="pywin32-ctypes>=0.2.0 colorama" ;; # keyring, click
    *linux*) extra_deps="secretstorage>=3.3 jeepney>=0.4.2" ;;
    *) extra_deps="" ;;
  esac
  printf 'build-wheelhouse.sh: %s, Python %s\n' "$platform" "$PYVER" >&2
  # shellcheck disable=SC2086 # extra_deps is a list of requirement words
  "$PIP_PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --platform "$platform" --python-version "$PYVER" --implementation cp \
    -d "$OUT" "$FROM" $extra_deps
done
printf 'build-wheelhouse.sh: %s wheels in %s\n' "$(find "$OUT" -name '*.whl' | wc -l | tr -d ' ')" "$OUT" >&2
