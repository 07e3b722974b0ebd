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
# The dependencies are exactly those of the target OS's hash lock, install/locks/wheelhouse-<os>
# [-aws].txt (sh install/lock.sh writes them), downloaded with --require-hashes; the wheelhouse's
# requirements.txt is that lock plus one line for the gatekey wheel with its SHA-256, and the
# installers install with `pip --require-hashes --no-index -r requirements.txt`: a wheel whose
# bytes differ is refused. The result is checked by a dry run of that install for each platform
# and Python version (the locks are resolved for Python 3.11; another version may need its own:
# sh install/lock.sh --python-version X.Y).
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
  --extra NAME          a gatekey extra to include: aws (the extras with a hash lock)
  --lock FILE           the hash lock of the dependencies (default: install/locks/wheelhouse-
                        <os>[-aws].txt beside this script, <os> from --platform)
  --pip-python PY       the interpreter that runs pip (default: python3)
  --sbom                also write DIR/requirements.cdx.json, the wheelhouse's CycloneDX SBOM
                        (cyclonedx-py, from install/tools-venv.sh)

Writes DIR/requirements.txt: the lock and the gatekey wheel, every file with its SHA-256.
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
LOCK=""
SBOM=0
PIP_PY=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) [ $# -ge 2 ] || die "$1 needs a value"; PLATFORMS="$PLATFORMS $2"; shift 2 ;;
    --python-version) [ $# -ge 2 ] || die "$1 needs a value"; PYVER=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "$1 needs a value"; OUT=$2; shift 2 ;;
    --from) [ $# -ge 2 ] || die "$1 needs a value"; FROM=$2; shift 2 ;;
    --extra) [ $# -ge 2 ] || die "$1 needs a value"; EXTRAS="${EXTRAS:+$EXTRAS,}$2"; shift 2 ;;
    --lock) [ $# -ge 2 ] || die "$1 needs a value"; LOCK=$2; shift 2 ;;
    --pip-python) [ $# -ge 2 ] || die "$1 needs a value"; PIP_PY=$2; shift 2 ;;
    --sbom) SBOM=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
[ -n "$PLATFORMS" ] || die "--platform is required"
[ -n "$PYVER" ] || die "--python-version is required (e.g. 3.12)"
[ -n "$OUT" ] || die "--out is required"
case "$PYVER" in [0-9].[0-9] | [0-9].[0-9][0-9]) ;; *) die "--python-version wants X.Y: $PYVER" ;; esac

# (pip's own Python does not matter: it downloads and checks for --python-version, not for itself)
"$PIP_PY" -m pip --version >/dev/null 2>&1 || die "cannot run pip with $PIP_PY"
# One OS per wheelhouse: its requirements.txt is that OS's lock.
os=""
for platform in $PLATFORMS; do
  case "$platform" in
    win*) this=windows ;;
    macosx*) this=macos ;;
    *linux*) this=linux ;;
    *) die "unknown platform tag: $platform (a wheel platform tag such as win_amd64)" ;;
  esac
  [ -z "$os" ] || [ "$os" = "$this" ] || die "one OS per wheelhouse: $PLATFORMS"
  os=$this
done
if [ -z "$FROM" ]; then
  # The checkout around this script (install/..), when it is gatekey's.
  checkout=$(cd "$(dirname "$0")/.." && pwd)
  grep -q '^name = "gatekey"$' "$checkout/pyproject.toml" 2>/dev/null ||
    die "$checkout is not a gatekey checkout; pass --from (a gatekey wheel, sdist or source folder)"
  FROM=$checkout
  printf 'build-wheelhouse.sh: gatekey from the checkout %s\n' "$checkout" >&2
fi
if [ -z "$LOCK" ]; then
  case ",$EXTRAS," in
    ,,) suffix="" ;;
    ,aws,) suffix=-aws ;;
    *) die "no hash lock for the extras $EXTRAS (install/locks/ has aws); pass --lock FILE" ;;
  esac
  LOCK="$(cd "$(dirname "$0")" && pwd)/locks/wheelhouse-$os$suffix.txt"
