#!/bin/sh
# The supply chain in one command: the hash locks, the gatekey wheel, a wheelhouse for each OS,
# and the CycloneDX SBOM of each (cyclonedx-py, from install/tools-venv.sh's hash-locked venv):
#
#   bash install/supply-chain.sh [--out DIR] [--no-lock] [--bundle]
#
# 1. sh install/lock.sh: rewrites install/locks/*.txt (uv, from PyPI; commit the result).
#    --no-lock keeps the committed locks (offline, or to reproduce a release).
# 2. In DIR (default: dist/supply-chain):
#    gatekey-<version>-py3-none-any.whl      the wheel, built from this checkout (a clean copy)
#    gatekey-<version>-py3-none-any.cdx.json its SBOM: the wheel installed with this machine's
#                                            locked dependencies (offline, hash-checked), as
#                                            cyclonedx-py sees that environment
#    wheelhouse-<os>[-aws]/                  install/build-wheelhouse.sh for linux, macos and
#                                            windows (Python 3.11, the locks'), each with its
#                                            requirements.txt (every wheel's SHA-256) and
#                                            requirements.cdx.json (its SBOM)
#    bundle-<os>[-aws].cdx.json              the SBOM of each bundle lock: what build-bundle.sh
#                                            builds from on that OS
# 3. --bundle: also bash install/build-bundle.sh --out DIR (this machine's bundle, its .sha256
#    and the SBOM of its build venv, gatekey-<version>-<os>-<arch>.cdx.json).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PYVER=3.11 # the locks' Python (install/lock.sh)

die() { printf 'supply-chain.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'supply-chain.sh: %s\n' "$*" >&2; }

OUT="$ROOT/dist/supply-chain"
LOCK=1
BUNDLE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    --no-lock) LOCK=0; shift ;;
    --bundle) BUNDLE=1; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tools=$(sh "$HERE/tools-venv.sh")
cdx() { # cyclonedx-py MODE ... (its warning about the dependency graph's root is expected)
  "$tools/bin/cyclonedx-py" "$@" --pyproject "$ROOT/pyproject.toml" --output-reproducible \
    --output-format JSON 2>"$OUT/.cdx.log" || { cat "$OUT/.cdx.log" >&2; die "cyclonedx-py $1 failed"; }
  rm -f "$OUT/.cdx.log"
}

if [ "$LOCK" = 1 ]; then
  say "the locks (sh install/lock.sh)"
  sh "$HERE/lock.sh"
fi

# The wheelhouses: the first builds gatekey's wheel from the checkout, the others package it.
wheel=""
for os in linux macos windows; do
  case "$os" in
    linux) tag=manylinux2014_x86_64 ;;
    macos) tag=macosx_11_0_arm64 ;;
    windows) tag=win_amd64 ;;
  esac
  for extra in "" aws; do
    wh="$OUT/wheelhouse-$os${extra:+-$extra}"
    rm -rf "$wh"
    set -- --platform "$tag" --python-version "$PYVER" --out "$wh" --sbom
    [ -z "$extra" ] || set -- "$@" --extra "$extra"
    [ -z "$wheel" ] || set -- "$@" --from "$wheel"
    sh "$HERE/build-wheelhouse.sh" "$@"
    if [ -z "$wheel" ]; then
      for wheel in "$wh"/gatekey-*.whl; do cp "$wheel" "$OUT/"; done
      wheel="$OUT/$(basename "$wheel")"
    fi
  done
done

# The wheel's SBOM: what installing it gives on this machine (the locked dependencies, offline,
# every hash checked), read from that environment.
here_os=$(sh "$HERE/common/build-venv.sh" --platform)
py=""
for candidate in "python$PYVER" python3; do
  if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
done
[ -n "$py" ] || die "the wheel's SBOM needs a Python $PYVER (the wheelhouses are for it)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check --isolated --no-index \
  --require-hashes --find-links "$OUT/wheelhouse-$here_os" -r "$OUT/wheelhouse-$here_os/requirements.txt"
sbom="$OUT/$(basename "$wheel" .whl).cdx.json"
cdx environment --output-file "$sbom" "$work/venv/bin/python"
say "$sbom"

# What each OS's bundle is built from (build-bundle.sh adds the built bundle's own with --bundle).
for lock in "$HERE"/locks/bundle-*.txt; do
  name=$(basename "$lock" .txt)
  cdx requirements --output-file "$OUT/$name.cdx.json" "$lock"
done
say "$OUT/bundle-*.cdx.json"

if [ "$BUNDLE" = 1 ]; then
  bash "$HERE/build-bundle.sh" --out "$OUT" >/dev/null
fi
say "done: $OUT"
