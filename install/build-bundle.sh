#!/bin/sh
# Build gatekey as a self-contained folder for the machine this runs on (PyInstaller one-folder:
# a one-file build unpacks itself on every run, far too slow for a helper), no Python needed on
# the endpoint:
#
#   bash install/build-bundle.sh [--out DIR] [--extras aws]
#
# Writes, in DIR (default: dist/bundle):
#   gatekey-<version>-<os>-<arch>/            the folder: gatekey, gatekey-keychain, gatekey-idp,
#                                             gatekey-vault (one executable; the other three are
#                                             links to it on Linux/macOS, copies on Windows) and
#                                             _internal/ (Python, the libraries, gatekey)
#   gatekey-<version>-<os>-<arch>.tar.gz      (.zip on Windows) the folder, for the installers
#   gatekey-<version>-<os>-<arch>.tar.gz.sha256
#   gatekey-<version>-<os>-<arch>.cdx.json    its CycloneDX SBOM (the build venv's packages)
#
# The build venv is installed from install/locks/bundle-<os>[-aws].txt with --require-hashes
# (PyInstaller included) and cached by that lock's hash (GATEKEY_BUILD_CACHE, default
# ~/.cache/gatekey-build): never the test suite's .venv. gatekey itself is built from this
# checkout (a clean copy). Same script on macOS (codesign: GATEKEY_CODESIGN_IDENTITY,
# GATEKEY_ENTITLEMENTS) and on Windows under Git Bash (see install/README.md).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
sha256_of() { # FILE
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

die() { printf 'build-bundle.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'build-bundle.sh: %s\n' "$*" >&2; }

OUT="$ROOT/dist/bundle"
EXTRAS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    --extras) [ $# -ge 2 ] || die "$1 needs a value"; EXTRAS=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
case ",$EXTRAS," in
  ,, | ,aws,) ;;
  *) die "--extras takes aws (the only extra whose SDK the bundle can carry): $EXTRAS" ;;
esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

os=$(sh "$HERE/common/build-venv.sh" --platform)
lock="$HERE/locks/bundle-$os${EXTRAS:+-$EXTRAS}.txt"
venv=$(sh "$HERE/common/build-venv.sh" "bundle-$os${EXTRAS:+-$EXTRAS}" "$lock")
case "$os" in windows) vpy="$venv/Scripts/python.exe" ;; *) vpy="$venv/bin/python" ;; esac

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$ROOT/helpers/gatekey/__init__.py")
[ -n "$version" ] || die "cannot read gatekey's version from helpers/gatekey/__init__.py"
arch=$(uname -m)
case "$arch" in amd64 | AMD64) arch=x86_64 ;; aarch64 | ARM64) arch=arm64 ;; esac
name="gatekey-$version-$os-$arch"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# gatekey from a clean copy of the checkout (setuptools keeps stale files in build/), into the
# build venv without dependencies: those came from the lock, hash-checked.
mkdir "$work/src"
# (nothing a concurrent test run writes: caches, build folders, egg-info)
(cd "$ROOT" && tar -cf - --exclude=./.git --exclude=./.venv --exclude=build --exclude=./dist \
  --exclude=node_modules --exclude='*.egg-info' --exclude=__pycache__ --exclude=.mypy_cache \
  --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.hypothesis .) | (cd "$work/src" && tar -xf -)
"$vpy" -m pip install --isolated --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall "$work/src" >&2 2>/dev/null ||
  "$vpy" -m pip install --isolated --quiet --disable-pip-version-check --no-deps --force-reinstall "$work/src" >&2

say "PyInstaller: $name"
rm -rf "${OUT:?}/$name"
GATEKEY_BUNDLE_NAME=$name GATEKEY_BUNDLE_EXTRAS=$EXTRAS \
  "$vpy" -m PyInstaller --noconfirm --log-level WARN --distpath "$OUT" --workpath "$work/pyi" \
  "$HERE/bundle/gatekey.spec" >&2

# One executable, four names: entry.py picks the family from the name it was started as. Links
# cost nothing on disk (copies of the executable would each carry the 4 MB module archive).
for family in keychain idp vault; do
  if [ "$os" = windows ]; then
    cp "$OUT/$name/gatekey.exe" "$OUT/$name/gatekey-$family.exe"
  else
    ln -sf gatekey "$OUT/$name/gatekey-$family"
  fi
done
"$OUT/$name/gatekey" version >/dev/null || die "the bundle's gatekey does not run"

# The SBOM: what the build venv holds is what PyInstaller collected from (gatekey, its locked
# dependencies, PyInstaller's own runtime).
tools=$(sh "$HERE/tools-venv.sh")
"$tools/bin/cyclonedx-py" environment --output-format JSON --output-file "$OUT/$name.cdx.json" \
  --pyproject "$ROOT/pyproject.toml" "$vpy" >&2

if [ "$os" = windows ]; then
  archive="$name.zip"
  (cd "$OUT" && rm -f "$archive" && "$vpy" -m zipfile -c "$archive" "$name")
else
  archive="$name.tar.gz"
  # Reproducible enough to compare: sorted names, no owner (the installers set root's).
  (cd "$OUT" && tar -cf - "$name" | gzip -n >"$archive")
fi
(cd "$OUT" && sha256_of "$archive" | sed "s|\$|  $archive|" >"$archive.sha256")
say "built $OUT/$name/ ($(du -sh "$OUT/$name" | cut -f1)), $OUT/$archive and its .sha256, $OUT/$name.cdx.json"
printf '%s\n' "$OUT/$archive"