fi
[ -f "$LOCK" ] || die "no hash lock $LOCK (sh install/lock.sh writes it); pass --lock FILE"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# gatekey's wheel, in OUT: the one given, built from a local sdist or source folder, or
# downloaded (a requirement such as gatekey==0.1.0 from your own index).
built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
case "$FROM" in
  *.whl)
    [ -f "$FROM" ] || die "no such wheel file: $FROM"
    cp "$FROM" "$built/"
    ;;
  *.tar.gz | *.zip | */* | .)
    [ -e "$FROM" ] || die "no such file or folder: $FROM"
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
    ;;
  *)
    "$PIP_PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$built" "$FROM"
    ;;
esac
set -- "$built"/gatekey-*.whl
if [ $# -ne 1 ] || [ ! -f "$1" ]; then die "no gatekey wheel from $FROM"; fi
wheel=$(basename "$1")
cp "$1" "$OUT/$wheel"
gk_version=$(printf '%s\n' "$wheel" | cut -d- -f2)
gk_hash=$("$PIP_PY" -m pip hash --algorithm sha256 "$OUT/$wheel" | sed -n 's/^--hash=sha256://p')
[ -n "$gk_hash" ] || die "cannot hash $OUT/$wheel"

for platform in $PLATFORMS; do
  printf 'build-wheelhouse.sh: %s, Python %s, from %s\n' "$platform" "$PYVER" "$LOCK" >&2
  "$PIP_PY" -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: --platform "$platform" --python-version "$PYVER" --implementation cp \
    -d "$OUT" -r "$LOCK" ||
    die "pip could not download $LOCK for $platform, Python $PYVER (above); the lock may be for another Python: sh install/lock.sh --python-version $PYVER"
done

{
  printf '# gatekey %s and its dependencies, every wheel with its SHA-256 (install/build-wheelhouse.sh):\n' "$gk_version"
  printf '#   pip install --require-hashes --no-index --find-links DIR -r DIR/requirements.txt\n'
  printf '# dependencies: %s\n' "$(basename "$LOCK")"
  grep -v '^ *#' "$LOCK"
  printf '# %s\n' "$wheel"
  printf 'gatekey==%s --hash=sha256:%s\n' "$gk_version" "$gk_hash"
} >"$OUT/requirements.txt"

# The install the endpoints will run, dry, for each target: every requirement found, every hash
# matched. pip judges environment markers by the machine it runs on, not --platform: for the
# machine's own OS the dry run resolves gatekey's dependencies too (nothing missing, e.g. a
# dependency of another Python than the lock's); for another OS it checks each pinned wheel.
case "$(uname -s)" in
  Linux) here_os=linux ;;
  Darwin) here_os=macos ;;
  *) here_os=windows ;;
esac
deps=--no-deps
[ "$here_os" != "$os" ] || deps=""
for platform in $PLATFORMS; do
  # shellcheck disable=SC2086 # deps is empty or one option
  if ! "$PIP_PY" -m pip install --quiet --disable-pip-version-check --isolated --dry-run \
    --ignore-installed --target "$built/dry-run" --require-hashes --no-index --find-links "$OUT" \
    --only-binary=:all: --platform "$platform" --python-version "$PYVER" --implementation cp \
    $deps -r "$OUT/requirements.txt" >&2; then
    die "the wheelhouse does not install on $platform, Python $PYVER (above); the lock may be for another Python: sh install/lock.sh --python-version $PYVER"
  fi
done
if [ "$SBOM" = 1 ]; then
  # Every component with its version and the SHA-256s it may have (cyclonedx-py reads the
  # requirements file); the root component is gatekey, from the checkout's pyproject.toml.
  here=$(cd "$(dirname "$0")" && pwd)
  tools=$(sh "$here/tools-venv.sh")
  set --
  [ ! -f "$here/../pyproject.toml" ] || set -- --pyproject "$here/../pyproject.toml"
  "$tools/bin/cyclonedx-py" requirements "$@" --output-reproducible --output-format JSON \
    --output-file "$OUT/requirements.cdx.json" "$OUT/requirements.txt" 2>/dev/null ||
    die "cyclonedx-py could not write $OUT/requirements.cdx.json"
fi
printf 'build-wheelhouse.sh: %s wheels and requirements.txt in %s\n' "$(find "$OUT" -name '*.whl' | wc -l | tr -d ' ')" "$OUT" >&2
